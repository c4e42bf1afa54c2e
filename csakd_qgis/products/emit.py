"""EMIT L2A surface reflectance (netCDF): the 285-band cube, orthorectified through its geometry lookup table.

The reflectance is stored in sensor geometry (downtrack, crosstrack, bands); the ``location`` group's
GLT (``glt_x``, ``glt_y``: 1-based crosstrack/downtrack indices per map pixel, 0 = no data) puts it on
the map grid of the global ``geotransform`` and ``spatial_ref`` by nearest neighbour, as the product
intends. Bands with ``good_wavelengths`` 0 get bbl 0. A companion EMIT_L2A_MASK file beside it adds
its aggregate flag (clouds, cirrus, shadows, spacecraft, ...) as invalid pixels.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.products.base import ProductRaster, Reader, find_one
from csakd_qgis.products.sidecar import WAVELENGTH_NM, checked_number

PRODUCT = "EMIT L2A"
FILL = -9999.0
RUN_LINES = 64  # source lines read at once: bounds memory to RUN_LINES x crosstrack x bands
_NAME = re.compile(r"EMIT_L2A_RFL_\d{3}_\d{8}T\d{6}_\d{7}_\d{3}\.nc", re.I)


def detect(path: Path) -> bool:
    """True for an EMIT L2A reflectance netCDF file or a folder holding one (or named like one)."""
    if path.is_file():
        return bool(_NAME.fullmatch(path.name))
    if path.is_dir():
        return path.name.upper().startswith("EMIT_L2A_RFL_") or any(
            _NAME.fullmatch(p.name) for p in path.glob("EMIT_L2A_RFL_*.nc"))
    return False


def _open(path: Path, what: str):
    import netCDF4

    try:
        ds = netCDF4.Dataset(str(path))
    except OSError as exc:
        raise CsakdError(f"The {PRODUCT} {what} '{path}' is not a readable netCDF file ({exc}): download it "
                         "again.") from None
    ds.set_auto_mask(False)
    return ds


def _var(ds, path: Path, group: str | None, name: str):
    try:
        return (ds.groups[group] if group else ds).variables[name]
    except KeyError:
        where = f"group '{group}' variable" if group else "variable"
        raise CsakdError(f"The {PRODUCT} file '{path.name}' has no {where} '{name}': it is not an EMIT L2A "
                         "product as delivered; download it again.") from None


def gather_glt(var: Any, glt_x: np.ndarray, glt_y: np.ndarray, band: int | None = None,
               fill: float = FILL) -> np.ndarray:
    """Values of the (downtrack, crosstrack[, bands]) ``var`` at the GLT's map pixels: (C, h, w), ``fill`` outside.

    ``band`` picks one band of a 3-D variable (result (1, h, w)). Source lines are read in runs of at most
    ``RUN_LINES`` lines, each only over the crosstrack span the block needs, so memory stays bounded however
    the swath is rotated on the map.
    """
    h, w = glt_x.shape
    n_bands = 1 if band is not None or var.ndim == 2 else var.shape[2]
    out = np.full((n_bands, h, w), fill, np.float32)
    valid = (glt_x > 0) & (glt_y > 0)
    if not valid.any():
        return out
    rows, cols = np.nonzero(valid)
    lines = glt_y[valid].astype(np.int64) - 1
    samples = glt_x[valid].astype(np.int64) - 1
    if lines.max() >= var.shape[0] or samples.max() >= var.shape[1]:
        raise CsakdError(f"The {PRODUCT} GLT points outside the {var.shape[0]} x {var.shape[1]} swath: the "
                         "product is damaged; download it again.")
    order = np.argsort(lines, kind="stable")
    rows, cols, lines, samples = rows[order], cols[order], lines[order], samples[order]
    start = 0
    while start < lines.size:
        first = lines[start]
        stop = int(np.searchsorted(lines, first + RUN_LINES, side="left"))
        last = lines[stop - 1]
        sel = slice(start, stop)
        s0, s1 = int(samples[sel].min()), int(samples[sel].max()) + 1  # only the crosstrack span needed
        if var.ndim == 2:
            slab = np.asarray(var[first:last + 1, s0:s1], np.float32)[..., None]
        elif band is not None:
            slab = np.asarray(var[first:last + 1, s0:s1, band], np.float32)[..., None]
        else:
            slab = np.asarray(var[first:last + 1, s0:s1, :], np.float32)
        out[:, rows[sel], cols[sel]] = slab[lines[sel] - first, samples[sel] - s0, :].T
        start = stop
    return out


def _glt_rows(ds, row0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``row0 .. row0 + n`` of the GLT (glt_x, glt_y) of an open EMIT netCDF."""
    loc = ds.groups["location"]
    return (np.asarray(loc.variables["glt_x"][row0:row0 + n, :]),
            np.asarray(loc.variables["glt_y"][row0:row0 + n, :]))


def _aggregate_band(ds, path: Path) -> int:
    """Index of the 'Aggregate Flag' band of an EMIT L2A MASK file's ``mask`` variable."""
    try:
        names = [str(n) for n in ds.groups["sensor_band_parameters"].variables["mask_bands"][:]]
    except KeyError:
        names = []
    for i, n in enumerate(names):
        if "aggregate" in n.lower():
            return i
    raise CsakdError(f"The {PRODUCT} mask file '{path.name}' names no 'Aggregate Flag' band in "
                     "sensor_band_parameters/mask_bands: download the mask file again, or remove it.")


def read(path: Path) -> list[ProductRaster]:
    """The orthorectified reflectance of an EMIT L2A RFL netCDF (file or folder), masked by its MASK file."""
    from affine import Affine
    from rasterio.crs import CRS

    path = Path(path)
    nc = path if path.is_file() else find_one(path, ["EMIT_L2A_RFL_*.nc"], "EMIT_L2A_RFL_*.nc reflectance file",
                                               PRODUCT)
    ds = _open(nc, "reflectance file")
    try:
        refl = _var(ds, nc, None, "reflectance")
        if refl.ndim != 3:
            raise CsakdError(f"The {PRODUCT} reflectance in '{nc.name}' has {refl.ndim} dimensions, not "
                             "(downtrack, crosstrack, bands): download the product again.")
        wl = np.asarray(_var(ds, nc, "sensor_band_parameters", "wavelengths")[:], np.float64)
        fwhm = np.asarray(_var(ds, nc, "sensor_band_parameters", "fwhm")[:], np.float64)
        good = np.asarray(_var(ds, nc, "sensor_band_parameters", "good_wavelengths")[:])
        gx, gy = _var(ds, nc, "location", "glt_x"), _var(ds, nc, "location", "glt_y")
        height, width = gx.shape
        if gy.shape != gx.shape:
            raise CsakdError(f"The {PRODUCT} GLT of '{nc.name}' has glt_x {gx.shape} but glt_y {gy.shape}: "
                             "download the product again.")
        try:
            transform = Affine.from_gdal(*[float(v) for v in np.ravel(ds.getncattr("geotransform"))])
            crs = CRS.from_wkt(str(ds.getncattr("spatial_ref")))
        except (AttributeError, TypeError, ValueError) as exc:
            raise CsakdError(f"The {PRODUCT} file '{nc.name}' has no usable geotransform/spatial_ref attributes "
                             f"({exc}): download the product again.") from None
        if wl.size != refl.shape[2] or fwhm.size != wl.size or good.size != wl.size:
            raise CsakdError(f"The {PRODUCT} file '{nc.name}' lists {wl.size} wavelengths for "
                             f"{refl.shape[2]} bands: download the product again.")
        fill = float(getattr(refl, "_FillValue", FILL))
    finally:
        ds.close()

    def read_rows(row0: int, n: int) -> np.ndarray:
        with _open(nc, "reflectance file") as d:
            return gather_glt(d.variables["reflectance"], *_glt_rows(d, row0, n), fill=fill)

    notes = ["orthorectified through the GLT (nearest)"]
    invalid_rows = None
    mask_nc = nc.with_name(re.sub("_RFL_", "_MASK_", nc.name, flags=re.I))
    if mask_nc.is_file() and mask_nc != nc:
        with _open(mask_nc, "mask file") as m:
            _var(m, mask_nc, None, "mask")
            agg = _aggregate_band(m, mask_nc)

        def invalid_rows(row0: int, n: int) -> np.ndarray:
            with _open(nc, "reflectance file") as d:
                x, y = _glt_rows(d, row0, n)
            with _open(mask_nc, "mask file") as m:
                flag = gather_glt(m.variables["mask"], x, y, band=agg, fill=0.0)[0]
            return flag > 0.5

        notes.append(f"{mask_nc.name} aggregate flag masked")
    else:
        notes.append("no EMIT_L2A_MASK file beside it: clouds not masked")
    return [ProductRaster(
        product=PRODUCT, role="HSI", source=str(nc), width=width, height=height, crs=crs, transform=transform,
        wavelengths=[checked_number(v, "wavelengths", f"band {i + 1}", nc, PRODUCT, *WAVELENGTH_NM)
                     for i, v in enumerate(np.ravel(wl))], fwhm=[float(v) if np.isfinite(v) and v > 0 else None for v in fwhm], scales=[1.0] * wl.size,
        offsets=[0.0] * wl.size, nodata=fill, dtype="float32", read_rows=read_rows, invalid_rows=invalid_rows,
        bbl=[int(g != 0) for g in good], notes=notes)]


READER = Reader(PRODUCT, detect, read)

"""Co-registration of a LR-HSI onto the HR-MSI grid (grid convention: docs/ARCHITECTURE.md).

The fusion works on the HR-MSI grid, cropped to the footprint overlap of both rasters and snapped so that
it is exactly ``scale`` times a LR grid whose origin is an HR pixel corner: LR pixel (i, j) covers HR
pixels [i*s, (i+1)*s) x [j*s, (j+1)*s). :func:`plan_grid` works that grid out from the two headers and
describes how to read the HSI on it (:class:`FusionGrid`); nothing is read until a window is asked for.

Documented behaviours
- CRS: the HR-MSI must be in a projected CRS. A geographic (degree) MSI is refused with a message that
  names the UTM zone to reproject to (e.g. with Processing "Warp (reproject)", gdal:warpreproject): the
  output grid is the MSI grid, and a degree grid has neither square nor constant-size pixels. An HSI in
  another CRS (projected or geographic) is reprojected on the fly onto the LR grid in the MSI CRS (GDAL
  warped VRT, cubic: only the windows that are read are warped).
- Scale: s = the HSI/MSI pixel-size ratio (in the MSI CRS) when it is within 1 % of an integer. A
  non-integer ratio (e.g. 3.2) is rounded to the nearest integer and the HSI is resampled (cubic) to
  s x the MSI pixel size (logged). A ratio below 2 is an error (that is not a resolution-enhancement pair).
- Snapping: when the HSI is in the MSI CRS, unrotated, and its pixel corners fall within 0.05 HR px of
  MSI pixel corners over its whole extent, the HSI file is read directly (no resampling); otherwise it is
  resampled (cubic) onto the aligned LR grid and that is logged.
- Extent: the output covers the whole LR pixels inside the bounding box of the footprint intersection
  (HSI footprint in the MSI CRS, shapely); pixels outside the HSI footprint (other CRS) are nodata.
- Shift: :func:`estimate_shift` returns (dx, dy) in LR pixels = the displacement of the HSI content
  relative to the MSI (+x east/right, +y south/down): HSI(x, y) ~ MSI_LR(x - dx, y - dy), the same sign
  as :func:`degrade.shift_image`. ``FusionGrid.with_shift(dx, dy)`` applies the inverse shift to every LR
  read (corrected HSI(x, y) = HSI(x + dx, y + dy)) by moving the HSI georeference by (-dx, -dy) LR px
  and resampling it (cubic) onto the LR grid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.raster.io import (
    GeoTiffWriter,
    RasterMeta,
    check_has_valid_pixel,
    check_output_path,
    read_meta,
    read_window_raw,
    to_reflectance,
)
from csakd_qgis.raster.job import OUTSIDE, Layer
from csakd_qgis.spectral.degrade import fill_nan_nearest, wald_degrade

log = logging.getLogger("csakd_qgis.coreg")

RATIO_TOLERANCE = 0.01  # relative: a pixel-size ratio within 1 % of an integer is that integer
ALIGN_TOLERANCE = 0.05  # HR pixels: grid corners closer than this coincide (read the HSI directly)
MIN_SCALE = 2
SHIFT_SAMPLE_LR = 256  # the shift is estimated on a central window of at most this many LR px a side
LARGE_SHIFT_LR = 2.0  # shifts larger than this (LR px) are reported as suspicious
MIN_CORRECTED_SHIFT_LR = 0.01  # smaller estimated shifts are not corrected (no needless resampling)
HSI_ROLE = "hyperspectral (HSI) input"
MSI_ROLE = "multispectral (MSI) input"


# --------------------------------------------------------------------------------------------- grid
@dataclass
class HsiSource:
    """How the HSI is read on the LR grid.

    ``kind == "direct"``: LR pixel (r, c) is HSI file pixel (r + row_off, c + col_off).
    ``kind == "warp"``: a GDAL warped VRT built with the ``warp`` keyword arguments (crs, transform, width,
    height, resampling, optional src_transform) whose pixel (r, c) is LR pixel (r, c).
    """

    kind: str
    row_off: int = 0
    col_off: int = 0
    warp: dict | None = None
    reason: str = ""

    def describe(self) -> str:
        """One line for logs."""
        if self.kind == "direct":
            return f"HSI read directly (file offset row {self.row_off}, col {self.col_off})"
        return f"HSI resampled on the fly onto the LR grid ({self.reason})"


@dataclass
class FusionGrid:
    """The common grid of a fusion: HR = the MSI grid cropped to the overlap, LR = s x its pixel size.

    Use as a context manager (or call :meth:`open`) before reading windows; reads are boundless and give
    NaN outside the rasters and where they are nodata. Window coordinates are pixels of the HR grid
    (:meth:`read_hr`) or of the LR grid (:meth:`read_lr`).
    """

    hsi: RasterMeta
    msi: RasterMeta
    crs: object
    hr_transform: object
    hr_width: int
    hr_height: int
    lr_transform: object
    lr_width: int
    lr_height: int
    scale: int
    msi_window: object  # rasterio Window of the HR grid inside the MSI file
    hsi_source: HsiSource
    hsi_bands: list[int]  # 0-based HSI bands fused (good bands)
    msi_bands: list[int]  # 0-based MSI bands used
    shift: tuple[float, float] = (0.0, 0.0)  # (dx, dy) LR px corrected on read
    messages: list[str] = field(default_factory=list)
    _stack: contextlib.ExitStack | None = field(default=None, repr=False, compare=False)
    _msi_ds: object = field(default=None, repr=False, compare=False)
    _hsi_ds: object = field(default=None, repr=False, compare=False)

    # ---- datasets
    def open(self) -> FusionGrid:
        """Open the MSI and the HSI (or its warped VRT) for reading."""
        import rasterio
        from rasterio.vrt import WarpedVRT

        if self._stack is not None:
            return self
        stack = contextlib.ExitStack()
        try:
            self._msi_ds = stack.enter_context(rasterio.open(self.msi.path))
            src = stack.enter_context(rasterio.open(self.hsi.path))
            if self.hsi_source.kind == "warp":
                kw = dict(self.hsi_source.warp or {})
                self._hsi_ds = stack.enter_context(WarpedVRT(src, dtype="float32", nodata=np.nan, **kw))
            else:
                self._hsi_ds = src
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def close(self) -> None:
        """Close the datasets opened by :meth:`open`."""
        if self._stack is not None:
            self._stack.close()
        self._stack = self._msi_ds = self._hsi_ds = None

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._stack is not None

    def __enter__(self) -> FusionGrid:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reads
    def read_lr(self, row: int, col: int, height: int, width: int, bands: Sequence[int] | None = None,
                outside: str = "fill", out: np.ndarray | None = None) -> np.ndarray:
        """(C_h, height, width) HSI reflectance on a LR grid window; NaN = nodata / outside.

        ``outside="edge"`` / ``"symmetric"``: pixels beyond the HSI (or its warped grid) replicate its edge /
        mirror it about its edge instead of NaN (:func:`io.read_window_raw`); ``out``: an array to fill.
        """
        from rasterio.windows import Window

        if self._hsi_ds is None:
            raise RuntimeError("FusionGrid is not open: use 'with grid:' first")
        idx = list(self.hsi_bands if bands is None else bands)
        if self.hsi_source.kind == "direct":
            win = Window(col + self.hsi_source.col_off, row + self.hsi_source.row_off, width, height)
            raw = read_window_raw(self._hsi_ds, win, [i + 1 for i in idx], outside=outside, out=out)
            return to_reflectance(raw, self.hsi, idx, copy=False)
        raw = read_window_raw(self._hsi_ds, Window(col, row, width, height), [i + 1 for i in idx], outside=outside,
                              out=out)
        return to_reflectance(raw, dataclasses.replace(self.hsi, nodata=None), idx, copy=False)

    def read_hr(self, row: int, col: int, height: int, width: int, outside: str = "fill",
                out: np.ndarray | None = None) -> np.ndarray:
        """(C_m, height, width) MSI reflectance on a HR grid window; NaN = nodata / outside.

        ``outside="edge"`` / ``"symmetric"``: pixels beyond the MSI file replicate its edge / mirror it
        about its edge instead of NaN (:func:`io.read_window_raw`); ``out``: an array to fill.
        """
        from rasterio.windows import Window

        if self._msi_ds is None:
            raise RuntimeError("FusionGrid is not open: use 'with grid:' first")
        win = Window(col + int(self.msi_window.col_off), row + int(self.msi_window.row_off), width, height)
        raw = read_window_raw(self._msi_ds, win, [i + 1 for i in self.msi_bands], outside=outside, out=out)
        return to_reflectance(raw, self.msi, self.msi_bands, copy=False)

    def read_tile(self, row: int, col: int, height: int, width: int, halo_lr: int = 0, outside: str = "fill"
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(LR-HSI, HR-MSI) for the HR window (row, col, height, width) plus ``halo_lr`` LR px of context.

        ``row``, ``col``, ``height`` and ``width`` must be multiples of the scale. ``outside="symmetric"``
        (what :func:`fuse.fuse` uses) fills context beyond the rasters by mirroring them about their edges,
        which keeps the LR-HSI and HR-MSI context a consistent pair (the mirrored HR block-averages to the
        mirrored LR, the same border convention as the Wald degradation's Gaussian blur);
        ``outside="edge"`` replicates the edge pixels (what nearest-pixel filling of NaN would give); the
        default ``"fill"`` gives NaN.
        """
        s = self.scale
        if row % s or col % s or height % s or width % s:
            raise ValueError(f"HR window ({row}, {col}, {height}, {width}) is not aligned to scale {s}")
        h = int(halo_lr)
        lr = self.read_lr(row // s - h, col // s - h, height // s + 2 * h, width // s + 2 * h, outside=outside)
        msi = self.read_hr(row - h * s, col - h * s, height + 2 * h * s, width + 2 * h * s, outside=outside)
        return lr, msi

    def block_rows(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((rows, phase) of the LR source, (rows, phase) of the MSI): the height of the datasets' internal
        blocks and the file row of grid row 0 modulo it, so a reader can cut its reads on block rows."""
        if self._hsi_ds is None or self._msi_ds is None:
            raise RuntimeError("FusionGrid is not open: use 'with grid:' first")
        lr_rows = max(1, int(self._hsi_ds.block_shapes[0][0]))
        hr_rows = max(1, int(self._msi_ds.block_shapes[0][0]))
        lr_off = self.hsi_source.row_off if self.hsi_source.kind == "direct" else 0
        return (lr_rows, int(lr_off) % lr_rows), (hr_rows, int(self.msi_window.row_off) % hr_rows)

    def layers(self) -> list[Layer]:
        """The raster job's inputs of a fusion: the LR-HSI (LR grid) and the HR-MSI (s x), context mirrored."""
        (lr_block, lr_phase), (hr_block, hr_phase) = self.block_rows()
        return [Layer(lambda r, c, h, w, out=None: self.read_lr(r, c, h, w, outside=OUTSIDE, out=out),
                      len(self.hsi_bands), 1, self.lr_height, lr_block, lr_phase, reads_into=True),
                Layer(lambda r, c, h, w, out=None: self.read_hr(r, c, h, w, outside=OUTSIDE, out=out),
                      len(self.msi_bands), self.scale, self.hr_height, hr_block, hr_phase, reads_into=True)]

    def central_window_lr(self, max_size: int) -> tuple[int, int, int, int]:
        """(row, col, height, width) of a central LR window of at most max_size x max_size px."""
        h, w = min(self.lr_height, max_size), min(self.lr_width, max_size)
        return (self.lr_height - h) // 2, (self.lr_width - w) // 2, h, w

    def read_sample(self, max_lr: int = SHIFT_SAMPLE_LR) -> tuple[np.ndarray, np.ndarray]:
        """(LR-HSI, HR-MSI) of a central window of at most max_lr x max_lr LR px (bounded memory)."""
        r, c, h, w = self.central_window_lr(max_lr)
        return self.read_tile(r * self.scale, c * self.scale, h * self.scale, w * self.scale)

    # ---- derived grids
    def with_shift(self, dx: float, dy: float) -> FusionGrid:
        """A copy whose LR reads are corrected for a HSI shift (dx, dy) in LR px (see module doc)."""
        warp = _warp_params(self.crs, self.lr_transform, self.lr_width, self.lr_height,
                            dict(self.hsi_source.warp or {}).get("resampling"))
        warp["src_transform"] = shifted_src_transform(self, dx, dy)
        reason = f"shift correction dx={dx:+.3f}, dy={dy:+.3f} LR px"
        if self.hsi_source.kind == "warp" and self.hsi_source.reason:
            reason = f"{self.hsi_source.reason}; {reason}"
        new = dataclasses.replace(self, hsi_source=HsiSource("warp", warp=warp, reason=reason),
                                  shift=(float(dx), float(dy)), messages=list(self.messages),
                                  _stack=None, _msi_ds=None, _hsi_ds=None)
        new.messages.append(f"Shift correction: HSI content moved by ({-dx:+.3f}, {-dy:+.3f}) LR px "
                            "(cubic resampling).")
        return new

    def describe(self) -> str:
        """A one-line summary of the grid."""
        return (f"output grid {self.hr_width} x {self.hr_height} px of {abs(self.hr_transform.a):g} "
                f"{_units(self.crs)} (MSI window col {int(self.msi_window.col_off)}, row "
                f"{int(self.msi_window.row_off)}), LR grid {self.lr_width} x {self.lr_height} px, scale "
                f"{self.scale}; {self.hsi_source.describe()}")


def _units(crs) -> str:
    if crs is None:
        return "px"
    try:
        return crs.linear_units or "units"
    except Exception:  # noqa: BLE001 - some CRSs have no linear units
        return "units"


def shifted_src_transform(grid: FusionGrid, dx: float, dy: float):
    """The HSI source transform that moves its content by (-dx, -dy) LR px on the LR grid."""
    from affine import Affine
    from rasterio.warp import transform as warp_transform

    t = grid.lr_transform
    cx, cy = t * (grid.lr_width / 2.0, grid.lr_height / 2.0)
    ex, ey = t * (grid.lr_width / 2.0 + dx, grid.lr_height / 2.0 + dy)
    base = grid.hsi.transform
    if grid.hsi_source.kind == "warp" and (grid.hsi_source.warp or {}).get("src_transform") is not None:
        base = grid.hsi_source.warp["src_transform"]
    if grid.hsi.crs is None or grid.crs is None or grid.hsi.crs == grid.crs:
        ddx, ddy = ex - cx, ey - cy
    else:
        xs, ys = warp_transform(grid.crs, grid.hsi.crs, [cx, ex], [cy, ey])
        ddx, ddy = xs[1] - xs[0], ys[1] - ys[0]
    return Affine.translation(-ddx, -ddy) * base


def _warp_params(crs, transform, width: int, height: int, resampling=None) -> dict:
    from rasterio.enums import Resampling

    out = {"crs": crs, "transform": transform, "width": int(width), "height": int(height),
           "resampling": resampling if resampling is not None else Resampling.cubic}
    if crs is None:
        out.pop("crs")
    return out


def _is_geographic(crs) -> bool:
    return bool(crs is not None and crs.is_geographic)


def _crs_name(crs) -> str:
    if crs is None:
        return "no CRS"
    try:
        epsg = crs.to_epsg()
    except Exception:  # noqa: BLE001
        epsg = None
    return f"EPSG:{epsg}" if epsg else (crs.to_string()[:60] or "a custom CRS")


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def _geographic_msi_error(meta: RasterMeta) -> CsakdError:
    lon, lat = meta.transform * (meta.width / 2.0, meta.height / 2.0)
    epsg = utm_epsg_for(lon, lat) if -180 <= lon <= 360 and -90 <= lat <= 90 else None
    target = f"EPSG:{epsg} (its UTM zone)" if epsg else "its UTM zone"
    return CsakdError(
        f"The {MSI_ROLE} '{meta.path}' is in a geographic CRS ({_crs_name(meta.crs)}, degrees). The fused "
        f"image is written on the MSI grid, which must be in metres: reproject the MSI to {target} first, "
        "e.g. with Processing 'Warp (reproject)' (gdal:warpreproject) or "
        f"'gdalwarp -t_srs {('EPSG:' + str(epsg)) if epsg else 'EPSG:326xx'} -r cubic in.tif out.tif'.")


def _footprint(meta: RasterMeta, dst_crs, n: int = 16):
    """The raster footprint as a shapely polygon in ``dst_crs`` (edges densified when reprojecting)."""
    from rasterio.warp import transform as warp_transform
    from shapely.geometry import Polygon

    w, h = meta.width, meta.height
    t = np.linspace(0.0, 1.0, n + 1)[:-1]
    cols = np.concatenate([t * w, np.full(n, w), (1 - t) * w, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * h, np.full(n, h), (1 - t) * h])
    xs, ys = meta.transform * (cols, rows)
    if meta.crs is not None and dst_crs is not None and meta.crs != dst_crs:
        xs, ys = warp_transform(meta.crs, dst_crs, list(xs), list(ys))
    poly = Polygon(list(zip(xs, ys, strict=True)))
    return poly if poly.is_valid else poly.buffer(0)


def _hsi_res_in(meta: RasterMeta, dst_crs) -> tuple[float, float]:
    """HSI pixel size (x, y) expressed in ``dst_crs`` units (GDAL's suggested warp resolution)."""
    if meta.crs is None or dst_crs is None or meta.crs == dst_crs:
        t = meta.transform
        return math.hypot(t.a, t.d), math.hypot(t.b, t.e)
    from rasterio.transform import array_bounds
    from rasterio.warp import calculate_default_transform

    west, south, east, north = array_bounds(meta.height, meta.width, meta.transform)
    tr, _, _ = calculate_default_transform(meta.crs, dst_crs, meta.width, meta.height, west, south, east, north)
    return abs(tr.a), abs(tr.e)


def plan_grid(hsi_path: str | os.PathLike, msi_path: str | os.PathLike, *,
              ratio_tolerance: float = RATIO_TOLERANCE, align_tolerance: float = ALIGN_TOLERANCE,
              hsi_bands: Sequence[int] | None = None) -> FusionGrid:
    """Work out the common HR/LR grid of an LR-HSI and an HR-MSI (see the module doc for the rules).

    ``hsi_bands``: 0-based HSI bands to fuse (default: all bands not flagged bad, bbl = 0).
    Raises CsakdError for missing/unreadable rasters, a geographic MSI, a scale below 2, an MSI with more
    bands than the HSI, or footprints that do not overlap.
    """
    from affine import Affine
    from rasterio.windows import Window
    from shapely.geometry import box

    hsi = read_meta(hsi_path, HSI_ROLE)
    msi = read_meta(msi_path, MSI_ROLE)
    messages: list[str] = []
    reasons: list[str] = []  # why the HSI is resampled (for HsiSource.reason)
    if os.path.samefile(hsi.path, msi.path):
        raise CsakdError(f"The {HSI_ROLE} and the {MSI_ROLE} are the same file '{hsi.path}': give the "
                         "low-resolution hyperspectral image and the high-resolution multispectral image.")
    bands = list(hsi.good_bands() if hsi_bands is None else hsi_bands)
    if not bands:
        raise CsakdError(f"The {HSI_ROLE} '{hsi.path}' has no usable band (all flagged bad, bbl = 0).")
    if msi.count > len(bands):
        raise CsakdError(
            f"The {MSI_ROLE} '{msi.path}' has {msi.count} bands but the {HSI_ROLE} '{hsi.path}' only "
            f"{len(bands)} usable bands: the inputs look swapped. Give the hyperspectral image (many bands, "
            "coarse pixels) as HSI and the multispectral image (few bands, fine pixels) as MSI.")
    # ---- CRS rules
    if (hsi.crs is None) != (msi.crs is None):
        which, meta = (HSI_ROLE, hsi) if hsi.crs is None else (MSI_ROLE, msi)
        raise CsakdError(f"The {which} '{meta.path}' has no CRS (not georeferenced), so it cannot be placed "
                         "on the other raster: assign its CRS (e.g. Processing 'Assign projection').")
    if _is_geographic(msi.crs):
        raise _geographic_msi_error(msi)
    mt = msi.transform
    if mt.b != 0 or mt.d != 0 or mt.a <= 0 or mt.e >= 0:
        raise CsakdError(f"The {MSI_ROLE} '{msi.path}' has a rotated or not north-up grid ({tuple(mt)[:6]}): "
                         "warp it to a north-up grid first (gdal:warpreproject).")
    same_crs = hsi.crs is None or hsi.crs == msi.crs
    if not same_crs:
        kind = "geographic" if _is_geographic(hsi.crs) else "projected"
        reasons.append(f"reprojection from {_crs_name(hsi.crs)}")
        messages.append(f"The HSI CRS {_crs_name(hsi.crs)} ({kind}) differs from the MSI CRS "
                        f"{_crs_name(msi.crs)}: the HSI is reprojected onto the MSI grid (cubic).")
    # ---- scale
    mres_x, mres_y = abs(mt.a), abs(mt.e)
    hres_x, hres_y = _hsi_res_in(hsi, msi.crs)
    rx, ry = hres_x / mres_x, hres_y / mres_y
    ratio = 0.5 * (rx + ry)
    if ratio < MIN_SCALE * (1 - ratio_tolerance):
        raise CsakdError(
            f"The {HSI_ROLE} pixels ({hres_x:.3g} x {hres_y:.3g} {_units(msi.crs)}) are only {ratio:.2f} times "
            f"the {MSI_ROLE} pixels ({mres_x:.3g} x {mres_y:.3g}); fusion needs a ratio of at least 2. Check that "
            "the inputs are not swapped and that both are in the same units.")
    scale = int(round(ratio))
    integral = abs(rx - scale) <= ratio_tolerance * scale and abs(ry - scale) <= ratio_tolerance * scale
    if not integral:
        reasons.append(f"pixel-size ratio {ratio:.3f} -> {scale}")
        messages.append(f"The HSI/MSI pixel-size ratio {rx:.3f} x {ry:.3f} is not an integer: the HSI is "
                        f"resampled (cubic) to {scale * mres_x:g} {_units(msi.crs)} pixels, scale {scale}.")
    # ---- overlap
    msi_box = box(mt.c, mt.f + mt.e * msi.height, mt.c + mt.a * msi.width, mt.f)
    hsi_poly = _footprint(hsi, msi.crs)
    inter = msi_box.intersection(hsi_poly)
    lr_px_area = (scale * mres_x) * (scale * mres_y)
    if inter.is_empty or inter.area < lr_px_area:
        hb = hsi_poly.bounds if not hsi_poly.is_empty else (math.nan,) * 4
        mb = msi_box.bounds
        raise CsakdError(
            f"The {HSI_ROLE} '{hsi.path}' and the {MSI_ROLE} '{msi.path}' do not overlap (by at least one HSI "
            f"pixel). In {_crs_name(msi.crs)}: HSI x {hb[0]:.1f}..{hb[2]:.1f}, y {hb[1]:.1f}..{hb[3]:.1f}; MSI x "
            f"{mb[0]:.1f}..{mb[2]:.1f}, y {mb[1]:.1f}..{mb[3]:.1f}. Check that both show the same place and "
            "that their CRSs are set correctly.")
    # ---- direct read possible?
    ht = hsi.transform
    direct = same_crs and integral and ht.b == 0 and ht.d == 0 and ht.a > 0 and ht.e < 0
    kx = ky = 0.0
    if direct:
        kx = (ht.c - mt.c) / mres_x  # HSI origin in MSI pixel units
        ky = (mt.f - ht.f) / mres_y
        off = max(abs(kx - round(kx)), abs(ky - round(ky)))
        drift = max(abs(ht.a - scale * mt.a) * hsi.width / mres_x, abs(ht.e - scale * mt.e) * hsi.height / mres_y)
        if off > align_tolerance or drift > align_tolerance:
            direct = False
            if off > align_tolerance:
                reasons.append("sub-pixel grid offset")
                messages.append(f"The HSI grid is offset by ({kx - round(kx):+.2f}, {ky - round(ky):+.2f}) MSI "
                                "pixels from the MSI grid: the HSI is resampled (cubic) onto the aligned grid.")
            else:
                reasons.append("pixel-size drift")
                messages.append(f"The HSI pixel size differs from {scale} x the MSI pixel size by "
                                f"{drift:.2f} MSI pixels over the HSI: the HSI is resampled (cubic).")
    if direct:
        ikx, iky = int(round(kx)), int(round(ky))
        c_lo, c_hi = max(0, ikx), min(msi.width, ikx + scale * hsi.width)
        r_lo, r_hi = max(0, iky), min(msi.height, iky + scale * hsi.height)
        j0 = -((ikx - c_lo) // scale)  # ceil((c_lo - kx) / s): first whole LR pixel inside the overlap
        i0 = -((iky - r_lo) // scale)
        j1, i1 = (c_hi - ikx) // scale, (r_hi - iky) // scale
        col0, row0 = ikx + j0 * scale, iky + i0 * scale
        lr_w, lr_h = j1 - j0, i1 - i0
        source = HsiSource("direct", row_off=int(i0), col_off=int(j0))
    else:
        minx, miny, maxx, maxy = inter.bounds
        eps = align_tolerance
        col0 = max(0, int(math.ceil((minx - mt.c) / mres_x - eps)))
        row0 = max(0, int(math.ceil((mt.f - maxy) / mres_y - eps)))
        col1 = min(msi.width, int(math.floor((maxx - mt.c) / mres_x + eps)))
        row1 = min(msi.height, int(math.floor((mt.f - miny) / mres_y + eps)))
        lr_w, lr_h = (col1 - col0) // scale, (row1 - row0) // scale
        source = HsiSource("warp", reason="; ".join(reasons) or "rotated HSI grid")
    if lr_w < 1 or lr_h < 1:
        raise CsakdError(f"The overlap of the {HSI_ROLE} '{hsi.path}' and the {MSI_ROLE} '{msi.path}' is "
                         "smaller than one HSI pixel on the common grid: nothing to fuse.")
    hr_transform = mt * Affine.translation(col0, row0)
    lr_transform = hr_transform * Affine.scale(scale, scale)
    if source.kind == "warp":
        source.warp = _warp_params(msi.crs, lr_transform, lr_w, lr_h)
    grid = FusionGrid(hsi=hsi, msi=msi, crs=msi.crs, hr_transform=hr_transform, hr_width=lr_w * scale,
                      hr_height=lr_h * scale, lr_transform=lr_transform, lr_width=lr_w, lr_height=lr_h,
                      scale=scale, msi_window=Window(col0, row0, lr_w * scale, lr_h * scale),
                      hsi_source=source, hsi_bands=bands, msi_bands=list(range(msi.count)), messages=messages)
    if (grid.hr_width, grid.hr_height) != (msi.width, msi.height):
        messages.append(f"The output covers the overlap: {grid.hr_width} x {grid.hr_height} of the MSI's "
                        f"{msi.width} x {msi.height} px (from MSI col {col0}, row {row0}).")
    for m in messages:
        log.debug(m)
    return grid


# --------------------------------------------------------------------------------------------- shift
@dataclass
class ShiftEstimate:
    """Sub-pixel shift of the LR-HSI relative to the HR-MSI, in LR pixels (sign: see module doc)."""

    dx: float
    dy: float
    confidence: float  # height of the normalised phase-correlation peak (0..1); < ~0.05 is unreliable
    n_pixels: int
    method: str
    message: str = ""


def _tukey(n: int, alpha: float) -> np.ndarray:
    if n < 3 or alpha <= 0:
        return np.ones(n)
    x = np.arange(n) / (n - 1)
    out = np.ones(n)
    lo, hi = x < alpha / 2, x > 1 - alpha / 2
    out[lo] = 0.5 * (1 + np.cos(2 * np.pi / alpha * (x[lo] - alpha / 2)))
    out[hi] = 0.5 * (1 + np.cos(2 * np.pi / alpha * (x[hi] - 1 + alpha / 2)))
    return out


def _upsampled_dft(data: np.ndarray, region: int, factor: int, offsets: Sequence[float]) -> np.ndarray:
    """Inverse DFT of ``data`` on a ``region`` x ``region`` grid upsampled by ``factor`` (matrix DFT).

    Guizar-Sicairos et al. (2008), "Efficient subpixel image registration algorithms" (conjugated use).
    """
    out = data
    for n_items, off in zip(data.shape[::-1], list(offsets)[::-1], strict=True):
        kernel = (np.arange(region) - off)[:, None] * np.fft.fftfreq(n_items, factor)
        out = np.tensordot(np.exp(-2j * np.pi * kernel), out, axes=(1, -1))
    return out


def phase_correlation(moving: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None,
                      upsample: int = 100, whiten: float = 0.5, taper: float = 1.0
                      ) -> tuple[float, float, float]:
    """Sub-pixel translation (dx, dy) with moving(x, y) ~ reference(x - dx, y - dy), and the peak height.

    2-D images or (C, h, w) stacks (their cross-power spectra are summed). NaN-safe: pixels invalid in either
    input (or False in ``valid``) are set to the band mean; both are Tukey-windowed (``taper``, 1 = Hann). The
    integer peak of the ``whiten``-normalised cross-power spectrum (1 = pure phase correlation) is refined by an
    upsampled matrix DFT to 1 / ``upsample`` px, then by a parabola through the upsampled peak.
    """
    mov = np.asarray(moving, np.float64)
    ref = np.asarray(reference, np.float64)
    if mov.ndim == 2:
        mov, ref = mov[None], ref[None]
    ok = np.isfinite(mov).all(0) & np.isfinite(ref).all(0)
    if valid is not None:
        ok &= valid
    h, w = ok.shape
    win = np.outer(_tukey(h, taper), _tukey(w, taper))
    cross = np.zeros((h, w), np.complex128)
    for a, b in zip(mov, ref, strict=True):
        av, bv = a[ok], b[ok]
        if av.size < 2 or av.std() <= 0 or bv.std() <= 0:
            continue
        a2 = np.where(ok, (a - av.mean()) / av.std(), 0.0) * win
        b2 = np.where(ok, (b - bv.mean()) / bv.std(), 0.0) * win
        cross += np.fft.fft2(a2) * np.conj(np.fft.fft2(b2))
    mag = np.abs(cross)
    if not np.any(mag > 0):
        return 0.0, 0.0, 0.0
    prod = cross / np.maximum(mag, mag.max() * 1e-12) ** whiten
    corr = np.fft.ifft2(prod)
    peak = np.unravel_index(int(np.argmax(np.abs(corr))), corr.shape)
    height = float(np.abs(corr[peak]) / max(float(np.abs(prod).mean()), 1e-30))
    shifts = np.array([p if p <= n // 2 else p - n for p, n in zip(peak, corr.shape, strict=True)], np.float64)
    if upsample > 1:
        shifts = np.round(shifts * upsample) / upsample
        region = int(np.ceil(upsample * 1.5))
        centre = np.fix(region / 2.0)
        up = _upsampled_dft(np.conj(prod), region, upsample, centre - shifts * upsample).conj()
        a = np.abs(up)
        mx = np.unravel_index(int(np.argmax(a)), a.shape)
        fine = np.array(mx, np.float64)
        for ax in range(2):  # parabolic refinement of the upsampled peak
            if 0 < mx[ax] < a.shape[ax] - 1:
                i_lo, i_hi = list(mx), list(mx)
                i_lo[ax] -= 1
                i_hi[ax] += 1
                lo, hi = a[tuple(i_lo)], a[tuple(i_hi)]
                den = lo - 2 * a[mx] + hi
                if den < 0:
                    fine[ax] += 0.5 * (lo - hi) / den
        shifts = shifts + (fine - centre) / upsample
    return float(shifts[1]), float(shifts[0]), height


def hsi_components(lr: np.ndarray, valid: np.ndarray, n_components: int = 10) -> np.ndarray:
    """(k, h, w) principal-component scores of the LR-HSI (PCA over ``valid`` pixels; NaN elsewhere)."""
    c_h, h, w = lr.shape
    x = lr[:, valid].T.astype(np.float64)
    mx = x.mean(0)
    k = int(max(1, min(n_components, c_h, x.shape[0] // 8)))
    if c_h > k:  # principal axes from the C_h x C_h covariance (much cheaper than an SVD of the pixels)
        xc = x - mx
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        basis = evecs[:, np.argsort(evals)[::-1][:k]]  # (C_h, k)
    else:
        basis = np.eye(c_h)
    z = (lr.reshape(c_h, -1).T.astype(np.float64) - mx) @ basis
    return z.T.reshape(-1, h, w)


def _regress(z: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Least-squares fit (with constant) of each target band on the component images z, applied to z."""
    n = int(valid.sum())
    design = np.concatenate([np.ones((n, 1)), z[:, valid].T], axis=1)
    coef, *_ = np.linalg.lstsq(design, target[:, valid].T.astype(np.float64), rcond=None)
    flat = z.reshape(z.shape[0], -1).T
    out = np.concatenate([np.ones((flat.shape[0], 1)), flat], axis=1) @ coef
    return out.T.reshape(target.shape)


class _SplineShifter:
    """Cubic-spline sub-pixel shifts of a (C, h, w) stack, band by band, with the spline prefilter done once."""

    def __init__(self, x: np.ndarray) -> None:
        from scipy.ndimage import spline_filter

        self.coef = [spline_filter(b, order=3, mode="nearest") for b in np.asarray(x, np.float64)]

    def __call__(self, dx: float, dy: float) -> np.ndarray:
        from scipy.ndimage import shift as nd_shift

        return np.stack([nd_shift(c, (dy, dx), order=3, mode="nearest", prefilter=False) for c in self.coef])


def refine_shift(z: np.ndarray, msi_lr: np.ndarray, valid: np.ndarray, d0: tuple[float, float],
                 iterations: int = 8, h: float = 0.05) -> tuple[float, float, bool]:
    """Gauss-Newton refinement of a shift estimate (dx, dy); returns (dx, dy, converged).

    Model: the HSI's view of the MSI (regression on the HSI components ``z``, refitted each iteration)
    equals the degraded MSI moved by (dx, dy) (cubic spline). Residuals are taken on interior pixels
    (a margin of |d| + 2 px), bands normalised by their spread. Phase correlation on small LR windows is
    biased towards 0 by ~1/3 of a sub-pixel shift; this removes that bias (EnMAP test: < 0.02 LR px).
    """

    m = fill_nan_nearest(msi_lr) if not np.isfinite(msi_lr).all() else msi_lr.astype(np.float32)
    shift_m = _SplineShifter(np.nan_to_num(m))
    shift_v = _SplineShifter(valid[None].astype(np.float64))
    dx, dy = float(d0[0]), float(d0[1])
    hh, ww = valid.shape
    converged = False
    for _ in range(iterations):
        mg = int(np.ceil(max(abs(dx), abs(dy)))) + 2
        if hh - 2 * mg < 4 or ww - 2 * mg < 4:
            return float(d0[0]), float(d0[1]), False
        md = shift_m(dx, dy)
        ok = valid & (shift_v(dx, dy)[0] > 0.999)
        inner = np.zeros_like(ok)
        inner[mg:hh - mg, mg:ww - mg] = True
        ok &= inner
        if ok.sum() < 32:
            return float(d0[0]), float(d0[1]), False
        syn = _regress(z, md, ok)
        jx = (shift_m(dx + h, dy) - shift_m(dx - h, dy)) / (2 * h)
        jy = (shift_m(dx, dy + h) - shift_m(dx, dy - h)) / (2 * h)
        sd = np.maximum(md[:, ok].std(axis=1), 1e-12)[:, None]
        r = ((syn[:, ok] - md[:, ok]) / sd).ravel()
        jac = np.stack([(jx[:, ok] / sd).ravel(), (jy[:, ok] / sd).ravel()], axis=1)
        step = np.linalg.lstsq(jac, r, rcond=None)[0]
        norm = float(np.hypot(*step))
        if not np.isfinite(norm):
            return float(d0[0]), float(d0[1]), False
        if norm > 0.5:
            step *= 0.5 / norm
        dx, dy = dx + float(step[0]), dy + float(step[1])
        if norm < 1e-3:
            converged = True
            break
    if np.hypot(dx - d0[0], dy - d0[1]) > 1.0:  # wandered off: keep the phase-correlation estimate
        return float(d0[0]), float(d0[1]), False
    return dx, dy, converged


def estimate_shift_arrays(lr: np.ndarray, msi: np.ndarray, scale: int, *, msi_is_lr: bool = False,
                          upsample: int = 100, refine: bool = True) -> ShiftEstimate:
    """Shift of a LR-HSI (C_h, h, w) relative to the HR-MSI (C_m, s*h, s*w) (or its LR version).

    The MSI is Wald-degraded to LR (:func:`degrade.wald_degrade`: blur sigma s/2 + s x s block mean); the
    HSI's view of each MSI band is synthesised by regression on the HSI's principal components; the phase
    correlation of the two stacks (upsampled-DFT sub-pixel peak) gives a first (dx, dy) in LR px (sign:
    module doc), refined by Gauss-Newton (:func:`refine_shift`).
    """

    lr = np.asarray(lr, np.float32)
    msi_lr = np.asarray(msi, np.float32) if msi_is_lr else wald_degrade(msi, scale)
    msi_lr = msi_lr[:, : lr.shape[1], : lr.shape[2]]
    ok = np.isfinite(lr).all(0) & np.isfinite(msi_lr).all(0)
    n = int(ok.sum())
    if n < 64 or min(lr.shape[1:]) < 8:
        msg = (f"Shift not estimated: only {n} valid LR pixels in common in a {lr.shape[1]} x {lr.shape[2]} "
               "px sample (needs at least 8 x 8).")
        return ShiftEstimate(0.0, 0.0, 0.0, n, "none", msg)
    z = hsi_components(lr, ok)
    synth = _regress(z, msi_lr, ok)
    dx, dy, conf = phase_correlation(synth, msi_lr, ok, upsample=upsample)
    method = "phase correlation of regression-synthesised MSI bands"
    if refine:
        dx, dy, _ = refine_shift(z, msi_lr, ok, (dx, dy))
        method += " + Gauss-Newton refinement"
    msg = f"Estimated HSI shift relative to the MSI: dx={dx:+.3f}, dy={dy:+.3f} LR px (peak {conf:.2f})."
    if max(abs(dx), abs(dy)) > LARGE_SHIFT_LR:
        msg += (" This is large: check the georeferencing of both inputs (the estimate is meant for "
                "sub-pixel misregistration).")
    elif conf < 0.05:
        msg += " The correlation peak is weak: the estimate is unreliable."
    return ShiftEstimate(dx, dy, conf, n, method, msg)


def estimate_shift(grid: FusionGrid, max_lr: int = SHIFT_SAMPLE_LR) -> ShiftEstimate:
    """Shift of the HSI relative to the MSI on a central window of the grid (bounded cost)."""
    opened = not grid.is_open
    if opened:
        grid.open()
    try:
        lr, msi = grid.read_sample(max_lr)
    finally:
        if opened:
            grid.close()
    est = estimate_shift_arrays(lr, msi, grid.scale)
    log.debug(est.message)
    return est


# --------------------------------------------------------------------------------------------- coregister
@dataclass
class CoregResult:
    """What :func:`coregister` wrote."""

    out_path: str
    scale: int
    shift_x: float
    shift_y: float
    shift_corrected: bool
    width: int
    height: int
    bands: int
    messages: list[str]


def coregister(hsi: str | os.PathLike, msi: str | os.PathLike, out: str | os.PathLike, *,
               shift_correct: bool = True, creation_options: dict[str, str] | None = None,
               progress: Callable[[float, str], None] | None = None,
               cancel: Callable[[], bool] | None = None, rows_per_block: int = 256) -> CoregResult:
    """Write the HSI resampled/snapped onto the LR grid aligned to the MSI (over the overlap).

    All HSI bands are written (bad bands too, with their bbl flag) with wavelength/FWHM metadata, so the
    result pairs with the MSI without further resampling. With ``shift_correct`` the estimated sub-pixel
    shift is removed as well. Returns the shift (LR px) and the grid written.
    """
    from rasterio.windows import Window


    check_output_path(out, [str(hsi), str(msi)], role="co-registered HSI output")
    grid = plan_grid(hsi, msi)
    check_has_valid_pixel(hsi, "hyperspectral (HSI) input")
    check_has_valid_pixel(msi, "multispectral (MSI) input")
    est = estimate_shift(grid)
    messages = list(grid.messages) + [est.message]
    corrected = shift_correct and est.method != "none" and max(abs(est.dx), abs(est.dy)) >= MIN_CORRECTED_SHIFT_LR
    if corrected:
        grid = grid.with_shift(est.dx, est.dy)
        messages.append(grid.messages[-1])
    elif shift_correct:
        messages.append(f"Shift not corrected: below {MIN_CORRECTED_SHIFT_LR} LR px or not estimated.")
    meta = grid.hsi
    tags = {"CSAKD_COREGISTER": json.dumps({
        "msi": os.path.basename(grid.msi.path), "scale": grid.scale, "shift_lr_px": [est.dx, est.dy],
        "shift_corrected": bool(corrected)})}
    with grid, GeoTiffWriter(out, grid.lr_width, grid.lr_height, meta.count, grid.crs, grid.lr_transform,
                             meta.wavelengths, meta.fwhm, creation_options=creation_options, tags=tags,
                             bbl=meta.bbl) as wr:
        step = max(1, int(rows_per_block))
        for r in range(0, grid.lr_height, step):
            if cancel is not None and cancel():
                raise CancelledError()
            h = min(step, grid.lr_height - r)
            block = grid.read_lr(r, 0, h, grid.lr_width, bands=range(meta.count))
            wr.write(block, window=Window(0, r, grid.lr_width, h))
            if progress is not None:
                progress((r + h) / grid.lr_height, f"rows {r + h}/{grid.lr_height}")
    return CoregResult(str(out), grid.scale, est.dx, est.dy, bool(corrected), grid.lr_width,
                       grid.lr_height, meta.count, messages)


__all__ = ["ALIGN_TOLERANCE", "CoregResult", "FusionGrid", "HsiSource", "RATIO_TOLERANCE", "ShiftEstimate",
           "coregister", "estimate_shift", "estimate_shift_arrays", "phase_correlation", "plan_grid",
           "hsi_components", "refine_shift", "shifted_src_transform", "utm_epsg_for"]

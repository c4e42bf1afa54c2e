"""Spectral profiles of single pixels: band values -> reflectance over wavelength, CSV export, fusion info line.

The spectral profile panel of the QGIS plugin (``csakd_qgis/algorithms/profile/``) reads the pixel under the cursor through
QGIS and hands the band values to these functions, which need no QGIS: band metadata from
:func:`raster.io.read_meta`, nodata / bad bands (bbl = 0) as NaN so a plot shows them as gaps.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import RasterMeta, read_meta

POINT_BANDS = 20  # rasters with fewer bands (an MSI) are drawn as points at their band centres, not a line
FUSION_TAGS = ("CSAKD_FUSION", "CSAKD_SUPERRESOLUTION")


@dataclass(frozen=True)
class BandInfo:
    """What a profile needs about a raster's bands: centre wavelengths (nm), bad-band list, nodata, scaling."""

    wavelengths: tuple[float | None, ...]
    bbl: tuple[int, ...]
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    geotransform: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # GDAL order, in the raster's CRS
    width: int = 0
    height: int = 0
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_meta(cls, meta: RasterMeta, tags: dict[str, str] | None = None) -> BandInfo:
        """The band description of a raster read by :func:`read_meta` (``tags``: its dataset-level tags)."""
        return cls(tuple(meta.wavelengths), tuple(int(b) for b in meta.bbl), meta.nodata, tuple(meta.scales),
                   tuple(meta.offsets), tuple(float(v) for v in meta.transform.to_gdal()), meta.width, meta.height,
                   tuple(sorted((tags or {}).items())))

    @property
    def count(self) -> int:
        return len(self.wavelengths)

    @property
    def has_wavelengths(self) -> bool:
        """True when at least one band has a centre wavelength (bands without one are left out of the plot)."""
        return any(w is not None for w in self.wavelengths)

    def pixel(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of the pixel holding point (x, y) in the raster's CRS, None outside the raster."""
        return pixel_index(self.geotransform, self.width, self.height, x, y)

    @property
    def as_points(self) -> bool:
        """Few bands (a multispectral image): draw points at the band centres rather than a line."""
        return self.count < POINT_BANDS


def band_info(path: str | os.PathLike) -> BandInfo:
    """Read the band description of the raster file ``path`` (a CsakdError when it is not a readable raster)."""
    import rasterio

    meta = read_meta(path, "raster layer")
    try:
        with rasterio.open(str(path)) as ds:
            tags = dict(ds.tags())
    except rasterio.errors.RasterioIOError as exc:  # read_meta just opened it: only a race gets here
        raise CsakdError(f"The raster layer '{path}' could not be read ({exc}).") from None
    return BandInfo.from_meta(meta, tags)


def pixel_index(transform: Sequence[float], width: int, height: int, x: float, y: float) -> tuple[int, int] | None:
    """(row, col) of the pixel containing map point (x, y) for a GDAL geotransform, or None outside the raster."""
    x0, dx, rx, y0, ry, dy = (float(v) for v in transform)
    det = dx * dy - rx * ry
    if det == 0:
        return None
    u, v = x - x0, y - y0
    col = math.floor((dy * u - rx * v) / det)
    row = math.floor((-ry * u + dx * v) / det)
    if 0 <= row < height and 0 <= col < width:
        return row, col
    return None


def spectrum(values: Sequence[float | None], info: BandInfo, scaled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(wavelengths nm, reflectance) of one pixel's band values, sorted by wavelength; NaN marks the gaps.

    ``values`` has one entry per band; None or NaN is nodata. With ``scaled=False`` they are raw stored
    values: the nodata value is masked, then each band's scale/offset is applied. With ``scaled=True`` (what
    QGIS's raster providers return) scale/offset are already applied and nodata already None. Bad bands
    (bbl = 0) are NaN; bands without a wavelength are left out.
    """
    if len(values) != info.count:
        raise ValueError(f"{len(values)} band values for a raster of {info.count} bands")
    wl, out = [], []
    for i, (w, v) in enumerate(zip(info.wavelengths, values, strict=True)):
        if w is None:
            continue
        r = math.nan if v is None else float(v)
        if not scaled and not math.isnan(r):
            if info.nodata is not None and r == info.nodata:
                r = math.nan
            else:
                r = r * info.scales[i] + info.offsets[i]
        if not info.bbl[i]:
            r = math.nan
        wl.append(float(w))
        out.append(r)
    order = np.argsort(wl, kind="stable")
    return np.asarray(wl, np.float64)[order], np.asarray(out, np.float64)[order]


@dataclass
class Profile:
    """One drawn spectrum: a layer's pixel at a map point."""

    layer: str
    x: float
    y: float
    wavelengths: np.ndarray
    values: np.ndarray
    as_points: bool = False
    pin: int = 0  # 0: the current point, k: the k-th pinned one

    @property
    def label(self) -> str:
        """Legend name: the layer name, and for a pinned profile its number."""
        return self.layer if not self.pin else f"{self.layer}, pin {self.pin}"

    @property
    def column(self) -> str:
        """CSV column name: the legend name and the map point."""
        return f"{self.label} ({self.x:.2f}, {self.y:.2f})"


def profiles_csv(profiles: Iterable[Profile]) -> str:
    """CSV text: a ``wavelength_nm`` column (all profiles' wavelengths) and one reflectance column per profile.

    A profile without a band at a wavelength, or with a gap there, has an empty cell.
    """
    profiles = list(profiles)
    grid = sorted({float(w) for p in profiles for w in p.wavelengths})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["wavelength_nm", *(p.column for p in profiles)])
    lookup = [{float(w): float(v) for w, v in zip(p.wavelengths, p.values, strict=True)} for p in profiles]
    for w in grid:
        cells = []
        for d in lookup:
            v = d.get(w, math.nan)
            cells.append("" if math.isnan(v) else f"{v:.6g}")
        writer.writerow([f"{w:.4f}", *cells])
    return buf.getvalue()


def _residuals(obj: object) -> dict[str, float] | None:
    """The consistency residuals {"lr_hsi", "msi"} found anywhere in a fusion tag (the last, i.e. after)."""
    found = None
    if isinstance(obj, dict):
        if {"lr_hsi", "msi"} <= set(obj) and all(isinstance(obj[k], (int, float)) for k in ("lr_hsi", "msi")):
            found = {"lr_hsi": float(obj["lr_hsi"]), "msi": float(obj["msi"])}
        for v in obj.values():
            found = _residuals(v) or found
    return found


def fusion_info(tags: dict[str, str], abstract: str = "") -> str:
    """One line on how a raster the provider wrote was made (method, scale, HSI shift, PSF, residuals); "" if not.

    Read from the CSAKD_FUSION / CSAKD_SUPERRESOLUTION GeoTIFF tag, else the first sentence of the abstract.
    """
    for key in FUSION_TAGS:
        if key not in tags:
            continue
        try:
            tag = json.loads(tags[key])
        except ValueError:
            continue
        kind = "fusion" if key == "CSAKD_FUSION" else "super-resolution"
        parts = [f"{kind}: {tag.get('model', '?')}", f"scale {tag.get('scale', '?')}"]
        shift = tag.get("shift_lr_px")
        if isinstance(shift, list) and len(shift) == 2:
            parts.append(f"HSI shift dx {shift[0]:+.3f}, dy {shift[1]:+.3f} LR px"
                         + (" (corrected)" if tag.get("shift_corrected") else ""))
        obs = tag.get("observation", {}).get("observation") if isinstance(tag.get("observation"), dict) else None
        if isinstance(obs, dict) and "sigma_hr_px" in obs:
            parts.append(f"PSF sigma {obs['sigma_hr_px']:.2f} HR px")
        res = _residuals(tag)
        if res:
            parts.append(f"residuals LR-HSI {100 * res['lr_hsi']:.2f} %, MSI {100 * res['msi']:.2f} %")
        return "; ".join(parts)
    if abstract.startswith("Made by csakd:"):
        return abstract.split(". ", 1)[0]
    return ""


__all__ = ["BandInfo", "POINT_BANDS", "Profile", "band_info", "fusion_info", "pixel_index", "profiles_csv",
           "spectrum"]

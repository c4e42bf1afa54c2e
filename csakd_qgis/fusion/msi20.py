"""The 20 m bands of a fusion (e.g. Sentinel-2's B5-B8A, B11, B12 beside its 10 m bands), on the raster side.

:func:`plan_msi20` places the 20 m raster on the fusion grid; :func:`sharpen_msi20` sharpens its bands to the MSI
grid by the tiled raster job (arrays: :mod:`fusion.multires`) into a temporary GeoTIFF; :func:`stacked_msi_layer`
reads the MSI bands, then the sharpened bands, as one HR layer; :class:`Msi20Stack` does the three for
:func:`fusion.fuse.fuse`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.multires import (
    MSI20_ROLE,
    SHARPEN_ROUNDS,
    SHARPEN_WINDOW,
    check_multires_model,
    multires_srf,
    sharpen_bands,
    sharpen_margin,
    sharpen_params,
    stacked_wavelengths,
)
from csakd_qgis.fusion.predictors import Predictor, apply_mask, nodata_mask
from csakd_qgis.raster.coreg import FusionGrid
from csakd_qgis.raster.io import RasterMeta, read_meta
from csakd_qgis.raster.job import GROUP_WIDTH, Layer, OutputSpec, Progress, TiledRasterJob, raster_layer
from csakd_qgis.temporaries import WorkFolder

FIT_SAMPLE_LR = 512  # the gains are fitted on a central window of at most this many 20 m px a side
# The sharpened 20 m bands are an intermediate raster with a fixed window plan: the user's tile/overlap must
# not change them, since the fusion's regression on the stacked, strongly correlated bands amplifies even
# float32 blending differences (1e-7 in the sharpened bands gave 4e-4 in the output on a synthetic scene).
SHARPEN_TILE, SHARPEN_OVERLAP = 512, 32


@dataclass(frozen=True)
class Msi20Plan:
    """Where the 20 m raster falls on the fusion grid (``factor`` HR px per 20 m px).

    The 20 m pixels sharpened are rows [row0, row0 + rows) and columns [col0, col0 + cols) of its file; their
    HR grid starts ``off_row`` / ``off_col`` HR px (0 <= off < factor) above / left of the fusion grid's first
    pixel, at row ``msi_row`` / column ``msi_col`` of the MSI file.
    """

    meta: RasterMeta
    factor: int
    row0: int
    col0: int
    rows: int
    cols: int
    off_row: int
    off_col: int
    msi_row: int
    msi_col: int


def plan_msi20(grid: FusionGrid, path: str | os.PathLike) -> Msi20Plan:
    """Check the 20 m raster against the fusion grid (CRS, integer pixel-size factor, aligned pixel edges,
    covers the HSI/MSI overlap) and place it; one CsakdError line for each way it can fail."""
    meta = read_meta(path, MSI20_ROLE)
    if meta.crs is None or grid.crs is None or meta.crs != grid.crs:
        raise CsakdError(f"The {MSI20_ROLE} '{path}' is in CRS {meta.crs} but the MSI in {grid.crs}: reproject it "
                         "onto the MSI's CRS (gdalwarp -t_srs) keeping its 20 m pixels.")
    hr, t = grid.hr_transform, meta.transform
    px, py = abs(hr.a), abs(hr.e)
    fx, fy = abs(t.a) / px, abs(t.e) / py
    f = round(fx)
    if f < 2 or abs(fx - f) > 1e-3 * f or abs(fy - f) > 1e-3 * f:
        raise CsakdError(f"The {MSI20_ROLE} '{path}' has {abs(t.a):g} x {abs(t.e):g} pixels, not an integer "
                         f"multiple >= 2 of the MSI's {px:g} x {py:g} (Sentinel-2: 20 m beside 10 m): give the "
                         "bands at their native 20 m pixels.")
    u, v = (hr.c - t.c) / px, (t.f - hr.f) / py  # fusion grid origin - 20 m origin, in HR px (col, row)
    if abs(u - round(u)) > 1e-3 or abs(v - round(v)) > 1e-3:
        raise CsakdError(f"The {MSI20_ROLE} '{path}' pixel edges are {u - round(u):+.3f}, {v - round(v):+.3f} MSI "
                         "px off the MSI's: resample it onto a grid sharing the MSI's pixel edges.")
    u, v = round(u), round(v)
    c0, r0 = math.floor(u / f), math.floor(v / f)
    c1, r1 = -(-(u + grid.hr_width) // f), -(-(v + grid.hr_height) // f)
    if c0 < 0 or r0 < 0 or c1 > meta.width or r1 > meta.height:
        raise CsakdError(f"The {MSI20_ROLE} '{path}' does not cover the HSI/MSI overlap ({grid.hr_width} x "
                         f"{grid.hr_height} MSI px): give 20 m bands of the whole HSI footprint.")
    msi_col = int(grid.msi_window.col_off) - (u - c0 * f)
    msi_row = int(grid.msi_window.row_off) - (v - r0 * f)
    return Msi20Plan(meta, f, r0, c0, r1 - r0, c1 - c0, v - r0 * f, u - c0 * f, msi_row, msi_col)


def _offset_layer(layer: Layer, rows: int, cols: int, n_rows: int, phase: int) -> Layer:
    """``layer`` read from row ``rows`` / column ``cols`` of its raster on (a window of ``n_rows`` rows)."""
    return dataclasses.replace(layer, read=lambda r, c, h, w, **kw: layer.read(r + rows, c + cols, h, w, **kw),
                               n_rows=n_rows, phase=phase)


class Msi20Sharpener(Predictor):
    """The sharpening of the 20 m bands as a predictor of the tiled job (its "LR" input is the 20 m raster):
    the scene's gains fitted once on the scene sample, :func:`fusion.multires.sharpen_bands` (local gains
    around them) per window."""

    def __init__(self, factor: int, z_bands: int, msi_bands: int) -> None:
        self.name = "msi20 sharpening"
        self.scale, self.hsi_bands, self.msi_bands = int(factor), int(z_bands), int(msi_bands)
        self.halo_lr = sharpen_margin()
        self.params = None
        self.messages = []

    def prepare(self, z: np.ndarray, msi: np.ndarray) -> None:
        """Fit the injection gains on the scene sample."""
        self.params = sharpen_params(z, msi, self.scale)

    def predict(self, z: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """Each window of the batch sharpened with the scene's gains."""
        self._check(z, msi)
        if self.params is None:
            raise RuntimeError("Msi20Sharpener.prepare() was not called")
        t0 = time.perf_counter()
        out = np.stack([sharpen_bands(a, b, self.scale, self.params) for a, b in zip(z, msi, strict=True)])
        apply_mask(out, nodata_mask(z, msi, self.scale))
        self.network_seconds += time.perf_counter() - t0
        return out


def sharpen_msi20(grid: FusionGrid, plan: Msi20Plan, out: str | os.PathLike, opts, prog: Progress,
                  progress_range: tuple[float, float]) -> list[str]:
    """The 20 m bands over the fusion grid sharpened to the MSI grid (detail injection at the 20 m / MSI scale
    and back-projection onto the 20 m bands, :func:`fusion.multires.sharpen_bands`) by the tiled raster job,
    into the GeoTIFF ``out``."""
    import rasterio
    from affine import Affine

    f, m = plan.factor, plan.meta
    n_z = m.count
    predictor = Msi20Sharpener(f, n_z, len(grid.msi_bands))
    transform = m.transform * Affine.translation(plan.col0, plan.row0) * Affine.scale(1.0 / f)
    job = TiledRasterJob(out, OutputSpec(plan.cols * f, plan.rows * f, grid.crs, transform, n_z, range(n_z),
                                         m.wavelengths, m.fwhm), f, dataclasses.replace(opts, dtype="float32"),
                         prog)  # an intermediate: full precision whatever the output's data type
    with rasterio.open(m.path) as zds, rasterio.open(grid.msi.path) as mds, job:
        zl = raster_layer(zds, m, range(n_z), 1)
        ml = raster_layer(mds, grid.msi, grid.msi_bands, f)
        zl = _offset_layer(zl, plan.row0, plan.col0, plan.rows, plan.row0 % zl.block_rows)
        ml = _offset_layer(ml, plan.msi_row, plan.msi_col, plan.rows * f, plan.msi_row % ml.block_rows)
        n = min(FIT_SAMPLE_LR, plan.rows), min(FIT_SAMPLE_LR, plan.cols)
        r, c = (plan.rows - n[0]) // 2, (plan.cols - n[1]) // 2
        predictor.prepare(zl.read(r, c, *n), ml.read(r * f, c * f, n[0] * f, n[1] * f))
        job.run([zl, ml], predictor, progress_range, "sharpening the 20 m bands")
    return [f"{MSI20_ROLE}: {n_z} band(s) sharpened to the MSI grid by detail injection at scale {f} "
            f"(gains fitted per {2 * SHARPEN_WINDOW + 1} x {2 * SHARPEN_WINDOW + 1} px window of 20 m detail, "
            f"around the scene's from {predictor.params.n_fit_pixels} px) and {SHARPEN_ROUNDS} "
            "back-projections onto the 20 m bands."]


def stacked_msi_layer(grid: FusionGrid, plan: Msi20Plan, ds, meta: RasterMeta) -> Layer:
    """The HR layer of a fusion with 20 m bands: the MSI bands, then the sharpened 20 m bands (``ds``)."""
    hr = grid.layers()[1]
    z = raster_layer(ds, meta, range(meta.count), grid.scale)

    def read(r: int, c: int, h: int, w: int, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((hr.bands + meta.count, h, w), np.float32)
        hr.read(r, c, h, w, out=out[:hr.bands])
        z.read(r + plan.off_row, c + plan.off_col, h, w, out=out[hr.bands:])
        return out

    return dataclasses.replace(hr, read=read, bands=hr.bands + meta.count, reads_into=True)


class Msi20Stack:
    """The 20 m bands of one fusion: checked and placed at set-up (:meth:`plan`), sharpened into a temporary
    folder beside the output (:meth:`sharpen`, inside ``with``), then read with the MSI as one HR layer."""

    def __init__(self, grid: FusionGrid, path: str | os.PathLike, model: Any, msi_wavelengths: list | None,
                 options: dict[str, Any]) -> None:
        check_multires_model(model)
        self.grid, self.path = grid, path
        self.plan = plan_msi20(grid, path)
        n_msi, n_z = len(grid.msi_bands), self.plan.meta.count
        self.msi_wavelengths = stacked_wavelengths(
            [grid.msi.wavelengths[i] for i in grid.msi_bands] if msi_wavelengths else None,
            self.plan.meta.wavelengths, n_msi, n_z)
        self.options = dict(options)
        if "srf" in self.options:
            self.options["srf"] = multires_srf(self.options["srf"], n_msi, n_z)
        self.n_bands = n_msi + n_z
        self._stack = contextlib.ExitStack()
        self._ds = self._meta = None

    def __enter__(self) -> Msi20Stack:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def sharpen(self, out_dir: os.PathLike, opts, prog: Progress, progress_range: tuple[float, float]) -> list[str]:
        """Sharpen the 20 m bands into a temporary GeoTIFF in ``out_dir`` (removed on exit) and open it."""
        import rasterio

        tmp = self._stack.enter_context(WorkFolder(".csakd-msi20-", out_dir))
        z_path = os.path.join(tmp, "msi20_sharpened.tif")
        lines = sharpen_msi20(self.grid, self.plan, z_path, dataclasses.replace(
            opts, tile=SHARPEN_TILE, overlap=SHARPEN_OVERLAP, group_width=GROUP_WIDTH, batch=1, part=None),
            prog, progress_range)
        self._ds = self._stack.enter_context(rasterio.open(z_path))
        self._meta = read_meta(z_path, MSI20_ROLE)
        return lines

    def with_sample(self, grid: FusionGrid, n_lr: int, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """The MSI sample ``msi`` of the central window of ``n_lr`` LR px with the sharpened bands after it."""
        s = grid.scale
        rr, cc, hh, ww = grid.central_window_lr(n_lr)
        z = raster_layer(self._ds, self._meta, range(self._meta.count), s).read(
            rr * s + self.plan.off_row, cc * s + self.plan.off_col, hh * s, ww * s)
        return np.concatenate([msi, z], axis=0)

    def layer(self, grid: FusionGrid) -> Layer:
        """The stacked HR layer of ``grid`` (the MSI bands, then the sharpened 20 m bands)."""
        return stacked_msi_layer(grid, self.plan, self._ds, self._meta)


__all__ = ["FIT_SAMPLE_LR", "Msi20Plan", "Msi20Sharpener", "Msi20Stack", "plan_msi20", "sharpen_msi20",
           "stacked_msi_layer"]

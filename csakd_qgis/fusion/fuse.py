"""Fusion: a LR-HSI and a HR-MSI into a HR-HSI GeoTIFF on the MSI grid, through the tiled raster job.

Steps: validate the output path and options (before any compute) -> co-register (:func:`coreg.plan_grid`:
common grid, scale, overlap) -> build the predictor (:func:`fusion.predictors.make_predictor`; learned models
are checked against the data) -> open the output and plan its windows (:class:`raster.job.TiledRasterJob`)
-> estimate the HSI/MSI shift (always, on a bounded central sample; corrected only with ``shift_correct``,
otherwise estimated in a background thread while the tiles run) -> fit per-scene coefficients on a bounded
central sample (only predictors that need it) -> the job's tiled, pipelined, bounded-memory inference
(inputs: the LR-HSI and the HR-MSI of the grid, context beyond them mirrored).

``FuseResult.timings``: the job's (see :mod:`raster.job`) plus ``setup_s``, ``sample_s``, ``shift_s``
(estimate, possibly overlapped), ``shift_wait_s``, ``prepare_s``.

Output: the HR grid (the MSI grid cropped to the overlap), float32 reflectance, nodata -9999 where the inputs
are nodata, the HSI's band count and order with its wavelength/FWHM/bbl metadata. Bad bands (bbl = 0) are
not fused but kept as all-nodata bands, so band indices stay those of the input HSI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from csakd_qgis.fusion.predictors import Predictor, apply_mask, make_predictor, nodata_mask
from csakd_qgis.fusion.reflectance import require_reflectance
from csakd_qgis.raster.coreg import (
    MIN_CORRECTED_SHIFT_LR,
    SHIFT_SAMPLE_LR,
    FusionGrid,
    estimate_shift_arrays,
    plan_grid,
)
from csakd_qgis.raster.io import RasterMeta, check_output_path, read_meta
from csakd_qgis.raster.job import (
    GROUP_WIDTH,
    OUTSIDE,
    Layer,
    OutputSpec,
    Progress,
    RasterJobResult,
    TiledRasterJob,
    check_options,
    raster_layer,
)

FIT_SAMPLE_LR = 512  # classical coefficients are fitted on a central window of at most this many LR px a side
RADIOMETRY_SAMPLE = 1 << 20  # values per input used by radiometry_check
# The sharpened 20 m bands are an intermediate raster with a fixed window plan: the user's tile/overlap must
# not change them, since the fusion's regression on the stacked, strongly correlated bands amplifies even
# float32 blending differences (1e-7 in the sharpened bands gave 4e-4 in the output on a synthetic scene).
SHARPEN_TILE, SHARPEN_OVERLAP = 512, 32


@dataclass
class FuseResult(RasterJobResult):
    """What :func:`fuse` did: the job's result plus the HSI/MSI shift estimate (LR px)."""

    shift_x: float = 0.0
    shift_y: float = 0.0
    shift_corrected: bool = False
    shift_confidence: float = 0.0
    observation: dict[str, Any] = field(default_factory=dict)  # model-based methods: PSF, shift, SRF, choice

    def summary(self) -> str:
        """One line for logs and the CLI."""
        obs = self.observation.get("observation", {})
        psf = (f", PSF sigma {obs['sigma_hr_px']:.3f} HR px ({obs['psf_source']}), PSF shift "
               f"dx={obs['shift_dx_lr_px']:+.3f} dy={obs['shift_dy_lr_px']:+.3f} LR px, SRF {obs['srf']['source']}"
               if obs else "")
        return (f"{super().summary()}, HSI shift dx={self.shift_x:+.3f} dy={self.shift_y:+.3f} LR px"
                f"{' (corrected)' if self.shift_corrected else ''}{psf}")


def radiometry_check(lr: np.ndarray, msi: np.ndarray, factor: float = 10.0) -> str | None:
    """A warning when the HSI and MSI values differ by more than ``factor`` (a missing scale factor)."""
    h = lr[np.isfinite(lr)]
    m = msi[np.isfinite(msi)]
    if h.size == 0 or m.size == 0:
        return None
    mh, mm = float(np.median(np.abs(h))), float(np.median(np.abs(m)))
    if mh <= 0 or mm <= 0 or max(mh / mm, mm / mh) < factor:
        return None
    return (f"The HSI values (median {mh:.4g}) and the MSI values (median {mm:.4g}) differ by a factor "
            f"{max(mh / mm, mm / mh):.0f}: one of them is probably not in reflectance units (e.g. Sentinel-2 "
            "L2A digital numbers need a 1/10000 scale; set it with gdal_edit.py -scale). Classical methods "
            "absorb a gain, networks expect reflectance in [0, 1].")


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    """A strided spatial subsample of a (C, h, w) array with at most about n values (a view)."""
    step = max(1, int(np.ceil(np.sqrt(x.size / max(1, n)))))
    return x[..., ::step, ::step]


def _needs_sample(predictor: Any) -> bool:
    """Whether ``predictor.prepare`` uses the scene sample (unknown predictors: yes)."""
    return bool(getattr(predictor, "needs_sample", True))


def grid_layers(grid: FusionGrid) -> list[Layer]:
    """The job's inputs of a fusion: the LR-HSI (LR grid) and the HR-MSI (s x), context beyond mirrored."""
    (lr_block, lr_phase), (hr_block, hr_phase) = grid.block_rows()
    return [Layer(lambda r, c, h, w, out=None: grid.read_lr(r, c, h, w, outside=OUTSIDE, out=out),
                  len(grid.hsi_bands), 1, grid.lr_height, lr_block, lr_phase, reads_into=True),
            Layer(lambda r, c, h, w, out=None: grid.read_hr(r, c, h, w, outside=OUTSIDE, out=out),
                  len(grid.msi_bands), grid.scale, grid.hr_height, hr_block, hr_phase, reads_into=True)]


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
                                         m.wavelengths, m.fwhm), f, opts, prog)
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
    hr = grid_layers(grid)[1]
    z = raster_layer(ds, meta, range(meta.count), grid.scale)

    def read(r: int, c: int, h: int, w: int, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty((hr.bands + meta.count, h, w), np.float32)
        hr.read(r, c, h, w, out=out[:hr.bands])
        z.read(r + plan.off_row, c + plan.off_col, h, w, out=out[hr.bands:])
        return out

    return dataclasses.replace(hr, read=read, bands=hr.bands + meta.count, reads_into=True)


def fuse(hsi: str | os.PathLike, msi: str | os.PathLike, out: str | os.PathLike, model: Any = "glp",
         device: str = "auto", tile: int = 256, overlap: int = 32, batch: int = 4, shift_correct: bool = False,
         creation_options: dict[str, str] | None = None,
         progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
         threads: int | None = None, precision: str = "fp32", edge: str = "shift",
         group_width: int | None = None, runtime: str = "auto",
         part: tuple[int, int] | None = None, model_options: dict[str, Any] | None = None,
         msi20: str | os.PathLike | None = None, tags: dict[str, str] | None = None) -> FuseResult:
    """Fuse ``hsi`` (LR hyperspectral) and ``msi`` (HR multispectral) into ``out`` (GeoTIFF on the MSI grid).

    ``model``: a classical method ("bicubic", "gsa", "glp"), a zoo model name, a .safetensors/.json path or a
    :class:`fusion.predictors.Predictor`. ``tile``/``overlap`` in HR (MSI) pixels, rounded up to multiples of the scale.
    ``progress(fraction, message)`` is called per batch; ``cancel()`` is checked per batch (raises
    :class:`errors.CancelledError`, nothing is left at ``out``). ``threads`` sets torch's CPU threads.
    ``group_width``: output column-group width in HR px (None: ``GROUP_WIDTH``, 0: no column groups).
    ``part`` = (k, n): write only the k-th of n column-group ranges (a block file of :mod:`distributed.blocks`).
    ``model_options``: for model-based methods (``glp+c``, ``cnmf``, ``auto``...): ``psf`` (auto | wald |
    gaussian:SIGMA) and ``srf`` (auto | auto:SENSOR | SENSOR | SRF file); the HSI FWHM and MSI wavelengths
    are added from the rasters' metadata. Such predictors may raise the tile size and lower the batch
    (``min_tile`` / ``max_batch``): their halo is wide.
    ``msi20``: an MSI raster at an integer multiple (2) of the MSI pixel size, e.g. Sentinel-2's B5, B6, B7,
    B8A, B11, B12 beside B2, B3, B4, B8: its bands are sharpened to the MSI grid (:func:`sharpen_msi20`, into
    a temporary GeoTIFF beside ``out``) and fused as more MSI bands, after the MSI's (classical and
    model-based methods; a sensor SRF gets the 20 m bands appended, :func:`fusion.multires.multires_srf`).
    ``tags``: more dataset tags of the output (e.g. what a batch made it from), written when it is complete.
    """
    t_start = time.perf_counter()
    inputs = [str(hsi), str(msi)] + ([str(msi20)] if msi20 is not None else [])
    out_path = check_output_path(out, inputs, role="fused output")
    opts = check_options(tile, overlap, batch, threads, edge, group_width, creation_options, part=part)
    prog = Progress(progress, cancel)
    prog.report(0.0, "co-registering")
    grid = plan_grid(hsi, msi)
    messages = list(grid.messages)
    s = grid.scale
    hsi_meta = grid.hsi
    good = grid.hsi_bands
    n_msi = len(grid.msi_bands)
    msi_wl = list(grid.msi.wavelengths or []) or None
    options = dict(model_options or {})
    m20 = None
    if msi20 is not None:
        check_multires_model(model)
        m20 = plan_msi20(grid, msi20)
        n_z = m20.meta.count
        msi_wl = stacked_wavelengths([grid.msi.wavelengths[i] for i in grid.msi_bands] if msi_wl else None,
                                     m20.meta.wavelengths, n_msi, n_z)
        if "srf" in options:
            options["srf"] = multires_srf(options["srf"], n_msi, n_z)
        n_msi += n_z
    predictor = make_predictor(model, scale=s, hsi_bands=len(good), msi_bands=n_msi,
                               hsi_wavelengths=[hsi_meta.wavelengths[i] for i in good], device=device,
                               precision=precision, threads=opts.threads, runtime=runtime,
                               model_options={"fwhm": [hsi_meta.fwhm[i] for i in good],
                                              "msi_wavelengths": msi_wl, **options})
    if m20 is not None and hasattr(predictor, "hr_bands"):  # model-based: the PSF of the MSI's own bands
        predictor.hr_bands = len(grid.msi_bands)
    opts = dataclasses.replace(opts, tile=max(opts.tile, int(getattr(predictor, "min_tile", 0))),
                               batch=min(opts.batch, int(getattr(predictor, "max_batch", opts.batch))))
    prog.check_cancel()
    job = TiledRasterJob(out_path, OutputSpec(grid.hr_width, grid.hr_height, grid.crs, grid.hr_transform,
                                              hsi_meta.count, good, hsi_meta.wavelengths, hsi_meta.fwhm,
                                              hsi_meta.bbl), s, opts, prog)
    timings = job.timings
    timings.update(setup_s=time.perf_counter() - t_start, shift_s=0.0)
    needs_sample = _needs_sample(predictor)
    shift_pool = ThreadPoolExecutor(1, thread_name_prefix="csakd-shift")
    z_stack = contextlib.ExitStack()
    try:
        with job, z_stack:
            t0 = time.perf_counter()
            messages += job.plan.messages
            if m20 is not None:
                import rasterio

                tmp = z_stack.enter_context(tempfile.TemporaryDirectory(prefix=".csakd-msi20-",
                                                                        dir=out_path.parent))
                z_path = os.path.join(tmp, "msi20_sharpened.tif")
                messages += sharpen_msi20(grid, m20, z_path, dataclasses.replace(
                    opts, tile=SHARPEN_TILE, overlap=SHARPEN_OVERLAP, group_width=GROUP_WIDTH, batch=1, part=None),
                    prog, (0.01, 0.2))
                z_ds = z_stack.enter_context(rasterio.open(z_path))
                z_meta = read_meta(z_path, MSI20_ROLE)

            def read_sample(n_lr: int) -> tuple[np.ndarray, np.ndarray]:
                with grid:
                    lr_a, msi_a = grid.read_sample(n_lr)
                if m20 is None:
                    return lr_a, msi_a
                rr, cc, hh_, ww_ = grid.central_window_lr(n_lr)
                z = raster_layer(z_ds, z_meta, range(z_meta.count), s).read(
                    rr * s + m20.off_row, cc * s + m20.off_col, hh_ * s, ww_ * s)
                return lr_a, np.concatenate([msi_a, z], axis=0)

            # ---- scene sample (bounded): shift estimate, radiometry check, per-scene fit
            prog.report(0.01, "estimating the HSI shift")
            sample_lr = FIT_SAMPLE_LR if needs_sample else SHIFT_SAMPLE_LR
            lr_s, msi_s = read_sample(sample_lr)
            r, c, h, w = grid.central_window_lr(sample_lr)
            rs, cs, hh, ww = grid.central_window_lr(SHIFT_SAMPLE_LR)
            lr_sh = lr_s[:, rs - r:rs - r + hh, cs - c:cs - c + ww]
            msi_sh = msi_s[:, (rs - r) * s:(rs - r + hh) * s, (cs - c) * s:(cs - c + ww) * s]
            timings["sample_s"] = time.perf_counter() - t0

            def shift_job(lr_a: np.ndarray, msi_a: np.ndarray):
                ta = time.perf_counter()
                try:
                    return estimate_shift_arrays(lr_a, msi_a, s)
                finally:
                    timings["shift_s"] = time.perf_counter() - ta

            corrected = False
            shift_future = None
            est = None
            if shift_correct:
                est = shift_job(lr_sh, msi_sh)
                messages.append(est.message)
                if est.method == "none":
                    messages.append("Shift correction skipped: no shift estimate.")
                elif max(abs(est.dx), abs(est.dy)) < MIN_CORRECTED_SHIFT_LR:
                    messages.append(f"Shift correction skipped: the estimate is below {MIN_CORRECTED_SHIFT_LR} "
                                    "LR px.")
                else:
                    grid = grid.with_shift(est.dx, est.dy)
                    messages.append(grid.messages[-1])
                    corrected = True
                    if needs_sample:  # fit on the corrected HSI
                        lr_s, msi_s = read_sample(sample_lr)
            else:  # only reported: estimated while the tiles run
                shift_future = shift_pool.submit(shift_job, lr_sh, msi_sh)
            del lr_sh, msi_sh
            prog.check_cancel()
            prog.report(0.02, "fitting per-scene coefficients")
            t0 = time.perf_counter()
            require_reflectance(predictor, {"hyperspectral (HSI) input": (hsi, _subsample(lr_s, RADIOMETRY_SAMPLE)),
                                            "multispectral (MSI) input": (msi, _subsample(msi_s, RADIOMETRY_SAMPLE))})
            note = radiometry_check(_subsample(lr_s, RADIOMETRY_SAMPLE), _subsample(msi_s, RADIOMETRY_SAMPLE))
            if note:
                messages.append(note)
            if needs_sample:
                predictor.prepare(lr_s, msi_s)
            del lr_s, msi_s
            timings["prepare_s"] = time.perf_counter() - t0
            messages += list(getattr(predictor, "messages", []))
            prog.check_cancel()

            with grid:
                layers = grid_layers(grid)
                if m20 is not None:
                    layers[1] = stacked_msi_layer(grid, m20, z_ds, z_meta)
                job.run(layers, predictor, (0.2 if m20 is not None else 0.05, 0.99),
                        f"fusing {job.plan.n_tiles} tiles")
            if shift_future is not None:
                t0 = time.perf_counter()
                est = shift_future.result()
                timings["shift_wait_s"] = time.perf_counter() - t0
                messages.append(est.message)
            job.tags["CSAKD_FUSION"] = json.dumps({
                "hsi": os.path.basename(str(hsi)), "msi": os.path.basename(str(msi)), "model": predictor.name,
                **({"msi20": os.path.basename(str(msi20))} if msi20 is not None else {}),
                "scale": s, "shift_lr_px": [round(est.dx, 4), round(est.dy, 4)], "shift_corrected": corrected,
                "device": predictor.device_used, "fused_bands": len(good), "tile": job.plan.tile,
                "overlap": job.plan.overlap, **({"observation": predictor.report} if getattr(predictor, "report", None)
                                                else {})})
            job.tags.update(tags or {})
    finally:
        shift_pool.shutdown(wait=True, cancel_futures=True)
    return job.finish(FuseResult, predictor, t_start, messages, shift_x=est.dx, shift_y=est.dy,
                      shift_corrected=corrected, shift_confidence=est.confidence,
                      observation=dict(getattr(predictor, "report", None) or {}))


__all__ = ["FuseResult", "Msi20Plan", "Msi20Sharpener", "fuse", "grid_layers", "plan_msi20", "radiometry_check", "sharpen_msi20",
           "stacked_msi_layer"]

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
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csakd_qgis.fusion.methods import DEFAULT_METHOD
from csakd_qgis.fusion.msi20 import FIT_SAMPLE_LR, Msi20Stack
from csakd_qgis.fusion.predictors import make_predictor
from csakd_qgis.fusion.reflectance import require_reflectance
from csakd_qgis.raster.coreg import (
    MIN_CORRECTED_SHIFT_LR,
    SHIFT_SAMPLE_LR,
    FusionGrid,
    ShiftEstimate,
    estimate_shift_arrays,
    plan_grid,
)
from csakd_qgis.raster.io import check_output_path
from csakd_qgis.raster.job import OutputSpec, Progress, RasterJobResult, TiledRasterJob, check_options

RADIOMETRY_SAMPLE = 1 << 20  # values per input used by radiometry_check


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
        sc = self.observation.get("scene")
        scene = (f", scene: alpha {sc.get('alpha', 0.0):.2f}, hold-out gain {sc.get('holdout_gain_db', 0.0):+.2f} dB, "
                 f"learned in {sc.get('seconds', 0.0):.1f} s" if sc else "")
        return (f"{super().summary()}, HSI shift dx={self.shift_x:+.3f} dy={self.shift_y:+.3f} LR px"
                f"{' (corrected)' if self.shift_corrected else ''}{psf}{scene}")


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


def _sample(grid: FusionGrid, m20: Msi20Stack | None, n_lr: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR-HSI, HR-MSI) of the central window of at most ``n_lr`` LR px, the sharpened 20 m bands stacked."""
    with grid:
        lr, msi = grid.read_sample(n_lr)
    return lr, (msi if m20 is None else m20.with_sample(grid, n_lr, lr, msi))


def _shift_window(grid: FusionGrid, lr: np.ndarray, msi: np.ndarray, n_lr: int) -> tuple[np.ndarray, np.ndarray]:
    """The central ``SHIFT_SAMPLE_LR`` window of a sample of ``n_lr`` LR px (views)."""
    s = grid.scale
    r, c, _, _ = grid.central_window_lr(n_lr)
    rs, cs, hh, ww = grid.central_window_lr(SHIFT_SAMPLE_LR)
    return (lr[:, rs - r:rs - r + hh, cs - c:cs - c + ww],
            msi[:, (rs - r) * s:(rs - r + hh) * s, (cs - c) * s:(cs - c + ww) * s])


def _correct_shift(grid: FusionGrid, est: ShiftEstimate) -> tuple[FusionGrid, bool, list[str]]:
    """The grid with the estimated HSI shift removed (when there is one worth removing), and the log lines."""
    if est.method == "none":
        return grid, False, [est.message, "Shift correction skipped: no shift estimate."]
    if max(abs(est.dx), abs(est.dy)) < MIN_CORRECTED_SHIFT_LR:
        return grid, False, [est.message, f"Shift correction skipped: the estimate is below "
                                          f"{MIN_CORRECTED_SHIFT_LR} LR px."]
    grid = grid.with_shift(est.dx, est.dy)
    return grid, True, [est.message, grid.messages[-1]]


def fuse(hsi: str | os.PathLike, msi: str | os.PathLike, out: str | os.PathLike, model: Any = DEFAULT_METHOD, *,
         device: str = "auto", tile: int = 256, overlap: int = 32, batch: int = 4, shift_correct: bool = False,
         creation_options: dict[str, str] | None = None,
         progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
         threads: int | None = None, precision: str = "fp32", edge: str = "shift",
         group_width: int | None = None, runtime: str = "auto",
         part: tuple[int, int] | None = None, model_options: dict[str, Any] | None = None,
         msi20: str | os.PathLike | None = None, tags: dict[str, str] | None = None,
         dtype: str = "float32") -> FuseResult:
    """Fuse ``hsi`` (LR hyperspectral) and ``msi`` (HR multispectral) into ``out`` (GeoTIFF on the MSI grid).

    ``model``: a fusion method of :mod:`fusion.methods` (default ``DEFAULT_METHOD``), a zoo model name, a
    .safetensors/.json path or a :class:`fusion.predictors.Predictor`. ``tile``/``overlap`` in HR (MSI) pixels,
    rounded up to multiples of the scale. ``progress(fraction, message)`` is called per batch; ``cancel()`` is
    checked per batch (raises :class:`errors.CancelledError`, nothing is left at ``out``). ``threads`` sets
    torch's CPU threads. ``group_width``: output column-group width in HR px (None: ``GROUP_WIDTH``, 0: none).
    ``part`` = (k, n): write only the k-th of n column-group ranges (a block file of :mod:`distributed.blocks`).
    ``model_options``: for methods with an observation model: ``psf`` (auto | wald | gaussian:SIGMA) and
    ``srf`` (auto | auto:SENSOR | SENSOR | SRF file); the HSI FWHM and MSI wavelengths come from the rasters.
    ``msi20``: an MSI raster at an integer multiple (2) of the MSI pixel size (Sentinel-2's 20 m bands), whose
    bands are sharpened to the MSI grid and fused as more MSI bands (:mod:`fusion.msi20`; fusion methods only).
    ``tags``: more dataset tags of the output (e.g. what a batch made it from), written when it is complete.
    ``dtype``: float32, or int16/uint16 (reflectance x 10000 with a scale of 1e-4; :mod:`raster.io`).
    """
    t_start = time.perf_counter()
    inputs = [str(hsi), str(msi)] + ([str(msi20)] if msi20 is not None else [])
    out_path = check_output_path(out, inputs, role="fused output")
    opts = check_options(tile, overlap, batch, threads, edge, group_width, creation_options, part=part, dtype=dtype)
    prog = Progress(progress, cancel)
    prog.report(0.0, "co-registering")
    grid = plan_grid(hsi, msi)
    messages = list(grid.messages)
    hsi_meta, good, s = grid.hsi, grid.hsi_bands, grid.scale
    msi_wl = list(grid.msi.wavelengths or []) or None
    options = dict(model_options or {})
    m20 = Msi20Stack(grid, msi20, model, msi_wl, options) if msi20 is not None else None
    if m20 is not None:
        msi_wl, options = m20.msi_wavelengths, m20.options
    predictor = make_predictor(model, scale=s, hsi_bands=len(good), msi_bands=m20.n_bands if m20 else len(grid.msi_bands),
                               hsi_wavelengths=[hsi_meta.wavelengths[i] for i in good], device=device,
                               precision=precision, threads=opts.threads, runtime=runtime,
                               hr_bands=len(grid.msi_bands) if m20 else 0,
                               progress=lambda f, msg: prog.report(0.02 + 0.03 * f, msg), stop=prog.cancel,
                               model_options={"fwhm": [hsi_meta.fwhm[i] for i in good],
                                              "msi_wavelengths": msi_wl, **options})
    opts = dataclasses.replace(opts, tile=max(opts.tile, int(predictor.min_tile)),
                               batch=min(opts.batch, int(predictor.max_batch or opts.batch)))
    prog.check_cancel()
    job = TiledRasterJob(out_path, OutputSpec(grid.hr_width, grid.hr_height, grid.crs, grid.hr_transform,
                                              hsi_meta.count, good, hsi_meta.wavelengths, hsi_meta.fwhm,
                                              hsi_meta.bbl), s, opts, prog)
    timings = job.timings
    timings.update(setup_s=time.perf_counter() - t_start, shift_s=0.0)
    shift_pool = ThreadPoolExecutor(1, thread_name_prefix="csakd-shift")

    def estimate(lr_a: np.ndarray, msi_a: np.ndarray) -> ShiftEstimate:
        ta = time.perf_counter()
        try:
            return estimate_shift_arrays(lr_a, msi_a, s)
        finally:
            timings["shift_s"] = time.perf_counter() - ta

    try:
        with job, (m20 or contextlib.nullcontext()):
            t0 = time.perf_counter()
            messages += job.plan.messages
            if m20 is not None:
                messages += m20.sharpen(out_path.parent, opts, prog, (0.01, 0.2))
            # ---- scene sample (bounded): shift estimate, radiometry check, per-scene fit
            prog.report(0.01, "estimating the HSI shift")
            n_lr = FIT_SAMPLE_LR if predictor.needs_sample else SHIFT_SAMPLE_LR
            lr_s, msi_s = _sample(grid, m20, n_lr)
            timings["sample_s"] = time.perf_counter() - t0
            corrected, shift_future = False, None
            if shift_correct:
                est = estimate(*_shift_window(grid, lr_s, msi_s, n_lr))
                grid, corrected, lines = _correct_shift(grid, est)
                messages += lines
                if corrected and predictor.needs_sample:  # fit on the corrected HSI
                    lr_s, msi_s = _sample(grid, m20, n_lr)
            else:  # only reported: estimated while the tiles run
                shift_future = shift_pool.submit(estimate, *_shift_window(grid, lr_s, msi_s, n_lr))
            prog.check_cancel()
            prog.report(0.02, "fitting per-scene coefficients")
            t0 = time.perf_counter()
            require_reflectance(predictor, {"hyperspectral (HSI) input": (hsi, _subsample(lr_s, RADIOMETRY_SAMPLE)),
                                            "multispectral (MSI) input": (msi, _subsample(msi_s, RADIOMETRY_SAMPLE))})
            note = radiometry_check(_subsample(lr_s, RADIOMETRY_SAMPLE), _subsample(msi_s, RADIOMETRY_SAMPLE))
            messages += [note] if note else []
            if predictor.needs_sample:
                predictor.prepare(lr_s, msi_s)
            del lr_s, msi_s
            timings["prepare_s"] = time.perf_counter() - t0
            messages += list(predictor.messages)
            prog.check_cancel()
            with grid:
                layers = grid.layers()
                if m20 is not None:
                    layers[1] = m20.layer(grid)
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
                "overlap": job.plan.overlap, **({"observation": predictor.report} if predictor.report else {})})
            job.tags.update(tags or {})
    finally:
        shift_pool.shutdown(wait=True, cancel_futures=True)
    return job.finish(FuseResult, predictor, t_start, messages, shift_x=est.dx, shift_y=est.dy,
                      shift_corrected=corrected, shift_confidence=est.confidence, observation=dict(predictor.report))


__all__ = ["FuseResult", "fuse", "radiometry_check"]

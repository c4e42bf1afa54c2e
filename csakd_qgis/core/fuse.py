"""The main job: fuse a LR-HSI and a HR-MSI into a HR-HSI GeoTIFF on the MSI grid (DESIGN "Data flow").

Steps: validate the output path (before any compute) -> co-register (:func:`coreg.plan_grid`: common grid,
scale, overlap) -> build the predictor (:func:`infer.make_predictor`; learned models are checked against the
data) -> estimate the HSI/MSI shift (always; corrected only with ``shift_correct``) -> fit per-scene
coefficients on a bounded central sample -> tiled inference (:mod:`tiling`) -> blended rows written to a
temporary GeoTIFF that is renamed into place at the end (removed on error or cancel).

Output: the HR grid (the MSI grid cropped to the overlap), float32 reflectance, nodata -9999 where the inputs
are nodata, the HSI's band count and order with its wavelength/FWHM/bbl metadata. Bad bands (bbl = 0) are
not fused but kept as all-nodata bands, so band indices stay those of the input HSI.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CancelledError, CsakdError

log = logging.getLogger("csakd_qgis.fuse")

FIT_SAMPLE_LR = 512  # classical coefficients are fitted on a central window of at most this many LR px a side


@dataclass
class FuseResult:
    """What :func:`fuse` did."""

    out_path: str
    device_used: str
    n_tiles: int
    elapsed_s: float
    shift_x: float
    shift_y: float
    scale: int
    bands: int
    width: int = 0
    height: int = 0
    model: str = ""
    shift_corrected: bool = False
    shift_confidence: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.out_path}: {self.width} x {self.height} px, {self.bands} bands, scale {self.scale}, "
                f"model {self.model}, device {self.device_used}, {self.n_tiles} tiles, {self.elapsed_s:.1f} s, "
                f"HSI shift dx={self.shift_x:+.3f} dy={self.shift_y:+.3f} LR px"
                f"{' (corrected)' if self.shift_corrected else ''}")


def _check_int(name: str, value: Any, minimum: int) -> int:
    try:
        v = int(value)
        exact = float(value) == v
    except (TypeError, ValueError):
        raise CsakdError(f"{name} must be an integer (got {value!r}).") from None
    if not exact:
        raise CsakdError(f"{name} must be an integer (got {value!r}).")
    if v < minimum:
        raise CsakdError(f"{name} must be at least {minimum} (got {v}).")
    return v


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


def fuse(hsi: str | os.PathLike, msi: str | os.PathLike, out: str | os.PathLike, model: Any = "glp",
         device: str = "auto", tile: int = 256, overlap: int = 32, batch: int = 4, shift_correct: bool = False,
         creation_options: dict[str, str] | None = None,
         progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
         threads: int | None = None, precision: str = "fp32", edge: str = "shift") -> FuseResult:
    """Fuse ``hsi`` (LR hyperspectral) and ``msi`` (HR multispectral) into ``out`` (GeoTIFF on the MSI grid).

    ``model``: a classical method ("bicubic", "gsa", "glp"), a zoo model name, a .safetensors/.json path or a
    :class:`infer.Predictor`. ``tile``/``overlap`` in HR (MSI) pixels, rounded up to multiples of the scale.
    ``progress(fraction, message)`` is called per batch; ``cancel()`` is checked per batch (raises
    :class:`errors.CancelledError`, nothing is left at ``out``). ``threads`` sets torch's CPU threads.
    """
    from .coreg import MIN_CORRECTED_SHIFT_LR, estimate_shift, plan_grid
    from .infer import make_predictor
    from .io import GeoTiffWriter, check_output_path
    from .tiling import BlendWriter, pad_reflect, plan_tiles, run_tiles

    t_start = time.perf_counter()
    out_path = check_output_path(out, [str(hsi), str(msi)], role="fused output")
    tile = _check_int("tile", tile, 1)
    overlap = _check_int("overlap", overlap, 0)
    batch = _check_int("batch", batch, 1)
    if threads is not None:
        threads = _check_int("threads", threads, 1)

    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(float(min(max(frac, 0.0), 1.0)), msg)

    def check_cancel() -> None:
        if cancel is not None and cancel():
            raise CancelledError()

    report(0.0, "co-registering")
    grid = plan_grid(hsi, msi)
    messages = list(grid.messages)
    s = grid.scale
    hsi_meta = grid.hsi
    good = grid.hsi_bands
    predictor = make_predictor(model, scale=s, hsi_bands=len(good), msi_bands=len(grid.msi_bands),
                               hsi_wavelengths=[hsi_meta.wavelengths[i] for i in good], device=device,
                               precision=precision, threads=threads)
    plan = plan_tiles(grid.hr_height, grid.hr_width, s, tile, overlap, edge=edge)
    messages += plan.messages
    check_cancel()

    timings = {"setup_s": time.perf_counter() - t_start, "read_s": 0.0, "predict_s": 0.0, "blend_write_s": 0.0}
    t0 = time.perf_counter()
    est = estimate_shift(grid)
    timings["shift_s"] = time.perf_counter() - t0
    messages.append(est.message)
    corrected = False
    if shift_correct:
        if est.method == "none":
            messages.append("Shift correction skipped: no shift estimate.")
        elif max(abs(est.dx), abs(est.dy)) < MIN_CORRECTED_SHIFT_LR:
            messages.append(f"Shift correction skipped: the estimate is below {MIN_CORRECTED_SHIFT_LR} LR px.")
        else:
            grid = grid.with_shift(est.dx, est.dy)
            messages.append(grid.messages[-1])
            corrected = True
    check_cancel()
    report(0.02, "fitting per-scene coefficients")
    t0 = time.perf_counter()
    with grid:
        lr_s, msi_s = grid.read_sample(FIT_SAMPLE_LR)
        note = radiometry_check(lr_s, msi_s)
        if note:
            messages.append(note)
        predictor.prepare(lr_s, msi_s)
        del lr_s, msi_s
        timings["prepare_s"] = time.perf_counter() - t0
        messages += list(getattr(predictor, "messages", []))
        check_cancel()

        halo = int(getattr(predictor, "halo_lr", 0))
        hs = halo * s
        n_out = hsi_meta.count
        good_idx = np.asarray(good)

        def task(tiles):
            ta = time.perf_counter()
            lrs, msis = [], []
            for t in tiles:
                lr, m = grid.read_tile(t.row, t.col, t.height, t.width, halo_lr=halo)
                if t.pad_bottom or t.pad_right:
                    lr = pad_reflect(lr, t.pad_bottom // s, t.pad_right // s)
                    m = pad_reflect(m, t.pad_bottom, t.pad_right)
                lrs.append(lr)
                msis.append(m)
            tb = time.perf_counter()
            pred = predictor.predict(np.stack(lrs), np.stack(msis))
            tc = time.perf_counter()
            timings["read_s"] += tb - ta
            timings["predict_s"] += tc - tb
            return [p[:, hs:hs + t.height, hs:hs + t.width] for p, t in zip(pred, tiles, strict=True)]

        tags = {"CSAKD_FUSION": json.dumps({
            "hsi": os.path.basename(str(hsi)), "msi": os.path.basename(str(msi)), "model": predictor.name,
            "scale": s, "shift_lr_px": [round(est.dx, 4), round(est.dy, 4)], "shift_corrected": corrected,
            "device": predictor.device_used, "fused_bands": len(good), "tile": plan.tile,
            "overlap": plan.overlap})}
        report(0.05, f"fusing {plan.n_tiles} tiles")
        with GeoTiffWriter(out_path, grid.hr_width, grid.hr_height, n_out, grid.crs, grid.hr_transform,
                           hsi_meta.wavelengths, hsi_meta.fwhm, creation_options=creation_options, tags=tags,
                           bbl=hsi_meta.bbl) as wr:
            from rasterio.windows import Window

            good_bands_1 = [int(i) + 1 for i in good_idx]
            bad_bands_1 = [i + 1 for i in range(n_out) if i not in set(good)]

            def sink(block: np.ndarray, row0: int) -> None:
                tw = time.perf_counter()
                rows = block.shape[1]
                win = Window(0, row0, grid.hr_width, rows)
                if bad_bands_1:  # bad bands: nodata rows, written band by band (no full-band copy)
                    wr.write(block, window=win, indexes=good_bands_1)
                    empty = np.full((1, rows, grid.hr_width), np.nan, np.float32)
                    for b in bad_bands_1:
                        wr.write(empty, window=win, indexes=[b])
                else:
                    wr.write(block, window=win)
                timings["blend_write_s"] += time.perf_counter() - tw

            blender = BlendWriter(plan, len(good), sink, block_rows=wr.block_shape[0], batch=batch)
            tb = time.perf_counter()
            run_tiles(plan, task, blender, batch=batch, progress=progress, cancel=cancel,
                      progress_range=(0.05, 0.99))
            timings["tiles_s"] = time.perf_counter() - tb
            timings["buffer_mb"] = blender.peak_buffer_bytes / 2 ** 20
            t_close = time.perf_counter()
        timings["finalize_s"] = time.perf_counter() - t_close  # GeoTIFF flush (compression) + rename
    timings["network_s"] = float(getattr(predictor, "network_seconds", 0.0))
    elapsed = time.perf_counter() - t_start
    if len(good) != n_out:
        messages.append(f"{n_out - len(good)} bad band(s) (bbl = 0) kept as nodata so band numbers match the HSI.")
    result = FuseResult(out_path=str(out_path), device_used=predictor.device_used, n_tiles=plan.n_tiles,
                        elapsed_s=elapsed, shift_x=est.dx, shift_y=est.dy, scale=s, bands=n_out,
                        width=grid.hr_width, height=grid.hr_height, model=predictor.name,
                        shift_corrected=corrected,
                        shift_confidence=est.confidence, timings=timings, messages=messages)
    messages.append(result.summary())
    report(1.0, "done")
    log.debug(result.summary())
    return result


__all__ = ["FuseResult", "fuse", "radiometry_check"]

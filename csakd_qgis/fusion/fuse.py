"""The main job: fuse a LR-HSI and a HR-MSI into a HR-HSI GeoTIFF on the MSI grid.

Steps: validate the output path (before any compute) -> co-register (:func:`coreg.plan_grid`: common grid,
scale, overlap) -> build the predictor (:func:`fusion.predictors.make_predictor`; learned models are checked against the
data) -> estimate the HSI/MSI shift (always, on a bounded central sample; corrected only with
``shift_correct``, otherwise estimated in a background thread while the tiles run) -> fit per-scene
coefficients on a bounded central sample (only predictors that need it) -> tiled inference (:mod:`tiling`)
-> blended rows written to a temporary GeoTIFF that is renamed into place at the end (removed on error or
cancel).

Memory is independent of the raster size: the output columns are processed in column groups of about
``GROUP_WIDTH`` px (:mod:`tiling`, cuts on output-block boundaries), the blend buffer holds one group's
strip of rows, GDAL's block cache is capped at ``GDAL_CACHE_MB`` while fusing (its default, 5 % of the RAM,
would keep up to that much of the output in memory), the samples are bounded and nothing is kept per tile.

Pipeline (time outside the network): the next batch of windows is read in a background thread while the
network runs on the current one (:class:`_WindowReader`: each input is read in row chunks over the column
group, cut on the file's block rows, so every compressed input block is decoded about once instead of once
per window that touches it; context beyond the rasters is mirrored, see ``OUTSIDE``); the network's output
is handed through a bounded queue to one writer thread that blends it and writes finished block rows (GDAL
compresses them in its own threads).
torch, numpy and GDAL release the GIL, so reading, blending, compression and the network overlap.
``FuseResult.timings``: ``network_s`` (inside the network's forward), ``read_s`` (reader thread busy),
``blend_write_s`` (writer thread busy: blending + GeoTIFF writes, of which ``write_s`` in GDAL),
``wait_read_s`` / ``wait_write_s`` (the main thread waiting for them), ``setup_s``, ``sample_s``,
``shift_s`` (estimate, possibly overlapped), ``prepare_s``, ``tiles_s``, ``finalize_s`` (GeoTIFF close:
remaining compression, metadata, rename), ``buffer_mb``.

Output: the HR grid (the MSI grid cropped to the overlap), float32 reflectance, nodata -9999 where the inputs
are nodata, the HSI's band count and order with its wavelength/FWHM/bbl metadata. Bad bands (bbl = 0) are
not fused but kept as all-nodata bands (never written: GDAL fills their blocks with nodata), so band
indices stay those of the input HSI.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.fusion.predictors import make_predictor
from csakd_qgis.raster.coreg import MIN_CORRECTED_SHIFT_LR, SHIFT_SAMPLE_LR, estimate_shift_arrays, plan_grid
from csakd_qgis.raster.io import GeoTiffWriter, check_output_path
from csakd_qgis.raster.tiling import BlendWriter, plan_tiles, run_tiles

log = logging.getLogger("csakd_qgis.fuse")

FIT_SAMPLE_LR = 512  # classical coefficients are fitted on a central window of at most this many LR px a side
GROUP_WIDTH = 1024  # HR px: output column-group width (blend buffer independent of the raster width)
# GDAL block cache while fusing (reads + writes; restored afterwards). Inputs are read in row chunks that do
# not depend on it (_RowChunks); for the output it bounds the dirty blocks left to compress when the
# GeoTIFF is closed (serial time at the end: 64 MB instead of 128 MB halves it; smaller gains nothing).
GDAL_CACHE_MB = 64
QUEUE_BATCHES = 1  # batches waiting for the writer thread (each ~ batch x bands x (tile + 2 halo)^2 x 4 B)
RADIOMETRY_SAMPLE = 1 << 20  # values per input used by radiometry_check
# Context beyond the rasters (a window's halo at the raster edge, "pad" padding) is read mirrored about the
# edge (io.read_window_raw "symmetric"): the mirrored HR-MSI block-averages to the mirrored LR-HSI, so the
# pair stays consistent there, and it is the border convention of the in-memory path (degrade.wald_degrade
# blurs with scipy "reflect" = the same mirror). Edge replication ("edge", used before) makes the replicated
# HR edge row disagree with the replicated LR edge pixel: GLP injected spurious detail along the raster
# edges (on the 32 x 64 px EnMAP test mosaic at scale 4: 37.43 dB instead of 38.70 dB in memory).
OUTSIDE = "symmetric"


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


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    """A strided spatial subsample of a (C, h, w) array with at most about n values (a view)."""
    step = max(1, int(np.ceil(np.sqrt(x.size / max(1, n)))))
    return x[..., ::step, ::step]


def _needs_sample(predictor: Any) -> bool:
    """Whether ``predictor.prepare`` uses the scene sample (unknown predictors: yes)."""
    return bool(getattr(predictor, "needs_sample", True))


class _RowChunks:
    """Rows of one input over a fixed column range, read in chunks cut on the file's block rows.

    ``get(row, col, h, w)`` returns a view of grid rows [row, row + h) and columns [col, col + w) (inside
    the chunk's column range). Requests must come with non-decreasing ``row`` (a column group's windows in
    plan order); a chunk ends on a block-row boundary of the file, so each compressed block is decoded
    about once per column group whatever GDAL's block cache holds (the output's dirty blocks share that
    cache and would otherwise evict the input blocks between two windows: every window re-decoded them).
    """

    def __init__(self, read: Callable[[int, int, int, int], np.ndarray], col0: int, width: int,
                 block_rows: int, phase: int, max_rows: int, n_rows: int) -> None:
        self.read, self.col0, self.width, self.n_rows = read, int(col0), int(width), int(n_rows)
        self.block_rows, self.phase, self.max_rows = max(1, int(block_rows)), int(phase), int(max_rows)
        self.r0 = self.r1 = 0
        self.data: np.ndarray | None = None
        self.reads = 0

    def _end(self, row: int, need_end: int) -> int:
        """Chunk end: the first block-row boundary at or after need_end (need_end if that is too far)."""
        b, ph = self.block_rows, self.phase
        end = min(-(-(need_end + ph) // b) * b - ph, max(need_end, self.n_rows))  # not past the raster
        return end if end - row <= self.max_rows else need_end

    def get(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        if self.data is None or row < self.r0 or row + h > self.r1:
            end = self._end(row, row + h)
            if self.data is not None and self.r0 <= row < self.r1:  # keep the rows still needed, read the rest
                new = self.read(self.r1, self.col0, end - self.r1, self.width)
                self.data = np.concatenate([self.data[:, row - self.r0:], new], axis=1)
            else:
                self.data = self.read(row, self.col0, end - row, self.width)
            self.r0, self.r1 = row, end
            self.reads += 1
        return self.data[:, row - self.r0:row - self.r0 + h, col - self.col0:col - self.col0 + w]


class _WindowReader:
    """Reads the (LR-HSI, HR-MSI) input of plan windows (with the predictor's halo) for :func:`fuse`.

    Per column group, each input is read in row chunks over the group's columns (:class:`_RowChunks`):
    one GDAL call per chunk instead of one per window, and every input block decoded about once. A group
    whose chunks would exceed ``max_chunk_mb`` (very wide single-group plans) is read window by window.
    Context beyond the rasters is read with ``outside`` (:data:`OUTSIDE`).
    """

    def __init__(self, grid: Any, plan: Any, halo_lr: int, outside: str, max_chunk_mb: float = 96.0) -> None:
        self.grid, self.plan, self.h, self.outside = grid, plan, int(halo_lr), outside
        self.s = int(grid.scale)
        self.max_bytes = float(max_chunk_mb) * 2 ** 20
        (self.lr_block, self.lr_phase), (self.hr_block, self.hr_phase) = grid.block_rows()
        self.n_lr = len(grid.hsi_bands)
        self.n_hr = len(grid.msi_bands)
        self._group = -1
        self._lr: _RowChunks | None = None
        self._hr: _RowChunks | None = None

    def _start_group(self, g: int) -> None:
        s, h = self.s, self.h
        tiles = [t for t in self.plan.tiles if t.group == g]
        c0 = min(t.col for t in tiles) // s - h
        c1 = max(t.col + t.width + t.pad_right for t in tiles) // s + h
        win_lr = self.plan.tile_shape[0] // s + 2 * h
        lr_w, hr_w = c1 - c0, (c1 - c0) * s
        lr_rows = min(win_lr + self.lr_block, max(win_lr, int(self.max_bytes // (4 * self.n_lr * lr_w))))
        hr_rows = min(win_lr * s + self.hr_block, max(win_lr * s, int(self.max_bytes // (4 * self.n_hr * hr_w))))
        self._group = g
        if 4 * (self.n_lr * win_lr * lr_w + self.n_hr * win_lr * s * hr_w) > 2 * self.max_bytes:
            self._lr = self._hr = None  # too wide: window by window
            return
        grid, out = self.grid, self.outside
        self._lr = _RowChunks(lambda r, c, hh, ww: grid.read_lr(r, c, hh, ww, outside=out), c0, lr_w,
                              self.lr_block, self.lr_phase, lr_rows, grid.lr_height)
        self._hr = _RowChunks(lambda r, c, hh, ww: grid.read_hr(r, c, hh, ww, outside=out), c0 * s, hr_w,
                              self.hr_block, self.hr_phase, hr_rows, grid.hr_height)

    def read(self, t: Any) -> tuple[np.ndarray, np.ndarray]:
        """(LR (C_h, h_lr, w_lr), MSI (C_m, h, w)) of window ``t`` padded to the tile shape, plus the halo."""
        s, h = self.s, self.h
        height, width = t.height + t.pad_bottom, t.width + t.pad_right
        if t.group != self._group:
            self._start_group(t.group)
        if self._lr is None or self._hr is None:
            return self.grid.read_tile(t.row, t.col, height, width, halo_lr=h, outside=self.outside)
        r, c = t.row // s - h, t.col // s - h
        hl, wl = height // s + 2 * h, width // s + 2 * h
        return self._lr.get(r, c, hl, wl), self._hr.get(r * s, c * s, hl * s, wl * s)


def fuse(hsi: str | os.PathLike, msi: str | os.PathLike, out: str | os.PathLike, model: Any = "glp",
         device: str = "auto", tile: int = 256, overlap: int = 32, batch: int = 4, shift_correct: bool = False,
         creation_options: dict[str, str] | None = None,
         progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
         threads: int | None = None, precision: str = "fp32", edge: str = "shift",
         group_width: int | None = None, runtime: str = "auto") -> FuseResult:
    """Fuse ``hsi`` (LR hyperspectral) and ``msi`` (HR multispectral) into ``out`` (GeoTIFF on the MSI grid).

    ``model``: a classical method ("bicubic", "gsa", "glp"), a zoo model name, a .safetensors/.json path or a
    :class:`fusion.predictors.Predictor`. ``tile``/``overlap`` in HR (MSI) pixels, rounded up to multiples of the scale.
    ``progress(fraction, message)`` is called per batch; ``cancel()`` is checked per batch (raises
    :class:`errors.CancelledError`, nothing is left at ``out``). ``threads`` sets torch's CPU threads.
    ``group_width``: output column-group width in HR px (None: ``GROUP_WIDTH``, 0: no column groups).
    """
    import rasterio
    from rasterio.windows import Window


    t_start = time.perf_counter()
    out_path = check_output_path(out, [str(hsi), str(msi)], role="fused output")
    tile = _check_int("tile", tile, 1)
    overlap = _check_int("overlap", overlap, 0)
    batch = _check_int("batch", batch, 1)
    if threads is not None:
        threads = _check_int("threads", threads, 1)
    gw = GROUP_WIDTH if group_width is None else _check_int("group_width", group_width, 0)

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
                               precision=precision, threads=threads, runtime=runtime)
    check_cancel()
    timings: dict[str, float] = {"setup_s": time.perf_counter() - t_start, "read_s": 0.0, "predict_s": 0.0,
                                 "blend_write_s": 0.0, "write_s": 0.0, "shift_s": 0.0, "read_cpu_s": 0.0}
    n_out = hsi_meta.count
    good_bands_1 = [int(i) + 1 for i in good]
    all_good = len(good) == n_out
    halo = int(getattr(predictor, "halo_lr", 0))
    hs = halo * s
    needs_sample = _needs_sample(predictor)
    shift_pool = ThreadPoolExecutor(1, thread_name_prefix="csakd-shift")
    try:
        with rasterio.Env(GDAL_CACHEMAX=int(GDAL_CACHE_MB) * 2 ** 20), \
                GeoTiffWriter(out_path, grid.hr_width, grid.hr_height, n_out, grid.crs, grid.hr_transform,
                              hsi_meta.wavelengths, hsi_meta.fwhm, creation_options=creation_options,
                              bbl=hsi_meta.bbl) as wr:
            block_rows, block_cols = wr.block_shape
            t0 = time.perf_counter()
            plan = plan_tiles(grid.hr_height, grid.hr_width, s, tile, overlap, edge=edge,
                              group_width=max(gw, 2 * tile) if gw else None, group_align=block_cols)
            messages += plan.messages

            # ---- scene sample (bounded): shift estimate, radiometry check, per-scene fit
            report(0.01, "estimating the HSI shift")
            sample_lr = FIT_SAMPLE_LR if needs_sample else SHIFT_SAMPLE_LR
            with grid:
                lr_s, msi_s = grid.read_sample(sample_lr)
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
                        with grid:
                            lr_s, msi_s = grid.read_sample(sample_lr)
            else:  # only reported: estimated while the tiles run
                shift_future = shift_pool.submit(shift_job, lr_sh, msi_sh)
            del lr_sh, msi_sh
            check_cancel()
            report(0.02, "fitting per-scene coefficients")
            t0 = time.perf_counter()
            note = radiometry_check(_subsample(lr_s, RADIOMETRY_SAMPLE), _subsample(msi_s, RADIOMETRY_SAMPLE))
            if note:
                messages.append(note)
            if needs_sample:
                predictor.prepare(lr_s, msi_s)
            del lr_s, msi_s
            timings["prepare_s"] = time.perf_counter() - t0
            messages += list(getattr(predictor, "messages", []))
            check_cancel()

            with grid:
                # halo and edge-mode padding ("pad": short windows at the raster edge) beyond the rasters
                # are mirrored: LR and HR context stay a consistent pair (OUTSIDE doc)
                reader = _WindowReader(grid, plan, halo, OUTSIDE)

                def read(tiles):
                    ta, ca = time.perf_counter(), time.thread_time()
                    lrs, msis = [], []
                    for t in tiles:
                        lr, m = reader.read(t)
                        lrs.append(lr)
                        msis.append(m)
                    data = (np.stack(lrs), np.stack(msis))
                    timings["read_s"] += time.perf_counter() - ta
                    timings["read_cpu_s"] += time.thread_time() - ca
                    return data

                def task(tiles, data):
                    tb = time.perf_counter()
                    pred = predictor.predict(*data)
                    timings["predict_s"] += time.perf_counter() - tb
                    return [p[:, hs:hs + t.height, hs:hs + t.width] for p, t in zip(pred, tiles, strict=True)]

                def sink(block: np.ndarray, row0: int, col0: int = 0) -> None:
                    tw = time.perf_counter()
                    win = Window(col0, row0, block.shape[2], block.shape[1])
                    # bad bands are never written: GDAL fills their blocks with nodata when closing
                    wr.write(block, window=win, indexes=None if all_good else good_bands_1)
                    timings["write_s"] += time.perf_counter() - tw

                report(0.05, f"fusing {plan.n_tiles} tiles")
                blender = BlendWriter(plan, len(good), sink, block_rows=block_rows, batch=batch)
                stats: dict[str, float] = {}
                tb = time.perf_counter()
                run_tiles(plan, task, blender, batch=batch, progress=progress, cancel=cancel,
                          progress_range=(0.05, 0.99), read=read, background_write=True,
                          queue_batches=QUEUE_BATCHES, stats=stats)
                timings["tiles_s"] = time.perf_counter() - tb
                timings["blend_write_s"] = stats.get("write_thread_s", 0.0)
                timings["blend_write_cpu_s"] = stats.get("write_thread_cpu_s", 0.0)
                timings["wait_read_s"] = stats.get("wait_read_s", 0.0)
                timings["wait_write_s"] = stats.get("wait_write_s", 0.0)
                timings["buffer_mb"] = blender.peak_buffer_bytes / 2 ** 20
            if shift_future is not None:
                t0 = time.perf_counter()
                est = shift_future.result()
                timings["shift_wait_s"] = time.perf_counter() - t0
                messages.append(est.message)
            wr.tags["CSAKD_FUSION"] = json.dumps({  # tags are written when the GeoTIFF is closed
                "hsi": os.path.basename(str(hsi)), "msi": os.path.basename(str(msi)), "model": predictor.name,
                "scale": s, "shift_lr_px": [round(est.dx, 4), round(est.dy, 4)], "shift_corrected": corrected,
                "device": predictor.device_used, "fused_bands": len(good), "tile": plan.tile,
                "overlap": plan.overlap})
            t_close = time.perf_counter()
        timings["finalize_s"] = time.perf_counter() - t_close  # GeoTIFF flush (compression) + rename
    finally:
        shift_pool.shutdown(wait=True, cancel_futures=True)
    timings["network_s"] = float(getattr(predictor, "network_seconds", 0.0))
    elapsed = time.perf_counter() - t_start
    if not all_good:
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

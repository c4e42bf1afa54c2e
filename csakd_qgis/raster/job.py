"""The one tiled raster job: windows of an HR output grid through a predictor into an atomic GeoTIFF.

Every entry point (:func:`fusion.fuse.fuse`, :func:`fusion.superresolve.superresolve`, any later method) does
its own argument checks and grid planning, then hands the job its output grid, its inputs (:class:`Layer`:
rasters on the LR grid or on a multiple of it) and a predictor (``predict(*inputs) -> (B, C, s*h, s*w)``,
NaN = nodata, ``halo_lr`` LR px of context read around each window and cropped afterwards).

What the job does (:class:`TiledRasterJob`):
- plans the windows (:func:`tiling.plan_tiles`) in column groups of about ``GROUP_WIDTH`` HR px cut on the
  output's block columns, so the blend buffer holds one group's strip of rows: memory does not grow with the
  raster's width or height;
- reads each input in row chunks over the column group, cut on the file's block rows (:class:`WindowReader`:
  every compressed input block decoded about once), with the context beyond the rasters mirrored about their
  edges (``OUTSIDE``);
- pipelines read (background thread, one batch ahead), predict (calling thread) and blend + write (one
  background writer thread, :class:`tiling.BlendWriter`), with progress and cancel per batch;
- writes float32 with the output's nodata value where the prediction is NaN; bad bands (bbl = 0) are never
  written, so GDAL fills them with nodata; band wavelength/FWHM/bbl/description metadata and the entry
  point's tags are written when the temporary GeoTIFF is closed and renamed into place (removed on error or
  cancel).

Timings (``timings`` of the result): ``read_s`` / ``read_cpu_s`` (reader thread), ``predict_s`` (the predictor
calls), ``blend_write_s`` / ``blend_write_cpu_s`` (writer thread, of which ``write_s`` in GDAL),
``wait_read_s`` / ``wait_write_s`` (the calling thread waiting for them), ``tiles_s``, ``finalize_s`` (GeoTIFF
close: remaining compression, metadata, rename), ``network_s`` (inside the network), ``buffer_mb``.
rasterio is imported when a job runs, not when the module is (QGIS imports the plugin at start).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.raster.io import (
    OUTPUT_NODATA,
    GeoTiffWriter,
    RasterMeta,
    check_output_dtype,
    default_creation_options,
    read_window_raw,
    to_reflectance,
)
from csakd_qgis.raster.tiling import BlendWriter, TilePlan, check_edge, plan_tiles, run_tiles

log = logging.getLogger("csakd_qgis.job")

GROUP_WIDTH = 1024  # HR px: output column-group width (blend buffer independent of the raster width)
# GDAL block cache while the job runs (reads + writes; restored afterwards). Inputs are read in row chunks
# that do not depend on it (_RowChunks); for the output it bounds the dirty blocks left to compress when the
# GeoTIFF is closed (serial time at the end: 64 MB instead of 128 MB halves it; smaller gains nothing).
GDAL_CACHE_MB = 64
QUEUE_BATCHES = 1  # batches waiting for the writer thread (each ~ batch x bands x (tile + 2 halo)^2 x 4 B)
MAX_CHUNK_MB = 96.0  # an input's row chunk over a column group; wider groups are read window by window
# Context beyond the rasters (a window's halo at the raster edge, "pad" padding) is read mirrored about the
# edge (io.read_window_raw "symmetric"): a mirrored HR-MSI block-averages to the mirrored LR-HSI, so a pair
# stays consistent there, and it is the border convention of the in-memory path (degrade.wald_degrade blurs
# with scipy "reflect" = the same mirror). Edge replication makes the replicated HR edge row disagree with
# the replicated LR edge pixel: GLP injected spurious detail along the raster edges (on the 32 x 64 px EnMAP
# test mosaic at scale 4: 37.43 dB instead of 38.70 dB in memory).
OUTSIDE = "symmetric"


# ------------------------------------------------------------------------------------------ arguments
def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; CsakdError naming ``name`` otherwise (also for 2.5 or 'x')."""
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


@dataclass(frozen=True)
class JobOptions:
    """Checked tiling options of a job (tile/overlap/group width in HR px) and the predictor's CPU threads."""

    tile: int = 256
    overlap: int = 32
    batch: int = 4
    threads: int | None = None
    edge: str = "shift"
    group_width: int = GROUP_WIDTH  # 0: no column groups
    creation_options: dict[str, str] | None = None
    part: tuple[int, int] | None = None  # (k, n): write only the k-th of n column-group ranges (distributed runs)
    dtype: str = "float32"  # output data type: float32, or int16/uint16 reflectance x 10000 (raster.io)


def check_options(tile: Any = 256, overlap: Any = 32, batch: Any = 4, threads: Any = None, edge: str = "shift",
                  group_width: Any = None, creation_options: dict[str, str] | None = None,
                  part: tuple[int, int] | None = None, dtype: str | None = None) -> JobOptions:
    """The entry points' shared argument checks (CsakdError before any compute); ``group_width`` None: default."""
    if part is not None:
        n = check_int("part count", part[1], 1)
        part = (check_int("part index", part[0], 0), n)
        if part[0] >= n:
            raise CsakdError(f"part index {part[0]} is not below the part count {n}.")
    return JobOptions(tile=check_int("tile", tile, 1), overlap=check_int("overlap", overlap, 0),
                      batch=check_int("batch", batch, 1),
                      threads=None if threads is None else check_int("threads", threads, 1),
                      edge=check_edge(edge),
                      group_width=GROUP_WIDTH if group_width is None else check_int("group_width", group_width, 0),
                      creation_options=creation_options, part=part, dtype=check_output_dtype(dtype))


class Progress:
    """``progress(fraction, message)`` and ``cancel()`` callbacks of an entry point (both optional)."""

    def __init__(self, progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> None:
        self.progress, self.cancel = progress, cancel

    def report(self, fraction: float, message: str) -> None:
        """Report a fraction clamped to [0, 1]."""
        if self.progress is not None:
            self.progress(float(min(max(fraction, 0.0), 1.0)), message)

    def check_cancel(self) -> None:
        """Raise CancelledError when the caller asked to stop."""
        if self.cancel is not None and self.cancel():
            raise CancelledError()


# ------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Layer:
    """One input of a job: a raster on the LR grid scaled by ``factor`` (1: the LR grid, s: the HR grid).

    ``read(row, col, height, width)`` returns (bands, height, width) float32 reflectance of a window in the
    layer's pixels (NaN = nodata, context beyond the raster mirrored, see ``OUTSIDE``); ``block_rows`` and
    ``phase`` (the file row of layer row 0 modulo it) let the reader cut its chunks on the file's block rows.
    """

    read: Callable[..., np.ndarray]
    bands: int
    factor: int
    n_rows: int
    block_rows: int = 1
    phase: int = 0
    reads_into: bool = False  # read(..., out=array) fills a given (bands, height, width) array in place


def raster_layer(ds: Any, meta: RasterMeta, bands: Sequence[int], factor: int = 1) -> Layer:
    """A :class:`Layer` reading the 0-based ``bands`` of an open dataset as reflectance (mirrored outside)."""
    idx = list(bands)
    indexes = [i + 1 for i in idx]

    from rasterio.windows import Window

    def read(row: int, col: int, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
        raw = read_window_raw(ds, Window(col, row, width, height), indexes, outside=OUTSIDE, out=out)
        return to_reflectance(raw, meta, idx, copy=False)

    return Layer(read, len(idx), int(factor), int(ds.height), max(1, int(ds.block_shapes[0][0])), 0,
                 reads_into=True)


class EmptyPart(Exception):
    """A job part (``JobOptions.part``) with no column group: the plan has fewer groups than parts."""


def shifted_layer(layer: Layer, cols: int) -> Layer:
    """``layer`` read ``cols`` LR px further right (a job part's inputs: its columns start at its offset)."""
    f = layer.factor
    return replace(layer, read=lambda r, c, h, w, **kw: layer.read(r, c + cols * f, h, w, **kw))


class _RowChunks:
    """Rows of one input over a fixed column range, read in chunks cut on the file's block rows.

    ``get(row, col, h, w)`` returns a view of rows [row, row + h) and columns [col, col + w) (inside the
    chunk's column range), valid until the next ``get``. Requests must come with non-decreasing ``row`` (a column group's windows in plan
    order); a chunk ends on a block-row boundary of the file, so each compressed block is decoded about once
    per column group whatever GDAL's block cache holds (the output's dirty blocks share that cache and would
    otherwise evict the input blocks between two windows: every window re-decoded them). The chunk lives in
    one buffer: rows still needed move to its top and the next rows are read in below them (in place for a
    layer that ``reads_into``), so memory stays one chunk instead of old + new + their concatenation.
    """

    def __init__(self, layer: Layer, col0: int, width: int, max_rows: int) -> None:
        self.layer, self.col0, self.width = layer, int(col0), int(width)
        self.block_rows, self.phase = max(1, int(layer.block_rows)), int(layer.phase)
        self.max_rows, self.n_rows = int(max_rows), int(layer.n_rows)
        self.r0 = self.r1 = 0
        self.buf: np.ndarray | None = None
        self.reads = 0

    def _end(self, row: int, need_end: int) -> int:
        """Chunk end: the first block-row boundary at or after need_end (need_end if that is too far)."""
        b, ph = self.block_rows, self.phase
        end = min(-(-(need_end + ph) // b) * b - ph, max(need_end, self.n_rows))  # not past the raster
        return end if end - row <= self.max_rows else need_end

    def _read_into(self, row: int, n: int, at: int) -> None:
        """Rows [row, row + n) into buffer rows [at, at + n)."""
        dst = self.buf[:, at:at + n]
        if self.layer.reads_into:
            got = self.layer.read(row, self.col0, n, self.width, out=dst)
            if got is not dst and not np.shares_memory(got, dst):
                dst[...] = got
        else:
            dst[...] = self.layer.read(row, self.col0, n, self.width)

    def get(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """A view of the requested window, reading the next chunk when it is not in the current one."""
        if self.buf is None or row < self.r0 or row + h > self.r1:
            end = self._end(row, row + h)
            keep = self.r1 - row if self.buf is not None and self.r0 <= row < self.r1 else 0
            if self.buf is None or end - row > self.buf.shape[1]:
                old = self.buf
                rows = max(end - row, min(self.max_rows, self.n_rows))  # later chunks fit: no regrowth
                self.buf = np.empty((self.layer.bands, rows, self.width), np.float32)
                if keep:
                    self.buf[:, :keep] = old[:, row - self.r0:]
                del old
            elif keep:  # overlapping move of the rows still needed to the top of the buffer
                self.buf[:, :keep] = self.buf[:, row - self.r0:self.r1 - self.r0]
            self._read_into(row + keep, end - row - keep, keep)
            self.r0, self.r1 = row, end
            self.reads += 1
        return self.buf[:, row - self.r0:row - self.r0 + h, col - self.col0:col - self.col0 + w]


class WindowReader:
    """Reads the inputs of plan windows (padded to the tile shape, plus ``halo_lr`` LR px of context).

    Per column group, each layer is read in row chunks over the group's columns (:class:`_RowChunks`): one
    GDAL call per chunk instead of one per window, and every input block decoded about once. A group whose
    chunks would exceed ``max_chunk_mb`` (very wide single-group plans) is read window by window.
    """

    def __init__(self, layers: Sequence[Layer], plan: TilePlan, halo_lr: int,
                 max_chunk_mb: float = MAX_CHUNK_MB) -> None:
        self.layers, self.plan, self.h = list(layers), plan, int(halo_lr)
        self.s = int(plan.scale)
        self.max_bytes = float(max_chunk_mb) * 2 ** 20
        self._group = -1
        self.chunks: list[_RowChunks] | None = None

    def _start_group(self, g: int) -> None:
        s, h = self.s, self.h
        tiles = [t for t in self.plan.tiles if t.group == g]
        c0 = min(t.col for t in tiles) // s - h
        c1 = max(t.col + t.width + t.pad_right for t in tiles) // s + h
        win_lr = self.plan.tile_shape[0] // s + 2 * h
        self._group = g
        if 4 * sum(ly.bands * win_lr * (c1 - c0) * ly.factor ** 2 for ly in self.layers) > 2 * self.max_bytes:
            self.chunks = None  # too wide: window by window
            return
        self.chunks = []
        for ly in self.layers:
            f = ly.factor
            width, win = (c1 - c0) * f, win_lr * f
            rows = min(win + ly.block_rows, max(win, int(self.max_bytes // (4 * ly.bands * width))))
            self.chunks.append(_RowChunks(ly, c0 * f, width, rows))

    def read(self, t: Any) -> tuple[np.ndarray, ...]:
        """One (bands, rows, cols) array per layer: window ``t`` padded to the tile shape, plus the halo."""
        s, h = self.s, self.h
        if t.group != self._group:
            self._start_group(t.group)
        r, c = t.row // s - h, t.col // s - h
        hl, wl = (t.height + t.pad_bottom) // s + 2 * h, (t.width + t.pad_right) // s + 2 * h
        if self.chunks is None:
            return tuple(ly.read(r * ly.factor, c * ly.factor, hl * ly.factor, wl * ly.factor)
                         for ly in self.layers)
        return tuple(ch.get(r * ly.factor, c * ly.factor, hl * ly.factor, wl * ly.factor)
                     for ch, ly in zip(self.chunks, self.layers, strict=True))


# ------------------------------------------------------------------------------------------ output
@dataclass
class OutputSpec:
    """The output GeoTIFF: grid, band count and metadata, and which (0-based) bands are predicted."""

    width: int
    height: int
    crs: Any
    transform: Any
    count: int
    good: Sequence[int]  # 0-based output bands the predictor fills, in its band order; the rest stay nodata
    wavelengths: Sequence[float | None] | None = None
    fwhm: Sequence[float | None] | None = None
    bbl: Sequence[int] | None = None
    descriptions: Sequence[str | None] | None = None
    nodata: float = OUTPUT_NODATA


@dataclass
class RasterJobResult:
    """What a tiled raster job did (the entry points' results extend it)."""

    out_path: str
    device_used: str
    n_tiles: int
    elapsed_s: float
    scale: int
    bands: int
    width: int = 0
    height: int = 0
    model: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.out_path}: {self.width} x {self.height} px, {self.bands} bands, scale {self.scale}, "
                f"model {self.model}, device {self.device_used}, {self.n_tiles} tiles, {self.elapsed_s:.1f} s")


R = TypeVar("R", bound=RasterJobResult)


class TiledRasterJob:
    """Open the output and plan its windows (``with job:``), :meth:`run` the predictor, :meth:`finish`.

    Inside ``with job:`` GDAL's block cache is capped at ``GDAL_CACHE_MB``, ``job.plan`` is the window plan
    (column groups cut on the output's block columns) and ``job.tags`` are written when the GeoTIFF closes.
    With ``options.part`` = (k, n) the GeoTIFF holds only the k-th of n ranges of column groups (a block file
    of a distributed run, :mod:`distributed.blocks`): same windows and blending, so the parts side by side
    equal the whole output; :class:`EmptyPart` when the plan has fewer groups than parts.
    """

    def __init__(self, out_path: str | os.PathLike, output: OutputSpec, scale: int, options: JobOptions,
                 progress: Progress | None = None) -> None:
        self.out_path = Path(str(out_path))
        self.output, self.scale, self.options = output, int(scale), options
        self.progress = progress or Progress()
        self.timings: dict[str, float] = {"read_s": 0.0, "read_cpu_s": 0.0, "predict_s": 0.0,
                                          "blend_write_s": 0.0, "write_s": 0.0}
        self.plan: TilePlan | None = None
        self.col_offset = 0  # output column of the plan's column 0 (a part's offset)
        self.writer: GeoTiffWriter | None = None
        self.blend_writer: BlendWriter | None = None
        self._stack: contextlib.ExitStack | None = None
        self._t_close = 0.0

    @property
    def tags(self) -> dict[str, str]:
        """Dataset tags written when the GeoTIFF is closed."""
        if self.writer is None:
            raise RuntimeError("TiledRasterJob is not open: use 'with job:' first")
        return self.writer.tags

    def _creation_options(self) -> dict[str, str]:
        """The user's creation options; compression on the run's ``threads`` (when given) unless they set it."""
        co = dict(self.options.creation_options or {})
        if self.options.threads is not None:
            co.setdefault("NUM_THREADS", str(self.options.threads))
        return co

    def _open_writer(self, width: int, transform: Any) -> GeoTiffWriter:
        o = self.output
        return GeoTiffWriter(self.out_path, width, o.height, o.count, o.crs, transform, o.wavelengths, o.fwhm,
                             nodata=o.nodata, creation_options=self._creation_options(), bbl=o.bbl,
                             descriptions=o.descriptions, dtype=self.options.dtype)

    def _plan(self, align: int) -> TilePlan:
        o, opt = self.output, self.options
        gw = opt.group_width
        return plan_tiles(o.height, o.width, self.scale, opt.tile, opt.overlap, edge=opt.edge,
                          group_width=max(gw, 2 * opt.tile) if gw else None, group_align=align)

    def _block_width(self) -> int:
        """The output GeoTIFF's block width as its creation options will make it (known before opening it)."""
        o = self.output
        co = {**default_creation_options(o.count, o.width, o.height, self.options.dtype),
              **(self.options.creation_options or {})}
        tiled = str(co.get("TILED", "NO")).upper() in ("YES", "TRUE", "ON", "1")
        return int(co.get("BLOCKXSIZE", 256)) if tiled else o.width

    def __enter__(self) -> TiledRasterJob:
        import rasterio
        from affine import Affine

        o, opt = self.output, self.options
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=int(GDAL_CACHE_MB) * 2 ** 20))
            if opt.part is None:
                self.writer = stack.enter_context(self._open_writer(o.width, o.transform))
                self.plan = self._plan(self.writer.block_shape[1])
            else:  # the part's column groups only, into a GeoTIFF of their columns
                align = self._block_width()
                part = self._plan(align).part(*opt.part)
                if part is None:
                    raise EmptyPart(f"part {opt.part[0]} of {opt.part[1]} has no column group")
                self.plan, self.col_offset = part
                self.writer = stack.enter_context(self._open_writer(
                    self.plan.width, o.transform * Affine.translation(self.col_offset, 0)))
                if self.plan.width < o.width and self.writer.block_shape[1] != align:
                    raise RuntimeError(f"part GeoTIFF blocks are {self.writer.block_shape[1]} px wide, "
                                       f"planned for {align}")
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        t0 = time.perf_counter()
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.timings["finalize_s"] = time.perf_counter() - t0  # GeoTIFF flush (compression) + rename

    def run(self, layers: Sequence[Layer], predictor: Any, progress_range: tuple[float, float] = (0.05, 0.99),
            message: str = "") -> None:
        """Every window's layers (with the predictor's halo) -> ``predictor.predict`` -> blended -> GeoTIFF."""
        from rasterio.windows import Window

        plan, wr, timings, opt = self.plan, self.writer, self.timings, self.options
        if plan is None or wr is None:
            raise RuntimeError("TiledRasterJob is not open: use 'with job:' first")
        s = self.scale
        hs = int(getattr(predictor, "halo_lr", 0)) * s
        if self.col_offset:
            layers = [shifted_layer(ly, self.col_offset // s) for ly in layers]
        reader = WindowReader(layers, plan, hs // s)
        good = list(self.output.good)
        indexes = None if good == list(range(self.output.count)) else [i + 1 for i in good]

        def read(tiles):
            ta, ca = time.perf_counter(), time.thread_time()
            data: tuple[np.ndarray, ...] = ()
            for k, t in enumerate(tiles):  # copied window by window: the reader's views are into reused buffers
                arrays = reader.read(t)
                if not data:
                    data = tuple(np.empty((len(tiles), *a.shape), np.float32) for a in arrays)
                for d, a in zip(data, arrays, strict=True):
                    d[k] = a
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
            # bad bands are never written: GDAL fills their blocks with nodata when closing
            wr.write(block, window=Window(col0, row0, block.shape[2], block.shape[1]), indexes=indexes)
            timings["write_s"] += time.perf_counter() - tw

        self.progress.report(progress_range[0], message or f"{plan.n_tiles} tiles")
        self.blend_writer = BlendWriter(plan, len(good), sink, block_rows=wr.block_shape[0], batch=opt.batch)
        stats: dict[str, float] = {}
        tb = time.perf_counter()
        run_tiles(plan, task, self.blend_writer, batch=opt.batch, progress=self.progress.progress,
                  cancel=self.progress.cancel, progress_range=progress_range, read=read, background_write=True,
                  queue_batches=QUEUE_BATCHES, stats=stats)
        timings["tiles_s"] = time.perf_counter() - tb
        timings["blend_write_s"] = stats.get("write_thread_s", 0.0)
        timings["blend_write_cpu_s"] = stats.get("write_thread_cpu_s", 0.0)
        timings["wait_read_s"] = stats.get("wait_read_s", 0.0)
        timings["wait_write_s"] = stats.get("wait_write_s", 0.0)
        timings["buffer_mb"] = self.blend_writer.peak_buffer_bytes / 2 ** 20

    def finish(self, result_type: type[R], predictor: Any, t_start: float, messages: list[str],
               **fields: Any) -> R:
        """The result (``result_type`` with the entry point's extra ``fields``), its summary logged last."""
        if self.plan is None:
            raise RuntimeError("TiledRasterJob.finish before the job ran")
        self.timings["network_s"] = float(getattr(predictor, "network_seconds", 0.0))
        elapsed = time.perf_counter() - t_start
        n_bad = self.output.count - len(self.output.good)
        if n_bad:
            messages.append(f"{n_bad} bad band(s) (bbl = 0) kept as nodata so band numbers match the HSI.")
        result = result_type(out_path=str(self.out_path), device_used=predictor.device_used,
                             n_tiles=self.plan.n_tiles, elapsed_s=elapsed, scale=self.scale,
                             bands=self.output.count, width=self.plan.width, height=self.output.height,
                             model=predictor.name, timings=self.timings, messages=messages, **fields)
        messages.append(result.summary())
        self.progress.report(1.0, "done")
        log.debug(result.summary())
        return result


__all__ = ["EmptyPart", "GDAL_CACHE_MB", "GROUP_WIDTH", "JobOptions", "Layer", "OUTSIDE", "OutputSpec", "Progress",
           "RasterJobResult", "TiledRasterJob", "WindowReader", "check_int", "check_options", "raster_layer",
           "shifted_layer"]

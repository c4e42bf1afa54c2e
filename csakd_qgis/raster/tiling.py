"""Tiled processing of the HR output grid: window plan, raised-cosine blending, bounded-memory writing.

Window plan
- :func:`plan_tiles` cuts the HR grid into windows of ``tile`` px overlapping by ``overlap`` px, both
  multiples of the scale so every window is a whole number of LR pixels (LR/HR pixel grid). Edge handling
  (``edge``): ``"shift"`` (default) uses the fewest full-size windows whose overlaps are at least
  ``overlap``, spread evenly so the last one ends at the raster (or column-group) edge — every window has
  the full tile shape, so batches share one shape and no network ever sees padded content inside the
  raster; ``"pad"`` keeps a regular stride and the reader pads the short edge windows to the tile shape
  (:mod:`raster.job` reads them on beyond the raster, mirrored about its edge; :func:`pad_reflect` pads
  an array by reflection), cropped back after inference. A raster smaller than one tile
  is a single window of the raster's size.
- :meth:`TilePlan.weights`: raised-cosine ramps across each actual overlap (w(d) = sin^2(pi (d + 0.5) /
  (2 o)) at distance d from the window edge), so the two windows sharing an overlap sum to 1 there; no taper
  on sides that lie on the raster edge or on a column-group cut.

Column groups (memory independent of the raster size)
- With ``group_width`` the output columns are split into column groups of at most about that width whose
  cuts are multiples of ``group_align`` (the output GeoTIFF's block width) and of the scale, so every
  output block belongs to exactly one group and is written exactly once (no partial block is ever
  re-read and re-compressed). Each group has its own column plan of windows over its output columns
  extended by ``ceil(overlap / 2)`` px of context beyond each cut (rounded up to the scale); inside a group
  windows are blended with raised cosines as above; at a cut the output switches hard from one group to
  the next. This is the "hard cut in the middle of an overlap" design, with the overlap placed on a block
  boundary: on each side of a cut the last window still has at least overlap/2 px (plus the predictor's
  halo) of real context, the same as at the centre of an ordinary blended overlap, so the seam is no more
  visible than a tile seam; a model whose receptive field fits in the halo gives identical output
  whatever the cuts. The extra context costs a few percent more windows (the group count is chosen to
  minimise them). Windows are ordered group by group, row-major inside a group; row positions are global.

Writing
- The window loop is a sequence of independent tasks (read window -> infer -> return block,
  :func:`run_tiles`); one writer (:class:`BlendWriter`) accumulates the weighted blocks of the current
  column group in a ring buffer of rows and hands the rows no later window touches to the sink, in whole
  output-block rows. Buffer: 4 x bands x group width x R bytes with R = (tile + block rows) rounded up to
  block rows (e.g. 64 bands, 1024-px groups, 256-px tiles and blocks: 128 MB), independent of the raster
  height and — with column groups — of its width. Above ``max_buffer_mb`` it is a memory-mapped temporary
  file instead of RAM.
- :func:`run_tiles` can pipeline: the next batch is read in a background thread (``read``) while the
  current one is inferred, and blending + writing run in one background writer thread fed through a
  bounded queue (``background_write``); GDAL, numpy and torch release the GIL, so I/O, compression and
  blending overlap the network. Cancel and progress stay per batch in the calling thread; an exception in
  either thread is re-raised in the calling thread and stops the others.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError

log = logging.getLogger("csakd_qgis.tiling")

EDGE_MODES = ("shift", "pad")


@dataclass(frozen=True)
class Tile:
    """One output window (HR px of the output grid) and its place in the plan.

    ``height``/``width`` are the window's real size; ``pad_bottom``/``pad_right`` the reflect padding that
    brings it to the plan's tile shape (``edge="pad"`` only). ``tx`` counts windows inside the column
    ``group``.
    """

    index: int
    ty: int
    tx: int
    row: int
    col: int
    height: int
    width: int
    pad_bottom: int = 0
    pad_right: int = 0
    group: int = 0


@dataclass(frozen=True)
class ColumnGroup:
    """Output columns [col0, col1) written from the windows whose columns are ``col_starts``/``col_ends``."""

    index: int
    col0: int
    col1: int
    col_starts: tuple[int, ...]
    col_ends: tuple[int, ...]

    @property
    def width(self) -> int:
        """Output columns of the group."""
        return self.col1 - self.col0


def check_edge(edge: str) -> str:
    """``edge`` when it is one of ``EDGE_MODES``; CsakdError otherwise."""
    if edge not in EDGE_MODES:
        raise CsakdError(f"Tile edge mode '{edge}' is not one of {', '.join(EDGE_MODES)}.")
    return edge


def _round_up(x: int, s: int) -> int:
    return -(-int(x) // s) * s


def _axis_starts(n: int, tile: int, overlap: int, edge: str, s: int) -> tuple[list[int], list[int]]:
    """Window starts and ends along one axis of length n (all multiples of s)."""
    if n <= tile:
        return [0], [n]
    stride = tile - overlap
    if edge == "shift":  # fewest windows with overlap >= the requested one, spread evenly, all full size
        k = -(-(n - overlap) // stride)
        starts = sorted({int(round((n - tile) * i / (k - 1) / s)) * s for i in range(k)})
        return starts, [st + tile for st in starts]
    starts = [0]
    while starts[-1] + tile < n:
        starts.append(starts[-1] + stride)
    return starts, [min(st + tile, n) for st in starts]


def _column_groups(width: int, tile: int, overlap: int, edge: str, s: int, group_width: int | None,
                   align: int) -> list[ColumnGroup]:
    """Column groups of at most ~group_width output columns with cuts on multiples of lcm(align, s)."""
    cs, ce = _axis_starts(width, tile, overlap, edge, s)
    single = [ColumnGroup(0, 0, width, tuple(cs), tuple(ce))]
    if not group_width or width <= group_width:
        return single
    unit = math.lcm(max(1, int(align)), s)
    n_units = -(-width // unit)
    per = max(1, int(group_width) // unit)  # units per group at most
    margin = _round_up(-(-overlap // 2), s)  # context beyond a cut: half the overlap
    g_min = max(2, -(-n_units // per))
    best: tuple[int, int, list[ColumnGroup]] | None = None
    for n_groups in range(g_min, min(g_min + 3, n_units) + 1):
        cuts = [min(width, (i * n_units // n_groups) * unit) for i in range(n_groups)] + [width]
        if any(b <= a for a, b in zip(cuts[:-1], cuts[1:], strict=True)):
            continue
        groups = []
        for g, (c0, c1) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            lo, hi = max(0, c0 - margin), min(width, c1 + margin)
            if hi - lo < min(tile, width):  # every window keeps the plan's tile shape
                break
            st, en = _axis_starts(hi - lo, tile, overlap, edge, s)
            groups.append(ColumnGroup(g, c0, c1, tuple(lo + x for x in st), tuple(lo + x for x in en)))
        else:
            cost = sum(len(g.col_starts) for g in groups)
            if best is None or cost < best[0]:
                best = (cost, n_groups, groups)
    return single if best is None else best[2]


def raised_cosine(n: int) -> np.ndarray:
    """Ramp of length n rising from ~0 to ~1: sin^2(pi (d + 0.5) / (2 n)); ramp + reversed ramp = 1."""
    d = np.arange(n, dtype=np.float64)
    return (np.sin(np.pi * (d + 0.5) / (2 * n)) ** 2).astype(np.float32)


def _axis_weight(i: int, starts: Sequence[int], ends: Sequence[int]) -> np.ndarray:
    size = ends[i] - starts[i]
    w = np.ones(size, np.float32)
    if i > 0:
        ov = min(ends[i - 1] - starts[i], size)
        if ov > 0:
            w[:ov] *= raised_cosine(ov)
    if i < len(starts) - 1:
        ov = min(ends[i] - starts[i + 1], size)
        if ov > 0:
            w[size - ov:] *= raised_cosine(ov)[::-1]
    return w


@dataclass
class TilePlan:
    """Windows covering a (height x width) HR grid; see :func:`plan_tiles`.

    ``col_starts``/``col_ends`` are the window columns of the single column group, or those of all groups
    one after the other when the plan has several (``groups``).
    """

    height: int
    width: int
    scale: int
    tile: int
    overlap: int
    edge: str
    row_starts: list[int]
    row_ends: list[int]
    col_starts: list[int]
    col_ends: list[int]
    tile_shape: tuple[int, int]
    tiles: list[Tile] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    groups: list[ColumnGroup] = field(default_factory=list)

    @property
    def n_tiles(self) -> int:
        """Number of windows."""
        return len(self.tiles)

    def _group(self, g: int) -> ColumnGroup:
        if self.groups:
            return self.groups[g]
        return ColumnGroup(0, 0, self.width, tuple(self.col_starts), tuple(self.col_ends))

    def axis_weights(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """(row weights, column weights) of a window; :meth:`weights` is their outer product."""
        g = self._group(tile.group)
        return (_axis_weight(tile.ty, self.row_starts, self.row_ends),
                _axis_weight(tile.tx, g.col_starts, g.col_ends))

    def weights(self, tile: Tile) -> np.ndarray:
        """(height, width) float32 blending weights of a window (raised cosine across overlaps)."""
        wy, wx = self.axis_weights(tile)
        return wy[:, None] * wx[None, :]

    def batches(self, size: int) -> Iterator[list[Tile]]:
        """Consecutive groups of at most ``size`` windows in plan order (all share one padded shape).

        Batches may span tile rows and column groups: the writer takes windows in plan order.
        """
        size = max(1, int(size))
        for i in range(0, len(self.tiles), size):
            yield self.tiles[i:i + size]

    def straddles(self, batch: int) -> bool:
        """Whether batches of this size span two tile rows (a row of a column group has fewer windows)."""
        widths = [len(g.col_starts) for g in self.groups] or [len(self.col_starts)]
        return min(widths) < max(1, int(batch))

    def row_final(self, ty: int) -> int:
        """First HR row that a window of a later tile row may still touch (rows above are final)."""
        return self.row_starts[ty + 1] if ty + 1 < len(self.row_starts) else self.height

    def part(self, k: int, n: int) -> tuple[TilePlan, int] | None:
        """The ``k``-th of ``n`` contiguous ranges of column groups as a plan of its own, and its column offset.

        The part's columns start at 0 (its output covers columns [offset, offset + width) of this plan) and
        its windows, weights and blending are those of this plan, so writing the parts side by side gives the
        whole plan's output. None when the range is empty (fewer groups than parts).
        """
        groups = self.groups or [self._group(0)]
        g0, g1 = k * len(groups) // n, (k + 1) * len(groups) // n
        if not 0 <= k < n or g1 <= g0:
            return None
        off = groups[g0].col0
        sub = [ColumnGroup(g - g0, groups[g].col0 - off, groups[g].col1 - off,
                           tuple(c - off for c in groups[g].col_starts), tuple(c - off for c in groups[g].col_ends))
               for g in range(g0, g1)]
        tiles = [replace(t, index=i, col=t.col - off, group=t.group - g0)
                 for i, t in enumerate(t for t in self.tiles if g0 <= t.group < g1)]
        msgs = [f"Column groups {g0 + 1}-{g1} of {len(groups)} (columns {off}-{groups[g1 - 1].col1})."]
        return replace(self, width=sub[-1].col1, col_starts=[c for g in sub for c in g.col_starts],
                       col_ends=[c for g in sub for c in g.col_ends], tiles=tiles, messages=msgs, groups=sub), off


def plan_tiles(height: int, width: int, scale: int, tile: int = 256, overlap: int = 32,
               edge: str = "shift", group_width: int | None = None, group_align: int = 1) -> TilePlan:
    """Plan the windows of a (height x width) HR grid (both multiples of ``scale``).

    ``tile`` and ``overlap`` (HR px) are rounded up to multiples of the scale; the overlap is capped at half
    the tile. ``group_width`` (HR px, None = no column groups) splits wider grids into column groups with
    cuts on multiples of ``group_align`` (see the module doc). Raises CsakdError for non-positive sizes.
    """
    s = int(scale)
    if s < 1 or height % s or width % s:
        raise ValueError(f"grid {height} x {width} is not a multiple of the scale {scale}")
    check_edge(edge)
    if int(tile) < 1:
        raise CsakdError(f"The tile size must be positive (got {tile}).")
    if int(overlap) < 0:
        raise CsakdError(f"The tile overlap must be >= 0 (got {overlap}).")
    messages: list[str] = []
    t = max(_round_up(tile, s), 2 * s)
    o = _round_up(overlap, s)
    if t != tile or o != overlap:
        messages.append(f"Tile {tile} / overlap {overlap} px rounded up to multiples of the scale {s}: "
                        f"{t} / {o} px.")
    if 2 * o > t:
        o = (t // 2) // s * s
        messages.append(f"The overlap is capped at half the tile: {o} px.")
    rs, re = _axis_starts(height, t, o, edge, s)
    groups = _column_groups(width, t, o, edge, s, group_width, group_align)
    th, tw = min(t, height), min(t, width)
    tiles = []
    for g in groups:
        for ty, (r0, r1) in enumerate(zip(rs, re, strict=True)):
            for tx, (c0, c1) in enumerate(zip(g.col_starts, g.col_ends, strict=True)):
                tiles.append(Tile(len(tiles), ty, tx, r0, c0, r1 - r0, c1 - c0, th - (r1 - r0), tw - (c1 - c0),
                                  g.index))
    if len(groups) > 1:
        messages.append(f"{len(groups)} column groups of at most {max(g.width for g in groups)} px "
                        f"(cuts at columns {', '.join(str(g.col0) for g in groups[1:])}).")
    cs = [c for g in groups for c in g.col_starts]
    ce = [c for g in groups for c in g.col_ends]
    for m in messages:
        log.debug(m)
    return TilePlan(height, width, s, t, o, edge, rs, re, cs, ce, (th, tw), tiles, messages, groups)


def pad_reflect(x: np.ndarray, pad_bottom: int, pad_right: int) -> np.ndarray:
    """Pad the last two axes at the bottom/right by reflection (edge replication where too small)."""
    if pad_bottom <= 0 and pad_right <= 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(0, max(pad_bottom, 0)), (0, max(pad_right, 0))]
    mode = "reflect" if min(x.shape[-2:]) > 1 else "edge"
    return np.pad(x, widths, mode=mode)


def _ones_span(w: np.ndarray) -> tuple[int, int]:
    """[a, b): the run of weights equal to 1 (raised-cosine ramps only at the ends); (0, 0) if none."""
    ones = np.flatnonzero(w == 1.0)
    if ones.size == 0:
        return 0, 0
    return int(ones[0]), int(ones[-1]) + 1


class BlendWriter:
    """Single writer: accumulate weighted window outputs and flush finished rows to ``sink``.

    ``sink(block, row0)`` (``sink(block, row0, col0)`` when the plan has several column groups) receives
    (bands, rows, cols) float32 (NaN = nodata) for rows [row0, row0 + rows) of the current group's output
    columns; ``block`` is a view into the buffer, valid only during the call (copy it to keep it). Rows
    are flushed once every window touching them is added, in multiples of ``block_rows`` (so a tiled
    GeoTIFF gets whole blocks) except at the end of the raster. Windows must be added in plan order (any
    order within a tile row of a group). NaN in a window's output propagates (nodata is a property of the
    position, so every window agrees).
    """

    def __init__(self, plan: TilePlan, n_bands: int, sink: Callable[..., None],
                 block_rows: int = 256, batch: int = 1, max_buffer_mb: float | None = 1024.0,
                 tmp_dir: str | None = None) -> None:
        self.plan = plan
        self.n_bands = int(n_bands)
        self.sink = sink
        self.block_rows = max(1, int(block_rows))
        self.groups = plan.groups or [plan._group(0)]
        self.grouped = len(self.groups) > 1
        n_ty = len(plan.row_starts)
        # ring of rows: from the last flushed block boundary to the end of the current tile row
        cap = 0
        for r in range(n_ty):
            base_r = 0 if r == 0 else self._flush_end(plan.row_final(r - 1))
            cap = max(cap, plan.row_ends[r] - base_r)
        ring = _round_up(cap, self.block_rows)
        self.ring = plan.height if ring >= plan.height else ring  # no wrap needed when it holds the raster
        self.buffer_width = max(g.width for g in self.groups)
        size = self.n_bands * self.ring * self.buffer_width
        nbytes = 4 * size
        self._spill = None
        if max_buffer_mb is not None and nbytes > max_buffer_mb * 2 ** 20:
            import tempfile

            self._spill = tempfile.TemporaryFile(prefix="csakd-blend-", dir=tmp_dir)
            self._flat = np.memmap(self._spill, dtype=np.float32, mode="w+", shape=(size,))
            log.debug("Blend buffer of %.0f MB memory-mapped to a temporary file.", nbytes / 2 ** 20)
        else:
            self._flat = np.zeros(size, np.float32)
        self._wflat = np.zeros(self.ring * self.buffer_width, np.float32)
        th, tw = plan.tile_shape
        self._tmp = np.empty(self.n_bands * th * tw, np.float32)  # weighted window, reused
        self.peak_buffer_bytes = self._flat.nbytes + self._wflat.nbytes + self._tmp.nbytes
        self.spilled = self._spill is not None
        self._counts = [[0] * n_ty for _ in self.groups]
        for t in plan.tiles:
            self._counts[t.group][t.ty] += 1
        self._g = -1
        self._start_group(0)

    # ---- state
    def _start_group(self, g: int) -> None:
        self._g = g
        grp = self.groups[g]
        n = self.n_bands * self.ring * grp.width
        self._sum = self._flat[:n].reshape(self.n_bands, self.ring, grp.width)  # contiguous band planes
        self._wsum = self._wflat[:self.ring * grp.width].reshape(self.ring, grp.width)
        self._pending = list(self._counts[g])
        self._done_rows = 0  # tile rows of this group fully added (prefix)
        self.base = 0  # first row of this group not yet flushed

    def _group_complete(self) -> bool:
        return self.base >= self.plan.height

    def _segments(self, row0: int, row1: int) -> Iterator[tuple[int, int, int]]:
        """(ring row, offset from row0, rows) pieces of absolute rows [row0, row1) in the ring."""
        y = row0
        while y < row1:
            r = y % self.ring
            n = min(row1 - y, self.ring - r)
            yield r, y - row0, n
            y += n

    def add(self, tile: Tile, block: np.ndarray) -> None:
        """Add a window's (bands, height, width) output."""
        if block.shape != (self.n_bands, tile.height, tile.width):
            raise ValueError(f"block {block.shape} does not match window {tile} with {self.n_bands} bands")
        if tile.group != self._g:
            if tile.group == self._g + 1 and self._group_complete():
                self._start_group(tile.group)
            else:
                raise RuntimeError(f"window {tile.index} of column group {tile.group} added while group "
                                   f"{self._g} is incomplete (windows must come in plan order)")
        if tile.row < self.base:
            raise RuntimeError(f"window {tile.index} touches rows already written")
        if tile.row + tile.height - self.base > self.ring:
            raise RuntimeError(f"window {tile.index} added too early: rows {self.base}..{tile.row + tile.height} "
                               f"do not fit the {self.ring}-row buffer (windows must come in plan order)")
        grp = self.groups[self._g]
        c0, c1 = max(tile.col, grp.col0), min(tile.col + tile.width, grp.col1)
        if c1 > c0:
            wy, wx = self.plan.axis_weights(tile)
            bx = c0 - tile.col
            wx = wx[bx:bx + c1 - c0]
            sub = block[:, :, bx:bx + c1 - c0]
            for r, off, n in self._segments(tile.row, tile.row + tile.height):
                self._accumulate(self._sum[:, r:r + n, c0 - grp.col0:c1 - grp.col0], sub[:, off:off + n],
                                 wy[off:off + n], wx)
                self._wsum[r:r + n, c0 - grp.col0:c1 - grp.col0] += wy[off:off + n, None] * wx[None, :]
        self._pending[tile.ty] -= 1
        while self._done_rows < len(self._pending) and self._pending[self._done_rows] == 0:
            self._done_rows += 1
        if self._done_rows:
            self._flush(self.plan.row_final(self._done_rows - 1))

    def _accumulate(self, dst: np.ndarray, src: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> None:
        """dst += src * wy (x) wx, without multiplying where the weight is 1 (the window's interior)."""
        h, w = src.shape[1:]
        a, b = _ones_span(wy)
        c, d = _ones_span(wx)
        if b > a and d > c:  # interior (weight 1) added as is; the frame around it weighted
            dst[:, a:b, c:d] += src[:, a:b, c:d]
            frame = [(0, a, 0, w), (b, h, 0, w), (a, b, 0, c), (a, b, d, w)]
        else:
            frame = [(0, h, 0, w)]
        for y0, y1, x0, x1 in frame:
            ny, nx = y1 - y0, x1 - x0
            if ny <= 0 or nx <= 0:
                continue
            tmp = self._tmp[:self.n_bands * ny * nx].reshape(self.n_bands, ny, nx)
            np.multiply(src[:, y0:y1, x0:x1], wy[y0:y1, None] * wx[None, x0:x1], out=tmp)
            dst[:, y0:y1, x0:x1] += tmp

    def _flush_end(self, final: int) -> int:
        """Rows [0, end) that can be written once rows [0, final) are final (whole block rows)."""
        if final >= self.plan.height:
            return self.plan.height
        return (final // self.block_rows) * self.block_rows

    def _flush(self, final: int) -> None:
        end = self._flush_end(final)
        grp = self.groups[self._g]
        while self.base < end:
            r = self.base % self.ring
            n = min(end - self.base, self.ring - r)  # ring and flush boundaries are whole block rows
            out = self._sum[:, r:r + n]
            ws = self._wsum[r:r + n]
            with np.errstate(divide="ignore"):
                inv = np.float32(1.0) / ws
            if not np.all(ws > 0):
                inv[ws <= 0] = np.nan
            np.multiply(out, inv[None], out=out)
            if self.grouped:
                self.sink(out, self.base, grp.col0)
            else:
                self.sink(out, self.base)
            out[...] = 0.0
            ws[...] = 0.0
            self.base += n

    def close(self) -> None:
        """Release the buffer and check that every row was written."""
        complete = self._g == len(self.groups) - 1 and self._group_complete()
        self._sum = self._flat = np.zeros(0, np.float32)
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if not complete:
            missing = [ty for ty, p in enumerate(self._pending) if p]
            raise RuntimeError(f"BlendWriter closed with rows {self.base}..{self.plan.height} of column group "
                               f"{self._g} unwritten (tile rows still pending: {missing})")


class _WriterThread:
    """Runs ``writer.add`` for queued (tiles, blocks) in one background thread (bounded queue).

    At most ``maxsize`` + 1 batches are alive (queued or being written): the caller :meth:`reserve` s a slot
    before computing the next batch, so a fast producer never holds one more batch while the queue is full.
    """

    def __init__(self, writer: BlendWriter, maxsize: int) -> None:
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(maxsize)))
        self.slots = threading.Semaphore(self.queue.maxsize + 1)
        self.error: BaseException | None = None
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self._stop = False
        self.thread = threading.Thread(target=self._run, name="csakd-blend-write", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import time

        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None or self._stop:
                self.slots.release()
                continue  # drain after an error or an abort
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                self._add(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                self.error = exc
            item = None  # no reference to the batch is left when its slot is freed
            self.slots.release()
            self.busy_s += time.perf_counter() - t0
            self.cpu_s += time.thread_time() - c0

    def _add(self, tiles: Sequence[Tile], blocks: Sequence[np.ndarray]) -> None:
        for t, b in zip(tiles, blocks, strict=True):
            self.writer.add(t, b)

    def check(self) -> None:
        """Re-raise a writer error in the calling thread."""
        if self.error is not None:
            raise self.error

    def reserve(self) -> None:
        """Wait for a free slot (before computing the batch to :meth:`put`), raising if the writer failed."""
        while not self.slots.acquire(timeout=0.05):
            self.check()

    def put(self, item: Any) -> None:
        """Queue a batch; blocks while the queue is full, raising if the writer failed meanwhile."""
        while True:
            self.check()
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until everything queued is written; re-raise a writer error."""
        self.queue.put(None)
        self.thread.join()
        self.check()

    def abort(self) -> None:
        """Drop what is queued and stop (after an error in the calling thread)."""
        self._stop = True
        self.queue.put(None)
        self.thread.join()


def run_tiles(plan: TilePlan, task: Callable[..., Sequence[np.ndarray]], writer: BlendWriter,
              batch: int = 4, progress: Callable[[float, str], None] | None = None,
              cancel: Callable[[], bool] | None = None, progress_range: tuple[float, float] = (0.0, 1.0),
              *, read: Callable[[list[Tile]], Any] | None = None, background_write: bool = False,
              queue_batches: int = 1, stats: dict[str, float] | None = None) -> int:
    """Run ``task`` on batches of windows (each returns one (bands, h, w) block per window) into ``writer``.

    Without ``read``, ``task(tiles)`` does everything. With ``read``, ``read(tiles)`` runs in a background
    thread one batch ahead and ``task(tiles, read_result)`` in the calling thread. ``background_write``
    blends and writes in a background thread (at most ``queue_batches`` batches waiting, and a batch is
    computed only when the writer has room for it: ``queue_batches`` + 1 batches alive). ``cancel()`` is
    checked before each batch (raises CancelledError); ``progress(fraction, message)`` is called after
    each batch, mapped into ``progress_range``. ``stats`` (optional) receives the seconds the calling
    thread waited for reads (``wait_read_s``) and for the writer (``wait_write_s``), and the writer
    thread's busy and CPU time (``write_thread_s``, ``write_thread_cpu_s``). Returns the number of windows
    processed.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    lo, hi = progress_range
    done = 0
    wait_read = wait_write = 0.0
    pool = ThreadPoolExecutor(1, thread_name_prefix="csakd-read") if read is not None else None
    bg = _WriterThread(writer, queue_batches) if background_write else None
    pending = None
    ok = False
    try:
        batches = plan.batches(batch)
        nxt = next(batches, None)
        if pool is not None and nxt is not None:
            pending = pool.submit(read, nxt)
        while nxt is not None:
            if cancel is not None and cancel():
                raise CancelledError()
            group = nxt
            if pool is not None:
                t0 = time.perf_counter()
                data = pending.result()
                wait_read += time.perf_counter() - t0
                pending = None
                nxt = next(batches, None)
                if nxt is not None:  # prefetch the next batch while this one is inferred
                    pending = pool.submit(read, nxt)
                args = (group, data)
                del data
            else:
                nxt = next(batches, None)
                args = (group,)
            if bg is not None:  # compute a batch only when the writer has room for it (bounded memory)
                t0 = time.perf_counter()
                bg.reserve()
                wait_write += time.perf_counter() - t0
            blocks = task(*args)
            del args
            if len(blocks) != len(group):
                raise RuntimeError(f"task returned {len(blocks)} blocks for {len(group)} windows")
            if bg is not None:
                t0 = time.perf_counter()
                bg.put((group, blocks))
                wait_write += time.perf_counter() - t0
            else:
                for t, b in zip(group, blocks, strict=True):
                    writer.add(t, b)
            del blocks
            done += len(group)
            if progress is not None:
                progress(lo + (hi - lo) * done / plan.n_tiles, f"tile {done}/{plan.n_tiles}")
        if bg is not None:
            t0 = time.perf_counter()
            bg.finish()
            wait_write += time.perf_counter() - t0
        ok = True
    finally:
        if pending is not None:
            pending.cancel()
        if pool is not None:
            pool.shutdown(wait=True)  # no read may outlive the caller's datasets
        if bg is not None and not ok and bg.thread.is_alive():
            bg.abort()
        if stats is not None:
            stats["wait_read_s"] = stats.get("wait_read_s", 0.0) + wait_read
            stats["wait_write_s"] = stats.get("wait_write_s", 0.0) + wait_write
            if bg is not None:
                stats["write_thread_s"] = stats.get("write_thread_s", 0.0) + bg.busy_s
                stats["write_thread_cpu_s"] = stats.get("write_thread_cpu_s", 0.0) + bg.cpu_s
    writer.close()
    return done


__all__ = ["BlendWriter", "ColumnGroup", "EDGE_MODES", "Tile", "TilePlan", "check_edge", "pad_reflect", "plan_tiles",
           "raised_cosine", "run_tiles"]

"""Tiled processing of the HR output grid: window plan, raised-cosine blending, bounded-memory writing.

- :func:`plan_tiles` cuts the HR grid into windows of ``tile`` px overlapping by ``overlap`` px, both
  multiples of the scale so every window is a whole number of LR pixels (SPEC §1). Edge handling
  (``edge``): ``"shift"`` (default) uses the fewest full-size windows whose overlaps are at least
  ``overlap``, spread evenly so the last one ends at the raster edge — every window has the full tile
  shape, so batches share one shape and no network ever sees padded content inside the raster; ``"pad"`` keeps a regular stride and the reader pads the short edge
  windows to the tile shape with reflect padding (:func:`pad_reflect`), cropped back after inference.
  A raster smaller than one tile is a single window of the raster's size.
- :meth:`TilePlan.weights`: raised-cosine ramps across each actual overlap (w(d) = sin^2(pi (d + 0.5) /
  (2 o)) at distance d from the window edge), so the two windows sharing an overlap sum to 1 there; no taper
  on sides that lie on the raster edge.
- The window loop is a sequence of independent tasks (read window -> infer -> return block,
  :func:`run_tiles`); one writer (:class:`BlendWriter`) accumulates the weighted blocks in a row-strip
  buffer and flushes the rows no later window touches to the sink, in whole output-block rows. Buffer
  size: about 4 x bands x width x (tile + block rows) bytes (e.g. 64 bands, 4096 px wide, 256-px tiles and
  blocks: 475 MB), independent of the raster height; above ``max_buffer_mb`` it is a memory-mapped
  temporary file instead of RAM, so memory stays bounded whatever the raster size (smaller tiles or
  GeoTIFF BLOCKYSIZE also shrink it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import CancelledError, CsakdError

log = logging.getLogger("csakd_qgis.tiling")

EDGE_MODES = ("shift", "pad")


@dataclass(frozen=True)
class Tile:
    """One output window (HR px of the output grid) and its place in the plan.

    ``height``/``width`` are the window's real size; ``pad_bottom``/``pad_right`` the reflect padding that
    brings it to the plan's tile shape (``edge="pad"`` only).
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
    """Windows covering a (height x width) HR grid; see :func:`plan_tiles`."""

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

    @property
    def n_tiles(self) -> int:
        """Number of windows."""
        return len(self.tiles)

    def weights(self, tile: Tile) -> np.ndarray:
        """(height, width) float32 blending weights of a window (raised cosine across overlaps)."""
        wy = _axis_weight(tile.ty, self.row_starts, self.row_ends)
        wx = _axis_weight(tile.tx, self.col_starts, self.col_ends)
        return wy[:, None] * wx[None, :]

    def batches(self, size: int) -> Iterator[list[Tile]]:
        """Consecutive (row-major) groups of at most ``size`` windows sharing one padded shape.

        Groups do not straddle tile rows when a tile row holds at least ``size`` windows, so the writer's
        strip buffer never needs two tile rows at once.
        """
        size = max(1, int(size))
        split_rows = self.straddles(size) is False
        group: list[Tile] = []
        for t in self.tiles:
            if group and split_rows and t.ty != group[-1].ty:
                yield group
                group = []
            group.append(t)
            if len(group) == size:
                yield group
                group = []
        if group:
            yield group

    def straddles(self, batch: int) -> bool:
        """Whether batches of this size span two tile rows (only when a row has fewer windows than a batch)."""
        return len(self.col_starts) < max(1, int(batch))

    def row_final(self, ty: int) -> int:
        """First HR row that a window of a later tile row may still touch (rows above are final)."""
        return self.row_starts[ty + 1] if ty + 1 < len(self.row_starts) else self.height


def plan_tiles(height: int, width: int, scale: int, tile: int = 256, overlap: int = 32,
               edge: str = "shift") -> TilePlan:
    """Plan the windows of a (height x width) HR grid (both multiples of ``scale``).

    ``tile`` and ``overlap`` (HR px) are rounded up to multiples of the scale; the overlap is capped at half
    the tile. Raises CsakdError for non-positive sizes.
    """
    s = int(scale)
    if s < 1 or height % s or width % s:
        raise ValueError(f"grid {height} x {width} is not a multiple of the scale {scale}")
    if edge not in EDGE_MODES:
        raise CsakdError(f"Tile edge mode '{edge}' is not one of {', '.join(EDGE_MODES)}.")
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
    cs, ce = _axis_starts(width, t, o, edge, s)
    th, tw = min(t, height), min(t, width)
    tiles = []
    for ty, (r0, r1) in enumerate(zip(rs, re, strict=True)):
        for tx, (c0, c1) in enumerate(zip(cs, ce, strict=True)):
            tiles.append(Tile(len(tiles), ty, tx, r0, c0, r1 - r0, c1 - c0, th - (r1 - r0), tw - (c1 - c0)))
    for m in messages:
        log.debug(m)
    return TilePlan(height, width, s, t, o, edge, rs, re, cs, ce, (th, tw), tiles, messages)


def pad_reflect(x: np.ndarray, pad_bottom: int, pad_right: int) -> np.ndarray:
    """Pad the last two axes at the bottom/right by reflection (edge replication where too small)."""
    if pad_bottom <= 0 and pad_right <= 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(0, max(pad_bottom, 0)), (0, max(pad_right, 0))]
    mode = "reflect" if min(x.shape[-2:]) > 1 else "edge"
    return np.pad(x, widths, mode=mode)


class BlendWriter:
    """Single writer: accumulate weighted window outputs and flush finished rows to ``sink``.

    ``sink(block, row0)`` receives (bands, rows, width) float32 (NaN = nodata) for rows [row0, row0 + rows);
    rows are flushed once every window touching them is added, in multiples of ``block_rows`` (so a tiled
    GeoTIFF gets whole blocks) except at the end. Windows must be added in plan order per tile row (any
    order within a row; rows may interleave as long as all windows are eventually added).
    NaN in a window's output propagates (nodata is a property of the position, so every window agrees).
    """

    def __init__(self, plan: TilePlan, n_bands: int, sink: Callable[[np.ndarray, int], None],
                 block_rows: int = 256, batch: int = 1, max_buffer_mb: float | None = 1024.0,
                 tmp_dir: str | None = None) -> None:
        self.plan = plan
        self.n_bands = int(n_bands)
        self.sink = sink
        self.block_rows = max(1, int(block_rows))
        self.base = 0  # first row not yet flushed
        n_ty = len(plan.row_starts)
        # strip height: from the last flushed block boundary to the end of the current tile row (or the
        # next one when batches straddle tile rows); allocated once
        ahead = 1 if plan.straddles(batch) else 0
        cap = 0
        for r in range(n_ty):
            base_r = 0 if r == 0 else self._flush_end(plan.row_final(r - 1))
            cap = max(cap, plan.row_ends[min(r + ahead, n_ty - 1)] - base_r)
        shape = (self.n_bands, cap, plan.width)
        nbytes = 4 * int(np.prod(shape))
        self._spill = None
        if max_buffer_mb is not None and nbytes > max_buffer_mb * 2 ** 20:
            import tempfile

            self._spill = tempfile.TemporaryFile(prefix="csakd-blend-", dir=tmp_dir)
            self._sum = np.memmap(self._spill, dtype=np.float32, mode="w+", shape=shape)
            log.debug("Blend buffer of %.0f MB memory-mapped to a temporary file.", nbytes / 2 ** 20)
        else:
            self._sum = np.zeros(shape, np.float32)
        self._wsum = np.zeros((cap, plan.width), np.float32)
        self.peak_buffer_bytes = self._sum.nbytes + self._wsum.nbytes
        self.spilled = self._spill is not None
        self._pending = [0] * n_ty
        for t in plan.tiles:
            self._pending[t.ty] += 1
        self._done_rows = 0  # tile rows fully added (prefix)

    def _ensure(self, row_end: int) -> None:
        need = row_end - self.base
        have = self._wsum.shape[0]
        if need > have:
            grow = need
            s = np.zeros((self.n_bands, grow, self.plan.width), np.float32)
            w = np.zeros((grow, self.plan.width), np.float32)
            s[:, :have] = self._sum
            w[:have] = self._wsum
            self._sum, self._wsum = s, w
            self.peak_buffer_bytes = max(self.peak_buffer_bytes, s.nbytes + w.nbytes)

    def add(self, tile: Tile, block: np.ndarray) -> None:
        """Add a window's (bands, height, width) output."""
        if block.shape != (self.n_bands, tile.height, tile.width):
            raise ValueError(f"block {block.shape} does not match window {tile} with {self.n_bands} bands")
        if tile.row < self.base:
            raise RuntimeError(f"window {tile.index} touches rows already written")
        self._ensure(tile.row + tile.height)
        w = self.plan.weights(tile)
        r0 = tile.row - self.base
        rows = slice(r0, r0 + tile.height)
        cols = slice(tile.col, tile.col + tile.width)
        self._sum[:, rows, cols] += block * w
        self._wsum[rows, cols] += w
        self._pending[tile.ty] -= 1
        while self._done_rows < len(self._pending) and self._pending[self._done_rows] == 0:
            self._done_rows += 1
        if self._done_rows:
            self._flush(self.plan.row_final(self._done_rows - 1))

    def _flush_end(self, final: int) -> int:
        """Rows [0, end) that can be written once rows [0, final) are final (whole block rows)."""
        if final >= self.plan.height:
            return self.plan.height
        return (final // self.block_rows) * self.block_rows

    def _flush(self, final: int) -> None:
        end = self._flush_end(final)
        if end <= self.base:
            return
        n = end - self.base
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self._sum[:, :n] / self._wsum[None, :n]
        out[:, self._wsum[:n] <= 0] = np.nan
        self.sink(out, self.base)
        rest = self._wsum.shape[0] - n
        self._sum[:, :rest] = self._sum[:, n:]
        self._sum[:, rest:] = 0
        self._wsum[:rest] = self._wsum[n:]
        self._wsum[rest:] = 0
        self.base = end

    def close(self) -> None:
        """Release the buffer and check that every row was written."""
        if self._spill is not None:
            self._sum = np.zeros((self.n_bands, 0, self.plan.width), np.float32)
            self._spill.close()
            self._spill = None
        if self.base < self.plan.height:
            missing = [ty for ty, p in enumerate(self._pending) if p]
            raise RuntimeError(f"BlendWriter closed with rows {self.base}..{self.plan.height} unwritten "
                               f"(tile rows still pending: {missing})")


def run_tiles(plan: TilePlan, task: Callable[[list[Tile]], Sequence[np.ndarray]], writer: BlendWriter,
              batch: int = 4, progress: Callable[[float, str], None] | None = None,
              cancel: Callable[[], bool] | None = None, progress_range: tuple[float, float] = (0.0, 1.0)
              ) -> int:
    """Run ``task`` on batches of windows (each returns one (bands, h, w) block per window) into ``writer``.

    ``cancel()`` is checked before each batch (raises CancelledError); ``progress(fraction, message)`` is
    called after each batch, mapped into ``progress_range``. Returns the number of windows processed.
    """
    lo, hi = progress_range
    done = 0
    for group in plan.batches(batch):
        if cancel is not None and cancel():
            raise CancelledError()
        blocks = task(group)
        if len(blocks) != len(group):
            raise RuntimeError(f"task returned {len(blocks)} blocks for {len(group)} windows")
        for t, b in zip(group, blocks, strict=True):
            writer.add(t, b)
        done += len(group)
        if progress is not None:
            progress(lo + (hi - lo) * done / plan.n_tiles, f"tile {done}/{plan.n_tiles}")
    writer.close()
    return done


__all__ = ["BlendWriter", "EDGE_MODES", "Tile", "TilePlan", "pad_reflect", "plan_tiles", "raised_cosine",
           "run_tiles"]

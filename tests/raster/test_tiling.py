"""raster/tiling.py: window plans, raised-cosine weights, the bounded-memory blending writer."""

from __future__ import annotations

import numpy as np
import pytest

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.raster.tiling import BlendWriter, pad_reflect, plan_tiles, raised_cosine, run_tiles


def _coverage(plan):
    acc = np.zeros((plan.height, plan.width))
    for t in plan.tiles:
        acc[t.row:t.row + t.height, t.col:t.col + t.width] += plan.weights(t)
    return acc


@pytest.mark.parametrize("edge", ["shift", "pad"])
@pytest.mark.parametrize("h,w,s,tile,overlap", [(120, 200, 4, 64, 16), (300, 72, 3, 50, 10), (36, 36, 3, 64, 16),
                                                (1024, 1024, 4, 256, 32)])
def test_plan_covers_grid_aligned_to_scale(h, w, s, tile, overlap, edge):
    plan = plan_tiles(h, w, s, tile, overlap, edge=edge)
    assert plan.tile % s == 0 and plan.overlap % s == 0 and plan.tile >= tile
    shapes = {(t.height + t.pad_bottom, t.width + t.pad_right) for t in plan.tiles}
    assert shapes == {plan.tile_shape}  # one shape per batch
    for t in plan.tiles:
        assert t.row % s == 0 and t.col % s == 0 and t.height % s == 0 and t.width % s == 0
        assert t.row + t.height <= h and t.col + t.width <= w
        if edge == "shift":
            assert (t.height, t.width) == plan.tile_shape and t.pad_bottom == t.pad_right == 0
    for starts, ends in ((plan.row_starts, plan.row_ends), (plan.col_starts, plan.col_ends)):
        assert starts[0] == 0 and ends[-1] == (h if starts is plan.row_starts else w)
        assert all(e0 - s1 >= min(plan.overlap, e0) for e0, s1 in zip(ends[:-1], starts[1:], strict=True))
    acc = _coverage(plan)
    assert acc.min() > 0.99 and acc.max() < 1.01


def test_small_raster_single_tile_and_rounding():
    plan = plan_tiles(24, 36, 3, 256, 32)
    assert plan.n_tiles == 1 and plan.tile_shape == (24, 36) and np.all(plan.weights(plan.tiles[0]) == 1)
    plan = plan_tiles(300, 300, 3, 100, 10)
    assert (plan.tile, plan.overlap) == (102, 12) and "rounded up" in plan.messages[0]
    with pytest.raises(CsakdError, match="tile overlap"):
        plan_tiles(30, 30, 3, 12, -3)
    with pytest.raises(CsakdError, match="edge mode"):
        plan_tiles(30, 30, 3, 12, 3, edge="wrap")


def test_weights_raised_cosine_no_taper_at_raster_edges():
    r = raised_cosine(8)
    assert np.allclose(r + r[::-1], 1.0) and r[0] < 0.05 and np.all(np.diff(r) > 0)
    plan = plan_tiles(64, 112, 4, 64, 16)  # 1 x 2 tiles
    assert plan.n_tiles == 2
    w0, w1 = plan.weights(plan.tiles[0]), plan.weights(plan.tiles[1])
    assert np.all(w0[:, 0] == 1) and np.all(w0[0] == w0[-1]) and np.all(w1[:, -1] == 1)
    ov = plan.col_ends[0] - plan.col_starts[1]
    assert np.allclose(w0[:, -ov:] + w1[:, :ov], 1.0)
    assert np.all(w0[:, : w0.shape[1] - ov] == 1)


@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_blend_writer_reconstructs_and_flushes_whole_blocks(edge):
    h, w, s = 200, 60, 4
    plan = plan_tiles(h, w, s, 32, 8, edge=edge)
    img = np.random.default_rng(0).random((3, h, w)).astype(np.float32)
    img[1, 50:60, 10:20] = np.nan
    chunks: list[tuple[int, np.ndarray]] = []
    spill = edge == "pad"  # also exercise the memory-mapped buffer
    writer = BlendWriter(plan, 3, lambda block, row0: chunks.append((row0, block.copy())), block_rows=16,
                         batch=3, max_buffer_mb=0.01 if spill else None)
    assert writer.spilled == spill
    run_tiles(plan, lambda tiles: [img[:, t.row:t.row + t.height, t.col:t.col + t.width] for t in tiles],
              writer, batch=3)
    rows = [r for r, _ in chunks]
    assert rows == sorted(rows) and rows[0] == 0
    assert all(r % 16 == 0 for r in rows) and all(b.shape[1] % 16 == 0 for _, b in chunks[:-1])
    out = np.concatenate([b for _, b in chunks], axis=1)
    assert out.shape == img.shape
    np.testing.assert_allclose(out, img, rtol=0, atol=1e-6)  # NaN positions equal too
    # bounded: the strip buffer holds far fewer rows than the raster
    assert writer.peak_buffer_bytes < 0.6 * img.nbytes


def test_run_tiles_cancel_and_progress():
    plan = plan_tiles(64, 64, 4, 16, 4)
    seen = []
    writer = BlendWriter(plan, 1, lambda b, r: None)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        run_tiles(plan, lambda ts: [np.zeros((1, t.height, t.width), np.float32) for t in ts], writer, batch=2,
                  progress=lambda f, m: seen.append(f), cancel=cancel)
    assert len(seen) == 2 and 0 < seen[0] < seen[1] < 1


def test_pad_reflect():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    y = pad_reflect(x, 2, 1)
    assert y.shape == (1, 5, 5) and y[0, 3, 0] == x[0, 1, 0] and y[0, 0, 4] == x[0, 0, 2]
    assert pad_reflect(x, 0, 0) is x
    assert pad_reflect(np.ones((2, 1, 1), np.float32), 3, 3).shape == (2, 4, 4)

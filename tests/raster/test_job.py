"""raster/job.py: the one tiled raster job behind fuse() and superresolve() (nodata, mirrored edges, column
groups, shared checks and results)."""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pytest
import rasterio
from _helpers_raster import read_all, synthetic_reference, write_pair
from scipy.ndimage import uniform_filter

import csakd_qgis.raster.job as job
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.superresolve import SRPredictor, superresolve
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.raster.tiling import BlendWriter, plan_tiles, run_tiles

SMALL_BLOCKS = {"BLOCKXSIZE": "16", "BLOCKYSIZE": "16"}
JOB_TIMINGS = {"read_s", "read_cpu_s", "predict_s", "blend_write_s", "blend_write_cpu_s", "write_s", "wait_read_s",
               "wait_write_s", "tiles_s", "finalize_s", "network_s", "buffer_mb", "setup_s"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Synthetic 32-band pair at s = 4 (LR 16 x 24 px) with two bad bands and a nodata top LR row."""
    return write_pair(tmp_path_factory.mktemp("job"), synthetic_reference(), scale=4, bad_bands=2, nodata_lr_rows=1)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The same synthetic pair without bad bands or nodata."""
    return write_pair(tmp_path_factory.mktemp("job_clean"), synthetic_reference(), scale=4)


def _mirrored_bicubic(lr: np.ndarray, s: int) -> np.ndarray:
    """In-memory bicubic with the context beyond the raster mirrored about its edge (the job's convention)."""
    return upsample_bicubic(np.pad(lr, ((0, 0), (2, 2), (2, 2)), mode="symmetric"), s)[:, 2 * s:-2 * s, 2 * s:-2 * s]


class BoxSR(SRPredictor):
    """3 x 3 LR box mean, nearest-upsampled: its value at the raster edge depends on the context beyond it."""

    def __init__(self, scale: int = 4, halo: int = 2) -> None:
        self.scale, self.halo_lr, self.name, self.device_used = scale, halo, "box", "cpu"
        self.hsi_bands, self.network_seconds, self.messages, self.inputs = None, 0.0, [], []

    def predict(self, lr: np.ndarray) -> np.ndarray:
        self.inputs.append(lr.copy())
        y = uniform_filter(lr, size=(1, 1, 3, 3), mode="reflect")
        return np.repeat(np.repeat(y, self.scale, axis=-2), self.scale, axis=-1)


def test_superresolve_writes_nodata_as_the_files_nodata_value(pair, tmp_path):
    """Bad bands and nodata pixels hold the file's nodata value (never NaN), like fuse's output."""
    out, fused = tmp_path / "sr.tif", tmp_path / "fused.tif"
    superresolve(pair["hsi"], out, model="bicubic", scale=4, tile=32, overlap=8)
    fuse(pair["hsi"], pair["msi"], fused, model="bicubic", tile=32, overlap=8)
    bad = [i for i, b in enumerate(pair["bbl"]) if not b]
    good = [i for i, b in enumerate(pair["bbl"]) if b]
    for path in (out, fused):
        with rasterio.open(path) as ds:
            raw = ds.read()
            assert ds.nodata == -9999.0 and [ds.tags(i + 1)["bbl"] for i in bad] == ["0", "0"]
        assert not np.isnan(raw).any()
        assert (raw[bad] == -9999.0).all()  # bad bands: all nodata
        assert (raw[np.ix_(good, range(4), range(raw.shape[2]))] == -9999.0).all()  # the nodata LR row
        assert (raw[good, 4:] != -9999.0).all() and np.isfinite(raw[good, 4:]).all()


def test_superresolve_tiled_equals_whole_with_mirrored_edges(clean, tmp_path, monkeypatch):
    """Windows, padded edge windows and column groups give the whole-raster result with mirrored context."""
    lr = read_all(clean["hsi"])[0]
    whole = BoxSR()
    superresolve(clean["hsi"], tmp_path / "whole.tif", model=whole, tile=4096)
    assert len(whole.inputs) == 1  # one window: the whole raster plus the mirrored halo
    np.testing.assert_array_equal(whole.inputs[0][0], np.pad(lr, ((0, 0), (2, 2), (2, 2)), mode="symmetric"))
    monkeypatch.setattr(job, "GROUP_WIDTH", 32)
    ref = np.repeat(np.repeat(uniform_filter(lr, size=(1, 3, 3), mode="reflect"), 4, axis=-2), 4, axis=-1)
    for edge, tile in (("shift", 32), ("pad", 28)):
        res = superresolve(clean["hsi"], tmp_path / f"{edge}.tif", model=BoxSR(), tile=tile, overlap=8, batch=3,
                           edge=edge, creation_options=SMALL_BLOCKS)
        assert res.n_tiles > 6 and any("column groups" in m for m in res.messages), res.messages
        np.testing.assert_allclose(read_all(tmp_path / f"{edge}.tif")[0], ref, atol=1e-6)
    np.testing.assert_allclose(read_all(tmp_path / "whole.tif")[0], ref, atol=1e-6)
    superresolve(clean["hsi"], tmp_path / "bicubic.tif", model="bicubic", scale=4, tile=24, overlap=8,
                 creation_options=SMALL_BLOCKS)
    np.testing.assert_allclose(read_all(tmp_path / "bicubic.tif")[0], _mirrored_bicubic(lr, 4), atol=1e-5)


def test_superresolve_blend_buffer_bounded_by_column_groups(tmp_path, monkeypatch):
    """Doubling the raster width leaves the blend buffer unchanged (column groups, not whole-width rows)."""
    writers: list[BlendWriter] = []

    class Recording(BlendWriter):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            writers.append(self)

    monkeypatch.setattr(job, "BlendWriter", Recording)
    monkeypatch.setattr(job, "GROUP_WIDTH", 64)
    buffers = []
    for width in (256, 512):
        p = write_pair(tmp_path, synthetic_reference(n_bands=8, height=32, width=width), scale=4, name=f"w{width}")
        res = superresolve(p["hsi"], tmp_path / f"sr{width}.tif", model="bicubic", scale=4, tile=32, overlap=8,
                           creation_options=SMALL_BLOCKS)
        bw = writers[-1]
        assert len(bw.groups) >= width // 64 and bw.buffer_width <= 64
        assert res.timings["buffer_mb"] == bw.peak_buffer_bytes / 2 ** 20
        buffers.append((bw.buffer_width, bw.ring, bw.peak_buffer_bytes))
        np.testing.assert_allclose(read_all(tmp_path / f"sr{width}.tif")[0],
                                   _mirrored_bicubic(read_all(p["hsi"])[0], 4), atol=1e-5)
    assert buffers[0] == buffers[1]


def test_fuse_and_superresolve_share_the_job(clean, tmp_path, monkeypatch):
    """Both entry points run TiledRasterJob.run; bicubic (MSI unused) gives the same file through either."""
    calls = []
    run = job.TiledRasterJob.run

    def spy(self, layers, predictor, *args, **kwargs):
        calls.append(([ly.factor for ly in layers], predictor.name))
        return run(self, layers, predictor, *args, **kwargs)

    monkeypatch.setattr(job.TiledRasterJob, "run", spy)
    kw = {"model": "bicubic", "tile": 32, "overlap": 8, "batch": 3, "creation_options": SMALL_BLOCKS}
    rf = fuse(clean["hsi"], clean["msi"], tmp_path / "fused.tif", **kw)
    rs = superresolve(clean["hsi"], tmp_path / "sr.tif", scale=4, **kw)
    assert calls == [([1, 4], "bicubic"), ([1], "bicubic")]
    for r in (rf, rs):
        assert isinstance(r, job.RasterJobResult) and JOB_TIMINGS <= r.timings.keys()
        assert (r.width, r.height, r.bands, r.n_tiles, r.scale) == (96, 64, 32, rf.n_tiles, 4)
        assert r.summary() in r.messages[-1]
    a, ia = read_all(tmp_path / "fused.tif")
    b, ib = read_all(tmp_path / "sr.tif")
    assert (ia["transform"], ia["crs"], ia["nodata"], ia["tags"]) == (ib["transform"], ib["crs"], ib["nodata"],
                                                                       ib["tags"])
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("bad,match", [({"tile": 0}, "tile must be at least 1"),
                                       ({"overlap": -1}, "overlap must be at least 0"),
                                       ({"batch": 2.5}, "batch must be an integer"),
                                       ({"threads": 0}, "threads must be at least 1"),
                                       ({"edge": "wrap"}, "Tile edge mode 'wrap'")])
def test_shared_argument_checks(clean, tmp_path, bad, match):
    """fuse() and superresolve() refuse the same bad options with the same message, before any compute."""
    with pytest.raises(CsakdError, match=match):
        fuse(clean["hsi"], clean["msi"], tmp_path / "f.tif", model="bicubic", **bad)
    with pytest.raises(CsakdError, match=match):
        superresolve(clean["hsi"], tmp_path / "s.tif", model="bicubic", scale=4, **bad)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CsakdError, match="group_width must be at least 0"):
        job.check_options(group_width=-1)


def test_pipeline_keeps_at_most_queue_plus_one_batches_alive():
    """A batch is computed only when the writer has room for it: queue_batches + 1 outputs alive, not more."""
    plan = plan_tiles(64, 64, 1, 8, 0)
    lock, alive, peak = threading.Lock(), [0], [0]

    def freed() -> None:
        with lock:
            alive[0] -= 1

    def task(tiles, data):
        out = np.zeros((len(tiles), 1, 8, 8), np.float32)
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        weakref.finalize(out, freed)
        return list(out)  # views: the batch lives as long as any of its blocks

    class SlowWriter(BlendWriter):
        def add(self, tile, block) -> None:
            time.sleep(0.002)
            super().add(tile, block)

    n = run_tiles(plan, task, SlowWriter(plan, 1, lambda *a: None, block_rows=8), batch=4,
                  read=lambda tiles: None, background_write=True, queue_batches=1)
    assert n == 64 and peak[0] == 2 and alive[0] == 0


@pytest.mark.parametrize("reads_into", [True, False])
def test_row_chunks_reuse_one_buffer_and_match_the_raster(reads_into):
    """Row chunks roll inside one buffer (no old + new + concatenation) and every view equals the mirrored raster."""
    from csakd_qgis.raster.job import Layer, _RowChunks

    a = np.random.default_rng(1).random((3, 100, 40), dtype=np.float32)
    padded = np.pad(a, ((0, 0), (50, 50), (50, 50)), mode="symmetric")

    def read(r, c, h, w, out=None):
        block = padded[:, r + 50:r + 50 + h, c + 50:c + 50 + w].copy()
        if out is None:
            return block
        out[...] = block
        return out

    for block_rows in (1, 7, 16):
        chunks = _RowChunks(Layer(read, 3, 1, 100, block_rows, 0, reads_into=reads_into), -4, 48, 30)
        buffers = set()
        for row in range(-4, 92, 5):
            view = chunks.get(row, -2, 12, 20)
            buffers.add(id(chunks.buf))
            np.testing.assert_array_equal(view, padded[:, row + 50:row + 62, 48:68])
        assert len(buffers) == 1 and chunks.buf.shape[1] <= 30
        if block_rows == 16:
            assert chunks.reads < 10  # chunks cut on 16-row blocks, not one read per window

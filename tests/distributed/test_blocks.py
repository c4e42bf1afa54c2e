"""One raster across workers: block tasks (column-group ranges) assembled into a COG equal the single-process run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers_dist import cluster_fixture, enmap_scene, write_pair  # noqa: F401 - the cluster fixture
from _helpers_raster import read_all

from csakd_qgis.distributed.blocks import run_blocks
from csakd_qgis.distributed.cluster import SerialExecutor
from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.superresolve import superresolve

pytestmark = pytest.mark.shared_data
SMALL = dict(model="glp", tile=128, overlap=16, group_width=256)  # 768 px wide: 3 column groups


@pytest.fixture(scope="module")
def wide_pair(tmp_path_factory) -> dict:
    """An EnMAP-derived pair of 128 x 768 HR px (55 bands, scale 4)."""
    return write_pair(tmp_path_factory.mktemp("wide"), ref=enmap_scene(128, 768, band_step=4))


def _same_raster(a: Path, b: Path, tol: float = 1e-5) -> float:
    """Max abs difference of two rasters after checking grid, nodata mask and band metadata."""
    x, ix = read_all(a)
    y, iy = read_all(b)
    for key in ("crs", "transform", "width", "height", "count", "descriptions", "nodata", "tags"):
        assert ix[key] == iy[key], key
    assert np.array_equal(np.isnan(x), np.isnan(y))
    diff = float(np.nanmax(np.abs(x - y)))
    assert diff <= tol
    return diff


def _dataset_tags(path: Path) -> dict:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.tags()


def test_plan_parts_cover_the_plan_once():
    from csakd_qgis.raster.tiling import plan_tiles

    plan = plan_tiles(512, 2560, 4, 256, 32, group_width=512, group_align=256)
    parts = [plan.part(k, 3) for k in range(3)]
    assert plan.part(3, 3) is None and len(plan.groups) == 5
    assert sum(plan.part(k, 9) is not None for k in range(9)) == 5  # more parts than groups: some empty
    assert sum(p.n_tiles for p, _ in parts) == plan.n_tiles
    assert [off for _, off in parts] == [0, plan.groups[1].col0, plan.groups[3].col0]
    assert sum(p.width for p, _ in parts) == plan.width and all(off % 256 == 0 for _, off in parts)
    whole = [(t.row, t.col, t.height, t.width) for t in plan.tiles]
    assert whole == [(t.row, t.col + off, t.height, t.width) for p, off in parts for t in p.tiles]
    for p, off in parts:  # the same blending weights as in the whole plan
        for t in p.tiles:
            w = plan.weights(plan.tiles[whole.index((t.row, t.col + off, t.height, t.width))])
            assert np.array_equal(p.weights(t), w)


@pytest.mark.parametrize("parts, layout", [(3, "cog"), (8, "gtiff"), (2, "cog")])
def test_blocks_equal_the_single_process_output(wide_pair, tmp_path, parts, layout):
    p = wide_pair
    whole = fuse(p["hsi"], p["msi"], tmp_path / "whole.tif", **SMALL)
    res = run_blocks(fuse, {"hsi": str(p["hsi"]), "msi": str(p["msi"])}, tmp_path / "blocks.tif",
                     ex=SerialExecutor(), parts=parts, layout=layout, **SMALL)
    assert _same_raster(tmp_path / "whole.tif", tmp_path / "blocks.tif") == 0.0
    assert _dataset_tags(tmp_path / "whole.tif")["CSAKD_FUSION"] == _dataset_tags(tmp_path / "blocks.tif")["CSAKD_FUSION"]
    assert (res.width, res.height, res.n_tiles, res.bands) == (whole.width, whole.height, whole.n_tiles, whole.bands)
    assert res.timings["blocks"] == min(parts, 3) and res.messages[-1] == res.summary()
    assert sorted(os.listdir(tmp_path)) == ["blocks.tif", "whole.tif"]  # block folder and VRT removed
    if layout == "cog":
        from osgeo import gdal

        ds = gdal.Open(str(tmp_path / "blocks.tif"))
        assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG" and ds.GetRasterBand(1).GetOverviewCount() >= 0


@pytest.mark.parametrize("layout", ["gtiff", "cog"])
def test_int16_blocks_equal_the_single_process_output(wide_pair, tmp_path, layout):
    import rasterio

    p = wide_pair
    fuse(p["hsi"], p["msi"], tmp_path / "whole.tif", dtype="int16", **SMALL)
    run_blocks(fuse, {"hsi": str(p["hsi"]), "msi": str(p["msi"])}, tmp_path / "blocks.tif", ex=SerialExecutor(),
               parts=3, layout=layout, dtype="int16", **SMALL)
    assert _same_raster(tmp_path / "whole.tif", tmp_path / "blocks.tif") == 0.0
    with rasterio.open(tmp_path / "blocks.tif") as ds:  # the stored integers and their scale, as assembled
        assert ds.dtypes[0] == "int16" and ds.nodata == -32768 and set(ds.scales) == {1e-4}


def test_superresolve_blocks_equal_whole(wide_pair, tmp_path):
    kw = dict(model="bicubic", scale=2, tile=128, overlap=16)
    superresolve(wide_pair["msi"], tmp_path / "whole.tif", **kw)  # 4 bands, 1536 px wide: 2 column groups
    run_blocks(superresolve, {"hsi": str(wide_pair["msi"])}, tmp_path / "blocks.tif", ex=SerialExecutor(),
               parts=2, layout="gtiff", **kw)
    assert _same_raster(tmp_path / "whole.tif", tmp_path / "blocks.tif") == 0.0


def failing_entry(out: str, part: tuple[int, int], **kwargs):
    """An entry point whose second block fails (after the first has written its block file)."""
    if part[0] == 1:
        raise OSError(28, "No space left on device")
    return fuse(out=out, part=part, **kwargs)


@pytest.mark.parametrize("case", ["failed block", "cancel", "bad input"])
def test_nothing_at_the_output_on_failure(wide_pair, tmp_path, case):
    p, out = wide_pair, tmp_path / "blocks.tif"
    inputs = {"hsi": str(p["hsi"]), "msi": str(p["msi"])}
    if case == "failed block":
        with pytest.raises(OSError, match="No space left"):
            run_blocks(failing_entry, inputs, out, ex=SerialExecutor(), parts=3, retries=0, **SMALL)
    elif case == "cancel":
        with pytest.raises(CancelledError):
            run_blocks(fuse, inputs, out, ex=SerialExecutor(), parts=3, cancel=lambda: True, **SMALL)
    else:
        with pytest.raises(CsakdError, match="does not exist"):
            run_blocks(fuse, {**inputs, "msi": str(tmp_path / "missing.tif")}, out, ex=SerialExecutor(), **SMALL)
    assert os.listdir(tmp_path) == []  # no output, no block folder, no temporary file


def test_cli_fuse_on_a_scheduler(wide_pair, tmp_path, cluster, capsys):
    from csakd_qgis.cli import main

    p = wide_pair
    args = ["fuse", "--hsi", str(p["hsi"]), "--msi", str(p["msi"]), "--tile", "128", "--overlap", "16",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one.tif")]) == 0
    assert main([*args, "--out", str(tmp_path / "many.tif"), "--scheduler", cluster.client.scheduler.address]) == 0
    assert str(tmp_path / "many.tif") in capsys.readouterr().out
    _same_raster(tmp_path / "one.tif", tmp_path / "many.tif")


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory) -> dict:
    """An EnMAP-derived pair of 2048 x 2048 HR px (25 bands, scale 4: LR 512 x 512)."""
    return write_pair(tmp_path_factory.mktemp("big"), ref=enmap_scene(2048, 2048, band_step=9))


def test_2048_raster_across_two_workers_equals_single_process(big_pair, tmp_path, cluster):
    p = big_pair
    t0 = time.perf_counter()
    fuse(p["hsi"], p["msi"], tmp_path / "single.tif", model="glp")
    t1 = time.perf_counter()
    res = run_blocks(fuse, {"hsi": str(p["hsi"]), "msi": str(p["msi"])}, tmp_path / "dist.tif", ex=cluster,
                     model="glp")
    t2 = time.perf_counter()
    diff = _same_raster(tmp_path / "single.tif", tmp_path / "dist.tif")
    print(f"2048 x 2048 x {res.bands} bands: single process {t1 - t0:.1f} s, 2 workers {t2 - t1:.1f} s "
          f"({res.timings['blocks']:.0f} blocks, assembly {res.timings['assemble_s']:.1f} s), max abs diff {diff}")
    assert res.timings["blocks"] == 2 and res.width == res.height == 2048

"""csakd:fuse with MODEL=scene (the per-scene learner) through processing.run and qgis_process on a real
EnMAP-derived pair: alpha and the hold-out gain come back as outputs and in the GeoTIFF tag."""

from __future__ import annotations

import json

import pytest
import rasterio
from _helpers_raster import write_pair
from qgis_helpers import run_json

pytestmark = pytest.mark.qgis


def _check(out, res) -> None:
    with rasterio.open(out) as ds:
        tag = json.loads(ds.tags()["CSAKD_FUSION"])
    scene = tag["observation"]["scene"]
    assert tag["model"] == "scene" and 0.0 <= scene["alpha"] <= 1.0
    assert res["SCENE_ALPHA"] == pytest.approx(scene["alpha"])
    assert res["SCENE_GAIN_DB"] == pytest.approx(scene["holdout_gain_db"])


def test_fuse_scene_processing_run(provider, tmp_path):
    import processing

    p = write_pair(tmp_path, scale=3)
    out = tmp_path / "scene.tif"
    res = processing.run("csakd:fuse", {"HSI": str(p["hsi"]), "MSI": str(p["msi"]), "MODEL": "scene",
                                        "DEVICE": "cpu", "OUTPUT": str(out)})
    _check(out, res)


def test_fuse_scene_qgis_process(tmp_path):
    p = write_pair(tmp_path, scale=3)
    out = tmp_path / "scene_qp.tif"
    rc, data, err = run_json("csakd:fuse", {"HSI": p["hsi"], "MSI": p["msi"], "MODEL": "scene", "DEVICE": "cpu",
                                            "OUTPUT": out}, tmp_path / "profile")
    assert rc == 0, err
    _check(out, data["results"])

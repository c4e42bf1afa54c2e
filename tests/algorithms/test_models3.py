"""The ready-made Processing models in processing/ run headless through qgis_process, outputs checked.

- reproject_fuse_clip.model3: gdal:warpreproject (HSI) -> csakd:fuse (a model file) -> gdal:cliprasterbymasklayer
- simulate_fuse_evaluate.model3: csakd:simulate_pair -> csakd:fuse -> csakd:evaluate
- the .model3 files are what scripts/make_models.py generates (regenerate: .venv/bin/python scripts/make_models.py).
(reproject_fuse_classical.model3 is run by tests/test_processing_run.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import ROOT
from qgis_helpers import assert_same_grid, run_qgis_process
from test_algorithms import make_tiny_model, read, rmse

pytestmark = pytest.mark.qgis

MODELS = ROOT / "processing"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synthetic_pair) -> dict:
    return make_tiny_model(tmp_path_factory.mktemp("model3_model"), synthetic_pair["hsi"])


def run_model(name: str, params: dict, profile) -> dict:
    proc = run_qgis_process(["--json", "run", str(MODELS / name), "--",
                             *[f"{k}={v}" for k, v in params.items()]], profile)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)["results"]


def hsi_in_25833(src, dst) -> None:
    """The LR-HSI reprojected to ETRS89 / UTM 33N (EPSG:25833), band metadata kept: the model's warp has work."""
    from rasterio.warp import calculate_default_transform, reproject

    with rasterio.open(src) as ds:
        transform, w, h = calculate_default_transform(ds.crs, "EPSG:25833", ds.width, ds.height, *ds.bounds,
                                                      resolution=40.0)
        profile = ds.profile
        profile.update(crs="EPSG:25833", transform=transform, width=w, height=h)
        with rasterio.open(dst, "w", **profile) as out:
            for b in range(1, ds.count + 1):
                reproject(rasterio.band(ds, b), rasterio.band(out, b))
                out.update_tags(b, **ds.tags(b))
                out.set_band_description(b, ds.descriptions[b - 1])


def test_model_files_are_generated_and_up_to_date(tmp_path):
    """processing/*.model3 equal what scripts/make_models.py writes now (run it again after changes)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_models.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.glob("*.model3"))
    assert names == ["reproject_fuse_classical.model3", "reproject_fuse_clip.model3",
                     "simulate_fuse_evaluate.model3"]
    for name in names:
        assert (tmp_path / name).read_text() == (MODELS / name).read_text(), f"{name} is stale: run scripts/make_models.py"


def test_model_children_have_readable_ids(qgis_app):
    from qgis.core import QgsProcessingModelAlgorithm

    expected = {"reproject_fuse_clip.model3": {"reproject": "gdal:warpreproject", "fuse": "csakd:fuse",
                                               "clip": "gdal:cliprasterbymasklayer"},
                "simulate_fuse_evaluate.model3": {"simulate": "csakd:simulate_pair", "fuse": "csakd:fuse",
                                                  "evaluate": "csakd:evaluate"}}
    for name, children in expected.items():
        m = QgsProcessingModelAlgorithm()
        assert m.fromFile(str(MODELS / name))
        assert {cid: c.algorithmId() for cid, c in m.childAlgorithms().items()} == children
        assert m.helpContent()["ALG_DESC"]


def test_reproject_fuse_clip_model(synthetic_pair, tiny, tmp_path):
    hsi = tmp_path / "hsi_25833.tif"
    hsi_in_25833(synthetic_pair["hsi"], hsi)
    with rasterio.open(synthetic_pair["msi"]) as ds:
        x0, y0 = ds.transform.c + 100.0, ds.transform.f - 120.0  # grid-aligned corner of the AOI
    # a right triangle, 300 m legs: pixels whose centre is inside are kept, the rest of its bbox is nodata
    ring = [[x0, y0], [x0 + 300, y0], [x0, y0 - 300], [x0, y0]]
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection",
                               "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
                               "features": [{"type": "Feature", "properties": {"id": 1},
                                             "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    out = tmp_path / "clipped.tif"
    res = run_model("reproject_fuse_clip.model3", {
        "hsi": hsi, "msi": synthetic_pair["msi"], "crs": "EPSG:32633", "model": "file",
        "model_file": tiny["path"], "device": "cpu", "aoi": aoi, "clip:clipped": out}, tmp_path / "profile")
    assert res["clip:clipped"] == str(out)
    with rasterio.open(out) as ds, rasterio.open(synthetic_pair["hsi"]) as h:
        assert ds.crs.to_epsg() == 32633 and ds.res == (10.0, 10.0) and ds.count == 40
        assert (ds.transform.c, ds.transform.f, ds.width, ds.height) == (x0, y0, 30, 30)
        assert [ds.tags(b)["wavelength"] for b in (1, 20, 40)] == [h.tags(b)["wavelength"] for b in (1, 20, 40)]
        assert json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "tiny_test"
        data = ds.read(masked=True)
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    assert abs(int(valid.sum()) - 450) <= 30  # the triangle's area in 10 m pixels
    assert valid[0, 0] and valid[-1, 0] and valid[0, -1] and not valid[-1, -1]
    with rasterio.open(synthetic_pair["reference"]) as ref_ds:
        col0, row0 = (int(v) for v in ~ref_ds.transform * (x0 + 5, y0 - 5))
        ref = ref_ds.read()[:, row0:row0 + 30, col0:col0 + 30]
    assert rmse(data.filled(np.nan)[:, valid], ref[:, valid]) < 0.03


def test_simulate_fuse_evaluate_model(synthetic_pair, tmp_path):
    fused, report, metrics = tmp_path / "fused.tif", tmp_path / "report.html", tmp_path / "metrics.json"
    res = run_model("simulate_fuse_evaluate.model3", {
        "reference": synthetic_pair["reference"], "sensor": "S2A:B2,B3,B4,B8", "scale": 4, "model": "glp",
        "device": "cpu", "fuse:fused": fused, "evaluate:report": report, "evaluate:metrics": metrics},
        tmp_path / "profile")
    assert res == {"fuse:fused": str(fused), "evaluate:report": str(report), "evaluate:metrics": str(metrics)}
    assert_same_grid(fused, synthetic_pair["reference"])  # fused on the simulated MSI = reference grid
    m = json.loads(metrics.read_text())
    assert m["n_bands"] == 40 and m["scale"] == 4
    assert m["rmse"] == pytest.approx(rmse(read(fused), read(synthetic_pair["reference"])), rel=1e-4)
    assert m["psnr_capped"] > m["bicubic"]["psnr_capped"] + 3 and m["sam"] < m["bicubic"]["sam"]
    assert "bicubic upsampling of" in m["bicubic_source"] and "OUTPUT_LR" in m["bicubic_source"]
    assert "PSNR" in report.read_text()


def test_model_refuses_an_unknown_model_name(synthetic_pair, tmp_path):
    """A model parameter reaching csakd:fuse is validated (QGIS would silently fall back to the default)."""
    out = tmp_path / "out"
    out.mkdir()
    proc = run_qgis_process(["--json", "run", str(MODELS / "simulate_fuse_evaluate.model3"), "--",
                             f"reference={synthetic_pair['reference']}", "model=enmap_nonexistent_x3",
                             f"fuse:fused={out / 'fused.tif'}", f"evaluate:report={out / 'report.html'}",
                             f"evaluate:metrics={out / 'metrics.json'}"], tmp_path / "profile")
    assert proc.returncode == 1, proc.stdout
    assert "MODEL 'enmap_nonexistent_x3' is not available: choose one of" in proc.stderr
    assert "glp, gsa, bicubic, file" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == []

"""csakd:fuse_classical with a model-based method: runs through processing.run and reports the observation model."""

from __future__ import annotations

import json

import pytest
import rasterio

pytestmark = pytest.mark.qgis


def test_fuse_classical_auto_reports_observation(provider, synthetic_pair, tmp_path):
    import processing

    out = tmp_path / "fused_auto.tif"
    res = processing.run("csakd:fuse_classical", {
        "HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"]), "METHOD": "auto", "PSF": "auto",
        "SRF": "auto", "OUTPUT": str(out)})
    obs = json.loads(res["OBSERVATION"])
    assert obs["choice"] == "glp+c" and obs["observation"]["scale"] == 4
    assert abs(res["PSF_SIGMA"] - 2.0) < 0.2  # the simulated pair has the Wald blur, sigma = s/2 = 2 MSI px
    with rasterio.open(out) as ds:
        tag = json.loads(ds.tags()["CSAKD_FUSION"])
    assert tag["model"].startswith("auto") and "observation" in tag


def test_fuse_classical_default_glp_cy_reports_the_observation_model(provider, synthetic_pair, tmp_path):
    import processing

    inputs = {"HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"])}
    res = processing.run("csakd:fuse_classical", {**inputs, "OUTPUT": str(tmp_path / "default.tif")})
    with rasterio.open(tmp_path / "default.tif") as ds:
        assert json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "glp+cy"  # the default: GLP + consistency
    assert res["PSF_SIGMA"] > 0 and json.loads(res["OBSERVATION"])["observation"]["msi_linear"]
    processing.run("csakd:fuse_classical", {**inputs, "METHOD": "glp", "OUTPUT": str(tmp_path / "glp.tif")})
    with rasterio.open(tmp_path / "glp.tif") as ds:
        assert json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "glp"

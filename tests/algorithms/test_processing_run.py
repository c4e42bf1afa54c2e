"""The provider inside a QGIS application (pytest-qgis): processing.run and a .model3 chain."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import ROOT
from qgis_helpers import assert_same_grid, run_qgis_process

pytestmark = pytest.mark.qgis


def test_provider_registration_is_idempotent(provider):
    from qgis.core import QgsApplication

    provider.initProcessing()
    provider.initGui()
    ids = [p.id() for p in QgsApplication.processingRegistry().providers()]
    assert ids.count("csakd") == 1


def test_plugin_load_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, %r); import csakd_qgis, csakd_qgis.plugin, csakd_qgis.provider, "
            "csakd_qgis.algorithms; csakd_qgis.algorithms.all_algorithms(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code % str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_processing_run_fuse_classical(provider, synthetic_pair, tmp_path):
    import processing

    out = tmp_path / "fused.tif"
    res = processing.run("csakd:fuse_classical", {
        "HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"]), "METHOD": "gsa",
        "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out)
    assert_same_grid(out, synthetic_pair["msi"])
    with rasterio.open(out) as ds, rasterio.open(synthetic_pair["reference"]) as ref:
        assert ds.count == ref.count
        assert np.sqrt(np.mean((ds.read() - ref.read()) ** 2)) < 0.02


def _hsi_in_other_crs(src_path, dst_path):
    """Write the LR-HSI reprojected to ETRS89 / UTM 33N (EPSG:25833) so the model's warp has work to do."""
    from rasterio.warp import calculate_default_transform, reproject

    with rasterio.open(src_path) as src:
        transform, w, h = calculate_default_transform(src.crs, "EPSG:25833", src.width, src.height,
                                                      *src.bounds, resolution=40.0)
        profile = src.profile
        profile.update(crs="EPSG:25833", transform=transform, width=w, height=h)
        with rasterio.open(dst_path, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                reproject(rasterio.band(src, b), rasterio.band(dst, b))
                dst.update_tags(b, **src.tags(b))
                dst.set_band_description(b, src.descriptions[b - 1])


def test_model3_chain_processing_run(provider, synthetic_pair, tmp_path):
    from qgis.core import QgsProcessingModelAlgorithm

    import processing

    hsi = tmp_path / "hsi_25833.tif"
    _hsi_in_other_crs(synthetic_pair["hsi"], hsi)
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(ROOT / "processing" / "reproject_fuse_classical.model3"))
    out = tmp_path / "fused_model.tif"
    res = processing.run(model, {"hsi": str(hsi), "msi": str(synthetic_pair["msi"]), "crs": "EPSG:32633",
                                 "method": "glp", "fuse:fused": str(out)})
    assert res["fuse:fused"] == str(out)
    assert_same_grid(out, synthetic_pair["msi"])
    with rasterio.open(out) as ds:
        assert ds.count == 40
        assert np.isfinite(ds.read(1)).mean() > 0.9


def test_model3_chain_qgis_process(synthetic_pair, tmp_path):
    hsi = tmp_path / "hsi_25833.tif"
    _hsi_in_other_crs(synthetic_pair["hsi"], hsi)
    out = tmp_path / "fused_model.tif"
    proc = run_qgis_process(["--json", "run", str(ROOT / "processing" / "reproject_fuse_classical.model3"),
                             "--", f"hsi={hsi}", f"msi={synthetic_pair['msi']}", "crs=EPSG:32633",
                             "method=glp", f"fuse:fused={out}"], tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr
    assert_same_grid(out, synthetic_pair["msi"])

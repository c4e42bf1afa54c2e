"""In QGIS on Windows an output that is loaded as a layer of the open project cannot be replaced: the algorithm
refuses it before running, in one line naming the layer and what to do (Windows semantics simulated)."""

from __future__ import annotations

import shutil

import pytest

from csakd_qgis import oscompat

pytestmark = pytest.mark.qgis


def test_output_loaded_as_a_layer_is_refused_with_the_layer_name(provider, pair, tmp_path, monkeypatch):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProject, QgsRasterLayer

    out = tmp_path / "fused.tif"
    shutil.copy(pair["msi"], out)
    layer = QgsRasterLayer(str(out), "my fused result")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    try:
        alg = QgsApplication.processingRegistry().createAlgorithmById("csakd:fuse_classical")
        params = {"HSI": str(pair["hsi"]), "MSI": str(pair["msi"]), "METHOD": "glp", "OUTPUT": str(out)}
        ctx = QgsProcessingContext()
        ok, _ = alg.checkParameterValues(params, ctx)
        assert ok  # Linux replaces a file QGIS has open: nothing changes here
        monkeypatch.setattr(oscompat, "windows_semantics", lambda: True)
        ok, msg = alg.checkParameterValues(params, ctx)
        assert not ok and "\n" not in msg
        assert "'my fused result'" in msg and str(out) in msg and "remove that layer from the project" in msg
    finally:
        QgsProject.instance().removeAllMapLayers()

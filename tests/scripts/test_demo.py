"""Demo inputs (real S2 MSI, synthetic reference, Wald LR-HSI) and `scripts/demo.py` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import ROOT

from csakd_qgis.raster.io import read_meta, read_reflectance
from csakd_qgis.spectral.band_grids import enmap_grid

if str(ROOT / "scripts") not in sys.path:  # the demo's input builder lives beside the demo script
    sys.path.insert(0, str(ROOT / "scripts"))
from demo_scene import build_demo_inputs  # noqa: E402


def _check_grids(paths: dict, scale: int, side: int, wl: np.ndarray) -> None:
    with rasterio.open(paths["hr_msi"]) as msi, rasterio.open(paths["reference_hsi"]) as ref, \
            rasterio.open(paths["lr_hsi"]) as lr:
        assert msi.crs == ref.crs == lr.crs and msi.crs.is_projected
        assert msi.transform == ref.transform
        assert lr.transform.almost_equals(msi.transform * msi.transform.scale(scale, scale))
        assert (lr.transform.c, lr.transform.f) == (msi.transform.c, msi.transform.f)  # same origin (LR/HR pixel grid)
        assert abs(lr.transform.a) == scale * abs(msi.transform.a)
        assert (msi.height, msi.width) == (ref.height, ref.width) == (side, side)
        assert (lr.height, lr.width) == (side // scale, side // scale)
        assert ref.count == lr.count == wl.size and msi.count == 4
        assert "REAL" in msi.tags()["CONTENT"] and "SYNTHETIC" in ref.tags()["CONTENT"]
        assert [msi.tags(i + 1)["band_name"] for i in range(4)] == ["B2", "B3", "B4", "B8"]
        assert msi.descriptions[3].startswith("B8")
    for key in ("reference_hsi", "lr_hsi"):
        meta = read_meta(paths[key])
        np.testing.assert_allclose(meta.wavelengths, wl, atol=1e-3)
        assert all(f is not None and f > 0 for f in meta.fwhm)


def test_build_demo_inputs_default_enmap_grid(tmp_path):
    from csakd_qgis.spectral.degrade import wald_degrade

    paths = build_demo_inputs(tmp_path, scale=3, size=60)
    wl, _ = enmap_grid()
    _check_grids(paths, 3, 60, wl)
    ref = read_reflectance(paths["reference_hsi"])
    lr = read_reflectance(paths["lr_hsi"])
    assert np.isfinite(ref).all() and ref.min() >= 0 and ref.max() <= 1
    np.testing.assert_allclose(lr, wald_degrade(ref, 3), atol=1e-6)
    info = json.loads(open(paths["info"]).read())
    assert info["georeferencing"] == "assumed" and info["msi_residual"]["rmse"] < 0.01
    assert {"spatial", "spectra", "synthetic"} <= set(info["provenance"])


def test_build_demo_inputs_custom_grid_scale4(tmp_path):
    wl = np.linspace(420, 2400, 30)
    paths = build_demo_inputs(tmp_path, wavelengths=wl, fwhm=np.full(30, 12.0), scale=4, size=66)
    _check_grids(paths, 4, 64, wl)  # 66 is cropped down to a multiple of the scale
    msi = read_reflectance(paths["hr_msi"])
    assert 0 < np.nanmin(msi) and np.nanmax(msi) < 1


def test_build_demo_inputs_refuses_other_sensors(tmp_path):
    from csakd_qgis.errors import CsakdError

    with pytest.raises(CsakdError, match="B11"):
        build_demo_inputs(tmp_path, scale=3, size=30, sensor="S2A:B2,B11")


@pytest.mark.qgis
def test_demo_script_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out), "--size", "60",
                           "--profile", str(tmp_path / "profile")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for name in ("lr_hsi.tif", "hr_msi.tif", "reference_hsi.tif", "fused_hsi.tif", "quicklook.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for est in ("fused", "bicubic"):
        assert all(np.isfinite(metrics["metrics"][est][k]) for k in ("psnr", "sam", "ergas"))
    assert metrics["metrics"]["fused"]["psnr"] > 25
    with rasterio.open(out / "fused_hsi.tif") as fused, rasterio.open(out / "hr_msi.tif") as msi:
        assert fused.transform == msi.transform and (fused.width, fused.height) == (60, 60)
    assert "PSNR" in proc.stdout

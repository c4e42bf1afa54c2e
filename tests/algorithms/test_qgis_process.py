"""End-to-end: the provider through headless qgis_process (isolated profile, plugin from this checkout)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis_helpers import assert_same_grid, run_json, run_qgis_process

pytestmark = pytest.mark.qgis


def test_list_shows_provider(tmp_path):
    proc = run_qgis_process(["list"], tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr
    assert "CSAKD hyperspectral fusion" in proc.stdout
    assert "csakd:fuse_classical" in proc.stdout


def test_help_reads_well(tmp_path):
    proc = run_qgis_process(["help", "csakd:fuse_classical"], tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr
    assert "integer multiple" in proc.stdout and "METHOD" in proc.stdout


@pytest.mark.parametrize("method", ["glp", "bicubic"])
def test_run_fuse_classical_json(tmp_path, synthetic_pair, method):
    out = tmp_path / f"fused_{method}.tif"
    rc, data, err = run_json("csakd:fuse_classical", {
        "HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"], "METHOD": method, "OUTPUT": out,
    }, tmp_path / "profile")
    assert rc == 0, err
    assert data["results"]["OUTPUT"] == str(out)
    assert data["results"]["ELAPSED_S"] >= 0
    assert_same_grid(out, synthetic_pair["msi"])
    with rasterio.open(out) as ds, rasterio.open(synthetic_pair["hsi"]) as hsi:
        assert ds.count == hsi.count
        assert ds.descriptions == hsi.descriptions
        assert ds.tags(1)["wavelength"][:5] == hsi.tags(1)["wavelength"][:5]
        fused = ds.read()
    with rasterio.open(synthetic_pair["reference"]) as ref:
        err_fused = np.sqrt(np.mean((fused - ref.read()) ** 2))
    assert err_fused < 0.02  # reflectance RMSE on the smooth synthetic scene


def _bad_input_cases(tmp_path, pair):
    """(name, params) pairs that must fail with exit 1 and a clear message."""
    import shutil

    from rasterio.transform import from_origin

    not_raster = tmp_path / "notes.tif"
    not_raster.write_text("this is not a raster")
    far = tmp_path / "far_msi.tif"
    shutil.copy(pair["msi"], far)
    with rasterio.open(far, "r+") as ds:
        ds.transform = from_origin(600000.0, 4000000.0, 10.0, 10.0)
    many = tmp_path / "many_band_msi.tif"
    with rasterio.open(pair["msi"]) as src:
        profile = src.profile
        data = src.read()
    profile.update(count=64)
    with rasterio.open(many, "w", **profile) as dst:
        dst.write(np.repeat(data[:1], 64, axis=0))
    return {
        "missing": ({"HSI": tmp_path / "nope.tif", "MSI": pair["msi"]}, "nope.tif"),
        "not_raster": ({"HSI": not_raster, "MSI": pair["msi"]}, "notes.tif"),
        "no_overlap": ({"HSI": pair["hsi"], "MSI": far}, "overlap"),
        "msi_more_bands": ({"HSI": pair["hsi"], "MSI": many}, "band"),
        "bad_extension": ({"HSI": pair["hsi"], "MSI": pair["msi"]}, ".tif"),
    }


@pytest.mark.parametrize("case", ["missing", "not_raster", "no_overlap", "msi_more_bands", "bad_extension"])
def test_bad_inputs_exit_1_and_leave_nothing(tmp_path, synthetic_pair, case):
    params, expect = _bad_input_cases(tmp_path, synthetic_pair)[case]
    out = tmp_path / ("fused.png" if case == "bad_extension" else "fused.tif")
    rc, _, err = run_json("csakd:fuse_classical", {**params, "OUTPUT": out}, tmp_path / "profile")
    assert rc == 1, err
    assert expect.lower() in err.lower(), err
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(("fused", ".fused"))]
    assert leftovers == []

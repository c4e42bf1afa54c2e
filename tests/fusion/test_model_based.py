"""Model-based methods end to end: CNMF, auto selection, method names, and the tiled raster engine."""

from __future__ import annotations

import numpy as np
import pytest

from bench.array_fusion import fuse_model_based
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.model_based import is_model_based, split_method
from csakd_qgis.fusion.observation import PSF, estimate_observation
from csakd_qgis.fusion.predictors import ModelBasedPredictor, make_predictor
from csakd_qgis.fusion.select import DEFAULT, DEFAULT_NONLINEAR
from csakd_qgis.fusion.unmixing import apply_cnmf, fit_cnmf, vca
from csakd_qgis.quality.metrics import psnr
from tests.fusion.test_observation import _pair


def test_method_names():
    assert split_method("GLP+C") == ("glp", "+c") and split_method("cnmf") == ("cnmf", "")
    assert is_model_based("auto") and is_model_based("gsa+cy") and not is_model_based("glp")
    with pytest.raises(CsakdError, match=r"Unknown fusion method 'glp\+x'"):
        split_method("glp+x")


def test_vca_finds_pure_pixels():
    rng = np.random.default_rng(0)
    e = rng.random((30, 3))
    a = rng.dirichlet(np.ones(3), 500).T
    a[:, :3] = np.eye(3)  # the pure pixels
    picked = vca(e @ a, 3, seed=0)
    for k in range(3):
        assert np.min(np.abs(picked - e[:, k:k + 1]).max(0)) < 1e-9


def test_cnmf_deterministic_and_better_than_bicubic():
    s = 4
    lr, msi, ref, _, _ = _pair(PSF.wald(s), s, size=64, rich=True)
    obs = estimate_observation(lr, msi, s)
    a = apply_cnmf(lr, msi, obs, fit_cnmf(lr, msi, obs, p=8))
    b = apply_cnmf(lr, msi, obs, fit_cnmf(lr, msi, obs, p=8))
    np.testing.assert_array_equal(a, b)
    bic, _ = fuse_model_based(lr, msi, s, "bicubic")
    assert psnr(ref, a) > psnr(ref, bic) + 3


def test_auto_reports_its_choice():
    s = 4
    lr, msi, ref, _, _ = _pair(PSF(0.35 * s, 0.3, 0.2), s, size=64, rich=True)
    out, rep = fuse_model_based(lr, msi, s, "auto")
    assert rep["choice"] == DEFAULT and "too small" in rep["reason"]  # 16 x 16 LR px: no reduced-scale score
    glp, _ = fuse_model_based(lr, msi, s, "glp")
    assert psnr(ref, out) > psnr(ref, glp) + 1  # the blur GLP assumes is wrong here
    assert rep["observation"]["psf_source"] == "estimated"
    rgbish = np.stack([msi[0] ** 2, np.sqrt(msi[1]), msi[2] * 0 + np.random.default_rng(0).random(msi[2].shape)])
    _, rep2 = fuse_model_based(lr, rgbish.astype(np.float32), s, "auto")
    assert rep2["choice"] == DEFAULT_NONLINEAR and not rep2["observation"]["msi_linear"]


def test_engine_tiles_equal_whole(tmp_path):
    """glp+c through fuse(): small tiles (each with the PSF's halo) give the one-tile result within 1e-4."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from csakd_qgis.fusion.fuse import fuse
    from csakd_qgis.raster.io import write_raster
    from csakd_qgis.raster.simulate import simulate_rasters
    from tests.fusion.test_observation import rich_reference

    cube, wl = rich_reference(size=192)
    ref = tmp_path / "ref.tif"
    write_raster(ref, cube, CRS.from_epsg(32633), from_origin(362175.0, 5809965.0, 10.0, 10.0),
                 wavelengths=list(wl), fwhm=[10.0] * len(wl))
    hsi, msi = tmp_path / "lr.tif", tmp_path / "msi.tif"
    simulate_rasters(str(ref), "S2A:B2,B3,B4,B8", 4, str(hsi), str(msi), shift=(0.3, 0.2))
    outs = []
    for name, tile in (("whole", 4096), ("tiled", 64)):
        pred = ModelBasedPredictor("glp+c", 4, len(wl), 4, wavelengths=list(wl))
        pred.min_tile = 0
        res = fuse(hsi, msi, tmp_path / f"{name}.tif", model=pred, tile=tile, overlap=16)
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            outs.append(ds.read())
        assert res.observation["observation"]["psf_source"] == "estimated"
        assert "PSF sigma" in res.summary() and abs(res.observation["observation"]["shift_dx_lr_px"] - 0.3) < 0.05
    assert res.n_tiles >= 9
    assert np.abs(outs[0] - outs[1]).max() < 1e-4


def test_make_predictor_routes_model_based_names():
    pred = make_predictor("auto", scale=4, hsi_bands=40, msi_bands=4, hsi_wavelengths=list(range(400, 800, 10)),
                          model_options={"psf": "gaussian:1.5", "srf": "auto"})
    assert isinstance(pred, ModelBasedPredictor) and pred.needs_sample
    with pytest.raises(CsakdError, match="PSF 'box'"):
        make_predictor("glp+c", scale=4, hsi_bands=40, msi_bands=4, model_options={"psf": "box"})


def test_cli_fuse_auto_reports_the_observation_model(synthetic_pair, tmp_path, capsys):
    from csakd_qgis.cli import main

    out = tmp_path / "auto.tif"
    rc = main(["fuse", "--hsi", str(synthetic_pair["hsi"]), "--msi", str(synthetic_pair["msi"]), "--out", str(out),
               "--model", "auto", "--psf", "auto", "--srf", "auto"])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "model auto (glp+c)" in text and "PSF sigma" in text and "SRF " in text
    rc = main(["fuse", "--hsi", str(synthetic_pair["hsi"]), "--msi", str(synthetic_pair["msi"]),
               "--out", str(tmp_path / "bad.tif"), "--model", "glp+c", "--psf", "gaussian:x"])
    assert rc == 1 and not (tmp_path / "bad.tif").exists()
    assert "PSF 'gaussian:x' is not understood" in capsys.readouterr().err

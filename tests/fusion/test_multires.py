"""Sentinel-2's 20 m bands beside its 10 m bands: sharpening math, simulation, the tiled fusion and the CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _helpers_cli import run_cli
from rasterio.crs import CRS
from rasterio.transform import from_origin

from bench.multires_variants import fuse_per_resolution, sharpen_bands_levels, stack_bands
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.multires import (
    check_multires_model,
    local_gains,
    multires_observation,
    multires_srf,
    sharpen_bands,
    sharpen_margin,
    sharpen_params,
)
from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.raster.io import read_meta, read_reflectance, write_raster
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.spectral.degrade import simulate_msi20, simulate_pair, synthesize_msi, wald_degrade
from csakd_qgis.spectral.srf import load_srf, srf_matrix

S10, S20 = "S2A:B2,B3,B4,B8", "S2A:B5,B6,B7,B8A,B11,B12"
CRS32633 = CRS.from_epsg(32633)



def _cube(n_bands: int = 200, h: int = 48, w: int = 60, n_end: int = 9, seed: int = 3):
    """A mixture of more smooth random spectra than the 10 m bands can tell apart (420-2400 nm)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    wl = np.linspace(420, 2400, n_bands)
    spectra = 0.05 + 0.5 * gaussian_filter(rng.random((n_end, n_bands)), (0, 12), mode="nearest")
    ab = gaussian_filter(rng.random((n_end, h, w)), (0, 1.5, 1.5)) ** 4
    ab /= ab.sum(0, keepdims=True)
    return np.einsum("mb,myx->byx", spectra, ab).astype(np.float32), wl


@pytest.fixture(scope="module")
def scene():
    cube, wl = _cube()
    fw = [10.0] * len(wl)
    lr, msi = simulate_pair(cube, wl, fw, S10, 3)
    z = simulate_msi20(cube, wl, fw, S20, 2)
    z_true = synthesize_msi(cube, srf_matrix(load_srf(S20), wl, fw))
    return cube, wl, lr, msi, z, z_true


def test_simulate_msi20_is_blurred_block_mean(scene):
    cube, wl, _, _, z, z_true = scene
    assert z.shape == (6, 24, 30)
    np.testing.assert_allclose(z, wald_degrade(z_true, 2, 1.0), atol=1e-6)  # MTF-like blur sigma = 1 HR px
    assert np.abs(z - wald_degrade(z_true, 2, 0.01)).max() > 1e-4  # the blur is really there


def test_sharpening_injects_detail(scene):
    _, _, _, msi, z, z_true = scene
    zs = sharpen_bands(z, msi, 2)
    up = upsample_bicubic(z, 2)
    assert zs.shape == z_true.shape
    assert np.abs(zs - up).mean() > 1e-4  # detail actually injected
    assert compute_metrics(z_true, zs, 2)["psnr"] > compute_metrics(z_true, up, 2)["psnr"] + 3.0
    # consistency: the sharpened bands degraded back give the 20 m bands (inside, away from the edges)
    back = wald_degrade(zs, 2)
    assert np.abs(back - z)[:, 3:-3, 3:-3].max() < 0.01 * float(np.abs(z).max())


def test_back_projection_gives_the_20m_bands_back(scene):
    _, _, _, msi, z, z_true = scene
    inner = (slice(None), slice(3, -3), slice(3, -3))
    err = {r: float(np.abs(wald_degrade(sharpen_bands(z, msi, 2, rounds=r), 2) - z)[inner].max()) for r in (0, 5)}
    # the local gains already fit the 20 m bands closely; the back-projection still cuts the misfit 5-fold
    assert err[5] < 0.2 * err[0] and err[5] < 5e-4 * float(np.abs(z).max())
    # closer to the 10 m truth than without back-projection and than the first (levels) sharpening
    p5 = compute_metrics(z_true, sharpen_bands(z, msi, 2), 2)["psnr"]
    assert p5 > compute_metrics(z_true, sharpen_bands(z, msi, 2, rounds=0), 2)["psnr"] + 3.0
    assert p5 > compute_metrics(z_true, sharpen_bands_levels(z, msi, 2), 2)["psnr"] + 3.0


def test_sharpening_gains_are_fitted_on_details():
    # 20 m bands that are exact combinations of the 10 m bands: the detail regression finds the combination
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter

    msi = gaussian_filter(rng.random((4, 64, 64)), (0, 2, 2)).astype(np.float32)
    mix = np.array([[0.5, -0.2, 0.1, 0.3], [0.0, 0.4, 0.6, -0.1]], np.float32)
    z = wald_degrade(np.einsum("zk,khw->zhw", mix, msi) + 0.05, 2)
    p = sharpen_params(z, msi, 2)
    np.testing.assert_allclose(p.gains[:, 1:], mix, atol=1e-3)
    g = local_gains(z, wald_degrade(msi, 2), p)  # an exact relation: every window finds it too
    np.testing.assert_allclose(g[:, :, 2:-2, 2:-2], np.broadcast_to(mix[..., None, None], g[:, :, 2:-2, 2:-2].shape),
                               atol=2e-2)


def test_local_gains_follow_the_land_cover():
    # left half: the 20 m band follows B2's detail, right half B8's; one scene-wide gain cannot do both
    rng = np.random.default_rng(1)
    from scipy.ndimage import gaussian_filter

    msi = gaussian_filter(rng.random((4, 96, 96)), (0, 1.5, 1.5)).astype(np.float32)
    left = np.arange(96) < 48
    z_true = (np.where(left[None], msi[0], msi[3]) + 0.1).astype(np.float32)[None]
    z = wald_degrade(z_true, 2)
    p = sharpen_params(z, msi, 2)
    g = local_gains(z, wald_degrade(msi, 2), p)[0]
    assert g[0, :, 3:20].mean() > 0.8 and abs(g[3, :, 3:20].mean()) < 0.2  # B2 on the left
    assert g[3, :, 29:45].mean() > 0.8 and abs(g[0, :, 29:45].mean()) < 0.2  # B8 on the right
    inner = (slice(None), slice(8, -8), slice(8, 40))
    local = compute_metrics(z_true[inner], sharpen_bands(z, msi, 2, p)[inner], 2)["psnr"]
    scene = dataclasses.replace(p, ridge=1e12)  # a ridge that pins every window to the scene's gains
    assert local > compute_metrics(z_true[inner], sharpen_bands(z, msi, 2, scene)[inner], 2)["psnr"] + 3.0


def test_sharpening_windows_match_the_whole_and_nodata():
    cube, wl = _cube(h=160, w=160, seed=5)
    fw = [10.0] * len(wl)
    msi = simulate_pair(cube, wl, fw, S10, 2)[1]
    z = simulate_msi20(cube, wl, fw, S20, 2)
    p = sharpen_params(z, msi, 2)
    whole = sharpen_bands(z, msi, 2, p)
    m = sharpen_margin()
    for r0, c0, n in ((m + 2, m + 4, 20), (m + 3, m + 7, 17)):  # windows at even and odd 20 m px, margin around
        win = sharpen_bands(z[:, r0 - m: r0 + n + m, c0 - m: c0 + n + m],
                            msi[:, 2 * (r0 - m): 2 * (r0 + n + m), 2 * (c0 - m): 2 * (c0 + n + m)], 2, p)
        np.testing.assert_allclose(win[:, 2 * m: 2 * (m + n), 2 * m: 2 * (m + n)],
                                   whole[:, 2 * r0: 2 * (r0 + n), 2 * c0: 2 * (c0 + n)], atol=1e-5)
    zn, mn = z.copy(), msi.copy()
    zn[4, 10, 12] = np.nan  # B11 missing at one 20 m px: that band's 2 x 2 HR px only
    mn[0, 50, 51] = np.nan  # B2 missing at one HR px: every sharpened band there
    out = sharpen_bands(zn, mn, 2, p)
    assert np.isnan(out[4, 20:22, 24:26]).all() and np.isfinite(out[[0, 1, 2, 3, 5], 20:22, 24:26]).all()
    assert np.isnan(out[:, 50, 51]).all() and int(np.isnan(out).sum()) == 4 + 6


def test_multires_observation_takes_the_psf_of_the_hr_bands(scene):
    from csakd_qgis.fusion.observation import estimate_observation

    _, _, lr, msi, z, _ = scene
    x = stack_bands(msi, z, 2)
    obs = multires_observation(lr, x, 3, 4)
    assert obs.psf == estimate_observation(lr, msi, 3).psf and "on the 4 HR bands" in obs.psf_source
    assert obs.spectral.R.shape == (10, lr.shape[0])
    assert multires_observation(lr, x, 3, 4, psf="wald").psf_source == "wald"


def test_methods_a_and_b_beat_the_10m_bands(scene):
    cube, wl, lr, msi, z, _ = scene
    swir = [i for i, w in enumerate(wl) if w > 1300]
    base = fuse_classical(lr, msi, 3, "glp")
    a = fuse_classical(lr, stack_bands(msi, z, 2), 3, "glp")
    b = fuse_per_resolution(lr, msi, z, 3, 2)
    p0 = compute_metrics(cube, base, 3, bands=swir)["psnr"]
    assert compute_metrics(cube, a, 3, bands=swir)["psnr"] > p0 + 1.0
    assert compute_metrics(cube, b, 3, bands=swir)["psnr"] > p0 + 0.5
    assert compute_metrics(cube, a, 3)["sam"] < compute_metrics(cube, base, 3)["sam"]


def test_multires_srf_and_model_refusal():
    assert multires_srf("auto", 4, 6) == "auto"
    assert multires_srf("auto:S2A:B2,B3,B4,B8", 4, 6) == "auto:S2A:B2,B3,B4,B8,B5,B6,B7,B8A,B11,B12"
    assert load_srf(multires_srf(S10, 4, 6)).band_names == ["B2", "B3", "B4", "B8", "B5", "B6", "B7", "B8A",
                                                              "B11", "B12"]
    with pytest.raises(CsakdError, match="has 5 bands but Sentinel-2A's 20 m bands are 6"):
        multires_srf(S10, 4, 5)
    check_multires_model("glp+cy")
    with pytest.raises(CsakdError, match="not with the learned model 'enmap_s2-4band_x3'"):
        check_multires_model("enmap_s2-4band_x3")


@pytest.fixture(scope="module")
def rasters(tmp_path_factory, scene):
    d = tmp_path_factory.mktemp("multires")
    cube, wl, *_ = scene
    ref = d / "ref.tif"
    write_raster(ref, cube, CRS32633, from_origin(500000.0, 4000000.0, 10.0, 10.0), wavelengths=list(wl),
                 fwhm=[10.0] * len(wl))
    paths = {k: d / f"{k}.tif" for k in ("lr", "msi", "z")}
    assert run_cli(["simulate", "--hsi", str(ref), "--scale", "3", "--out-lr", str(paths["lr"]), "--out-msi",
                    str(paths["msi"]), "--out-msi20", str(paths["z"])]) == 0
    return d, paths


def test_simulate_writes_the_20m_raster(rasters, scene):
    _, paths = rasters
    zm, mm = read_meta(paths["z"]), read_meta(paths["msi"])
    assert (zm.width, zm.height, zm.count, zm.transform.a) == (30, 24, 6, 20.0)
    assert (zm.transform.c, zm.transform.f) == (mm.transform.c, mm.transform.f)
    assert abs(zm.wavelengths[4] - 1610) < 15 and abs(zm.wavelengths[5] - 2190) < 25  # B11, B12
    np.testing.assert_allclose(read_reflectance(paths["z"]), scene[4], atol=1e-5)


def test_tiled_fusion_with_20m_equals_whole(rasters, scene):
    d, p = rasters
    whole = d / "whole.tif"
    tiled = d / "tiled.tif"
    fuse(p["lr"], p["msi"], whole, "glp", tile=120, overlap=0, msi20=p["z"])
    fuse(p["lr"], p["msi"], tiled, "glp", tile=12, overlap=6, group_width=24, msi20=p["z"])
    a, b = read_reflectance(whole), read_reflectance(tiled)
    assert np.abs(a - b).max() < 1e-4
    # the raster path gives the array method (a)
    cube, wl, lr, msi, z, _ = scene
    ref = fuse_classical(lr, stack_bands(msi, z, 2), 3, "glp")
    inner = (slice(None), slice(12, -12), slice(12, -12))
    assert np.abs(a[inner] - ref[inner]).max() < 1e-3
    swir = [i for i, w in enumerate(wl) if w > 1300]
    plain = read_reflectance(fuse(p["lr"], p["msi"], d / "plain.tif", "glp").out_path)
    assert compute_metrics(cube, a, 3, bands=swir)["psnr"] > compute_metrics(cube, plain, 3, bands=swir)["psnr"]


def test_int16_output_with_20m_keeps_the_sharpened_bands_in_float(rasters):
    """--dtype int16 rounds the output only: the sharpened 20 m intermediate stays float32."""
    d, p = rasters
    f32 = read_reflectance(fuse(p["lr"], p["msi"], d / "f32.tif", "glp", tile=120, overlap=0, msi20=p["z"]).out_path)
    i16 = read_reflectance(fuse(p["lr"], p["msi"], d / "i16.tif", "glp", tile=120, overlap=0, msi20=p["z"],
                                dtype="int16").out_path)
    ok = np.isfinite(f32)
    assert np.array_equal(ok, np.isfinite(i16)) and np.abs(i16[ok] - f32[ok]).max() <= 0.5e-4 + 1e-6


def test_model_based_fusion_with_20m_estimates_the_psf_on_the_10m_bands(rasters, scene):
    from csakd_qgis.fusion.model_based import run_candidate

    d, p = rasters
    res = fuse(p["lr"], p["msi"], d / "cy.tif", "glp+cy", msi20=p["z"])
    assert "on the 4 HR bands" in res.observation["observation"]["psf_source"]
    cube, wl, lr, msi, z, _ = scene
    x = stack_bands(msi, z, 2)
    ref = run_candidate("glp+cy", lr, x, 3, multires_observation(lr, x, 3, 4))
    inner = (slice(None), slice(12, -12), slice(12, -12))
    assert np.abs(read_reflectance(d / "cy.tif")[inner] - ref[inner]).max() < 1e-3


def test_cli_fuse_with_msi20_and_bad_inputs(rasters, capsys):
    d, p = rasters
    out = d / "cli.tif"
    assert run_cli(["fuse", "--hsi", str(p["lr"]), "--msi", str(p["msi"]), "--msi20", str(p["z"]), "--out", str(out),
                    "--model", "glp", "--no-progress"]) == 0
    assert read_meta(out).count == 200 and not list(d.glob(".csakd-msi20-*"))
    z = read_reflectance(p["z"])
    zm = read_meta(p["z"])
    bad = {"small": (z[:, :10], zm.transform, "does not cover the HSI/MSI overlap"),
           "px15": (z, from_origin(500000.0, 4000000.0, 15.0, 15.0), "not an integer multiple >= 2")}
    for name, (arr, tr, msg) in bad.items():
        path = d / f"bad_{name}.tif"
        write_raster(path, arr, CRS32633, tr, wavelengths=zm.wavelengths, fwhm=zm.fwhm)
        o = d / f"out_{name}.tif"
        with pytest.raises(CsakdError, match=msg):
            fuse(p["lr"], p["msi"], o, "glp", msi20=path)
        assert not o.exists()
    with pytest.raises(CsakdError, match="has 5 bands but Sentinel-2A's 20 m bands are 6"):
        five = d / "five.tif"
        write_raster(five, z[:5], CRS32633, zm.transform)
        fuse(p["lr"], p["msi"], d / "o5.tif", "glp+cy", msi20=five, model_options={"srf": "S2A:B2,B3,B4,B8"})
    assert not (d / "o5.tif").exists()


def test_csakd_fuse_bad_msi20_is_one_line_exit_1(rasters, capsys):
    from csakd_qgis.cli import main

    d, p = rasters
    z = read_reflectance(p["z"])
    odd = d / "px15_cli.tif"
    write_raster(odd, z, CRS32633, from_origin(500000.0, 4000000.0, 15.0, 15.0))
    out = d / "never.tif"
    for bad, model in ((odd, "glp"), (p["z"], "enmap_s2-4band_x3")):
        capsys.readouterr()
        rc = main(["fuse", "--hsi", str(p["lr"]), "--msi", str(p["msi"]), "--msi20", str(bad), "--out", str(out),
                   "--model", model, "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and err[0].startswith("csakd: error:")
        assert ("not an integer multiple >= 2" if model == "glp" else "not with the learned model") in err[0]
        assert "--msi20" in err[0] and not out.exists()


def test_plan_msi20_places_an_offset_hsi(rasters):
    from csakd_qgis.fusion.msi20 import plan_msi20
    from csakd_qgis.raster.coreg import plan_grid

    d, p = rasters
    lm = read_meta(p["lr"])
    sub = d / "lr_sub.tif"  # the HSI without its first/last LR row and column: starts at HR (3, 3)
    write_raster(sub, read_reflectance(p["lr"])[:, 1:-1, 1:-1], CRS32633,
                 from_origin(500030.0, 3999970.0, 30.0, 30.0), wavelengths=lm.wavelengths, fwhm=lm.fwhm)
    pl = plan_msi20(plan_grid(sub, p["msi"]), p["z"])
    # 20 m px 1..22 (rows) / 1..28 (cols) cover HR 2..46 / 2..58; the fusion grid starts 1 HR px into them
    assert (pl.factor, pl.row0, pl.col0, pl.rows, pl.cols) == (2, 1, 1, 22, 28)
    assert (pl.off_row, pl.off_col, pl.msi_row, pl.msi_col) == (1, 1, 2, 2)

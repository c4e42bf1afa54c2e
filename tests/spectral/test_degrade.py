"""Wald-protocol simulation: blur + block mean on the LR/HR pixel grid (docs/ARCHITECTURE.md), MSI synthesis, noise, shifts, rasters."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from _helpers_sim import smooth_cube
from rasterio.crs import CRS
from rasterio.transform import from_origin

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import read_meta, read_reflectance, write_raster
from csakd_qgis.raster.simulate import simulate_rasters
from csakd_qgis.spectral.degrade import (
    add_awgn,
    block_mean,
    shift_image,
    simulate_pair,
    synthesize_msi,
    wald_degrade,
)
from csakd_qgis.spectral.srf import load_srf, srf_matrix


@pytest.mark.parametrize("s", [2, 3, 4])
def test_constant_image_stays_constant(s):
    x = np.full((3, 26, 31), 0.37, np.float32)
    lr = wald_degrade(x, s)
    assert lr.shape == (3, 26 // s, 31 // s)
    np.testing.assert_allclose(lr, 0.37, rtol=1e-6)


def test_block_mean_follows_grid_convention():
    rng = np.random.default_rng(1)
    x = rng.random((2, 12, 9)).astype(np.float32)
    lr = wald_degrade(x, 3, sigma=0)  # no blur: pure block mean
    for i in range(4):
        for j in range(3):
            np.testing.assert_allclose(lr[:, i, j], x[:, 3 * i:3 * i + 3, 3 * j:3 * j + 3].mean(axis=(1, 2)),
                                       rtol=1e-6)
    np.testing.assert_allclose(block_mean(x[:, :11, :8], 2), block_mean(x[:, :10, :8], 2))  # crop, origin kept


def test_blur_uses_sigma_half_scale():
    from scipy.ndimage import gaussian_filter

    x = np.zeros((1, 40, 40), np.float32)
    x[0, 20, 20] = 1.0
    lr = wald_degrade(x, 4)
    ref = gaussian_filter(x[0], 2.0, mode="reflect").reshape(10, 4, 10, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(lr[0], ref, atol=1e-7)
    np.testing.assert_allclose(lr.sum() * 16, 1.0, rtol=1e-5)  # energy preserved


def test_nan_is_missing_not_contagious():
    x = np.full((2, 16, 16), 0.2, np.float32)
    x[:, 5, 6] = np.nan
    lr = wald_degrade(x, 4)
    assert np.isnan(lr[:, 1, 1]).all()
    assert np.isfinite(lr).sum() == 2 * 15
    np.testing.assert_allclose(lr[np.isfinite(lr)], 0.2, rtol=1e-6)


def test_msi_of_flat_spectrum_equals_value():
    wl = np.linspace(418, 2446, 218)
    R = srf_matrix(load_srf("S2A:B2,B3,B4,B8"), wl, np.full(218, 9.0))
    hr = np.full((218, 6, 5), 0.42, np.float32)
    msi = synthesize_msi(hr, R)
    assert msi.shape == (4, 6, 5)
    np.testing.assert_allclose(msi, 0.42, rtol=1e-5)
    with pytest.raises(CsakdError, match="expects"):
        synthesize_msi(hr[:10], R)


def test_awgn_snr_and_reproducibility():
    x = np.full((2, 200, 200), 0.3, np.float32)
    x[1] *= 2
    y = add_awgn(x, 20.0, np.random.default_rng(5))
    for b in range(2):
        snr = 10 * np.log10(np.mean(x[b] ** 2) / np.var(y[b] - x[b]))
        assert abs(snr - 20.0) < 0.1
    np.testing.assert_array_equal(add_awgn(x, 20.0, 7), add_awgn(x, 20.0, 7))


def test_shift_sign_convention():
    x = np.zeros((1, 20, 20), np.float32)
    x[0, 8, 10] = 1.0
    y = shift_image(x, dx=2, dy=-1)
    assert np.unravel_index(np.argmax(y[0]), y[0].shape) == (7, 12)  # east = +x, north = -y
    ramp = np.tile(np.arange(30, dtype=np.float32), (30, 1))
    half = shift_image(ramp, 0.5, 0)
    np.testing.assert_allclose(half[:, 8:-8], ramp[:, 8:-8] - 0.5, atol=1e-3)  # spline edge ringing


def test_simulate_pair_shapes_noise_and_shift():
    cube, wl = smooth_cube(20, 30, 42)
    srf = "gaussian:490/65,560/35,665/30,842/115"
    lr, msi = simulate_pair(cube, wl, None, srf, 4)
    assert lr.shape == (20, 7, 10) and msi.shape == (4, 28, 40)
    lr2, msi2 = simulate_pair(cube, wl, None, srf, 4, snr_db=30, shift=(0.3, 0), rng=1)
    assert not np.allclose(lr, lr2) and not np.allclose(msi, msi2)
    assert 25 < 10 * np.log10(np.mean(lr ** 2) / np.mean((lr2 - lr) ** 2)) < 31


def _write_reference(path, cube, wl, bad=(), nan_band=None, pixel=10.0):
    cube = cube.copy()
    if nan_band is not None:
        cube[nan_band] = np.nan
    write_raster(path, cube, CRS.from_epsg(32633), from_origin(362175.0, 5809965.0, pixel, pixel),
                 wavelengths=list(wl), fwhm=[10.0] * len(wl))
    with rasterio.open(path, "r+") as ds:
        for b in range(cube.shape[0]):
            ds.update_tags(b + 1, bbl="0" if b in bad else "1")


def test_simulate_rasters_grid_metadata_and_bands(tmp_path):
    cube, wl = smooth_cube(60, 50, 38)
    ref = tmp_path / "ref.tif"
    _write_reference(ref, cube, wl, bad=(33,), nan_band=47)  # SWIR bands, away from the MSI bands
    lr_p, msi_p = tmp_path / "lr.tif", tmp_path / "msi.tif"
    info = simulate_rasters(str(ref), "S2A:B2,B3,B4,B8", 4, lr_p, msi_p)
    assert info["n_bands"] == 58 and info["band_indices"] == [b for b in range(60) if b not in (33, 47)]
    lm, mm = read_meta(lr_p), read_meta(msi_p)
    assert (lm.height, lm.width, lm.count) == (12, 9, 58)
    assert (mm.height, mm.width, mm.count) == (48, 36, 4)
    # LR grid: same origin as the HR grid, pixel size x s (LR/HR pixel grid)
    assert lm.transform.c == mm.transform.c == 362175.0 and lm.transform.f == mm.transform.f == 5809965.0
    assert lm.transform.a == 40.0 and lm.transform.e == -40.0 and mm.transform.a == 10.0
    assert lm.crs == CRS.from_epsg(32633)
    kept = [wl[b] for b in info["band_indices"]]
    np.testing.assert_allclose(lm.wavelengths, kept, atol=1e-3)
    np.testing.assert_allclose(lm.fwhm, 10.0)
    np.testing.assert_allclose(mm.wavelengths, [492.4, 559.9, 664.6, 832.8], atol=1.0)
    assert [d.split()[0] for d in mm.descriptions] == ["B2", "B3", "B4", "B8"]
    # content = the in-memory simulation of the cropped reference
    lr = read_reflectance(lr_p)
    expect = wald_degrade(cube[info["band_indices"]][:, :48, :36], 4)
    np.testing.assert_allclose(lr, expect, atol=1e-6)


def test_simulate_rasters_user_errors(tmp_path):
    cube, wl = smooth_cube(8, 16, 16)
    ref = tmp_path / "ref.tif"
    _write_reference(ref, cube, wl)
    with pytest.raises(CsakdError, match="GeoTIFF"):
        simulate_rasters(ref, "gaussian:500/50", 4, tmp_path / "lr.png", tmp_path / "msi.tif")
    with pytest.raises(CsakdError, match="does not exist"):
        simulate_rasters(tmp_path / "nope.tif", "gaussian:500/50", 4, tmp_path / "lr.tif", tmp_path / "msi.tif")
    with pytest.raises(CsakdError, match="integer"):
        simulate_rasters(ref, "gaussian:500/50", 1, tmp_path / "lr.tif", tmp_path / "msi.tif")
    with pytest.raises(CsakdError, match="outside"):
        simulate_rasters(ref, "gaussian:3000/50", 2, tmp_path / "lr.tif", tmp_path / "msi.tif")
    assert not (tmp_path / "lr.tif").exists()

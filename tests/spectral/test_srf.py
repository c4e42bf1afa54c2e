"""Sensor response functions: pyrsr package data, CSV files, Gaussian specs, and the SRF matrix."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from _helpers_sim import SHARED_DATA, requires_shared_data

import csakd_qgis.spectral.srf as srfmod
from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.srf import SRF, canonical_band, gaussian_srf, load_srf, srf_matrix


def test_s2a_centroids_match_esa_values():
    s = load_srf("S2A:B2,B3,B4,B8")
    assert s.sensor == "Sentinel-2A" and s.band_names == ["B2", "B3", "B4", "B8"]
    np.testing.assert_allclose(s.centroids(), [492.4, 559.9, 664.6, 832.8], atol=1.0)
    assert s.responses.shape == (4, s.wavelengths.size) and s.responses.min() >= 0


def test_landsat8_micrometres_converted_to_nm():
    s = load_srf("L8")
    assert s.band_names == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]  # no pan, cirrus, thermal by default
    assert s.wavelengths.min() > 400 and s.wavelengths.max() < 2400
    np.testing.assert_allclose(s.centroids()[:5], [443, 482, 561, 655, 865], atol=2.0)


@pytest.mark.parametrize("alias,full,nb", [("S2B", "Sentinel-2B", 12), ("Landsat-9", "Landsat-9", 7),
                                           ("RE", "RapidEye", 5), ("sentinel2a", "Sentinel-2A", 12)])
def test_sensor_aliases_and_default_band_sets(alias, full, nb):
    s = load_srf(alias)
    assert s.sensor == full and s.n_bands == nb
    assert "B10" not in s.band_names
    c = s.centroids()
    assert np.all((c > 400) & (c < 2500))


def test_band_names_are_normalised_and_ordered():
    s = load_srf("S2A:b8a, B02,4")
    assert s.band_names == ["B8A", "B2", "B4"]
    assert canonical_band("band_11") == "B11" and canonical_band("8a") == "B8A"


def test_pyrsr_is_read_without_importing_it():
    was_loaded = "pyrsr" in sys.modules
    load_srf("S2B:B2")
    assert was_loaded or "pyrsr" not in sys.modules  # its __init__ imports pandas


def test_missing_pyrsr_gives_install_hint(monkeypatch):
    monkeypatch.delenv("CSAKD_PYRSR_DATA", raising=False)
    monkeypatch.setattr(srfmod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CsakdError, match="pip install --no-deps pyrsr"):
        load_srf("S2A")


def test_unknown_sensor_and_band_errors(tmp_path):
    with pytest.raises(CsakdError, match="Unknown sensor"):
        load_srf("WV3")
    with pytest.raises(CsakdError, match="no band"):
        load_srf("S2A:B13")
    with pytest.raises(CsakdError, match="does not exist"):
        load_srf(str(tmp_path / "missing.csv"))


def test_csv_file_nm_with_header(tmp_path):
    wl = np.arange(400, 701, 1.0)
    r1 = np.exp(-0.5 * ((wl - 500) / 20) ** 2)
    r2 = np.exp(-0.5 * ((wl - 620) / 15) ** 2)
    p = tmp_path / "cam.csv"
    p.write_text("# my camera\nwavelength,blue,red\n" + "\n".join(f"{a},{b:.6f},{c:.6f}" for a, b, c in
                                                                 zip(wl, r1, r2, strict=True)))
    s = load_srf(str(p))
    assert s.band_names == ["blue", "red"] and s.sensor == "cam"
    np.testing.assert_allclose(s.centroids(), [500, 620], atol=0.1)
    assert load_srf(f"{p}:red").band_names == ["red"]


def test_text_file_micrometres_whitespace_no_header(tmp_path):
    wl = np.arange(0.80, 0.90, 0.001)
    r = np.exp(-0.5 * ((wl - 0.85) / 0.01) ** 2)
    p = tmp_path / "nir.txt"
    p.write_text("\n".join(f"{a:.4f} {b:.6f}" for a, b in zip(wl, r, strict=True)))
    s = load_srf(p)
    assert s.band_names == ["B1"]
    np.testing.assert_allclose(s.centroids(), [850], atol=0.5)
    np.testing.assert_allclose(s.fwhm(), [2.3548 * 10], rtol=0.02)


def test_gaussian_spec():
    s = load_srf("gaussian:490/65,560/35,665/30,842/115")
    assert s.n_bands == 4
    np.testing.assert_allclose(s.centroids(), [490, 560, 665, 842], atol=0.05)
    np.testing.assert_allclose(s.fwhm(), [65, 35, 30, 115], rtol=0.01)
    with pytest.raises(CsakdError, match="centre/fwhm"):
        load_srf("gaussian:490-65")


def test_srf_matrix_rows_sum_to_one_and_flat_spectrum():
    wl = np.linspace(400, 1000, 120)
    s = gaussian_srf([490, 560, 665, 842], [65, 35, 30, 115])
    for fw in (None, np.full(wl.size, 6.0)):
        R = srf_matrix(s, wl, fw)
        assert R.shape == (4, 120) and R.dtype == np.float64
        np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(R @ np.full(120, 0.3), 0.3, atol=1e-12)
        np.testing.assert_allclose(R @ wl, [490, 560, 665, 842], atol=1.0)  # centroid preserved


def test_srf_matrix_fwhm_convolution_matches_direct_integral():
    wl = np.array([480.0, 500.0, 520.0])
    fw = np.array([10.0, 10.0, 10.0])
    s = gaussian_srf([500], [20])
    R = srf_matrix(s, wl, fw)
    # Gaussian * Gaussian: overlap integral ~ N(c_j; 500, sqrt(s1^2 + s2^2))
    k = 2 * np.sqrt(2 * np.log(2))
    sig = np.hypot(20 / k, 10 / k)
    expect = np.exp(-0.5 * ((wl - 500) / sig) ** 2)
    np.testing.assert_allclose(R[0], expect / expect.sum(), atol=1e-4)


def test_srf_matrix_refuses_uncovered_bands():
    vnir = np.linspace(420, 990, 100)
    with pytest.raises(CsakdError, match="B11"):
        srf_matrix(SRF("S", ["B2", "B11"], np.arange(400, 2000.0), np.stack([
            np.exp(-0.5 * ((np.arange(400, 2000.0) - c) / 20) ** 2) for c in (490, 1610)])), vnir)
    # a gap of removed bands (water absorption) that swallows a band is refused too
    gap = np.r_[np.arange(420, 1330, 8.0), np.arange(1400, 2440, 10.0)]
    with pytest.raises(CsakdError, match="outside"):
        srf_matrix(gaussian_srf([1375], [30]), gap)
    # half-covered band at the range edge is accepted (>= 50%)
    R = srf_matrix(gaussian_srf([990], [40]), vnir)
    assert np.isclose(R.sum(), 1.0)


def test_srf_matrix_real_s2a_on_enmap_like_grid():
    wl = np.r_[np.linspace(418, 993, 91), np.linspace(1000, 2446, 127)]
    R = srf_matrix(load_srf("S2A:B2,B3,B4,B8"), wl, np.full(wl.size, 8.0))
    np.testing.assert_allclose(R @ wl, [492.4, 559.9, 664.6, 832.8], atol=2.0)


@requires_shared_data
@pytest.mark.shared_data
def test_package_files_match_shared_copy():
    pkg = srfmod.pyrsr_data_dir() / "Sentinel-2A" / "MSI" / "band_2"
    shared = SHARED_DATA / "srf" / "pyrsr" / "Sentinel-2A" / "MSI" / "band_2"
    assert pkg.read_bytes() == shared.read_bytes()

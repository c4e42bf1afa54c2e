"""Spectral library (earthlib data files), water model and the synthetic scene generator."""

from __future__ import annotations

import numpy as np
import pytest

from csakd_qgis.spectral.band_grids import ENMAP_BBL, ENMAP_FWHM_NM, ENMAP_WAVELENGTHS_NM, enmap_grid
from csakd_qgis.spectral.library import (
    filter_valid,
    load_earthlib,
    resample_spectra,
    spiky_spectra,
    water_library,
    water_reflectance,
)
from csakd_qgis.spectral.synthetic import load_spyndex_s2, make_scene

# every 6th usable EnMAP band: the real grid's spacing and FWHM, fewer bands for speed
WL, FW = (a[::6] for a in enmap_grid())


def test_enmap_grid_table():
    assert len(ENMAP_WAVELENGTHS_NM) == len(ENMAP_FWHM_NM) == len(ENMAP_BBL) == 224
    wl, fw = enmap_grid()
    assert wl.size == 218
    assert np.sum((wl > 900) & (wl < 1000)) > 10  # VNIR and SWIR detectors overlap: the grid is not monotonic
    assert 415 < wl[0] < 425 and 2440 < wl[-1] < 2450 and np.all((fw > 5) & (fw < 13))
    assert enmap_grid(good_only=False)[0].size == 224


def test_earthlib_library_labels():
    lib = load_earthlib()
    assert len(lib) == 7261 and lib.spectra.shape == (7261, lib.wavelengths.size)
    assert lib.wavelengths[0] == pytest.approx(400) and lib.wavelengths[-1] == pytest.approx(2450)
    counts = lib.class_counts()
    assert {"bare", "vegetation", "built", "npv", "burned"} <= set(counts) and "water" not in counts
    veg = lib.by_class("vegetation")
    assert set(veg.origin) == {"simulated"}  # PROSAIL canopies, labelled honestly
    assert set(lib.by_class("bare").origin) == {"measured"}
    assert lib.names[4251] == "burnedcham"  # CSV name wins over the truncated header name


def test_filter_valid_and_spikes():
    lib = load_earthlib()
    good = filter_valid(lib)
    assert len(good) < len(lib)
    assert np.nanmax(good.spectra) <= 1.0 and np.nanmin(good.spectra) >= 0.0
    wl = np.arange(400, 500, 10.0)
    smooth = np.linspace(0.1, 0.3, wl.size)
    spike = smooth.copy()
    spike[5] += 0.1
    assert spiky_spectra(wl, np.stack([smooth, spike])).tolist() == [False, True]


def test_resample_linear_and_gaps():
    lib = load_earthlib()
    lin = (lib.wavelengths / 3000.0)[None]
    wl, fw = enmap_grid()  # full grid: overlapping VNIR/SWIR, bands inside library gaps
    out, cov = resample_spectra(lib.wavelengths, lin, wl, fw)
    assert out.shape == (1, wl.size) and np.isfinite(out).all()
    np.testing.assert_allclose(out[0], wl / 3000.0, atol=2e-3)
    # a band centred in the library's 1790-1960 nm gap: NaN without filling, interpolated with it
    c, f = np.array([1700.0, 1880.0, 2100.0]), np.array([10.0, 10.0, 10.0])
    raw, cov = resample_spectra(lib.wavelengths, lin, c, f, fill_gaps=False)
    assert np.isnan(raw[0, 1]) and cov[1] < 0.5 and cov[0] > 0.99
    filled, _ = resample_spectra(lib.wavelengths, lin, c, f)
    assert filled[0, 1] == pytest.approx(1880 / 3000, abs=2e-3)


def test_water_model_is_dark_and_labelled():
    wl = np.arange(400, 2500, 5.0)
    turbid = water_reflectance(wl, bbp550=0.02, cdom440=0.3, chl=10.0, surface=0.0)
    peak = wl[np.argmax(turbid)]
    assert 520 <= peak <= 600 and 0.02 <= turbid.max() <= 0.06
    assert turbid[wl > 760].max() < 0.005
    clear = water_reflectance(wl, bbp550=0.001, cdom440=0.01, chl=0.1, surface=0.0)
    assert wl[np.argmax(clear)] < 500
    lib = water_library(WL, n=5, rng=1)
    assert set(lib.origin) == {"modelled"} and set(lib.classes) == {"water"}
    assert np.all((lib.spectra >= 0) & (lib.spectra < 0.1))


def test_spyndex_tile_is_real_reflectance_with_assumed_grid():
    tile = load_spyndex_s2()
    assert tile.bands.shape == (4, 300, 300) and tile.bands.dtype == np.float32
    assert tile.band_names == ["B2", "B3", "B4", "B8"]
    assert 0 < np.nanmin(tile.bands) and np.nanmax(tile.bands) < 1
    assert tile.bands[3].mean() > tile.bands[0].mean()  # NIR brighter than blue over vegetation/soil
    assert tile.georef_assumed and tile.crs.is_projected
    assert tile.transform.a == 10.0 and tile.transform.e == -10.0
    assert load_spyndex_s2(["B8", "B4"]).band_names == ["B8", "B4"]


def test_make_scene_valid_and_deterministic():
    sc = make_scene(WL, FW, size=48, seed=2)
    assert sc.hr_hsi.shape == (WL.size, 48, 48) and sc.hr_hsi.dtype == np.float32
    assert np.isfinite(sc.hr_hsi).all() and sc.hr_hsi.min() >= 0 and sc.hr_hsi.max() <= 1
    np.testing.assert_array_equal(sc.wavelengths, WL)
    np.testing.assert_array_equal(sc.fwhm, FW)
    assert set(sc.provenance) >= {"spatial", "spectra", "synthetic"}
    assert sc.provenance["spatial"].startswith("real") and "spyndex" in sc.provenance["spatial"]
    assert "ASSUMED" in sc.provenance["spatial"]
    assert "earthlib" in sc.provenance["spectra"] and "mixing" in sc.provenance["synthetic"]
    assert sc.crs is not None and sc.transform.a == 10.0
    # the scene seen through the S2 SRF reproduces the real MSI
    assert sc.info["msi_residual"]["rmse"] < 0.01
    np.testing.assert_allclose(sc.synthesized_msi(), sc.msi, atol=0.06)
    np.testing.assert_allclose(sc.abundances.sum(0), 1.0, atol=1e-4)
    again = make_scene(WL, FW, size=48, seed=2)
    np.testing.assert_array_equal(again.hr_hsi, sc.hr_hsi)
    other = make_scene(WL, FW, size=48, seed=3)
    assert not np.array_equal(other.hr_hsi, sc.hr_hsi)


def test_make_scene_from_given_msi_with_water_shadow_noise():
    from rasterio.transform import from_origin

    base = make_scene(WL, FW, size=64, seed=5)
    t = from_origin(1000.0, 2000.0, 10.0, 10.0)
    sc = make_scene(WL, FW, size=40, seed=1, msi=base.synthesized_msi(), msi_sensor="S2A:B2,B3,B4,B8",
                    transform=t, n_water_bodies=1, shadow_fraction=0.1, snr_db=40)
    assert sc.hr_hsi.shape == (WL.size, 40, 40)
    assert sc.hr_hsi.min() >= 0 and sc.hr_hsi.max() <= 1
    r0, c0 = sc.info["crop_offset_rc"]
    assert sc.transform.c == 1000.0 + 10 * c0 and sc.transform.f == 2000.0 - 10 * r0
    assert sc.provenance["spatial"].startswith("real: the MSI array")
    assert "modelled water" in sc.provenance["spectra"]
    assert "water bodies" in sc.provenance["synthetic"] and "noise" in sc.provenance["synthetic"]
    assert "water" in sc.endmembers.classes
    # painted water is dark in the NIR
    nir = int(np.argmin(np.abs(WL - 860)))
    wet = sc.abundances[-1] > 0.9
    assert wet.any() and np.median(sc.hr_hsi[nir][wet]) < 0.03


def test_make_scene_rejects_mismatched_sensor():
    from csakd_qgis.errors import CsakdError

    with pytest.raises(CsakdError, match="bands"):
        make_scene(WL, FW, size=16, msi=np.full((3, 16, 16), 0.1, np.float32), msi_sensor="S2A:B2,B3,B4,B8")

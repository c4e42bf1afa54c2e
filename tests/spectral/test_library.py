"""Spectral library: earthlib reading, validity filters, Gaussian-band resampling and the modelled water spectra."""

from __future__ import annotations

import numpy as np
import pytest

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.library import (
    SpectralLibrary,
    filter_valid,
    load_earthlib,
    package_data_dir,
    resample_library,
    resample_spectra,
    spiky_spectra,
    valid_spectra,
    water_library,
    water_reflectance,
)


def test_valid_and_spiky_spectra_flags():
    wl = np.arange(400, 500, 10.0)
    good = np.full(10, 0.3)
    out_of_range = good.copy()
    out_of_range[2] = 1.4
    mostly_nan = np.full(10, np.nan)
    mostly_nan[:3] = 0.2
    spike = good.copy()
    spike[5] = 0.6
    lib = np.stack([good, out_of_range, mostly_nan, spike])
    assert valid_spectra(lib).tolist() == [True, False, False, True]
    assert spiky_spectra(wl, lib).tolist() == [False, True, False, True]  # a one-sample jump is a spike
    kept = filter_valid(SpectralLibrary(wl, lib, names=list("abcd"), classes=["soil"] * 4))
    assert kept.names == ["a"]


def test_resample_spectra_preserves_flat_and_linear_spectra():
    wl_src = np.arange(400.0, 1001.0, 1.0)
    flat = np.full((1, wl_src.size), 0.25)
    ramp = ((wl_src - 400) / 600)[None, :]
    centres, fwhm = [450.0, 600.0, 850.0], [10.0, 20.0, 40.0]
    out_flat, cov = resample_spectra(wl_src, flat, centres, fwhm)
    out_ramp, _ = resample_spectra(wl_src, ramp, centres, fwhm)
    np.testing.assert_allclose(out_flat, 0.25, atol=1e-6)
    np.testing.assert_allclose(out_ramp[0], (np.array(centres) - 400) / 600, atol=2e-3)  # symmetric response
    assert (np.asarray(cov) >= 0.99).all()


def test_resample_spectra_marks_bands_outside_the_source_range():
    wl_src = np.arange(400.0, 1001.0, 1.0)
    spectra = np.stack([np.full(wl_src.size, 0.1), np.full(wl_src.size, 0.3)])
    out, cov = resample_spectra(wl_src, spectra, [700.0, 2200.0], [10.0, 10.0], fill_gaps=False)
    assert np.isfinite(out[:, 0]).all() and cov[0] > 0.99
    assert cov[1] == 0.0 and not np.isfinite(out[:, 1]).any()
    filled, _ = resample_spectra(wl_src, spectra, [700.0, 2200.0], [10.0, 10.0])  # constant beyond the end
    np.testing.assert_allclose(filled[:, 1], filled[:, 0], atol=1e-6)


def test_water_model_is_dark_in_the_nir_and_brightest_in_the_visible():
    wl = np.arange(400.0, 1001.0, 10.0)
    r = water_reflectance(wl)
    assert r.max() < 0.1 and wl[np.argmax(r)] < 600 and r[wl >= 900].max() < 0.01
    lib = water_library(wl, n=5, rng=0)
    assert len(lib) == 5 and set(lib.classes) == {"water"} and set(lib.origin) == {"modelled"}
    assert np.array_equal(lib.spectra, water_library(wl, n=5, rng=0).spectra)  # deterministic


def test_earthlib_reads_and_resamples_to_a_sensor_grid():
    lib = load_earthlib()
    assert len(lib) > 5000 and lib.spectra.shape == (len(lib), lib.wavelengths.size)
    assert {"vegetation", "bare", "built"} <= set(lib.class_counts())
    sub = lib.by_class("vegetation").subsample(per_subclass=2, rng=0)
    on_grid = resample_library(sub, [490.0, 560.0, 665.0, 842.0], [65.0, 35.0, 30.0, 115.0])
    veg = on_grid.spectra[np.isfinite(on_grid.spectra).all(1)]
    assert len(veg) > 0 and (np.median(veg[:, 3]) > 2 * np.median(veg[:, 2]))  # red edge: NIR >> red


def test_package_data_dir_missing_package_is_one_clear_error():
    with pytest.raises(CsakdError, match="pip install --no-deps no_such_pkg_xyz"):
        package_data_dir("no_such_pkg_xyz")

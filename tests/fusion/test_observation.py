"""Observation model: PSF operators, and PSF / shift / SRF estimated from simulated pairs with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.observation import (
    PSF,
    check_msi_wavelengths,
    degrade,
    degrade_adjoint,
    degrade_pinv,
    estimate_observation,
    estimate_psf,
    estimate_srf,
    msi_to_lr,
    parse_psf,
    parse_srf,
)
from csakd_qgis.spectral.degrade import synthesize_msi, wald_degrade
from csakd_qgis.spectral.srf import load_srf, srf_matrix
from tests.conftest import synthetic_reference

S2 = "S2A:B2,B3,B4,B8"


def rich_reference(n_bands: int = 60, size: int = 128, n_materials: int = 12, seed: int = 0):
    """A cube mixing many smooth random spectra (rank >> MSI bands, so the SRF is identifiable) and wavelengths."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(420, 1000, n_bands)
    centres = rng.uniform(380, 1050, (n_materials, 4))
    spectra = 0.05 + sum(0.1 * np.exp(-0.5 * ((wl[None] - centres[:, k:k + 1]) / 80) ** 2) for k in range(4))
    from scipy.ndimage import gaussian_filter

    ab = gaussian_filter(rng.random((n_materials, size, size)), (0, 2, 2)) ** 4
    ab /= ab.sum(0, keepdims=True)
    return np.einsum("mb,myx->byx", spectra, ab).astype(np.float32), wl


def _pair(psf: PSF, s: int = 4, size: int = 128, seed: int = 0, rich: bool = False):
    cube, wl = rich_reference(size=size, seed=seed) if rich else synthetic_reference(n_bands=40, size=size, seed=seed)
    R = srf_matrix(load_srf(S2), wl)
    return degrade(cube, psf, s), synthesize_msi(cube, R), cube, R, wl


@pytest.mark.parametrize("s", [3, 4])
def test_wald_psf_is_wald_degrade(s):
    x = np.random.default_rng(0).random((3, 12 * s, 10 * s)).astype(np.float32)
    np.testing.assert_allclose(degrade(x, PSF.wald(s), s), wald_degrade(x, s), atol=1e-6)


def test_adjoint_and_pinv():
    rng = np.random.default_rng(1)
    s, psf = 4, PSF(1.4, 0.3, -0.2)
    x = np.zeros((2, 96, 96), np.float32)
    x[:, 24:72, 24:72] = rng.random((2, 48, 48))
    y = rng.random((2, 24, 24)).astype(np.float32)
    assert np.isclose((degrade(x, psf, s) * y).sum(), (x * degrade_adjoint(y, psf, s)).sum(), rtol=1e-5)
    e = np.zeros_like(y)
    e[:, 8:16, 8:16] = y[:, 8:16, 8:16]
    back = degrade(degrade_pinv(e, psf, s), psf, s)
    assert np.abs(back - e)[:, 3:-3, 3:-3].max() < 1e-2 * np.abs(e).max()  # white noise: the eps term bites


def test_estimate_psf_recovers_shift_and_width():
    s, true = 4, PSF(0.35 * 4, 0.3, -0.2)
    lr, msi, *_ = _pair(true, s)
    est, info = estimate_psf(lr, msi, s)
    assert abs(est.dx - true.dx) <= 0.05 and abs(est.dy - true.dy) <= 0.05, (est, info)
    assert abs(est.sigma - true.sigma) <= 0.1 * true.sigma, (est, info)


def test_estimate_srf_recovers_known_srf():
    s = 4
    lr, msi, _, R, _ = _pair(PSF.wald(s), s, rich=True)
    sp = estimate_srf(lr, msi_to_lr(msi, PSF.wald(s), s))
    for k in range(R.shape[0]):
        assert np.corrcoef(sp.R[k], R[k])[0, 1] >= 0.95, k
    assert np.allclose(sp.gain, 1.0, atol=0.05) and np.all(sp.r2 > 0.99)


def test_estimate_srf_gain_offset_from_sensor():
    s = 4
    lr, msi, _, R, wl = _pair(PSF.wald(s), s)
    gain = np.array([0.9, 1.1, 1.2, 0.8], np.float32)
    msi2 = msi * gain[:, None, None] + 0.01
    obs = estimate_observation(lr, msi2, s, psf="wald", srf="sensor", sensor=S2, wavelengths=wl)
    np.testing.assert_allclose(obs.spectral.gain, gain, rtol=0.02)
    np.testing.assert_allclose(obs.spectral.offset, 0.01, atol=2e-3)
    assert obs.summary()["srf"]["source"].startswith("sensor SRF")


def test_observation_summary_and_wald_snap():
    s = 4
    lr, msi, *_ = _pair(PSF.wald(s), s)
    obs = estimate_observation(lr, msi, s)
    summ = obs.summary()
    assert summ["psf_source"].startswith("wald") and abs(summ["sigma_over_scale"] - 0.5) < 1e-6
    assert {"shift_dx_lr_px", "shift_dy_lr_px", "srf"} <= set(summ) and "Observation model" in obs.message()


def test_bad_inputs_one_clear_line():
    s = 4
    lr, msi, *_ = _pair(PSF.wald(s), s, size=64)
    with pytest.raises(CsakdError, match="fewer MSI bands than HSI bands"):
        estimate_observation(lr[:3], msi, s)
    with pytest.raises(CsakdError, match="sensor SRF has 4 bands but the HR-MSI 3"):
        estimate_observation(lr, msi[:3], s, sensor=S2, wavelengths=np.linspace(420, 2400, 40))
    with pytest.raises(CsakdError, match="outside the hyperspectral range"):
        srf_matrix(load_srf(S2), np.linspace(400, 700, 31))  # VNIR-only HSI, B8 at 833 nm
    with pytest.raises(CsakdError, match="no spectral overlap"):
        check_msi_wavelengths([490, 560, 665, 1610], np.linspace(400, 1000, 60))
    with pytest.raises(CsakdError, match="all nodata where they overlap"):
        estimate_observation(np.full_like(lr, np.nan), msi, s)
    for bad in ("gaussian:-1", "box"):
        with pytest.raises(CsakdError, match="PSF"):
            parse_psf(bad, s)
    with pytest.raises(CsakdError, match="--srf sensor needs"):
        parse_srf("sensor")
    assert parse_srf("auto:S2A") == ("auto", "S2A") and parse_srf(S2) == ("sensor", S2)

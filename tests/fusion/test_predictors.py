"""Predictors: nodata masks, the classical predictor's fit-once/apply-per-window contract, model resolution."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers_predictors import CallablePredictor
from conftest import synthetic_reference

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.fusion.predictors import (
    ClassicalPredictor,
    all_finite,
    apply_mask,
    fill_nodata,
    make_predictor,
    nodata_mask,
)
from csakd_qgis.spectral.degrade import synthesize_msi, wald_degrade
from csakd_qgis.spectral.srf import srf_matrix

S = 4


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref, wl = synthetic_reference(n_bands=24, size=64, seed=seed)
    lr = wald_degrade(ref, S)
    fwhm = [float(wl[1] - wl[0])] * len(wl)  # Gaussian band responses as wide as the band spacing
    msi = synthesize_msi(ref, srf_matrix("S2A:B2,B3,B4,B8", wl, fwhm))
    return ref, lr.astype(np.float32), msi.astype(np.float32)


def test_all_finite_and_mask_follow_nan_positions():
    _, lr, msi = _pair()
    assert all_finite(lr) and nodata_mask(lr[None], msi[None], S) is None
    lr_bad, msi_bad = lr.copy(), msi.copy()
    lr_bad[3, 2, 5] = np.nan  # one LR pixel of band 3 -> its s x s HR children of band 3 only
    msi_bad[1, 40, 50] = np.inf  # one MSI pixel of one band -> that HR pixel in every band
    assert not all_finite(lr_bad) and not all_finite(msi_bad)
    mask = nodata_mask(lr_bad[None], msi_bad[None], S)[0]
    assert mask.shape == (24, 64, 64)
    assert mask[3, 8:12, 20:24].all() and mask[3].sum() == S * S + 1
    assert mask[:, 40, 50].all() and mask[0].sum() == 1
    out = apply_mask(np.zeros((1, 24, 64, 64), np.float32), mask[None])
    assert np.isnan(out[0][mask]).all() and np.isfinite(out[0][~mask]).all()


def test_fill_nodata_uses_nearest_valid_pixel_and_zero_for_empty_band():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    x[0, 0, 0] = np.nan
    x[1] = np.nan
    out = fill_nodata(x)
    assert np.isfinite(out).all()
    assert out[0, 0, 0] in (x[0, 0, 1], x[0, 1, 0], x[0, 1, 1])
    assert (out[1] == 0).all()
    assert np.array_equal(out[0, 1:], x[0, 1:])


def test_classical_predictor_fits_once_and_matches_whole_image_fusion():
    _, lr, msi = _pair()
    pred = ClassicalPredictor("glp", S, lr.shape[0], msi.shape[0])
    assert pred.needs_sample
    with pytest.raises(RuntimeError, match="prepare"):
        pred.predict(lr[None], msi[None])
    pred.prepare(lr, msi)
    assert not pred.needs_sample and any("coefficients fitted" in m for m in pred.messages)
    out = pred.predict(lr[None], msi[None])[0]
    whole = fuse_classical(lr, msi, S, "glp")
    np.testing.assert_allclose(out, whole, atol=1e-5)
    assert pred.network_seconds > 0


def test_classical_predictor_checks_band_counts_and_shapes():
    _, lr, msi = _pair()
    pred = ClassicalPredictor("bicubic", S, lr.shape[0], msi.shape[0])
    with pytest.raises(CsakdError, match="expects 24 HSI and 4 MSI bands"):
        pred.predict(lr[None, :10], msi[None])
    with pytest.raises(ValueError, match="not scale 4"):
        pred.predict(lr[None], msi[None, :, :32])
    with pytest.raises(CsakdError, match="Unknown classical method"):
        ClassicalPredictor("nearest", S, 24, 4)


def test_callable_predictor_fills_inputs_and_masks_output():
    _, lr, msi = _pair()
    seen = {}

    def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        seen["finite"] = bool(np.isfinite(a).all() and np.isfinite(b).all())
        return np.repeat(np.repeat(a, S, axis=-2), S, axis=-1)

    lr_bad = lr.copy()
    lr_bad[0, 0, 0] = np.nan
    pred = CallablePredictor(fn, S, lr.shape[0], msi.shape[0])
    out = pred.predict(lr_bad[None], msi[None])[0]
    assert seen["finite"]
    assert np.isnan(out[0, :S, :S]).all() and np.isfinite(out[1:]).all()


def test_make_predictor_resolves_classical_names_predictors_and_refuses_unknown():
    pred = make_predictor("GLP", scale=S, hsi_bands=24, msi_bands=4, device="cuda")
    assert isinstance(pred, ClassicalPredictor) and pred.method == "glp"
    assert any("runs on the CPU" in m for m in pred.messages)
    same = make_predictor(pred, scale=S, hsi_bands=24, msi_bands=4)
    assert same is pred
    with pytest.raises(CsakdError, match="scale 4 but the inputs have scale 3"):
        make_predictor(pred, scale=3, hsi_bands=24, msi_bands=4)
    with pytest.raises(CsakdError, match="Unknown model 'no-such-model'"):
        make_predictor("no-such-model", scale=S, hsi_bands=24, msi_bands=4)

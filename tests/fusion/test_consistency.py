"""Consistency projection: residuals vanish, one pass is the fixed point, tiles reproduce the whole image."""

from __future__ import annotations

import numpy as np
import pytest

from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.fusion.consistency import margin_lr, project, residuals
from csakd_qgis.fusion.observation import PSF, ObservationModel, SpectralModel, estimate_observation
from csakd_qgis.quality.metrics import psnr
from tests.fusion.test_observation import _pair


def _known_model(R: np.ndarray, psf: PSF, s: int) -> ObservationModel:
    return ObservationModel(s, psf, SpectralModel(R, np.zeros(R.shape[0]), "true"))


@pytest.mark.parametrize("psf", [PSF.wald(4), PSF(1.4, 0.3, -0.2)])
def test_projection_makes_output_consistent(psf):
    s = 4
    lr, msi, ref, R, _ = _pair(psf, s, size=96, rich=True)
    x0 = fuse_classical(lr, msi, s, "bicubic")  # far from both data sets (GLP is already MSI-consistent)
    for obs in (_known_model(R, psf, s), estimate_observation(lr, msi, s)):
        before = residuals(x0, lr, msi, obs)
        x = project(x0, lr, msi, obs)
        after = residuals(x, lr, msi, obs)
        assert after["lr_hsi"] <= 0.1 * before["lr_hsi"], (before, after)
        assert after["msi"] <= 0.1 * before["msi"], (before, after)
        assert psnr(ref, x) > psnr(ref, x0)
    # for consistent data one pass is the fixed point: a second round does not move it
    obs = _known_model(R, psf, s)
    np.testing.assert_allclose(project(x0, lr, msi, obs, rounds=2), project(x0, lr, msi, obs), atol=1e-4)


def test_tiles_with_margin_reproduce_whole_image():
    s, psf = 4, PSF(1.6, 0.2, 0.1)
    lr, msi, _, R, _ = _pair(psf, s, size=128, rich=True)
    obs = _known_model(R, psf, s)
    x0 = fuse_classical(lr, msi, s, "bicubic")
    whole = project(x0, lr, msi, obs)
    m = margin_lr(obs)
    pad = [(0, 0), (m, m), (m, m)]
    lr_p, msi_p, x0_p = (np.pad(lr, pad, mode="symmetric"), np.pad(msi, [(0, 0), (m * s, m * s)] * 1 + [(m * s, m * s)],
                         mode="symmetric"), np.pad(x0, [(0, 0), (m * s, m * s), (m * s, m * s)], mode="symmetric"))
    out = np.zeros_like(whole)
    t = 8  # LR px per tile side
    for r in range(0, lr.shape[1], t):
        for c in range(0, lr.shape[2], t):
            sl_lr = (slice(None), slice(r, r + t + 2 * m), slice(c, c + t + 2 * m))
            sl_hr = (slice(None), slice(r * s, (r + t + 2 * m) * s), slice(c * s, (c + t + 2 * m) * s))
            tile = project(x0_p[sl_hr], lr_p[sl_lr], msi_p[sl_hr], obs, pad=False)
            out[:, r * s:(r + t) * s, c * s:(c + t) * s] = tile[:, m * s:(m + t) * s, m * s:(m + t) * s]
    assert np.abs(out - whole).max() < 1e-4


def test_nodata_stays_nodata():
    s = 4
    lr, msi, _, R, _ = _pair(PSF.wald(s), s, size=64, rich=True)
    lr[:, 2:4, 3:5] = np.nan
    msi[:, 40:44, 10:12] = np.nan
    obs = _known_model(R, PSF.wald(s), s)
    x = project(fuse_classical(lr, msi, s, "glp"), lr, msi, obs)
    assert np.isnan(x[:, 8:16, 12:20]).all() and np.isnan(x[:, 40:44, 10:12]).all()
    assert np.isfinite(x[:, 20:36, 20:36]).all()

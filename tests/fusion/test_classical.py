"""Classical fusion baselines: grid convention, NaN handling, tile consistency, and gains on real EnMAP data."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers_sim import enmap_mosaic, requires_shared_data, smooth_cube

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import (
    CLASSICAL_METHODS,
    apply_classical,
    fit_classical,
    fuse_classical,
    margin_lr,
)
from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.spectral.degrade import crop_to_multiple, simulate_pair, wald_degrade

GAUSS4 = "gaussian:490/65,560/35,665/30,842/115"


@pytest.fixture(scope="module")
def sim():
    cube, wl = smooth_cube(30, 48, 60, seed=3)
    lr, msi = simulate_pair(cube, wl, None, GAUSS4, 4)
    return cube, lr, msi


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_follows_grid_convention(s):
    # LR pixel j holds f at its centre, HR coordinate (j + 0.5) s - 0.5; cubic convolution reproduces linear f
    h, w = 9, 11
    jj = (np.arange(w) + 0.5) * s - 0.5
    ii = (np.arange(h) + 0.5) * s - 0.5
    lr = (0.01 * jj[None, :] + 0.02 * ii[:, None] + 0.1)[None].astype(np.float32)
    up = upsample_bicubic(lr, s)
    assert up.shape == (1, h * s, w * s)
    yy, xx = np.mgrid[0:h * s, 0:w * s]
    expect = 0.01 * xx + 0.02 * yy + 0.1
    inner = (slice(None), slice(2 * s, -2 * s), slice(2 * s, -2 * s))
    np.testing.assert_allclose(up[inner], expect[None][inner], atol=1e-6)
    np.testing.assert_allclose(upsample_bicubic(np.full((2, 4, 5), 0.3, np.float32), s), 0.3, rtol=1e-6)


def test_bicubic_nan_handling():
    lr = np.full((2, 6, 6), 0.2, np.float32)
    lr[1, 2, 3] = np.nan
    up = upsample_bicubic(lr, 3)
    assert np.isnan(up[1, 6:9, 9:12]).all()
    assert np.isfinite(up).sum() == up.size - 9
    np.testing.assert_allclose(up[np.isfinite(up)], 0.2, rtol=1e-6)


def test_fusion_beats_bicubic_on_synthetic(sim):
    cube, lr, msi = sim
    res = {m: compute_metrics(cube, fuse_classical(lr, msi, 4, m), 4) for m in CLASSICAL_METHODS}
    for m in ("gsa", "glp"):
        assert res[m]["psnr"] > res["bicubic"]["psnr"] + 3, res
        assert res[m]["sam"] < res["bicubic"]["sam"], res


@pytest.mark.parametrize("method", CLASSICAL_METHODS)
def test_tiles_with_margin_reproduce_whole_image(sim, method):
    _, lr, msi = sim
    s = 4
    params = fit_classical(lr, msi, s, method)
    full = apply_classical(lr, msi, s, method, params)
    mg = margin_lr(method)
    # a tile of LR rows 4..7, cols 5..9 read with a margin, then cropped
    r0, r1, c0, c1 = 4, 8, 5, 10
    a0, a1, b0, b1 = r0 - mg, r1 + mg, c0 - mg, c1 + mg
    assert a0 >= 0 and b0 >= 0 and a1 <= lr.shape[1] and b1 <= lr.shape[2]
    tile = apply_classical(lr[:, a0:a1, b0:b1], msi[:, a0 * s:a1 * s, b0 * s:b1 * s], s, method, params)
    inner = tile[:, mg * s:(mg + r1 - r0) * s, mg * s:(mg + c1 - c0) * s]
    np.testing.assert_allclose(inner, full[:, r0 * s:r1 * s, c0 * s:c1 * s], atol=2e-6)


def test_fit_from_precomputed_degraded_msi(sim):
    _, lr, msi = sim
    a = fit_classical(lr, msi, 4, "glp")
    b = fit_classical(lr, None, 4, "glp", msi_lr=wald_degrade(msi, 4))
    np.testing.assert_allclose(a.coef, b.coef)
    assert a.coef.shape == (30, 5) and a.r2.shape == (30,) and a.n_fit_pixels == lr.shape[1] * lr.shape[2]
    g = fit_classical(lr, msi, 4, "gsa")
    assert g.intensity.shape == (4, 31) and g.gains.shape == (30, 5)


def test_nodata_in_inputs_stays_local(sim):
    _, lr, msi = sim
    lr, msi = lr.copy(), msi.copy()
    lr[:, 2, 3] = np.nan
    msi[1, 30, 30] = np.nan
    for m in CLASSICAL_METHODS:
        out = fuse_classical(lr, msi, 4, m)
        bad = ~np.isfinite(out).all(0)
        assert bad[8:12, 12:16].all()
        assert bad[30, 30] == (m != "bicubic")
        assert bad.sum() == 16 + (m != "bicubic")


def test_user_errors(sim):
    _, lr, msi = sim
    with pytest.raises(CsakdError, match="Unknown classical method"):
        fuse_classical(lr, msi, 4, "pca")
    with pytest.raises(CsakdError, match="does not cover"):
        fuse_classical(lr, msi[:, :20], 4, "glp")
    with pytest.raises(CsakdError, match="fitted"):
        apply_classical(lr, msi, 4, "gsa", fit_classical(lr, msi, 4, "glp"))
    with pytest.raises(CsakdError, match="needs the HR-MSI"):
        fuse_classical(lr, None, 4, "gsa")


@requires_shared_data
@pytest.mark.shared_data
@pytest.mark.parametrize("s", [3, 4])
def test_enmap_gsa_glp_beat_bicubic(s):
    m = enmap_mosaic()
    assert m["cube"].shape == (218, 64, 96)
    ref = crop_to_multiple(m["cube"], s)
    lr, msi = simulate_pair(ref, m["wavelengths"], m["fwhm"], "S2A:B2,B3,B4,B8", s)
    res = {k: compute_metrics(ref, fuse_classical(lr, msi, s, k), s) for k in CLASSICAL_METHODS}
    for k in ("gsa", "glp"):
        assert res[k]["psnr"] > res["bicubic"]["psnr"] + 5, res
        assert res[k]["sam"] < res["bicubic"]["sam"] - 0.5, res
        assert res[k]["ergas"] < res["bicubic"]["ergas"], res

"""Metrics against sewar, plus the edge cases: exact images, zero spectra, nodata, masks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import sewar.full_ref as sewar_full_ref  # noqa: E402  (test dependency installed by make setup)

import csakd_qgis.quality.metrics as M
from csakd_qgis.errors import CsakdError
from csakd_qgis.quality.report import json_safe


def _hwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(1, 2, 0))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(42)
    ref = (rng.random((6, 37, 45)) * 0.5 + 0.02).astype(np.float64)
    est = ref + rng.normal(0, 0.02, ref.shape)
    return ref, est


def test_psnr_matches_sewar_per_band(pair):
    ref, est = pair
    expect = [sewar_full_ref.psnr(ref[b], est[b], MAX=ref[b].max()) for b in range(ref.shape[0])]
    np.testing.assert_allclose(M.psnr_per_band(ref, est), expect, atol=1e-6)
    assert abs(M.psnr(ref, est) - np.mean(expect)) < 1e-6


def test_sam_matches_sewar_in_degrees(pair):
    ref, est = pair
    assert abs(M.sam(ref, est) - np.degrees(sewar_full_ref.sam(_hwc(ref), _hwc(est)))) < 1e-6


@pytest.mark.parametrize("s", [3, 4])
def test_ergas_matches_sewar_ratio(pair, s):
    ref, est = pair
    assert abs(M.ergas(ref, est, s) - sewar_full_ref.ergas(_hwc(ref), _hwc(est), r=1.0 / s)) < 1e-6


def test_rmse_matches_sewar(pair):
    ref, est = pair
    assert abs(M.rmse(ref, est) - sewar_full_ref.rmse(_hwc(ref), _hwc(est))) < 1e-9


def test_ssim_matches_sewar_gaussian_valid(pair):
    from sewar.utils import Filter

    ref, est = pair
    spec = dict(fltr=Filter.GAUSSIAN, ws=11, sigma=1.5)
    expect = [sewar_full_ref.ssim(ref[b], est[b], MAX=ref[b].max() - ref[b].min(), fltr_specs=spec)[0]
              for b in range(ref.shape[0])]
    np.testing.assert_allclose(M.ssim_per_band(ref, est), expect, atol=1e-6)
    assert M.ssim(ref, ref) == pytest.approx(1.0)


def _uiqi_loop(x: np.ndarray, y: np.ndarray, w: int) -> float:
    vals = []
    for i in range(x.shape[0] - w + 1):
        for j in range(x.shape[1] - w + 1):
            a, b = x[i:i + w, j:j + w].ravel(), y[i:i + w, j:j + w].ravel()
            ma, mb = a.mean(), b.mean()
            va, vb, cab = a.var(), b.var(), np.mean((a - ma) * (b - mb))
            vals.append(4 * cab * ma * mb / ((va + vb) * (ma ** 2 + mb ** 2)))
    return float(np.mean(vals))


def test_uiqi_matches_direct_definition(pair):
    # sewar's uqi mixes window sums and means (N * E[xy] - E[x]E[y]), so it is not a valid reference here
    ref, est = pair
    r, e = ref[:2, :14, :17], est[:2, :14, :17]
    expect = np.mean([_uiqi_loop(r[b], e[b], 8) for b in range(2)])
    assert abs(M.uiqi(r, e) - expect) < 1e-9
    assert M.uiqi(ref, ref) == pytest.approx(1.0)
    flat = np.full((1, 10, 10), 0.3)
    assert M.uiqi(flat, flat) == 1.0


def test_identical_images_give_inf_psnr_cleanly(pair):
    ref, _ = pair
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = M.compute_metrics(ref, ref.copy(), 4)
    assert m["psnr"] == np.inf and all(np.isinf(m["psnr_per_band"]))
    assert m["psnr_capped"] == M.PSNR_CAP_DB
    assert m["sam"] == 0.0 and m["ergas"] == 0.0 and m["rmse"] == 0.0
    text = json.dumps(json_safe(m), allow_nan=False)
    assert '"psnr": "inf"' in text


def test_sam_skips_zero_norm_pixels(pair):
    ref, est = pair
    ref, est = ref.copy(), est.copy()
    ref[:, 3, 4] = 0.0
    est[:, 10, 11] = 0.0
    expect = np.degrees(sewar_full_ref.sam(_hwc(ref), _hwc(est)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = M.sam(ref, est)
        smap = M.sam_map(ref, est)
    assert abs(got - expect) < 1e-6
    assert np.isnan(smap[3, 4]) and np.isnan(smap[10, 11]) and np.isfinite(smap).sum() == 37 * 45 - 2
    assert np.isnan(M.sam(np.zeros((3, 4, 4)), np.zeros((3, 4, 4))))


def test_nodata_and_mask_exclude_pixels(pair):
    ref, est = pair
    ref_n = ref.copy()
    ref_n[2, 5:9, 7:20] = np.nan  # one band nodata -> whole pixel excluded
    mask = np.isfinite(ref_n).all(0)
    m_nan = M.compute_metrics(ref_n, est, 4)
    m_mask = M.compute_metrics(ref, est, 4, mask=mask)
    for k in ("psnr", "sam", "ergas", "rmse", "ssim", "uiqi"):
        assert m_nan[k] == pytest.approx(m_mask[k], rel=1e-12), k
    assert m_nan["n_pixels"] == mask.sum()
    v = mask.ravel()
    r2, e2 = ref.reshape(6, -1)[:, v], est.reshape(6, -1)[:, v]
    assert m_nan["rmse"] == pytest.approx(np.sqrt(np.mean((r2 - e2) ** 2)))
    expect_psnr = np.mean([sewar_full_ref.psnr(r2[b], e2[b], MAX=r2[b].max()) for b in range(6)])
    assert m_nan["psnr"] == pytest.approx(expect_psnr, abs=1e-6)
    # SSIM windows touching nodata are skipped, not filled
    assert m_nan["ssim"] != pytest.approx(M.ssim(np.nan_to_num(ref_n), est))


def test_band_subset_and_keys(pair):
    ref, est = pair
    m = M.compute_metrics(ref, est, 3, bands=[1, 4])
    assert m["n_bands"] == 2 and len(m["psnr_per_band"]) == 2
    assert m["psnr"] == pytest.approx(M.psnr(ref[[1, 4]], est[[1, 4]]))
    assert {"psnr", "sam", "ergas", "rmse", "ssim", "uiqi", "psnr_per_band"} <= set(m)


def test_user_errors(pair):
    ref, est = pair
    with pytest.raises(CsakdError, match="same shape"):
        M.compute_metrics(ref, est[:, :-1], 4)
    with pytest.raises(CsakdError, match="No valid pixel"):
        M.compute_metrics(ref, est, 4, mask=np.zeros(ref.shape[1:], bool))
    with pytest.raises(CsakdError, match="mask"):
        M.rmse(ref, est, mask=np.ones((3, 3), bool))

"""Full-reference quality metrics for fused hyperspectral images, on reflectance.

Conventions (checked against ``sewar`` in tests/test_metrics.py):

- PSNR: per band, peak = max of the reference band, 10 log10(peak^2 / MSE_b), averaged over bands.
  Identical bands give +inf (the average is then inf); ``psnr_capped`` caps each band at 100 dB.
- SAM: per-pixel angle in DEGREES between reference and estimated spectra, averaged over pixels; pixels
  where either spectrum has zero norm are skipped. The angle is arccos(clip(cos, -1, 1)) computed in Kahan's
  stable form 2 atan2(|a^ - b^|, |a^ + b^|), which gives exactly 0 for identical spectra.
- ERGAS: (100 / s) sqrt(mean_b(MSE_b / mean_b^2)), mean_b = reference band mean.
- RMSE: over all valid elements, reflectance units.
- SSIM: per band, 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range = max - min of the
  reference band, computed at window positions lying fully inside the image and on valid pixels only
  ('valid' mode), averaged over positions then bands.
- UIQI (Wang & Bovik's Q): per band, 8 x 8 box window at fully valid positions, averaged; flat windows
  follow the original code (both flat -> 1).

Validity: a pixel counts if ``mask`` (H, W) is True there (default all) and every selected band is finite
in both images; nodata (NaN) is therefore excluded automatically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError

PSNR_CAP_DB = 100.0


def _prepare(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None,
             bands: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 (C, H, W) copies of the selected bands and the (H, W) validity mask."""
    ref = np.asarray(ref)
    est = np.asarray(est)
    if ref.ndim == 2:
        ref, est = ref[None], est[None]
    if ref.shape != est.shape or ref.ndim != 3:
        raise CsakdError(f"Reference {ref.shape} and estimate {est.shape} must both be (bands, rows, cols) "
                         "of the same shape.")
    if bands is not None:
        ref, est = ref[list(bands)], est[list(bands)]
    ref = ref.astype(np.float64)
    est = est.astype(np.float64)
    valid = np.isfinite(ref).all(0) & np.isfinite(est).all(0)
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != valid.shape:
            raise CsakdError(f"The mask {m.shape} does not match the image size {valid.shape}.")
        valid &= m
    if not valid.any():
        raise CsakdError("No valid pixel to evaluate (all masked or nodata in some band).")
    return ref, est, valid


def psnr_per_band(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """PSNR (dB) of each band, peak = max of the reference band; +inf where the band is reproduced exactly."""
    r, e, v = _prepare(ref, est, mask)
    mse = np.mean((r[:, v] - e[:, v]) ** 2, axis=1)
    peak = r[:, v].max(axis=1)
    out = np.full(mse.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = peak > 0
        out[ok] = 10.0 * np.log10(peak[ok] ** 2 / mse[ok])
    return out


def nan_mean(values: np.ndarray) -> float:
    """Mean ignoring NaN; NaN (without numpy's empty-slice warning) when nothing is left, e.g. on tiny inputs."""
    v = np.asarray(values, np.float64)
    return float(np.nanmean(v)) if v.size and not np.isnan(v).all() else float("nan")


def psnr(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean over bands of the per-band PSNR (dB); inf if some band is exact (bands with peak <= 0 ignored)."""
    return nan_mean(psnr_per_band(ref, est, mask))


def sam_map(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(H, W) spectral angle in degrees; NaN at invalid pixels and where either spectrum has zero norm."""
    r, e, v = _prepare(ref, est, mask)
    nr = np.sqrt(np.einsum("chw,chw->hw", r, r))
    ne = np.sqrt(np.einsum("chw,chw->hw", e, e))
    ok = v & (nr > 0) & (ne > 0)
    a, b = r[:, ok] / nr[ok], e[:, ok] / ne[ok]
    # Kahan's form 2 atan2(|a - b|, |a + b|) of arccos(clip(cos, -1, 1)): same angle, exact 0 for equal spectra
    ang = 2.0 * np.arctan2(np.linalg.norm(a - b, axis=0), np.linalg.norm(a + b, axis=0))
    out = np.full(v.shape, np.nan)
    out[ok] = np.degrees(ang)
    return out


def sam(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean spectral angle in DEGREES over valid pixels with non-zero spectra (NaN if there are none)."""
    m = sam_map(ref, est, mask)
    return nan_mean(m)


def ergas(ref: np.ndarray, est: np.ndarray, scale: float, mask: np.ndarray | None = None) -> float:
    """ERGAS = (100 / s) sqrt(mean_b(MSE_b / mean_b^2)); ``scale`` s = LR/HR pixel-size ratio (e.g. 4)."""
    r, e, v = _prepare(ref, est, mask)
    mse = np.mean((r[:, v] - e[:, v]) ** 2, axis=1)
    mean = np.mean(r[:, v], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(100.0 / scale * np.sqrt(np.mean(mse / mean ** 2)))


def rmse(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean squared error over all valid elements (reflectance units)."""
    r, e, v = _prepare(ref, est, mask)
    return float(np.sqrt(np.mean((r[:, v] - e[:, v]) ** 2)))


def _valid_filter(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Separable correlation of the last two axes with ``weights``, 'valid' positions only."""
    from scipy.ndimage import correlate1d

    k = weights.size
    out = correlate1d(x, weights, axis=-1, mode="constant")
    out = correlate1d(out, weights, axis=-2, mode="constant")
    lo = k // 2
    hi = k - 1 - lo
    h, w = x.shape[-2:]
    return out[..., lo: h - hi, lo: w - hi]


def _window_valid(valid: np.ndarray, k: int) -> np.ndarray:
    """True at 'valid' window positions whose k x k window holds only valid pixels."""
    bad = _valid_filter((~valid).astype(np.float64), np.ones(k))
    return bad < 0.5


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1D Gaussian weights (the 2D SSIM window is their outer product)."""
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


_CHUNK = 16  # bands filtered at once by SSIM/UIQI (bounds the float64 temporaries on large images)


def ssim_per_band(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None, window: int = 11,
                  sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
                  data_range: float | Sequence[float] | None = None) -> np.ndarray:
    """SSIM of each band (Gaussian window, 'valid' positions on valid pixels); NaN if no window fits.

    ``data_range`` None = per band max - min of the reference (valid pixels), the usual float convention.
    """
    r, e, v = _prepare(ref, est, mask)
    n = r.shape[0]
    if min(v.shape) < window:
        return np.full(n, np.nan)
    ok = _window_valid(v, window)
    if not ok.any():
        return np.full(n, np.nan)
    if data_range is None:
        rng = r[:, v].max(axis=1) - r[:, v].min(axis=1)
    else:
        rng = np.broadcast_to(np.asarray(data_range, np.float64), (n,))
    rng = np.where(rng > 0, rng, 1.0)
    g = gaussian_window(window, sigma)
    out = np.empty(n)
    for b0 in range(0, n, _CHUNK):
        sl = slice(b0, min(b0 + _CHUNK, n))
        rb = np.where(v, r[sl], 0.0)
        eb = np.where(v, e[sl], 0.0)
        c1 = ((k1 * rng[sl]) ** 2)[:, None, None]
        c2 = ((k2 * rng[sl]) ** 2)[:, None, None]
        mu_r, mu_e = _valid_filter(rb, g), _valid_filter(eb, g)
        s_rr = _valid_filter(rb * rb, g) - mu_r ** 2
        s_ee = _valid_filter(eb * eb, g) - mu_e ** 2
        s_re = _valid_filter(rb * eb, g) - mu_r * mu_e
        smap = ((2 * mu_r * mu_e + c1) * (2 * s_re + c2)) / ((mu_r ** 2 + mu_e ** 2 + c1) * (s_rr + s_ee + c2))
        out[sl] = smap[:, ok].mean(axis=1)
    return out


def ssim(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None, **kwargs) -> float:
    """Mean over bands of :func:`ssim_per_band`."""
    return nan_mean(ssim_per_band(ref, est, mask, **kwargs))


def _uiqi_block(r: np.ndarray, e: np.ndarray, v: np.ndarray, window: int) -> np.ndarray:
    """UIQI map of a (c, H, W) band chunk at 'valid' window positions (no masking of invalid windows)."""
    r = np.where(v, r, 0.0)
    e = np.where(v, e, 0.0)
    box = np.full(window, 1.0 / window)
    mr, me = _valid_filter(r, box), _valid_filter(e, box)
    vr = _valid_filter(r * r, box) - mr ** 2
    ve = _valid_filter(e * e, box) - me ** 2
    cov = _valid_filter(r * e, box) - mr * me
    msum = mr ** 2 + me ** 2
    vsum = vr + ve
    flat = np.abs(vsum) <= 1e-12 * np.maximum(np.abs(msum), 1e-300)
    q = np.ones(mr.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(flat & (msum > 0), 2 * mr * me / msum, q)  # flat windows: luminance term only
        q = np.where(~flat & (msum > 0), 4 * cov * mr * me / (vsum * msum), q)
    return q


def uiqi(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None, window: int = 8) -> float:
    """UIQI averaged over valid window positions and bands (NaN if the image is smaller than the window)."""
    r, e, v = _prepare(ref, est, mask)
    if min(v.shape) < window:
        return float("nan")
    ok = _window_valid(v, window)
    if not ok.any():
        return float("nan")
    means = [_uiqi_block(r[b0:b0 + _CHUNK], e[b0:b0 + _CHUNK], v, window)[:, ok].mean(axis=1)
             for b0 in range(0, r.shape[0], _CHUNK)]
    return float(np.mean(np.concatenate(means)))


def finite_psnr(metrics: dict[str, Any]) -> float:
    """The PSNR of a metrics dict, capped (``psnr_capped``, 100 dB a band) when it is infinite (a perfect band).

    Keeps the CLI summary and the Processing outputs finite (``inf`` would be written as Infinity or null).
    """
    p = float(metrics["psnr"])
    if math.isfinite(p):
        return p

    return float(metrics.get("psnr_capped", PSNR_CAP_DB))


def compute_metrics(ref: np.ndarray, est: np.ndarray, scale: float, mask: np.ndarray | None = None,
                    bands: Sequence[int] | None = None) -> dict:
    """All quality metrics of ``est`` against ``ref`` ((C, H, W) reflectance) as a plain dict.

    Keys: psnr, psnr_capped, psnr_per_band (list), sam (degrees), ergas, rmse, ssim, uiqi, n_pixels, n_bands.
    ``bands`` selects a subset (0-based) of bands; ``mask`` (H, W) marks pixels to use.
    """
    r, e, v = _prepare(ref, est, mask, bands)
    pb = psnr_per_band(r, e, v)
    return {
        "psnr": nan_mean(pb),
        "psnr_capped": nan_mean(np.minimum(pb, PSNR_CAP_DB)),
        "psnr_per_band": [float(x) for x in pb],
        "sam": sam(r, e, v),
        "ergas": ergas(r, e, scale, v),
        "rmse": rmse(r, e, v),
        "ssim": ssim(r, e, v),
        "uiqi": uiqi(r, e, v),
        "n_pixels": int(v.sum()),
        "n_bands": int(r.shape[0]),
        "scale": float(scale),
    }

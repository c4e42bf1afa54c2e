"""Classical (no-training) HSI + MSI fusion baselines: bicubic, GSA and GLP hypersharpening.

All methods share one grid convention (LR/HR pixel grid): LR pixel i covers HR pixels [i*s, (i+1)*s), so its
centre is at HR coordinate (i + 0.5) * s - 0.5.

- ``bicubic``: Keys cubic convolution (a = -0.5, the "bicubic" of GDAL/OpenCV/MATLAB) of the LR-HSI,
  borders replicated. Chosen over a cubic B-spline because it is strictly local (4 taps), so a tile with a
  2-pixel LR margin reproduces the whole-image result exactly.
- ``glp`` (MTF-GLP hypersharpening, Selva et al. 2015): for each HSI band b a "pan" P_b = a_b0 + sum_k a_bk M_k
  is synthesised from the MSI bands M_k, with a_b fitted at LR by least squares of the LR-HSI band on the MSI
  degraded to LR by the Wald degradation (:func:`degrade.wald_degrade`). Detail injection:
  HR_b = up(L_b) + g_b (P_b - up(wald(P_b))) = up(L_b) + sum_k a_bk (M_k - up(wald(M_k))). The regression gain
  g_b = cov(L_b, P_b,LR) / var(P_b,LR) equals 1 exactly for a least-squares P_b, so g_b = 1.
- ``gsa`` (Gram-Schmidt adaptive component substitution, hypersharpening form): for each MSI band k an
  intensity I_k = c_k0 + sum_j c_kj up(L_j) is synthesised from the upsampled HSI bands (ridge regression of
  the degraded MSI band on the LR-HSI bands, fitted at LR); detail = M_k - I_k; the injection gains are the
  least-squares regression of each LR-HSI band on the LR intensities (the multi-band GS gain
  cov(L_b, I) var(I)^-1): HR_b = up(L_b) + sum_k G_bk (M_k - I_k).

Coefficients are fitted once on the whole scene at LR (:func:`fit_classical`); :func:`apply_classical` is
local, so a tiled engine gets the whole-image result at tile interiors when it reads ``margin_lr(method)``
extra LR pixels (and the matching HR pixels) around each tile and crops them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.spectral.degrade import check_scale, fill_nan_nearest, wald_degrade

CLASSICAL_METHODS = ("bicubic", "gsa", "glp")
_MARGIN_LR = {"bicubic": 2, "gsa": 2, "glp": 4}
# Ridge strength of the GSA intensity regression, relative to the mean band variance: keeps the fit
# well-posed when there are fewer LR pixels than HSI bands; on EnMAP 1e-4 costs < 0.01 dB, 1e-2 ~0.4 dB.
GSA_RIDGE = 1e-4
MAX_FIT_PIXELS = 500_000


def margin_lr(method: str) -> int:
    """LR pixels of context needed on each side of a tile for :func:`apply_classical` to be exact inside it."""
    return _MARGIN_LR[_check_method(method)]


def _check_method(method: str) -> str:
    m = str(method).strip().lower()
    if m not in CLASSICAL_METHODS:
        raise CsakdError(f"Unknown classical method '{method}': choose one of {', '.join(CLASSICAL_METHODS)}.")
    return m


@dataclass
class ClassicalParams:
    """Per-band coefficients of a classical method, fitted on the whole scene at LR.

    ``coef`` (C_h, C_m + 1): [a_b0, a_b1..] regression of each LR-HSI band on the degraded MSI (glp; also kept
    for gsa as a diagnostic). ``intensity`` (C_m, C_h + 1): [c_k0, c_k1..] ridge regression of each degraded
    MSI band on the LR-HSI bands (gsa). ``gains`` (C_h, C_m + 1): regression of each LR-HSI band on the LR
    intensities (gsa). ``r2`` (C_h,): share of each LR-HSI band's variance explained by the MSI.
    """

    method: str
    scale: int
    n_hsi: int = 0
    n_msi: int = 0
    coef: np.ndarray | None = None
    intensity: np.ndarray | None = None
    gains: np.ndarray | None = None
    r2: np.ndarray | None = None
    n_fit_pixels: int = 0
    extra: dict = field(default_factory=dict)


def _check_pair(lr: np.ndarray, msi: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    lr = np.asarray(lr, np.float32)
    msi = np.asarray(msi, np.float32)
    if lr.ndim != 3 or msi.ndim != 3:
        raise CsakdError(f"LR-HSI {lr.shape} and HR-MSI {msi.shape} must be (bands, rows, cols) arrays.")
    h, w = lr.shape[1:]
    if msi.shape[1] < h * s or msi.shape[2] < w * s:
        raise CsakdError(f"The HR-MSI ({msi.shape[1]} x {msi.shape[2]} px) does not cover the LR-HSI "
                         f"({h} x {w} px) at scale {s}: expected {h * s} x {w * s} px.")
    return lr, msi[:, : h * s, : w * s]


def lstsq_with_const(x: np.ndarray, y: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Coefficients [const, slopes] (n_out, n_in + 1) of y (n, n_out) on x (n, n_in); optional ridge on slopes.

    Features are centred (the constant is unpenalised) and the ridge term is ``ridge`` times the mean
    feature variance, so it is scale-free.
    """
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    lam = ridge * np.trace(gram) / max(gram.shape[0], 1)
    if lam > 0:
        gram = gram + lam * np.eye(gram.shape[0])
        slopes = np.linalg.solve(gram, xc.T @ yc)
    else:
        slopes = np.linalg.lstsq(xc, yc, rcond=None)[0]
    const = my - mx @ slopes
    return np.concatenate([const[None, :], slopes], axis=0).T


def apply_linear(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """coef (n_out, n_in + 1) applied to a (n_in, H, W) image -> (n_out, H, W)."""
    out = np.einsum("oi,ihw->ohw", coef[:, 1:].astype(np.float32), x, optimize=True)
    out += coef[:, :1, None].astype(np.float32)
    return out


def fit_classical(lr: np.ndarray, msi: np.ndarray | None, s: int, method: str,
                  msi_lr: np.ndarray | None = None, seed: int = 0) -> ClassicalParams:
    """Fit the per-band coefficients of ``method`` on a whole scene at LR.

    ``lr`` (C_h, h, w), ``msi`` (C_m, s*h, s*w) on the LR/HR pixel grid (docs/ARCHITECTURE.md). For large scenes pass ``msi_lr`` (the MSI
    already Wald-degraded to the LR grid, e.g. computed tile by tile) and ``msi=None``. Only pixels valid in
    every band are used (a random subset of at most 500k).
    """
    m = _check_method(method)
    s = check_scale(s)
    lr = np.asarray(lr, np.float32)
    if m == "bicubic":
        return ClassicalParams(m, s, n_hsi=lr.shape[0], n_msi=0 if msi is None else msi.shape[0])
    if msi_lr is None:
        if msi is None:
            raise CsakdError(f"Method '{m}' needs the HR-MSI (or its LR-degraded version).")
        lr, msi = _check_pair(lr, msi, s)
        msi_lr = wald_degrade(msi, s)
    msi_lr = np.asarray(msi_lr, np.float32)
    if msi_lr.shape[1:] != lr.shape[1:]:
        raise CsakdError(f"The degraded MSI {msi_lr.shape[1:]} does not match the LR-HSI {lr.shape[1:]}.")
    valid = np.isfinite(lr).all(0) & np.isfinite(msi_lr).all(0)
    n_valid = int(valid.sum())
    c_h, c_m = lr.shape[0], msi_lr.shape[0]
    if n_valid < c_m + 2:
        h, w = lr.shape[1:]
        if h * w < c_m + 2:  # small, not masked: say so instead of blaming clouds
            raise CsakdError(f"The LR-HSI is only {h} x {w} px ({h * w} pixels), too few to fit '{m}' ({c_m} MSI "
                             f"bands need at least {c_m + 2}): give a larger pair, or use 'bicubic'.")
        raise CsakdError(f"Only {n_valid} of the {h * w} LR pixels are valid in both the HSI and the MSI, too few to "
                         f"fit '{m}' ({c_m} MSI bands): the images overlap too little or are nodata (e.g. "
                         "cloud-masked) where they overlap. Choose a pair with more clear common area.")
    lv = lr[:, valid].T  # (n, C_h)
    mv = msi_lr[:, valid].T  # (n, C_m)
    if n_valid > MAX_FIT_PIXELS:
        pick = np.random.default_rng(seed).choice(n_valid, MAX_FIT_PIXELS, replace=False)
        lv, mv = lv[pick], mv[pick]
    coef = lstsq_with_const(mv, lv)  # (C_h, C_m + 1)
    pred = mv @ coef[:, 1:].T + coef[:, 0]
    var = lv.var(0)
    r2 = 1.0 - ((lv - pred) ** 2).mean(0) / np.where(var > 0, var, 1.0)
    params = ClassicalParams(m, s, n_hsi=c_h, n_msi=c_m, coef=coef, r2=r2, n_fit_pixels=int(lv.shape[0]))
    if m == "gsa":
        inten = lstsq_with_const(lv, mv, ridge=GSA_RIDGE)  # (C_m, C_h + 1)
        i_lr = lv @ inten[:, 1:].T + inten[:, 0]
        params.intensity = inten
        params.gains = lstsq_with_const(i_lr, lv)  # (C_h, C_m + 1)
    return params


def apply_classical(lr: np.ndarray, msi: np.ndarray, s: int, method: str,
                    params: ClassicalParams | None = None) -> np.ndarray:
    """Fuse a (tile of) LR-HSI (C_h, h, w) with the matching HR-MSI window (C_m, s*h, s*w) -> (C_h, s*h, s*w).

    ``params`` from :func:`fit_classical` (on the whole scene); for tiles add ``margin_lr(method)`` LR pixels
    of context on every side and crop them from the result. Output is NaN where the LR parent pixel or any
    MSI band is nodata.
    """
    m = _check_method(method)
    s = check_scale(s)
    lr = np.asarray(lr, np.float32)
    up = upsample_bicubic(lr, s)
    if m == "bicubic":
        return up
    lr, msi = _check_pair(lr, msi, s)
    if params is None or params.method != m:
        raise CsakdError(f"apply_classical('{m}') needs the parameters fitted by fit_classical(..., '{m}').")
    if params.n_hsi != lr.shape[0] or params.n_msi != msi.shape[0]:
        raise CsakdError(f"The '{m}' parameters were fitted for {params.n_hsi} HSI / {params.n_msi} MSI bands, "
                         f"not {lr.shape[0]} / {msi.shape[0]}.")
    msi_ok = np.isfinite(msi).all(0)
    msi_f = msi if msi_ok.all() else fill_nan_nearest(msi)
    up_f = np.nan_to_num(upsample_bicubic(fill_nan_nearest(lr), s) if not np.isfinite(lr).all() else up)
    if m == "glp":
        detail = msi_f - upsample_bicubic(wald_degrade(msi_f, s), s)
        gains = params.coef
    else:  # gsa
        detail = msi_f - apply_linear(params.intensity, up_f)
        gains = params.gains
    out = up_f + np.einsum("bk,khw->bhw", gains[:, 1:].astype(np.float32), detail, optimize=True)
    out[:, ~msi_ok] = np.nan
    out[~np.isfinite(up)] = np.nan
    return out.astype(np.float32)


def fuse_classical(lr: np.ndarray, msi: np.ndarray | None, s: int, method: str) -> np.ndarray:
    """Fit on the whole image and apply: the one-call classical fusion of an in-memory LR-HSI/HR-MSI pair."""
    m = _check_method(method)
    if m != "bicubic" and msi is None:
        raise CsakdError(f"Method '{m}' needs the HR-MSI.")
    params = fit_classical(lr, msi, s, m)
    return apply_classical(lr, msi, s, m, params)


__all__ = ["CLASSICAL_METHODS", "ClassicalParams", "apply_classical", "fit_classical", "fuse_classical",
           "margin_lr"]

"""Unmixing-based fusion: coupled non-negative matrix factorisation (CNMF class, Yokoya et al. 2012).

The HR-HSI is modelled as X = E A: ``p`` endmember spectra E (C_h, p) times HR abundances A (p, N), both
non-negative, abundances summing to about one. Following the paper's description:

1. endmembers initialised from the LR-HSI by vertex component analysis (VCA, fixed seed);
2. HSI step: Y ~ E A_lr by multiplicative NMF updates (A_lr first with E fixed, then both);
3. MSI step: M - o ~ (R E) A by multiplicative updates of A (initialised with A_lr upsampled), then of both;
4. outer iterations re-couple them: A_lr = D A (the HR abundances degraded by the PSF), update E only on the
   HSI; E_m = R E, update A only on the MSI.

The sum-to-one constraint is the usual augmented row (weight ``DELTA``). :func:`fit_cnmf` runs this on a
(sample of the) scene and keeps E; :func:`apply_cnmf` is per pixel given E (A_lr unmixed from the window's
LR-HSI with E fixed, upsampled, refined on the MSI), so tiles with ``MARGIN_LR`` LR px of context reproduce
the whole-image result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.observation import ObservationModel, degrade
from csakd_qgis.raster.resample import repeat_to_hr, upsample_bicubic
from csakd_qgis.spectral.degrade import check_scale, fill_nan_nearest

N_ENDMEMBERS = 20
DELTA = 0.1  # weight of the sum-to-one row (relative to the mean data level)
INNER = 100
OUTER = 2
APPLY_ITERS = 100
MARGIN_LR = 2  # bicubic upsampling of the LR abundances
EPS = 1e-9


@dataclass
class CNMFParams:
    """Endmembers (C_h, p) fitted on the scene, and the spectral model used for the MSI step."""

    endmembers: np.ndarray
    delta: float
    n_fit_pixels: int


def vca(y: np.ndarray, p: int, seed: int = 0) -> np.ndarray:
    """Vertex component analysis (Nascimento & Bioucas-Dias 2005): ``p`` pixel spectra of y (C, n) at simplex vertices."""
    rng = np.random.default_rng(seed)
    c, n = y.shape
    p = int(min(p, c, n))
    mean = y.mean(1, keepdims=True)
    u, _, _ = np.linalg.svd((y - mean) @ (y - mean).T / n)
    x = u[:, : p - 1].T @ (y - mean)  # (p-1, n) projected data
    x = np.vstack([x, np.full((1, n), np.max(np.linalg.norm(x, axis=0)) + EPS)])
    idx = np.zeros(p, int)
    a = np.zeros((p, p))
    a[-1, 0] = 1.0
    for i in range(p):
        w = rng.standard_normal(p)
        f = w - a @ np.linalg.pinv(a) @ w
        f /= max(np.linalg.norm(f), EPS)
        idx[i] = int(np.argmax(np.abs(f @ x)))
        a[:, i] = x[:, idx[i]]
    return np.clip(y[:, idx], EPS, None)


def _augment(v: np.ndarray, delta: float) -> np.ndarray:
    return np.vstack([v, np.full((1, v.shape[1]), delta)])


def _update_a(v: np.ndarray, w: np.ndarray, a: np.ndarray, iters: int, delta: float) -> np.ndarray:
    """Multiplicative updates of H in V ~ W H with the sum-to-one row (V, W augmented)."""
    va, wa = _augment(v, delta), _augment(w, delta)
    num = wa.T @ va
    gram = wa.T @ wa
    for _ in range(iters):
        a *= num / (gram @ a + EPS)
    return a


def _update_e(v: np.ndarray, e: np.ndarray, a: np.ndarray, iters: int) -> np.ndarray:
    """Multiplicative updates of W in V ~ W H."""
    num = v @ a.T
    gram = a @ a.T
    for _ in range(iters):
        e *= num / (e @ gram + EPS)
    return e


def _pixels(x: np.ndarray) -> np.ndarray:
    x = x if np.isfinite(x).all() else np.nan_to_num(fill_nan_nearest(x))
    return np.clip(x.reshape(x.shape[0], -1).astype(np.float64), 0.0, None)


def fit_cnmf(lr: np.ndarray, msi: np.ndarray, model: ObservationModel, p: int = N_ENDMEMBERS, seed: int = 0
             ) -> CNMFParams:
    """Endmembers of the scene by coupled NMF of the LR-HSI and the HR-MSI (module doc, steps 1-4)."""
    s = check_scale(model.scale)
    lr = np.asarray(lr, np.float32)
    h, w = lr.shape[1:]
    msi = np.asarray(msi, np.float32)[:, : h * s, : w * s]
    y = _pixels(lr)
    m = _pixels(msi - model.spectral.offset.astype(np.float32)[:, None, None])
    if y.shape[1] < 4:
        raise CsakdError(f"The LR-HSI has only {y.shape[1]} pixels: too few to unmix.")
    delta = DELTA * float(np.mean(y))
    R = np.clip(model.spectral.R, 0.0, None)
    e = vca(y, p, seed)
    a_lr = np.full((e.shape[1], y.shape[1]), 1.0 / e.shape[1])
    a_lr = _update_a(y, e, a_lr, INNER, delta)
    for _ in range(INNER // 10):
        e = _update_e(y, e, a_lr, 10)
        a_lr = _update_a(y, e, a_lr, 10, delta)
    a_hr = _init_hr(a_lr, e.shape[1], h, w, s)
    for _ in range(OUTER):
        em = R @ e
        a_hr = _update_a(m, em, a_hr, INNER, delta)
        a_lr = degrade(a_hr.reshape(-1, h * s, w * s).astype(np.float32), model.psf, s).reshape(a_hr.shape[0], -1)
        e = _update_e(y, e, np.clip(a_lr.astype(np.float64), 0.0, None), INNER)
    return CNMFParams(e.astype(np.float32), delta, int(y.shape[1]))


def _init_hr(a_lr: np.ndarray, p: int, h: int, w: int, s: int) -> np.ndarray:
    up = upsample_bicubic(a_lr.reshape(p, h, w).astype(np.float32), s)
    return np.clip(up.reshape(p, -1).astype(np.float64), EPS, None)


def apply_cnmf(lr: np.ndarray, msi: np.ndarray, model: ObservationModel, params: CNMFParams,
               iters: int = APPLY_ITERS) -> np.ndarray:
    """X = E A for a (window of a) pair, with E from :func:`fit_cnmf`: per pixel except the bicubic init."""
    s = check_scale(model.scale)
    lr = np.asarray(lr, np.float32)
    h, w = lr.shape[1:]
    msi = np.asarray(msi, np.float32)[:, : h * s, : w * s]
    e = params.endmembers.astype(np.float64)
    a_lr = _update_a(_pixels(lr), e, np.full((e.shape[1], h * w), 1.0 / e.shape[1]), iters, params.delta)
    a_hr = _init_hr(a_lr, e.shape[1], h, w, s)
    m = _pixels(msi - model.spectral.offset.astype(np.float32)[:, None, None])
    a_hr = _update_a(m, np.clip(model.spectral.R, 0.0, None) @ e, a_hr, iters, params.delta)
    out = (e @ a_hr).astype(np.float32).reshape(e.shape[0], h * s, w * s)
    bad = ~np.isfinite(msi).all(0) | repeat_to_hr(~np.isfinite(lr).all(0), s)
    out[:, bad] = np.nan
    return out


__all__ = ["CNMFParams", "apply_cnmf", "fit_cnmf", "vca"]

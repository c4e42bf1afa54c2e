"""Consistency projection: move any HR-HSI estimate onto {X : D X = Y} and {X : R X + o = M}.

D (PSF blur + s x s decimation) acts on the two spatial axes only and R (SRF) on the spectral axis only, so
the two orthogonal projections commute, and one pass of each (MSI set first, then LR-HSI set) is the exact
projection onto their intersection when the data are consistent (R Y + o = D M): further alternations do
not move the result (measured: the residuals after round 1 are at float precision). When they are not
(noise, model error) the pass ends on the LR-HSI set, keeping the HSI's low frequencies, and the MSI
residual left is the LR inconsistency spread by D^+.

- MSI step (per pixel): X += R^T (R R^T + eps I)^-1 (M - o - R X).
- LR-HSI step: X += D^+ (Y - D X), with D^+ = D^T (D D^T)^-1 from :mod:`observation` (local kernels).

Everything is local: a window's result equals the whole-image result at distance >= :func:`margin_lr` LR px
from the window edge, so the raster engine runs it tile by tile (the predictor's halo) with bounded memory.
Invalid (NaN) pixels are filled for the computation, receive no correction from themselves and are NaN
again in the output.
"""

from __future__ import annotations

import numpy as np

from csakd_qgis.fusion.observation import ObservationModel, degrade, degrade_pinv, pinv_margin_lr
from csakd_qgis.raster.resample import repeat_to_hr
from csakd_qgis.spectral.degrade import check_scale, fill_nan_nearest

LR_BAND_GROUP = 16  # bands per LR-projection step (same result as all at once, less memory traffic)
MSI_RIDGE = 1e-6  # relative ridge on R R^T (keeps the per-pixel solve well-posed for near-collinear rows)


def margin_lr(model: ObservationModel, rounds: int = 1) -> int:
    """LR pixels of context a window needs so that :func:`project` is exact inside it."""
    return int(rounds * pinv_margin_lr(model.psf, model.scale) + model.psf.margin_lr(model.scale))


def _filled(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x).all(0)
    return (x if ok.all() else np.nan_to_num(fill_nan_nearest(x))), ok


def residuals(x: np.ndarray, lr: np.ndarray, msi: np.ndarray, model: ObservationModel,
              border_lr: int | None = None) -> dict[str, float]:
    """Relative RMS misfits ||D X - Y|| / ||Y|| and ||R X + o - M|| / ||M|| over valid pixels at least
    ``border_lr`` LR px (default: the PSF's reach) inside the image, where D X does not depend on the border rule."""
    s = model.scale
    b = model.psf.margin_lr(s) if border_lr is None else int(border_lr)
    ry = degrade(np.nan_to_num(x), model.psf, s) - lr
    rm = model.spectral.apply(np.nan_to_num(x)) - msi
    if b:
        ry, rm = ry[:, b:-b, b:-b], rm[:, b * s:-b * s, b * s:-b * s]
        lr, msi, x = lr[:, b:-b, b:-b], msi[:, b * s:-b * s, b * s:-b * s], x[:, b * s:-b * s, b * s:-b * s]
    oky, okm = np.isfinite(ry), np.isfinite(rm) & np.isfinite(x).all(0)[None]
    return {"lr_hsi": float(np.sqrt(np.mean(ry[oky] ** 2) / np.mean(lr[oky] ** 2))),
            "msi": float(np.sqrt(np.mean(rm[okm] ** 2) / np.mean(msi[okm] ** 2)))}


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    return np.pad(x, [(0, 0), (n, n), (n, n)], mode="symmetric")


def project(x0: np.ndarray, lr: np.ndarray, msi: np.ndarray, model: ObservationModel, rounds: int = 1,
            use_msi: bool = True, use_lr: bool = True, pad: bool = True) -> np.ndarray:
    """The estimate ``x0`` (C_h, s*h, s*w) moved onto the data sets of ``lr`` (C_h, h, w) and ``msi`` (C_m, s*h, s*w).

    ``rounds`` alternations (1 is exact for consistent data); ``use_msi`` / ``use_lr`` switch a set off.
    With ``pad`` the arrays are first extended by :func:`margin_lr` mirrored LR px (as the raster engine reads
    context beyond the raster), so the result is exact up to the borders; windows that carry their own
    context (the engine's halo) pass ``pad=False``.
    """
    s = check_scale(model.scale)
    lr = np.asarray(lr, np.float32)
    h, w = lr.shape[1:]
    msi = np.asarray(msi, np.float32)[:, : h * s, : w * s]
    x0 = np.asarray(x0, np.float32)[:, : h * s, : w * s]
    lr_f, lr_ok = _filled(lr)
    msi_f, msi_ok = _filled(msi)
    x, x_ok = _filled(x0)
    m = margin_lr(model, rounds) if pad else 0
    if m:  # mirrored context, as the raster engine reads it beyond the raster
        lr_f, msi_f, x = _pad(lr_f, m), _pad(msi_f, m * s), _pad(x, m * s)
        lr_v, msi_v = _pad(lr_ok[None].astype(np.float32), m), _pad(msi_ok[None].astype(np.float32), m * s)
    else:
        lr_v, msi_v = lr_ok[None].astype(np.float32), msi_ok[None].astype(np.float32)
    x = np.array(x, np.float32, copy=True)
    R = model.spectral.R.astype(np.float64)
    gram = R @ R.T
    gram += MSI_RIDGE * np.trace(gram) / max(gram.shape[0], 1) * np.eye(gram.shape[0])
    back = (R.T @ np.linalg.inv(gram)).astype(np.float32)  # (C_h, C_m)
    for _ in range(max(1, int(rounds))):
        if use_msi:
            e_m = (msi_f - model.spectral.apply(x)) * msi_v
            x += np.einsum("cm,mhw->chw", back, e_m, optimize=True)
        if use_lr:  # band by band by nature: in groups of bands, whose arrays stay in cache (~1.7x faster)
            for b in range(0, x.shape[0], LR_BAND_GROUP):
                g = slice(b, b + LR_BAND_GROUP)
                e_y = (lr_f[g] - degrade(x[g], model.psf, s)) * lr_v
                x[g] += degrade_pinv(e_y, model.psf, s)
    if m:
        x = np.ascontiguousarray(x[:, m * s: m * s + h * s, m * s: m * s + w * s])
    x[:, ~(x_ok & msi_ok)] = np.nan
    bad_lr = repeat_to_hr(~lr_ok, s)
    x[:, bad_lr] = np.nan
    return x


__all__ = ["margin_lr", "project", "residuals"]

"""Variants of the 20 m-band fusion compared in bench/eval_multires.py (not used by the engine): the stacked
MSI of method (a), the first sharpening, the merely upsampled trap, and detail injection per resolution (b)."""

from __future__ import annotations

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import apply_classical, apply_linear, fit_classical, lstsq_with_const
from csakd_qgis.fusion.multires import SHARPEN_METHOD, sharpen_bands
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.spectral.degrade import check_scale, wald_degrade


def sharpen_bands_levels(z: np.ndarray, msi: np.ndarray, f: int) -> np.ndarray:
    """The first sharpening (for comparison only): GLP with gains regressed on levels (the 20 m bands on the
    HR-MSI degraded to 20 m), no back-projection."""
    f = check_scale(f)
    return apply_classical(z, msi, f, SHARPEN_METHOD, fit_classical(z, msi, f, SHARPEN_METHOD))


def stack_bands(msi: np.ndarray, z: np.ndarray, f: int) -> np.ndarray:
    """Method (a): the HR-MSI bands followed by the sharpened 20 m bands, one (C_m + C_z, H, W) HR-MSI."""
    return np.concatenate([np.asarray(msi, np.float32), sharpen_bands(z, msi, f)], axis=0)


def upsampled_bands(msi: np.ndarray, z: np.ndarray, f: int) -> np.ndarray:
    """The trap (for comparison only): the HR-MSI with the 20 m bands merely upsampled (bicubic) beside it."""
    return np.concatenate([np.asarray(msi, np.float32), upsample_bicubic(z, check_scale(f))], axis=0)


def _detail_gains(lr: np.ndarray, x_lr: np.ndarray) -> np.ndarray:
    """Least-squares gains (C_h, C_x + 1) of each LR-HSI band on the bands ``x_lr`` (pixels valid in all)."""
    ok = np.isfinite(lr).all(0) & np.isfinite(x_lr).all(0)
    if int(ok.sum()) < x_lr.shape[0] + 2:
        raise CsakdError(f"Only {int(ok.sum())} valid LR pixels to fit the detail gains: the inputs overlap too "
                         "little or are mostly nodata.")
    return lstsq_with_const(x_lr[:, ok].T, lr[:, ok].T)


def fuse_per_resolution(lr: np.ndarray, msi: np.ndarray, z: np.ndarray, s: int, f: int) -> np.ndarray:
    """Method (b): GLP with each MSI band's detail injected at its own resolution -> (C_h, s*h, s*w).

    ``lr`` (C_h, h, w) at scale ``s``, ``msi`` (C_m, s*h, s*w), ``z`` (C_z, s*h/f, s*w/f); s*h and s*w must be
    multiples of ``f``. Bands at HR: X = [M, up_f(Z)]; coarse detail (LR -> 20 m) of X smoothed to 20 m with
    the gains of all bands, fine detail (20 m -> HR) of M with the gains of M alone.
    """
    s, f = check_scale(s), check_scale(f)
    lr = np.asarray(lr, np.float32)
    h, w = lr.shape[1] * s, lr.shape[2] * s
    if h % f or w % f or z.shape[1:] != (h // f, w // f) or msi.shape[1:] != (h, w):
        raise CsakdError(f"fuse_per_resolution: the HR-MSI {msi.shape[1:]} must be {(h, w)} and the 20 m bands "
                         f"{z.shape[1:]} must be {(h // f, w // f)} (HR size a multiple of {f}).")
    msi = np.asarray(msi, np.float32)
    m20 = upsample_bicubic(wald_degrade(msi, f), f)  # the HR-MSI at 20 m resolution
    x = np.concatenate([msi, upsample_bicubic(z, f)], axis=0)
    x20 = np.concatenate([m20, x[msi.shape[0]:]], axis=0)
    x_lr = wald_degrade(x, s)
    gains_all = _detail_gains(lr, x_lr)
    gains_hr = _detail_gains(lr, x_lr[: msi.shape[0]])
    out = upsample_bicubic(lr, s)
    out += apply_linear(gains_all, x20 - upsample_bicubic(x_lr, s)) - gains_all[:, :1, None].astype(np.float32)
    out += apply_linear(gains_hr, msi - m20) - gains_hr[:, :1, None].astype(np.float32)
    return out.astype(np.float32)

"""Bicubic (Keys, a = -0.5) upsampling by an integer factor on the LR/HR pixel grid (docs/ARCHITECTURE.md).

The one upsampler behind the bicubic method, the fusion baselines, the evaluation report and the training
baselines: LR pixel i covers HR pixels [i*s, (i+1)*s), so HR pixel centres sit at LR offsets (r + 0.5)/s - 0.5.
"""

from __future__ import annotations

import numpy as np

from csakd_qgis.spectral.degrade import check_scale, fill_nan_nearest


def _keys_weights(frac: float, a: float = -0.5) -> np.ndarray:
    """Keys cubic-convolution weights of the taps at offsets -1, 0, 1, 2 from floor(u), frac = u - floor(u)."""
    d = np.array([1 + frac, frac, 1 - frac, 2 - frac])
    w = np.where(d <= 1, (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1,
                 np.where(d < 2, a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a, 0.0))
    return w / w.sum()


def _upsample_axis(x: np.ndarray, s: int, axis: int) -> np.ndarray:
    """Cubic-convolution upsampling by s along ``axis`` on the LR/HR pixel grid (docs/ARCHITECTURE.md) (edges replicated)."""
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1) + [(2, 2)]
    xp = np.pad(x, pad, mode="edge")
    out = np.empty(x.shape[:-1] + (n * s,), dtype=np.float32)
    for r in range(s):
        t = (r + 0.5) / s - 0.5  # LR coordinate offset of HR phase r from its parent LR centre
        base = int(np.floor(t))
        w = _keys_weights(t - base)
        acc = np.zeros(x.shape[:-1] + (n,), dtype=np.float32)
        for k in range(4):
            start = 2 + base - 1 + k
            acc += np.float32(w[k]) * xp[..., start: start + n]
        out[..., r::s] = acc
    return np.moveaxis(out, -1, axis)


def repeat_to_hr(a: np.ndarray, s: int) -> np.ndarray:
    """``a`` with each pixel of its last two axes repeated s x s: an LR-grid mask (or label) on the HR grid."""
    return np.repeat(np.repeat(a, s, axis=-2), s, axis=-1)


def upsample_bicubic(lr: np.ndarray, s: int) -> np.ndarray:
    """Bicubic (Keys, a = -0.5) upsampling of (C, h, w) or (h, w) by the integer scale s (LR/HR pixel grid).

    NaN pixels are filled from the nearest valid pixel before interpolating, and the HR pixels they cover
    are NaN again in the output.
    """
    s = check_scale(s)
    lr = np.asarray(lr, np.float32)
    if s == 1:
        return lr.copy()
    valid = np.isfinite(lr)
    x = lr if valid.all() else fill_nan_nearest(lr)
    x = np.nan_to_num(x, nan=0.0)  # all-NaN bands: masked below
    out = _upsample_axis(_upsample_axis(x, s, -1), s, -2)
    if not valid.all():
        bad = repeat_to_hr(~valid, s)
        out[bad] = np.nan
    return out

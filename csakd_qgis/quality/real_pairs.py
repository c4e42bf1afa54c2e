"""Evaluation protocol for real pairs: score a fused image against the reference moved onto the MSI's geometry.

On a real pair the HSI and the MSI are offset by a sub-pixel shift, and a fused image takes its detail (and,
for methods that estimate the PSF centre, its low frequencies) from the MSI, so it lies in the MSI's geometry;
a reference taken from the HSI side lies in the HSI's. :func:`reference_on_msi_geometry` moves the reference by
the shift estimated from the pair (:func:`raster.coreg.estimate_shift_arrays`, the one ``SHIFT_CORRECT`` uses)
and :func:`score_both_geometries` reports the metrics against the reference as it lies and as moved, on the
same interior pixels (the border the shift pulls in from outside is left out).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.raster.coreg import estimate_shift_arrays
from csakd_qgis.spectral.degrade import shift_image


def reference_on_msi_geometry(ref: np.ndarray, lr: np.ndarray, msi: np.ndarray, scale: int,
                              shift: tuple[float, float] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(the HR reference moved onto the MSI's geometry, shift info). ``shift`` (dx, dy) in LR px, the HSI content
    relative to the MSI, is estimated from (``lr``, ``msi``) when None; the reference then moves by -shift."""
    info: dict[str, Any] = {}
    if shift is None:
        est = estimate_shift_arrays(np.asarray(lr, np.float32), np.asarray(msi, np.float32), scale)
        shift = (float(est.dx), float(est.dy))
        info.update(method=est.method, confidence=round(float(est.confidence), 3))
    dx, dy = shift
    info["shift_lr_px"] = [round(dx, 4), round(dy, 4)]
    return shift_image(ref, -dx * scale, -dy * scale), info


def score_both_geometries(ref: np.ndarray, ref_msi: np.ndarray, est: np.ndarray, scale: int,
                          shift_lr: tuple[float, float]) -> dict[str, dict[str, float]]:
    """PSNR, SAM, ERGAS of ``est`` against the reference in the HSI geometry ("hsi") and moved onto the MSI's
    ("msi"), both on the interior that stays clear of the moved border (ceil(|shift| s) + s HR px)."""
    b = int(math.ceil(max(abs(shift_lr[0]), abs(shift_lr[1])) * scale)) + scale
    mask = np.zeros(ref.shape[1:], bool)
    mask[b:-b, b:-b] = True
    out = {}
    for name, r in (("hsi", ref), ("msi", ref_msi)):
        m = compute_metrics(r, est, scale, mask=mask)
        out[name] = {k: round(float(m[k]), 3) for k in ("psnr", "sam", "ergas")}
    return out


__all__ = ["reference_on_msi_geometry", "score_both_geometries"]

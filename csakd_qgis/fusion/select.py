"""Per-scene method selection (``auto``): the model-based method a pair is fused with, and why.

``auto`` scores candidate methods at reduced scale on the user's own pair, as adaptation does: the LR-HSI and
the MSI degraded once more by the estimated PSF (the MSI to the LR grid) are fused and compared with the
LR-HSI itself. The candidate with the best mean PSNR there is used at full scale if it beats GLP by at least
``MIN_GAIN_DB``; otherwise GLP (the fallback). A pair too small for a reduced-scale score (fewer than
``MIN_REDUCED_LR`` LR px a side after the second degradation) gets ``DEFAULT``, the consistent GLP, which was
better than GLP on every development scene (bench/eval_model_based.py --dev); when the MSI is not a linear
view of the HSI (SRF fit R^2 < 0.9, e.g. a real RGB camera) candidates that enforce the MSI are dropped and the
default is ``DEFAULT_NONLINEAR``. The choice and the scores are reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from csakd_qgis.fusion.model_based import base_key, run_base, run_candidate, split_method
from csakd_qgis.fusion.observation import ObservationModel, degrade
from csakd_qgis.quality.metrics import psnr

AUTO_CANDIDATES = ("glp", "glp+c", "glp+cy")
DEFAULT = "glp+c"
DEFAULT_NONLINEAR = "glp+cy"  # an MSI that is not a linear view of the HSI: consistency with the LR-HSI only
FALLBACK = "glp"
MIN_GAIN_DB = 0.05
MIN_REDUCED_LR = 8


def select_method(lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel,
                  candidates=AUTO_CANDIDATES) -> tuple[str, dict[str, Any]]:
    """The method ``auto`` uses for this pair, and why (reduced-scale PSNR of each candidate)."""
    lr_r = degrade(np.nan_to_num(lr), obs.psf, s)
    msi_r = degrade(np.nan_to_num(msi[:, : lr.shape[1] * s, : lr.shape[2] * s]), obs.psf, s)
    linear = bool(obs.info.get("msi_linear", True))
    if not linear:
        candidates = [c for c in candidates if not c.endswith("+c")]
    default = DEFAULT if linear else DEFAULT_NONLINEAR
    if min(lr_r.shape[1:]) < MIN_REDUCED_LR:
        return default, {"reason": f"pair too small for a reduced-scale score ({lr.shape[1]} x {lr.shape[2]} LR px): "
                                   f"default {default}"}
    ref = np.asarray(lr, np.float32)[:, : lr_r.shape[1] * s, : lr_r.shape[2] * s]
    scores: dict[str, float] = {}
    bases: dict[str, np.ndarray] = {}
    for m in candidates:
        key = base_key(m)
        if key not in bases:
            bases[key] = run_base(split_method(m)[0], lr_r, msi_r, s, obs if "@" in key else None)[0]
        scores[m] = round(psnr(ref, run_candidate(m, lr_r, msi_r, s, obs, base_out=bases[key])), 3)
    best = max(scores, key=scores.get)
    ref_score = scores.get(FALLBACK, -np.inf)
    choice = best if best == FALLBACK or scores[best] >= ref_score + MIN_GAIN_DB else FALLBACK
    return choice, {"reduced_scale_psnr": scores,
                    "reason": f"best at reduced scale: {best}" + ("" if choice == best else f"; fallback {FALLBACK}")}


__all__ = ["AUTO_CANDIDATES", "DEFAULT", "FALLBACK", "select_method"]

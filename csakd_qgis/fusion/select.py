"""Per-scene method selection (``auto``) and the one-call model-based fusion of an in-memory pair.

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
from csakd_qgis.fusion.observation import ObservationModel, degrade, estimate_observation
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


def fuse_model_based(lr: np.ndarray, msi: np.ndarray, s: int, method: str, obs: ObservationModel | None = None,
                     psf: str = "auto", srf: str = "auto", sensor=None, wavelengths=None, fwhm=None,
                     cache: dict[str, np.ndarray] | None = None, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Fuse an in-memory pair with any model-based method name (or ``auto``); returns (HR-HSI, report).

    The observation model is estimated from the pair unless ``obs`` is given. ``cache`` (a dict) keeps base
    outputs between calls on the same pair (e.g. GLP for both ``glp`` and ``glp+c``).
    """
    m = str(method).strip().lower()
    report: dict[str, Any] = {}
    if obs is None and (m == "auto" or split_method(m)[1] or split_method(m)[0] == "cnmf"):
        obs = estimate_observation(lr, msi, s, psf=psf, srf=srf, sensor=sensor, wavelengths=wavelengths,
                                   fwhm=fwhm)
    if obs is not None:
        report["observation"] = obs.summary()
    if m == "auto":
        m, why = select_method(lr, msi, s, obs)
        report.update(choice=m, **why)
    key = base_key(m)
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = run_base(split_method(m)[0], lr, msi, s, obs if "@" in key else None, seed)[0]
    return run_candidate(m, lr, msi, s, obs, base_out=cache[key]), report


__all__ = ["AUTO_CANDIDATES", "DEFAULT", "FALLBACK", "fuse_model_based", "select_method"]

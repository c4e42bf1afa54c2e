"""Model-based fusion methods on in-memory arrays: classical bases, their consistent versions, CNMF.

Names: ``bicubic``, ``gsa``, ``glp`` (classical, no observation model), ``cnmf`` (unmixing, needs R and the
PSF), and any of them with ``+c`` (followed by the consistency projection onto the LR-HSI and MSI data sets)
or ``+cy`` (projected onto the LR-HSI set only: for MSIs that are not a linear view of the HSI). The
observation model is estimated from the pair unless given. ``auto`` (per-scene selection) is in :mod:`select`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import CLASSICAL_METHODS, apply_classical, fit_classical, margin_lr
from csakd_qgis.fusion.consistency import project
from csakd_qgis.fusion.observation import ObservationModel, msi_to_lr
from csakd_qgis.fusion.unmixing import MARGIN_LR as CNMF_MARGIN_LR
from csakd_qgis.fusion.unmixing import apply_cnmf, fit_cnmf
from csakd_qgis.raster.resample import upsample_bicubic

BASES = (*CLASSICAL_METHODS, "cnmf")
SUFFIXES = ("", "+c", "+cy")


def split_method(method: str) -> tuple[str, str]:
    """('glp', '+c') from 'glp+c'; raises CsakdError for an unknown name."""
    m = str(method).strip().lower()
    for suf in ("+cy", "+c"):
        if m.endswith(suf) and m[: -len(suf)] in BASES:
            return m[: -len(suf)], suf
    if m in BASES:
        return m, ""
    names = [b + s for b in BASES for s in SUFFIXES] + ["auto"]
    raise CsakdError(f"Unknown fusion method '{method}': choose one of {', '.join(names)}.")


def is_model_based(method: str) -> bool:
    """Whether ``method`` names a model-based method (``auto``, ``cnmf``, or a base with ``+c`` / ``+cy``)."""
    m = str(method).strip().lower()
    if m == "auto":
        return True
    try:
        base, suf = split_method(m)
    except CsakdError:
        return False
    return bool(suf) or base == "cnmf"


def base_key(method: str) -> str:
    """Cache key of a method's base output: 'glp' (classical) or 'glp@model' (degrades by the model's PSF)."""
    base, suf = split_method(method)
    return base + ("@model" if suf or base == "cnmf" else "")


def fit_base(base: str, lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel | None,
             seed: int = 0) -> Any:
    """Per-scene parameters of a base method (classical coefficients or CNMF endmembers), fitted on (a sample of)
    the pair. With ``obs`` GLP and GSA are fitted on the MSI degraded by the model's PSF (not the Wald blur)."""
    if base == "cnmf":
        if obs is None:
            raise CsakdError("CNMF needs the observation model (PSF and SRF).")
        return fit_cnmf(lr, msi, obs, seed=seed)
    if obs is None or base == "bicubic":
        return fit_classical(lr, msi, s, base)
    return fit_classical(lr, None, s, base, msi_lr=msi_to_lr(msi[:, : lr.shape[1] * s, : lr.shape[2] * s],
                                                             obs.psf, s))


def apply_base(base: str, lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel | None,
               params: Any) -> np.ndarray:
    """Output of a base method on a (window of the) pair with parameters from :func:`fit_base`.

    With ``obs`` GLP injects the detail the model's PSF removes (M - up(D M)), so it is what the LR-HSI lacks.
    """
    if base == "cnmf":
        return apply_cnmf(lr, msi, obs, params)
    if obs is None or base != "glp":
        return apply_classical(lr, msi, s, base, params)
    msi_f = msi[:, : lr.shape[1] * s, : lr.shape[2] * s]
    detail = np.nan_to_num(msi_f - upsample_bicubic(msi_to_lr(msi_f, obs.psf, s), s))
    out = upsample_bicubic(lr, s) + np.einsum("bk,khw->bhw", params.coef[:, 1:].astype(np.float32), detail,
                                              optimize=True)
    out[:, ~np.isfinite(msi_f).all(0)] = np.nan
    return out.astype(np.float32)


def base_margin_lr(base: str, obs: ObservationModel | None) -> int:
    """LR px of context :func:`apply_base` needs around a window."""
    if base == "cnmf":
        return CNMF_MARGIN_LR
    return margin_lr(base) + (obs.psf.margin_lr(obs.scale) if obs is not None and base == "glp" else 0)


def run_base(base: str, lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel | None,
             seed: int = 0) -> tuple[np.ndarray, Any]:
    """Output of one base method fitted and applied on the whole pair, and its parameters."""
    params = fit_base(base, lr, msi, s, obs, seed)
    return apply_base(base, lr, msi, s, obs, params), params


def run_candidate(method: str, lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel | None,
                  seed: int = 0, base_out: np.ndarray | None = None) -> np.ndarray:
    """Output of ``method`` (a base with an optional ``+c`` / ``+cy``) on the whole pair."""
    base, suf = split_method(method)
    x0 = run_base(base, lr, msi, s, obs if suf else None, seed)[0] if base_out is None else base_out
    if not suf:
        return x0
    if obs is None:
        raise CsakdError(f"'{method}' needs the observation model (PSF and SRF).")
    return project(x0, lr, msi, obs, use_msi=suf == "+c")


__all__ = ["BASES", "apply_base", "base_key", "base_margin_lr", "fit_base", "is_model_based", "run_base", "run_candidate", "split_method"]

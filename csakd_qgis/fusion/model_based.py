"""Model-based fusion methods on in-memory arrays: classical bases, their consistent versions, CNMF.

Names: ``bicubic``, ``gsa``, ``glp`` (classical, no observation model), ``cnmf`` (unmixing, needs R and the
PSF), and any of them with ``+c`` (followed by the consistency projection onto the LR-HSI and MSI data sets)
or ``+cy`` (projected onto the LR-HSI set only: for MSIs that are not a linear view of the HSI). The
observation model is estimated from the pair unless given. ``auto`` (per-scene selection) is in :mod:`select`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.classical import CLASSICAL_METHODS, apply_classical, fit_classical, upsample_bicubic
from ..core.errors import CsakdError
from .consistency import project
from .observation import ObservationModel, msi_to_lr
from .unmixing import apply_cnmf, fit_cnmf

BASES = (*CLASSICAL_METHODS, "cnmf")
SUFFIXES = ("", "+c", "+cy")
METHOD_HELP = {
    "glp+c": "GLP then the consistency projection (output blurred+decimated = LR-HSI, SRF(output) = MSI, with "
             "the PSF/SRF estimated from the pair); about 2-3x GLP's time",
    "gsa+c": "GSA then the consistency projection",
    "glp+cy": "GLP projected onto the LR-HSI only (for an MSI that is not a linear view of the HSI)",
    "cnmf": "coupled NMF unmixing (Yokoya 2012): 20 endmembers from the LR-HSI, HR abundances from the MSI "
            "through the estimated SRF; slow (about 10x GLP)",
    "cnmf+c": "CNMF then the consistency projection",
}


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


def base_key(method: str) -> str:
    """Cache key of a method's base output: 'glp' (classical) or 'glp@model' (degrades by the model's PSF)."""
    base, suf = split_method(method)
    return base + ("@model" if suf or base == "cnmf" else "")


def needs_model(method: str) -> bool:
    """Whether the method uses the observation model (PSF/SRF)."""
    base, suf = split_method(method)
    return bool(suf) or base == "cnmf"


def run_base(base: str, lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel | None,
             seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Output of one base method on the whole pair, plus what it fitted.

    With ``obs`` GLP and GSA degrade the MSI by the model's PSF (not the Wald blur they assume otherwise), so
    the injected detail is what the LR-HSI actually lacks.
    """
    if base == "cnmf":
        if obs is None:
            raise CsakdError("CNMF needs the observation model (PSF and SRF).")
        params = fit_cnmf(lr, msi, obs, seed=seed)
        return apply_cnmf(lr, msi, obs, params), {"endmembers": int(params.endmembers.shape[1])}
    if obs is None or base == "bicubic":
        params = fit_classical(lr, msi, s, base)
        return apply_classical(lr, msi, s, base, params), {}
    msi_f = msi[:, : lr.shape[1] * s, : lr.shape[2] * s]
    msi_lr = msi_to_lr(msi_f, obs.psf, s)
    params = fit_classical(lr, None, s, base, msi_lr=msi_lr)
    if base == "gsa":
        return apply_classical(lr, msi_f, s, base, params), {}
    detail = np.nan_to_num(msi_f - upsample_bicubic(msi_lr, s))  # glp with the model's PSF
    out = upsample_bicubic(lr, s) + np.einsum("bk,khw->bhw", params.coef[:, 1:].astype(np.float32), detail,
                                              optimize=True)
    out[:, ~np.isfinite(msi_f).all(0)] = np.nan
    return out.astype(np.float32), {}


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


__all__ = ["BASES", "METHOD_HELP", "base_key", "needs_model", "run_base", "run_candidate", "split_method"]

"""The benchmarks' one-call model-based fusion of an in-memory pair (any method name, or ``auto``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from csakd_qgis.fusion.model_based import base_key, run_base, run_candidate, split_method
from csakd_qgis.fusion.observation import ObservationModel, estimate_observation
from csakd_qgis.fusion.select import select_method


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

"""Learned models need reflectance in [0, 1]: refused, with the fix, on input that is clearly digital numbers
(a missing scale factor); classical and model-based methods absorb a gain and only get a warning."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError

MAX_REFLECTANCE_MEDIAN = 2.0  # |reflectance| medians are below 1; DN (x 10000) are in the hundreds or thousands


def is_learned(predictor: Any) -> bool:
    """Whether ``predictor`` runs a network (its runner) rather than a classical or model-based method."""
    return getattr(predictor, "runner", None) is not None


def require_reflectance(predictor: Any, samples: dict[str, tuple[str | os.PathLike, np.ndarray]]) -> None:
    """CsakdError for a learned ``predictor`` when an input's sample (role -> (path, values)) is not
    reflectance: its median |value| exceeds ``MAX_REFLECTANCE_MEDIAN``."""
    if not is_learned(predictor):
        return
    for role, (path, values) in samples.items():
        v = np.asarray(values)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        med = float(np.median(np.abs(v)))
        if med > MAX_REFLECTANCE_MEDIAN:
            raise CsakdError(
                f"The {role} '{path}' is not reflectance (median value {med:.4g}, reflectance lies in [0, 1]): the "
                f"learned model '{predictor.name}' would give nonsense. Give it its scale factor, e.g. "
                f"gdal_edit.py -scale 0.0001 '{path}' for digital numbers x 10000 (EnMAP, Sentinel-2 L2A), or use "
                "a classical method (e.g. glp), which absorbs a gain.")


__all__ = ["MAX_REFLECTANCE_MEDIAN", "is_learned", "require_reflectance"]

"""The model card of a trained network, built in one place for every trainer (co-training, fitting, adaptation).

:func:`trained_card` lays out what training knows (role, bands, normalization, training, validation, the base
method); :func:`adapted_card` completes a fitted student's card with its name, the user's bands and the
adaptation provenance. :func:`zoo.card.save_model` then adds what it derives from the weights.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from csakd_qgis.zoo.start import INIT_SCRATCH


def normalization_section(stats: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    """The card's ``normalization``: {"type": "none"}, or per-band means and deviations of both inputs."""
    if stats is None:
        return {"type": "none"}
    return {"type": "per_band", **{k: [float(x) for x in v] for k, v in stats.items()}}


def source_summary(src_card: dict[str, Any]) -> dict[str, Any]:
    """What a fine-tuned card records of the card it started from (name, created, validation, weights sha256)."""
    out = {k: src_card.get(k) for k in ("name", "created", "validation") if k in src_card}
    out["sha256"] = (src_card.get("weights") or {}).get("sha256")
    return out


def trained_card(role: str, *, normalization: dict[str, Any], training: dict[str, Any],
                 validation: dict[str, Any], hsi: dict[str, Any] | None = None, msi: dict[str, Any] | None = None,
                 name: str | None = None, base_method: str | None = None, source: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card template of a trained network for :func:`zoo.card.save_model`.

    ``extra``: fields given by the caller (its ``name`` and ``licence`` win, its ``training`` is extended, its
    ``hsi_sensor`` names the HSI sensor); ``source``: the card a fine-tuned network started from (its bands and
    a summary of it are kept); ``base_method``: the classical fusion a residual="base" network corrects.
    """
    card = copy.deepcopy(dict(extra or {}))
    hsi_sensor = card.pop("hsi_sensor", None)
    card.update(name=card.get("name") or name, role=role, normalization=normalization,
                training={**card.get("training", {}), **training}, validation=validation)
    if card["name"] is None:
        del card["name"]
    if source is not None:
        card["hsi"] = copy.deepcopy(source.get("hsi") or {})
        card["msi"] = copy.deepcopy(source.get("msi") or {})
        card["source_card"] = source_summary(source)
        card.setdefault("licence", source.get("licence"))
    if hsi is not None:
        card["hsi"] = {**hsi, "sensor": hsi.get("sensor", hsi_sensor)}
    if msi is not None:
        card["msi"] = msi
    if base_method is not None:
        card["base_method"] = base_method
    if not card.get("licence"):
        card.pop("licence", None)
    return card


def _known(values: Sequence[float | None] | None) -> list[float] | None:
    """The wavelengths as floats, or None when any is unknown."""
    if values is None or any(v is None for v in values):
        return None
    return [float(v) for v in values]


def adapted_card(card: dict[str, Any], name: str, wavelengths: Sequence[float | None],
                 fwhm: Sequence[float | None] | None, msi_info: dict[str, Any], hsi_sensor: str | None,
                 provenance: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A fitted student's card (``card``) for the user's bands: name, hsi/msi sections, ``adaptation`` provenance.

    ``run``: the fit's facts (init, steps, best_step, stopped_by, elapsed_s, device, start/best metrics).
    """
    out = copy.deepcopy(card)
    out["name"] = name
    hsi = dict(out.get("hsi") or {})
    hsi.update({"bands": len(wavelengths), "wavelengths": _known(wavelengths),
                "fwhm": _known(fwhm)})
    hsi["sensor"] = hsi_sensor or hsi.get("sensor")
    out["hsi"] = hsi
    msi = dict(out.get("msi") or {})
    msi.update({k: v for k, v in msi_info.items() if v is not None})
    msi["bands"] = int(msi_info.get("bands") or msi.get("bands"))
    if msi.get("wavelengths") and any(w is None for w in msi["wavelengths"]):
        msi["wavelengths"] = None
    out["msi"] = msi
    out["adaptation"] = {**provenance, "source_model": None if run["init"] == INIT_SCRATCH else run["init"],
                         "source_sha256": (out.get("source_card") or {}).get("sha256"),
                         "steps": run["steps"], "best_step": run["best_step"], "stopped_by": run["stopped_by"],
                         "elapsed_s": round(run["elapsed_s"], 2), "device": run["device"],
                         "validation_start": run["start_metrics"], "validation_best": run["best_metrics"],
                         "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()}
    out["training"]["protocol"] = provenance.get("protocol")
    return out


__all__ = ["adapted_card", "normalization_section", "source_summary", "trained_card"]

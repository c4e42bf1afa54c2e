"""The network a training run starts from: the closest zoo model (``auto``), none (``scratch``), a name or a file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csakd_qgis.errors import CsakdError
from csakd_qgis.zoo.card import base_method_of, read_card
from csakd_qgis.zoo.registry import ZooCandidate, closest_zoo_model, resolve_model_path

INIT_AUTO, INIT_SCRATCH = "auto", "scratch"


def is_auto(init: str | None) -> bool:
    """Whether ``init`` asks for the closest zoo model (empty counts as auto)."""
    return (init or INIT_AUTO).strip().lower() == INIT_AUTO


def choose_start(init: str | None, hsi_wavelengths: Sequence[float | None], msi_bands: int, scale: int,
                 msi_wavelengths: Sequence[float] | None, msi_sensor: str | None
                 ) -> tuple[ZooCandidate | None, list[str]]:
    """(closest zoo model or None, report lines) when ``init`` is auto; (None, []) otherwise."""
    if not is_auto(init):
        return None, []
    return closest_zoo_model(hsi_wavelengths, msi_bands, scale, msi_wavelengths, msi_sensor)


def resolve_init(init: str | None, zoo_choice: ZooCandidate | None = None) -> Path | None:
    """The model card path to start from (None = from scratch) for ``init`` (auto/scratch/name/path)."""
    text = (init or INIT_AUTO).strip()
    if text.lower() == INIT_AUTO:
        return zoo_choice.path if zoo_choice is not None else None
    if text.lower() == INIT_SCRATCH:
        return None
    return resolve_model_path(text)


def start_base_method(source: Path | None, scratch_base: str) -> str | None:
    """The classical base the starting network corrects: ``scratch_base`` for a new one, None if it uses none."""
    if source is None:
        return scratch_base

    card = read_card(source)
    return base_method_of(card) if card.get("residual") == "base" else None


def check_start_card(card: dict[str, Any], label: str) -> None:
    """Refuse a starting model that is not a CSAKD fusion student (only those are fine-tuned)."""
    if card.get("arch") != "csakd":
        raise CsakdError(f"The starting model '{label}' is a '{card.get('arch')}' model (single-image "
                         "super-resolution), not a CSAKD fusion network: start from 'auto', 'scratch' or a "
                         "CSAKD fusion student instead.")
    if card.get("role") != "student":
        raise CsakdError(f"The starting model '{label}' is a {card.get('role')}: only students are fine-tuned "
                         "here (the adapted model is exported as a student); start from its student, 'auto' "
                         "or 'scratch'.")


__all__ = ["INIT_AUTO", "INIT_SCRATCH", "check_start_card", "choose_start", "is_auto", "resolve_init",
           "start_base_method"]

"""Where a trained model is written: the destination checked before any compute, both files written or neither."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csakd_qgis.errors import CsakdError
from csakd_qgis.quality.report import json_safe
from csakd_qgis.raster.io import check_writable_folder
from csakd_qgis.zoo.card import save_model
from csakd_qgis.zoo.registry import check_not_overwriting
from csakd_qgis.zoo.start import INIT_AUTO, INIT_SCRATCH, resolve_init

MODEL_SUFFIX = ".safetensors"


def check_model_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (),
                       init: str | os.PathLike | None = None) -> Path:
    """Validate a model destination before any compute: ``.safetensors`` (or no extension), writable folder,
    not an input, not the starting model ``init`` (auto/scratch/zoo name/file), not an installed zoo model.

    Returns the ``.safetensors`` path (its card is the ``.json`` beside it).
    """
    text = str(path or "").strip()
    if not text:
        raise CsakdError("The output model path is empty: give a file name ending in .safetensors.")
    p = Path(text).expanduser()
    if p.suffix == "":
        p = p.with_suffix(MODEL_SUFFIX)
    elif p.suffix.lower() != MODEL_SUFFIX:
        raise CsakdError(f"The output model '{p}' has extension '{p.suffix}', but models are written as "
                         f"'{MODEL_SUFFIX}' weights with a .json card beside them. Rename it to end in "
                         f"{MODEL_SUFFIX}.")
    check_writable_folder(p, "output model")
    if p.is_dir():
        raise CsakdError(f"The output model '{p}' is a folder: give a file name ending in {MODEL_SUFFIX}.")
    start = resolve_init(str(init)) if init and str(init).strip().lower() not in (INIT_AUTO, INIT_SCRATCH) else None
    check_not_overwriting([p, p.with_suffix(".json")], inputs, [start] if start else [])
    return p


def save_model_files(path: Path, model: Any, card: dict[str, Any]) -> tuple[Path, Path]:
    """``zoo.card.save_model`` of a card that may hold numpy numbers or NaN (written as null); both files or neither."""
    return save_model(path, model, json_safe(card, non_finite="null"))


__all__ = ["MODEL_SUFFIX", "check_model_output", "save_model_files"]

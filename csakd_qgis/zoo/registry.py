"""The model zoo registry: where models are found, listing them, resolving a name, ranking them for a pair."""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.guard import input_files
from csakd_qgis.zoo.card import model_paths, read_card, read_safetensors_header, validate_card

MODEL_DIRS_ENV = "CSAKD_MODEL_PATH"  # extra model folders (os.pathsep-separated), searched first


def model_dirs() -> list[Path]:
    """Folders searched for zoo models: $CSAKD_MODEL_PATH, the plugin's models/, the repository's models/."""
    here = Path(__file__).resolve().parent.parent  # csakd_qgis/
    dirs = [Path(p) for p in os.environ.get(MODEL_DIRS_ENV, "").split(os.pathsep) if p]
    dirs += [here / "models", here.parent / "models"]
    return dirs


def check_not_overwriting(outputs: Sequence[str | os.PathLike], inputs: Sequence[str | os.PathLike] = (),
                          models: Sequence[str | os.PathLike] = ()) -> None:
    """Refuse outputs that are an input raster, a model the run starts from (weights or card) or an installed
    zoo model: a run must never destroy what it reads, nor the zoo."""
    protected = [(Path(str(i)), "one of the inputs") for i in inputs if i]
    protected += [(q, "the model this run starts from (its weights or card)")
                  for m in models if m for q in model_paths(m)]
    zoo = {d.resolve() for d in model_dirs() if d.is_dir()}
    for out in (Path(str(o)).expanduser() for o in outputs):
        if not out.exists():
            continue
        for src, what in protected:
            if src.exists() and os.path.samefile(out, src):
                raise CsakdError(f"The output '{out}' is {what}: writing it would overwrite it. Choose another "
                                 "output file name.")
        if out.resolve().parent in zoo:
            raise CsakdError(f"The output '{out}' is a model of the installed zoo ('{out.parent}'): writing it "
                             "would replace that model. Choose a file outside the zoo folder (or a new name).")


def _card_arch(card: Path) -> str:
    """The ``arch`` of a model card ("csakd" when the card cannot be read: the error shows when it is used)."""

    try:
        return str(json.loads(card.read_text(encoding="utf-8")).get("arch", "csakd"))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return "csakd"


def available_models(arch: str | None = "csakd") -> list[str]:
    """Names of the zoo models found in :func:`model_dirs` (a model = <name>.json + <name>.safetensors).

    ``arch``: only models of that architecture ("csakd" = HSI + MSI fusion, the default; "dodn" =
    single-image super-resolution); None lists every model.
    """
    names: list[str] = []
    for d in model_dirs():
        if d.is_dir():
            for card in sorted(d.glob("*.json")):
                if card.with_suffix(".safetensors").is_file() and card.stem not in names and (
                        arch is None or _card_arch(card) == arch):
                    names.append(card.stem)
    return names


def resolve_model_path(name: str | os.PathLike, builtin: Sequence[str] = ()) -> Path:
    """The model card path for a zoo model name, a stem, a .json or a .safetensors path.

    A bare name is looked up in :func:`model_dirs`; anything else is a file path. Raises CsakdError when
    nothing is found, listing the zoo models and the caller's ``builtin`` method names (e.g. the classical
    methods), which the caller resolves itself before asking the zoo.
    """
    methods = f"a built-in method ({', '.join(builtin)}), " if builtin else ""
    text = str(name).strip()
    if not text:
        raise CsakdError(f"No model given: use {methods}a zoo model name or a .safetensors file.")
    looks_like_path = (os.sep in text or "/" in text or text.lower().endswith((".json", ".safetensors"))
                       or Path(text).expanduser().exists())
    if looks_like_path:
        json_path, st_path = model_paths(text)
        if not json_path.is_file() and not st_path.is_file():
            raise CsakdError(f"The model file '{text}' does not exist: give a .safetensors file with its .json "
                             f"card beside it{',' if builtin else ' or'} a zoo model name{' or ' + methods[:-2] if builtin else ''}.")
        if not st_path.is_file():
            raise CsakdError(f"The model weights '{st_path}' do not exist beside the card '{json_path}'.")
        if not json_path.is_file():
            raise CsakdError(f"The model card '{json_path}' does not exist beside the weights '{st_path}': a model "
                             "is a .safetensors file plus a .json card of the same name.")
        return json_path
    for d in model_dirs():
        card = d / f"{text}.json"
        if card.is_file():
            return card
    zoo = available_models(None)
    raise CsakdError(f"Unknown model '{text}': not {methods}not a "
                     f"zoo model ({', '.join(zoo) if zoo else 'none installed'}) and not a file path.")


# ---------------------------------------------------------------------------------------------- zoo
@dataclass
class ZooCandidate:
    """A zoo model checked against the data: ``ok`` and, if not, ``reason``; lower ``distance`` is closer."""

    name: str
    path: Path
    card: dict[str, Any] | None
    ok: bool
    reason: str = ""
    distance: float = math.inf


def rank_zoo_models(hsi_wavelengths: Sequence[float | None], msi_bands: int, scale: int,
                    msi_wavelengths: Sequence[float | None] | None = None, msi_sensor: str | None = None
                    ) -> list[ZooCandidate]:
    """Every zoo student checked against the data, closest first (fitting ones before the rest).

    Hard requirements: role student, architecture csakd, the same scale, HSI and MSI band counts and HSI band
    centres (within the card tolerance). Distance = mean |MSI band centre difference| (nm) + mean |HSI
    difference| (nm) + 5 if the MSI sensor names differ.
    """
    from csakd_qgis.zoo.registry import available_models, resolve_model_path

    out: list[ZooCandidate] = []
    for name in available_models():
        try:
            path = resolve_model_path(name)
            card = read_card(path)
        except CsakdError as exc:
            out.append(ZooCandidate(name, Path(name), None, False, f"unreadable card ({exc})"))
            continue
        if card.get("role") != "student":
            out.append(ZooCandidate(name, path, card, False, "not a student (teachers are not fine-tuned here)"))
            continue
        try:
            validate_card(card, list(hsi_wavelengths), int(msi_bands), int(scale))
        except CsakdError as exc:
            out.append(ZooCandidate(name, path, card, False, str(exc)))
            continue
        dist = 0.0
        mw = (card.get("msi") or {}).get("wavelengths")
        if msi_wavelengths is not None and mw and len(mw) == len(msi_wavelengths):
            pairs = [(float(a), float(b)) for a, b in zip(msi_wavelengths, mw, strict=True)
                     if a is not None and b is not None]
            if pairs:
                dist += float(np.mean([abs(a - b) for a, b in pairs]))
        hw = (card.get("hsi") or {}).get("wavelengths")
        if hw:
            pairs = [(float(a), float(b)) for a, b in zip(hsi_wavelengths, hw, strict=True)
                     if a is not None and b is not None]
            if pairs:
                dist += float(np.mean([abs(a - b) for a, b in pairs]))
        card_sensor = str((card.get("msi") or {}).get("sensor") or "")
        if msi_sensor and card_sensor and not _same_sensor(msi_sensor, card_sensor):
            dist += 5.0
        out.append(ZooCandidate(name, path, card, True, "", dist))
    out.sort(key=lambda c: (not c.ok, c.distance, c.name))
    return out


def _same_sensor(a: str, b: str) -> bool:
    def key(s: str) -> str:
        s = s.lower().replace("sentinel-", "s").replace("sentinel", "s").replace(" ", "")
        return s[:3]

    return key(a) == key(b)


def closest_zoo_model(hsi_wavelengths: Sequence[float | None], msi_bands: int, scale: int,
                      msi_wavelengths: Sequence[float | None] | None = None, msi_sensor: str | None = None
                      ) -> tuple[ZooCandidate | None, list[str]]:
    """(the closest fitting zoo student or None, one log line per zoo model saying why it was (not) chosen)."""
    ranked = rank_zoo_models(hsi_wavelengths, msi_bands, scale, msi_wavelengths, msi_sensor)
    best = ranked[0] if ranked and ranked[0].ok else None
    lines = []
    for c in ranked:
        if c is best:
            lines.append(f"zoo model {c.name}: chosen (distance {c.distance:.1f} nm)")
        elif c.ok:
            lines.append(f"zoo model {c.name}: fits, farther (distance {c.distance:.1f} nm)")
        else:
            lines.append(f"zoo model {c.name}: skipped: {c.reason}")
    if not ranked:
        lines.append("no zoo model installed: training from scratch")
    elif best is None:
        lines.append("no zoo model fits these data: training from scratch")
    return best, lines


CARD_METRIC_KEYS = ("psnr", "sam", "ergas")


def safetensors_param_count(weights: Path) -> int | None:
    """Number of values in a .safetensors file, from its JSON header (None when unreadable)."""
    try:
        header = read_safetensors_header(weights)
    except (OSError, struct.error, ValueError):
        return None
    return int(sum(math.prod(v.get("shape", [])) for v in header.values() if isinstance(v, dict)))


def card_mean_metrics(per_scene: Any) -> dict[str, float] | None:
    """{psnr, sam, ergas} of a metrics dict, or the mean over a {scene: metrics} dict."""
    if not isinstance(per_scene, dict) or not per_scene:
        return None
    if any(k in per_scene for k in CARD_METRIC_KEYS):
        out = {k: float(per_scene[k]) for k in CARD_METRIC_KEYS if isinstance(per_scene.get(k), (int, float))}
        if "psnr" not in out and isinstance(per_scene.get("psnr_capped"), (int, float)):
            out["psnr"] = float(per_scene["psnr_capped"])  # an exact band makes the PSNR inf (null in the card)
        return out
    rows = [v for v in per_scene.values() if isinstance(v, dict)]
    out = {}
    for k in CARD_METRIC_KEYS:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out or None


def model_summary(name: str, card_path: Path) -> dict[str, Any]:
    """One row of ``csakd models`` for a zoo model (``error`` set when its card cannot be read)."""

    _, st_path = model_paths(card_path)
    row: dict[str, Any] = {"name": name, "card": str(card_path), "weights": str(st_path)}
    try:
        card = read_card(card_path)
    except CsakdError as exc:
        row["error"] = str(exc)
        return row
    hsi, msi = card.get("hsi") or {}, card.get("msi") or {}
    params = (card.get("complexity") or {}).get("params") or safetensors_param_count(st_path)
    val = card.get("validation") or {}
    test = val.get("test") or {}
    role = card.get("role")
    metrics, source = None, None
    if isinstance(test.get("metrics"), dict) and role in test["metrics"]:
        metrics, source = card_mean_metrics(test["metrics"][role]), "test"
    if metrics is None:
        metrics, source = card_mean_metrics(val.get("metrics")), "validation"
    glp = None
    if isinstance(test.get("metrics"), dict) and "glp" in test["metrics"]:
        glp = card_mean_metrics(test["metrics"]["glp"])
    row.update({
        "arch": card.get("arch"), "role": role, "scale": card.get("scale"), "residual": card.get("residual"),
        "base_method": card.get("base_method"),
        "hsi_sensor": hsi.get("sensor"), "hsi_bands": hsi.get("bands"),
        "hsi_range_nm": ([round(min(w for w in hsi["wavelengths"] if w is not None), 1),
                          round(max(w for w in hsi["wavelengths"] if w is not None), 1)]
                         if hsi.get("wavelengths") and any(w is not None for w in hsi["wavelengths"]) else None),
        "msi_sensor": msi.get("sensor"), "msi_bands": msi.get("bands"), "msi_band_names": msi.get("band_names"),
        "params": params, "metrics": metrics, "metrics_source": source if metrics else None, "glp_test": glp,
        "adapted": bool(card.get("adaptation")), "licence": card.get("licence"), "created": card.get("created"),
    })
    return row


def list_models() -> list[dict[str, Any]]:
    """Rows for every zoo model in model_dirs() ($CSAKD_MODEL_PATH first)."""

    return [model_summary(name, resolve_model_path(name)) for name in available_models(None)]


def zoo_students() -> list[str]:
    """Names of the zoo's fusion students (the models scene adaptation can start from); unreadable cards are skipped."""
    students = []
    for name in available_models():
        try:
            role = read_card(resolve_model_path(name)).get("role")
        except CsakdError:  # an unreadable card must not break the caller (e.g. the Processing provider)
            continue
        if role == "student":
            students.append(name)
    return students


def model_input_files(model: object) -> list[Path]:
    """The files of a model given by name or path (none for a built-in method or an unknown name)."""
    if not isinstance(model, str | os.PathLike) or not str(model).strip():
        return []
    try:
        card = resolve_model_path(str(model).strip())
    except CsakdError:
        return []
    return input_files(card)

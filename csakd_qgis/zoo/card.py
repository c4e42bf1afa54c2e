"""Model files: weights in ``<stem>.safetensors`` plus a JSON model card ``<stem>.json``.

The card says what the weights are and what data they expect, so a model can be checked against the
user's rasters before any compute. Card schema (``format_version`` 1; keys in :data:`REQUIRED_KEYS`):

- ``format`` "csakd-model-card", ``format_version`` 1, ``name``, ``arch`` ("csakd" = HSI + MSI fusion, or
  "dodn" = single-image SR of the HSI, MSI privileged in training only), ``role`` ("teacher" | "student"),
  ``config`` (``CSAKDConfig.to_dict()`` or ``nets.dodn.DODNConfig.to_dict()``), ``scale``, ``residual``;
- ``hsi``: {"bands": int, "wavelengths": [nm] | null, "fwhm": [nm] | null, "sensor": str | null};
- ``msi``: {"bands": int, "sensor": str | null, "band_names": [str] | null, "wavelengths": [nm] | null};
- ``normalization``: {"type": "none"} (reflectance in [0, 1] straight into the net) or
  {"type": "per_band", "hsi_mean", "hsi_std", "msi_mean", "msi_std"} (x -> (x - mean) / std on both
  inputs and on ``base``; the output is mapped back with the HSI statistics);
- ``training`` (free-form: data, steps, losses ...; optional ``provenance``: the scenes the weights were trained and
  selected on, one {"name", "split", "source", "attribution", ...} each, from ``training.corpus.Corpus.provenance``),
  ``validation`` (metrics), ``software``
  ({"csakd_qgis", "torch"}), ``licence``, ``created`` (ISO 8601 UTC), ``weights``
  ({"file", "dtype", "sha256", "num_tensors"}); optional ``base_method`` (the classical fusion a
  residual="base" net corrects, e.g. "glp").

Arch "dodn" (DODN-style): a student's card describes an LR-HSI -> HR-HSI network that needs no MSI at inference;
its ``msi`` section records the privileged training MSI (the teacher's input). The weights hold only the
exported network (:class:`nets.dodn.DODNStudent` or ``DODNTeacher``, by ``config.net``): never the
training-only KD adapter.

torch and safetensors are imported lazily: this module is safe to import without them.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import write_files_atomic
from csakd_qgis.version import __version__

CARD_FORMAT = "csakd-model-card"
CARD_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "arch", "role", "config", "scale", "residual", "hsi", "msi",
                 "normalization", "training", "validation", "software", "licence", "created", "weights")
ROLES = ("teacher", "student")
ARCHS = ("csakd", "dodn")
DEFAULT_LICENCE = "GPL-2.0-or-later"
WAVELENGTH_TOLERANCE_NM = 5.0


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(card .json, weights .safetensors) paths for a stem, a .json or a .safetensors path."""
    p = Path(str(path)).expanduser()
    if p.suffix.lower() in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_suffix(".json"), p.with_suffix(".safetensors")


def _software() -> dict[str, str]:
    import torch


    return {"csakd_qgis": __version__, "torch": torch.__version__}


def _float_list(values: Sequence[Any] | None) -> list[float | None] | None:
    if values is None:
        return None
    return [None if v is None else float(v) for v in values]


def base_method_of(card: dict[str, Any]) -> str:
    """The classical fusion a residual="base" network of this card corrects (older cards: in ``training``; glp)."""
    training = card.get("training") or {}
    return str(card.get("base_method") or training.get("base_method")
               or (training.get("config") or {}).get("base_method") or "glp")


def complete_card(model: Any, card: dict[str, Any], dtype: str = "float32") -> dict[str, Any]:
    """A copy of ``card`` with every key save_model can derive from ``model`` filled in and checked."""
    cfg = model.cfg
    out = copy.deepcopy(card)
    out["format"], out["format_version"] = CARD_FORMAT, CARD_VERSION
    out["arch"] = cfg.arch
    out["config"] = cfg.to_dict()
    out["scale"] = int(cfg.scale)
    out["residual"] = cfg.residual
    out.setdefault("name", "")
    out.setdefault("normalization", {"type": "none"})
    out.setdefault("training", {})
    out.setdefault("validation", {})
    out.setdefault("licence", DEFAULT_LICENCE)
    out["software"] = {**out.get("software", {}), **_software()}
    out["created"] = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    hsi = dict(out.get("hsi") or {})
    hsi.setdefault("bands", cfg.hsi_bands)
    hsi["wavelengths"] = _float_list(hsi.get("wavelengths"))
    hsi["fwhm"] = _float_list(hsi.get("fwhm"))
    hsi.setdefault("sensor", None)
    out["hsi"] = hsi
    msi = dict(out.get("msi") or {})
    msi.setdefault("bands", cfg.msi_bands)
    msi.setdefault("sensor", None)
    msi.setdefault("band_names", None)
    msi["wavelengths"] = _float_list(msi.get("wavelengths"))
    out["msi"] = msi
    out["weights"] = {"dtype": dtype}
    if out.get("role") not in ROLES:
        raise CsakdError(f"The model card role must be one of {ROLES}, got {out.get('role')!r}.")
    _check_card_consistency(out)
    return out


PROVENANCE_KEYS = ("name", "split", "source", "attribution")


def check_training_provenance(entries: Any) -> None:
    """A card's ``training.provenance`` must list dicts naming each scene, its split, source and credit line."""
    if not isinstance(entries, list):
        raise CsakdError("The model card's training.provenance must be a list of scenes (Corpus.provenance()).")
    for k, entry in enumerate(entries):
        missing = [key for key in PROVENANCE_KEYS if not isinstance(entry, dict) or not entry.get(key)]
        if missing:
            raise CsakdError(f"The model card's training.provenance[{k}] lacks {', '.join(missing)}: give each "
                             "scene's name, split, source and attribution.")


def _check_card_consistency(card: dict[str, Any]) -> None:
    """Cross-field checks of a complete card (band counts vs config and wavelength lists, training provenance)."""
    cfg = card["config"]
    if isinstance(card.get("training"), dict) and "provenance" in card["training"]:
        check_training_provenance(card["training"]["provenance"])
    for role, key in (("hsi", "hsi_bands"), ("msi", "msi_bands")):
        sec = card[role]
        if not isinstance(sec, dict) or int(sec.get("bands", -1)) != int(cfg[key]):
            raise CsakdError(f"The model card's {role}.bands ({sec.get('bands') if isinstance(sec, dict) else sec})"
                             f" does not match the network config ({cfg[key]}).")
        for lst in ("wavelengths", "fwhm"):
            vals = sec.get(lst)
            if vals is not None and len(vals) != int(cfg[key]):
                raise CsakdError(f"The model card's {role}.{lst} has {len(vals)} values for "
                                 f"{cfg[key]} bands.")
    if int(card["scale"]) != int(cfg["scale"]):
        raise CsakdError(f"The model card's scale {card['scale']} differs from its config's {cfg['scale']}.")
    norm = card["normalization"]
    if not isinstance(norm, dict) or norm.get("type") not in ("none", "per_band"):
        raise CsakdError(f"The model card's normalization must be {{'type': 'none'}} or 'per_band', got {norm!r}.")
    if norm["type"] == "per_band":
        for key, n in (("hsi_mean", cfg["hsi_bands"]), ("hsi_std", cfg["hsi_bands"]),
                       ("msi_mean", cfg["msi_bands"]), ("msi_std", cfg["msi_bands"])):
            vals = norm.get(key)
            if not isinstance(vals, list) or len(vals) != int(n):
                raise CsakdError(f"The model card's normalization.{key} must list {n} values.")


def save_model(stem_path: str | os.PathLike, model: Any, card: dict[str, Any], fp16: bool = False
               ) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` (float32, or float16 with ``fp16``) and the ``<stem>.json`` card.

    ``card`` needs at least ``role``; everything derivable from the model (config, scale, residual,
    software versions, date, weights checksum) is filled in. Returns (card path, weights path).
    """
    from safetensors.torch import save as st_save

    json_path, st_path = model_paths(stem_path)
    if not json_path.parent.is_dir():
        raise CsakdError(f"The model folder '{json_path.parent}' does not exist: create it first.")
    full = complete_card(model, card, "float16" if fp16 else "float32")
    tensors = {}
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu")
        if fp16 and t.is_floating_point():
            t = t.half()
        tensors[k] = t.contiguous()
    blob = st_save(tensors, metadata={"format": CARD_FORMAT, "arch": full["arch"], "role": full["role"]})
    full["weights"].update({"file": st_path.name, "sha256": hashlib.sha256(blob).hexdigest(),
                            "num_tensors": len(tensors)})
    card_text = (json.dumps(full, indent=2, allow_nan=False) + "\n").encode("utf-8")
    write_files_atomic([(st_path, "model weights", blob), (json_path, "model card", card_text)])
    return json_path, st_path


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and schema-check a model card (path to the stem, .json or .safetensors)."""
    json_path, _ = model_paths(path)
    if not json_path.is_file():
        raise CsakdError(f"The model card '{json_path}' does not exist: a model is a .safetensors file "
                         "with a .json card of the same name beside it.")
    try:
        card = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CsakdError(f"The model card '{json_path}' is not valid JSON ({exc}): the file is corrupt; "
                         "re-export or re-download the model.") from None
    if not isinstance(card, dict):
        raise CsakdError(f"The model card '{json_path}' is not a JSON object.")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CsakdError(f"The model card '{json_path}' lacks required keys {missing}: it is not a "
                         "csakd_qgis model card or is from an incompatible version.")
    if card["format"] != CARD_FORMAT or int(card["format_version"]) > CARD_VERSION:
        raise CsakdError(f"The model card '{json_path}' has format {card['format']!r} version "
                         f"{card['format_version']}; this csakd_qgis reads {CARD_FORMAT!r} up to version "
                         f"{CARD_VERSION}. Update csakd_qgis.")
    if card["arch"] not in ARCHS:
        raise CsakdError(f"The model '{json_path}' has architecture {card['arch']!r}, which load_model "
                         f"does not build (only {', '.join(ARCHS)}).")
    if card["role"] not in ROLES:
        raise CsakdError(f"The model card '{json_path}' has role {card['role']!r}, not one of {ROLES}.")
    if not isinstance(card["config"], dict):
        raise CsakdError(f"The model card '{json_path}' has no valid 'config' object.")
    try:
        _check_card_consistency(card)
    except (KeyError, TypeError, ValueError) as exc:
        raise CsakdError(f"The model card '{json_path}' is inconsistent ({exc}).") from None
    except CsakdError as exc:
        raise CsakdError(f"{exc} (card '{json_path}')") from None
    return card


MAX_CONFIG_INT = 4096  # no band count, width or depth of a real network comes near this
MAX_PARAMS = 500_000_000
MAX_HEADER_BYTES = 100 * 2 ** 20


def weights_path(card: dict[str, Any], json_path: Path, st_path: Path) -> Path:
    """The weights of a card: the .safetensors beside it (same name), else the card's ``weights.file`` if that is
    a plain file name in the card's own folder. Paths with folders, '..' or absolute paths are never followed."""
    if st_path.is_file():
        return st_path
    wfile = card["weights"].get("file") if isinstance(card["weights"], dict) else None
    if not wfile:
        return st_path
    name = str(wfile)
    if Path(name).name != name or name in (".", "..") or "\\" in name or os.path.isabs(name):
        raise CsakdError(f"The model card '{json_path}' names its weights '{name}' outside its own folder; only the "
                         ".safetensors beside the card (same name) or a file in the card's folder is used. Copy the "
                         "weights beside the card.")
    return json_path.parent / name


def read_safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a .safetensors file ({tensor name: {dtype, shape, data_offsets}}, without the data)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > MAX_HEADER_BYTES:
            raise ValueError(f"header of {n} bytes")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _check_config_bounds(config: dict[str, Any], json_path: Path) -> None:
    """Refuse configs with implausible sizes (a damaged or crafted card) before anything is allocated."""
    items = [(k, v) for k, v in config.items() if not isinstance(v, dict)]
    items += [(f"{k}.{kk}", vv) for k, v in config.items() if isinstance(v, dict) for kk, vv in v.items()]
    for key, value in items:
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not (0 <= value <= MAX_CONFIG_INT):
            raise CsakdError(f"The model card '{json_path}' has an implausible network config ({key}={value}, "
                             f"allowed 0..{MAX_CONFIG_INT}): the card is damaged or not from csakd_qgis; refusing to "
                             "build it.")


def _build_network(card: dict[str, Any], json_path: Path) -> Any:
    """The network a card's config describes (on torch's current default device)."""
    from csakd_qgis.nets.csakd import CSAKDConfig, build_model

    try:
        if card["arch"] == "dodn":
            from csakd_qgis.nets.dodn import DODNConfig
            from csakd_qgis.nets.dodn import build_model as build_dodn

            return build_dodn(DODNConfig.from_dict(card["config"]))
        return build_model(CSAKDConfig.from_dict(card["config"]))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CsakdError(f"The model card '{json_path}' has an invalid network config ({exc}).") from None


def _check_weights_fit(shapes: dict[str, tuple[int, ...]], ref: dict[str, tuple[int, ...]], st_path: Path,
                       json_path: Path) -> None:
    """CsakdError naming the tensors whose names or shapes differ between the weights and the card's network."""
    missing = sorted(set(ref) - set(shapes))
    unexpected = sorted(set(shapes) - set(ref))
    bad_shape = [f"{k} {shapes[k]} != {ref[k]}" for k in ref if k in shapes and shapes[k] != ref[k]]
    if missing or unexpected or bad_shape:
        detail = "; ".join(filter(None, [
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "",
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "",
            f"shape mismatch {bad_shape[:5]}" if bad_shape else ""]))
        raise CsakdError(f"The model weights '{st_path}' do not fit the network config of the card '{json_path}' "
                         f"({detail}): the weights and card do not belong together.")


def load_model(path: str | os.PathLike, device: str = "cpu", verify_checksum: bool = True
               ) -> tuple[Any, dict[str, Any]]:
    """Load (model in eval mode, card) from a stem, .json or .safetensors path.

    Checks, before allocating anything: the card schema, its config's sizes, the weights file (beside the card)
    and every tensor name and shape of its header against the network the config describes (built on torch's
    meta device, which allocates no memory; the checksum before that), then the values. Each failure is a CsakdError.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    card = read_card(path)
    json_path, st_path = model_paths(path)
    _check_config_bounds(card["config"], json_path)
    st_path = weights_path(card, json_path, st_path)
    if not st_path.is_file():
        raise CsakdError(f"The model weights '{st_path}' named by the card '{json_path}' do not exist: "
                         "copy the .safetensors file beside its .json card.")
    try:
        header = read_safetensors_header(st_path)
        shapes = {k: tuple(int(n) for n in v["shape"]) for k, v in header.items()}
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise CsakdError(f"The model weights '{st_path}' cannot be read ({exc}): the file is corrupt or "
                         "not a safetensors file.") from None
    if sum(math.prod(v) for v in shapes.values()) > MAX_PARAMS:
        raise CsakdError(f"The model weights '{st_path}' hold more than {MAX_PARAMS} values: not a csakd_qgis model.")
    blob = st_path.read_bytes()
    expected = card["weights"].get("sha256") if isinstance(card["weights"], dict) else None
    if verify_checksum and expected and hashlib.sha256(blob).hexdigest() != expected:
        raise CsakdError(f"The model weights '{st_path}' do not match the checksum in their card: the file "
                         "is corrupt or belongs to another model. Re-export or re-download it.")
    with torch.device("meta"):
        skeleton = _build_network(card, json_path)
    _check_weights_fit(shapes, {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, st_path, json_path)
    del skeleton
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise CsakdError(f"The model weights '{st_path}' cannot be read ({exc}): the file is corrupt or "
                         "not a safetensors file.") from None
    model = _build_network(card, json_path)
    ref = model.state_dict()
    _check_weights_fit({k: tuple(v.shape) for k, v in tensors.items()}, {k: tuple(v.shape) for k, v in ref.items()},
                       st_path, json_path)
    state = {k: v.to(ref[k].dtype) for k, v in tensors.items()}
    if any(not torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CsakdError(f"The model weights '{st_path}' contain NaN or infinite values: the model is broken.")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device), card


def validate_card(card: dict[str, Any], hsi_wavelengths: Sequence[float | None] | int | Any | None,
                  msi_band_count: int | Any | None, scale: int | None,
                  tolerance_nm: float = WAVELENGTH_TOLERANCE_NM) -> None:
    """Check a model card against the user's data; raise CsakdError naming each mismatch.

    ``hsi_wavelengths``: the HSI band centres in nm (entries may be None when unknown), just the band
    count, or a raster.io.RasterMeta (its good bands are used); ``msi_band_count``: an int or a RasterMeta;
    ``scale`` (HR/LR pixel-size ratio). None skips a check. Band centres are compared only when both
    sides know them, with ``tolerance_nm``.
    """
    if hasattr(hsi_wavelengths, "wavelengths") and hasattr(hsi_wavelengths, "good_bands"):  # a RasterMeta
        hsi_wavelengths = [hsi_wavelengths.wavelengths[i] for i in hsi_wavelengths.good_bands()]
    if hasattr(msi_band_count, "count"):  # a RasterMeta
        msi_band_count = int(msi_band_count.count)
    problems: list[str] = []
    name = card.get("name") or "the model"
    want = card.get("hsi", {})
    n_model = int(want.get("bands", card.get("config", {}).get("hsi_bands", -1)))
    if hsi_wavelengths is not None:
        n_data = hsi_wavelengths if isinstance(hsi_wavelengths, int) else len(hsi_wavelengths)
        if n_data != n_model:
            problems.append(f"the hyperspectral input has {n_data} bands but {name} expects {n_model} "
                            "(drop bad bands or choose a model trained for this sensor)")
        elif (not isinstance(hsi_wavelengths, int) and want.get("wavelengths")
              and all(w is None for w in hsi_wavelengths)):
            problems.append(f"the hyperspectral input has no band wavelengths in its metadata, so its bands cannot be "
                            f"checked against {name}'s (trained on {want.get('sensor') or 'specific'} band centres); "
                            "add wavelength band tags (or an ENVI header) or use a classical method (glp)")
        elif not isinstance(hsi_wavelengths, int) and want.get("wavelengths"):
            diffs = [(i, float(a), float(b)) for i, (a, b) in enumerate(zip(hsi_wavelengths, want["wavelengths"],
                                                                          strict=True))
                     if a is not None and b is not None and math.isfinite(float(a))
                     and abs(float(a) - float(b)) > tolerance_nm]
            if diffs:
                i, a, b = max(diffs, key=lambda t: abs(t[1] - t[2]))
                problems.append(f"{len(diffs)} hyperspectral band centres differ from {name}'s by more than "
                                f"{tolerance_nm:g} nm (worst: band {i + 1} at {a:.1f} nm, model {b:.1f} nm)")
    if msi_band_count is not None:
        m_model = int(card.get("msi", {}).get("bands", card.get("config", {}).get("msi_bands", -1)))
        if int(msi_band_count) != m_model:
            sensor = card.get("msi", {}).get("sensor")
            names = card.get("msi", {}).get("band_names")
            hint = f" ({sensor}: {', '.join(names)})" if sensor and names else ""
            problems.append(f"the multispectral input has {msi_band_count} bands but {name} expects "
                            f"{m_model}{hint}")
    if scale is not None and int(scale) != int(card.get("scale", -1)):
        problems.append(f"the pixel-size ratio (scale) is {scale} but {name} was trained for scale "
                        f"{card.get('scale')}")
    if problems:
        raise CsakdError("The model does not fit the inputs: " + "; ".join(problems) + ".")


def _stats(card: dict[str, Any], key: str, like: Any) -> Any:
    import numpy as np

    vals = np.asarray(card["normalization"][key], dtype=np.float32).reshape(-1, 1, 1)
    if hasattr(like, "new_tensor"):  # torch tensor
        return like.new_tensor(vals)
    return vals


def apply_normalization(card: dict[str, Any], lr: Any, msi: Any, base: Any = None) -> tuple[Any, Any, Any]:
    """Map reflectance inputs (numpy or torch, bands on axis -3; ``msi`` None for single-image models) into the
    network's input space."""
    if card.get("normalization", {}).get("type", "none") == "none":
        return lr, msi, base
    lr_n = (lr - _stats(card, "hsi_mean", lr)) / _stats(card, "hsi_std", lr)
    msi_n = None if msi is None else (msi - _stats(card, "msi_mean", msi)) / _stats(card, "msi_std", msi)
    base_n = None if base is None else (base - _stats(card, "hsi_mean", base)) / _stats(card, "hsi_std", base)
    return lr_n, msi_n, base_n


def invert_normalization(card: dict[str, Any], hr: Any) -> Any:
    """Map a network output back to reflectance (inverse of the HSI part of apply_normalization)."""
    if card.get("normalization", {}).get("type", "none") == "none":
        return hr
    return hr * _stats(card, "hsi_std", hr) + _stats(card, "hsi_mean", hr)

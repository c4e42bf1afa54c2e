"""Resumable training checkpoints: atomic save, safe load, and the torch/CUDA/numpy random states they carry."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import write_bytes_atomic

CKPT_VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename (a crash never leaves a half-written checkpoint)."""
    import torch

    write_bytes_atomic(path, lambda tmp: torch.save(payload, tmp), role="training checkpoint")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise CsakdError(f"The training checkpoint '{path}' cannot be read ({exc}); delete it or train "
                         "without --resume.") from None


def _np_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]),
            "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"])}


def _set_np_rng_state(rng: np.random.Generator, d: dict[str, Any]) -> None:
    rng.bit_generator.state = {"bit_generator": d["bit_generator"],
                               "state": {"state": int(d["state"]), "inc": int(d["inc"])},
                               "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The checkpoint entries of the torch, CUDA and data-pipeline (numpy) random states."""
    import torch

    return {"rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "rng_numpy": _np_rng_state(rng)}


def restore_rng_state(ck: dict[str, Any], rng: np.random.Generator) -> None:
    """Put back the random states :func:`rng_state` saved, so a resumed run draws what the whole run would."""
    import torch

    torch.set_rng_state(ck["rng_torch"])
    if ck.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ck["rng_cuda"])
    _set_np_rng_state(rng, ck["rng_numpy"])


def state_to_cpu(module: Any) -> dict[str, Any]:
    """A detached CPU copy of a module's state dict (the kept best weights)."""
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}

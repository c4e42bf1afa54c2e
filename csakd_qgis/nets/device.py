"""The one device and precision resolver for inference and training (auto, cpu, cuda[:N], gpu, mps)."""

from __future__ import annotations

from csakd_qgis.errors import CsakdError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # int8: an ONNX Runtime model variant


def resolve_precision(precision: str | None, device: str, messages: list[str]) -> str:
    """The network precision to use: fp16/bf16 only on CUDA (a note in ``messages`` otherwise)."""
    p = (precision or "fp32").lower()
    if p not in PRECISIONS:
        raise CsakdError(f"Unknown precision '{precision}': use one of {', '.join(PRECISIONS)}.")
    if p in ("fp16", "bf16") and not device.startswith("cuda"):
        messages.append(f"Precision {p} is only used on CUDA; running fp32 on {device}.")
        p = "fp32"
    return p


def resolve_device(device: str | None) -> str:
    """'auto' -> 'cuda' if torch sees a GPU else 'cpu'; 'cuda[:N]' must exist; 'cpu'; 'mps' where available."""
    import torch

    d = (device or "auto").strip().lower()
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d == "cpu":
        return "cpu"
    if d.startswith("cuda") or d == "gpu":
        d = "cuda" if d == "gpu" else d
        if not torch.cuda.is_available():
            build = (f"for CUDA {torch.version.cuda}" if torch.version.cuda else "without CUDA (CPU-only build)")
            raise CsakdError(f"Device '{device}' was requested but torch {torch.__version__} sees no CUDA GPU "
                             f"(it was built {build}). Use device 'cpu' or 'auto', or install a CUDA build of "
                             "torch matching your driver (https://pytorch.org/get-started/locally/).")
        if ":" in d:
            idx = d.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise CsakdError(f"Device '{device}' does not exist: torch sees {torch.cuda.device_count()} "
                                 "CUDA device(s) (cuda:0 ...).")
        return d
    if d == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise CsakdError("Device 'mps' was requested but this torch has no Apple-GPU (MPS) support.")
        return "mps"
    raise CsakdError(f"Unknown device '{device}': use 'auto', 'cpu' or 'cuda' (or 'cuda:N').")

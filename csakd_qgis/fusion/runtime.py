"""Run a zoo network with PyTorch or ONNX Runtime behind one interface (named float32 arrays in, array out).

The predictors do the rest (nodata filling, normalisation, the classical base, masks), so both runtimes see
the same inputs and the tiled raster job cannot tell them apart. ``auto`` takes torch when it imports and
ONNX Runtime otherwise; a model needs its ``<stem>.onnx`` beside the card for ONNX Runtime.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.deps import install_hint, missing_runtime_error, runtime_available
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.onnx_check import check_graph
from csakd_qgis.nets.device import resolve_precision
from csakd_qgis.zoo.card import load_model

RUNTIME_CHOICES = ("auto", "torch", "onnx")
ONNX_VARIANTS = ("fp32", "int8", "fp16")
META_PREFIX = "csakd."


def onnx_path(card_path: str | os.PathLike, variant: str = "fp32") -> Path:
    """The ONNX file of a model variant: ``<stem>.onnx`` (fp32) or ``<stem>.<variant>.onnx``, beside the card."""
    p = Path(card_path)
    stem = p.name[: -len(".json")] if p.name.endswith(".json") else p.stem
    return p.with_name(f"{stem}.onnx" if variant == "fp32" else f"{stem}.{variant}.onnx")


def weights_sha256(card: dict[str, Any]) -> str | None:
    """The checksum of the safetensors weights a card describes (what an exported ONNX file must name)."""
    w = card.get("weights")
    return w.get("sha256") if isinstance(w, dict) else None


def resolve_runtime(runtime: str | None, card_path: str | os.PathLike) -> str:
    """'torch' or 'onnx' for ``runtime`` ('auto': torch if importable, else ONNX Runtime); one clear error."""
    r = (runtime or "auto").strip().lower()
    if r not in RUNTIME_CHOICES:
        raise CsakdError(f"Unknown runtime '{runtime}': use {', '.join(RUNTIME_CHOICES)}.")
    name = Path(card_path).stem
    if r == "auto":
        if runtime_available("torch"):
            return "torch"
        if runtime_available("onnx"):
            return "onnx"
        raise missing_runtime_error(name)
    if r == "torch" and not runtime_available("torch"):
        raise CsakdError(f"The runtime 'torch' was requested but PyTorch is not installed in this Python. Use "
                         f"--runtime onnx (install it with: {install_hint('onnx')}) or install PyTorch.")
    if r == "onnx" and not runtime_available("onnx"):
        raise CsakdError(f"The runtime 'onnx' was requested but ONNX Runtime is not installed. Install it "
                         f"with: {install_hint('onnx')}")
    return r


class TorchRunner:
    """The network from the card's safetensors weights, run with torch.inference_mode() (autocast on CUDA)."""

    runtime = "torch"

    def __init__(self, card_path: str | os.PathLike, device: str, precision: str, threads: int | None,
                 messages: list[str]) -> None:
        import torch

        from csakd_qgis.nets.device import resolve_device

        if precision == "int8":
            raise CsakdError("Precision int8 is an ONNX Runtime model variant: use the runtime 'onnx'.")
        if threads:
            torch.set_num_threads(int(threads))
        self.device = resolve_device(device)
        self.model, self.card = load_model(card_path, device=self.device)
        self.arch = self.card.get("arch", "csakd")
        self.precision = resolve_precision(precision, self.device, messages)
        if self.device.startswith("cuda"):
            self.device_used = f"{self.device} ({torch.cuda.get_device_name(torch.device(self.device).index or 0)})"
        else:
            self.device_used = f"{self.device} ({torch.get_num_threads()} threads)"

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The network output for (B, C, H, W) float32 inputs named lr / msi / base."""
        import torch

        dev = torch.device(self.device)
        t = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)).to(dev) for k, v in inputs.items()}
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
            if self.arch == "dodn":
                hr, _ = self.model(t["lr"])
            else:
                hr, _ = self.model(t["lr"], t["msi"], base=t.get("base"))
        return hr.float().cpu().numpy()


class OnnxRunner:
    """An exported ``<stem>[.variant].onnx`` run with ONNX Runtime (CPU provider with a thread count, CUDA when
    asked for and present). The file must name the weights checksum of the card beside it."""

    runtime = "onnx"

    def __init__(self, card_path: str | os.PathLike, card: dict[str, Any], device: str, precision: str,
                 threads: int | None, messages: list[str]) -> None:
        import onnxruntime as ort

        variant = {"fp32": "fp32", "int8": "int8", "fp16": "fp16", "bf16": "fp16"}.get(precision, "fp32")
        dev = (device or "auto").strip().lower()
        want_cuda = dev.startswith(("cuda", "gpu")) or (dev == "auto" and "CUDAExecutionProvider"
                                                        in ort.get_available_providers())
        if dev.startswith(("cuda", "gpu")) and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise CsakdError(f"Device '{device}' was requested but this ONNX Runtime has no CUDA provider "
                             "(install onnxruntime-gpu), or use device 'cpu'.")
        if variant == "fp16" and not want_cuda:
            messages.append("fp16 runs on the GPU only; ONNX Runtime uses the fp32 model on the CPU.")
            variant = "fp32"
        path = onnx_path(card_path, variant)
        if not path.is_file():
            made = [v for v in ONNX_VARIANTS if onnx_path(card_path, v).is_file()]
            raise CsakdError(f"The model '{Path(card_path).stem}' has no ONNX {variant} file ('{path.name}' beside "
                             f"its card{'; present: ' + ', '.join(made) if made else ''}). Create it with: "
                             f"csakd export --onnx {card_path}" + (f" --variants {variant}" if variant != "fp32" else ""))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise CsakdError(f"The ONNX model '{path}' cannot be loaded ({str(exc).splitlines()[0]}): the file is "
                             "corrupt; export it again with csakd export --onnx.") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get(META_PREFIX + "weights_sha256") != weights_sha256(card):
            raise CsakdError(f"The ONNX model '{path.name}' was exported from other weights than its card "
                             f"'{Path(card_path).name}' describes: export it again with csakd export --onnx.")
        check_graph(self.session, card, path, card_path)
        self.card, self.variant, self.path = card, variant, path
        self.inputs = [i.name for i in self.session.get_inputs()]
        used = self.session.get_providers()[0].replace("ExecutionProvider", "")
        self.device = "cuda" if used == "CUDA" else "cpu"
        self.device_used = (f"{self.device} (ONNX Runtime {ort.__version__}, {variant}, "
                            f"{threads or 'default'} threads)")

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The network output for the graph's named (B, C, H, W) float32 inputs."""
        feed = {k: np.ascontiguousarray(inputs[k], np.float32) for k in self.inputs}
        return self.session.run(None, feed)[0].astype(np.float32, copy=False)


def open_runner(card_path: str | os.PathLike, card: dict[str, Any], runtime: str = "auto", device: str = "auto",
                precision: str = "fp32", threads: int | None = None,
                messages: list[str] | None = None) -> TorchRunner | OnnxRunner:
    """The runner of a zoo network on the chosen runtime (see :func:`resolve_runtime`)."""
    msgs = messages if messages is not None else []
    chosen = resolve_runtime(runtime, card_path)
    if chosen == "torch":
        return TorchRunner(card_path, device, precision, threads, msgs)
    if (runtime or "auto").lower() == "auto":
        msgs.append("PyTorch is not installed: the model runs with ONNX Runtime.")
    return OnnxRunner(card_path, card, device, precision, threads, msgs)


def onnx_metadata(card: dict[str, Any], variant: str) -> dict[str, str]:
    """The metadata an exported ONNX file carries: its card, variant and the weights it came from."""
    return {META_PREFIX + "card": json.dumps(card, allow_nan=False, default=str),
            META_PREFIX + "variant": variant, META_PREFIX + "weights_sha256": str(weights_sha256(card))}

"""Export a zoo network to ONNX (fp32, int8 calibrated on synthetic training-like patches, fp16) and measure it.

Each file is ``<stem>[.variant].onnx`` beside the card, with dynamic batch and tile size, and carries its card,
variant and the checksum of the weights it came from as ONNX metadata. The report gives per variant the
size, ONNX Runtime time per tile next to torch's, and the difference to the torch output on the same tiles.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import ClassicalParams, apply_classical, fit_classical
from csakd_qgis.fusion.onnx_check import input_names
from csakd_qgis.fusion.runtime import ONNX_VARIANTS, onnx_metadata, onnx_path
from csakd_qgis.quality.metrics import psnr
from csakd_qgis.spectral.degrade import synthesize_msi, wald_degrade
from csakd_qgis.spectral.srf import gaussian_srf, srf_matrix
from csakd_qgis.spectral.synthetic import make_scene
from csakd_qgis.temporaries import WorkFolder
from csakd_qgis.zoo.card import apply_normalization, invert_normalization, model_paths

OPSET = 17  # ONNX Runtime CPU runs every op of our nets at this opset
CALIB_TILE_LR = 16  # LR px of a calibration / comparison tile
MSI_CALIB_FWHM_NM = 40.0  # Gaussian stand-in for the card's MSI responses (only the input ranges matter)


@dataclass
class VariantReport:
    """One exported file: size, speed per tile, and how far its output is from torch's."""

    variant: str
    path: str
    bytes: int
    ort_s_per_tile: float
    max_abs_diff: float
    psnr_vs_torch_db: float


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and measured (tile size in HR px, 2-thread CPU times)."""

    model: str
    tile_hr: int
    threads: int
    torch_s_per_tile: float
    variants: list[VariantReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def _input_names(card: dict[str, Any]) -> list[str]:
    return input_names(card)


def calibration_tiles(card: dict[str, Any], n: int = 8, tile_lr: int = CALIB_TILE_LR, seed: int = 0
                      ) -> list[dict[str, np.ndarray]]:
    """``n`` network inputs (normalised, as the predictors feed them) cut from a synthetic scene on the card's
    band grid: real Sentinel-2 spatial structure with library spectra, Wald-degraded by the card's scale."""
    s = int(card["scale"])
    hsi = card["hsi"]
    wl = [float(w) for w in hsi["wavelengths"]]
    fw = [float(f) for f in (hsi.get("fwhm") or [10.0] * len(wl))]
    size = 4 * tile_lr * s
    hr = make_scene(wl, fw, size=size, seed=seed, iters=60).hr_hsi
    hr = np.nan_to_num(hr, nan=0.0).astype(np.float32)
    lr = wald_degrade(hr, s).astype(np.float32)
    msi_card = card.get("msi") or {}
    msi_wl, n_msi = msi_card.get("wavelengths") or [], int(msi_card.get("bands") or 0)
    msi = None
    if msi_wl:
        R = srf_matrix(gaussian_srf(msi_wl, [MSI_CALIB_FWHM_NM] * len(msi_wl)), wl, fw)
        msi = synthesize_msi(hr, R).astype(np.float32)
    elif n_msi:  # no band centres in the card: contiguous band groups give inputs of the right range
        msi = np.stack([hr[g].mean(0) for g in np.array_split(np.arange(hr.shape[0]), n_msi)]).astype(np.float32)
    names = _input_names(card)
    params: ClassicalParams | None = None
    if "base" in names:
        params = fit_classical(lr, msi, s, str(card.get("base_method") or "glp"))
    rng = np.random.default_rng(seed)
    tiles = []
    for _ in range(n):
        i, j = (int(v) for v in rng.integers(0, lr.shape[1] - tile_lr + 1, 2))
        t_lr = lr[None, :, i:i + tile_lr, j:j + tile_lr]
        t_msi = None if msi is None else msi[None, :, i * s:(i + tile_lr) * s, j * s:(j + tile_lr) * s]
        t_base = None
        if params is not None:
            t_base = apply_classical(t_lr[0], t_msi[0], s, str(card.get("base_method") or "glp"), params)[None]
        a, b, c = apply_normalization(card, t_lr, t_msi, t_base)
        tile = {"lr": a, "msi": b, "base": c}
        tiles.append({k: np.ascontiguousarray(tile[k], np.float32) for k in names})
    return tiles


def _export_module(model: Any, card: dict[str, Any]) -> Any:
    """The torch module whose forward takes the named inputs positionally and returns only the image."""
    import torch

    dodn, has_base = card.get("arch") == "dodn", "base" in _input_names(card)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            if dodn:
                return self.net(xs[0])[0]
            return self.net(xs[0], xs[1], base=xs[2] if has_base else None)[0]

    return Net().eval()


def _time_ort(path: Path, tiles: Sequence[dict[str, np.ndarray]], threads: int) -> tuple[float, list[np.ndarray]]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    sess.run(None, {k: tiles[0][k] for k in names})  # warm-up
    outs, t0 = [], time.perf_counter()
    for t in tiles:
        outs.append(sess.run(None, {k: t[k] for k in names})[0])
    return (time.perf_counter() - t0) / len(tiles), outs


def _normalise_transposes(path: Path) -> None:
    """Rewrite negative Transpose perms (torch's movedim(-1, ...)) as the ONNX spec's non-negative axes."""
    import onnx

    m = onnx.load(str(path))
    for node in m.graph.node:
        for a in node.attribute:
            if node.op_type == "Transpose" and a.name == "perm" and any(v < 0 for v in a.ints):
                fixed = [v % len(a.ints) for v in a.ints]
                del a.ints[:]
                a.ints.extend(fixed)
    onnx.save(m, str(path))


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


class _Reader:
    """Calibration data for onnxruntime's static quantisation."""

    def __init__(self, tiles: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(list(tiles))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _quantize_int8(src: Path, dst: Path, tiles: Sequence[dict[str, np.ndarray]]) -> None:
    """Static int8 (QDQ, per-channel weights) of the convolutions only: the residual sums with the base or the
    upsampled image stay in float, so quantisation touches the learned correction and nothing else."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(dst.stem + ".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    try:
        quantize_static(str(pre), str(dst), _Reader(tiles), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"])
    finally:
        pre.unlink(missing_ok=True)


def _convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


def export_onnx(model_path: str | os.PathLike, variants: Sequence[str] = ("fp32", "int8"), threads: int = 2,
                n_tiles: int = 8, progress: Callable[[float, str], None] | None = None,
                out_dir: str | os.PathLike | None = None) -> ExportReport:
    """Export the network of ``model_path`` (card or weights) to ONNX ``variants`` beside its card (or into
    ``out_dir``) and report."""
    import torch

    from csakd_qgis.zoo.card import load_model

    bad = [v for v in variants if v not in ONNX_VARIANTS]
    if bad:
        raise CsakdError(f"Unknown ONNX variant {bad[0]!r}: use {', '.join(ONNX_VARIANTS)}.")
    card_path, _ = model_paths(model_path)
    model, card = load_model(card_path, device="cpu")
    say = progress or (lambda f, m: None)
    torch.set_num_threads(threads)
    tiles = calibration_tiles(card, n=n_tiles)
    names = _input_names(card)
    net = _export_module(model, card)
    with torch.inference_mode():
        net(*[torch.from_numpy(tiles[0][k]) for k in names])
        t0 = time.perf_counter()
        ref = [net(*[torch.from_numpy(t[k]) for k in names]).numpy() for t in tiles]
        torch_s = (time.perf_counter() - t0) / len(tiles)
    report = ExportReport(str(card.get("name") or card_path.stem), CALIB_TILE_LR * int(card["scale"]), threads,
                          torch_s)
    dest = Path(str(out_dir)) if out_dir is not None else card_path.parent
    with WorkFolder(".csakd-onnx.", dest) as tmp:
        tmp_fp32 = Path(tmp) / "fp32.onnx"
        dyn = {k: {0: "batch", 2: "lr_height" if k == "lr" else "height", 3: "lr_width" if k == "lr" else "width"}
               for k in [*names, "hr"]}
        say(0.1, "exporting fp32")
        example = tuple(torch.from_numpy(tiles[0][k]) for k in names)
        torch.onnx.export(net, example, str(tmp_fp32), input_names=names, output_names=["hr"],
                          dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
        _normalise_transposes(tmp_fp32)
        built: dict[str, Path] = {"fp32": tmp_fp32}
        for k, v in enumerate(variants):
            say(0.2 + 0.7 * k / max(1, len(variants)), f"building {v}")
            if v == "int8":
                built["int8"] = Path(tmp) / "int8.onnx"
                _quantize_int8(tmp_fp32, built["int8"], tiles)
            elif v == "fp16":
                built["fp16"] = Path(tmp) / "fp16.onnx"
                _convert_fp16(tmp_fp32, built["fp16"])
        for v in variants:
            _add_metadata(built[v], onnx_metadata(card, v))
            target = onnx_path(dest / card_path.name, v)
            if v == "fp16":  # the CPU provider lacks fp16 kernels for our convs: report size only
                sec, diff, p = float("nan"), float("nan"), float("nan")
            else:
                sec, outs = _time_ort(built[v], tiles, threads)
                diff = max(float(np.abs(o - r).max()) for o, r in zip(outs, ref, strict=True))
                p = _psnr_vs(ref, outs, card)
            os.replace(built[v], target)
            report.variants.append(VariantReport(v, str(target), target.stat().st_size, sec, diff, p))
    say(1.0, "done")
    return report


def _psnr_vs(ref: Sequence[np.ndarray], outs: Sequence[np.ndarray], card: dict[str, Any]) -> float:
    """PSNR (dB) of a variant's reflectance output against torch's on the same tiles."""
    r = np.concatenate([invert_normalization(card, x) for x in ref], axis=-1)[0]
    o = np.concatenate([invert_normalization(card, x) for x in outs], axis=-1)[0]
    if np.array_equal(r, o):
        return float("inf")
    return float(psnr(r, o))

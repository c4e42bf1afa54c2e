"""Validation during training: whole-scene prediction, mean metrics over scenes, baselines and the selection score."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.training.scenes import Scene

Forward = Callable[[dict[str, Any]], tuple[Any, Any]]


def _pad_to_multiple(lr: np.ndarray, msi: np.ndarray, base: np.ndarray | None, s: int, minimum: int = 1
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Edge-pad the MSI (and base) to exactly s x the LR size; pad the LR to at least ``minimum`` px."""
    h, w = lr.shape[-2:]
    ph, pw = max(0, minimum - h), max(0, minimum - w)
    if ph or pw:
        lr = np.pad(lr, ((0, 0), (0, ph), (0, pw)), mode="edge")
    H, W = lr.shape[-2] * s, lr.shape[-1] * s

    def fit(a: np.ndarray) -> np.ndarray:
        a = a[:, :H, :W]
        return np.pad(a, ((0, 0), (0, H - a.shape[-2]), (0, W - a.shape[-1])), mode="edge")

    return lr, fit(msi), None if base is None else fit(base), (h * s, w * s)


def predict_scene(pair_forward: Forward, scene: Scene, device: str, amp_dtype: Any = None) -> np.ndarray:
    """Whole-scene forward (nodata filled with 0, HR padded to s x LR); returns (C_h, sH, sW) float32."""
    import torch

    s = scene.scale
    lr, msi, base, (hh, ww) = _pad_to_multiple(np.nan_to_num(scene.lr), np.nan_to_num(scene.msi),
                                               None if scene.base is None else np.nan_to_num(scene.base), s)
    batch = {"lr": torch.from_numpy(lr)[None].to(device), "msi": torch.from_numpy(msi)[None].to(device)}
    if base is not None:
        batch["base"] = torch.from_numpy(base)[None].to(device)
    with torch.inference_mode():
        if amp_dtype is not None and device.startswith("cuda"):
            with torch.autocast("cuda", dtype=amp_dtype):
                y, _ = pair_forward(batch)
        else:
            y, _ = pair_forward(batch)
    out = y[0].float().cpu().numpy()[:, :hh, :ww]
    return out[:, : scene.hr.shape[-2], : scene.hr.shape[-1]]


def mean_metrics(items: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of each numeric metric over per-scene metric dicts."""
    keys = [k for k, v in items[0].items() if isinstance(v, (int, float, np.floating))]
    return {k: float(np.mean([float(it[k]) for it in items])) for k in keys}


def evaluate_scenes(pair_forward: Forward, scenes: Sequence[Scene], device: str, amp_dtype: Any = None
                    ) -> dict[str, float]:
    """Mean of quality.metrics.compute_metrics over ``scenes`` (valid pixels only)."""

    res = []
    for sc in scenes:
        est = predict_scene(pair_forward, sc, device, amp_dtype)
        mask = np.isfinite(sc.hr).all(axis=0)
        res.append(compute_metrics(sc.hr, est, sc.scale, mask=mask))
    return mean_metrics(res)


def baseline_metrics(scenes: Sequence[Scene], method: str = "bicubic") -> dict[str, float]:
    """Metrics of the bicubic upsampling (or a classical fusion method) on ``scenes``."""

    res = []
    for sc in scenes:
        lr = np.nan_to_num(sc.lr)
        est = upsample_bicubic(lr, sc.scale) if method == "bicubic" else fuse_classical(
            lr, np.nan_to_num(sc.msi), sc.scale, method)
        est = np.asarray(est, np.float32)[:, : sc.hr.shape[-2], : sc.hr.shape[-1]]
        res.append(compute_metrics(sc.hr, est, sc.scale, mask=np.isfinite(sc.hr).all(axis=0)))
    return mean_metrics(res)


def attached_base_metrics(scenes: Sequence[Scene]) -> dict[str, float]:
    """Metrics of each scene's own ``base`` (the classical estimate exactly as the network sees it)."""
    return mean_metrics([compute_metrics(sc.hr, sc.base, sc.scale,
                                         mask=np.isfinite(sc.hr).all(0) & np.isfinite(sc.base).all(0))
                         for sc in scenes])


def score(metrics: dict[str, float], sam_weight: float) -> float:
    """Model-selection score: PSNR (dB) - sam_weight * SAM (degrees); higher is better."""
    return float(metrics["psnr"]) - sam_weight * float(metrics["sam"])

"""Time-bounded training of ONE CSAKD student (no teacher / KD terms): scene adaptation and ``csakd:train``.

:func:`fit_student` configures the one loop (:class:`training.loop.Trainer`) for a student started from a zoo
model or from scratch (a zero-head student correcting GLP, so training starts exactly at GLP): time budget or
step limit, validation before the first step too, best weights by ``PSNR - SAM``, so the result is never worse
on validation than its start. Nothing is written here; the drivers (:mod:`training.adapt`) write the model.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from csakd_qgis.errors import CsakdError
from csakd_qgis.nets.pairs import CSAKDPair
from csakd_qgis.training.config import FitConfig
from csakd_qgis.training.loop import LoopOptions, Trainer, make_optim, prepare_run
from csakd_qgis.training.results import FitResult
from csakd_qgis.training.scenes import PatchSampler, Scene, attach_bases, check_scenes
from csakd_qgis.training.validation import attached_base_metrics, baseline_metrics
from csakd_qgis.zoo.card import load_model, read_card, validate_card
from csakd_qgis.zoo.registry import ZooCandidate
from csakd_qgis.zoo.start import INIT_SCRATCH, check_start_card, resolve_init, start_base_method
from csakd_qgis.zoo.trained_card import trained_card

HISTORY_METRICS = ("psnr", "sam", "ergas", "rmse")


def _init_model(source: Path | None, n_h: int, n_m: int, s: int, wavelengths: Sequence[float | None] | None,
                cfg: FitConfig, device: str) -> tuple[Any, dict[str, Any] | None, str]:
    """(model on device, source card or None, init label)."""
    if source is not None:
        head = read_card(source)
        check_start_card(head, head.get("name") or Path(str(source)).stem)
        model, card = load_model(source, device=device)
        validate_card(card, list(wavelengths) if wavelengths is not None else n_h, n_m, s)
        return model, card, str(card.get("name") or Path(str(source)).stem)
    _, s_cfg = CSAKDPair.preset_configs(cfg.preset, n_h, n_m, s, residual="base", zero_head=True)
    return CSAKDPair.build(s_cfg).to(device), None, INIT_SCRATCH


def _lr_rule(cfg: FitConfig) -> Callable[[int, float], float]:
    """Cosine from ``lr`` to ``lr * min_lr_ratio`` over the steps or budget used, after a linear warm-up."""

    def lr_at(step: int, frac: float) -> float:
        lr_now = cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
        return lr_now * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else lr_now

    return lr_at


def fit_student(train_scenes: Sequence[Scene], val_scenes: Sequence[Scene], cfg: FitConfig,
                wavelengths: Sequence[float | None] | None = None,
                zoo_choice: ZooCandidate | None = None,
                progress: Callable[[float, str], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> FitResult:
    """Time-bounded training of one CSAKD student on ``train_scenes``, best weights by ``val_scenes``.

    The one loop (:class:`training.loop.Trainer`) without a teacher, validating before the first step too.
    ``progress(fraction, message)`` after every step; ``cancel()`` is checked before every step and raises
    :class:`CancelledError` (nothing is written by this function).
    """
    import torch

    from csakd_qgis.nets.losses import LossWeights

    cfg.check()
    if not train_scenes or not val_scenes:
        raise CsakdError("Training needs at least one training and one validation scene.")
    t0 = time.perf_counter()
    device, rng = prepare_run(cfg.device, cfg.threads, cfg.seed)
    s, n_h, n_m = check_scenes(train_scenes, val_scenes)
    source = resolve_init(cfg.init, zoo_choice)
    model, src_card, init_name = _init_model(source, n_h, n_m, s, wavelengths, cfg, device)
    residual = model.cfg.residual
    base_method = start_base_method(source, cfg.base_method) if residual == "base" else None
    msgs = [f"Starting point: {'a new ' + cfg.preset + ' student correcting ' + str(base_method) if src_card is None else 'model ' + init_name}."]
    for sc in list(train_scenes) + list(val_scenes):
        if base_method is None:
            sc.base = None
        elif sc.base is None or (sc.base_method or base_method) != base_method:
            attach_bases([sc], base_method)
    norm_card: dict[str, Any] = {"type": "none"}
    norm_t = None
    if src_card is not None and (src_card.get("normalization") or {}).get("type") == "per_band":
        norm_card = copy.deepcopy(src_card["normalization"])
        norm_t = {k: torch.tensor(norm_card[k], dtype=torch.float32).view(1, -1, 1, 1).to(device)
                  for k in ("hsi_mean", "hsi_std", "msi_mean", "msi_std")}
    weights = LossWeights(**cfg.loss)
    pair = CSAKDPair(None, model, weights, norm_t)
    sampler = PatchSampler(train_scenes, cfg.patch, cfg.batch_size, cfg.snr_db, cfg.augment, rng)
    budget_s = float(cfg.budget_min) * 60.0
    baselines = {"bicubic": baseline_metrics(val_scenes, "bicubic")}
    if base_method is not None:  # the base as the network sees it (coefficients of the whole scene)
        baselines[base_method] = attached_base_metrics(val_scenes)
    setup_s = time.perf_counter() - t0

    options = LoopOptions(max_steps=int(cfg.steps), budget_s=budget_s, val_every=cfg.val_every,
                          val_every_s=cfg.val_every_s or (budget_s / 12.0 if budget_s else 0.0), val_at_start=True,
                          log_every=max(1, cfg.val_every), sam_weight=cfg.sam_weight, grad_clip=cfg.grad_clip)
    run = Trainer(pair, make_optim(model, cfg.lr, cfg.weight_decay, lr_at=_lr_rule(cfg)), None, sampler, val_scenes,
                  options, device, progress=progress, cancel=cancel).run()
    best, start = run.best["student"], run.history[0]["student"]
    step, loop_s, stopped_by = run.steps, run.elapsed_s, run.stopped_by
    history = [{"step": h["step"], **{k: float(h["student"][k]) for k in HISTORY_METRICS if k in h["student"]}}
               for h in run.history]
    msgs.append(f"{step} steps in {loop_s:.1f} s ({step / max(loop_s, 1e-9):.2f} steps/s) on {device}; stopped by "
                f"the {'time budget' if stopped_by == 'budget' else 'step limit'}; best validation at step "
                f"{best['step']}: PSNR {best['metrics']['psnr']:.2f} dB, SAM {best['metrics']['sam']:.3f} deg "
                f"(start {start['psnr']:.2f} dB / {start['sam']:.3f} deg).")
    card = trained_card(
        "student", normalization=norm_card, source=src_card,
        base_method=base_method if residual == "base" else None,
        validation={"best_step": best["step"], "metrics": best["metrics"], "start_metrics": start,
                    "baselines": baselines, "scenes": [sc.name for sc in val_scenes]},
        training={"trainer": "training.fit.fit_student (student only, no KD)", "steps": step,
                  "loss": weights.to_dict(), "config": cfg.to_dict(),
                  "train_scenes": [sc.name for sc in train_scenes], "val_scenes": [sc.name for sc in val_scenes],
                  "elapsed_s": round(loop_s, 2), "device": device})
    return FitResult(model=model, card=card, start_metrics=start, best_metrics=best["metrics"],
                     baseline_metrics=baselines, best_step=int(best["step"]), steps=step,
                     elapsed_s=setup_s + loop_s, device_used=device, stopped_by=stopped_by, init=init_name,
                     history=history, messages=msgs)


__all__ = ["FitConfig", "FitResult", "fit_student"]

"""Reference training of a teacher/student pair (online KD co-training, offline KD from a frozen teacher, or the
student alone) on in-memory scenes, then export of the best teacher and student with their model cards.

The architecture ("csakd" fusion or "dodn" single-image SR) is a pair of :data:`nets.pairs.PAIRS`; the loop is
:class:`training.loop.Trainer`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.nets.pairs import PAIRS
from csakd_qgis.training.config import TrainConfig
from csakd_qgis.training.loop import (
    Cancel,
    LoopOptions,
    ProgressCallback,
    Trainer,
    make_optim,
    prepare_run,
    resolve_amp_dtype,
)
from csakd_qgis.training.results import TrainResult
from csakd_qgis.training.scenes import PatchSampler, Scene, attach_bases, band_stats, check_scenes
from csakd_qgis.training.validation import baseline_metrics
from csakd_qgis.zoo.card import load_model, save_model
from csakd_qgis.zoo.trained_card import normalization_section, trained_card

WALD_PROTOCOL = "Wald : blur sigma s/2 + s x s block mean; SRF-synthesised MSI"


def _check_offline_teacher(card: dict[str, Any], student_cfg: Any) -> None:
    c = card["config"]
    for key in ("hsi_bands", "msi_bands", "scale"):
        if int(c[key]) != int(getattr(student_cfg, key)):
            raise CsakdError(f"The offline teacher has {key}={c[key]} but the training data needs "
                             f"{getattr(student_cfg, key)}.")


def _offline_teacher(cfg: TrainConfig, student_cfg: Any, device: str, norm_np: dict[str, np.ndarray] | None,
                     scenes: Sequence[Scene] = ()) -> tuple[Any, dict[str, np.ndarray] | None]:
    """(frozen teacher, normalization to train the student with) of offline mode.

    A teacher that corrects a classical fusion (residual "base", e.g. a zoo teacher) gets that base attached to
    ``scenes``.
    """
    teacher, card = load_model(cfg.teacher_path, device=device)
    if card.get("arch", "csakd") != cfg.arch:
        raise CsakdError(f"The offline teacher '{cfg.teacher_path}' is a {card.get('arch')!r} model; "
                         f"this run trains arch {cfg.arch!r}.")
    _check_offline_teacher(card, student_cfg)
    teacher.requires_grad_(False).eval()
    if getattr(teacher.cfg, "residual", None) == "base":
        attach_bases([sc for sc in scenes if sc.base is None], str(card.get("base_method") or cfg.base_method))
    t_norm = card["normalization"]
    if t_norm.get("type") == "per_band":
        return teacher, {k: np.asarray(t_norm[k], np.float32) for k in ("hsi_mean", "hsi_std", "msi_mean", "msi_std")}
    if norm_np is not None:
        raise CsakdError("The offline teacher was trained without input normalization: train the student "
                         "with normalization 'none' too.")
    return teacher, None


def _paths(cfg: TrainConfig) -> tuple[Path | None, Path | None, Path | None]:
    """(export stem, checkpoint, JSON-lines log) of a run; the stem's folder must exist."""
    out_stem = Path(cfg.out) if cfg.out else None
    if out_stem is not None and not out_stem.parent.is_dir():
        raise CsakdError(f"The output folder '{out_stem.parent}' does not exist: create it first.")
    ckpt_path = Path(cfg.checkpoint) if cfg.checkpoint else (
        out_stem.with_name(out_stem.name + ".ckpt.pt") if out_stem else None)
    log_path = Path(cfg.log_path) if cfg.log_path else (
        out_stem.with_name(out_stem.name + ".log.jsonl") if out_stem else None)
    return out_stem, ckpt_path, log_path


def train(train_scenes: Sequence[Scene], val_scenes: Sequence[Scene], cfg: TrainConfig,
          wavelengths: Sequence[float] | None = None, fwhm: Sequence[float] | None = None,
          msi_info: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
          cancel: Cancel | None = None) -> TrainResult:
    """Train a teacher/student pair on ``train_scenes``; validate on ``val_scenes``; export.

    ``wavelengths``/``fwhm`` (HSI band centres, nm) and ``msi_info`` ({"sensor", "band_names",
    "wavelengths"}) go into the model cards. ``progress(fraction, message)``; ``cancel() -> True``
    stops the run (CancelledError) after saving a checkpoint. Returns a :class:`TrainResult`.
    """
    import torch

    from csakd_qgis.nets.losses import LossWeights

    t_start = time.time()
    device, rng = prepare_run(cfg.device, cfg.threads, cfg.seed)
    s, n_h, n_m = check_scenes(train_scenes, val_scenes)
    pair_cls = PAIRS[cfg.arch]
    try:
        t_cfg, s_cfg = pair_cls.preset_configs(cfg.preset, n_h, n_m, s, residual=cfg.residual,
                                               zero_head=cfg.zero_head, csa=cfg.csa, upsample=cfg.upsample)
    except ValueError as exc:
        raise CsakdError(str(exc)) from None
    if cfg.residual == "base":
        for group in (train_scenes, val_scenes):
            attach_bases([sc for sc in group if sc.base is None], cfg.base_method)
    weights = LossWeights(**cfg.loss)
    norm_np = band_stats(train_scenes) if cfg.normalization == "per_band" else None
    student = pair_cls.build(s_cfg).to(device)
    teacher = None
    if cfg.mode == "online":
        teacher = pair_cls.build(t_cfg).to(device)
    elif cfg.mode == "offline":
        teacher, norm_np = _offline_teacher(cfg, s_cfg, device, norm_np, [*train_scenes, *val_scenes])
        t_cfg = teacher.cfg
    norm_t = None if norm_np is None else {k: torch.from_numpy(v).view(1, -1, 1, 1).to(device)
                                           for k, v in norm_np.items()}
    pair = pair_cls(teacher, student, weights, norm_t)
    amp_dtype = resolve_amp_dtype(cfg.amp, cfg.amp_dtype, device)
    schedule = dict(cosine_steps=cfg.steps, min_lr_ratio=cfg.min_lr_ratio, grad_scaling=amp_dtype == torch.float16)
    student_optim = make_optim(student, cfg.lr, cfg.weight_decay, **schedule)
    teacher_optim = make_optim(teacher, cfg.lr, cfg.weight_decay, **schedule) if cfg.mode == "online" else None
    out_stem, ckpt_path, log_path = _paths(cfg)
    sampler = PatchSampler(train_scenes, cfg.patch, cfg.batch_size, cfg.snr_db, cfg.augment, rng)
    trainer = Trainer(
        pair, student_optim, teacher_optim, sampler, val_scenes,
        LoopOptions(max_steps=cfg.steps, budget_s=60.0 * cfg.budget_min, val_every=max(1, cfg.val_every),
                    val_at_start=cfg.val_at_start, log_every=cfg.log_every, sam_weight=cfg.sam_weight,
                    grad_clip=cfg.grad_clip),
        device, amp_dtype, checkpoint_path=ckpt_path,
        checkpoint_meta={"train_cfg": cfg.to_dict(), "student_cfg": s_cfg.to_dict(), "teacher_cfg": t_cfg.to_dict()},
        resume_keys=("student_cfg",), log_path=log_path, t_start=t_start,
        bar_desc=f"train {cfg.preset} ({device})" if cfg.progress_bar else None, progress=progress, cancel=cancel)
    if cfg.resume:
        trainer.resume()
    baseline = baseline_metrics(val_scenes) if val_scenes else {}
    trainer.write_log({"event": "start", "device": device, "mode": cfg.mode, "steps": cfg.steps,
                       "start_step": trainer.step, "train_scenes": [sc.name for sc in train_scenes],
                       "val_scenes": [sc.name for sc in val_scenes], "baseline_bicubic": baseline,
                       "teacher_cfg": t_cfg.to_dict(), "student_cfg": s_cfg.to_dict()})
    run = trainer.run()
    best, step = run.best, run.steps

    paths: dict[str, Path | None] = {"student": None, "teacher": None}
    if out_stem is not None:
        config = {k: v for k, v in cfg.to_dict().items() if k != "card"}
        for role, model in trainer.trained():
            b = best.get(role)
            card = trained_card(
                role, name=f"{out_stem.name}_{role}", extra=cfg.card, normalization=normalization_section(norm_np),
                hsi={"bands": n_h, "wavelengths": list(wavelengths) if wavelengths is not None else None,
                     "fwhm": list(fwhm) if fwhm is not None else None},
                msi={"bands": n_m, **(msi_info or {})},
                training={"preset": cfg.preset, "mode": cfg.mode, "steps": step,
                          "train_scenes": [sc.name for sc in train_scenes],
                          "val_scenes": [sc.name for sc in val_scenes], "protocol": WALD_PROTOCOL,
                          "loss": weights.to_dict(), "config": config,
                          "offline_teacher": cfg.teacher_path if cfg.mode == "offline" else None},
                validation={"best_step": b["step"] if b else step, "metrics": b["metrics"] if b else {},
                            "baseline_bicubic": baseline, "scenes": [sc.name for sc in val_scenes]},
                base_method=cfg.base_method if cfg.residual == "base" else None)  # the classical fusion it corrects
            export = getattr(model, "export_module", None)  # DODN: the student without its KD adapter
            paths[role], _ = save_model(out_stem.with_name(f"{out_stem.name}_{role}"), export() if export else model,
                                        card)
    b = best.get("student")
    result = TrainResult(student_path=paths["student"], teacher_path=paths["teacher"],
                         best_step=b["step"] if b else step, best_metrics=b["metrics"] if b else {},
                         teacher_metrics=best["teacher"]["metrics"] if best.get("teacher") else {},
                         baseline_metrics={"bicubic": baseline} if baseline else {}, history=run.history,
                         steps=step, elapsed_s=time.time() - t_start, device_used=device, stopped_by=run.stopped_by)
    trainer.write_log({"event": "end", "best_step": result.best_step,
                       "best": {"student": result.best_metrics, "teacher": result.teacher_metrics},
                       "baseline_bicubic": baseline,
                       "student_path": str(paths["student"]) if paths["student"] else None,
                       "teacher_path": str(paths["teacher"]) if paths["teacher"] else None})
    return result

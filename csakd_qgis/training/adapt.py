"""Scene-adaptive and Processing-sized training of one student: the user's own pair, or reference rasters.

- **Adaptive** (:func:`adapt`): the user's real LR-HSI + HR-MSI pair and no HR-HSI. The pair is put on a
  common grid (:func:`read_pair`), reduced-scale (Wald) pairs are built from the pair itself (input = both
  degraded by s, target = the LR-HSI) and a spatial strip is held out for validation; the learned network is
  applied at full scale (:func:`fusion.fuse.fuse`) when a fused output is asked for.
- **Reference** (:func:`train_references`): reference HR-HSI rasters -> Wald pairs simulated with the MSI
  sensor's SRFs; a spatial strip of each is held out for validation.

:func:`fit_student` configures the one training loop (:class:`training.loop.Trainer`) for ONE CSAKD student
(no teacher / KD terms) started from the closest zoo model or from scratch (a zero-head student correcting
GLP, so training starts exactly at GLP): time budget or step limit, validation before the first step too,
best weights by ``PSNR - SAM``, so the exported model is never worse on validation than its start. Weights
and card are written only at the end (both removed if either write fails); the card records the provenance.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.fusion.fuse import fuse, radiometry_check
from csakd_qgis.fusion.predictors import _base_method
from csakd_qgis.nets.pairs import CSAKDPair
from csakd_qgis.quality.metrics import PSNR_CAP_DB
from csakd_qgis.quality.report import json_safe
from csakd_qgis.raster.coreg import plan_grid
from csakd_qgis.raster.io import check_output_path, check_writable_folder
from csakd_qgis.raster.scene import read_scene
from csakd_qgis.spectral.degrade import check_scale
from csakd_qgis.spectral.srf import load_srf
from csakd_qgis.training.loop import LoopOptions, Trainer, make_optim, prepare_run
from csakd_qgis.training.scenes import (
    PatchSampler,
    Scene,
    attach_bases,
    check_scenes,
    check_trainable,
    make_wald_scenes,
    reduced_scale_scene,
    split_scene,
)
from csakd_qgis.training.validation import attached_base_metrics, baseline_metrics
from csakd_qgis.zoo.card import load_model, read_card, save_model, validate_card
from csakd_qgis.zoo.registry import ZooCandidate, check_not_overwriting, closest_zoo_model, resolve_model_path

log = logging.getLogger("csakd_qgis.adapt")

MODEL_SUFFIX = ".safetensors"
INIT_AUTO, INIT_SCRATCH = "auto", "scratch"
MAX_ADAPT_LR = 384  # adaptive training reads a central window of at most this many LR px a side
REDUCED_PROTOCOL = ("reduced-scale Wald (real use): input = LR-HSI and HR-MSI each degraded by s "
                    "(Gaussian blur sigma s/2 + s x s block mean), target = the original LR-HSI; validation on "
                    "a held-out spatial strip")
REFERENCE_PROTOCOL = ("Wald : blur sigma s/2 + s x s block mean; SRF-synthesised MSI; validation on a "
                      "held-out spatial strip of each reference")


# ------------------------------------------------------------------------------------------- config
@dataclass
class FitConfig:
    """Options of the time-bounded loop (JSON-serialisable via ``dataclasses.asdict``).

    ``budget_min``: wall-clock limit of the training loop in minutes (0 = none; then ``steps`` must be set);
    ``steps``: maximum number of optimizer steps (0 = until the budget). The learning rate follows a cosine
    from ``lr`` to ``lr * min_lr_ratio`` over the fraction of the budget (or of the steps) used.
    """

    budget_min: float = 5.0
    steps: int = 0
    preset: str = "lite"  # architecture when training from scratch
    init: str = INIT_AUTO  # auto (closest zoo model, else scratch) | scratch | zoo model name | model path
    base_method: str = "glp"  # classical fusion a from-scratch student corrects
    batch_size: int = 8
    patch: int = 24  # HR (target) patch size, rounded down to a multiple of the scale
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50  # linear warm-up: the first Adam steps of a zero-initialised head are noisy
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    snr_db: float | None = None  # AWGN on the LR-HSI during training (real data is noisy already)
    augment: bool = True
    val_fraction: float = 0.2
    val_every: int = 25  # validate every N steps ...
    val_every_s: float = 0.0  # ... or every N seconds (0 = budget / 12)
    sam_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    loss: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise CsakdError on an impossible setting."""
        if not (self.budget_min >= 0 and math.isfinite(self.budget_min)):
            raise CsakdError(f"The time budget must be >= 0 minutes (got {self.budget_min}).")
        if int(self.steps) < 0:
            raise CsakdError(f"The step limit must be >= 0 (got {self.steps}).")
        if self.budget_min == 0 and int(self.steps) == 0:
            raise CsakdError("Give a time budget (minutes) or a number of steps: both are 0, so training would "
                             "never stop.")
        if self.batch_size < 1 or self.patch < 2:
            raise CsakdError("The batch size must be >= 1 and the patch size >= 2 pixels.")
        if not 0.05 <= self.val_fraction <= 0.5:
            raise CsakdError(f"The validation fraction must be between 0.05 and 0.5 (got {self.val_fraction}).")
        if self.preset not in ("lite", "paper"):
            raise CsakdError(f"Unknown preset '{self.preset}': use 'lite' or 'paper'.")


@dataclass
class FitResult:
    """What :func:`fit_student` produced (the model holds the best weights, in eval mode)."""

    model: Any
    card: dict[str, Any]  # card template for save_model (role, hsi, msi, normalization, training ...)
    start_metrics: dict[str, float]
    best_metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    best_step: int
    steps: int
    elapsed_s: float
    device: str
    stopped_by: str  # "budget" | "steps"
    init: str  # "scratch" or the source model's name
    history: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass
class TrainRunResult:
    """What :func:`adapt` / :func:`train_references` did (paths, validation, device, timings)."""

    model_path: str
    card_path: str
    fused_path: str | None
    val_psnr: float
    val_sam: float
    start_metrics: dict[str, float]
    best_metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    device_used: str
    init: str
    steps: int
    best_step: int
    stopped_by: str
    scale: int
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary for the CLI and logs."""
        keys = ("psnr", "sam", "ergas", "rmse")

        def short(m: dict[str, float]) -> dict[str, float]:
            out = {k: round(float(m[k]), 4) for k in keys if k in m}
            if "psnr" in m:
                out["psnr"] = round(finite_psnr(m), 4)
            return out

        return {"model": self.model_path, "card": self.card_path, "fused": self.fused_path, "init": self.init,
                "device": self.device_used, "scale": self.scale, "steps": self.steps, "best_step": self.best_step,
                "stopped_by": self.stopped_by, "validation": short(self.best_metrics),
                "validation_start": short(self.start_metrics),
                "validation_baselines": {k: short(v) for k, v in self.baseline_metrics.items()},
                "timings_s": {k: round(v, 2) for k, v in self.timings.items()}}


def finite_psnr(metrics: dict[str, Any]) -> float:
    """The PSNR of a metrics dict, capped (``psnr_capped``, 100 dB a band) when it is infinite (a perfect band).

    Keeps the CLI summary and the Processing outputs finite (``inf`` would be written as Infinity or null).
    """
    p = float(metrics["psnr"])
    if math.isfinite(p):
        return p

    return float(metrics.get("psnr_capped", PSNR_CAP_DB))


# ------------------------------------------------------------------------------------------- paths
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


# --------------------------------------------------------------------------------------------- data
@dataclass
class PairData:
    """The user's pair on its common grid (a central window of at most MAX_ADAPT_LR LR px a side)."""

    lr: np.ndarray
    msi: np.ndarray
    scale: int
    wavelengths: list[float | None]
    fwhm: list[float | None]
    msi_wavelengths: list[float | None]
    msi_names: list[str]
    window_lr: tuple[int, int, int, int]
    grid_lr: tuple[int, int]
    messages: list[str]


def read_pair(hsi: str | os.PathLike, msi: str | os.PathLike, max_lr: int = MAX_ADAPT_LR) -> PairData:
    """Co-register (:func:`coreg.plan_grid`) and read the pair on its common grid (bounded window)."""

    grid = plan_grid(hsi, msi)
    msgs = list(grid.messages)
    with grid:
        r, c, h, w = grid.central_window_lr(max_lr)
        lr, m = grid.read_sample(max_lr)
    if (h, w) != (grid.lr_height, grid.lr_width):
        msgs.append(f"Training on a central window of {h} x {w} of the {grid.lr_height} x {grid.lr_width} LR px "
                    "(bounded memory and time).")
    note = radiometry_check(lr, m)
    if note:
        msgs.append(note)
    meta, mm = grid.hsi, grid.msi
    names = []
    for i in grid.msi_bands:
        d = mm.descriptions[i] if i < len(mm.descriptions) else None
        names.append((d or f"band {i + 1}").split(" (")[0])
    return PairData(lr=lr, msi=m, scale=grid.scale, wavelengths=[meta.wavelengths[i] for i in grid.hsi_bands],
                    fwhm=[meta.fwhm[i] for i in grid.hsi_bands],
                    msi_wavelengths=[mm.wavelengths[i] for i in grid.msi_bands], msi_names=names,
                    window_lr=(r, c, h, w), grid_lr=(grid.lr_height, grid.lr_width), messages=msgs)


# --------------------------------------------------------------------------------------------- loop
def resolve_init(init: str, zoo_choice: ZooCandidate | None = None) -> Path | None:
    """The model card path to start from (None = from scratch) for ``init`` (auto/scratch/name/path)."""

    text = (init or INIT_AUTO).strip()
    if text.lower() == INIT_AUTO:
        return zoo_choice.path if zoo_choice is not None else None
    if text.lower() == INIT_SCRATCH:
        return None
    return resolve_model_path(text)


def init_base_method(source: Path | None, cfg: FitConfig) -> str | None:
    """The classical base the starting network corrects (None when it does not use one)."""
    if source is None:
        return cfg.base_method

    card = read_card(source)
    return _base_method(card) if card.get("residual") == "base" else None


def _init_model(source: Path | None, n_h: int, n_m: int, s: int, wavelengths: Sequence[float | None] | None,
                cfg: FitConfig, device: str) -> tuple[Any, dict[str, Any] | None, str]:
    """(model on device, source card or None, init label)."""
    if source is not None:
        head = read_card(source)
        label = head.get("name") or Path(str(source)).stem
        if head.get("arch") != "csakd":
            raise CsakdError(f"The starting model '{label}' is a '{head.get('arch')}' model (single-image "
                             "super-resolution), not a CSAKD fusion network: start from 'auto', 'scratch' or a "
                             "CSAKD fusion student instead.")
        if head.get("role") != "student":
            raise CsakdError(f"The starting model '{label}' is a {head.get('role')}: only students are fine-tuned "
                             "here (the adapted model is exported as a student); start from its student, 'auto' "
                             "or 'scratch'.")
        model, card = load_model(source, device=device)
        validate_card(card, list(wavelengths) if wavelengths is not None else n_h, n_m, s)
        return model, card, str(card.get("name") or Path(str(source)).stem)
    _, s_cfg = CSAKDPair.preset_configs(cfg.preset, n_h, n_m, s, residual="base", zero_head=True)
    return CSAKDPair.build(s_cfg).to(device), None, INIT_SCRATCH


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
    base_method = init_base_method(source, cfg) if residual == "base" else None
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

    def lr_at(step: int, frac: float) -> float:  # cosine over the steps or budget used, linear warm-up
        lr_now = cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
        return lr_now * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else lr_now

    options = LoopOptions(max_steps=int(cfg.steps), budget_s=budget_s, val_every=cfg.val_every,
                          val_every_s=cfg.val_every_s or (budget_s / 12.0 if budget_s else 0.0), val_at_start=True,
                          log_every=max(1, cfg.val_every), sam_weight=cfg.sam_weight, grad_clip=cfg.grad_clip)
    run = Trainer(pair, make_optim(model, cfg.lr, cfg.weight_decay, lr_at=lr_at), None, sampler, val_scenes, options,
                  device, progress=progress, cancel=cancel).run()
    best, start = run.best["student"], run.history[0]["student"]
    step, loop_s, stopped_by = run.steps, run.elapsed_s, run.stopped_by
    history = [{"step": h["step"], **{k: float(h["student"][k]) for k in ("psnr", "sam", "ergas", "rmse")
                                      if k in h["student"]}} for h in run.history]
    msgs.append(f"{step} steps in {loop_s:.1f} s ({step / max(loop_s, 1e-9):.2f} steps/s) on {device}; stopped by "
                f"the {'time budget' if stopped_by == 'budget' else 'step limit'}; best validation at step "
                f"{best['step']}: PSNR {best['metrics']['psnr']:.2f} dB, SAM {best['metrics']['sam']:.3f} deg "
                f"(start {start['psnr']:.2f} dB / {start['sam']:.3f} deg).")
    card: dict[str, Any] = {
        "role": "student",
        "normalization": norm_card,
        "licence": (src_card or {}).get("licence") or "GPL-2.0-or-later",
        "validation": {"best_step": best["step"], "metrics": best["metrics"], "start_metrics": start,
                       "baselines": baselines, "scenes": [sc.name for sc in val_scenes]},
        "training": {"trainer": "training.adapt.fit_student (student only, no KD)", "steps": step,
                     "loss": weights.to_dict(), "config": {k: v for k, v in cfg.__dict__.items()},
                     "train_scenes": [sc.name for sc in train_scenes], "val_scenes": [sc.name for sc in val_scenes],
                     "elapsed_s": round(loop_s, 2), "device": device},
    }
    if residual == "base":
        card["base_method"] = base_method
    if src_card is not None:
        card["hsi"] = copy.deepcopy(src_card.get("hsi") or {})
        card["msi"] = copy.deepcopy(src_card.get("msi") or {})
        card["source_card"] = {k: src_card.get(k) for k in ("name", "created", "validation") if k in src_card}
        card["source_card"]["sha256"] = (src_card.get("weights") or {}).get("sha256")
    return FitResult(model=model, card=card, start_metrics=start, best_metrics=best["metrics"],
                     baseline_metrics=baselines, best_step=int(best["step"]), steps=step,
                     elapsed_s=setup_s + loop_s, device=device, stopped_by=stopped_by, init=init_name,
                     history=history, messages=msgs)


# ------------------------------------------------------------------------------------------ drivers
def _finish_card(fit: FitResult, name: str, wavelengths: Sequence[float | None], fwhm: Sequence[float | None] | None,
                 msi_info: dict[str, Any], hsi_sensor: str | None, provenance: dict[str, Any]) -> dict[str, Any]:
    card = copy.deepcopy(fit.card)
    card["name"] = name
    hsi = dict(card.get("hsi") or {})
    hsi.update({"bands": len(wavelengths), "wavelengths": [None if w is None else float(w) for w in wavelengths],
                "fwhm": None if fwhm is None or any(f is None for f in fwhm) else [float(f) for f in fwhm]})
    hsi["sensor"] = hsi_sensor or hsi.get("sensor")
    if hsi["wavelengths"] and any(w is None for w in hsi["wavelengths"]):
        hsi["wavelengths"] = None
    card["hsi"] = hsi
    msi = dict(card.get("msi") or {})
    msi.update({k: v for k, v in msi_info.items() if v is not None})
    msi["bands"] = int(msi_info.get("bands") or msi.get("bands"))
    if msi.get("wavelengths") and any(w is None for w in msi["wavelengths"]):
        msi["wavelengths"] = None
    card["msi"] = msi
    card["adaptation"] = {**provenance, "source_model": None if fit.init == INIT_SCRATCH else fit.init,
                          "source_sha256": (card.get("source_card") or {}).get("sha256"),
                          "steps": fit.steps, "best_step": fit.best_step, "stopped_by": fit.stopped_by,
                          "elapsed_s": round(fit.elapsed_s, 2), "device": fit.device,
                          "validation_start": fit.start_metrics, "validation_best": fit.best_metrics,
                          "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()}
    card["training"]["protocol"] = provenance.get("protocol")
    return card


def _msi_info(sensor: str | None, n_m: int, names: Sequence[str] | None = None,
              wavelengths: Sequence[float | None] | None = None) -> tuple[dict[str, Any], Any]:
    """(card msi section, SRF or None): from the sensor spec when given (its band count must match)."""
    info: dict[str, Any] = {"bands": int(n_m), "sensor": None, "band_names": list(names) if names else None,
                            "wavelengths": list(wavelengths) if wavelengths else None}
    if not sensor:
        return info, None

    srf = load_srf(sensor)
    if len(srf.band_names) != n_m:
        raise CsakdError(f"The sensor spec '{sensor}' has {len(srf.band_names)} bands ({', '.join(srf.band_names)}) "
                         f"but the multispectral image has {n_m}: list the MSI's bands in order (e.g. "
                         "'S2A:B2,B3,B4,B8') or leave the sensor empty.")
    info.update(sensor=srf.sensor, band_names=list(srf.band_names), wavelengths=[float(c) for c in srf.centroids()])
    return info, srf


def adapt(hsi: str | os.PathLike, msi: str | os.PathLike, out_model: str | os.PathLike,
          fused: str | os.PathLike | None = None, cfg: FitConfig | None = None, sensor: str | None = None,
          hsi_sensor: str | None = None, progress: Callable[[float, str], None] | None = None,
          cancel: Callable[[], bool] | None = None, fuse_options: dict[str, Any] | None = None) -> TrainRunResult:
    """Scene-adaptive training on the user's pair, then (optionally) fusion at full resolution.

    ``sensor``: optional MSI SRF spec (card + zoo matching; its band count must match the MSI). Progress:
    0-5 % reading, 5-85 % training (or 5-100 % without ``fused``), the rest fusing. The model is written
    before fusing; ``fused`` is removed by the fusion itself on error or cancel.
    """

    cfg = cfg or FitConfig()
    cfg.check()
    t0 = time.perf_counter()
    model_path = check_model_output(out_model, [str(hsi), str(msi)], init=cfg.init)
    if fused:
        check_output_path(fused, [str(hsi), str(msi)], role="fused output")
    rep = _ranged(progress, 0.0, 0.05)
    rep(0.0, "co-registering and reading the pair")
    pair = read_pair(hsi, msi)
    s = pair.scale
    msgs = list(pair.messages)
    msi_info, _ = _msi_info(sensor, pair.msi.shape[0], pair.msi_names, pair.msi_wavelengths)
    zoo = None
    if (cfg.init or INIT_AUTO).strip().lower() == INIT_AUTO:
        zoo, lines = closest_zoo_model(pair.wavelengths if all(w is not None for w in pair.wavelengths)
                                       else [None] * len(pair.wavelengths), pair.msi.shape[0], s,
                                       msi_info.get("wavelengths"), msi_info.get("sensor"))
        msgs += lines
    scene = reduced_scale_scene(Path(str(hsi)).stem, pair.lr, pair.msi, s)
    check_trainable(scene, pair.lr.shape)
    attach_bases([scene], init_base_method(resolve_init(cfg.init, zoo), cfg))
    tr, va = split_scene(scene, cfg.val_fraction)
    t_read = time.perf_counter() - t0
    msgs.append(f"Reduced-scale pairs (scale {s}): input {scene.lr.shape[-2]} x {scene.lr.shape[-1]} px -> target "
                f"{scene.hr.shape[-2]} x {scene.hr.shape[-1]} px; training part {tr.hr.shape[-2]} x {tr.hr.shape[-1]}, "
                f"held-out validation part {va.hr.shape[-2]} x {va.hr.shape[-1]} (LR-HSI px).")
    fit = fit_student([tr], [va], cfg, wavelengths=pair.wavelengths, zoo_choice=zoo,
                      progress=_ranged(progress, 0.05, 0.85 if fused else 1.0), cancel=cancel)
    msgs += fit.messages
    prov = {"mode": "adaptive", "protocol": REDUCED_PROTOCOL, "hsi": str(hsi), "msi": str(msi), "scale": s,
            "lr_window": list(pair.window_lr), "lr_grid": list(pair.grid_lr), "budget_min": cfg.budget_min,
            "max_steps": cfg.steps, "val_fraction": cfg.val_fraction}
    card = _finish_card(fit, model_path.stem, pair.wavelengths, pair.fwhm, msi_info, hsi_sensor, prov)
    if cancel is not None and cancel():
        raise CancelledError()
    json_path, st_path = save_model_files(model_path, fit.model, card)
    msgs.append(f"Model written: {st_path} (+ card {json_path.name}).")
    timings = {"read_s": t_read, "train_s": fit.elapsed_s}
    fused_path = None
    if fused:

        opts = dict(fuse_options or {})
        opts.setdefault("device", cfg.device)
        if cfg.threads:
            opts.setdefault("threads", cfg.threads)
        tf = time.perf_counter()
        try:
            res = fuse(hsi, msi, fused, model=str(st_path), progress=_ranged(progress, 0.85, 1.0), cancel=cancel,
                       **opts)
        except CsakdError as exc:
            raise type(exc)(f"{exc} (the adapted model was saved at '{st_path}')") from None
        timings["fuse_s"] = time.perf_counter() - tf
        msgs += res.messages
        fused_path = res.out_path
    timings["total_s"] = time.perf_counter() - t0
    return TrainRunResult(model_path=str(st_path), card_path=str(json_path), fused_path=fused_path,
                          val_psnr=finite_psnr(fit.best_metrics), val_sam=float(fit.best_metrics["sam"]),
                          start_metrics=fit.start_metrics, best_metrics=fit.best_metrics,
                          baseline_metrics=fit.baseline_metrics, device_used=fit.device, init=fit.init,
                          steps=fit.steps, best_step=fit.best_step, stopped_by=fit.stopped_by, scale=s,
                          timings=timings, messages=msgs)


def train_references(references: Sequence[str | os.PathLike], sensor: str, scale: int,
                     out_model: str | os.PathLike, cfg: FitConfig | None = None, hsi_sensor: str | None = None,
                     progress: Callable[[float, str], None] | None = None,
                     cancel: Callable[[], bool] | None = None) -> TrainRunResult:
    """Train on Wald pairs simulated from reference HR-HSI rasters (a held-out strip of each validates)."""

    cfg = cfg or FitConfig()
    cfg.check()
    t0 = time.perf_counter()
    if not references:
        raise CsakdError("No training rasters were given.")
    s = check_scale(scale)
    if s < 2:
        raise CsakdError(f"The scale must be an integer >= 2 (got {scale}).")
    model_path = check_model_output(out_model, [str(p) for p in references], init=cfg.init)
    if not sensor or not str(sensor).strip():
        raise CsakdError("The MSI sensor is needed to simulate the multispectral image from the training rasters: "
                         "give e.g. 'S2A:B2,B3,B4,B8'.")
    srf = load_srf(sensor)
    rep = _ranged(progress, 0.0, 0.05)
    refs, wl0, fw0 = [], None, None
    for i, p in enumerate(references):
        rep(i / len(references), f"reading {Path(str(p)).name}")
        cube, wl, fw, _ = read_scene(p)
        if wl0 is None:
            wl0, fw0 = wl, fw
        elif len(wl) != len(wl0) or float(np.max(np.abs(np.asarray(wl) - np.asarray(wl0)))) > 1.0:
            raise CsakdError(f"The training raster '{p}' has {len(wl)} bands at other wavelengths than the first one "
                             f"({len(wl0)} bands): all must come from the same sensor and band set.")
        refs.append((Path(str(p)).stem, cube))
    msi_info = {"bands": len(srf.band_names), "sensor": srf.sensor, "band_names": list(srf.band_names),
                "wavelengths": [float(c) for c in srf.centroids()]}
    zoo = None
    msgs: list[str] = []
    if (cfg.init or INIT_AUTO).strip().lower() == INIT_AUTO:
        zoo, lines = closest_zoo_model(wl0, len(srf.band_names), s, msi_info["wavelengths"], srf.sensor)
        msgs += lines
    scenes = make_wald_scenes(refs, wl0, fw0, srf, s)
    attach_bases(scenes, init_base_method(resolve_init(cfg.init, zoo), cfg))
    tr, va = [], []
    for sc in scenes:
        a, b = split_scene(sc, cfg.val_fraction)
        tr.append(a)
        va.append(b)
    t_read = time.perf_counter() - t0
    fit = fit_student(tr, va, cfg, wavelengths=wl0, zoo_choice=zoo, progress=_ranged(progress, 0.05, 1.0),
                      cancel=cancel)
    msgs += fit.messages
    prov = {"mode": "reference", "protocol": REFERENCE_PROTOCOL, "references": [str(p) for p in references],
            "sensor": sensor, "scale": s, "budget_min": cfg.budget_min, "max_steps": cfg.steps,
            "val_fraction": cfg.val_fraction}
    card = _finish_card(fit, model_path.stem, wl0, fw0, msi_info, hsi_sensor, prov)
    card["training"]["data"] = [str(p) for p in references]
    if cancel is not None and cancel():
        raise CancelledError()
    json_path, st_path = save_model_files(model_path, fit.model, card)
    msgs.append(f"Model written: {st_path} (+ card {json_path.name}).")
    return TrainRunResult(model_path=str(st_path), card_path=str(json_path), fused_path=None,
                          val_psnr=finite_psnr(fit.best_metrics), val_sam=float(fit.best_metrics["sam"]),
                          start_metrics=fit.start_metrics, best_metrics=fit.best_metrics,
                          baseline_metrics=fit.baseline_metrics, device_used=fit.device, init=fit.init,
                          steps=fit.steps, best_step=fit.best_step, stopped_by=fit.stopped_by, scale=s,
                          timings={"read_s": t_read, "train_s": fit.elapsed_s,
                                   "total_s": time.perf_counter() - t0}, messages=msgs)


def _ranged(progress: Callable[[float, str], None] | None, lo: float, hi: float) -> Callable[[float, str], None]:
    def rep(frac: float, msg: str = "") -> None:
        if progress is not None:
            progress(lo + (hi - lo) * float(min(max(frac, 0.0), 1.0)), msg)

    return rep


__all__ = ["FitConfig", "FitResult", "INIT_AUTO", "INIT_SCRATCH", "PairData", "TrainRunResult", "ZooCandidate",
           "adapt", "check_model_output", "closest_zoo_model", "finite_psnr", "fit_student",
           "read_pair", "save_model_files", "train_references"]

"""Scene-adaptive and Processing-sized training (real use: the user's own pair): a time-bounded fine-tuning loop.

Two data sources, one loop:

- **Adaptive** (:func:`adapt`): the user's real LR-HSI + HR-MSI pair and no HR-HSI. The pair is first put on
  a common grid (:func:`coreg.plan_grid`), then reduced-scale (Wald) pairs are built from the pair itself:
  input = LR-HSI / s and MSI / s (Gaussian blur sigma s/2 + s x s block mean), target = the original LR-HSI.
  A spatial strip of that pair is held out for validation. The network learned there is applied at full
  scale (:func:`fuse.fuse`) when a fused output is asked for.
- **Reference** (:func:`train_references`): reference HR-HSI rasters -> Wald pairs simulated with the MSI
  sensor's SRFs (:func:`train.make_wald_scenes`); a spatial strip of each is held out for validation.

The loop (:func:`fit_student`) trains ONE network (a CSAKD student; no teacher / KD terms: student
loss with the KD weights unused) from the closest zoo model (:func:`closest_zoo_model`: same scale, band
counts and band centres; nearest MSI bands) or from scratch. From scratch the student corrects a classical
GLP fusion (``residual="base"``, zero-initialised head), so training starts exactly at GLP. It stops at the
time budget or the step limit, validates on the held-out strip (also before the first step) and keeps the
best weights by ``PSNR - SAM`` (:func:`train.score`): the exported model is never worse on validation than
the starting one. Weights are written only at the end (``.safetensors`` + ``.json`` card, both removed again
if either write fails), so a cancel never leaves a half-written model. The card records the adaptation
provenance (``adaptation``: source model, data, budget, steps, device, start/best validation).

For KD co-training of a teacher/student pair on many scenes use ``csakd train`` (:func:`train.train`).
torch is imported lazily.
"""

from __future__ import annotations

import contextlib
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
from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.fusion.fuse import fuse, radiometry_check
from csakd_qgis.fusion.predictors import _base_method
from csakd_qgis.nets.device import resolve_device
from csakd_qgis.quality.metrics import PSNR_CAP_DB, compute_metrics
from csakd_qgis.raster.coreg import plan_grid
from csakd_qgis.raster.io import check_output_path, check_writable_folder
from csakd_qgis.raster.scene import read_scene
from csakd_qgis.spectral.degrade import check_scale, crop_to_multiple, wald_degrade
from csakd_qgis.spectral.srf import load_srf
from csakd_qgis.training.loop import (
    PatchSampler,
    Scene,
    _mean_metrics,
    baseline_metrics,
    evaluate_scenes,
    make_wald_scenes,
    score,
    seed_everything,
)
from csakd_qgis.zoo.card import load_model, model_paths, read_card, save_model, validate_card
from csakd_qgis.zoo.registry import ZooCandidate, closest_zoo_model, resolve_model_path

log = logging.getLogger("csakd_qgis.adapt")

MODEL_SUFFIX = ".safetensors"
INIT_AUTO, INIT_SCRATCH = "auto", "scratch"
MAX_ADAPT_LR = 384  # adaptive training reads a central window of at most this many LR px a side
MIN_SPLIT_LR = 2  # train and validation strips need at least this many reduced-scale input px across
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
def check_model_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Validate a model destination before any compute: ``.safetensors`` (or no extension), writable folder.

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
    for src in inputs:
        for q in (p, p.with_suffix(".json")):
            if src and os.path.exists(src) and q.exists() and os.path.samefile(q, src):
                raise CsakdError(f"The output model '{q}' is one of the inputs: choose another file name.")
    return p


def save_model_files(path: Path, model: Any, card: dict[str, Any]) -> tuple[Path, Path]:
    """``modelcard.save_model`` that leaves neither file behind when one of the two writes fails."""

    json_path, st_path = model_paths(path)
    existed = {q: q.exists() for q in (json_path, st_path)}
    try:
        return save_model(path, model, _json_safe(card))
    except BaseException:
        for q, was in existed.items():
            if not was and q.exists():
                with contextlib.suppress(OSError):
                    q.unlink()
        raise


def _json_safe(obj: Any) -> Any:
    """A copy with numpy scalars as Python numbers and NaN/inf as None (cards are strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------------------------- data
def split_scene(scene: Any, val_fraction: float, name: str | None = None) -> tuple[Any, Any]:
    """(train, validation) Scenes: the last ``val_fraction`` of the longer axis is held out.

    The cut falls on the scene's LR (input) grid, so both parts keep the s x s grid convention.
    """

    s = scene.scale
    h, w = scene.lr.shape[-2:]
    axis = -1 if w >= h else -2
    n = w if axis == -1 else h
    n_val = max(MIN_SPLIT_LR, int(round(n * val_fraction)))
    if n - n_val < MIN_SPLIT_LR:
        raise CsakdError(f"The scene '{scene.name}' is too small to hold out a validation strip: its reduced-scale "
                         f"input is {h} x {w} px (needs at least {2 * MIN_SPLIT_LR} px along one side, i.e. a "
                         f"LR-HSI of at least {2 * MIN_SPLIT_LR * s} px at scale {s}).")
    cut = n - n_val

    def part(a: np.ndarray, lo: int, hi: int | None, k: int) -> np.ndarray:
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(lo * k, None if hi is None else hi * k)
        return np.ascontiguousarray(a[tuple(sl)])

    base = scene.base
    nm = name or scene.name
    tr = Scene(f"{nm}:train", part(scene.hr, 0, cut, s), part(scene.lr, 0, cut, 1), part(scene.msi, 0, cut, s),
               None if base is None else part(base, 0, cut, s))
    va = Scene(f"{nm}:val", part(scene.hr, cut, None, s), part(scene.lr, cut, None, 1),
               part(scene.msi, cut, None, s), None if base is None else part(base, cut, None, s))
    if base is not None and hasattr(scene, "base_method"):
        tr.base_method = va.base_method = scene.base_method
    return tr, va


def reduced_scale_scene(name: str, lr: np.ndarray, msi: np.ndarray, scale: int) -> Any:
    """Real-use training pair from an LR-HSI (C_h, h, w) and its HR-MSI (C_m, s*h, s*w).

    Target = the LR-HSI (cropped to multiples of s); inputs = the LR-HSI and the HR-MSI each Wald-degraded by
    s, so the input MSI lies on the LR-HSI grid and the input HSI on a grid s times coarser.
    """

    s = int(scale)
    lr = crop_to_multiple(np.asarray(lr, np.float32), s)
    h, w = lr.shape[-2:]
    msi = np.asarray(msi, np.float32)
    if msi.shape[-2] < h * s or msi.shape[-1] < w * s:
        raise CsakdError(f"The HR-MSI ({msi.shape[-2]} x {msi.shape[-1]} px) does not cover the LR-HSI ({h} x {w} "
                         f"px) at scale {s}.")
    if h < s or w < s:
        raise CsakdError(f"The LR-HSI ({h} x {w} px) is smaller than the scale {s}: too small to train on.")
    msi_lr = wald_degrade(msi[:, : h * s, : w * s], s)
    return Scene(name, lr, wald_degrade(lr, s), msi_lr)


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


def attach_bases(scenes: Sequence[Any], method: str | None) -> None:
    """Set ``scene.base`` to the classical fusion ``method`` of each scene (fitted on its inputs only), or None.

    Call it on whole scenes BEFORE :func:`split_scene`, so both parts share the coefficients of the whole
    scene (fitted on the degraded inputs only: the target is not used).
    """

    for sc in scenes:
        sc.base = None if method is None else np.asarray(fuse_classical(sc.lr, sc.msi, sc.scale, method), np.float32)
        if method is not None:
            sc.base_method = method


def _init_model(source: Path | None, n_h: int, n_m: int, s: int, wavelengths: Sequence[float | None] | None,
                cfg: FitConfig, device: str) -> tuple[Any, dict[str, Any] | None, str]:
    """(model on device, source card or None, init label)."""
    from csakd_qgis.nets.csakd import build_model, preset_configs

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
    _, s_cfg = preset_configs(cfg.preset, n_h, n_m, s, residual="base", zero_head=True)
    return build_model(s_cfg).to(device), None, INIT_SCRATCH


def fit_student(train_scenes: Sequence[Any], val_scenes: Sequence[Any], cfg: FitConfig,
                wavelengths: Sequence[float | None] | None = None,
                zoo_choice: ZooCandidate | None = None,
                progress: Callable[[float, str], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> FitResult:
    """Time-bounded training of one CSAKD student on ``train_scenes``, best weights by ``val_scenes``.

    ``progress(fraction, message)`` after every step; ``cancel()`` is checked before every step and raises
    :class:`CancelledError` (nothing is written by this function).
    """
    import torch

    from csakd_qgis.nets.losses import LossWeights
    from csakd_qgis.nets.pairs import CSAKDPair

    cfg.check()
    if not train_scenes or not val_scenes:
        raise CsakdError("Training needs at least one training and one validation scene.")
    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    rng = seed_everything(cfg.seed)
    s = train_scenes[0].scale
    n_h, n_m = train_scenes[0].hr.shape[0], train_scenes[0].msi.shape[0]
    source = resolve_init(cfg.init, zoo_choice)
    model, src_card, init_name = _init_model(source, n_h, n_m, s, wavelengths, cfg, device)
    residual = model.cfg.residual
    base_method = init_base_method(source, cfg) if residual == "base" else None
    msgs = [f"Starting point: {'a new ' + cfg.preset + ' student correcting ' + str(base_method) if src_card is None else 'model ' + init_name}."]
    for sc in list(train_scenes) + list(val_scenes):
        if base_method is None:
            sc.base = None
        elif sc.base is None or getattr(sc, "base_method", base_method) != base_method:
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
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    budget_s = float(cfg.budget_min) * 60.0
    max_steps = int(cfg.steps)
    val_every_s = cfg.val_every_s or (budget_s / 12.0 if budget_s else 0.0)
    baselines = {"bicubic": baseline_metrics(val_scenes, "bicubic")}
    if base_method is not None:  # the base as the network sees it (coefficients of the whole scene)
        baselines[base_method] = _mean_metrics([compute_metrics(sc.hr, sc.base, s, mask=np.isfinite(sc.hr).all(0)
                                                                & np.isfinite(sc.base).all(0)) for sc in val_scenes])
    setup_s = time.perf_counter() - t0

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    step = 0

    def validate() -> dict[str, float]:
        model.eval()
        m = evaluate_scenes(pair.student_forward, val_scenes, device)
        model.train()
        sc_ = score(m, cfg.sam_weight)
        history.append({"step": step, "time_s": round(time.perf_counter() - t_loop, 2),
                        **{k: float(m[k]) for k in ("psnr", "sam", "ergas", "rmse") if k in m}})
        if not best or sc_ > best["score"]:
            best.update(score=sc_, step=step, metrics=m,
                        state={k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()})
        return m

    t_loop = time.perf_counter()
    start = validate()
    model.train()
    last_val_t, last_val_step = time.perf_counter(), 0
    stopped_by = "steps"
    while True:
        elapsed = time.perf_counter() - t_loop
        if budget_s and elapsed >= budget_s:
            stopped_by = "budget"
            break
        if max_steps and step >= max_steps:
            stopped_by = "steps"
            break
        if cancel is not None and cancel():
            raise CancelledError()
        frac = max(step / max_steps if max_steps else 0.0, elapsed / budget_s if budget_s else 0.0)
        lr_now = cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        if cfg.warmup_steps:
            lr_now *= min(1.0, (step + 1) / cfg.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = lr_now
        batch = {k: torch.from_numpy(v).to(device) for k, v in sampler.sample().items()}
        out_s = pair.student_forward(batch)
        loss, parts = pair.student_loss(out_s, None, batch)
        if not math.isfinite(parts["total"]):
            raise CsakdError(f"The training loss became {parts['total']} at step {step + 1}: lower the learning "
                             "rate or check the inputs for invalid values.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        now = time.perf_counter()
        if (cfg.val_every and step - last_val_step >= cfg.val_every) or (val_every_s and now - last_val_t >= val_every_s):
            validate()
            last_val_t, last_val_step = time.perf_counter(), step
        if progress is not None:
            frac = max(step / max_steps if max_steps else 0.0, (now - t_loop) / budget_s if budget_s else 0.0)
            progress(min(frac, 1.0), f"step {step}: loss {parts['total']:.4f}, best val PSNR "
                                     f"{best['metrics']['psnr']:.2f} dB (step {best['step']})")
    if last_val_step != step:
        validate()
    loop_s = time.perf_counter() - t_loop
    model.load_state_dict(best["state"])
    model.eval()
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
    model_path = check_model_output(out_model, [str(hsi), str(msi)])
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
    model_path = check_model_output(out_model, [str(p) for p in references])
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
           "read_pair", "reduced_scale_scene", "save_model_files", "split_scene",
           "train_references"]

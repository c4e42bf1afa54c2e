"""Training engine: Wald-pair patch sampling, online/offline KD co-training, validation,
resumable checkpoints and export of the best teacher and student with their model cards.

Data: a list of :class:`Scene` (target HR-HSI, LR-HSI, HR-MSI, optional base) kept in memory. From
reference HR-HSI cubes the scenes are simulated by the Wald protocol (:func:`make_wald_scenes`); for
real LR-HSI/HR-MSI pairs, :func:`training.adapt.reduced_scale_scene` degrades both by s and targets the LR-HSI.
The loop is generic over a "model pair" adapter (:class:`CSAKDPair`): a DODN-style pair can provide
the same ``teacher_forward`` / ``student_forward`` / ``teacher_loss`` / ``student_loss`` methods.

torch is imported lazily, so importing this module costs nothing at QGIS plugin load.
"""

from __future__ import annotations

import copy
import dataclasses
import json
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
from csakd_qgis.fusion.classical import fuse_classical, upsample_bicubic
from csakd_qgis.nets.device import resolve_device
from csakd_qgis.nets.pairs import CSAKDPair, DODNPair
from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.spectral.degrade import add_awgn, crop_to_multiple, simulate_pair
from csakd_qgis.zoo.card import load_model, save_model

log = logging.getLogger(__name__)

MODES = ("online", "offline", "student")
CKPT_VERSION = 1


# ----------------------------------------------------------------------------------------------- data
@dataclass
class Scene:
    """One training/validation scene: target ``hr`` (C_h, sH, sW), ``lr`` (C_h, H, W), ``msi`` (C_m, sH, sW).

    ``base`` (C_h, sH, sW) is the classical fusion estimate for residual="base" models. NaN = nodata.
    """

    name: str
    hr: np.ndarray
    lr: np.ndarray
    msi: np.ndarray
    base: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.hr = np.asarray(self.hr, np.float32)
        self.lr = np.asarray(self.lr, np.float32)
        self.msi = np.asarray(self.msi, np.float32)
        h, w = self.lr.shape[-2:]
        hh, ww = self.hr.shape[-2:]
        if hh % h or ww % w or hh // h != ww // w or self.msi.shape[-2:] != self.hr.shape[-2:]:
            raise CsakdError(f"Scene '{self.name}': LR {self.lr.shape}, HR {self.hr.shape} and MSI "
                             f"{self.msi.shape} are not on one grid with an integer scale.")

    @property
    def scale(self) -> int:
        """HR / LR size ratio."""
        return self.hr.shape[-1] // self.lr.shape[-1]


def make_wald_scenes(references: Sequence[tuple[str, np.ndarray]], wavelengths: Sequence[float],
                     fwhm: Sequence[float] | None, sensor: Any, scale: int) -> list[Scene]:
    """Scenes from reference HR-HSI cubes (C_h, H, W) by the Wald protocol (spectral.degrade.simulate_pair).

    Noise is not added here (the sampler adds per-sample AWGN during training only).
    """

    scenes = []
    for name, ref in references:
        ref = crop_to_multiple(np.asarray(ref, np.float32), scale)
        if ref.shape[-1] < scale or ref.shape[-2] < scale:
            raise CsakdError(f"Scene '{name}' ({ref.shape[-2]} x {ref.shape[-1]} px) is smaller than the "
                             f"scale {scale}.")
        lr, msi = simulate_pair(ref, wavelengths, fwhm, sensor, scale)
        scenes.append(Scene(name, ref, lr, msi))
    return scenes


def add_base(scenes: Sequence[Scene], method: str) -> None:
    """Fill ``scene.base`` with the classical fusion ``method`` (for residual="base" models)."""

    for sc in scenes:
        sc.base = np.asarray(fuse_classical(sc.lr, sc.msi, sc.scale, method), np.float32)


def _augment(arrs: list[np.ndarray | None], k: int, flip_h: bool, flip_v: bool) -> list[np.ndarray | None]:
    out = []
    for a in arrs:
        if a is None:
            out.append(None)
            continue
        if flip_h:
            a = a[..., :, ::-1]
        if flip_v:
            a = a[..., ::-1, :]
        if k:
            a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a))
    return out


class PatchSampler:
    """Random training batches from in-memory scenes.

    Crops of ``patch`` HR pixels (a multiple of s) start on the LR grid (HR offset = s * LR offset); the
    same flip/rot90 is applied to LR, MSI, target and base; AWGN at ``snr_db`` (per band, per sample)
    is added to the LR-HSI only. Crops containing nodata are redrawn (up to 20 times).
    """

    def __init__(self, scenes: Sequence[Scene], patch: int, batch_size: int, snr_db: float | None = None,
                 augment: bool = True, rng: np.random.Generator | None = None) -> None:
        if not scenes:
            raise CsakdError("No training scenes were given.")
        self.scenes = list(scenes)
        self.scale = self.scenes[0].scale
        if any(sc.scale != self.scale for sc in self.scenes):
            raise CsakdError("All training scenes must have the same scale.")
        s = self.scale
        smallest = min(min(sc.lr.shape[-2:]) for sc in self.scenes)
        self.lr_patch = max(1, min(int(patch) // s, smallest))
        self.batch_size, self.snr_db, self.augment = int(batch_size), snr_db, augment
        self.rng = rng if rng is not None else np.random.default_rng(0)
        sizes = np.array([sc.lr.shape[-2] * sc.lr.shape[-1] for sc in self.scenes], np.float64)
        self.weights = sizes / sizes.sum()

    def _crop(self) -> tuple[np.ndarray, ...]:
        s, p = self.scale, self.lr_patch
        for _ in range(20):
            sc = self.scenes[self.rng.choice(len(self.scenes), p=self.weights)]
            h, w = sc.lr.shape[-2:]
            i, j = int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
            lr = sc.lr[:, i:i + p, j:j + p]
            hs = (slice(None), slice(i * s, (i + p) * s), slice(j * s, (j + p) * s))
            hr, msi = sc.hr[hs], sc.msi[hs]
            base = None if sc.base is None else sc.base[hs]
            if np.isfinite(hr).all() and np.isfinite(lr).all() and np.isfinite(msi).all():
                break
        lr, msi, hr = (np.nan_to_num(a, nan=0.0) for a in (lr, msi, hr))
        if base is not None:
            base = np.nan_to_num(base, nan=0.0)
        if self.augment:
            k = int(self.rng.integers(0, 4))
            lr, msi, hr, base = _augment([lr, msi, hr, base], k, bool(self.rng.integers(0, 2)),
                                         bool(self.rng.integers(0, 2)))
        if self.snr_db is not None:

            lr = add_awgn(lr, self.snr_db, self.rng)
        return lr, msi, hr, base

    def sample(self) -> dict[str, np.ndarray]:
        """One batch: {"lr", "msi", "hr"[, "base"]} stacked float32 arrays."""
        crops = [self._crop() for _ in range(self.batch_size)]
        batch = {"lr": np.stack([c[0] for c in crops]), "msi": np.stack([c[1] for c in crops]),
                 "hr": np.stack([c[2] for c in crops])}
        if crops[0][3] is not None:
            batch["base"] = np.stack([c[3] for c in crops])
        return batch


# ------------------------------------------------------------------------------------------ config
@dataclass
class TrainConfig:
    """Everything a training run needs besides the data. JSON-serialisable via to_dict."""

    preset: str = "lite"
    arch: str = "csakd"  # csakd (fusion) | dodn (single-image SR, MSI privileged: nets.dodn)
    mode: str = "online"  # online co-training | offline (frozen teacher) | student (no KD, ablation)
    teacher_path: str | None = None  # offline mode: a saved teacher (.safetensors/.json/stem)
    steps: int = 2000
    batch_size: int = 8
    patch: int = 32  # HR patch size, rounded down to a multiple of the scale
    lr: float = 1e-4
    weight_decay: float = 1e-4
    min_lr_ratio: float = 0.01  # cosine schedule ends at lr * min_lr_ratio
    grad_clip: float | None = 1.0
    snr_db: float | None = 35.0  # AWGN on the LR-HSI (training only); None = clean
    augment: bool = True
    residual: str = "bilinear"
    csa: str = "corrected"
    upsample: str = "nearest"
    zero_head: bool = True  # zero-init the last head conv: start from the residual image (measured +0.7 dB)
    base_method: str = "glp"  # classical method providing ``base`` when residual == "base"
    normalization: str = "none"  # none | per_band (statistics from the training scenes)
    loss: dict[str, Any] = field(default_factory=dict)  # LossWeights fields
    val_every: int = 200
    log_every: int = 20
    sam_weight: float = 1.0  # best-model score = PSNR (dB) - sam_weight * SAM (degrees)
    val_at_start: bool = False  # validate the initial weights too (a zero-head "base" net = the classical estimate)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # autocast on CUDA (see amp_dtype)
    amp_dtype: str = "auto"  # auto (bf16 where supported, else fp16) | bf16 | fp16 (fp16 uses grad scaling)
    threads: int | None = None
    out: str | None = None  # export stem: <out>_student / <out>_teacher (.safetensors + .json)
    checkpoint: str | None = None  # default <out>.ckpt.pt
    log_path: str | None = None  # JSON lines; default <out>.log.jsonl
    resume: bool = False
    progress_bar: bool = True
    card: dict[str, Any] = field(default_factory=dict)  # extra card fields: name, licence, training ...

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CsakdError(f"Training mode must be one of {MODES}, got {self.mode!r}.")
        if self.mode == "offline" and not self.teacher_path:
            raise CsakdError("Offline mode needs a trained teacher: give its model path (--teacher).")
        if self.steps < 1 or self.batch_size < 1:
            raise CsakdError("steps and batch size must be >= 1.")
        if self.normalization not in ("none", "per_band"):
            raise CsakdError(f"normalization must be 'none' or 'per_band', got {self.normalization!r}.")
        if self.arch not in ("csakd", "dodn"):
            raise CsakdError(f"arch must be 'csakd' or 'dodn', got {self.arch!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What a run produced."""

    student_path: Path | None
    teacher_path: Path | None
    best_step: int
    best_metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    steps_done: int
    elapsed_s: float
    device: str


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return a numpy Generator for the data pipeline."""
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


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


def predict_scene(pair_forward: Callable[[dict[str, Any]], tuple[Any, Any]], scene: Scene, device: str,
                  amp_dtype: Any = None) -> np.ndarray:
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


def _mean_metrics(items: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in items[0].items() if isinstance(v, (int, float, np.floating))]
    return {k: float(np.mean([float(it[k]) for it in items])) for k in keys}


def evaluate_scenes(pair_forward: Callable[[dict[str, Any]], tuple[Any, Any]], scenes: Sequence[Scene],
                    device: str, amp_dtype: Any = None) -> dict[str, float]:
    """Mean of quality.metrics.compute_metrics over ``scenes`` (valid pixels only)."""

    res = []
    for sc in scenes:
        est = predict_scene(pair_forward, sc, device, amp_dtype)
        mask = np.isfinite(sc.hr).all(axis=0)
        res.append(compute_metrics(sc.hr, est, sc.scale, mask=mask))
    return _mean_metrics(res)


def baseline_metrics(scenes: Sequence[Scene], method: str = "bicubic") -> dict[str, float]:
    """Metrics of the bicubic upsampling (or a classical fusion method) on ``scenes``."""

    res = []
    for sc in scenes:
        lr = np.nan_to_num(sc.lr)
        est = upsample_bicubic(lr, sc.scale) if method == "bicubic" else fuse_classical(
            lr, np.nan_to_num(sc.msi), sc.scale, method)
        est = np.asarray(est, np.float32)[:, : sc.hr.shape[-2], : sc.hr.shape[-1]]
        res.append(compute_metrics(sc.hr, est, sc.scale, mask=np.isfinite(sc.hr).all(axis=0)))
    return _mean_metrics(res)


def score(metrics: dict[str, float], sam_weight: float) -> float:
    """Model-selection score: PSNR (dB) - sam_weight * SAM (degrees); higher is better."""
    return float(metrics["psnr"]) - sam_weight * float(metrics["sam"])


def _band_stats(scenes: Sequence[Scene]) -> dict[str, np.ndarray]:
    def stats(arrs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        flat = np.concatenate([a.reshape(a.shape[0], -1) for a in arrs], axis=1)
        mean = np.nanmean(flat, axis=1)
        std = np.nanstd(flat, axis=1)
        return mean.astype(np.float32), np.maximum(std, 1e-4).astype(np.float32)

    hm, hs = stats([sc.hr for sc in scenes])
    mm, ms = stats([sc.msi for sc in scenes])
    return {"hsi_mean": hm, "hsi_std": hs, "msi_mean": mm, "msi_std": ms}


def _state_to_cpu(module: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


def _np_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]),
            "inc": str(st["state"]["inc"]), "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"])}


def _set_np_rng_state(rng: np.random.Generator, d: dict[str, Any]) -> None:
    rng.bit_generator.state = {"bit_generator": d["bit_generator"],
                               "state": {"state": int(d["state"]), "inc": int(d["inc"])},
                               "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename (a crash never leaves a half-written checkpoint)."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise CsakdError(f"The training checkpoint '{path}' cannot be read ({exc}); delete it or train "
                         "without --resume.") from None


# --------------------------------------------------------------------------------------------- train
def _check_offline_teacher(card: dict[str, Any], student_cfg: Any) -> None:
    c = card["config"]
    for key in ("hsi_bands", "msi_bands", "scale"):
        if int(c[key]) != int(getattr(student_cfg, key)):
            raise CsakdError(f"The offline teacher has {key}={c[key]} but the training data needs "
                             f"{getattr(student_cfg, key)}.")


def train(train_scenes: Sequence[Scene], val_scenes: Sequence[Scene], cfg: TrainConfig,
          wavelengths: Sequence[float] | None = None, fwhm: Sequence[float] | None = None,
          msi_info: dict[str, Any] | None = None,
          progress: Callable[[float, str], None] | None = None,
          cancel: Callable[[], bool] | None = None) -> TrainResult:
    """Train a CSAKD teacher/student pair on ``train_scenes``; validate on ``val_scenes``; export.

    ``wavelengths``/``fwhm`` (HSI band centres, nm) and ``msi_info`` ({"sensor", "band_names",
    "wavelengths"}) go into the model cards. ``progress(fraction, message)``; ``cancel() -> True``
    stops the run (CancelledError) after saving a checkpoint. Returns a :class:`TrainResult`.
    """
    import torch

    from csakd_qgis.nets.csakd import build_model, preset_configs
    from csakd_qgis.nets.losses import LossWeights

    t_start = time.time()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    rng = seed_everything(cfg.seed)
    if not train_scenes:
        raise CsakdError("No training scenes were given.")
    s = train_scenes[0].scale
    n_h, n_m = train_scenes[0].hr.shape[0], train_scenes[0].msi.shape[0]
    for sc in list(train_scenes) + list(val_scenes):
        if sc.hr.shape[0] != n_h or sc.msi.shape[0] != n_m or sc.scale != s:
            raise CsakdError(f"Scene '{sc.name}' has {sc.hr.shape[0]} HSI / {sc.msi.shape[0]} MSI bands at "
                             f"scale {sc.scale}; the first scene has {n_h} / {n_m} at scale {s}.")
    try:
        if cfg.arch == "dodn":  # DODN-style SR pair: same loop, its own nets and adapter (nets.dodn)
            from csakd_qgis.nets import dodn

            preset_configs = dodn.preset_configs  # noqa: F811
            build_model = dodn.build_training_model  # noqa: F811
            t_cfg, s_cfg = preset_configs(cfg.preset, n_h, n_m, s, residual=cfg.residual, zero_head=cfg.zero_head)
        else:
            t_cfg, s_cfg = preset_configs(cfg.preset, n_h, n_m, s, residual=cfg.residual, csa=cfg.csa,
                                          upsample=cfg.upsample, zero_head=cfg.zero_head)
    except ValueError as exc:
        raise CsakdError(str(exc)) from None
    if cfg.residual == "base":
        for group in (train_scenes, val_scenes):
            add_base([sc for sc in group if sc.base is None], cfg.base_method)
    weights = LossWeights(**cfg.loss)
    norm_np = _band_stats(train_scenes) if cfg.normalization == "per_band" else None
    student = build_model(s_cfg).to(device)
    teacher = None
    teacher_card = None
    if cfg.mode == "online":
        teacher = build_model(t_cfg).to(device)
    elif cfg.mode == "offline":
        teacher, teacher_card = load_model(cfg.teacher_path, device=device)
        if teacher_card.get("arch", "csakd") != cfg.arch:
            raise CsakdError(f"The offline teacher '{cfg.teacher_path}' is a {teacher_card.get('arch')!r} model; "
                             f"this run trains arch {cfg.arch!r}.")
        _check_offline_teacher(teacher_card, s_cfg)
        teacher.requires_grad_(False).eval()
        t_cfg = teacher.cfg
        t_norm = teacher_card["normalization"]
        if t_norm.get("type") == "per_band":
            norm_np = {k: np.asarray(t_norm[k], np.float32) for k in ("hsi_mean", "hsi_std", "msi_mean",
                                                                      "msi_std")}
        elif norm_np is not None:
            raise CsakdError("The offline teacher was trained without input normalization: train the student "
                             "with normalization 'none' too.")
    norm_t = None if norm_np is None else {k: torch.from_numpy(v).view(1, -1, 1, 1).to(device)
                                           for k, v in norm_np.items()}
    pair = CSAKDPair(teacher, student, weights, norm_t) if cfg.arch == "csakd" else DODNPair(
        teacher, student, weights, norm_t)

    def make_opt(model: Any) -> tuple[Any, Any]:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps,
                                                           eta_min=cfg.lr * cfg.min_lr_ratio)
        return opt, sched

    opt_s, sched_s = make_opt(student)
    opt_t, sched_t = make_opt(teacher) if cfg.mode == "online" else (None, None)

    use_amp = cfg.amp and device.startswith("cuda")
    amp_dtype = None
    if use_amp:
        if cfg.amp_dtype == "auto":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif cfg.amp_dtype in ("bf16", "fp16"):
            amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bf16" else torch.float16
        else:
            raise CsakdError(f"amp_dtype must be auto, bf16 or fp16, got {cfg.amp_dtype!r}.")
    scaler_enabled = use_amp and amp_dtype == torch.float16
    scaler_s = torch.amp.GradScaler("cuda", enabled=scaler_enabled)
    scaler_t = torch.amp.GradScaler("cuda", enabled=scaler_enabled)

    out_stem = Path(cfg.out) if cfg.out else None
    if out_stem is not None and not out_stem.parent.is_dir():
        raise CsakdError(f"The output folder '{out_stem.parent}' does not exist: create it first.")
    ckpt_path = Path(cfg.checkpoint) if cfg.checkpoint else (
        out_stem.with_name(out_stem.name + ".ckpt.pt") if out_stem else None)
    log_path = Path(cfg.log_path) if cfg.log_path else (
        out_stem.with_name(out_stem.name + ".log.jsonl") if out_stem else None)

    sampler = PatchSampler(train_scenes, cfg.patch, cfg.batch_size, cfg.snr_db, cfg.augment, rng)
    step = 0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"student": None, "teacher": None}

    if cfg.resume:
        if ckpt_path is None or not ckpt_path.is_file():
            raise CsakdError(f"--resume was given but there is no checkpoint at '{ckpt_path}'.")
        ck = load_checkpoint(ckpt_path)
        if ck.get("version") != CKPT_VERSION or ck.get("student_cfg") != s_cfg.to_dict():
            raise CsakdError(f"The checkpoint '{ckpt_path}' was made for another network or data "
                             "(bands, scale, preset differ); train without --resume or use another --out.")
        student.load_state_dict(ck["student"])
        opt_s.load_state_dict(ck["opt_s"])
        sched_s.load_state_dict(ck["sched_s"])
        if cfg.mode == "online":
            if ck.get("teacher") is None:
                raise CsakdError(f"The checkpoint '{ckpt_path}' has no teacher (other mode); cannot resume "
                                 "online co-training from it.")
            teacher.load_state_dict(ck["teacher"])
            opt_t.load_state_dict(ck["opt_t"])
            sched_t.load_state_dict(ck["sched_t"])
        step = int(ck["step"])
        history = list(ck.get("history", []))
        best = ck.get("best", best)
        torch.set_rng_state(ck["rng_torch"])
        if ck.get("rng_cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["rng_cuda"])
        _set_np_rng_state(rng, ck["rng_numpy"])
        log.info("resumed from %s at step %d", ckpt_path, step)

    baseline = baseline_metrics(val_scenes) if val_scenes else {}

    def write_log(rec: dict[str, Any]) -> None:
        rec = {"time": round(time.time() - t_start, 3), **rec}
        line = json.dumps(rec, allow_nan=True)
        log.debug(line)
        if log_path is not None:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def checkpoint() -> None:
        if ckpt_path is None:
            return
        save_checkpoint(ckpt_path, {
            "version": CKPT_VERSION, "step": step, "train_cfg": cfg.to_dict(),
            "student_cfg": s_cfg.to_dict(), "teacher_cfg": t_cfg.to_dict(),
            "student": student.state_dict(), "opt_s": opt_s.state_dict(), "sched_s": sched_s.state_dict(),
            "teacher": teacher.state_dict() if cfg.mode == "online" else None,
            "opt_t": opt_t.state_dict() if opt_t is not None else None,
            "sched_t": sched_t.state_dict() if sched_t is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "rng_numpy": _np_rng_state(rng), "history": history, "best": best})

    def validate() -> dict[str, Any]:
        rec: dict[str, Any] = {"event": "val", "step": step}
        student.eval()
        rec["student"] = evaluate_scenes(pair.student_forward, val_scenes, device, amp_dtype)
        student.train()
        if teacher is not None and cfg.mode == "online":
            teacher.eval()
            rec["teacher"] = evaluate_scenes(pair.teacher_forward, val_scenes, device, amp_dtype)
            teacher.train()
        for role in ("student", "teacher"):
            if role in rec:
                sc_ = score(rec[role], cfg.sam_weight)
                if best[role] is None or sc_ > best[role]["score"]:
                    model = student if role == "student" else teacher
                    best[role] = {"score": sc_, "step": step, "metrics": rec[role], "state": _state_to_cpu(model)}
        history.append({k: v for k, v in rec.items()})
        write_log(rec)
        return rec

    def autocast():
        if use_amp:
            return torch.autocast("cuda", dtype=amp_dtype)
        return torch.autocast("cpu", enabled=False)

    def opt_step(model: Any, opt: Any, sched: Any, scaler: Any, loss: Any) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()

    write_log({"event": "start", "device": device, "mode": cfg.mode, "steps": cfg.steps, "start_step": step,
               "train_scenes": [sc.name for sc in train_scenes], "val_scenes": [sc.name for sc in val_scenes],
               "baseline_bicubic": baseline, "teacher_cfg": t_cfg.to_dict(), "student_cfg": s_cfg.to_dict()})
    bar = None
    if cfg.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.preset} ({device})", unit="step",
                   dynamic_ncols=True)
    student.train()
    if teacher is not None and cfg.mode == "online":
        teacher.train()
    last_val_psnr = float("nan")
    if cfg.val_at_start and val_scenes and step == 0:
        last_val_psnr = validate()["student"]["psnr"]
    try:
        while step < cfg.steps:
            if cancel is not None and cancel():
                checkpoint()
                raise CancelledError()
            batch = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in sampler.sample().items()}
            rec: dict[str, Any] = {"event": "train", "step": step + 1}
            out_t = None
            if cfg.mode == "online":
                with autocast():
                    out_t = pair.teacher_forward(batch)
                    loss_t, parts_t = pair.teacher_loss(out_t, batch)
                opt_step(teacher, opt_t, sched_t, scaler_t, loss_t)
                out_t = (out_t[0].detach(), out_t[1].detach())
                rec["teacher"] = parts_t
            elif cfg.mode == "offline":
                with torch.no_grad(), autocast():
                    out_t = pair.teacher_forward(batch)
            with autocast():
                out_s = pair.student_forward(batch)
                loss_s, parts_s = pair.student_loss(out_s, out_t, batch)
            if not math.isfinite(parts_s["total"]):
                raise CsakdError(f"The student loss became {parts_s['total']} at step {step + 1}: lower the "
                                 "learning rate or check the input data for invalid values.")
            opt_step(student, opt_s, sched_s, scaler_s, loss_s)
            rec["student"] = parts_s
            rec["lr"] = sched_s.get_last_lr()[0]
            step += 1
            if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
                write_log(rec)
            if val_scenes and (step % max(1, cfg.val_every) == 0 or step == cfg.steps):
                last_val_psnr = validate()["student"]["psnr"]
                checkpoint()
            elif ckpt_path is not None and step % max(1, cfg.val_every) == 0:
                checkpoint()
            if bar is not None:
                post = {"loss_s": f"{parts_s['total']:.4f}"}
                if "teacher" in rec:
                    post["loss_t"] = f"{rec['teacher']['total']:.4f}"
                if math.isfinite(last_val_psnr):
                    post["val_psnr"] = f"{last_val_psnr:.2f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if progress is not None:
                progress(step / cfg.steps, f"step {step}/{cfg.steps} loss {parts_s['total']:.4f}")
    finally:
        if bar is not None:
            bar.close()
    checkpoint()

    # ---- export the best (by validation) or last weights
    for role, model in (("student", student), ("teacher", teacher if cfg.mode == "online" else None)):
        if model is not None and best.get(role) is not None:
            model.load_state_dict(best[role]["state"])
    student_path = teacher_path = None
    if out_stem is not None:
        norm_card: dict[str, Any] = {"type": "none"}
        if norm_np is not None:
            norm_card = {"type": "per_band", **{k: [float(x) for x in v] for k, v in norm_np.items()}}
        for role, model in (("student", student), ("teacher", teacher if cfg.mode == "online" else None)):
            if model is None:
                continue
            b = best.get(role)
            card = copy.deepcopy(cfg.card)
            card.update({
                "name": card.get("name") or f"{out_stem.name}_{role}", "role": role,
                "hsi": {"bands": n_h, "wavelengths": list(wavelengths) if wavelengths is not None else None,
                        "fwhm": list(fwhm) if fwhm is not None else None,
                        "sensor": card.get("hsi_sensor")},
                "msi": {"bands": n_m, **(msi_info or {})},
                "normalization": norm_card,
                "training": {**card.get("training", {}), "preset": cfg.preset, "mode": cfg.mode,
                             "steps": step, "train_scenes": [sc.name for sc in train_scenes],
                             "val_scenes": [sc.name for sc in val_scenes],
                             "protocol": "Wald : blur sigma s/2 + s x s block mean; SRF-synthesised MSI",
                             "loss": weights.to_dict(), "config": cfg.to_dict(),
                             "offline_teacher": cfg.teacher_path if cfg.mode == "offline" else None},
                "validation": {"best_step": b["step"] if b else step, "metrics": b["metrics"] if b else {},
                               "baseline_bicubic": baseline, "scenes": [sc.name for sc in val_scenes]},
            })
            card.pop("hsi_sensor", None)
            if cfg.residual == "base":
                card["base_method"] = cfg.base_method  # the classical fusion the net corrects
            card["training"]["config"].pop("card", None)
            export = getattr(model, "export_module", None)  # DODN: the student without its KD adapter
            path, _ = save_model(out_stem.with_name(f"{out_stem.name}_{role}"), export() if export else model, card)
            if role == "student":
                student_path = path
            else:
                teacher_path = path
    student.eval()
    if teacher is not None:
        teacher.eval()
    b = best.get("student")
    result = TrainResult(student_path=student_path, teacher_path=teacher_path,
                         best_step=b["step"] if b else step, best_metrics={
                             "student": b["metrics"] if b else {},
                             "teacher": best["teacher"]["metrics"] if best.get("teacher") else {}},
                         baseline_metrics=baseline, history=history, steps_done=step,
                         elapsed_s=time.time() - t_start, device=device)
    write_log({"event": "end", "best_step": result.best_step, "best": result.best_metrics,
               "baseline_bicubic": baseline, "student_path": str(student_path) if student_path else None,
               "teacher_path": str(teacher_path) if teacher_path else None})
    return result

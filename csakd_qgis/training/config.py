"""The options of a training run: one base shared by reference co-training and single-student fitting, one check.

:class:`LoopConfig` holds what every run of the one loop needs (network size, stop rule, optimiser, batches,
validation, device); :class:`TrainConfig` (teacher/student co-training, :mod:`training.cotrain`) and
:class:`FitConfig` (one student, :mod:`training.fit`) add their own options and defaults. Each config is
checked when it is made and again by the trainer (:meth:`LoopConfig.check`), with the same rules.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from csakd_qgis.errors import CsakdError
from csakd_qgis.nets.pairs import PAIRS

PRESETS = ("lite", "paper")
MODES = ("online", "offline", "student")
NORMALIZATIONS = ("none", "per_band")
INIT_AUTO, INIT_SCRATCH = "auto", "scratch"


@dataclass
class LoopConfig:
    """Options every training run shares (JSON-serialisable via :meth:`to_dict`).

    ``steps``: maximum number of optimizer steps (0 = until the budget); ``budget_min``: wall-clock limit of the
    loop in minutes (0 = none); one of them must be set. The learning rate decays from ``lr`` to
    ``lr * min_lr_ratio``; the best weights are those with the highest ``PSNR - sam_weight * SAM``.
    """

    preset: str = "lite"  # network size of a new network
    steps: int = 0
    budget_min: float = 0.0
    batch_size: int = 8
    patch: int = 32  # HR (target) patch size, rounded down to a multiple of the scale
    lr: float = 1e-4
    weight_decay: float = 1e-4
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 1.0
    snr_db: float | None = None  # AWGN on the LR-HSI during training; None = clean
    augment: bool = True
    base_method: str = "glp"  # classical fusion a "base" residual network corrects
    loss: dict[str, Any] = field(default_factory=dict)  # LossWeights fields
    val_every: int = 200  # validate every N steps
    sam_weight: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | gpu | mps (nets.device.resolve_device)
    threads: int | None = None

    def __post_init__(self) -> None:
        self.check()

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
        if self.preset not in PRESETS:
            raise CsakdError(f"Unknown preset '{self.preset}': use 'lite' or 'paper'.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclass
class TrainConfig(LoopConfig):
    """Reference training of a teacher/student pair (:func:`training.cotrain.train`): a step count with a cosine
    schedule over it, optionally cut short by ``budget_min``."""

    steps: int = 2000
    snr_db: float | None = 35.0
    arch: str = "csakd"  # a key of nets.pairs.PAIRS: csakd (fusion) | dodn (single-image SR, MSI privileged)
    mode: str = "online"  # online co-training | offline (frozen teacher) | student (no KD, ablation)
    teacher_path: str | None = None  # offline mode: a saved teacher (.safetensors/.json/stem)
    residual: str = "bilinear"
    csa: str = "corrected"
    upsample: str = "nearest"
    zero_head: bool = True  # zero-init the last head conv: start from the residual image (measured +0.7 dB)
    normalization: str = "none"  # none | per_band (statistics from the training scenes)
    log_every: int = 20
    val_at_start: bool = False  # validate the initial weights too (a zero-head "base" net = the classical estimate)
    amp: bool = True  # autocast on CUDA (see amp_dtype)
    amp_dtype: str = "auto"  # auto (bf16 where supported, else fp16) | bf16 | fp16 (fp16 uses grad scaling)
    out: str | None = None  # export stem: <out>_student / <out>_teacher (.safetensors + .json)
    checkpoint: str | None = None  # default <out>.ckpt.pt
    log_path: str | None = None  # JSON lines; default <out>.log.jsonl
    resume: bool = False
    progress_bar: bool = True
    card: dict[str, Any] = field(default_factory=dict)  # extra card fields: name, licence, training ...

    def check(self) -> None:
        """The shared rules, then the co-training ones (mode, teacher, normalization, architecture, steps >= 1)."""
        if self.mode not in MODES:
            raise CsakdError(f"Training mode must be one of {MODES}, got {self.mode!r}.")
        if self.mode == "offline" and not self.teacher_path:
            raise CsakdError("Offline mode needs a trained teacher: give its model path (--teacher).")
        if self.steps < 1 or self.batch_size < 1:
            raise CsakdError("steps and batch size must be >= 1.")
        super().check()
        if self.normalization not in NORMALIZATIONS:
            raise CsakdError(f"normalization must be 'none' or 'per_band', got {self.normalization!r}.")
        if self.arch not in PAIRS:
            raise CsakdError(f"arch must be one of {', '.join(repr(a) for a in PAIRS)}, got {self.arch!r}.")


@dataclass
class FitConfig(LoopConfig):
    """Time-bounded fine-tuning of one student (:func:`training.fit.fit_student`): a budget in minutes, a cosine
    over the fraction of the budget (or of the steps) used, a linear warm-up and a held-out validation strip."""

    budget_min: float = 5.0
    patch: int = 24
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    val_every: int = 25  # validate every N steps ...
    init: str = INIT_AUTO  # auto (closest zoo model, else scratch) | scratch | zoo model name | model path
    warmup_steps: int = 50  # linear warm-up: the first Adam steps of a zero-initialised head are noisy
    val_fraction: float = 0.2
    val_every_s: float = 0.0  # ... or every N seconds (0 = budget / 12)

    def check(self) -> None:
        """The shared rules, then the held-out fraction."""
        super().check()
        if not 0.05 <= self.val_fraction <= 0.5:
            raise CsakdError(f"The validation fraction must be between 0.05 and 0.5 (got {self.val_fraction}).")


__all__ = ["INIT_AUTO", "INIT_SCRATCH", "MODES", "PRESETS", "FitConfig", "LoopConfig", "TrainConfig"]

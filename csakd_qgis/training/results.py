"""What training runs return: one base (steps, stop reason, time, validation records) and the same names everywhere.

:class:`LoopResult` is the loop's; :class:`TrainedResult` adds what every trainer reports about its best
network (step, validation metrics, baselines, device, messages); :class:`TrainResult` (co-training),
:class:`FitResult` (one student, in memory) and :class:`TrainRunResult` (a written adapted model) extend it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csakd_qgis.quality.metrics import finite_psnr

SUMMARY_METRICS = ("psnr", "sam", "ergas", "rmse")


@dataclass(kw_only=True)
class RunResult:
    """What a run did: optimizer steps in all, why it stopped, seconds, the validation records."""

    steps: int
    stopped_by: str = "steps"  # "steps" | "budget"
    elapsed_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(kw_only=True)
class LoopResult(RunResult):
    """The loop's result; the networks hold the best validated weights (else the last ones), in eval mode."""

    best: dict[str, Any]  # role -> {"score", "step", "metrics", "state"} or None


@dataclass(kw_only=True)
class TrainedResult(RunResult):
    """A trainer's result: the student's best validation and the baselines it is compared with."""

    best_step: int
    best_metrics: dict[str, Any]  # the student's validation metrics at best_step
    baseline_metrics: dict[str, dict[str, float]]  # baseline name (bicubic, the base method) -> metrics
    device_used: str
    messages: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class TrainResult(TrainedResult):
    """What reference co-training exported (paths None when nothing was exported)."""

    student_path: Path | None
    teacher_path: Path | None
    teacher_metrics: dict[str, Any] = field(default_factory=dict)  # the teacher's best validation, if trained


@dataclass(kw_only=True)
class FitResult(TrainedResult):
    """What single-student fitting produced (the model holds the best weights, in eval mode)."""

    model: Any
    card: dict[str, Any]  # card template for save_model (role, hsi, msi, normalization, training ...)
    start_metrics: dict[str, float]
    init: str  # "scratch" or the source model's name


@dataclass(kw_only=True)
class TrainRunResult(TrainedResult):
    """What :func:`training.adapt.adapt` / :func:`training.adapt.train_references` wrote and measured."""

    model_path: str
    card_path: str
    fused_path: str | None
    start_metrics: dict[str, float]
    init: str
    scale: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def val_psnr(self) -> float:
        """Best validation PSNR (dB), finite."""
        return finite_psnr(self.best_metrics)

    @property
    def val_sam(self) -> float:
        """Best validation SAM (degrees)."""
        return float(self.best_metrics["sam"])

    @classmethod
    def of_fit(cls, fit: FitResult, model_path: str, card_path: str, scale: int, timings: dict[str, float],
               messages: list[str], fused_path: str | None = None) -> TrainRunResult:
        """The result of a driver that wrote the fitted model ``fit`` (and maybe fused with it)."""
        return cls(model_path=model_path, card_path=card_path, fused_path=fused_path,
                   start_metrics=fit.start_metrics, best_metrics=fit.best_metrics,
                   baseline_metrics=fit.baseline_metrics, device_used=fit.device_used, init=fit.init,
                   steps=fit.steps, best_step=fit.best_step, stopped_by=fit.stopped_by, scale=scale,
                   elapsed_s=timings.get("total_s", 0.0), history=fit.history, timings=timings, messages=messages)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary for the CLI and logs."""

        def short(m: dict[str, float]) -> dict[str, float]:
            out = {k: round(float(m[k]), 4) for k in SUMMARY_METRICS if k in m}
            if "psnr" in m:
                out["psnr"] = round(finite_psnr(m), 4)
            return out

        return {"model": self.model_path, "card": self.card_path, "fused": self.fused_path, "init": self.init,
                "device": self.device_used, "scale": self.scale, "steps": self.steps, "best_step": self.best_step,
                "stopped_by": self.stopped_by, "validation": short(self.best_metrics),
                "validation_start": short(self.start_metrics),
                "validation_baselines": {k: short(v) for k, v in self.baseline_metrics.items()},
                "timings_s": {k: round(v, 2) for k, v in self.timings.items()}}


__all__ = ["FitResult", "LoopResult", "RunResult", "TrainResult", "TrainRunResult", "TrainedResult"]

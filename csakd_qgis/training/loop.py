"""The one training loop: a student (optionally with a co-trained or frozen teacher) on random patch batches.

It stops at a step limit or a time budget, validates every N steps or seconds (and before the first step
if asked), keeps the best weights of each trained network by :func:`validation.score`, checkpoints and
resumes, logs JSON lines, reports progress and honours a cancel callback. Reference KD co-training
(:mod:`training.cotrain`), DODN and scene adaptation (:mod:`training.adapt`) are configurations of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.nets.device import resolve_device
from csakd_qgis.raster.io import write_error
from csakd_qgis.training.checkpoint import (
    CKPT_VERSION,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    state_to_cpu,
)
from csakd_qgis.training.results import LoopResult
from csakd_qgis.training.scenes import PatchSampler, Scene
from csakd_qgis.training.validation import evaluate_scenes, score

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
Cancel = Callable[[], bool]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return a numpy Generator for the data pipeline."""
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def prepare_run(device: str | None, threads: int | None, seed: int) -> tuple[str, np.random.Generator]:
    """Set the torch CPU threads, resolve the device (nets.device) and seed everything: (device, numpy rng)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return resolve_device(device), seed_everything(seed)


def resolve_amp_dtype(amp: bool, amp_dtype: str, device: str) -> Any:
    """The autocast dtype of a training run (None = fp32): bf16 where supported (or asked), else fp16; CUDA only."""
    import torch

    if not (amp and device.startswith("cuda")):
        return None
    if amp_dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp_dtype in ("bf16", "fp16"):
        return torch.bfloat16 if amp_dtype == "bf16" else torch.float16
    raise CsakdError(f"amp_dtype must be auto, bf16 or fp16, got {amp_dtype!r}.")


@dataclass
class Optim:
    """One trained network's AdamW, its learning-rate rule and its gradient scaler (fp16 autocast only).

    ``sched``: a torch scheduler stepped after every step (saved in checkpoints); ``lr_at(step, fraction)``:
    else the learning rate set before every step from the fraction of the steps or budget used.
    """

    opt: Any
    scaler: Any
    sched: Any = None
    lr_at: Callable[[int, float], float] | None = None


def make_optim(model: Any, lr: float, weight_decay: float, cosine_steps: int = 0, min_lr_ratio: float = 0.01,
               lr_at: Callable[[int, float], float] | None = None, grad_scaling: bool = False) -> Optim:
    """AdamW for ``model`` with a cosine schedule over ``cosine_steps`` (torch) or the rule ``lr_at``."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cosine_steps, eta_min=lr * min_lr_ratio
                                                       ) if cosine_steps else None
    return Optim(opt, torch.amp.GradScaler("cuda", enabled=grad_scaling), sched, lr_at)


@dataclass
class LoopOptions:
    """When the loop stops, validates and logs; 0 switches a limit or a trigger off."""

    max_steps: int = 0  # stop after this many optimizer steps in all (resumed runs count the earlier ones)
    budget_s: float = 0.0  # ... or after this many seconds of this loop
    val_every: int = 0  # validate (and checkpoint) when the step is a multiple of this ...
    val_every_s: float = 0.0  # ... or this many seconds after the last validation
    val_at_start: bool = False  # validate the initial weights too (a fresh run only)
    log_every: int = 20
    sam_weight: float = 1.0
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if self.max_steps <= 0 and self.budget_s <= 0:
            raise CsakdError("Give a time budget or a number of steps: with neither, training would never stop.")


def loss_error(total: float, step: int, batch: dict[str, Any]) -> CsakdError:
    """The error for a non-finite training loss: the input data when the batch holds non-finite or implausible
    values (a wrong nodata value or scale factor), else the learning rate."""
    import torch

    worst = max(float(torch.nan_to_num(v.detach().abs(), nan=float("inf")).max()) for v in batch.values())
    if not math.isfinite(worst) or worst > 1e3:
        return CsakdError(f"The training loss became {total} at step {step} because the input data hold non-finite or "
                          f"implausible values (largest |value| {worst:.3g}; reflectance is expected in about 0..1): "
                          "check the rasters' nodata value and scale factor.")
    return CsakdError(f"The training loss became {total} at step {step}: lower the learning rate.")


class Trainer:
    """The training loop of ``pair`` (teacher_forward/student_forward/teacher_loss/student_loss, .teacher/.student).

    The teacher is co-trained when ``teacher_optim`` is given, used frozen for the KD terms when the pair has
    one without an optimizer, and absent otherwise. ``checkpoint_meta`` is saved in every checkpoint; its
    ``resume_keys`` must match on resume.
    """

    def __init__(self, pair: Any, student_optim: Optim, teacher_optim: Optim | None, sampler: PatchSampler,
                 val_scenes: Sequence[Scene], options: LoopOptions, device: str, amp_dtype: Any = None,
                 checkpoint_path: Path | None = None, checkpoint_meta: dict[str, Any] | None = None,
                 resume_keys: Sequence[str] = (), log_path: Path | None = None, t_start: float | None = None,
                 bar_desc: str | None = None, progress: ProgressCallback | None = None, cancel: Cancel | None = None
                 ) -> None:
        self.pair, self.sampler, self.val_scenes, self.opts = pair, sampler, list(val_scenes), options
        self.student, self.teacher = pair.student, pair.teacher
        self.optims = {"student": student_optim, "teacher": teacher_optim}
        self.device, self.amp_dtype = device, amp_dtype
        self.ckpt_path, self.log_path = checkpoint_path, log_path
        self._log_existed = log_path is not None and log_path.exists()
        self.meta = {"version": CKPT_VERSION, **(checkpoint_meta or {})}
        self.resume_keys = ("version", *resume_keys)
        self.t_start = time.time() if t_start is None else t_start
        self.bar_desc, self.progress, self.cancel = bar_desc, progress, cancel
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"student": None, "teacher": None}
        self._last_val_step, self._last_val_t = -1, 0.0

    # ---------------------------------------------------------------------------------- bookkeeping
    def trained(self) -> list[tuple[str, Any]]:
        """(role, network) of the networks this loop optimises."""
        return [(r, m) for r, m in (("student", self.student), ("teacher", self.teacher))
                if self.optims[r] is not None]

    def write_log(self, rec: dict[str, Any]) -> None:
        """One JSON line (with the seconds since the run started) to the log file and the debug log."""
        line = json.dumps({"time": round(time.time() - self.t_start, 3), **rec}, allow_nan=True)
        log.debug(line)
        if self.log_path is not None:
            try:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError as exc:  # e.g. disk full: one line, and no half log left by this run
                if not self._log_existed:
                    self.log_path.unlink(missing_ok=True)
                raise write_error(self.log_path, "training log", exc) from None

    def save(self) -> None:
        """Checkpoint the networks, optimizers, schedules, random states, history and best weights."""
        if self.ckpt_path is None:
            return
        payload: dict[str, Any] = {**self.meta, "step": self.step}
        for role, key in (("student", "s"), ("teacher", "t")):
            o = self.optims[role]
            payload[role] = getattr(self, role).state_dict() if o is not None else None
            payload[f"opt_{key}"] = o.opt.state_dict() if o is not None else None
            payload[f"sched_{key}"] = o.sched.state_dict() if o is not None and o.sched is not None else None
        payload.update(rng_state(self.sampler.rng), history=self.history, best=self.best)
        save_checkpoint(self.ckpt_path, payload)

    def resume(self) -> None:
        """Continue from the checkpoint: same weights, optimizers, schedules, random states and best so far."""
        p = self.ckpt_path
        if p is None or not p.is_file():
            raise CsakdError(f"--resume was given but there is no checkpoint at '{p}'.")
        ck = load_checkpoint(p)
        if any(ck.get(k) != self.meta.get(k) for k in self.resume_keys):
            raise CsakdError(f"The checkpoint '{p}' was made for another network or data "
                             "(bands, scale, preset differ); train without --resume or use another --out.")
        for role, model in self.trained():
            if ck.get(role) is None:
                raise CsakdError(f"The checkpoint '{p}' has no {role} (other mode); cannot resume online "
                                 "co-training from it.")
            key = role[0]
            model.load_state_dict(ck[role])
            self.optims[role].opt.load_state_dict(ck[f"opt_{key}"])
            if self.optims[role].sched is not None:
                self.optims[role].sched.load_state_dict(ck[f"sched_{key}"])
        self.step = int(ck["step"])
        self.history = list(ck.get("history", []))
        self.best = ck.get("best", self.best)
        restore_rng_state(ck, self.sampler.rng)
        log.info("resumed from %s at step %d", p, self.step)

    def validate(self) -> dict[str, Any]:
        """Validate the student (and a co-trained teacher); keep each one's best weights by score."""
        rec: dict[str, Any] = {"event": "val", "step": self.step}
        for role, model in self.trained():
            forward = self.pair.student_forward if role == "student" else self.pair.teacher_forward
            model.eval()
            rec[role] = evaluate_scenes(forward, self.val_scenes, self.device, self.amp_dtype)
            model.train()
            sc = score(rec[role], self.opts.sam_weight)
            if self.best[role] is None or sc > self.best[role]["score"]:
                self.best[role] = {"score": sc, "step": self.step, "metrics": rec[role], "state": state_to_cpu(model)}
        self.history.append(dict(rec))
        self.write_log(rec)
        self._last_val_step, self._last_val_t = self.step, time.perf_counter()
        return rec

    # ----------------------------------------------------------------------------------------- step
    def _autocast(self) -> Any:
        import torch

        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _optimise(self, role: str, loss: Any) -> None:
        import torch

        o, model = self.optims[role], getattr(self, role)
        o.opt.zero_grad(set_to_none=True)
        o.scaler.scale(loss).backward()
        if self.opts.grad_clip:
            o.scaler.unscale_(o.opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.opts.grad_clip)
        o.scaler.step(o.opt)
        o.scaler.update()
        if o.sched is not None:
            o.sched.step()

    def train_step(self, fraction: float) -> dict[str, Any]:
        """One optimizer step of each trained network on a fresh batch; returns its log record."""
        import torch

        for o in self.optims.values():
            if o is not None and o.lr_at is not None:
                for g in o.opt.param_groups:
                    g["lr"] = o.lr_at(self.step, fraction)
        batch = {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in self.sampler.sample().items()}
        rec: dict[str, Any] = {"event": "train", "step": self.step + 1}
        out_t = None
        if self.optims["teacher"] is not None:
            with self._autocast():
                out_t = self.pair.teacher_forward(batch)
                loss_t, rec["teacher"] = self.pair.teacher_loss(out_t, batch)
            self._optimise("teacher", loss_t)
            out_t = (out_t[0].detach(), out_t[1].detach())
        elif self.teacher is not None:
            with torch.no_grad(), self._autocast():
                out_t = self.pair.teacher_forward(batch)
        with self._autocast():
            out_s = self.pair.student_forward(batch)
            loss_s, parts_s = self.pair.student_loss(out_s, out_t, batch)
        if not math.isfinite(parts_s["total"]):
            raise loss_error(parts_s["total"], self.step + 1, batch)
        self._optimise("student", loss_s)
        rec["student"] = parts_s
        rec["lr"] = self.optims["student"].opt.param_groups[0]["lr"]
        self.step += 1
        return rec

    # ------------------------------------------------------------------------------------------ run
    def _fraction(self, elapsed: float) -> float:
        o = self.opts
        return min(1.0, max(self.step / o.max_steps if o.max_steps else 0.0,
                            elapsed / o.budget_s if o.budget_s else 0.0))

    def _report(self, rec: dict[str, Any], bar: Any, elapsed: float) -> None:
        loss = rec["student"]["total"]
        best = self.best["student"]
        if bar is not None:
            post = {"loss_s": f"{loss:.4f}"}
            if "teacher" in rec:
                post["loss_t"] = f"{rec['teacher']['total']:.4f}"
            if self.history:
                post["val_psnr"] = f"{self.history[-1]['student']['psnr']:.2f}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
        if self.progress is not None:
            msg = f"step {self.step}" + (f"/{self.opts.max_steps}" if self.opts.max_steps else "")
            msg += f": loss {loss:.4f}"
            if best is not None:
                msg += f", best val PSNR {best['metrics']['psnr']:.2f} dB (step {best['step']})"
            self.progress(self._fraction(elapsed), msg)

    def _stop(self, elapsed: float) -> str | None:
        o = self.opts
        if o.budget_s and elapsed >= o.budget_s:
            return "budget"
        if o.max_steps and self.step >= o.max_steps:
            return "steps"
        return None

    def run(self) -> LoopResult:
        """Train until the step limit or the budget; validate at the end too; put the best weights back."""
        o = self.opts
        t_loop = time.perf_counter()
        bar = None
        if self.bar_desc is not None:
            from tqdm.auto import tqdm

            bar = tqdm(total=o.max_steps or None, initial=self.step, desc=self.bar_desc, unit="step",
                       dynamic_ncols=True)
        for _, model in self.trained():
            model.train()
        self._last_val_step, self._last_val_t = self.step, t_loop
        if o.val_at_start and self.val_scenes and self.step == 0:
            self.validate()
        try:
            while (stopped_by := self._stop(time.perf_counter() - t_loop)) is None:
                if self.cancel is not None and self.cancel():
                    self.save()
                    raise CancelledError()
                rec = self.train_step(self._fraction(time.perf_counter() - t_loop))
                if self.step % max(1, o.log_every) == 0 or self.step == o.max_steps:
                    self.write_log(rec)
                at_multiple = bool(o.val_every) and self.step % o.val_every == 0
                if self.val_scenes and (at_multiple or (
                        o.val_every_s and time.perf_counter() - self._last_val_t >= o.val_every_s)):
                    self.validate()
                    self.save()
                elif at_multiple:
                    self.save()
                self._report(rec, bar, time.perf_counter() - t_loop)
        finally:
            if bar is not None:
                bar.close()
        if self.val_scenes and self._last_val_step != self.step:
            self.validate()
        self.save()
        for role, model in self.trained():
            if self.best.get(role) is not None:
                model.load_state_dict(self.best[role]["state"])
        for model in (self.student, self.teacher):
            if model is not None:
                model.eval()
        return LoopResult(steps=self.step, stopped_by=stopped_by, best=self.best, history=self.history,
                          elapsed_s=time.perf_counter() - t_loop)

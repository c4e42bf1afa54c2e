"""The one training loop: time-budget stop for KD co-training and scene adaptation, progress and cancel, the
device resolver's refusals in training, and the pair registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.nets.pairs import PAIRS, CSAKDPair, DODNPair
from csakd_qgis.spectral.degrade import wald_degrade
from csakd_qgis.training.checkpoint import load_checkpoint
from csakd_qgis.training.config import FitConfig, TrainConfig
from csakd_qgis.training.cotrain import train
from csakd_qgis.training.fit import fit_student
from csakd_qgis.training.loop import LoopOptions
from csakd_qgis.training.scenes import Scene, attach_bases, split_scene
from csakd_qgis.zoo.card import read_card

torch.set_num_threads(2)
# validation strips narrower than the 11 px SSIM window give SSIM = NaN: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
HAS_MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _scene(name: str, seed: int, bands: int = 8, size: int = 16, scale: int = 4) -> Scene:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    abund = np.stack([np.sin(5 * xx + seed) ** 2, np.cos(4 * yy) ** 2, xx * yy]).astype(np.float32)
    hr = np.einsum("bk,khw->bhw", rng.uniform(0.05, 0.6, (bands, 3)).astype(np.float32), abund) / 2
    srf = rng.uniform(0, 1, (3, bands))
    msi = np.einsum("mb,bhw->mhw", srf / srf.sum(1, keepdims=True), hr).astype(np.float32)
    return Scene(name, hr, wald_degrade(hr, scale), msi)


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(preset="lite", steps=6, batch_size=2, patch=8, lr=1e-3, val_every=3, log_every=1, threads=2,
                out=str(out), progress_bar=False, seed=3, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _fit_data() -> tuple[list[Scene], list[Scene]]:
    whole = _scene("w", 5, size=24)
    attach_bases([whole], "glp")
    tr, va = split_scene(whole, 0.25)
    return [tr], [va]


def test_kd_co_training_stops_at_the_time_budget_and_validates_the_last_step(tmp_path):
    res = train([_scene("a", 0)], [_scene("v", 2)], _cfg(tmp_path / "m", steps=100_000, val_every=1000,
                                                         budget_min=1.0 / 60))
    assert res.stopped_by == "budget" and 0 < res.steps < 100_000
    assert res.history[-1]["step"] == res.steps  # the stop step is validated too
    assert {"student", "teacher"} <= set(res.history[-1])
    card = read_card(res.student_path)
    assert card["training"]["steps"] == res.steps and card["training"]["config"]["budget_min"] == 1.0 / 60
    assert card["validation"]["best_step"] == res.best_step
    assert load_checkpoint(tmp_path / "m.ckpt.pt")["step"] == res.steps
    # the step limit still stops first when it comes first
    res = train([_scene("a", 0)], [], _cfg(tmp_path / "s", steps=2, budget_min=10.0, mode="student"))
    assert res.stopped_by == "steps" and res.steps == 2


def test_kd_progress_is_monotone_and_cancel_checkpoints(tmp_path):
    seen: list[tuple[float, str]] = []
    train([_scene("a", 0)], [_scene("v", 2)], _cfg(tmp_path / "m", steps=4, val_every=2),
          progress=lambda f, m: seen.append((f, m)))
    fracs = [f for f, _ in seen]
    assert len(seen) == 4 and fracs == sorted(fracs) and fracs[-1] == 1.0
    assert seen[0][1].startswith("step 1/4: loss ") and "best val PSNR" in seen[-1][1]
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        train([_scene("a", 0)], [], _cfg(tmp_path / "c", steps=4), cancel=cancel)
    assert load_checkpoint(tmp_path / "c.ckpt.pt")["step"] == 2
    log = [json.loads(x) for x in (tmp_path / "c.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "train"] == [1, 2]


def test_adaptation_stops_at_its_budget_and_never_ends_below_its_start():
    tr, va = _fit_data()
    fit = fit_student(tr, va, FitConfig(budget_min=2.0 / 60, steps=0, val_every=1000, device="cpu", batch_size=2,
                                        patch=8, threads=2, warmup_steps=2))
    assert fit.stopped_by == "budget" and fit.steps > 0 and fit.init == "scratch"
    assert fit.history[0]["step"] == 0 and fit.history[-1]["step"] == fit.steps
    assert len(fit.history) >= 3  # start, every budget / 12 seconds, and the last step
    score = [h["psnr"] - h["sam"] for h in fit.history]
    assert fit.best_metrics["psnr"] - fit.best_metrics["sam"] == pytest.approx(max(score))
    assert max(score) >= score[0]
    assert fit.card["training"]["steps"] == fit.steps and not fit.model.training


@pytest.mark.skipif(HAS_MPS, reason="this torch has MPS: the refusal cannot be seen here")
def test_training_refuses_mps_clearly_where_torch_has_none(tmp_path):
    with pytest.raises(CsakdError, match="'mps' was requested"):
        train([_scene("a", 0)], [], _cfg(tmp_path / "m", device="mps"))
    tr, va = _fit_data()
    with pytest.raises(CsakdError, match="'mps' was requested"):
        fit_student(tr, va, FitConfig(budget_min=0.0, steps=1, device="mps"))
    with pytest.raises(CsakdError, match="cuda:7"):
        train([_scene("a", 0)], [], _cfg(tmp_path / "m", device="cuda:7"))


def test_the_loop_needs_a_stop_rule_and_the_pairs_come_from_the_registry():
    with pytest.raises(CsakdError, match="never stop"):
        LoopOptions(max_steps=0, budget_s=0.0)
    assert PAIRS == {"csakd": CSAKDPair, "dodn": DODNPair}
    for arch, pair in PAIRS.items():
        t_cfg, s_cfg = pair.preset_configs("lite", 12, 4, 4, residual="bicubic", zero_head=True)
        student = pair.build(s_cfg)
        assert student.cfg.arch == t_cfg.arch == arch == pair.arch
    with pytest.raises(CsakdError, match="'csakd', 'dodn'"):
        TrainConfig(arch="unet")
    with pytest.raises(CsakdError, match="budget"):
        TrainConfig(budget_min=-1.0)

"""DODN-style single-image SR (our reconstruction from the DODN abstract): nets, KD losses, training through the one engine,
export without the adapter/teacher, the model card, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: E402  (installed by make setup)
from _helpers_cli import run_cli

from csakd_qgis.errors import CsakdError  # noqa: E402
from csakd_qgis.nets.dodn import (
    DODNConfig,
    DODNStudent,
    DODNStudentKD,
    DODNTeacher,
    bicubic_upsample,
    build_model,
    build_training_model,
    dodn_complexity,
    preset_complexity,
    preset_configs,
)
from csakd_qgis.nets.losses import LossWeights  # noqa: E402
from csakd_qgis.nets.pairs import DODNPair
from csakd_qgis.training.config import TrainConfig  # noqa: E402
from csakd_qgis.training.cotrain import train  # noqa: E402
from csakd_qgis.training.scenes import Scene  # noqa: E402
from csakd_qgis.zoo.card import load_model, model_paths, read_card  # noqa: E402

TINY = dict(nf=8, n_blocks=1, c3d=2, depth=4, head_kernel=3)


def _scene(name: str, seed: int, bands: int = 12, size: int = 16, scale: int = 4) -> Scene:
    """A smooth random Wald scene with a 4-band 'MSI' (band averages) on one grid."""
    from csakd_qgis.spectral.degrade import wald_degrade

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.2 + 0.1 * np.sin(6 * xx + seed) * np.cos(4 * yy)
    hr = np.stack([base * (1 + 0.05 * b) + 0.01 * rng.random((size, size)) for b in range(bands)]).astype(np.float32)
    msi = np.stack([hr[i::4].mean(0) for i in range(4)]).astype(np.float32)
    return Scene(name, hr, wald_degrade(hr, scale), msi)


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(preset="lite", arch="dodn", steps=3, batch_size=2, patch=8, lr=1e-3, val_every=2, threads=2,
                seed=0, device="cpu", out=str(tmp_path / "m"), progress_bar=False, residual="bicubic")
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------------- nets
@pytest.mark.parametrize("s", [2, 3, 4])
def test_student_and_teacher_shapes_any_scale(s):
    t_cfg, s_cfg = preset_configs("lite", 218, 4, s)
    student = build_model(s_cfg)
    teacher = build_model(t_cfg)
    assert isinstance(student, DODNStudent) and isinstance(teacher, DODNTeacher)
    lr = torch.rand(2, 218, 5, 7)
    with torch.no_grad():
        y, f = student(lr)  # LR-HSI only: no MSI argument exists
        assert y.shape == (2, 218, 5 * s, 7 * s) and f.shape == (2, s_cfg.nf, 5 * s, 7 * s)
        yt, ft = teacher(torch.rand(2, 4, 5 * s, 7 * s))
        assert yt.shape == (2, 218, 5 * s, 7 * s) and ft.shape == (2, t_cfg.nf, 5 * s, 7 * s)
        kd = build_training_model(s_cfg)
        assert isinstance(kd, DODNStudentKD)
        y2, fa = kd(lr)
        assert fa.shape == (2, t_cfg.nf, 5 * s, 7 * s)  # adapter maps F_S to the teacher's width


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_residual_matches_the_project_bicubic_and_zero_head_starts_there(s):
    from csakd_qgis.raster.resample import upsample_bicubic

    x = np.random.default_rng(s).random((6, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(bicubic_upsample(torch.from_numpy(x), s).numpy(), upsample_bicubic(x, s), atol=1e-6)
    student = build_model(DODNConfig(hsi_bands=6, msi_bands=3, scale=s, **TINY))
    with torch.no_grad():
        y, _ = student(torch.from_numpy(x)[None])
    np.testing.assert_allclose(y[0].numpy(), upsample_bicubic(x, s), atol=1e-6)


def test_config_roundtrip_and_validation():
    cfg = DODNConfig(hsi_bands=10, msi_bands=4, scale=3, **TINY)
    assert DODNConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown"):
        DODNConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="residual"):
        DODNConfig(hsi_bands=10, msi_bands=4, net="teacher", residual="bicubic")
    with pytest.raises(ValueError, match="scale"):
        DODNConfig(hsi_bands=10, msi_bands=4, scale=1)
    with pytest.raises(ValueError):
        preset_configs("lite", 10, 4, 4, residual="base")
    with pytest.raises(ValueError, match="preset"):
        preset_configs("huge", 10, 4, 4)


def test_presets_complexity():
    lite = preset_complexity("lite", 218, 4, 4)
    paper = preset_complexity("paper", 218, 4, 4)  # meta device: nothing is computed
    assert lite["student"]["params"] < paper["student"]["params"]
    assert lite["student"]["macs"] < lite["teacher"]["macs"] / 5  # the student runs at LR
    assert paper["student"]["macs"] < paper["teacher"]["macs"]
    cfg = preset_configs("lite", 218, 4, 4)[1]
    assert dodn_complexity(cfg)["params"] == sum(p.numel() for p in build_model(cfg).parameters())


def test_pair_losses_kd_terms():
    t_cfg, s_cfg = preset_configs("lite", 12, 4, 4, **TINY)
    pair = DODNPair(build_model(t_cfg), build_training_model(s_cfg), LossWeights())
    sc = _scene("a", 0)
    batch = {k: torch.from_numpy(v)[None] for k, v in (("lr", sc.lr), ("msi", sc.msi), ("hr", sc.hr))}
    out_s, out_t = pair.student_forward(batch), pair.teacher_forward(batch)
    assert out_s[1].shape == out_t[1].shape
    _, parts = pair.student_loss(out_s, out_t, batch)
    assert {"l1", "sam", "beba", "response_kd", "feat_kd", "total"} <= set(parts)
    expect = float((out_s[1] - out_t[1]).abs().mean().detach())
    assert parts["feat_kd"] == pytest.approx(expect, rel=1e-5)  # L1 feature matching (DODN-style)
    _, parts = pair.student_loss(out_s, None, batch)
    assert "feat_kd" not in parts and "response_kd" not in parts
    pair.weights = LossWeights(feat_kd_kind="none")
    _, parts = pair.student_loss(out_s, out_t, batch)
    assert "feat_kd" not in parts and "response_kd" in parts
    loss_t, parts_t = pair.teacher_loss(out_t, batch)
    assert loss_t.requires_grad and parts_t["total"] > 0


# ------------------------------------------------------------------------------------------- training
def _tiny_presets(monkeypatch):
    """Shrink the lite preset so engine tests take a second."""
    from csakd_qgis.nets import dodn

    orig = dodn.preset_configs

    def tiny(name, hsi_bands, msi_bands, scale, **overrides):
        t, s = orig(name, hsi_bands, msi_bands, scale, **overrides)
        t = DODNConfig.from_dict({**t.to_dict(), "nf": 8, "n_blocks": 1, "kd_width": 8})
        s = DODNConfig.from_dict({**s.to_dict(), **TINY, "kd_width": 8})
        return t, s

    monkeypatch.setattr(dodn, "preset_configs", tiny)


def test_engine_online_export_has_no_adapter_or_teacher(tmp_path, monkeypatch):
    from safetensors import safe_open

    _tiny_presets(monkeypatch)
    res = train([_scene("a", 0), _scene("b", 1)], [_scene("v", 2)], _cfg(tmp_path, mode="online"),
                wavelengths=[500.0 + 40 * i for i in range(12)], msi_info={"sensor": "test", "usage": "privileged"})
    assert res.student_path is not None and res.teacher_path is not None
    _, st_path = model_paths(res.student_path)
    with safe_open(str(st_path), "pt") as f:
        keys = set(f.keys())
    assert keys and not any(k.startswith(("adapter", "net.", "teacher")) for k in keys)
    assert keys == set(DODNStudent(DODNConfig.from_dict(read_card(res.student_path)["config"])).state_dict())
    teacher_keys = set(DODNTeacher(DODNConfig.from_dict(read_card(res.teacher_path)["config"])).state_dict())
    assert "blocks.0.conv1.weight" in teacher_keys and not keys & {k for k in teacher_keys if ".conv1." in k}
    model, card = load_model(res.student_path)
    assert isinstance(model, DODNStudent) and card["arch"] == "dodn" and card["role"] == "student"
    assert card["config"]["net"] == "student" and card["msi"]["usage"] == "privileged"
    t_model, t_card = load_model(res.teacher_path)
    assert isinstance(t_model, DODNTeacher) and t_card["residual"] == "none"
    log = [json.loads(x) for x in Path(str(tmp_path / "m") + ".log.jsonl").read_text().splitlines()]
    train_recs = [r for r in log if r["event"] == "train"]
    assert train_recs and "feat_kd" in train_recs[-1]["student"] and "response_kd" in train_recs[-1]["student"]


def test_engine_offline_and_no_kd_modes(tmp_path, monkeypatch):
    _tiny_presets(monkeypatch)
    scenes, val = [_scene("a", 0)], [_scene("v", 2)]
    res_t = train(scenes, val, _cfg(tmp_path, mode="online", out=str(tmp_path / "t")))
    res = train(scenes, val, _cfg(tmp_path, mode="offline", teacher_path=str(res_t.teacher_path),
                                  out=str(tmp_path / "off")))
    assert res.teacher_path is None and res.student_path is not None
    log = [json.loads(x) for x in (tmp_path / "off.log.jsonl").read_text().splitlines()]
    assert "feat_kd" in [r for r in log if r["event"] == "train"][-1]["student"]
    res = train(scenes, val, _cfg(tmp_path, mode="student", out=str(tmp_path / "nokd")))
    log = [json.loads(x) for x in (tmp_path / "nokd.log.jsonl").read_text().splitlines()]
    last = [r for r in log if r["event"] == "train"][-1]["student"]
    assert "feat_kd" not in last and "response_kd" not in last
    # resume continues the same run
    res2 = train(scenes, val, _cfg(tmp_path, mode="student", out=str(tmp_path / "nokd"), steps=5, resume=True))
    assert res2.steps == 5
    # an offline teacher of the other architecture is refused
    res_c = train(scenes, [], TrainConfig(preset="lite", steps=1, batch_size=1, patch=8, device="cpu",
                                          out=str(tmp_path / "csakd"), progress_bar=False))
    with pytest.raises(CsakdError, match="arch"):
        train(scenes, val, _cfg(tmp_path, mode="offline", teacher_path=str(res_c.teacher_path),
                                out=str(tmp_path / "bad")))
    with pytest.raises(CsakdError, match="residual"):
        train(scenes, val, _cfg(tmp_path, residual="base", out=str(tmp_path / "bad2")))


def test_fusion_engine_refuses_an_sr_model_clearly(tmp_path, monkeypatch):
    from csakd_qgis.fusion.predictors import NetworkPredictor
    from csakd_qgis.zoo.registry import available_models

    _tiny_presets(monkeypatch)
    res = train([_scene("a", 0)], [], _cfg(tmp_path, mode="student"))
    with pytest.raises(CsakdError, match="superresolve"):
        NetworkPredictor(res.student_path, device="cpu")
    monkeypatch.setenv("CSAKD_MODEL_PATH", str(tmp_path))
    assert "m_student" in available_models("dodn") and "m_student" not in available_models()


# ------------------------------------------------------------------------------------------- CLI

def test_cli_model_info_and_train_dodn(tmp_path, capsys, monkeypatch):
    from affine import Affine

    from csakd_qgis.raster.io import write_raster

    assert run_cli(["model-info", "--arch", "dodn", "--preset", "lite", "--hsi-bands", "218", "--scale", "4"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["student"]["params"] < info["teacher"]["params"] * 2 and info["student"]["macs"] > 0
    _tiny_presets(monkeypatch)
    wl = [450.0 + 25 * i for i in range(20)]
    p = tmp_path / "scene.tif"
    write_raster(p, _scene("s", 0, bands=20).hr, "EPSG:32633", Affine(30, 0, 0, 0, -30, 0), wavelengths=wl,
                 fwhm=[10.0] * 20)
    out = tmp_path / "sr"
    assert run_cli(["train", "--arch", "dodn", "--scenes", str(p), "--sensor", "S2A:B2,B3,B4,B8", "--scale", "4",
                    "--steps", "2", "--batch-size", "2", "--patch", "8", "--out", str(out), "--device", "cpu",
                    "--threads", "2", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = read_card(res["student"])
    assert card["arch"] == "dodn" and card["residual"] == "bicubic" and card["hsi"]["wavelengths"] == wl
    assert card["training"]["config"]["arch"] == "dodn" and "privileged" in card["msi"]["usage"]

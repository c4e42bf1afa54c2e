"""Training engine: patch sampling on the s grid, resumable checkpoints, modes, export, and a real
training run on the EnMAP tiles of ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: E402  (installed by make setup)
from _helpers_cli import run_cli

from csakd_qgis.errors import CancelledError, CsakdError  # noqa: E402
from csakd_qgis.spectral.degrade import block_mean, wald_degrade  # noqa: E402
from csakd_qgis.training.checkpoint import load_checkpoint  # noqa: E402
from csakd_qgis.training.config import TrainConfig  # noqa: E402
from csakd_qgis.training.cotrain import train  # noqa: E402
from csakd_qgis.training.scenes import PatchSampler, Scene, make_wald_scenes  # noqa: E402
from csakd_qgis.zoo.card import load_model  # noqa: E402

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
ENMAP = SHARED / "enmap_potsdam"


def synthetic_scene(name: str, seed: int, bands: int = 8, size: int = 16, scale: int = 4) -> Scene:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    abund = np.stack([np.sin(6 * xx + seed) ** 2, np.cos(5 * yy) ** 2, (xx * yy)]).astype(np.float32)
    spectra = rng.uniform(0.05, 0.6, (bands, 3)).astype(np.float32)
    hr = np.einsum("bk,khw->bhw", spectra, abund) / 2
    R = rng.uniform(0, 1, (3, bands))
    R /= R.sum(1, keepdims=True)
    msi = np.einsum("mb,bhw->mhw", R, hr).astype(np.float32)
    return Scene(name, hr, wald_degrade(hr, scale), msi)


def test_sampler_crops_on_the_lr_grid_with_augmentation():
    """Every (LR, HR) crop pair keeps LR = block mean of HR after flips/rot90 (s grid kept)."""
    scale = 4
    rng = np.random.default_rng(0)
    hr = rng.random((3, 24, 20)).astype(np.float32)
    msi = hr[:2] * 2
    sc = Scene("s", hr, block_mean(hr, scale), msi)
    sampler = PatchSampler([sc], patch=8, batch_size=16, snr_db=None, augment=True,
                           rng=np.random.default_rng(1))
    batch = sampler.sample()
    assert batch["lr"].shape == (16, 3, 2, 2) and batch["hr"].shape == (16, 3, 8, 8)
    for lr, h, m in zip(batch["lr"], batch["hr"], batch["msi"], strict=True):
        assert np.allclose(lr, block_mean(h, scale), atol=1e-6)
        assert np.allclose(m, h[:2] * 2)
    noisy = PatchSampler([sc], 8, 1, snr_db=20.0, augment=False, rng=np.random.default_rng(1)).sample()
    clean = PatchSampler([sc], 8, 1, snr_db=None, augment=False, rng=np.random.default_rng(1)).sample()
    assert np.array_equal(noisy["hr"], clean["hr"]) and np.array_equal(noisy["msi"], clean["msi"])
    assert not np.allclose(noisy["lr"], clean["lr"])


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(preset="lite", steps=6, batch_size=2, patch=8, lr=1e-3, val_every=3, log_every=1,
                threads=2, out=str(tmp_path / "m"), progress_bar=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_reproduces_uninterrupted_run(tmp_path):
    scenes = [synthetic_scene("a", 0), synthetic_scene("b", 1)]
    (tmp_path / "full").mkdir()
    (tmp_path / "split").mkdir()
    res_full = train(scenes, [], _cfg(tmp_path / "full"))
    calls = {"n": 0}

    def cancel_after_3() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(CancelledError):
        train(scenes, [], _cfg(tmp_path / "split"), cancel=cancel_after_3)
    ck = load_checkpoint(tmp_path / "split" / "m.ckpt.pt")  # weights_only=True load
    assert ck["step"] == 3
    res_split = train(scenes, [], _cfg(tmp_path / "split", resume=True))
    assert res_split.steps == 6
    a, _ = load_model(res_full.student_path)
    b, _ = load_model(res_split.student_path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    (tmp_path / "nothing_here").mkdir()
    with pytest.raises(CsakdError, match="no checkpoint"):
        train(scenes, [], _cfg(tmp_path / "nothing_here", resume=True))


def test_export_cards_modes_and_log(tmp_path):
    scenes = [synthetic_scene("a", 0), synthetic_scene("b", 1)]
    val = [synthetic_scene("v", 2)]
    res = train(scenes, val, _cfg(tmp_path, card={"licence": "CC-BY-4.0"}),
                wavelengths=[400.0 + 50 * i for i in range(8)], msi_info={"sensor": "synthetic"})
    assert res.student_path.is_file() and res.teacher_path.is_file()
    student, card = load_model(res.student_path)
    teacher, tcard = load_model(res.teacher_path)
    assert card["role"] == "student" and tcard["role"] == "teacher"
    assert card["licence"] == "CC-BY-4.0" and card["msi"]["sensor"] == "synthetic"
    assert card["validation"]["best_step"] in (3, 6) and "psnr" in card["validation"]["metrics"]
    assert "psnr" in card["validation"]["baseline_bicubic"]
    assert card["training"]["train_scenes"] == ["a", "b"] and card["hsi"]["wavelengths"][1] == 450.0
    assert sum(p.numel() for p in student.parameters()) * 3 < sum(p.numel() for p in teacher.parameters())
    lines = [json.loads(x) for x in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    assert {x["event"] for x in lines} >= {"start", "train", "val", "end"}
    # offline: frozen teacher from the exported file, then a no-KD student
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    (tmp_path / "off").mkdir()
    res_off = train(scenes, val, _cfg(tmp_path / "off", mode="offline", teacher_path=str(res.teacher_path), steps=2))
    assert res_off.teacher_path is None and res_off.student_path.is_file()
    t_after, _ = load_model(res.teacher_path)
    assert all(torch.equal(t_before[k], v) for k, v in t_after.state_dict().items())
    (tmp_path / "solo").mkdir()
    res_solo = train(scenes, [], _cfg(tmp_path / "solo", mode="student", steps=2))
    assert res_solo.student_path.is_file()
    with pytest.raises(CsakdError, match="teacher"):
        TrainConfig(mode="offline")
    with pytest.raises(CsakdError, match="bands"):
        train(scenes, [synthetic_scene("x", 3, bands=5)], _cfg(tmp_path / "solo"))


def test_per_band_normalization_roundtrip(tmp_path):
    scenes = [synthetic_scene("a", 0)]
    res = train(scenes, [], _cfg(tmp_path, normalization="per_band", steps=2))
    _, card = load_model(res.student_path)
    assert card["normalization"]["type"] == "per_band" and len(card["normalization"]["hsi_mean"]) == 8


def _enmap_scenes(scale: int):
    from csakd_qgis.raster.io import read_meta, read_reflectance

    files = sorted(ENMAP.glob("enmap_potsdam_tile_*.tif"))
    meta = read_meta(files[0])
    good = meta.good_bands()
    wl = [meta.wavelengths[i] for i in good]
    fw = [meta.fwhm[i] for i in good]
    refs = [(f.stem.split("_tile_")[1], read_reflectance(f, bands=good)) for f in files]
    return make_wald_scenes(refs, wl, fw, "S2A:B2,B3,B4,B8", scale), wl, fw


@pytest.mark.shared_data
@pytest.mark.skipif(not ENMAP.is_dir(), reason="needs ../shared/data/enmap_potsdam (real EnMAP tiles; absent "
                    "in a user's clone)")
def test_lite_pair_beats_bicubic_on_held_out_enmap_tile(tmp_path):
    """Wald pairs s=4 with Sentinel-2A B2/B3/B4/B8 SRFs; 9 tiles train, tile 192_160 held out.

    About 50 s on 2 idle CPU threads (200 co-training steps of the lite pair).
    """
    scenes, wl, fw = _enmap_scenes(4)
    val = [s for s in scenes if s.name == "192_160"]
    tr = [s for s in scenes if s.name != "192_160"]
    assert len(val) == 1 and len(tr) == 9
    cfg = TrainConfig(preset="lite", steps=200, batch_size=4, patch=16, lr=1e-3, snr_db=35.0, val_every=50,
                      threads=2, seed=0, out=str(tmp_path / "enmap_lite"), progress_bar=False)
    res = train(tr, val, cfg, wl, fw, {"sensor": "S2A", "band_names": ["B2", "B3", "B4", "B8"]})
    bic = res.baseline_metrics["bicubic"]
    stu = res.best_metrics
    tea = res.teacher_metrics
    summary = {"bicubic": bic, "student": stu, "teacher": tea, "best_step": res.best_step,
               "elapsed_s": res.elapsed_s}
    print(json.dumps({k: ({m: round(v, 3) for m, v in x.items() if m in ("psnr", "sam", "ergas", "rmse", "ssim")}
                          if isinstance(x, dict) else x) for k, x in summary.items()}))
    assert stu["psnr"] > bic["psnr"] + 0.5
    assert stu["ergas"] < bic["ergas"]
    _, card = load_model(res.student_path)
    assert card["validation"]["metrics"]["psnr"] == pytest.approx(stu["psnr"])



def test_cli_model_info(capsys):
    assert run_cli(["model-info", "--preset", "paper", "--hsi-bands", "172", "--msi-bands", "4", "--scale", "4",
                    "--hr-size", "256"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["teacher"]["params"] - 26_807_686) < 27_000 and abs(info["student"]["macs"] - 144.8e9) < 1.5e9
    with pytest.raises(CsakdError):
        run_cli(["model-info", "--scale", "1"])


def test_cli_train_on_geotiffs(tmp_path, capsys):
    from affine import Affine

    from csakd_qgis.raster.io import write_raster

    wl = [450.0 + 25 * i for i in range(20)]  # 450-925 nm: covers Sentinel-2 B2, B3, B4, B8
    paths = []
    for i in range(2):
        sc = synthetic_scene(f"t{i}", i, bands=20, size=16)
        p = tmp_path / f"scene{i}.tif"
        write_raster(p, sc.hr, "EPSG:32633", Affine(30, 0, 0, 0, -30, 0), wavelengths=wl, fwhm=[10.0] * 20)
        paths.append(str(p))
    out = tmp_path / "models" / "m"
    with pytest.raises(CsakdError, match="does not exist"):
        run_cli(["train", "--scenes", paths[0], "--sensor", "S2A:B2,B3,B4,B8", "--out", str(out), "--steps", "1"])
    out.parent.mkdir()
    rc = run_cli(["train", "--scenes", paths[0], "--val-scenes", paths[1], "--sensor", "S2A:B2,B3,B4,B8",
                  "--scale", "4", "--preset", "lite", "--steps", "2", "--batch-size", "2", "--patch", "8",
                  "--out", str(out), "--device", "cpu", "--threads", "2", "--no-progress"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    _, card = load_model(res["student"])
    assert card["msi"]["band_names"] == ["B2", "B3", "B4", "B8"] and card["hsi"]["wavelengths"] == wl
    assert card["training"]["data"] == [paths[0]]


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "jasper_urban").is_dir(), reason="needs ../shared/data/jasper_urban")
def test_read_mat_benchmark_cubes():
    from csakd_qgis.training.sources.mat_cubes import read_mat_cube

    cube, wl, fw, note = read_mat_cube(SHARED / "jasper_urban" / "jasperRidge2_R198.mat")
    assert cube.shape == (198, 100, 100) and len(wl) == 198 and 400 < wl[0] < 420 and wl[-1] < 2460
    assert 0 <= cube.min() and cube.max() < 1.0 and "approximate" in note
    cube, wl, _, _ = read_mat_cube(SHARED / "jasper_urban" / "subimage_Urban_R162.mat")
    assert cube.shape == (162, 34, 78) and len(wl) == 162 and np.all(np.diff(wl) > 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16"])
def test_cuda_training_with_autocast(tmp_path, amp_dtype):
    scenes = [synthetic_scene("a", 0), synthetic_scene("b", 1)]
    res = train(scenes, [synthetic_scene("v", 2)], _cfg(tmp_path, device="cuda", amp=True, amp_dtype=amp_dtype,
                                                         steps=20, val_every=10))
    assert res.device_used == "cuda" and res.steps == 20
    assert np.isfinite(res.best_metrics["psnr"])
    model, _ = load_model(res.student_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())

"""ONNX Runtime path: export, same results as torch through fuse()/superresolve(), torch-free fallback, errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from _helpers_raster import enmap_reference, read_all, write_pair
from _helpers_runtime import block_modules, read_onnx_card
from conftest import ROOT, requires_shared

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion import runtime
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.onnx_export import export_onnx
from csakd_qgis.fusion.runtime import onnx_path, open_runner
from csakd_qgis.fusion.superresolve import superresolve
from csakd_qgis.nets.csakd import build_model, preset_configs
from csakd_qgis.quality.metrics import psnr
from csakd_qgis.zoo.card import read_card, save_model

S = 4


@pytest.fixture(scope="module")
def enmap_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("enmap_pair")
    ref = enmap_reference()
    return {"ref": ref, **write_pair(d, ref, scale=S)}


@pytest.fixture(scope="module")
def random_student(tmp_path_factory, enmap_pair):
    """A lite CSAKD student with a non-zero (random) head on the EnMAP band grid, exported to fp32 + int8."""
    d = tmp_path_factory.mktemp("model")
    wl = enmap_pair["ref"]["wavelengths"]
    _, cfg = preset_configs("lite", len(wl), 4, S)
    torch.manual_seed(0)
    card_path, _ = save_model(d / "lite_random", build_model(cfg),
                              {"role": "student", "name": "lite_random", "hsi": {"wavelengths": list(wl)}})
    report = export_onnx(card_path, variants=("fp32", "int8"), n_tiles=4)
    return card_path, report


@requires_shared
@pytest.mark.shared_data
def test_export_writes_self_describing_files_and_reports_fidelity(random_student):
    card_path, report = random_student
    card = read_card(card_path)
    assert [v.variant for v in report.variants] == ["fp32", "int8"]
    for v in report.variants:
        assert os.path.isfile(v.path) and v.bytes > 0 and v.ort_s_per_tile > 0
        assert read_onnx_card(v.path)["weights"]["sha256"] == card["weights"]["sha256"]
    fp32, int8 = report.variants
    assert fp32.max_abs_diff <= 1e-4 and int8.bytes < fp32.bytes / 2
    assert 30.0 < int8.psnr_vs_torch_db < fp32.psnr_vs_torch_db


@requires_shared
@pytest.mark.shared_data
def test_onnx_fp32_equals_torch_through_fuse_on_real_enmap_pair(tmp_path, enmap_pair, random_student):
    card_path, _ = random_student
    outs = {}
    for rt in ("torch", "onnx"):
        res = fuse(enmap_pair["hsi"], enmap_pair["msi"], tmp_path / f"{rt}.tif", model=str(card_path), device="cpu",
                   runtime=rt, tile=64, overlap=16)
        outs[rt] = read_all(tmp_path / f"{rt}.tif")[0]
        assert ("ONNX Runtime" in res.device_used) == (rt == "onnx")
    assert np.isfinite(outs["torch"]).all()
    assert float(np.abs(outs["onnx"] - outs["torch"]).max()) <= 1e-4
    fuse(enmap_pair["hsi"], enmap_pair["msi"], tmp_path / "int8.tif", model=str(card_path), device="cpu",
         runtime="onnx", precision="int8", tile=64, overlap=16)
    loss = psnr(outs["torch"], read_all(tmp_path / "int8.tif")[0])
    print(f"\nint8 vs torch fp32 on the EnMAP pair: PSNR {loss:.1f} dB")
    assert loss > 30.0


@requires_shared
@pytest.mark.shared_data
def test_zoo_sr_student_onnx_equals_torch_through_superresolve(tmp_path, enmap_pair):
    for f in (ROOT / "models").glob("enmap_x4_sr.*"):
        if f.suffix in (".json", ".safetensors"):
            shutil.copy(f, tmp_path / f.name)
    card_path = tmp_path / "enmap_x4_sr.json"
    export_onnx(card_path, variants=("fp32",), n_tiles=2)
    outs = {}
    for rt in ("torch", "onnx"):
        superresolve(enmap_pair["hsi"], tmp_path / f"{rt}.tif", model=str(card_path), device="cpu", runtime=rt)
        outs[rt] = read_all(tmp_path / f"{rt}.tif")[0]
    assert float(np.nanmax(np.abs(outs["onnx"] - outs["torch"]))) <= 1e-4


def _cli(args: list[str], blocked: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (blocked, str(ROOT)) if p)}
    return subprocess.run([sys.executable, "-m", "csakd_qgis.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(ROOT))


@requires_shared
@pytest.mark.shared_data
def test_cli_without_torch_falls_back_to_onnx_and_without_both_says_how_to_install(tmp_path, enmap_pair,
                                                                                  random_student):
    card_path, _ = random_student
    base = ["fuse", "--hsi", str(enmap_pair["hsi"]), "--msi", str(enmap_pair["msi"]), "--model", str(card_path),
            "--no-progress", "--tile", "64", "--overlap", "16"]
    no_torch = block_modules(tmp_path / "no_torch", "torch")
    r = _cli([*base, "--out", str(tmp_path / "onnx.tif")], no_torch)
    assert r.returncode == 0, r.stderr
    assert "ONNX Runtime" in r.stdout + r.stderr and "Traceback" not in r.stderr
    fuse(enmap_pair["hsi"], enmap_pair["msi"], tmp_path / "torch.tif", model=str(card_path), device="cpu",
         runtime="torch", tile=64, overlap=16)
    diff = np.abs(read_all(tmp_path / "onnx.tif")[0] - read_all(tmp_path / "torch.tif")[0])
    assert float(diff.max()) <= 1e-4
    neither = block_modules(tmp_path / "neither", "torch", "onnxruntime")
    r = _cli([*base, "--out", str(tmp_path / "none.tif")], neither)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pip install" in lines[0] and "onnxruntime" in lines[0] and "numpy==" in lines[0]
    assert not (tmp_path / "none.tif").exists()
    r = _cli([*base, "--runtime", "torch", "--out", str(tmp_path / "t.tif")], no_torch)
    assert r.returncode == 1 and "PyTorch is not installed" in r.stderr and "Traceback" not in r.stderr


def test_runtime_choice_and_clear_errors(tmp_path, monkeypatch):
    _, cfg = preset_configs("lite", 12, 4, S)
    card_path, _ = save_model(tmp_path / "tiny", build_model(cfg), {"role": "student", "name": "tiny",
                                                                    "hsi": {"wavelengths": [float(w) for w in np.linspace(450, 900, 12)]}})
    card = read_card(card_path)
    with pytest.raises(CsakdError, match="no ONNX fp32 file.*csakd export --onnx"):
        open_runner(card_path, card, runtime="onnx")
    with pytest.raises(CsakdError, match="Unknown runtime 'tensorflow'"):
        open_runner(card_path, card, runtime="tensorflow")
    with pytest.raises(CsakdError, match="int8 is an ONNX Runtime model variant"):
        open_runner(card_path, card, runtime="torch", precision="int8")
    export_onnx(card_path, variants=("fp32",), n_tiles=1)
    messages: list[str] = []
    monkeypatch.setattr(runtime, "runtime_available", lambda name: name == "onnx")
    r = open_runner(card_path, card, runtime="auto", messages=messages)
    assert r.runtime == "onnx" and any("PyTorch is not installed" in m for m in messages)
    other = dict(card, weights={**card["weights"], "sha256": "0" * 64})
    with pytest.raises(CsakdError, match="exported from other weights"):
        open_runner(card_path, other, runtime="onnx")
    onnx_path(card_path).write_bytes(b"not an onnx graph")
    with pytest.raises(CsakdError, match="cannot be loaded"):
        open_runner(card_path, card, runtime="onnx")

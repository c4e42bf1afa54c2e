"""Classes 7-10: crafted model cards (huge network config, weights path traversal), reference training with a
zoo teacher, and learned models in a Python without PyTorch."""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess

import pytest
from _faults import (
    ROOT,
    ZOO,
    assert_failed_cleanly,
    child_env,
    cli_command,
    import_blocker,
    run_cli,
    run_qgis,
    snapshot,
)
from _helpers_raster import MSI_SPEC

STUDENT, TEACHER = "enmap_s2-4band_x4", "enmap_s2-4band_x4_teacher"
MEMORY_LIMIT = 6 * 2 ** 30  # a crafted card must fail fast, not allocate: the test run is capped


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_capped(*args: object) -> subprocess.CompletedProcess:
    """``csakd ARGS`` with its address space capped (a run that tries to allocate a huge network fails)."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, env=child_env(), timeout=300,
                          preexec_fn=_capped, cwd=str(ROOT))


def crafted_model(folder, edit) -> object:
    """A copy of the zoo student whose card is changed by ``edit(card)``; returns its .safetensors path."""
    folder.mkdir(exist_ok=True)
    shutil.copy(ZOO / f"{STUDENT}.safetensors", folder / "crafted.safetensors")
    card = json.loads((ZOO / f"{STUDENT}.json").read_text())
    edit(card)
    (folder / "crafted.json").write_text(json.dumps(card))
    return folder / "crafted.safetensors"


def _huge(card: dict) -> None:
    card["config"]["nf"] = 2 ** 20
    card["config"]["blocks"]["h"] = 10 ** 6


@pytest.mark.parametrize("edit", [_huge, lambda c: c["config"].update(nf=c["config"]["nf"] * 2)],
                         ids=["huge", "mismatch"])
def test_cli_crafted_card_config(pair, needs_enmap, tmp_path, edit):
    model = crafted_model(tmp_path / "model", edit)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(pair["dir"], model.parent)
    proc = run_capped("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", model, "--no-progress",
                      "--out", out / "o.tif")
    assert_failed_cleanly(proc, expect=r"config", folders=(out,), inputs=before)
    assert not list(out.iterdir())


@pytest.mark.qgis
def test_qgis_crafted_card_config(pair, needs_enmap, tmp_path, profile):
    model = crafted_model(tmp_path / "model", _huge)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_qgis("csakd:fuse", {"HSI": pair["hsi"], "MSI": pair["msi"], "MODEL": "file", "MODEL_FILE": model,
                                   "OUTPUT": out / "o.tif"}, profile)
    assert_failed_cleanly(proc, expect=r"config", folders=(out,))
    assert not list(out.iterdir())


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_cli_card_weights_path_traversal(pair, needs_enmap, tmp_path, kind):
    """A teacher card without weights beside it, naming a weights file elsewhere on disk: refused."""
    victim = tmp_path / "victim"
    victim.mkdir()
    shutil.copy(ZOO / f"{TEACHER}.safetensors", victim / "secret.safetensors")
    cards = tmp_path / "cards"
    cards.mkdir()
    card = json.loads((ZOO / f"{TEACHER}.json").read_text())
    card["weights"]["file"] = ("../victim/secret.safetensors" if kind == "dotdot"
                               else str(victim / "secret.safetensors"))
    (cards / "evil.json").write_text(json.dumps(card))
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("train", "--scenes", pair["reference"], "--sensor", MSI_SPEC, "--scale", 4, "--mode", "offline",
                   "--teacher", cards / "evil.json", "--steps", 1, "--no-progress", "--device", "cpu",
                   "--out", out / "x")
    assert_failed_cleanly(proc, expect=r"weights", folders=(out,))
    assert not list(out.iterdir())


def test_cli_reference_training_with_zoo_teacher(pair, needs_enmap, tmp_path):
    """Offline KD from a zoo teacher (a correction of GLP): the base is built for it and training runs."""
    proc = run_cli("train", "--scenes", pair["reference"], "--sensor", MSI_SPEC, "--scale", 4, "--mode", "offline",
                   "--teacher", ZOO / f"{TEACHER}.json", "--steps", 2, "--val-every", 2, "--batch-size", 2,
                   "--patch", 16, "--no-progress", "--device", "cpu", "--out", tmp_path / "x")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "x_student.safetensors").is_file() and (tmp_path / "x_student.json").is_file()


# PyTorch and ONNX Runtime both missing (ONNX Runtime alone would run the zoo model without torch)
NO_RUNTIME = ("torch", "onnxruntime")


def test_cli_learned_model_without_torch(pair, needs_enmap, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", STUDENT, "--no-progress",
                   "--out", out / "o.tif", env=import_blocker(tmp_path / "blocker", *NO_RUNTIME))
    line = assert_failed_cleanly(proc, expect=r"torch.*pip install", folders=(out,))
    assert "-m pip install" in line and "No module named" not in line
    assert not list(out.iterdir())


@pytest.mark.qgis
def test_qgis_learned_model_without_torch(pair, needs_enmap, tmp_path, profile):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_qgis("csakd:fuse", {"HSI": pair["hsi"], "MSI": pair["msi"], "MODEL": STUDENT,
                                   "OUTPUT": out / "o.tif"}, profile,
                    env=import_blocker(tmp_path / "blocker", *NO_RUNTIME))
    line = assert_failed_cleanly(proc, expect=r"torch.*pip install", folders=(out,))
    assert re.search(r"/usr/bin/python3(\.\d+)? -m pip install", line)  # QGIS's Python, not the qgis_process binary
    assert not list(out.iterdir())

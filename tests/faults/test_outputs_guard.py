"""Classes 2 and 6: outputs that must be refused before any compute (the starting model, its card, the installed
zoo) and an output folder that refuses files (read-only): one line, nothing written, inputs untouched."""

from __future__ import annotations

import shutil

import pytest
from _faults import ZOO, assert_failed_cleanly, run_cli, run_qgis, snapshot, tmpfs

STUDENT = "enmap_s2-4band_x4"


@pytest.fixture
def own_model(tmp_path):
    """A model file of the user's (a copy of a zoo student) in a folder of its own."""
    d = tmp_path / "mine"
    d.mkdir()
    for ext in (".json", ".safetensors"):
        shutil.copy(ZOO / f"{STUDENT}{ext}", d / f"my_model{ext}")
    return d / "my_model.safetensors"


def test_cli_train_refuses_to_overwrite_its_init_model(pair, own_model):
    before = snapshot(pair["dir"], own_model.parent)
    proc = run_cli("train", "--adapt", "--hsi", pair["hsi"], "--msi", pair["msi"], "--init", own_model,
                   "--out", own_model, "--steps", 1, "--no-progress")
    assert_failed_cleanly(proc, expect=r"starts from", folders=(own_model.parent,), inputs=before)


def test_cli_train_refuses_to_overwrite_the_installed_zoo(pair, zoo_copy):
    before = snapshot(pair["dir"], zoo_copy)
    proc = run_cli("train", "--adapt", "--hsi", pair["hsi"], "--msi", pair["msi"], "--init", "scratch",
                   "--out", zoo_copy / f"{STUDENT}.safetensors", "--steps", 1, "--no-progress",
                   env={"CSAKD_MODEL_PATH": str(zoo_copy)})
    assert_failed_cleanly(proc, expect=r"zoo", folders=(zoo_copy,), inputs=before)


@pytest.mark.qgis
def test_qgis_train_refuses_init_file_as_output(pair, own_model, profile):
    before = snapshot(pair["dir"], own_model.parent)
    proc = run_qgis("csakd:train", {"HSI": pair["hsi"], "MSI": pair["msi"], "MODEL": own_model,
                                    "INIT_FILE": own_model, "STEPS": 1, "BUDGET": 0}, profile)
    assert_failed_cleanly(proc, expect=r"starts from", folders=(own_model.parent,), inputs=before)


def _read_only_folder():
    return tmpfs("1m", readonly=True)


def test_cli_evaluate_into_read_only_folder(pair):
    with _read_only_folder() as ro:
        before = snapshot(pair["dir"])
        proc = run_cli("evaluate", "--reference", pair["reference"], "--fused", pair["reference"], "--scale", 4,
                       "--json", ro / "m.json", "--report", ro / "r.html")
        assert_failed_cleanly(proc, expect=r"not writable", absent=(ro / "m.json", ro / "r.html"),
                              folders=(pair["dir"],), inputs=before)


@pytest.mark.qgis
def test_qgis_evaluate_into_read_only_folder(pair, profile):
    with _read_only_folder() as ro:
        before = snapshot(pair["dir"])
        proc = run_qgis("csakd:evaluate", {"FUSED": pair["reference"], "REFERENCE": pair["reference"], "SCALE": 4,
                                           "JSON": ro / "m.json", "REPORT": ro / "r.html"}, profile)
        assert_failed_cleanly(proc, expect=r"not writable", absent=(ro / "m.json", ro / "r.html"),
                              folders=(pair["dir"],), inputs=before)


def test_cli_output_that_is_an_input_is_refused_and_kept(pair, tmp_path):
    """The co-registered output named like its own HSI input: refused, the input byte-identical."""
    hsi = tmp_path / "hsi.tif"
    shutil.copy(pair["hsi"], hsi)
    kept = {hsi: hsi.read_bytes()}
    proc = run_cli("coregister", "--hsi", hsi, "--msi", pair["msi"], "--out", hsi)
    assert_failed_cleanly(proc, expect=r"input", kept=kept, folders=(tmp_path,))

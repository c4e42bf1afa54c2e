"""Round 2, classes 1, 2, 7 and 12: an output that is a file the run reads without naming it (a product's member,
the 20 m bands, a model, another batch row's input, spelled through a symlink or ``..``), two batch rows with one
output, a FIFO as input, and ``csakd export`` into the installed zoo. Each is refused before anything runs: one
line, exit 1, what was read byte-identical."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from _faults import ZOO, assert_failed_cleanly, run_cli, run_qgis, snapshot
from _products import enmap, sentinel2

STUDENT = "enmap_s2-4band_x4"


def tree(folder) -> dict:
    """{path: sha256} of every file below ``folder`` (a product folder must come out byte-identical)."""
    from _faults import sha256

    return {p: sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def enmap_product(tmp_path_factory) -> dict:
    return enmap(tmp_path_factory.mktemp("enmap"))


def _image(prod: dict):
    return next(prod["folder"].glob("*SPECTRAL_IMAGE.TIF"))


@pytest.mark.parametrize("spelling", ["direct", "symlinked folder", "dotdot"])
def test_cli_output_onto_a_member_of_the_hsi_product(enmap_product, pair, tmp_path, spelling):
    """--out is the EnMAP folder's own *_SPECTRAL_IMAGE.TIF (the product given as --hsi): refused, product kept."""
    image = _image(enmap_product)
    folder = image.parent
    if spelling == "symlinked folder":
        (tmp_path / "link").symlink_to(folder, target_is_directory=True)
        out = tmp_path / "link" / image.name
    elif spelling == "dotdot":
        out = folder / "." / ".." / folder.name / image.name
    else:
        out = image
    before = tree(folder)
    proc = run_cli("fuse", "--hsi", folder, "--msi", pair["msi"], "--model", "glp", "--no-progress", "--out", out)
    line = assert_failed_cleanly(proc, expect=r"one of the inputs", folders=(folder, tmp_path))
    assert image.name in line
    assert tree(folder) == before


@pytest.mark.qgis
def test_qgis_output_onto_a_member_of_the_hsi_product(enmap_product, pair, profile):
    image = _image(enmap_product)
    before = tree(image.parent)
    proc = run_qgis("csakd:fuse_classical", {"HSI_PRODUCT": enmap_product["metadata"], "MSI": pair["msi"],
                                             "METHOD": "glp", "OUTPUT": image}, profile)
    assert_failed_cleanly(proc, expect=r"one of the inputs", folders=(image.parent,))
    assert tree(image.parent) == before


def test_cli_output_linked_to_a_20m_band_of_the_msi_product(pair, tmp_path):
    """--out a .tif symlinked onto a 20 m band file of the SAFE given as --msi (its 20 m bands are read too)."""
    s2 = sentinel2(tmp_path / "s2")
    band = next(s2["path"].rglob("*_B11_20m.jp2"))
    out = tmp_path / "o.tif"
    out.symlink_to(band)
    before = tree(s2["path"])
    proc = run_cli("fuse", "--hsi", pair["hsi"], "--msi", s2["path"], "--model", "glp", "--no-progress", "--out", out)
    assert_failed_cleanly(proc, expect=r"one of the inputs.*B11_20m", folders=(tmp_path,))
    assert tree(s2["path"]) == before and out.is_symlink()


def test_cli_output_linked_to_the_model_weights(pair, needs_enmap, tmp_path):
    """--out a .tif symlinked onto the weights of the --model file: refused, weights kept."""
    for ext in (".json", ".safetensors"):
        shutil.copy(ZOO / f"{STUDENT}{ext}", tmp_path / f"mine{ext}")
    out = tmp_path / "o.tif"
    out.symlink_to(tmp_path / "mine.safetensors")
    before = snapshot(tmp_path)
    proc = run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", tmp_path / "mine.safetensors",
                   "--no-progress", "--out", out)
    assert_failed_cleanly(proc, expect=r"one of the inputs", folders=(tmp_path,), inputs=before)


def _table(path, rows) -> None:
    path.write_text("hsi,msi,out\n" + "".join(f"{h},{m},{o}\n" for h, m, o in rows))


def test_cli_batch_row_writing_another_rows_input_is_refused(pair, tmp_path):
    """Row 2's out is row 1's hsi (spelled through a symlinked folder): the table is refused, nothing runs."""
    hsi = tmp_path / "a_hsi.tif"
    shutil.copy(pair["hsi"], hsi)
    (tmp_path / "via").symlink_to(tmp_path, target_is_directory=True)
    _table(tmp_path / "jobs.csv", [(hsi, pair["msi"], tmp_path / "one.tif"),
                                   (pair["hsi"], pair["msi"], tmp_path / "via" / "a_hsi.tif")])
    before = snapshot(tmp_path)
    proc = run_cli("batch", tmp_path / "jobs.csv", "--no-progress")
    line = assert_failed_cleanly(proc, expect=r"row 2 is the hsi input of row 1", folders=(tmp_path,),
                                 inputs=before, absent=(tmp_path / "one.tif",))
    assert "a_hsi.tif" in line
    assert not (tmp_path / "jobs_summary.json").exists()


def test_cli_batch_two_rows_one_output_through_a_symlink(pair, tmp_path):
    """Rows 1 and 2 write out/x.tif, once spelled through a symlinked folder: refused naming both, nothing runs."""
    (tmp_path / "out").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "out", target_is_directory=True)
    _table(tmp_path / "jobs.csv", [(pair["hsi"], pair["msi"], "out/x.tif"),
                                   (pair["hsi"], pair["msi"], "alias/../alias/x.tif")])
    proc = run_cli("batch", tmp_path / "jobs.csv", "--no-progress")
    assert_failed_cleanly(proc, expect=r"rows 1 and 2 write the same output", folders=(tmp_path / "out",))
    assert os.listdir(tmp_path / "out") == [] and not (tmp_path / "jobs_summary.json").exists()


@pytest.fixture
def fifo(tmp_path):
    """A named pipe called like a raster (nobody ever writes into it: a reader would block for ever)."""
    p = tmp_path / "hsi.tif"
    os.mkfifo(p)
    return p


def test_cli_fifo_as_hsi_is_refused_at_once(fifo, pair, tmp_path):
    t0 = time.monotonic()
    proc = run_cli("fuse", "--hsi", fifo, "--msi", pair["msi"], "--model", "glp", "--no-progress",
                   "--out", tmp_path / "o.tif", timeout=60)
    assert_failed_cleanly(proc, expect=r"named pipe \(FIFO\), not a regular file", absent=(tmp_path / "o.tif",),
                          folders=(tmp_path,))
    assert time.monotonic() - t0 < 30


@pytest.mark.qgis
@pytest.mark.parametrize("param", ["HSI", "HSI_PRODUCT"])
def test_qgis_fifo_as_hsi_is_refused_at_once(fifo, pair, tmp_path, profile, param):
    """As the raster layer HSI (QGIS checks a layer value by loading it: the plugin's parameter skips that for a
    special file) or as the product file HSI_PRODUCT."""
    proc = run_qgis("csakd:fuse_classical", {param: fifo, "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": tmp_path / "o.tif"}, profile, timeout=60)
    assert_failed_cleanly(proc, expect=r"named pipe \(FIFO\)", absent=(tmp_path / "o.tif",), folders=(tmp_path,))


def test_cli_export_never_rewrites_the_installed_zoo(zoo_copy, tmp_path):
    """export --onnx ZOO_NAME: refused (the zoo is never rewritten); with --out the files go there."""
    env = {"CSAKD_MODEL_PATH": str(zoo_copy)}
    zoo_before, real_before = snapshot(zoo_copy), snapshot(ZOO)
    proc = run_cli("export", "--onnx", STUDENT, "--variants", "fp32", env=env)
    assert_failed_cleanly(proc, expect=r"installed model zoo.*--out", folders=(zoo_copy,), inputs=zoo_before)
    dest = tmp_path / "exported"
    dest.mkdir()
    proc = run_cli("export", "--onnx", STUDENT, "--variants", "fp32", "--out", dest, env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(dest)) == [f"{STUDENT}.onnx"]
    assert snapshot(zoo_copy) == zoo_before and snapshot(ZOO) == real_before
    proc = run_cli("export", "--onnx", STUDENT, "--variants", "fp32", "--out", zoo_copy, env=env)
    assert_failed_cleanly(proc, expect=r"installed model zoo", inputs=zoo_before)


@pytest.mark.qgis
def test_qgis_batch_two_rows_one_output_through_a_symlink(pair, tmp_path, profile):
    (tmp_path / "out").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "out", target_is_directory=True)
    _table(tmp_path / "jobs.csv", [(pair["hsi"], pair["msi"], "out/x.tif"), (pair["hsi"], pair["msi"], "alias/x.tif")])
    proc = run_qgis("csakd:fuse_batch", {"JOBS": tmp_path / "jobs.csv", "SUMMARY": tmp_path / "s.json"}, profile)
    assert_failed_cleanly(proc, expect=r"rows 1 and 2 write the same output", folders=(tmp_path / "out",))
    assert os.listdir(tmp_path / "out") == [] and not (tmp_path / "s.json").exists()

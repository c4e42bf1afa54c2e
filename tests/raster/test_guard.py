"""raster/guard.py: the files a run reads, its outputs' sidecars, special files, backups of replaced outputs."""

from __future__ import annotations

import os

import pytest

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.guard import (
    Backup,
    check_not_input,
    check_regular_input,
    check_sidecars,
    input_files,
    style_sidecars,
)


def test_sidecar_names_keep_a_non_tif_extension():
    assert style_sidecars("/d/lr_m.tif") == ("/d/lr_m.qml", "/d/lr_m.qmd")
    assert style_sidecars("/d/lr_m.TIF") == ("/d/lr_m.qml", "/d/lr_m.qmd")
    assert style_sidecars("/d/lr_m.tiff") == ("/d/lr_m.tiff.qml", "/d/lr_m.tiff.qmd")


def test_input_files_of_a_folder_a_model_and_a_raster(tmp_path):
    prod = tmp_path / "prod"
    (prod / "sub").mkdir(parents=True)
    for name in ("a.TIF", "sub/b.jp2"):
        (prod / name).write_bytes(b"x")
    assert sorted(p.name for p in input_files(prod)) == ["a.TIF", "b.jp2"]
    for name in ("m.json", "m.safetensors", "m.onnx", "m.int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
    assert sorted(p.name for p in input_files(tmp_path / "m.safetensors")) == [
        "m.int8.onnx", "m.json", "m.onnx", "m.safetensors"]
    assert input_files(prod / "a.TIF") == [prod / "a.TIF"] and input_files("/vsimem/x.tif") == []


def test_output_through_a_symlink_or_dotdot_onto_an_input_is_refused(tmp_path):
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "X-SPECTRAL_IMAGE.TIF").write_bytes(b"x")
    (tmp_path / "link").symlink_to(prod, target_is_directory=True)
    for out in (prod / "X-SPECTRAL_IMAGE.TIF", tmp_path / "link" / "X-SPECTRAL_IMAGE.TIF",
                prod / ".." / "prod" / "X-SPECTRAL_IMAGE.TIF"):
        with pytest.raises(CsakdError, match="one of the inputs"):
            check_not_input(out, [prod])
    check_not_input(prod / "other.tif", [prod])  # a new file inside the product folder reads nothing


def test_fifo_refused_regular_files_folders_and_vsi_pass(tmp_path):
    fifo = tmp_path / "p.tif"
    os.mkfifo(fifo)
    with pytest.raises(CsakdError, match=r"named pipe \(FIFO\)"):
        check_regular_input(fifo, "HSI")
    (tmp_path / "r.tif").write_bytes(b"x")
    for ok in (tmp_path / "r.tif", tmp_path, "/vsizip/a.zip/b.tif", tmp_path / "missing.tif", ""):
        check_regular_input(ok, "HSI")


def test_sidecar_checks(tmp_path):
    (tmp_path / "o.qml").mkdir()
    with pytest.raises(CsakdError, match="is a folder"):
        check_sidecars([tmp_path / "o.tif"])
    (tmp_path / "x.tiff").write_bytes(b"x")
    with pytest.raises(CsakdError, match="is the style of the input"):
        check_sidecars([tmp_path / "x.tif"], [tmp_path / "x.tiff"])
    check_sidecars([tmp_path / "x.tiff.out.tiff", tmp_path / "p.tif", tmp_path / "p.tiff"], [tmp_path / "x.tiff"])


def test_backup_restores_a_replaced_file(tmp_path):
    p = tmp_path / "o.tif"
    p.write_bytes(b"old")
    b = Backup(p)
    (tmp_path / "n").write_bytes(b"new")
    os.replace(tmp_path / "n", p)
    b.restore()
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["o.tif"]
    b2 = Backup(p)
    b2.close()
    assert os.listdir(tmp_path) == ["o.tif"]

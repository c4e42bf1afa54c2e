"""Round 2, class 5: the .qml/.qmd style sidecars are outputs. A folder in their place is refused before anything
runs (the earlier output kept); a sidecar never takes an input's style (``lr_m.tiff`` beside ``lr_m.tif``) nor
another output's (``pair.tif`` + ``pair.tiff``); a raster and its sidecars are both new or both old."""

from __future__ import annotations

import os
import shutil

import pytest
from _faults import assert_failed_cleanly, put_old, run_qgis, snapshot
from _helpers_raster import MSI_SPEC

pytestmark = pytest.mark.qgis

USER_STYLE = b"<!DOCTYPE qgis><qgis><!-- the user's own style --></qgis>\n"


def test_qgis_sidecar_path_that_is_a_folder_keeps_the_earlier_output(pair, tmp_path, profile):
    kept = put_old(tmp_path / "o.tif")
    (tmp_path / "o.qml").mkdir()
    proc = run_qgis("csakd:fuse_classical", {"HSI": pair["hsi"], "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": tmp_path / "o.tif"}, profile)
    assert_failed_cleanly(proc, expect=r"style sidecar .*o\.qml.* is a folder", kept=kept, folders=(tmp_path,),
                          absent=(tmp_path / "o.qmd",))
    assert sorted(os.listdir(tmp_path)) == ["o.qml", "o.tif"]


def test_qgis_tiff_output_beside_its_tif_input_keeps_the_inputs_style(pair, tmp_path, profile):
    """Output lr_m.tiff beside the input lr_m.tif and its own lr_m.qml: fused, the sidecar is lr_m.tiff.qml."""
    hsi = tmp_path / "lr_m.tif"
    shutil.copy(pair["hsi"], hsi)
    (tmp_path / "lr_m.qml").write_bytes(USER_STYLE)
    before = snapshot(tmp_path)
    proc = run_qgis("csakd:fuse_classical", {"HSI": hsi, "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": tmp_path / "lr_m.tiff"}, profile)
    assert proc.returncode == 0, proc.stderr
    after = snapshot(tmp_path)
    assert all(after[p] == digest for p, digest in before.items())  # the input and its own style untouched
    assert (tmp_path / "lr_m.tiff.qml").is_file() and (tmp_path / "lr_m.tiff.qmd").is_file()


def test_qgis_tif_output_whose_sidecar_is_an_inputs_style_is_refused(pair, tmp_path, profile):
    """Output x.tif beside the input x.tiff: x.qml is the style QGIS uses for x.tiff, so it is refused."""
    hsi = tmp_path / "x.tiff"
    shutil.copy(pair["hsi"], hsi)
    (tmp_path / "x.qml").write_bytes(USER_STYLE)
    before = snapshot(tmp_path)
    proc = run_qgis("csakd:fuse_classical", {"HSI": hsi, "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": tmp_path / "x.tif"}, profile)
    assert_failed_cleanly(proc, expect=r"is the style of the input", absent=(tmp_path / "x.tif",),
                          folders=(tmp_path,), inputs=before)


def test_qgis_simulate_pair_tif_and_tiff_get_a_sidecar_each(pair, tmp_path, profile):
    proc = run_qgis("csakd:simulate_pair", {"HSI": pair["reference"], "SENSOR": MSI_SPEC, "SCALE": 4,
                                            "OUTPUT_LR": tmp_path / "pair.tif", "OUTPUT_MSI": tmp_path / "pair.tiff"},
                    profile)
    assert proc.returncode == 0, proc.stderr
    lr, msi = tmp_path / "pair.qml", tmp_path / "pair.tiff.qml"
    assert lr.is_file() and msi.is_file() and lr.read_bytes() != msi.read_bytes()
    assert (tmp_path / "pair.qmd").read_bytes() != (tmp_path / "pair.tiff.qmd").read_bytes()


def test_a_failed_run_puts_back_the_raster_and_the_sidecars_it_replaced(tmp_path):
    """Both-or-neither: a run that replaced the raster and one sidecar, then failed, leaves the old ones."""
    from csakd_qgis.algorithms.base import CsakdAlgorithm

    out = tmp_path / "o.tif"
    kept = put_old(out, tmp_path / "o.qml", tmp_path / "o.qmd")
    with pytest.raises(OSError), CsakdAlgorithm.removed_on_failure([str(out)]):
        for p in (out, tmp_path / "o.qml"):  # the engine replaces its outputs atomically
            (tmp_path / ".new").write_bytes(b"new result")
            os.replace(tmp_path / ".new", p)
        raise OSError(28, "No space left on device")  # writing o.qmd failed
    assert {p: p.read_bytes() for p in kept} == kept
    assert sorted(os.listdir(tmp_path)) == ["o.qmd", "o.qml", "o.tif"]

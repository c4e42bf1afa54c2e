"""Round 2, classes 6, 8 and 9: numbers in a product's metadata that are not finite or not numbers (each named in
the one line), a product zip whose members claim gigabytes, and messages that must name what the user gave (the
product, the output) and the real cause (a cloudy scene, not --msi20; a tiny pair, not clouds or 0 x 0 px)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _faults import assert_failed_cleanly, run_cli, run_qgis, snapshot
from _products import all_cloud, enmap, sentinel2, set_xml_number, without_product_notes, zip_claiming

from csakd_qgis.errors import CsakdError


def hidden(folder) -> list[str]:
    """Names a failed run must not leave in the output folder: hidden work folders and temporaries."""
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


@pytest.mark.parametrize("tag, value", [("wavelengthCenterOfBand", "nan"), ("GainOfBand", "nan"),
                                        ("FWHMOfBand", "inf"), ("wavelengthCenterOfBand", "abc")])
def test_cli_enmap_metadata_number_checked_and_named(pair, tmp_path, tag, value):
    prod = enmap(tmp_path / "in")
    set_xml_number(prod["metadata"], tag, value, nth=5)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("fuse", "--hsi", prod["folder"], "--msi", pair["msi"], "--model", "glp", "--no-progress",
                   "--out", out / "o.tif")
    line = assert_failed_cleanly(proc, expect=rf"{tag} = '{value}' for band 6", absent=(out / "o.tif",),
                                 folders=(out,))
    assert "METADATA.XML" in line and hidden(out) == []


@pytest.mark.qgis
def test_qgis_enmap_wavelength_nan_is_refused(pair, tmp_path, profile):
    prod = enmap(tmp_path / "in")
    set_xml_number(prod["metadata"], "wavelengthCenterOfBand", "nan")
    proc = run_qgis("csakd:fuse_classical", {"HSI_PRODUCT": prod["metadata"], "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": tmp_path / "o.tif"}, profile)
    assert_failed_cleanly(proc, expect=r"wavelengthCenterOfBand = 'nan' for band 1", absent=(tmp_path / "o.tif",),
                          folders=(tmp_path,))


@pytest.fixture(scope="module")
def safe_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("s2")


@pytest.mark.parametrize("tag, value, expect", [
    ("BOA_QUANTIFICATION_VALUE", "inf", r"BOA_QUANTIFICATION_VALUE = 'inf'.*not finite"),
    ("CENTRAL", "abc", r"CENTRAL = 'abc' for band B\w+ \(not a number\)"),
    ("BOA_ADD_OFFSET", "nan", r"BOA_ADD_OFFSET = 'nan'")])
def test_cli_sentinel2_metadata_number_checked_and_named(pair, tmp_path, tag, value, expect):
    s2 = sentinel2(tmp_path / "s2")
    set_xml_number(s2["mtd"], tag, value)
    proc = run_cli("fuse", "--hsi", pair["hsi"], "--msi", s2["path"], "--model", "glp", "--no-progress",
                   "--out", tmp_path / "o.tif")
    line = assert_failed_cleanly(proc, expect=expect, absent=(tmp_path / "o.tif",), folders=(tmp_path,))
    assert "MTD_MSIL2A.xml" in line and "internal error" not in line and hidden(tmp_path) == []


def test_cli_zip_bomb_is_not_unpacked(pair, tmp_path):
    """A 4 kB zip whose member claims 2 GB: refused before unpacking, nothing left beside the output."""
    bomb = zip_claiming(tmp_path / "ENMAP_L2A.zip", "ENMAP01-L2A/big.TIF", 2 * 10 ** 9)
    assert bomb.stat().st_size < 10_000
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("fuse", "--hsi", bomb, "--msi", pair["msi"], "--model", "glp", "--no-progress",
                   "--out", out / "o.tif")
    assert_failed_cleanly(proc, expect=r"would unpack .* to 2\.0 GB .*zip bomb", absent=(out / "o.tif",),
                          folders=(out,))
    assert os.listdir(out) == []


def test_zip_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    """The unpacked size is compared with the free space of the work folder (here: pretended to be 1 kB)."""
    import shutil
    import zipfile

    from csakd_qgis.products import base

    real = zip_claiming(tmp_path / "p.zip", "P/data.bin", 1_000_000, real=os.urandom(1_000_000))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 ** 9, 10 ** 9, 1000))
    with pytest.raises(CsakdError, match=r"needs 0\.0 GB to unpack .* only 0\.0 GB are free"), \
            zipfile.ZipFile(real) as zf:
        base.check_zip_size(real, zf, tmp_path)
    assert not (tmp_path / "P").exists()


def test_cli_message_names_the_product_not_its_work_file(pair, tmp_path):
    """An EnMAP product that does not overlap the MSI: the line names the product folder, not the hidden GeoTIFF."""
    far = enmap(tmp_path / "in", tile=(160, 160))
    out = tmp_path / "out"
    out.mkdir()
    proc = without_product_notes(run_cli("fuse", "--hsi", far["folder"], "--msi", pair["msi"], "--model", "glp",
                                         "--no-progress", "--out", out / "far.tif"))
    line = assert_failed_cleanly(proc, expect=r"do not overlap", absent=(out / "far.tif",), folders=(out,))
    assert ".products." not in line and f"'{far['folder']}'" in line
    assert hidden(out) == []


def test_block_task_errors_name_the_output_not_the_block_file(tmp_path):
    """A block task's failure names the user's output, not the hidden .<out>.blocks.XXXXXXXX/block_0000.tif."""
    from csakd_qgis.distributed.blocks import run_blocks
    from csakd_qgis.distributed.cluster import SerialExecutor

    def entry(out, **kw):
        raise CsakdError(f"Writing the fused output '{out}' failed (No space left on device).")

    out = tmp_path / "w.tif"
    with pytest.raises(CsakdError) as err:
        run_blocks(entry, {}, out, ex=SerialExecutor(), parts=1, retries=0)
    assert str(err.value) == f"Writing the fused output '{out}' failed (No space left on device)."
    assert os.listdir(tmp_path) == []


def test_cli_all_cloud_safe_is_called_cloudy_not_msi20(tmp_path):
    """A SAFE whose every pixel is cloud, without --msi20: the line says the product has no clear pixel."""
    prod = enmap(tmp_path / "enmap")
    s2 = sentinel2(tmp_path / "s2")
    all_cloud(s2["path"])
    out = tmp_path / "out"
    out.mkdir()
    proc = without_product_notes(run_cli("fuse", "--hsi", prod["folder"], "--msi", s2["path"], "--model", "glp",
                                         "--no-progress", "--out", out / "o.tif"))
    line = assert_failed_cleanly(proc, expect=r"has no clear pixel", absent=(out / "o.tif",), folders=(out,))
    assert "--msi20" not in line and s2["path"].name in line and hidden(out) == []


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory) -> dict:
    """LR-HSI of 1 x 1, 2 x 2 and 8 x 8 px (40 bands) with their HR-MSI at scale 4."""
    from affine import Affine
    from rasterio.crs import CRS

    from csakd_qgis.raster.io import write_raster

    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    crs, hr_tr, n = CRS.from_epsg(32633), Affine(10.0, 0.0, 360000.0, 0.0, -10.0, 5810000.0), 40
    out = {"dir": d}
    for px in (1, 2, 8):
        write_raster(d / f"lr{px}.tif", (0.1 + 0.2 * rng.random((n, px, px))).astype(np.float32), crs,
                     hr_tr * Affine.scale(4), wavelengths=list(np.linspace(420, 2400, n)), fwhm=[10.0] * n)
        write_raster(d / f"msi{px}.tif", (0.1 + 0.2 * rng.random((4, 4 * px, 4 * px))).astype(np.float32), crs, hr_tr,
                     wavelengths=[490.0, 560.0, 665.0, 842.0])
        out[px] = (d / f"lr{px}.tif", d / f"msi{px}.tif")
    return out


@pytest.mark.parametrize("px", [1, 2])
def test_cli_tiny_lr_hsi_is_called_tiny(tiny_pairs, tmp_path, px):
    lr, msi = tiny_pairs[px]
    before = snapshot(tiny_pairs["dir"])
    proc = run_cli("fuse", "--hsi", lr, "--msi", msi, "--model", "glp", "--no-progress", "--out", tmp_path / "o.tif")
    line = assert_failed_cleanly(proc, expect=rf"only {px} x {px} px", absent=(tmp_path / "o.tif",),
                                 folders=(tmp_path,), inputs=before)
    assert "cloud" not in line
    proc = run_cli("train", "--adapt", "--hsi", lr, "--msi", msi, "--steps", 1, "--no-progress",
                   "--out", tmp_path / "m.safetensors")
    line = assert_failed_cleanly(proc, expect=rf"LR-HSI \({px} x {px} px\) is smaller than the scale 4",
                                 absent=(tmp_path / "m.safetensors",), folders=(tmp_path,), inputs=before)
    assert "0 x 0" not in line


def test_cli_pair_too_small_to_adapt_is_not_blamed_on_clouds(tiny_pairs, tmp_path):
    lr, msi = tiny_pairs[8]
    proc = run_cli("train", "--adapt", "--hsi", lr, "--msi", msi, "--steps", 1, "--no-progress",
                   "--out", tmp_path / "m.safetensors")
    line = assert_failed_cleanly(proc, expect=r"too small to adapt a model on.*\(8 x 8 px\)",
                                 absent=(tmp_path / "m.safetensors",), folders=(tmp_path,))
    assert "cloud" not in line


@pytest.mark.qgis
def test_qgis_tiny_lr_hsi_is_called_tiny(tiny_pairs, tmp_path, profile):
    lr, msi = tiny_pairs[2]
    proc = run_qgis("csakd:fuse_classical", {"HSI": lr, "MSI": msi, "METHOD": "glp", "OUTPUT": tmp_path / "o.tif"},
                    profile)
    line = assert_failed_cleanly(proc, expect=r"only 2 x 2 px", absent=(tmp_path / "o.tif",), folders=(tmp_path,))
    assert "cloud" not in line


def test_a_hidden_work_file_left_in_a_message_is_named_by_what_it_is():
    """Last line of defence (CLI and Processing both print failure_message): no hidden work path reaches the user."""
    from csakd_qgis.failures import failure_message

    line = failure_message(CsakdError("Writing the MSI20 '/d/.csakd-msi20-ab_c12de/msi20_sharpened.tif' failed."))
    assert ".csakd-msi20-" not in line and "sharpened 20 m bands" in line
    line = failure_message(CsakdError("The HSI '/d/.s2_far.tif.products.nzj0o_7b/hsi.tif' is bad."))
    assert ".products." not in line and "work file" in line

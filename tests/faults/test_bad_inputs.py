"""Classes 3 and 4 and the input checks of QGIS: a truncated real GeoTIFF, all-nodata inputs, an empty .tif and an
HSI without wavelengths given to a zoo model. Each run fails with one line and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from _faults import assert_failed_cleanly, run_cli, run_qgis, snapshot
from _helpers_raster import MSI_SPEC

UNREADABLE = r"(truncat|not a readable|could not read|cannot be read|corrupt|incomplete|GDAL)"


def truncated_case(name: str, p: dict, bad, out) -> list:
    """argv of one subcommand reading the truncated GeoTIFF ``bad`` (as its main input) into folder ``out``."""
    return {
        "fuse": ["fuse", "--hsi", bad, "--msi", p["msi"], "--model", "glp", "--no-progress", "--out", out / "o.tif"],
        "coregister": ["coregister", "--hsi", bad, "--msi", p["msi"], "--out", out / "o.tif"],
        "superresolve": ["superresolve", "--hsi", bad, "--model", "bicubic", "--scale", 4, "--no-progress",
                         "--out", out / "o.tif"],
        "simulate": ["simulate", "--hsi", bad, "--scale", 4, "--sensor", MSI_SPEC, "--out-lr", out / "o.tif",
                     "--out-msi", out / "o2.tif"],
        "evaluate": ["evaluate", "--reference", p["reference"], "--fused", bad, "--scale", 4, "--json",
                     out / "o.json"],
        "train": ["train", "--adapt", "--hsi", bad, "--msi", p["msi"], "--steps", 1, "--no-progress",
                  "--out", out / "o.safetensors"],
    }[name]


@pytest.mark.parametrize("name", ["fuse", "coregister", "superresolve", "simulate", "evaluate", "train"])
def test_cli_truncated_geotiff(pair, truncated, tmp_path, name):
    before = snapshot(pair["dir"])
    proc = run_cli(*truncated_case(name, pair, truncated, tmp_path))
    assert_failed_cleanly(proc, expect=UNREADABLE, folders=(tmp_path, pair["dir"]), inputs=before)
    assert not list(tmp_path.iterdir())


@pytest.mark.qgis
def test_qgis_truncated_geotiff(pair, truncated, tmp_path, profile):
    before = snapshot(pair["dir"])
    proc = run_qgis("csakd:fuse_classical", {"HSI": truncated, "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": tmp_path / "o.tif"}, profile)
    assert_failed_cleanly(proc, expect=UNREADABLE, folders=(tmp_path, pair["dir"]), inputs=before)
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def nodata_inputs(pair, tmp_path_factory) -> dict:
    """Copies of the HSI and of the MSI whose every pixel is nodata."""
    d = tmp_path_factory.mktemp("nodata")
    out = {}
    for key in ("hsi", "msi"):
        with rasterio.open(pair[key]) as src:
            profile, tags = src.profile, [src.tags(b) for b in range(1, src.count + 1)]
        profile.update(nodata=-9999.0)
        dst = d / f"empty_{key}.tif"
        with rasterio.open(dst, "w", **profile) as ds:
            ds.write(np.full((profile["count"], profile["height"], profile["width"]), -9999.0, np.float32))
            for b, t in enumerate(tags, 1):
                ds.update_tags(b, **t)
        out[key] = dst
    out["dir"] = d
    return out


@pytest.mark.parametrize("case", ["superresolve", "coregister_hsi", "coregister_msi"])
def test_cli_all_nodata_input(pair, nodata_inputs, tmp_path, case):
    hsi = nodata_inputs["hsi"] if case != "coregister_msi" else pair["hsi"]
    msi = nodata_inputs["msi"] if case == "coregister_msi" else pair["msi"]
    argv = (["superresolve", "--hsi", hsi, "--model", "bicubic", "--scale", 4, "--no-progress"]
            if case == "superresolve" else ["coregister", "--hsi", hsi, "--msi", msi])
    proc = run_cli(*argv, "--out", tmp_path / "o.tif")
    assert_failed_cleanly(proc, expect=r"no valid pixel", folders=(tmp_path,))
    assert not list(tmp_path.iterdir())


@pytest.mark.qgis
@pytest.mark.parametrize("alg", ["csakd:superresolve", "csakd:coregister"])
def test_qgis_all_nodata_hsi(pair, nodata_inputs, tmp_path, profile, alg):
    params = {"HSI": nodata_inputs["hsi"], "OUTPUT": tmp_path / "o.tif"}
    params.update({"MODEL": "bicubic", "SCALE": 4} if alg.endswith("superresolve") else {"MSI": pair["msi"]})
    proc = run_qgis(alg, params, profile)
    assert_failed_cleanly(proc, expect=r"no valid pixel", folders=(tmp_path,))
    assert not list(tmp_path.iterdir())


@pytest.mark.qgis
def test_qgis_empty_tif_is_reported_as_such(pair, tmp_path, profile):
    """QGIS says 'not found' for an existing empty .tif; the plugin's own check must speak first."""
    empty = tmp_path / "inputs" / "empty.tif"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    proc = run_qgis("csakd:fuse_classical", {"HSI": empty, "MSI": pair["msi"], "METHOD": "glp",
                                             "OUTPUT": out / "o.tif"}, profile)
    line = assert_failed_cleanly(proc, expect=r"empty", folders=(out, empty.parent))
    assert "not found" not in line.lower()


def test_cli_hsi_without_wavelengths_refused_by_zoo_model(pair, needs_enmap, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    hsi = src / "no_wavelengths.tif"
    with rasterio.open(pair["hsi"]) as ds:
        profile, data = ds.profile, ds.read()
    with rasterio.open(hsi, "w", **profile) as ds:
        ds.write(data)
    before = snapshot(src, pair["dir"])
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("fuse", "--hsi", hsi, "--msi", pair["msi"], "--model", "enmap_s2-4band_x4", "--no-progress",
                   "--out", out / "o.tif")
    assert_failed_cleanly(proc, expect=r"wavelength", folders=(out,), inputs=before)
    assert not list(out.iterdir())


def test_cli_training_on_infinite_pixels_names_the_input(pair, tmp_path):
    """Inf pixels make the loss NaN: the message names the input, not the learning rate."""
    src = tmp_path / "in"
    src.mkdir()
    hsi = src / "inf_hsi.tif"
    with rasterio.open(pair["hsi"]) as ds:
        profile, data, tags = ds.profile, ds.read(), [ds.tags(b) for b in range(1, ds.count + 1)]
    data[:, 3:9, 4:12] = np.inf
    with rasterio.open(hsi, "w", **profile) as ds:
        ds.write(data)
        for b, t in enumerate(tags, 1):
            ds.update_tags(b, **t)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("train", "--adapt", "--hsi", hsi, "--msi", pair["msi"], "--init", "scratch", "--steps", 3,
                   "--patch", 8, "--batch-size", 2, "--no-progress", "--out", out / "m.safetensors")
    line = assert_failed_cleanly(proc, expect=r"input data .*non-finite", folders=(out,))
    assert "learning rate" not in line
    assert not list(out.iterdir())

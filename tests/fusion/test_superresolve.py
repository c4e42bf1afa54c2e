"""Single-image super-resolution (csakd superresolve / csakd:superresolve) through the tiled raster engine:
output grid and metadata, nodata, tiling exactness, no MSI needed, clear errors, Processing and qgis_process,
and the zoo model enmap_x4_sr against bicubic on the real EnMAP TEST tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch  # noqa: E402  (installed by make setup)
from conftest import ROOT, SHARED_DATA
from qgis_helpers import run_json

from csakd_qgis.errors import CancelledError, CsakdError  # noqa: E402
from csakd_qgis.fusion.superresolve import superresolve  # noqa: E402
from csakd_qgis.zoo.card import save_model  # noqa: E402

ZOO_SR = ROOT / "models" / "enmap_x4_sr"


def _meta(path):
    from csakd_qgis.raster.io import read_meta

    return read_meta(path)


@pytest.fixture(scope="module")
def sr_model(tmp_path_factory, synthetic_pair):
    """A small random (non-zero head) DODN student for the synthetic LR-HSI (40 bands, s = 4)."""
    from csakd_qgis.nets.dodn import DODNConfig, DODNStudent

    meta = _meta(synthetic_pair["hsi"])
    cfg = DODNConfig(hsi_bands=meta.count, msi_bands=4, scale=4, nf=8, n_blocks=1, c3d=2, depth=8, head_kernel=3,
                     zero_head=False)
    torch.manual_seed(0)
    model = DODNStudent(cfg)
    with torch.no_grad():
        model.head.weight.mul_(0.1)
    d = tmp_path_factory.mktemp("srmodel")
    save_model(d / "tiny_sr", model, {"role": "student", "name": "tiny_sr", "hsi": {
        "bands": meta.count, "wavelengths": meta.wavelengths, "fwhm": meta.fwhm},
        "msi": {"bands": 4, "band_names": ["B2", "B3", "B4", "B8"], "usage": "privileged"}})
    return d / "tiny_sr.safetensors"


@pytest.fixture(scope="module")
def fusion_model(tmp_path_factory, synthetic_pair):
    """A small CSAKD fusion student (arch csakd): superresolve must refuse it clearly."""
    from csakd_qgis.nets.csakd import build_model as build_csakd
    from csakd_qgis.nets.csakd import preset_configs

    n = _meta(synthetic_pair["hsi"]).count
    cfg = preset_configs("lite", n, 4, 4)[1]
    d = tmp_path_factory.mktemp("fusionmodel")
    save_model(d / "fusion", build_csakd(cfg), {"role": "student"})
    return d / "fusion.safetensors"


def _lr_with_nodata_and_bad_band(src: Path, dst: Path) -> np.ndarray:
    """Copy of the LR-HSI with one nodata pixel in band 3 and the last band flagged bad (bbl = 0)."""
    from csakd_qgis.raster.io import GeoTiffWriter, read_reflectance

    meta = _meta(src)
    data = read_reflectance(src)
    data[2, 5, 6] = np.nan
    bbl = [1] * (meta.count - 1) + [0]
    with GeoTiffWriter(dst, meta.width, meta.height, meta.count, meta.crs, meta.transform, meta.wavelengths,
                       meta.fwhm, bbl=bbl, descriptions=[f"my band {i}" for i in range(meta.count)]) as wr:
        wr.write(data)
    return data


# --------------------------------------------------------------------------------------------- engine
def test_bicubic_grid_metadata_nodata_and_bad_bands(tmp_path, synthetic_pair):
    from affine import Affine

    from csakd_qgis.raster.resample import upsample_bicubic

    lr_path = tmp_path / "lr.tif"
    data = _lr_with_nodata_and_bad_band(synthetic_pair["hsi"], lr_path)
    out = tmp_path / "sr.tif"
    res = superresolve(lr_path, out, model="bicubic", scale=4, tile=32, overlap=8)
    assert res.n_tiles == 9 and res.scale == 4 and res.bands == data.shape[0]
    assert any("bad band" in m for m in res.messages)
    with rasterio.open(lr_path) as src, rasterio.open(out) as ds:
        assert ds.crs == src.crs and ds.transform.almost_equals(src.transform * Affine.scale(0.25))
        assert (ds.width, ds.height) == (4 * src.width, 4 * src.height) and ds.count == src.count
        assert ds.res == (src.res[0] / 4, src.res[1] / 4)
        assert ds.bounds == src.bounds  # same origin and footprint
        assert ds.descriptions == src.descriptions and ds.nodata == -9999
        for b in (1, ds.count):
            assert ds.tags(b)["wavelength"] == src.tags(b)["wavelength"] and ds.tags(b)["fwhm"] == src.tags(b)["fwhm"]
        assert ds.tags(ds.count)["bbl"] == "0"
        assert json.loads(ds.tags()["CSAKD_SUPERRESOLUTION"])["model"] == "bicubic"
        sr = ds.read(masked=True).filled(np.nan)
    assert np.isnan(sr[-1]).all()  # the bad band is kept as nodata
    assert np.isnan(sr[2, 20:24, 24:28]).all() and np.isfinite(sr[3, 20:24, 24:28]).all()  # nodata kept per band
    # tiled == whole image (NaN fill ties: ~4e-6), with the context beyond the raster mirrored like fuse's
    ref = upsample_bicubic(np.pad(data[:-1], ((0, 0), (2, 2), (2, 2)), mode="symmetric"), 4)[:, 8:-8, 8:-8]
    np.testing.assert_allclose(sr[:-1], ref, atol=1e-5)


def test_scaled_integer_input_keeps_its_nodata_value(tmp_path, synthetic_pair):
    from csakd_qgis.raster.io import read_reflectance

    src_meta = _meta(synthetic_pair["hsi"])
    data = read_reflectance(synthetic_pair["hsi"])
    raw = np.round(data * 10000).astype(np.int16)
    raw[:, 0, 0] = -32768
    p = tmp_path / "int16.tif"
    with rasterio.open(p, "w", driver="GTiff", width=src_meta.width, height=src_meta.height, count=src_meta.count,
                       dtype="int16", crs=src_meta.crs, transform=src_meta.transform, nodata=-32768) as ds:
        ds.write(raw)
        ds.scales = [1e-4] * src_meta.count
    out = tmp_path / "sr.tif"
    superresolve(p, out, model="bicubic", scale=2, tile=64, overlap=8)
    with rasterio.open(out) as ds:
        assert ds.nodata == -32768 and ds.dtypes[0] == "float32" and ds.res == (src_meta.res[0] / 2,) * 2
        sr = ds.read()
    assert (sr[:, :2, :2] == -32768).all() and 0 < np.median(sr[:, 4:, 4:]) < 1  # reflectance, nodata kept


def test_model_needs_no_msi_and_tiles_match_the_whole_raster(tmp_path, synthetic_pair, sr_model):
    from csakd_qgis.fusion.superresolve import receptive_halo_lr
    from csakd_qgis.raster.io import read_reflectance
    from csakd_qgis.raster.resample import upsample_bicubic
    from csakd_qgis.zoo.card import load_model

    tiled, whole = tmp_path / "tiled.tif", tmp_path / "whole.tif"
    r1 = superresolve(synthetic_pair["hsi"], tiled, model=str(sr_model), device="cpu", tile=32, overlap=8, batch=3)
    r2 = superresolve(synthetic_pair["hsi"], whole, model=str(sr_model), device="cpu", tile=4096)
    assert r1.n_tiles == 9 and r2.n_tiles == 1 and r1.model == "tiny_sr" and r1.device_used.startswith("cpu")
    with rasterio.open(tiled) as a, rasterio.open(whole) as b:
        ya, yb = a.read(), b.read()
    np.testing.assert_allclose(ya, yb, atol=2e-5)  # halo >= receptive field: seams are invisible
    lr = read_reflectance(synthetic_pair["hsi"])
    assert np.abs(ya - upsample_bicubic(lr, 4)).max() > 1e-4  # the network changes the bicubic image
    model, card = load_model(sr_model)
    with torch.no_grad():
        direct = model(torch.from_numpy(lr)[None])[0][0].numpy()  # the LR-HSI is the only input
    m = receptive_halo_lr(card["config"]) * 4
    np.testing.assert_allclose(ya[:, m:-m, m:-m], direct[:, m:-m, m:-m], atol=2e-5)


def test_cancel_and_errors_leave_nothing(tmp_path, synthetic_pair, sr_model, fusion_model):
    out = tmp_path / "sr.tif"
    with pytest.raises(CancelledError):
        superresolve(synthetic_pair["hsi"], out, model=str(sr_model), device="cpu", tile=32, overlap=8,
                     cancel=lambda: True)
    with pytest.raises(CsakdError, match="fusion model"):
        superresolve(synthetic_pair["hsi"], out, model=str(fusion_model), device="cpu")
    with pytest.raises(CsakdError, match="scale"):
        superresolve(synthetic_pair["hsi"], out, model="bicubic")
    with pytest.raises(CsakdError, match="scale"):
        superresolve(synthetic_pair["hsi"], out, model=str(sr_model), scale=3, device="cpu")
    with pytest.raises(CsakdError, match="Unknown super-resolution model"):
        superresolve(synthetic_pair["hsi"], out, model="no_such_zoo_model")
    assert [p.name for p in tmp_path.iterdir()] == []


# --------------------------------------------------------------------------------------------- CLI
def _subset_bands(src: Path, dst: Path, n: int) -> None:
    from csakd_qgis.raster.io import read_reflectance, write_raster

    meta = _meta(src)
    write_raster(dst, read_reflectance(src)[:n], meta.crs, meta.transform, meta.wavelengths[:n], meta.fwhm[:n])


def test_cli_superresolve(tmp_path, synthetic_pair, sr_model, capsys):
    from csakd_qgis.cli import main

    out = tmp_path / "sr.tif"
    assert main(["superresolve", "--hsi", str(synthetic_pair["hsi"]), "--model", str(sr_model), "--out", str(out),
                 "--device", "cpu", "--tile", "32", "--overlap", "8", "--batch", "2", "--no-progress"]) == 0
    assert "64 x 64 px" in capsys.readouterr().out and out.is_file()
    few = tmp_path / "few_bands.tif"
    _subset_bands(synthetic_pair["hsi"], few, 20)
    cases = [
        (["--hsi", str(synthetic_pair["hsi"]), "--model", str(tmp_path / "missing.safetensors")], "does not exist"),
        (["--hsi", str(few), "--model", str(sr_model)], "20 bands but tiny_sr expects 40"),
        (["--hsi", str(synthetic_pair["hsi"]), "--model", "bicubic"], "scale"),
    ]
    for args, msg in cases:
        bad = tmp_path / "bad.tif"
        assert main(["superresolve", *args, "--out", str(bad), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("csakd: error:") and msg in err, err
        assert not bad.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


# --------------------------------------------------------------------------------------------- QGIS
@pytest.mark.qgis
def test_processing_run_superresolve(provider, synthetic_pair, sr_model, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingException

    import processing

    alg = QgsApplication.processingRegistry().algorithmById("csakd:superresolve")
    assert alg.group() == "Single-image super-resolution" and alg.parameterDefinition("MSI") is None
    assert len(alg.shortHelpString()) > 200
    out = tmp_path / "sr.tif"
    res = processing.run("csakd:superresolve", {
        "HSI": str(synthetic_pair["hsi"]), "MODEL": "file", "MODEL_FILE": str(sr_model), "DEVICE": "cpu",
        "TILE": 32, "OVERLAP": 8, "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out) and res["DEVICE_USED"] == "cpu" and res["N_TILES"] == 9
    assert "SHIFT_X" not in res
    with rasterio.open(out) as ds, rasterio.open(synthetic_pair["hsi"]) as src:
        assert ds.crs == src.crs and ds.res == (src.res[0] / 4, src.res[1] / 4) and ds.bounds == src.bounds
        assert ds.count == src.count and ds.descriptions == src.descriptions
    out_b = tmp_path / "sr_bicubic.tif"
    res = processing.run("csakd:superresolve", {"HSI": str(synthetic_pair["hsi"]), "MODEL": "bicubic", "SCALE": 2,
                                                "OUTPUT": str(out_b)})
    with rasterio.open(out_b) as ds:
        assert ds.res == (20.0, 20.0)
    with pytest.raises(QgsProcessingException):
        processing.run("csakd:superresolve", {"HSI": str(synthetic_pair["hsi"]), "MODEL": "file",
                                              "MODEL_FILE": str(tmp_path / "nope.safetensors"),
                                              "OUTPUT": str(tmp_path / "nope.tif")})
    assert not (tmp_path / "nope.tif").exists()


@pytest.mark.qgis
def test_qgis_process_superresolve_and_bad_inputs(tmp_path, synthetic_pair, sr_model):
    out = tmp_path / "sr.tif"
    rc, data, err = run_json("csakd:superresolve", {
        "HSI": synthetic_pair["hsi"], "MODEL": "file", "MODEL_FILE": sr_model, "DEVICE": "cpu", "OUTPUT": out},
        tmp_path / "profile")
    assert rc == 0, err
    assert data["results"]["OUTPUT"] == str(out) and data["results"]["DEVICE_USED"] == "cpu"
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height) == (64, 64) and ds.res == (10.0, 10.0)
    few = tmp_path / "few_bands.tif"
    _subset_bands(synthetic_pair["hsi"], few, 20)
    for name, hsi, model_file, expect in (
            ("missing_model", synthetic_pair["hsi"], tmp_path / "missing.safetensors", "does not exist"),
            ("band_mismatch", few, sr_model, "expects 40")):
        bad = tmp_path / f"bad_{name}.tif"
        rc, _, err = run_json("csakd:superresolve", {"HSI": hsi, "MODEL": "file", "MODEL_FILE": model_file,
                                                     "DEVICE": "cpu", "OUTPUT": bad}, tmp_path / "profile")
        assert rc == 1, err
        assert expect in err, err
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("bad_", ".bad_"))]


# --------------------------------------------------------------------------------------------- real EnMAP
@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATA / "enmap_potsdam").is_dir(),
                    reason="needs ../shared/data/enmap_potsdam (real EnMAP tiles; absent in a user's clone)")
def test_zoo_enmap_x4_sr_beats_bicubic_on_test_tiles(tmp_path):
    """TEST = EnMAP tiles 160_160 + 192_160 (never used in training or selection), Wald LR at s = 4, run through
    the tiled raster engine (csakd superresolve with several tiles) and compared with the 30 m reference."""
    from affine import Affine

    from csakd_qgis.quality.metrics import compute_metrics
    from csakd_qgis.raster.io import read_reflectance, write_raster
    from csakd_qgis.spectral.degrade import wald_degrade
    from csakd_qgis.training.corpus import enmap_block
    from csakd_qgis.zoo.card import read_card

    assert ZOO_SR.with_suffix(".json").is_file(), "models/enmap_x4_sr.json is missing (scripts/train_dodn.py)"
    hr, wl, fw, geo = enmap_block([(160, 160), (192, 160)])
    lr = wald_degrade(hr, 4)
    lr_path = tmp_path / "test_lr.tif"
    write_raster(lr_path, lr, geo["crs"], geo["transform"] * Affine.scale(4), list(wl), list(fw))
    scores = {}
    for model in ("enmap_x4_sr", "bicubic"):
        out = tmp_path / f"{model}.tif"
        res = superresolve(lr_path, out, model=model, scale=4, device="cpu", tile=32, overlap=16)
        assert res.n_tiles > 1
        scores[model] = compute_metrics(hr, read_reflectance(out), 4, mask=np.isfinite(hr).all(0))
    s, b = scores["enmap_x4_sr"], scores["bicubic"]
    print({k: {m: round(v[m], 3) for m in ("psnr", "sam", "ergas")} for k, v in scores.items()})
    assert s["psnr"] > b["psnr"] + 0.1 and s["sam"] < b["sam"] and s["ergas"] < b["ergas"]
    card = read_card(ZOO_SR)
    card_m = next(iter(card["validation"]["test"]["metrics"]["student"].values()))
    assert abs(card_m["psnr"] - s["psnr"]) < 0.05  # the card's held-out numbers are what the engine delivers
    assert card["arch"] == "dodn" and card["training"]["split"]["test"] == ["160_160", "192_160"]

"""Every Processing algorithm of the provider, run for real: processing.run, qgis_process, bad inputs,
the task manager (worker thread, cancel) and the algorithm dialog (screenshot).

Each test checks the outputs (numbers against an independent computation, CRS, grid, band metadata),
not just the exit code. The learned-model tests use a small CSAKD student saved with its model card
(:func:`make_tiny_model`); its output is compared with the network run directly on the whole image.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import ROOT
from qgis_helpers import assert_same_grid, leftovers, run_json, unwritable_folder

from csakd_qgis.temporaries import is_temporary_name

pytestmark = pytest.mark.qgis

INTERIOR = (slice(None), slice(8, -8), slice(8, -8))  # HR pixels away from the image border


# ----------------------------------------------------------------------------------------------- helpers
def make_tiny_model(folder: Path, lr_path: Path, name: str = "tiny_test") -> dict:
    """A small CSAKD student (lite preset) for the pair's band counts and scale, saved with a valid card.

    The last head conv is scaled down so the output is the bilinear-upsampled HSI plus a small, non-zero
    network correction: numbers stay plausible and differ measurably from plain upsampling.
    """
    import torch

    from csakd_qgis.nets.csakd import build_model, preset_configs
    from csakd_qgis.raster.io import read_meta
    from csakd_qgis.zoo.card import save_model

    meta = read_meta(lr_path)
    _, student_cfg = preset_configs("lite", hsi_bands=meta.count, msi_bands=4, scale=4)
    torch.manual_seed(0)
    net = build_model(student_cfg).eval()
    with torch.no_grad():
        net.head2.weight.mul_(0.05)
    card = {"role": "student", "name": name,
            "hsi": {"wavelengths": meta.wavelengths, "fwhm": meta.fwhm, "sensor": "synthetic 40-band"},
            "msi": {"sensor": "Sentinel-2A", "band_names": ["B2", "B3", "B4", "B8"]},
            "training": {"note": "untrained test model"}}
    json_path, st_path = save_model(folder / name, net, card)
    return {"path": st_path, "card": json_path, "net": net, "name": name}


def direct_forward(net, lr_path, msi_path) -> np.ndarray:
    """The network on the whole LR-HSI / HR-MSI rasters in one pass (the reference for tiled runs)."""
    import torch

    with rasterio.open(lr_path) as a, rasterio.open(msi_path) as b:
        lr, msi = a.read(), b.read()
    with torch.inference_mode():
        return net(torch.from_numpy(lr)[None], torch.from_numpy(msi)[None])[0][0].numpy()


def bilinear_up(lr_path, scale: int = 4) -> np.ndarray:
    import torch

    with rasterio.open(lr_path) as ds:
        lr = torch.from_numpy(ds.read())[None]
    return torch.nn.functional.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=False)[0].numpy()


def read(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def assert_hsi_metadata(out, hsi) -> None:
    """Band count, descriptions and wavelength/FWHM tags of ``out`` are those of the HSI ``hsi``."""
    with rasterio.open(out) as o, rasterio.open(hsi) as h:
        assert o.count == h.count
        assert o.descriptions == h.descriptions
        for b in range(1, h.count + 1):
            assert float(o.tags(b)["wavelength"]) == pytest.approx(float(h.tags(b)["wavelength"]), abs=1e-3)
            assert float(o.tags(b)["fwhm"]) == pytest.approx(float(h.tags(b)["fwhm"]), abs=1e-3)


def far_copy(src, dst, dx: float = 100_000.0) -> Path:
    """A copy of ``src`` moved ``dx`` metres east (same CRS and pixel grid, no overlap with the original)."""
    from affine import Affine

    shutil.copy(src, dst)
    with rasterio.open(dst, "r+") as ds:
        ds.transform = Affine.translation(dx, 0.0) * ds.transform
    return Path(dst)


def geographic_copy(src, dst) -> Path:
    """A copy of ``src`` labelled as WGS 84 longitude/latitude (degrees)."""
    from rasterio.transform import from_origin

    shutil.copy(src, dst)
    with rasterio.open(dst, "r+") as ds:
        ds.crs = "EPSG:4326"
        ds.transform = from_origin(13.0, 52.42, 0.0001, 0.0001)
    return Path(dst)


def band_subset(src, dst, n: int) -> Path:
    """The first ``n`` bands of an HSI with their wavelength/FWHM metadata."""
    from csakd_qgis.raster.io import read_meta, write_raster

    meta = read_meta(src)
    with rasterio.open(src) as ds:
        data = ds.read(list(range(1, n + 1)))
        crs, transform = ds.crs, ds.transform
    write_raster(dst, data, crs, transform, wavelengths=meta.wavelengths[:n], fwhm=meta.fwhm[:n])
    return Path(dst)


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, synthetic_pair) -> dict:
    return make_tiny_model(tmp_path_factory.mktemp("model"), synthetic_pair["hsi"])


@pytest.fixture(scope="session")
def shifted_pair(tmp_path_factory, synthetic_pair) -> dict:
    """The synthetic pair with the LR-HSI content moved by (+0.4, -0.3) LR pixels."""
    from csakd_qgis.raster.simulate import simulate_rasters

    d = tmp_path_factory.mktemp("shifted")
    lr, msi = d / "lr_shifted.tif", d / "msi.tif"
    simulate_rasters(str(synthetic_pair["reference"]), "S2A:B2,B3,B4,B8", 4, str(lr), str(msi), shift=(0.4, -0.3))
    return {"hsi": lr, "msi": msi, "shift": (0.4, -0.3)}


@pytest.fixture(scope="session")
def glp_fused(tmp_path_factory, synthetic_pair) -> Path:
    from csakd_qgis.fusion.fuse import fuse

    out = tmp_path_factory.mktemp("glp") / "fused_glp.tif"
    fuse(synthetic_pair["hsi"], synthetic_pair["msi"], out, model="glp")
    return out


def test_provider_lists_every_algorithm(provider):
    from qgis.core import QgsApplication

    ids = sorted(a.id() for a in QgsApplication.processingRegistry().providerById("csakd").algorithms())
    assert {"csakd:coregister", "csakd:evaluate", "csakd:fuse", "csakd:fuse_classical",
            "csakd:simulate_pair"} <= set(ids)  # the ones tested here (others have their own test files)
    for alg_id in ids:
        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        assert len(alg.shortHelpString()) > 200 and alg.group() and alg.displayName()


# ------------------------------------------------------------------------------------ processing.run
def test_fuse_classical_processing_run(provider, synthetic_pair, tmp_path):
    import processing

    out = tmp_path / "fused_glp.tif"
    res = processing.run("csakd:fuse_classical", {
        "HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"]), "METHOD": "glp", "TILE": 32,
        "OVERLAP": 8, "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out)
    assert res["DEVICE_USED"] == "cpu" and res["N_TILES"] == 9 and res["ELAPSED_S"] > 0
    assert abs(res["SHIFT_X"]) < 0.05 and abs(res["SHIFT_Y"]) < 0.05  # the simulated pair is registered
    assert_same_grid(out, synthetic_pair["msi"])
    assert_hsi_metadata(out, synthetic_pair["hsi"])
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.res == (10.0, 10.0) and ds.nodata == -9999
        assert json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "glp"
        fused = ds.read()
    ref = read(synthetic_pair["reference"])
    nearest = np.kron(read(synthetic_pair["hsi"]), np.ones((1, 4, 4), np.float32))  # pixel replication
    assert rmse(fused, ref) < 0.02
    assert rmse(fused, ref) < 0.6 * rmse(nearest, ref)  # the MSI detail really went in


def test_fuse_learned_model_processing_run(provider, synthetic_pair, tiny_model, tmp_path):
    import processing

    out = tmp_path / "fused_tiny.tif"
    res = processing.run("csakd:fuse", {
        "HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"]), "MODEL": "file",
        "MODEL_FILE": str(tiny_model["path"]), "DEVICE": "cpu", "TILE": 32, "OVERLAP": 16, "BATCH": 2,
        "OUTPUT": str(out)})
    assert res["DEVICE_USED"] == "cpu" and res["N_TILES"] == 9
    assert_same_grid(out, synthetic_pair["msi"])
    assert_hsi_metadata(out, synthetic_pair["hsi"])
    with rasterio.open(out) as ds:
        tag = json.loads(ds.tags()["CSAKD_FUSION"])
        fused = ds.read()
    assert tag["model"] == "tiny_test" and tag["device"].startswith("cpu") and tag["tile"] == 32
    expected = direct_forward(tiny_model["net"], synthetic_pair["hsi"], synthetic_pair["msi"])
    np.testing.assert_allclose(fused[INTERIOR], expected[INTERIOR], atol=1e-4)  # tiles blend to the whole
    assert np.abs(fused - bilinear_up(synthetic_pair["hsi"]))[INTERIOR].max() > 1e-3  # the network acted
    assert np.isfinite(fused).all()


def test_coregister_processing_run_corrects_a_known_shift(provider, shifted_pair, synthetic_pair, tmp_path):
    import processing

    out = tmp_path / "coregistered.tif"
    res = processing.run("csakd:coregister", {"HSI": str(shifted_pair["hsi"]), "MSI": str(shifted_pair["msi"]),
                                              "SHIFT_CORRECT": True, "OUTPUT": str(out)})
    assert res["SCALE"] == 4
    assert res["SHIFT_X"] == pytest.approx(0.4, abs=0.05) and res["SHIFT_Y"] == pytest.approx(-0.3, abs=0.05)
    assert_same_grid(out, synthetic_pair["hsi"])  # the LR grid aligned to the MSI: origin, 40 m pixels
    assert_hsi_metadata(out, shifted_pair["hsi"])
    with rasterio.open(out) as ds:
        assert json.loads(ds.tags()["CSAKD_COREGISTER"])["shift_corrected"] is True
    truth, moved, corrected = read(synthetic_pair["hsi"]), read(shifted_pair["hsi"]), read(out)
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert rmse(corrected[inner], truth[inner]) < 0.3 * rmse(moved[inner], truth[inner])


def test_simulate_pair_processing_run(provider, synthetic_pair, tmp_path):
    import processing

    lr, msi = tmp_path / "sim_lr.tif", tmp_path / "sim_msi.tif"
    res = processing.run("csakd:simulate_pair", {"HSI": str(synthetic_pair["reference"]),
                                                 "SENSOR": "S2A:B2,B3,B4,B8", "SCALE": 4, "SNR": 0,
                                                 "OUTPUT_LR": str(lr), "OUTPUT_MSI": str(msi)})
    assert res == {"OUTPUT_LR": str(lr), "OUTPUT_MSI": str(msi)}
    ref = read(synthetic_pair["reference"])
    with rasterio.open(lr) as dl, rasterio.open(msi) as dm, rasterio.open(synthetic_pair["reference"]) as dr:
        assert (dl.width, dl.height, dl.count) == (16, 16, 40) and dl.crs == dr.crs
        assert dl.transform.almost_equals(dr.transform * dr.transform.scale(4, 4))  # same origin, 40 m
        assert (dm.width, dm.height, dm.count) == (64, 64, 4) and dm.transform.almost_equals(dr.transform)
        assert [d.split()[0] for d in dm.descriptions] == ["B2", "B3", "B4", "B8"]
        centres = [float(dm.tags(b)["wavelength"]) for b in range(1, 5)]
        ref_wl = [float(dr.tags(b)["wavelength"]) for b in range(1, 41)]
        lr_data, msi_data = dl.read(), dm.read()
    assert np.allclose(centres, [492, 560, 665, 833], atol=15)
    # each MSI band ~ the reference spectrum at the band centre (smooth spectra), pixel by pixel
    for k, c in enumerate(centres):
        at_centre = np.apply_along_axis(lambda s, c=c: np.interp(c, ref_wl, s), 0, ref)
        assert np.abs(msi_data[k] - at_centre).mean() < 0.01
    # the LR-HSI is the blurred block mean: band means are kept, spatial detail is lost
    assert np.allclose(lr_data.mean(axis=(1, 2)), ref.mean(axis=(1, 2)), atol=2e-3)
    assert lr_data.std() < ref.std()


def test_evaluate_processing_run(provider, synthetic_pair, glp_fused, tmp_path):
    import processing

    report, js = tmp_path / "report.html", tmp_path / "metrics.json"
    res = processing.run("csakd:evaluate", {"FUSED": str(glp_fused), "REFERENCE": str(synthetic_pair["reference"]),
                                            "LR": str(synthetic_pair["hsi"]), "SCALE": 4, "JSON": str(js),
                                            "REPORT": str(report)})
    fused, ref = read(glp_fused), read(synthetic_pair["reference"])
    assert res["RMSE"] == pytest.approx(rmse(fused, ref), rel=1e-4)
    assert res["PSNR"] > res["BICUBIC_PSNR"] > 20 and res["SAM"] < res["BICUBIC_SAM"]
    assert res["ERGAS"] < res["BICUBIC_ERGAS"] and 0.9 < res["SSIM"] <= 1.0
    data = json.loads(js.read_text())
    for m in ("psnr", "sam", "ergas", "rmse", "ssim"):
        # float(): strict JSON writes a PSNR of +inf (a band reproduced exactly) as the string "inf"
        assert float(data[m]) == pytest.approx(res[m.upper()])
        assert float(data["bicubic"][m]) == pytest.approx(res[f"BICUBIC_{m.upper()}"])
    assert data["n_bands"] == 40 and data["n_pixels"] == 64 * 64
    html = report.read_text()
    assert html.lstrip().lower().startswith(("<!doctype html", "<html")) and "PSNR" in html
    assert "data:image/png;base64" in html and len(html) > 20_000  # the figures are embedded


def test_evaluate_without_reference_processing_run(provider, synthetic_pair, glp_fused, tmp_path):
    import processing

    report, js = tmp_path / "noref.html", tmp_path / "noref.json"
    res = processing.run("csakd:evaluate", {"FUSED": str(glp_fused), "LR": str(synthetic_pair["hsi"]),
                                            "MSI": str(synthetic_pair["msi"]), "JSON": str(js),
                                            "REPORT": str(report)})
    data = json.loads(js.read_text())
    assert data["mode"] == "no reference" and data["scale"] == 4
    assert res["HQNR"] == pytest.approx((1 - res["D_LAMBDA"]) * (1 - res["D_S"]))
    assert 0.8 < res["HQNR"] <= 1 and 0 <= res["D_LAMBDA"] < 0.1 and res["SPECTRAL_PSNR"] > 30
    assert res["SPECTRAL_RESIDUAL"] == pytest.approx(data["spectral"]["rel_rmse"])
    assert res["SPATIAL_RESIDUAL"] == pytest.approx(data["spatial"]["rel_rmse"])
    # 16 x 16 LR px: too small for a second degradation by 4, so the reduced-resolution check says why
    assert math.isnan(res["REDUCED_PSNR"]) and "too small" in data["reduced_resolution"]["skipped"]
    assert math.isnan(res["PSNR"])  # no reference, no full-reference metric
    assert "Quality without a reference" in report.read_text()


# ----------------------------------------------------------------------------------------- qgis_process
def test_fuse_classical_qgis_process(synthetic_pair, tmp_path):
    from csakd_qgis.raster.resample import upsample_bicubic

    out = tmp_path / "fused_bicubic.tif"
    rc, data, err = run_json("csakd:fuse_classical", {
        "HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"], "METHOD": "bicubic", "TILE": 32,
        "CREATION_OPTIONS": "COMPRESS=LZW", "OUTPUT": out}, tmp_path / "profile")
    assert rc == 0, err
    r = data["results"]
    assert r["OUTPUT"] == str(out) and r["DEVICE_USED"] == "cpu" and r["N_TILES"] > 1
    assert_same_grid(out, synthetic_pair["msi"])
    assert_hsi_metadata(out, synthetic_pair["hsi"])
    with rasterio.open(out) as ds:
        assert ds.profile["compress"].lower() == "lzw"
        fused = ds.read()
    # the engine mirrors the context beyond the raster, in-memory bicubic repeats the edge pixel: compare
    # away from the outermost 2 LR px (the cubic kernel's reach)
    want = upsample_bicubic(read(synthetic_pair["hsi"]), 4)
    np.testing.assert_allclose(fused[:, 8:-8, 8:-8], want[:, 8:-8, 8:-8], atol=1e-5)
    np.testing.assert_allclose(fused, want, atol=1e-2)


def test_fuse_learned_model_qgis_process(synthetic_pair, tiny_model, tmp_path):
    out = tmp_path / "fused_tiny.tif"
    rc, data, err = run_json("csakd:fuse", {
        "HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"], "MODEL": "file",
        "MODEL_FILE": tiny_model["path"], "DEVICE": "cpu", "OUTPUT": out}, tmp_path / "profile")
    assert rc == 0, err
    r = data["results"]
    assert r["DEVICE_USED"] == "cpu" and r["N_TILES"] == 1 and r["OUTPUT"] == str(out)
    assert "tiny_test" in data["log"] or "tiny_test" in json.dumps(data)
    assert_same_grid(out, synthetic_pair["msi"])
    assert_hsi_metadata(out, synthetic_pair["hsi"])
    expected = direct_forward(tiny_model["net"], synthetic_pair["hsi"], synthetic_pair["msi"])
    np.testing.assert_allclose(read(out)[INTERIOR], expected[INTERIOR], atol=1e-4)


def test_coregister_qgis_process(synthetic_pair, tmp_path):
    out = tmp_path / "coregistered.tif"
    rc, data, err = run_json("csakd:coregister", {"HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"],
                                                  "SHIFT_CORRECT": "false", "OUTPUT": out}, tmp_path / "profile")
    assert rc == 0, err
    r = data["results"]
    assert r["SCALE"] == 4 and abs(r["SHIFT_X"]) < 0.05 and abs(r["SHIFT_Y"]) < 0.05
    assert_same_grid(out, synthetic_pair["hsi"])
    assert_hsi_metadata(out, synthetic_pair["hsi"])
    assert np.array_equal(read(out), read(synthetic_pair["hsi"]))  # already aligned: copied, not resampled


def test_simulate_pair_qgis_process(synthetic_pair, tmp_path):
    lr, msi = tmp_path / "lr_x2.tif", tmp_path / "msi_2band.tif"
    rc, data, err = run_json("csakd:simulate_pair", {
        "HSI": synthetic_pair["reference"], "SENSOR": "gaussian:560/35,842/115", "SCALE": 2, "SNR": 40,
        "OUTPUT_LR": lr, "OUTPUT_MSI": msi}, tmp_path / "profile")
    assert rc == 0, err
    assert data["results"] == {"OUTPUT_LR": str(lr), "OUTPUT_MSI": str(msi)}
    with rasterio.open(lr) as dl, rasterio.open(msi) as dm:
        assert (dl.width, dl.height, dl.count, dl.res) == (32, 32, 40, (20.0, 20.0))
        assert (dm.width, dm.height, dm.count, dm.res) == (64, 64, 2, (10.0, 10.0))
        assert [round(float(dm.tags(b)["wavelength"])) for b in (1, 2)] == [560, 842]
    # SNR 40 dB: per band, the noise std is 1/100 of the noise-free band's RMS
    from csakd_qgis.raster.simulate import simulate_rasters

    clean_lr, clean_msi = tmp_path / "clean_lr.tif", tmp_path / "clean_msi.tif"
    simulate_rasters(str(synthetic_pair["reference"]), "gaussian:560/35,842/115", 2, str(clean_lr), str(clean_msi))
    for noisy, clean in ((read(lr), read(clean_lr)), (read(msi), read(clean_msi))):
        noise_std = (noisy - clean).std(axis=(1, 2))
        band_rms = np.sqrt((clean.astype(float) ** 2).mean(axis=(1, 2)))
        np.testing.assert_allclose(noise_std, band_rms / 100.0, rtol=0.15)


def test_evaluate_qgis_process(synthetic_pair, glp_fused, tmp_path):
    report, js = tmp_path / "report.html", tmp_path / "metrics.json"
    rc, data, err = run_json("csakd:evaluate", {"FUSED": glp_fused, "REFERENCE": synthetic_pair["reference"],
                                                "SCALE": 4, "JSON": js, "REPORT": report}, tmp_path / "profile")
    assert rc == 0, err
    r = data["results"]
    metrics = json.loads(js.read_text())
    assert r["RMSE"] == pytest.approx(rmse(read(glp_fused), read(synthetic_pair["reference"])), rel=1e-4)
    # qgis_process JSON has no infinity: a PSNR of +inf (a band reproduced exactly) comes back as null
    psnr = float("inf") if r["PSNR"] is None else r["PSNR"]
    assert psnr == pytest.approx(float(metrics["psnr"])) and r["BICUBIC_PSNR"] == pytest.approx(metrics["bicubic"]["psnr"])
    assert metrics["psnr_capped"] > metrics["bicubic"]["psnr_capped"]
    assert r["REPORT"] == str(report) and report.stat().st_size > 20_000


# ------------------------------------------------------------------------------------------ bad inputs
def _bad_case(case: str, tmp_path: Path, pair: dict, model: dict) -> tuple[str, dict, str]:
    """(algorithm, parameters without outputs, expected message fragment) of a failing run."""
    hsi, msi = pair["hsi"], pair["msi"]
    learned = {"MODEL": "file", "MODEL_FILE": model["path"], "DEVICE": "cpu"}
    if case == "fuse_wrong_band_count":
        return "csakd:fuse", {"HSI": band_subset(hsi, tmp_path / "hsi_30.tif", 30), "MSI": msi, **learned}, \
            "has 30 bands but tiny_test expects 40"
    if case == "fuse_missing_model_file":
        return "csakd:fuse", {"HSI": hsi, "MSI": msi, **learned, "MODEL_FILE": tmp_path / "none.safetensors"}, \
            "does not exist"
    if case == "fuse_no_model_file_given":
        return "csakd:fuse", {"HSI": hsi, "MSI": msi, "MODEL": "file"}, "no MODEL_FILE was given"
    if case in ("fuse_corrupt_weights", "fuse_corrupt_card"):
        d = tmp_path / "broken"
        d.mkdir()
        st = Path(shutil.copy(model["path"], d))
        card = Path(shutil.copy(model["card"], d))
        if case == "fuse_corrupt_weights":
            st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
            expect = "corrupt"
        else:
            card.write_text(card.read_text()[:200])
            expect = "not valid JSON"
        return "csakd:fuse", {"HSI": hsi, "MSI": msi, **learned, "MODEL_FILE": st}, expect
    if case == "fuse_no_overlap":
        return "csakd:fuse", {"HSI": hsi, "MSI": far_copy(msi, tmp_path / "far.tif"), "MODEL": "glp"}, "overlap"
    if case == "fuse_geographic_msi":
        return "csakd:fuse", {"HSI": hsi, "MSI": geographic_copy(msi, tmp_path / "geo.tif"), **learned}, \
            "geographic CRS"
    if case == "coregister_geographic_msi":
        return "csakd:coregister", {"HSI": hsi, "MSI": geographic_copy(msi, tmp_path / "geo.tif")}, "UTM zone"
    if case == "coregister_no_overlap":
        return "csakd:coregister", {"HSI": hsi, "MSI": far_copy(msi, tmp_path / "far.tif")}, "overlap"
    if case == "simulate_unknown_sensor":
        return "csakd:simulate_pair", {"HSI": pair["reference"], "SENSOR": "XYZ:B1"}, "Unknown sensor 'XYZ'"
    if case == "evaluate_no_overlap":
        return "csakd:evaluate", {"FUSED": far_copy(pair["reference"], tmp_path / "far.tif"),
                                  "REFERENCE": pair["reference"], "SCALE": 4}, "do not overlap"
    raise AssertionError(case)


OUTPUTS = {"csakd:fuse": {"OUTPUT": "fused.tif"}, "csakd:fuse_classical": {"OUTPUT": "fused.tif"},
           "csakd:coregister": {"OUTPUT": "coreg.tif"},
           "csakd:simulate_pair": {"OUTPUT_LR": "lr.tif", "OUTPUT_MSI": "msi.tif"},
           "csakd:evaluate": {"JSON": "metrics.json", "REPORT": "report.html"}}


@pytest.mark.parametrize("case", [
    "fuse_wrong_band_count", "fuse_missing_model_file", "fuse_no_model_file_given", "fuse_corrupt_weights",
    "fuse_corrupt_card", "fuse_no_overlap", "fuse_geographic_msi", "coregister_geographic_msi",
    "coregister_no_overlap", "simulate_unknown_sensor", "evaluate_no_overlap"])
def test_bad_input_exits_1_with_message_and_no_output(case, tmp_path, synthetic_pair, tiny_model):
    alg, params, expect = _bad_case(case, tmp_path, synthetic_pair, tiny_model)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    outputs = {k: out_dir / name for k, name in OUTPUTS[alg].items()}
    rc, _, err = run_json(alg, {**params, **outputs}, tmp_path / "profile")
    assert rc == 1, err
    assert expect.lower() in err.lower(), err
    assert "Traceback" not in err, err
    assert leftovers(out_dir) == []


@pytest.mark.parametrize("alg", ["csakd:fuse", "csakd:simulate_pair", "csakd:evaluate"])
def test_unwritable_output_folder(alg, tmp_path, synthetic_pair, glp_fused):
    folder = unwritable_folder(tmp_path)
    before = leftovers(folder)
    params = {"csakd:fuse": {"HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"], "MODEL": "glp"},
              "csakd:simulate_pair": {"HSI": synthetic_pair["reference"]},
              "csakd:evaluate": {"FUSED": glp_fused, "REFERENCE": synthetic_pair["reference"]}}[alg]
    outputs = {k: folder / name for k, name in OUTPUTS[alg].items()}
    rc, _, err = run_json(alg, {**params, **outputs}, tmp_path / "profile")
    assert rc == 1, err
    assert "not writable" in err and str(folder) in err and "Traceback" not in err, err
    assert leftovers(folder) == before


def test_device_cuda_without_gpu_fails_clearly(synthetic_pair, tiny_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, _, err = run_json("csakd:fuse", {
        "HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"], "MODEL": "file",
        "MODEL_FILE": tiny_model["path"], "DEVICE": "cuda", "OUTPUT": out_dir / "fused.tif"}, tmp_path / "profile")
    assert rc == 1, err
    assert "Device 'cuda' was requested but torch" in err and "sees no CUDA GPU" in err and "'cpu'" in err, err
    assert leftovers(out_dir) == []


# ------------------------------------------------------------------------- task manager (worker thread)
def _run_task(alg_id: str, params: dict, on_progress=None, timeout: float = 120.0) -> tuple[bool, dict, str]:
    """Run an algorithm the way the Processing dialog does: QgsProcessingAlgRunnerTask in the task manager."""
    from qgis.core import (
        QgsApplication,
        QgsProcessingAlgRunnerTask,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProject,
    )
    from qgis.PyQt.QtCore import QCoreApplication, Qt

    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    if on_progress is not None:  # called in the worker thread, as the progress is reported
        feedback.progressChanged.connect(lambda p: on_progress(p, feedback), Qt.DirectConnection)
    task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
    done: dict = {}
    task.executed.connect(lambda ok, results: done.update(ok=ok, results=results))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + timeout
    while "ok" not in done and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert "ok" in done, "the task did not finish in time"
    return done["ok"], done["results"], feedback.textLog()


def test_fuse_runs_in_a_worker_thread(provider, synthetic_pair, tiny_model, tmp_path):
    import threading

    threads = set()
    out = tmp_path / "fused_task.tif"
    ok, results, log = _run_task("csakd:fuse", {
        "HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"]), "MODEL": "file",
        "MODEL_FILE": str(tiny_model["path"]), "DEVICE": "cpu", "TILE": 32, "OVERLAP": 16, "OUTPUT": str(out)},
        on_progress=lambda p, fb: threads.add(threading.get_ident()))
    assert ok, log
    assert results["OUTPUT"] == str(out) and results["DEVICE_USED"] == "cpu" and results["N_TILES"] == 9
    assert threads and threading.get_ident() not in threads  # the progress came from another thread
    assert "Device used: cpu" in log
    expected = direct_forward(tiny_model["net"], synthetic_pair["hsi"], synthetic_pair["msi"])
    np.testing.assert_allclose(read(out)[INTERIOR], expected[INTERIOR], atol=1e-4)
    assert_same_grid(out, synthetic_pair["msi"])


def test_cancel_midway_leaves_nothing(provider, synthetic_pair, tiny_model, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seen: dict = {"progress": [], "files_at_cancel": None}

    def on_progress(p, feedback):
        seen["progress"].append(p)
        if p > 5.0 and seen["files_at_cancel"] is None:  # tiles have started: cancel like the Cancel button
            seen["files_at_cancel"] = leftovers(out_dir)
            feedback.cancel()

    ok, results, log = _run_task("csakd:fuse", {
        "HSI": str(synthetic_pair["hsi"]), "MSI": str(synthetic_pair["msi"]), "MODEL": "file",
        "MODEL_FILE": str(tiny_model["path"]), "DEVICE": "cpu", "TILE": 16, "OVERLAP": 0, "BATCH": 1,
        "OUTPUT": str(out_dir / "cancelled.tif")}, on_progress=on_progress)
    assert not ok and not results.get("OUTPUT")
    assert "Cancelled" in log and "No output was written" in log, log
    assert max(seen["progress"]) < 50  # stopped midway: 16 tiles, cancelled after the first
    at_cancel = seen["files_at_cancel"]
    assert len(at_cancel) == 1 and at_cancel[0].startswith(".cancelled.tif.") and is_temporary_name(at_cancel[0])
    assert leftovers(out_dir) == []  # neither the output nor the temporary file is left


# ------------------------------------------------------------------------------------- dialog screenshot
def test_fuse_dialog_screenshot(synthetic_pair, tmp_path):
    """QGIS's own Processing dialog for csakd:fuse, built in a GUI-enabled subprocess and grabbed to a PNG."""
    from qgis.PyQt.QtGui import QImage

    png = ROOT / "test-artifacts" / "fuse_dialog.png"
    if png.exists():
        png.unlink()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "dialog_screenshot.py"), "csakd:fuse", str(png),
                           f"HSI={synthetic_pair['hsi']}", f"MSI={synthetic_pair['msi']}",
                           f"OUTPUT={tmp_path / 'fused.tif'}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shown["saved"] and shown["title"] == "Fuse hyperspectral + multispectral (learned model)"
    for label in ("Low-resolution hyperspectral image (HSI) [optional]",
                  "... or an HSI product (EnMAP/DESIS METADATA.XML, PRISMA .he5, EMIT .nc, zip) [optional]",
                  "High-resolution multispectral image (MSI) [optional]", "Model", "Device",
                  "Tile size (output pixels)", "Fused hyperspectral image"):
        assert label in shown["labels"]
    assert "MODEL:" in shown["help"] and "DEVICE_USED" in shown["help"]
    assert png.stat().st_size > 20_000
    img = QImage(str(png))
    assert not img.isNull() and img.width() >= 800 and img.height() >= 600
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 20  # text, widgets and frames were painted, not a blank image

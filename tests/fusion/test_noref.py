"""Quality without a reference: the indexes order methods as the reference does, the truth scores ~0
distortion, rasters end to end (CLI, report, bad inputs) and the run-summary residuals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _helpers_cli import run_cli
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from bench.array_fusion import fuse_model_based
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.noref import (
    consistency_residuals,
    noref_indexes,
    q_blocks_cross,
    q_blocks_paired,
    reduced_resolution_score,
)
from csakd_qgis.fusion.observation import PSF, degrade, estimate_observation
from csakd_qgis.quality.metrics import psnr
from csakd_qgis.raster.coreg import plan_grid
from csakd_qgis.raster.io import write_raster
from csakd_qgis.spectral.degrade import add_awgn, synthesize_msi
from csakd_qgis.spectral.srf import load_srf, srf_matrix

S2 = "S2A:B2,B3,B4,B8"
METHODS = ("bicubic", "gsa", "glp", "glp+cy")


def mixed_scene(size: int = 128, n_materials: int = 20, seed: int = 0, n_bands: int = 60):
    """Many materials with narrow-featured random spectra (rank >> MSI bands) on textured abundances."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(420, 1000, n_bands)
    centres = rng.uniform(380, 1050, (n_materials, 4))
    spectra = 0.05 + sum(0.1 * np.exp(-0.5 * ((wl[None] - centres[:, k:k + 1]) / 40) ** 2) for k in range(4))
    ab = gaussian_filter(rng.random((n_materials, size, size)), (0, 1.5, 1.5)) ** 4
    ab /= ab.sum(0, keepdims=True)
    return np.einsum("mb,myx->byx", spectra, ab).astype(np.float32), wl


def simulated(psf: PSF, snr_db: float | None, s: int = 4, **kw):
    ref, wl = mixed_scene(**kw)
    lr = degrade(ref, psf, s)
    if snr_db is not None:
        lr = add_awgn(lr, snr_db, 0)
    return lr, synthesize_msi(ref, srf_matrix(load_srf(S2), wl)), ref, wl


# Pair A: PSF narrower than Wald's, shifted by (0.3, 0.2) LR px, LR-HSI at 60 dB: the reference ranks
# bicubic < GSA < GLP < glp+cy. Pair B: Wald PSF shifted by half a LR px, no noise: the reference ranks
# bicubic < GLP < GSA < glp+cy (GSA's intensity, built from the shifted HSI, injects part of the shift's correction).
PAIRS = {"A": (PSF(0.35 * 4, 0.3, 0.2), 60.0), "B": (PSF(2.0, 0.5, 0.5), None)}


@pytest.fixture(scope="module", params=sorted(PAIRS))
def scored(request):
    psf, snr = PAIRS[request.param]
    lr, msi, ref, _ = simulated(psf, snr)
    obs = estimate_observation(lr, msi, 4)
    rows = {}
    for m in METHODS:
        x, _ = fuse_model_based(lr, msi, 4, m, obs=obs)
        rows[m] = {"ref_psnr": psnr(ref, x), **noref_indexes(x, lr, msi, 4, obs)}
    return request.param, rows, noref_indexes(ref, lr, msi, 4, obs), (lr, msi, ref, obs)


def test_the_reference_ranks_as_expected(scored):
    name, rows, _, _ = scored
    order = sorted(METHODS, key=lambda m: rows[m]["ref_psnr"])
    assert order == (["bicubic", "gsa", "glp", "glp+cy"] if name == "A" else ["bicubic", "glp", "gsa", "glp+cy"])


@pytest.mark.parametrize("index", ["hqnr", "spectral", "spatial"])
def test_indexes_order_methods_as_the_reference_does(scored, index):
    """Worst to best by the reference PSNR = by HQNR ascending = by each consistency residual descending."""
    _, rows, _, _ = scored
    by_ref = sorted(METHODS, key=lambda m: rows[m]["ref_psnr"])
    if index == "hqnr":
        by_index = sorted(METHODS, key=lambda m: rows[m]["hqnr"])
    else:
        by_index = sorted(METHODS, key=lambda m: rows[m][index]["rel_rmse"], reverse=True)
    assert by_index == by_ref, {m: (rows[m]["ref_psnr"], rows[m]["hqnr"], rows[m][index]) for m in METHODS}


def test_the_reference_itself_scores_no_distortion(scored):
    _, rows, truth, _ = scored
    assert abs(truth["d_lambda"]) < 2e-3
    # D_s of the truth, 0.02-0.035 here, is the floor of the index: Q between HSI and MSI bands is not exactly
    # scale invariant (GLP reaches that floor too on pair B, so D_s alone does not rank GLP and glp+cy)
    assert 0 <= truth["d_s"] < 0.04 and truth["hqnr"] > 0.96
    assert truth["spectral"]["rel_rmse"] < 2e-3 and truth["spatial"]["rel_rmse"] < 1e-3
    assert truth["hqnr"] > max(rows[m]["hqnr"] for m in ("bicubic", "gsa", "glp"))


def test_reduced_resolution_score_ranks_bicubic_last(scored):
    _, rows, _, (lr, msi, ref, obs) = scored
    rr = {m: reduced_resolution_score(lr, msi, obs, lambda a, b, s, m=m: fuse_model_based(a, b, s, m)[0])["psnr"]
          for m in ("bicubic", "glp", "glp+cy")}
    assert rr["bicubic"] + 5 < rr["glp"] < rr["glp+cy"]


def test_q_blocks_match_the_definition():
    rng = np.random.default_rng(0)
    a = rng.random((2, 16, 16))
    b = 0.5 * a + 0.1 * rng.random((2, 16, 16))
    q = q_blocks_paired(a, b, 8)
    blk = a[0, :8, :8].ravel(), b[0, :8, :8].ravel()
    ma, mb = blk[0].mean(), blk[1].mean()
    cov = np.mean(blk[0] * blk[1]) - ma * mb
    q00 = 4 * cov * ma * mb / ((blk[0].var() + blk[1].var()) * (ma ** 2 + mb ** 2))
    cross = q_blocks_cross(a, b, 8, np.ones(4, bool))
    assert np.isclose(np.diag(cross), q).all() and q00 <= 1
    assert np.isclose(q_blocks_paired(a, a, 8), 1.0).all()


# ------------------------------------------------------------------------------------------- rasters
@pytest.fixture(scope="module")
def raster_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("noref")
    lr, msi, ref, wl = simulated(PSF(2.0, 0.3, -0.2), None, n_bands=40)
    crs = CRS.from_epsg(32633)
    hr_tr = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    lr_tr = from_origin(500000.0, 4000000.0, 40.0, 40.0)
    write_raster(d / "hsi.tif", lr, crs, lr_tr, wavelengths=list(wl), fwhm=[10.0] * len(wl))
    write_raster(d / "msi.tif", msi, crs, hr_tr, wavelengths=[490.0, 560.0, 665.0, 842.0])
    write_raster(d / "ref.tif", ref, crs, hr_tr, wavelengths=list(wl), fwhm=[10.0] * len(wl))
    return d


def _fused(d, method):
    from csakd_qgis.fusion.fuse import fuse

    out = d / f"fused_{method}.tif"
    if not out.exists():
        fuse(d / "hsi.tif", d / "msi.tif", out, model=method)
    return out


def test_cli_without_reference_writes_json_and_report(raster_pair, capsys):
    d = raster_pair
    res = {}
    for m in ("bicubic", "glp+cy"):
        js, rep = d / f"{m}.json", d / f"{m}.html"
        assert run_cli(["evaluate", "--fused", str(_fused(d, m)), "--lr", str(d / "hsi.tif"), "--msi",
                        str(d / "msi.tif"), "--json", str(js), "--report", str(rep)]) == 0
        out = capsys.readouterr().out
        assert "HQNR" in out and "reduced resolution (" + m + ")" in out
        res[m] = json.loads(js.read_text())
        text = rep.read_text()
        assert "Quality without a reference" in text and text.count("data:image/png;base64,") == 1
        assert not re.search(r"(src|href)=['\"]https?:", text)
    for k in ("d_lambda", "d_s", "hqnr", "spectral", "spatial", "reduced_resolution", "observation"):
        assert k in res["glp+cy"]
    assert res["glp+cy"]["hqnr"] > res["bicubic"]["hqnr"]
    assert res["glp+cy"]["spectral"]["rel_rmse"] < res["bicubic"]["spectral"]["rel_rmse"]
    assert res["glp+cy"]["reduced_resolution"]["psnr"] > res["bicubic"]["reduced_resolution"]["psnr"] + 5
    assert abs(res["glp+cy"]["observation"]["shift_dx_lr_px"] - 0.3) < 0.05


def test_cli_with_reference_and_msi_carries_both(raster_pair, capsys):
    d = raster_pair
    js, rep = d / "both.json", d / "both.html"
    assert run_cli(["evaluate", "--reference", str(d / "ref.tif"), "--fused", str(_fused(d, "glp")), "--scale", "4",
                    "--lr", str(d / "hsi.tif"), "--msi", str(d / "msi.tif"), "--json", str(js), "--report",
                    str(rep)]) == 0
    m = json.loads(js.read_text())
    assert "psnr" in m and "bicubic" in m and m["no_reference"]["reduced_resolution"]["method"] == "glp"
    assert "Quality without a reference" in rep.read_text()
    capsys.readouterr()


def test_consistency_residuals_of_a_run(raster_pair):
    d = raster_pair
    grid = plan_grid(d / "hsi.tif", d / "msi.tif")
    r_bic = consistency_residuals(grid, _fused(d, "bicubic"))
    r_cy = consistency_residuals(grid, _fused(d, "glp+cy"))
    assert set(r_cy) >= {"spectral_rel_rmse", "spatial_rel_rmse", "spectral_psnr", "spatial_psnr", "psf"}
    assert r_cy["spectral_rel_rmse"] < 0.2 * r_bic["spectral_rel_rmse"]
    assert r_cy["spatial_rel_rmse"] < r_bic["spatial_rel_rmse"]


def test_bad_inputs_give_one_line(raster_pair, tmp_path):
    d = raster_pair
    fused = _fused(d, "glp")
    lr, msi, _, wl = simulated(PSF(2.0), None, size=64, n_bands=40)
    far = tmp_path / "far_msi.tif"  # no overlap with the HSI
    write_raster(far, msi, CRS.from_epsg(32633), from_origin(700000.0, 4000000.0, 10.0, 10.0))
    other = tmp_path / "fused_other_crs.tif"  # the fused image in another CRS than the MSI grid
    write_raster(other, np.zeros((40, 32, 32), np.float32), CRS.from_epsg(32632),
                 from_origin(500000.0, 4000000.0, 10.0, 10.0), wavelengths=list(wl))
    nocrs = tmp_path / "hsi_no_crs.tif"  # an HSI without a CRS beside a georeferenced MSI
    write_raster(nocrs, lr, None, from_origin(500000.0, 4000000.0, 40.0, 40.0), wavelengths=list(wl))
    cases = [(fused, d / "hsi.tif", far, "do not overlap"), (other, d / "hsi.tif", d / "msi.tif", "EPSG:32632"),
             (fused, nocrs, d / "msi.tif", "no CRS")]
    for f, h, m, msg in cases:
        with pytest.raises(CsakdError, match=msg) as e:
            run_cli(["evaluate", "--fused", str(f), "--lr", str(h), "--msi", str(m), "--json", str(tmp_path / "x.json")])
        assert "\n" not in str(e.value)
    with pytest.raises(CsakdError, match="--reference .* or, without a reference"):
        run_cli(["evaluate", "--fused", str(fused), "--lr", str(d / "hsi.tif"), "--json", str(tmp_path / "x.json")])
    with pytest.raises(CsakdError, match="pixel-size ratio 4"):
        run_cli(["evaluate", "--fused", str(fused), "--lr", str(d / "hsi.tif"), "--msi", str(d / "msi.tif"),
                 "--scale", "3", "--json", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()

"""One output geometry for every method (fusion.geometry): simulated pairs with a known HSI shift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.quality.metrics import psnr
from csakd_qgis.raster.coreg import estimate_shift_arrays
from csakd_qgis.raster.io import read_reflectance
from csakd_qgis.raster.profiles import fusion_info
from csakd_qgis.spectral.degrade import wald_degrade
from tests._helpers_raster import reference, write_pair

METHODS = ("glp", "glp+cy", "gsa", "bicubic")
SHIFTS = (0.0, 0.2, 0.5, 0.9)
# PSNR lost to the unshifted pair, measured (0.2 / 0.5 / 0.9 LR px): glp 0.10 / 0.29 / 0.05, gsa 0.11 / 0.33 / 0.00,
# bicubic 0.10 / 0.31 / 0.00 (one resampling of the aliased LR-HSI), glp+cy 0.23 / 1.22 / 0.19 (shift in its PSF)
LOSS_DB = {"glp+cy": 1.5, "any": 0.4}
GLP_CY_SLACK_DB = 0.1  # measured at 0.5 LR px: glp+cy 0.06 dB below GLP (above it at 0.2 and 0.9)


def _geometry(x: np.ndarray, hr: np.ndarray, s: int) -> tuple[float, float]:
    """Shift (LR px) of the output's low frequencies against the reference (both degraded to LR; MSI geometry)."""
    ok = np.isfinite(x).all(0)
    x = np.where(ok, x, np.nanmean(x, axis=(1, 2), keepdims=True))
    est = estimate_shift_arrays(wald_degrade(x, s), wald_degrade(hr, s)[::8], s, msi_is_lr=True)
    return est.dx, est.dy


def _scores(runs: dict, sh: float, geom: str = "msi") -> dict[str, tuple[float, float]]:
    """(PSNR on the shifted pair, PSNR on the unshifted pair) of each method against the reference in the MSI
    geometry, on the pixels every method delivered for the shifted pair (its border strip is nodata where the
    HSI's data do not reach)."""
    ok = np.logical_and.reduce([np.isfinite(runs[sh, geom, m][1]).all(0) for m in METHODS])
    hr = runs[sh, geom, METHODS[0]][4]["hr"]
    return {m: (psnr(hr[:, ok], runs[sh, geom, m][1][:, ok]), psnr(hr[:, ok], runs[0.0, "msi", m][1][:, ok]))
            for m in METHODS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every method on every pair in the default geometry, and in the HSI geometry on the 0.5 px pair."""
    d = tmp_path_factory.mktemp("geometry")
    ref = reference()
    out = {}
    for sh in SHIFTS:
        p = write_pair(d, ref, shift=(sh, sh), name=f"p{int(sh * 10)}", shift_scene=True)
        for geom in ("msi", "hsi") if sh == 0.5 else ("msi",):
            for m in METHODS:
                f = d / f"{m}_{sh}_{geom}.tif"
                res = fuse(p["hsi"], p["msi"], f, m, geometry=geom)
                x = read_reflectance(f)
                out[sh, geom, m] = (res, x, psnr(p["hr"], x), _geometry(x, p["hr"], p["scale"]), p)
    return out


@pytest.mark.parametrize("sh", SHIFTS[1:])
def test_default_geometry_is_the_msi_for_every_method(runs, sh):
    """The shift is removed once: every output's low frequencies lie on the MSI geometry and agree mutually."""
    shifts = np.array([runs[sh, "msi", m][3] for m in METHODS])
    assert np.abs(shifts).max() <= 0.07, shifts  # the estimate's own spread on these 16 x 24 LR px pairs: ~0.03
    assert np.ptp(shifts, axis=0).max() <= 0.07, shifts
    for m in METHODS:
        res = runs[sh, "msi", m][0]
        assert res.geometry == "msi" and res.shift_corrected
        assert res.shift_applied == pytest.approx((res.shift_x, res.shift_y))
        assert abs(res.shift_x - sh) < 0.05 and abs(res.shift_y - sh) < 0.05


def test_msi_geometry_beats_the_hsi_geometry_against_the_msi_reference(runs):
    """Scored against the reference in the MSI geometry, removing the shift helps every method."""
    msi, hsi = _scores(runs, 0.5), _scores(runs, 0.5, "hsi")
    for m in METHODS:
        assert msi[m][0] > hsi[m][0] + 0.3, (m, msi, hsi)


def test_hsi_geometry_keeps_the_hsi_where_it_lies(runs):
    """geometry=hsi: nothing removed, the PSF centre at 0, so bicubic and glp+cy keep the HSI's low frequencies."""
    for m in METHODS:
        res = runs[0.5, "hsi", m][0]
        assert res.geometry == "hsi" and not res.shift_corrected and res.shift_applied == (0.0, 0.0)
    for m in ("bicubic", "glp+cy"):
        dx, dy = runs[0.5, "hsi", m][3]
        assert abs(dx - 0.5) < 0.05 and abs(dy - 0.5) < 0.05, (m, dx, dy)
    obs = runs[0.5, "hsi", "glp+cy"][0].observation["observation"]
    assert obs["shift_dx_lr_px"] == 0.0 and obs["shift_dy_lr_px"] == 0.0


def test_psf_centre_is_the_one_shift(runs, tmp_path):
    """Model-based methods carry the one shift estimate as their PSF centre (the HSI is not resampled as well);
    fitted freely on the pair, the PSF centre comes out at the same shift (it is not a second one)."""
    res, _, _, _, p = runs[0.5, "msi", "glp+cy"]
    obs = res.observation["observation"]
    assert [obs["shift_dx_lr_px"], obs["shift_dy_lr_px"]] == [round(v, 4) for v in res.shift_applied]
    assert not any("resampling" in m for m in res.messages)
    free = fuse(p["hsi"], p["msi"], tmp_path / "free.tif", "glp+cy", model_options={"fit_psf_shift": True})
    fo = free.observation["observation"]
    assert abs(fo["shift_dx_lr_px"] - res.shift_x) < 0.03 and abs(fo["shift_dy_lr_px"] - res.shift_y) < 0.03, fo
    classical = runs[0.5, "msi", "glp"][0]
    assert any("resampling" in m for m in classical.messages)  # the others read the HSI resampled once


def test_shift_losses_and_glp_cy_at_least_glp(runs):
    """Scored against the reference in the MSI geometry: glp+cy ~>= GLP on every shifted pair; the losses to the
    unshifted pair stay small (all but glp+cy: as much as one resampling of the HSI costs)."""
    sc = {sh: _scores(runs, sh) for sh in SHIFTS[1:]}
    losses = {m: [round(sc[sh][m][1] - sc[sh][m][0], 2) for sh in SHIFTS[1:]] for m in METHODS}
    print("PSNR (dB) shifted / unshifted:", {sh: {m: [round(v, 2) for v in sc[sh][m]] for m in METHODS} for sh in sc})
    print("PSNR loss vs the unshifted pair (dB):", losses)
    for sh in SHIFTS[1:]:
        assert sc[sh]["glp+cy"][0] >= sc[sh]["glp"][0] - GLP_CY_SLACK_DB, (sh, sc[sh])
    assert max(losses["glp+cy"]) <= LOSS_DB["glp+cy"], losses
    assert max(max(v) for m, v in losses.items() if m != "glp+cy") <= LOSS_DB["any"], losses


def test_residuals_and_geometry_in_the_result_and_the_tag(runs):
    """Every run carries the two consistency residuals and its geometry in the summary and the GeoTIFF tag."""
    import rasterio

    for m in METHODS:
        res = runs[0.5, "msi", m][0]
        r = res.residuals
        assert 0 <= r["spectral_rel_rmse"] < 0.2 and 0 <= r["spatial_rel_rmse"] < 0.5, (m, r)
        assert "geometry msi" in res.summary() and "consistency residuals" in res.summary()
        with rasterio.open(res.out_path) as ds:
            tags = ds.tags()
            tag = json.loads(tags["CSAKD_FUSION"])
        line = fusion_info(tags)
        assert "geometry msi" in line and "residuals LR-HSI" in line, line
        assert tag["geometry"] == "msi" and tag["shift_applied_lr_px"] == [round(v, 4) for v in res.shift_applied]
        assert tag["consistency_residuals"]["spectral_rel_rmse"] == r["spectral_rel_rmse"]
    assert runs[0.5, "msi", "glp+cy"][0].timings["residuals_s"] < 5.0


def test_shift_above_one_lr_pixel_is_refused(tmp_path):
    p = write_pair(tmp_path, shift=(1.5, 0.0))
    with pytest.raises(CsakdError, match="not co-registered: run csakd:coregister or fix the georeferencing") as e:
        fuse(p["hsi"], p["msi"], tmp_path / "o.tif", "glp")
    assert "\n" not in str(e.value) and not (tmp_path / "o.tif").exists()


def test_geometry_option_is_checked(tmp_path):
    p = write_pair(tmp_path)
    with pytest.raises(CsakdError, match="Geometry 'lr' is not known"):
        fuse(p["hsi"], p["msi"], tmp_path / "o.tif", "glp", geometry="lr")
    with pytest.raises(CsakdError, match="drop one of the two"):
        fuse(p["hsi"], p["msi"], tmp_path / "o.tif", "glp", geometry="hsi", shift_correct=True)


def test_cli_geometry_option(tmp_path, capsys):
    """csakd fuse --geometry hsi: the tag says so and nothing is removed; a large shift exits 1 with one line."""
    import rasterio

    from csakd_qgis.cli import main

    p = write_pair(tmp_path, shift=(0.4, 0.0))
    out = tmp_path / "hsi.tif"
    assert main(["fuse", "--hsi", str(p["hsi"]), "--msi", str(p["msi"]), "--model", "glp", "--geometry", "hsi",
                 "--no-progress", "--out", str(out)]) == 0
    assert "geometry hsi" in capsys.readouterr().out
    with rasterio.open(out) as ds:
        tag = json.loads(ds.tags()["CSAKD_FUSION"])
    assert tag["geometry"] == "hsi" and tag["shift_applied_lr_px"] == [0.0, 0.0] and abs(tag["shift_lr_px"][0] - 0.4) < 0.05
    far = write_pair(tmp_path, shift=(0.0, 1.6), name="far")
    assert main(["fuse", "--hsi", str(far["hsi"]), "--msi", str(far["msi"]), "--model", "glp", "--no-progress",
                 "--out", str(tmp_path / "far.tif")]) == 1
    err = capsys.readouterr().err
    assert "not co-registered" in err and "Traceback" not in err and not (tmp_path / "far.tif").exists()

"""raster/coreg.py: common grid (CRS, scale, overlap, snapping), windowed reads, shift estimation/correction."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers_raster import (
    MSI_SPEC,
    enmap_reference,
    read_all,
    reproject_raster,
    requires_shared,
    rmse,
    synthetic_reference,
    write_pair,
)
from affine import Affine
from rasterio.crs import CRS

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.coreg import (
    coregister,
    estimate_shift,
    estimate_shift_arrays,
    phase_correlation,
    plan_grid,
    utm_epsg_for,
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("coreg"), synthetic_reference(), scale=4)


def test_aligned_pair_reads_directly(pair):
    grid = plan_grid(pair["hsi"], pair["msi"])
    assert grid.scale == 4 and grid.hsi_source.kind == "direct"
    assert (grid.hr_width, grid.hr_height) == (96, 64) and (grid.lr_width, grid.lr_height) == (24, 16)
    assert grid.hr_transform == pair["hr_transform"] and grid.lr_transform == pair["lr_transform"]
    assert grid.crs == pair["crs"] and not grid.messages
    with grid:
        lr, msi = grid.read_tile(8, 12, 16, 20, halo_lr=1)
    assert lr.shape == (32, 6, 7) and msi.shape == (4, 24, 28)
    assert np.allclose(lr[:, 1:-1, 1:-1], pair["lr"][:, 2:6, 3:8])
    assert np.allclose(msi[:, 4:-4, 4:-4], pair["msi_arr"][:, 8:24, 12:32])
    with grid:  # boundless: outside the rasters is NaN
        lr0, msi0 = grid.read_tile(0, 0, 8, 8, halo_lr=1)
    assert np.isnan(lr0[:, 0]).all() and np.isnan(msi0[:, :4]).all() and np.isfinite(msi0[:, 4:, 4:]).all()


def test_partial_overlap_crops_to_whole_lr_pixels(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4, lr_crop=(3, 5, 20, 30))  # extends past the MSI
    grid = plan_grid(p["hsi"], p["msi"])
    # LR rows 3..15 and cols 5..23 of the original LR grid are inside both
    assert (grid.lr_height, grid.lr_width) == (13, 19) and grid.hsi_source.kind == "direct"
    assert (int(grid.msi_window.row_off), int(grid.msi_window.col_off)) == (12, 20)
    assert grid.hr_transform == p["hr_transform"] * Affine.translation(20, 12)
    assert grid.lr_transform == grid.hr_transform * Affine.scale(4)
    assert any("covers the overlap" in m for m in grid.messages)
    with grid:
        lr, _ = grid.read_tile(0, 0, grid.hr_height, grid.hr_width)
    assert np.allclose(lr, p["lr"][:, 3:16, 5:24])


def test_half_pixel_offset_is_resampled(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4)
    moved = tmp_path / "moved.tif"
    t = p["lr_transform"]
    reproject_raster(p["hsi"], moved, p["crs"], transform=Affine(t.a, 0, t.c + 3.75, 0, t.e, t.f - 3.75),
                     width=24, height=16)  # half an MSI pixel (7.5 m) off
    grid = plan_grid(moved, p["msi"])
    assert grid.hsi_source.kind == "warp" and grid.scale == 4
    assert any("offset by (+0.50, +0.50) MSI" in m for m in grid.messages)
    assert grid.hr_transform.c % 7.5 == pytest.approx(p["hr_transform"].c % 7.5)


@pytest.mark.parametrize("epsg,max_rel_rmse", [(25833, 0.01), (3035, 0.08)])
def test_hsi_in_another_crs_is_reprojected(tmp_path, epsg, max_rel_rmse):
    p = write_pair(tmp_path, synthetic_reference(), scale=4)
    other = reproject_raster(p["hsi"], tmp_path / f"hsi_{epsg}.tif", CRS.from_epsg(epsg), resolution=30.0)
    grid = plan_grid(other, p["msi"])
    assert grid.hsi_source.kind == "warp" and grid.scale == 4 and grid.crs == p["crs"]
    assert any(f"EPSG:{epsg}" in m and "reprojected" in m for m in grid.messages)
    # the output grid is the MSI grid cropped: same pixel size, origin on an MSI pixel corner
    mt = p["hr_transform"]
    assert grid.hr_transform.a == mt.a and grid.hr_transform.e == mt.e
    col, row = ~mt * (grid.hr_transform.c, grid.hr_transform.f)
    assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
    with grid:
        lr, _ = grid.read_tile(0, 0, grid.hr_height, grid.hr_width)
    c0, r0 = int(round(col)) // 4, int(round(row)) // 4
    ref = p["lr"][:, r0:r0 + grid.lr_height, c0:c0 + grid.lr_width]
    inner = (slice(None), slice(1, -1), slice(1, -1))
    assert np.isfinite(lr[inner]).mean() > 0.95
    assert rmse(lr[inner], ref[inner]) / float(np.nanmean(ref)) < max_rel_rmse


def test_non_integer_ratio_is_resampled_and_logged(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4, lr_px=40.0)  # MSI 10 m
    coarse = reproject_raster(p["hsi"], tmp_path / "hsi32.tif", p["crs"], resolution=32.0)
    grid = plan_grid(coarse, p["msi"])
    assert grid.scale == 3 and grid.hsi_source.kind == "warp"
    assert abs(grid.lr_transform.a) == pytest.approx(30.0)
    assert any("not an integer" in m and "scale 3" in m for m in grid.messages)
    # within 1 % of an integer: that integer, read directly
    near = reproject_raster(p["hsi"], tmp_path / "hsi40.tif", p["crs"], resolution=40.2)
    assert plan_grid(near, p["msi"]).scale == 4


def test_ratio_below_two_is_refused(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4)
    fine = reproject_raster(p["hsi"], tmp_path / "hsi12.tif", p["crs"], resolution=12.0)
    with pytest.raises(CsakdError, match="at least 2"):
        plan_grid(fine, p["msi"])


def test_geographic_crs_behaviour(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4)
    geo_msi = reproject_raster(p["msi"], tmp_path / "msi_4326.tif", CRS.from_epsg(4326))
    with pytest.raises(CsakdError, match=r"geographic CRS \(EPSG:4326.*EPSG:32633.*gdal:warpreproject"):
        plan_grid(p["hsi"], geo_msi)
    geo_hsi = reproject_raster(p["hsi"], tmp_path / "hsi_4326.tif", CRS.from_epsg(4326))
    grid = plan_grid(geo_hsi, p["msi"])  # only the HSI geographic: reprojected to the MSI CRS
    assert grid.hsi_source.kind == "warp" and grid.scale == 4 and grid.crs == p["crs"]
    assert any("geographic" in m for m in grid.messages)
    assert utm_epsg_for(13.06, 52.4) == 32633 and utm_epsg_for(-70.0, -33.0) == 32719


def test_no_overlap_and_band_count_errors(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4)
    far = tmp_path / "far.tif"
    t = p["lr_transform"]
    reproject_raster(p["hsi"], far, p["crs"], transform=Affine(t.a, 0, t.c + 50000, 0, t.e, t.f), width=24,
                     height=16)
    with pytest.raises(CsakdError, match=r"far\.tif.*pair_msi\.tif.*do not overlap"):
        plan_grid(far, p["msi"])
    with pytest.raises(CsakdError, match=r"multispectral \(MSI\) input .* has 32 bands .* only 4 usable"):
        plan_grid(p["msi"], p["hsi"])  # swapped


def test_phase_correlation_sign_and_subpixel():
    from csakd_qgis.spectral.degrade import shift_image

    ref = synthetic_reference(n_bands=4, height=48, width=64)["cube"]
    for dx, dy in [(3.0, -2.0), (0.4, 0.25)]:
        mov = shift_image(ref, dx, dy)
        ex, ey, peak = phase_correlation(mov, ref)
        assert ex == pytest.approx(dx, abs=0.15) and ey == pytest.approx(dy, abs=0.15) and peak > 0.3
    # NaN-safe
    mov = shift_image(ref, 0.5, 0.0)
    mov[:, :5, :7] = np.nan
    ex, ey, _ = phase_correlation(mov, ref)
    assert np.isfinite(ex) and ex == pytest.approx(0.5, abs=0.2)


def test_shift_estimate_synthetic_arrays():
    from csakd_qgis.spectral.degrade import simulate_pair

    ref = synthetic_reference()
    lr, msi = simulate_pair(ref["cube"], ref["wavelengths"], ref["fwhm"], MSI_SPEC, 4, shift=(0.3, -0.2))
    est = estimate_shift_arrays(lr, msi, 4)
    assert est.dx == pytest.approx(0.3, abs=0.1) and est.dy == pytest.approx(-0.2, abs=0.1)


@requires_shared
@pytest.mark.shared_data
@pytest.mark.parametrize("scale", [3, 4])
def test_known_shift_recovered_on_enmap(tmp_path, scale):
    """EnMAP mosaic as HR reference, Wald-degraded + shift_image(0.3, 0) LR px -> recovered within 0.1 LR px."""
    p = write_pair(tmp_path, enmap_reference(), scale=scale, shift=(0.3, 0.0))
    grid = plan_grid(p["hsi"], p["msi"])
    est = estimate_shift(grid)
    assert abs(est.dx - 0.3) < 0.1 and abs(est.dy) < 0.1, est
    # corrected reads: the residual shift is ~0 and the LR-HSI is closer to the unshifted one
    corrected = grid.with_shift(est.dx, est.dy)
    assert corrected.hsi_source.kind == "warp"
    est2 = estimate_shift(corrected)
    assert abs(est2.dx) < 0.05 and abs(est2.dy) < 0.05, est2
    p0 = write_pair(tmp_path, enmap_reference(), scale=scale, name="noshift")
    with grid:
        raw = grid.read_tile(0, 0, grid.hr_height, grid.hr_width)[0]
    with corrected:
        fixed = corrected.read_tile(0, 0, grid.hr_height, grid.hr_width)[0]
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert rmse(fixed[inner], p0["lr"][inner]) < 0.5 * rmse(raw[inner], p0["lr"][inner])


def test_coregister_writes_aligned_hsi(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4, shift=(0.3, 0.0), bad_bands=2)
    moved = reproject_raster(p["hsi"], tmp_path / "hsi_3035.tif", CRS.from_epsg(3035), resolution=30.0)
    out = tmp_path / "coreg.tif"
    res = coregister(moved, p["msi"], out, shift_correct=True)
    assert res.scale == 4 and res.shift_corrected and res.bands == 34
    assert abs(res.shift_x - 0.3) < 0.15 and abs(res.shift_y) < 0.15
    data, info = read_all(out)
    assert info["crs"] == p["crs"] and info["count"] == 34
    assert info["transform"].a == 30.0 and (info["transform"].c - p["hr_transform"].c) % 7.5 == pytest.approx(0)
    assert [t.get("bbl") for t in info["tags"]][:5] == ["1", "1", "0", "0", "1"]
    assert np.isnan(data[2]).all() and np.isfinite(data[0]).mean() > 0.8
    # the co-registered HSI is directly usable: same CRS, aligned grid, integer scale, ~no residual shift
    grid = plan_grid(out, p["msi"])
    assert grid.hsi_source.kind == "direct"
    assert abs(estimate_shift(grid).dx) < 0.1

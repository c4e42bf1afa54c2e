"""EMIT L2A reader on a miniature netCDF product holding the real EMIT cube, its swath rotated on the map."""

from __future__ import annotations

import numpy as np
import pytest
from _builders_msi import EMIT_RES, build_emit, zip_folder
from conftest import requires_shared

from csakd_qgis.errors import CsakdError
from csakd_qgis.products import emit
from csakd_qgis.products.base import write_geotiff
from csakd_qgis.products.registry import find_reader, open_product
from csakd_qgis.raster.io import read_meta, read_reflectance

pytestmark = [requires_shared, pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")]


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    return build_emit(tmp_path_factory.mktemp("emit"))


def _written(raster, tmp_path, block_rows=256):
    out = write_geotiff(raster, tmp_path / f"emit_{block_rows}.tif", block_rows=block_rows)
    return read_meta(out), read_reflectance(out)


def _expected(built, masked: bool):
    """(bands, h, w) reflectance the GLT says, NaN where no swath pixel, fill value or (if ``masked``) flag."""
    gx, gy, cube = built["glt_x"], built["glt_y"], built["cube"]
    out = np.full((cube.shape[2],) + gx.shape, np.nan, np.float32)
    for r, c in zip(*np.nonzero(gx), strict=True):
        d, s = gy[r, c] - 1, gx[r, c] - 1
        if (d, s) == built["bad_pixel"] or (masked and built["flag"][d, s]):
            continue
        out[:, r, c] = cube[d, s]
    return out


def test_glt_ortho_grid_bbl_and_mask(product, tmp_path):
    (raster,) = emit.read(product["path"])
    assert raster.product == "EMIT L2A" and raster.role == "HSI" and raster.count == 285
    assert raster.nodata == -9999.0 and raster.dtype == "float32"
    assert raster.bbl == product["bbl"] and raster.bbl.count(0) == 41
    np.testing.assert_allclose(raster.wavelengths, product["wavelengths"], atol=1e-4)
    np.testing.assert_allclose(raster.fwhm, product["fwhm"], atol=1e-4)
    meta, refl = _written(raster, tmp_path)
    assert meta.crs.to_epsg() == 4326
    assert meta.transform == product["transform"] and meta.res == pytest.approx((EMIT_RES, EMIT_RES))
    assert (meta.height, meta.width) == product["glt_x"].shape
    assert meta.bbl == product["bbl"]
    want = _expected(product, masked=True)
    assert np.array_equal(np.isnan(refl), np.isnan(want))
    np.testing.assert_array_equal(refl[~np.isnan(want)], want[~np.isnan(want)])
    # a swath pixel lands where the rotated-swath geometry puts it: centre of (downtrack 7, crosstrack 2)
    a = np.deg2rad(30.0)
    size = product["glt_x"].shape[0]
    s, d = 2.5 - 5, 7.5 - 5  # offsets from the swath centre
    x = np.cos(a) * s - np.sin(a) * d + size / 2
    y = np.sin(a) * s + np.cos(a) * d + size / 2
    assert (product["glt_y"][int(y), int(x)], product["glt_x"][int(y), int(x)]) == (8, 3)
    np.testing.assert_array_equal(refl[:, int(y), int(x)], product["cube"][7, 2])
    # the aggregate flag (source pixels) masks every map pixel pointing at them
    flagged = product["flag"][product["glt_y"] - 1, product["glt_x"] - 1] & (product["glt_x"] > 0)
    assert flagged.sum() >= 4 and np.isnan(refl[:, flagged]).all()
    assert "aggregate flag masked" in " ".join(raster.notes)


def test_block_rows_and_read_runs_do_not_change_values(product, tmp_path, monkeypatch):
    _, whole = _written(emit.read(product["path"])[0], tmp_path)
    monkeypatch.setattr(emit, "RUN_LINES", 2)
    _, pieces = _written(emit.read(product["path"])[0], tmp_path, block_rows=3)
    np.testing.assert_array_equal(np.isnan(whole), np.isnan(pieces))
    np.testing.assert_array_equal(whole[~np.isnan(whole)], pieces[~np.isnan(pieces)])


def test_without_mask_file_flags_are_kept(tmp_path):
    built = build_emit(tmp_path, with_mask=False)
    (raster,) = open_product(built["path"])
    assert raster.invalid_rows is None and "clouds not masked" in " ".join(raster.notes)
    _, refl = _written(raster, tmp_path)
    want = _expected(built, masked=False)
    assert np.array_equal(np.isnan(refl), np.isnan(want))
    np.testing.assert_array_equal(refl[~np.isnan(want)], want[~np.isnan(want)])


def test_find_reader_folder_file_zip(product, tmp_path):
    folder = product["path"].parent
    assert find_reader(product["path"]).name == "EMIT L2A"
    assert find_reader(folder).name == "EMIT L2A"
    assert find_reader(product["mask_path"]) is None
    (raster,) = open_product(zip_folder(folder, tmp_path / "emit_zip"), tmp_path / "work")
    np.testing.assert_array_equal(raster.read_rows(0, raster.height),
                                  emit.read(product["path"])[0].read_rows(0, raster.height))


@pytest.mark.parametrize("drop, match", [("reflectance", "variable 'reflectance'"), ("glt_x", "'glt_x'"),
                                         ("good_wavelengths", "'good_wavelengths'")])
def test_errors_missing_variables(tmp_path, drop, match):
    built = build_emit(tmp_path, drop=(drop,))
    with pytest.raises(CsakdError, match=match) as err:
        open_product(built["path"])
    assert "\n" not in str(err.value)


def test_error_folder_without_netcdf(tmp_path):
    folder = tmp_path / "EMIT_L2A_RFL_001_20250324T221005_2508315_004"
    folder.mkdir()
    assert find_reader(folder).name == "EMIT L2A"
    with pytest.raises(CsakdError, match="EMIT_L2A_RFL_\\*.nc"):
        open_product(folder)
    bad = tmp_path / "EMIT_L2A_RFL_001_20250324T221005_2508315_005.nc"
    bad.write_bytes(b"not a netcdf file")
    with pytest.raises(CsakdError, match="not a readable netCDF"):
        open_product(bad)

"""Pixel spectra without QGIS: raw values -> reflectance (scale/offset, nodata, bbl), band metadata conventions,
pixel lookup, the CSV export and the fusion info line."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import rasterio
from _helpers_raster import enmap_tile, requires_shared
from affine import Affine
from rasterio.crs import CRS

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import read_reflectance
from csakd_qgis.raster.profiles import (
    BandInfo,
    Profile,
    band_info,
    fusion_info,
    pixel_index,
    profiles_csv,
    spectrum,
)

INFO = BandInfo(wavelengths=(650.0, None, 450.0, 550.0), bbl=(1, 1, 1, 0), nodata=-32768.0,
                scales=(1e-4, 1e-4, 2e-4, 1e-4), offsets=(0.01, 0.0, 0.0, 0.0))


def test_raw_values_get_scale_offset_nodata_and_bad_bands_as_nan_sorted_by_wavelength():
    wl, refl = spectrum([1000, 5, -32768, 700], INFO, scaled=False)
    np.testing.assert_array_equal(wl, [450.0, 550.0, 650.0])  # band 2 has no wavelength: left out
    assert math.isnan(refl[0])  # nodata
    assert math.isnan(refl[1])  # bbl = 0, although it has a value
    assert refl[2] == pytest.approx(1000 * 1e-4 + 0.01)


def test_values_a_provider_already_scaled_are_kept_none_is_nodata():
    wl, refl = spectrum([0.11, 0.5, None, 0.3], INFO, scaled=True)
    np.testing.assert_array_equal(wl, [450.0, 550.0, 650.0])
    assert math.isnan(refl[0]) and math.isnan(refl[1]) and refl[2] == pytest.approx(0.11)
    with pytest.raises(ValueError, match="3 band values for a raster of 4 bands"):
        spectrum([1, 2, 3], INFO)


@requires_shared
def test_real_enmap_tile_spectrum_equals_the_package_reader():
    """A real EnMAP tile (scale 1e-4, nodata -32768, bbl in the band tags): raw values -> the reflectance reader."""
    path = enmap_tile()
    info = band_info(path)
    assert info.count == 224 and info.scales[0] == pytest.approx(1e-4) and 0 in info.bbl
    row, col = 7, 11
    with rasterio.open(path) as ds:
        raw = ds.read(window=((row, row + 1), (col, col + 1)))[:, 0, 0]
        x, y = ds.xy(row, col)
    assert info.pixel(x, y) == (row, col)
    wl, refl = spectrum(list(raw), info, scaled=False)
    expect = read_reflectance(path, window=((row, row + 1), (col, col + 1)))[:, 0, 0].astype(np.float64)
    expect[[i for i, b in enumerate(info.bbl) if not b]] = np.nan
    order = np.argsort(info.wavelengths)
    np.testing.assert_allclose(wl, np.asarray(info.wavelengths)[order])
    np.testing.assert_allclose(refl, expect[order], rtol=1e-6, equal_nan=True)
    assert 400 < wl[0] < 430 and 2400 < wl[-1] < 2500  # nm
    assert np.isnan(refl).sum() == info.bbl.count(0)


def _write(path, n: int = 3, **kw) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=n, dtype="float32", crs=CRS.from_epsg(32633),
                       transform=Affine(10, 0, 1000, 0, -10, 2000), nodata=-9999.0) as ds:
        ds.write(np.full((n, 3, 4), 0.25, np.float32))
        for b, desc in enumerate(kw.get("descriptions", []), start=1):
            ds.set_band_description(b, desc)
        if "envi" in kw:
            ds.update_tags(ns="ENVI", **kw["envi"])


def test_wavelength_conventions_envi_domain_in_micrometres_and_band_names(tmp_path):
    _write(tmp_path / "envi.tif", envi={"wavelength": "{0.45, 0.55, 0.65}", "wavelength_units": "Micrometers",
                                        "bbl": "{1, 0, 1}"})
    info = band_info(tmp_path / "envi.tif")
    np.testing.assert_allclose(info.wavelengths, [450, 550, 650])
    assert info.bbl == (1, 0, 1)
    _write(tmp_path / "names.tif", descriptions=["B2 (490 nm)", "B3 (560 nm)", "B4 (665 nm)"])
    assert band_info(tmp_path / "names.tif").wavelengths == (490.0, 560.0, 665.0)
    _write(tmp_path / "plain.tif")
    plain = band_info(tmp_path / "plain.tif")
    assert not plain.has_wavelengths and plain.as_points
    with pytest.raises(CsakdError, match="does not exist"):
        band_info(tmp_path / "missing.tif")


def test_pixel_index_north_up_rotated_and_outside():
    gt = (1000.0, 10.0, 0.0, 2000.0, 0.0, -10.0)
    assert pixel_index(gt, 4, 3, 1000.0, 2000.0) == (0, 0)
    assert pixel_index(gt, 4, 3, 1039.99, 1970.01) == (2, 3)
    assert pixel_index(gt, 4, 3, 1040.0, 1995.0) is None and pixel_index(gt, 4, 3, 999.9, 1995.0) is None
    assert pixel_index(gt, 4, 3, 1005.0, 2000.1) is None
    rot = Affine(10, 0, 1000, 0, -10, 2000) * Affine.rotation(30)  # a rotated grid: x, y of pixel (1, 2)'s centre
    x, y = rot * (2.5, 1.5)
    assert pixel_index(rot.to_gdal(), 4, 3, x, y) == (1, 2)


def test_csv_has_every_wavelength_and_one_column_per_profile():
    a = Profile("fused", 10.0, 20.0, np.array([450.0, 550.0, 650.0]), np.array([0.1, np.nan, 0.3]))
    b = Profile("msi", 10.0, 20.0, np.array([490.0, 550.0]), np.array([0.2, 0.25]), as_points=True, pin=2)
    rows = list(csv.reader(io.StringIO(profiles_csv([a, b]))))
    assert rows[0] == ["wavelength_nm", "fused (10.00, 20.00)", "msi, pin 2 (10.00, 20.00)"]
    assert rows[1:] == [["450.0000", "0.1", ""], ["490.0000", "", "0.2"], ["550.0000", "", "0.25"],
                        ["650.0000", "0.3", ""]]


def test_fusion_info_from_the_tag_then_the_abstract():
    tag = {"model": "hysure", "scale": 3, "shift_lr_px": [0.0123, -0.004], "shift_corrected": True,
           "observation": {"observation": {"sigma_hr_px": 1.52}, "consistency": {"before": {"lr_hsi": 0.02, "msi": 0.03},
                                                                                 "after": {"lr_hsi": 0.0011, "msi": 0.004}}}}
    line = fusion_info({"CSAKD_FUSION": json.dumps(tag)})
    assert line == ("fusion: hysure; scale 3; HSI shift dx +0.012, dy -0.004 LR px (corrected); PSF sigma 1.52 HR px; "
                    "residuals LR-HSI 0.11 %, MSI 0.40 %")
    sr = fusion_info({"CSAKD_SUPERRESOLUTION": json.dumps({"model": "bicubic", "scale": 2})})
    assert sr == "super-resolution: bicubic; scale 2"
    abstract = "Made by csakd:fuse (csakd_qgis 0.3.0) on 2026-01-01 10:00 UTC from a.tif and b.tif. model: glp."
    assert fusion_info({}, abstract) == "Made by csakd:fuse (csakd_qgis 0.3.0) on 2026-01-01 10:00 UTC from a.tif and b.tif"
    assert fusion_info({"CSAKD_FUSION": "not json"}, "") == "" and fusion_info({}, "some layer") == ""

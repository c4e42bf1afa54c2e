"""A layer's spectrum read through QGIS's data provider without a canvas: the point in another CRS, scale and
offset, nodata, outside, a layer without wavelengths (headless QGIS)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from _helpers_raster import enmap_tile, requires_shared
from rasterio.crs import CRS
from rasterio.warp import transform as warp_points

from csakd_qgis.raster.io import read_reflectance

pytestmark = [pytest.mark.qgis, requires_shared]
ROW, COL = 9, 21


@pytest.fixture
def int16_tile(tmp_path):
    """The real EnMAP tile stored as int16 with scale 1e-4 and offset 0.01, nodata -32768, pixel (2, 3) nodata."""
    src = enmap_tile()
    dst = tmp_path / "enmap_int16.tif"
    with rasterio.open(src) as ds:
        profile = ds.profile | {"dtype": "int16", "nodata": -32768}
        data = ds.read()
        data = np.where(data == ds.nodata, -32768, data - 100).astype(np.int16)  # (raw - 100) * 1e-4 + 0.01
        data[:, 2, 3] = -32768
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)
            for b in range(1, ds.count + 1):
                out.update_tags(b, **ds.tags(b))
                out.set_band_description(b, ds.descriptions[b - 1])
            out.scales = [1e-4] * ds.count
            out.offsets = [0.01] * ds.count
    return dst


def _read(path, x, y, epsg):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransformContext,
        QgsPointXY,
        QgsRasterLayer,
    )

    from csakd_qgis.algorithms.profile.layer_spectrum import LayerBands, read_spectrum

    layer = QgsRasterLayer(str(path), "tile", "gdal")
    assert layer.isValid()
    crs = QgsCoordinateReferenceSystem(f"EPSG:{epsg}")
    return read_spectrum(layer, QgsPointXY(x, y), crs, QgsCoordinateTransformContext(), LayerBands())


def test_point_in_another_crs_with_scale_offset_equals_the_reflectance_reader(qgis_app, int16_tile):
    with rasterio.open(int16_tile) as ds:
        x, y = ds.xy(ROW, COL)
        bbl = [int(ds.tags(b)["bbl"]) for b in range(1, ds.count + 1)]
        wl = [float(ds.tags(b)["wavelength"]) for b in range(1, ds.count + 1)]
    lon, lat = warp_points(CRS.from_epsg(32633), CRS.from_epsg(4326), [x], [y])
    reading = _read(int16_tile, lon[0], lat[0], 4326)
    assert reading.profile is not None, reading.reason
    assert reading.pixel == (ROW, COL)
    expect = read_reflectance(int16_tile, window=((ROW, ROW + 1), (COL, COL + 1)))[:, 0, 0].astype(np.float64)
    expect[[i for i, b in enumerate(bbl) if not b]] = np.nan
    order = np.argsort(wl)
    np.testing.assert_allclose(reading.profile.wavelengths, np.asarray(wl)[order])
    np.testing.assert_allclose(reading.profile.values, expect[order], rtol=1e-5, atol=1e-7, equal_nan=True)
    assert 0.01 < np.nanmin(reading.profile.values) and np.nanmax(reading.profile.values) < 1  # scaled, offset
    assert np.isnan(reading.profile.values).sum() == bbl.count(0) > 0  # bad bands are the gaps


def test_nodata_outside_and_no_wavelengths_give_a_reason(qgis_app, int16_tile, tmp_path):
    with rasterio.open(int16_tile) as ds:
        x, y = ds.xy(2, 3)
        bounds = ds.bounds
        profile = ds.profile
    nodata = _read(int16_tile, x, y, 32633)
    assert nodata.profile is None and nodata.reason == "no data at pixel (row 2, col 3) (nodata in every band)"
    outside = _read(int16_tile, bounds.right + 5, y, 32633)
    assert outside.profile is None and outside.reason == "outside the layer"
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", **(profile | {"count": 3})) as out:
        out.write(np.arange(3 * profile["height"] * profile["width"], dtype=np.int16).reshape(3, profile["height"], -1))
    reading = _read(plain, x, y, 32633)
    assert reading.profile is None and reading.reason.startswith("no band wavelengths (GDAL band metadata")

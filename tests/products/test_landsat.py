"""Landsat 8/9 C2 L2 reader on miniature L2SP folders (real EnMAP spectra through the OLI responses, 30 m)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _builders_msi import L_MULT, QA_STAMPS, build_landsat, zip_folder
from _checks import assert_one_line_error
from conftest import requires_shared

from csakd_qgis.products import landsat
from csakd_qgis.products.base import write_geotiff
from csakd_qgis.products.registry import find_reader, open_product
from csakd_qgis.raster.io import read_meta, read_reflectance
from csakd_qgis.spectral.srf import load_sensor_srf

pytestmark = requires_shared


@pytest.fixture(scope="module")
def l8(tmp_path_factory):
    return build_landsat(tmp_path_factory.mktemp("l8"))


def _written(raster, tmp_path):
    out = write_geotiff(raster, tmp_path / "sr.tif", block_rows=16)
    return read_meta(out), read_reflectance(out)


def _check(raster, built, tmp_path):
    meta, refl = _written(raster, tmp_path)
    assert meta.crs == built["crs"] and meta.transform == built["transform"] and meta.res == (30.0, 30.0)
    invalid = built["invalid"]
    assert np.array_equal(np.isnan(refl).any(axis=0), invalid)
    np.testing.assert_allclose(refl[:, ~invalid], built["refl"][:, ~invalid], rtol=0, atol=1e-6)
    inside = ~invalid & (built["dn"] > 1).all(axis=0)
    assert np.abs(refl[:, inside] - built["synth"][:, inside]).max() <= 0.5 * L_MULT + 1e-6
    return refl


def test_sr_factors_from_level2_group_grid_and_qa_mask(l8, tmp_path):
    (raster,) = landsat.read(l8["path"])
    assert raster.role == "MSI 30 m" and raster.product == "Landsat 8 C2 L2"
    assert raster.band_names == [f"SR_B{b}" for b in range(1, 8)]
    # the MTL's Level-1 group holds TOA factors 2e-5 / -0.1 under the same keys: the SR ones apply
    assert raster.scales == [pytest.approx(2.75e-05)] * 7 and raster.offsets == [pytest.approx(-0.2)] * 7
    assert raster.nodata == 0
    refl = _check(raster, l8, tmp_path)
    qa = l8["qa"]
    for (r0, r1), (c0, c1), value in QA_STAMPS:
        masked = bool(value & 0b11111)
        assert np.isnan(refl[:, r0:r1, c0:c1]).all() == masked, value
        assert np.isnan(refl[:, r0:r1, c0:c1]).any() == masked, value
    assert np.isnan(refl[:, :, 0]).all()  # fill
    assert np.isfinite(refl[:, qa == 21824]).all()  # clear land
    snowy = landsat.read(l8["path"], mask_snow=True)[0]
    _, refl_snow = _written(snowy, tmp_path)
    assert np.isnan(refl_snow[:, (qa & (1 << 5)) != 0]).all()


def test_band_centres_from_oli_srf(l8, tmp_path):
    (raster,) = landsat.read(l8["mtl_txt"])
    want = load_sensor_srf("L8", [f"B{b}" for b in range(1, 8)])
    np.testing.assert_allclose(raster.wavelengths, want.centroids(), atol=1e-3)
    np.testing.assert_allclose(raster.fwhm, want.fwhm(), atol=1e-3)
    np.testing.assert_allclose(raster.wavelengths, [443.0, 482.6, 561.3, 654.6, 864.6, 1609.1, 2201.2], atol=0.5)
    l9 = build_landsat(tmp_path / "l9", spacecraft="LANDSAT_9")
    (r9,) = landsat.read(l9["path"])
    assert r9.product == "Landsat 9 C2 L2"
    np.testing.assert_allclose(r9.wavelengths, load_sensor_srf("L9", [f"B{b}" for b in range(1, 8)]).centroids(),
                               atol=1e-3)
    _check(r9, l9, tmp_path)


def test_mtl_xml_only_and_find_reader_and_zip(l8, tmp_path):
    built = build_landsat(tmp_path / "x", txt=False)
    assert not built["mtl_txt"].exists()
    for p in (built["path"], built["mtl_xml"]):
        assert find_reader(p).name == landsat.PRODUCT
        (raster,) = open_product(p)
        assert raster.scales == [pytest.approx(2.75e-05)] * 7
        _check(raster, built, tmp_path)
    assert find_reader(l8["mtl_txt"]).name == landsat.PRODUCT
    assert find_reader(next(l8["path"].glob("*_SR_B1.TIF"))) is None
    z = zip_folder(l8["path"], tmp_path / l8["path"].name)
    (raster,) = open_product(z, tmp_path / "work")
    assert np.array_equal(raster.read_rows(10, 4), l8["dn"][:, 10:14])


def _copy(built, tmp_path):
    dst = tmp_path / built["path"].name
    shutil.copytree(built["path"], dst)
    return dst


def test_errors(l8, tmp_path):
    d = _copy(l8, tmp_path / "nomtl")
    for f in d.glob("*_MTL.*"):
        f.unlink()
    assert_one_line_error(d, "no \\*_MTL.txt or \\*_MTL.xml")
    d = _copy(l8, tmp_path / "noband")
    next(d.glob("*_SR_B4.TIF")).unlink()
    assert_one_line_error(d, "SR_B4")
    d = _copy(l8, tmp_path / "noqa")
    next(d.glob("*_QA_PIXEL.TIF")).unlink()
    assert_one_line_error(d, "QA_PIXEL")
    d = _copy(l8, tmp_path / "nomult")
    for f in d.glob("*_MTL.*"):
        text = f.read_text()
        f.write_text(text.replace("REFLECTANCE_MULT_BAND_3 = 2.75E-05", "").replace(
            "<REFLECTANCE_MULT_BAND_3>2.75E-05</REFLECTANCE_MULT_BAND_3>", ""))
    assert_one_line_error(d, "REFLECTANCE_MULT_BAND_3")
    built = build_landsat(tmp_path / "nosr", sr_group=False)
    assert_one_line_error(built["path"], "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    built = build_landsat(tmp_path / "c1", collection="01")
    assert find_reader(built["path"]).name == landsat.PRODUCT
    assert_one_line_error(built["path"], "collection 01")

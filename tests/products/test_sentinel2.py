"""Sentinel-2 L2A reader on miniature .SAFE products (real EnMAP spectra through the S2 responses, lossless JP2)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _builders_msi import S2_QUANT, acolite_srf, build_sentinel2, zip_folder
from _checks import assert_one_line_error
from conftest import requires_shared

from csakd_qgis.products import sentinel2
from csakd_qgis.products.base import write_geotiff
from csakd_qgis.products.registry import find_reader, open_product
from csakd_qgis.raster.io import read_meta, read_reflectance
from csakd_qgis.spectral.srf import load_sensor_srf

pytestmark = requires_shared


@pytest.fixture(scope="module")
def s2_05(tmp_path_factory):
    return build_sentinel2(tmp_path_factory.mktemp("s2_05"), baseline="05.10")


def _written(raster, tmp_path, block_rows=256):
    out = write_geotiff(raster, tmp_path / f"{raster.role.replace(' ', '_')}.tif", block_rows=block_rows)
    return read_meta(out), read_reflectance(out)


def _check_raster(raster, built, key, tmp_path):
    """The written raster has the product's grid, reflectance and mask (nodata exactly where flagged)."""
    meta, refl = _written(raster, tmp_path)
    want, invalid = built[f"refl{key}"], built[f"invalid{key}"]
    assert meta.crs == built["crs"]
    assert meta.transform == built[f"transform{key}"]
    assert (meta.height, meta.width) == want.shape[1:]
    assert np.array_equal(np.isnan(refl).any(axis=0), invalid)
    assert np.isnan(refl[:, invalid]).all()
    np.testing.assert_allclose(refl[:, ~invalid], want[:, ~invalid], rtol=0, atol=1e-6)
    # within half a quantisation step of the real spectra synthesised through the SRF (lossless JP2)
    synth = built[f"synth{key}"]
    inside = ~invalid & (built[f"dn{key}"] > 1).all(axis=0)
    assert np.abs(refl[:, inside] - synth[:, inside]).max() <= 0.5 / S2_QUANT + 1e-6
    return meta, refl


def test_baseline_05_offset_grids_and_mask(s2_05, tmp_path):
    rasters = sentinel2.read(s2_05["path"])
    assert [r.role for r in rasters] == ["MSI 10 m", "MSI 20 m"]
    r10, r20 = rasters
    assert r10.band_names == ["B2", "B3", "B4", "B8"]
    assert r20.band_names == ["B5", "B6", "B7", "B8A", "B11", "B12"]
    assert r10.scales == [pytest.approx(1e-4)] * 4 and r10.offsets == [pytest.approx(-0.1)] * 4
    assert r20.offsets == [pytest.approx(-0.1)] * 6
    assert r10.nodata == 0 and r10.dtype == "uint16"
    m10, refl10 = _check_raster(r10, s2_05, "10", tmp_path)
    m20, _ = _check_raster(r20, s2_05, "20", tmp_path)
    assert m10.res == (10.0, 10.0) and m20.res == (20.0, 20.0)
    assert (m10.transform.c, m10.transform.f) == (m20.transform.c, m20.transform.f)
    # DN 1000 is reflectance 0 with the -1000 offset: a dark pixel is not read as 0.1
    assert np.nanmin(refl10) < 0.02


def test_scl_classes_and_10m_upsampling(s2_05, tmp_path):
    scl = s2_05["scl"]
    _, refl10 = _written(sentinel2.read(s2_05["path"])[0], tmp_path)
    _, refl20 = _written(sentinel2.read(s2_05["path"])[1], tmp_path)
    for cls, masked in ((9, True), (3, True), (10, True), (8, True), (1, True), (0, True), (11, False),
                        (7, False), (2, False), (4, False)):
        rows, cols = np.nonzero(scl == cls)
        assert rows.size, cls
        assert np.isnan(refl20[0, rows, cols]).all() == masked, cls
        assert np.isnan(refl20[0, rows, cols]).any() == masked, cls
        # each 20 m SCL pixel covers 2 x 2 pixels at 10 m
        for dr in (0, 1):
            for dc in (0, 1):
                assert np.isnan(refl10[0, 2 * rows + dr, 2 * cols + dc]).all() == masked, cls
    snowy = sentinel2.read(s2_05["path"], mask_snow=True)[1]
    _, refl_snow = _written(snowy, tmp_path)
    assert np.isnan(refl_snow[0][scl == 11]).all()


def test_baseline_03_has_no_offset(tmp_path):
    built = build_sentinel2(tmp_path / "a", baseline="03.01")
    r10, r20 = sentinel2.read(built["path"])
    assert r10.offsets == [0.0] * 4 and r20.offsets == [0.0] * 6
    _check_raster(r10, built, "10", tmp_path)
    # an offset list in a product before 04.00 is not applied either
    listed = build_sentinel2(tmp_path / "b", baseline="03.01", with_offsets=True)
    assert sentinel2.read(listed["path"])[0].offsets == [0.0] * 4
    assert "no BOA_ADD_OFFSET" in " ".join(r10.notes)
    # Sen2Cor products of the first baselines name the value L2A_BOA_QUANTIFICATION_VALUE
    _edit_mtd(built["path"], "BOA_QUANTIFICATION_VALUE unit", "L2A_BOA_QUANTIFICATION_VALUE unit")
    _edit_mtd(built["path"], "</BOA_QUANTIFICATION_VALUE>", "</L2A_BOA_QUANTIFICATION_VALUE>")
    assert sentinel2.read(built["mtd"])[1].scales == [pytest.approx(1e-4)] * 6


def test_band_centres_s2a_s2b_from_srf_s2c_from_metadata(s2_05, tmp_path):
    r10, r20 = sentinel2.read(s2_05["path"])
    want = load_sensor_srf("S2A", ["B2", "B3", "B4", "B8"])
    np.testing.assert_allclose(r10.wavelengths, want.centroids(), atol=1e-3)
    np.testing.assert_allclose(r10.wavelengths, [492.4, 559.9, 664.6, 832.8], atol=0.1)
    np.testing.assert_allclose(r10.fwhm, want.fwhm(), atol=1e-3)
    s2b = sentinel2.read(build_sentinel2(tmp_path / "b", spacecraft="Sentinel-2B")["path"])[1]
    np.testing.assert_allclose(s2b.wavelengths, load_sensor_srf("S2B", list(s2b.band_names)).centroids(),
                               atol=1e-3)
    s2c = sentinel2.read(build_sentinel2(tmp_path / "c", spacecraft="Sentinel-2C")["path"])
    curves = acolite_srf("S2C")
    for raster in s2c:
        for b, c, f in zip(raster.band_names, raster.wavelengths, raster.fwhm, strict=True):
            w, r = curves[b]
            assert c == pytest.approx(float(np.sum(w * r) / np.sum(r)), abs=0.05), b
            above = w[r >= 0.5 * r.max()]
            assert f == pytest.approx(above[-1] - above[0], abs=1.5), b
        assert "product's spectral responses" in " ".join(raster.notes)
    assert s2c[0].notes[0].startswith("S2C")


def test_find_reader_and_zip(s2_05, tmp_path):
    assert find_reader(s2_05["path"]).name == "Sentinel-2 L2A"
    assert find_reader(s2_05["mtd"]).name == "Sentinel-2 L2A"
    assert find_reader(next(s2_05["path"].rglob("*_B02_10m.jp2"))) is None
    z = zip_folder(s2_05["path"], tmp_path / s2_05["path"].stem)
    rasters = open_product(z, tmp_path / "work")
    assert [r.role for r in rasters] == ["MSI 10 m", "MSI 20 m"]
    assert np.array_equal(rasters[1].read_rows(3, 5), s2_05["dn20"][:, 3:8])
    via_mtd = open_product(s2_05["mtd"])
    assert np.array_equal(via_mtd[0].read_rows(0, 64), s2_05["dn10"])


def _copy(built, tmp_path):
    dst = tmp_path / built["path"].name
    shutil.copytree(built["path"], dst)
    return dst


def _edit_mtd(safe, old, new):
    mtd = safe / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    assert old in text
    mtd.write_text(text.replace(old, new))


def test_errors_missing_mtd_baseline_band_offsets(s2_05, tmp_path):
    safe = _copy(s2_05, tmp_path / "nomtd")
    (safe / "MTD_MSIL2A.xml").unlink()
    assert_one_line_error(safe, "has no MTD_MSIL2A.xml")
    for bad in ("07.00", "N0510", ""):
        safe = _copy(s2_05, tmp_path / f"bl{bad}")
        _edit_mtd(safe, "<PROCESSING_BASELINE>05.10<", f"<PROCESSING_BASELINE>{bad}<")
        assert_one_line_error(safe, "processing baseline")
    safe = _copy(s2_05, tmp_path / "noband")
    next(safe.rglob("*_B11_20m.jp2")).unlink()
    assert_one_line_error(safe, "B11_20m")
    safe = _copy(s2_05, tmp_path / "noscl")
    next(safe.rglob("*_SCL_20m.jp2")).unlink()
    assert_one_line_error(safe, "SCL_20m")
    safe = _copy(s2_05, tmp_path / "nooffset")
    mtd = safe / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    start, end = text.index("<BOA_ADD_OFFSET_VALUES_LIST>"), text.index("</BOA_ADD_OFFSET_VALUES_LIST>")
    mtd.write_text(text[:start] + text[end + len("</BOA_ADD_OFFSET_VALUES_LIST>"):])
    assert_one_line_error(safe, "BOA_ADD_OFFSET")
    safe = _copy(s2_05, tmp_path / "noquant")
    _edit_mtd(safe, "BOA_QUANTIFICATION_VALUE unit", "BOA_Q_VALUE unit")
    _edit_mtd(safe, "</BOA_QUANTIFICATION_VALUE>", "</BOA_Q_VALUE>")
    assert_one_line_error(safe, "BOA_QUANTIFICATION_VALUE")


def test_strip_cache_matches_direct_reads_on_tiled_jp2(s2_05, tmp_path):
    import rasterio

    from csakd_qgis.products.msi_bands import band_rows

    src = next(s2_05["path"].rglob("*_B04_10m.jp2"))
    with rasterio.open(str(src)) as ds:
        profile, data = ds.profile, ds.read(1)
    tiled = tmp_path / "tiled_B04_10m.jp2"
    profile.update(QUALITY="100", REVERSIBLE="YES", BLOCKXSIZE=32, BLOCKYSIZE=32)
    with rasterio.open(str(tiled), "w", **profile) as ds:
        ds.write(data, 1)
    with rasterio.open(str(tiled)) as ds:
        assert ds.block_shapes[0][0] == 32  # tile rows
    read_rows = band_rows([tiled, src], data.shape[1])
    for row0, n in ((0, 5), (5, 7), (12, 9), (30, 16), (31, 33), (60, 4), (0, 64)):
        block = read_rows(row0, n)
        assert np.array_equal(block[0], data[row0:row0 + n]) and np.array_equal(block[1], data[row0:row0 + n])

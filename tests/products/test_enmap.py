"""products/enmap.py: EnMAP L2A folders (GeoTIFF, ENVI BSQ/BIL/BIP) built from a real EnMAP tile."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _builders import EDGE_PIXEL, ENMAP_GAIN, ENMAP_NODATA, N_VNIR_ENMAP, build_enmap
from conftest import requires_shared

from csakd_qgis.errors import CsakdError
from csakd_qgis.products import enmap
from csakd_qgis.products.base import write_geotiff
from csakd_qgis.products.registry import find_reader, is_product, open_product
from csakd_qgis.raster.io import read_meta, read_reflectance

pytestmark = requires_shared


def _written(tmp_path, raster):
    out = write_geotiff(raster, tmp_path / f"{raster.role}.tif")
    return read_meta(out), read_reflectance(out)


@pytest.mark.parametrize("fmt", ["GeoTIFF", "BSQ", "BIL", "BIP"])
def test_every_delivered_format_reads_to_the_tile_reflectance(tmp_path, fmt):
    src = build_enmap(tmp_path / "p", fmt=fmt)
    assert len(list(src["folder"].glob(f"*-QL_QUALITY_CLOUD.{'TIF' if fmt == 'GeoTIFF' else fmt}"))) == 1
    (hsi,) = enmap.read(src["folder"])
    assert (hsi.product, hsi.role, hsi.count, hsi.width, hsi.height) == ("EnMAP L2A", "HSI", 224, 32, 32)
    assert hsi.dtype == "int16" and hsi.nodata == ENMAP_NODATA
    assert hsi.summary().startswith("EnMAP L2A HSI: 32 x 32 px, 224 bands 418-2446 nm, 30 m pixels (")
    assert np.array_equal(hsi.read_rows(0, 32), src["raw"])
    assert f"format {fmt}+Metadata" in hsi.notes and "processing version 01.03.02" in hsi.notes
    meta, refl = _written(tmp_path, hsi)
    assert meta.crs == src["crs"] and meta.transform == src["transform"]
    assert meta.nodata == ENMAP_NODATA
    np.testing.assert_allclose(meta.wavelengths, src["wavelengths"], atol=5e-4)
    np.testing.assert_allclose(meta.fwhm, src["fwhm"], atol=5e-4)
    assert meta.scales == [pytest.approx(ENMAP_GAIN)] * 224 and meta.offsets == [0.0] * 224
    expected = src["reflectance"].copy()
    expected[:, src["masked"]] = np.nan
    assert np.array_equal(np.isnan(refl), np.isnan(expected))
    np.testing.assert_allclose(refl[~np.isnan(refl)], expected[~np.isnan(expected)], rtol=0, atol=1e-6)


def test_band_order_overlap_bad_bands_and_detector_names(tmp_path):
    src = build_enmap(tmp_path / "p")
    (hsi,) = enmap.read(src["metadata"])  # the metadata file opens the product as well as its folder
    assert hsi.wavelengths == src["wavelengths"]  # delivered order: VNIR then SWIR, overlap in both
    assert hsi.wavelengths[N_VNIR_ENMAP - 1] == pytest.approx(993.083)
    assert hsi.wavelengths[N_VNIR_ENMAP] == pytest.approx(902.257)
    assert hsi.bbl == src["bbl"] and hsi.bbl.count(0) == 6
    assert hsi.band_names[0] == "VNIR 1" and hsi.band_names[N_VNIR_ENMAP] == f"SWIR {N_VNIR_ENMAP + 1}"
    meta, _ = _written(tmp_path, hsi)
    assert meta.bbl == src["bbl"]
    assert meta.descriptions[N_VNIR_ENMAP] == "SWIR 92 (902.3 nm)"


def test_cloud_shadow_haze_cirrus_become_nodata_and_snow_does_not(tmp_path):
    src = build_enmap(tmp_path / "p")
    (hsi,) = enmap.read(src["folder"])
    mask = hsi.invalid_rows(0, 32)
    assert np.array_equal(mask, src["masked"]) and mask.sum() == 48 + 16 + 4 + 1
    assert not mask[src["snow"]].any()
    assert "masked as nodata: cloud, cloudshadow, haze, cirrus" in hsi.notes
    assert np.array_equal(hsi.invalid_rows(4, 2), src["masked"][4:6])
    nodata = src["masked"].copy()
    nodata[EDGE_PIXEL] = True
    blocks = read_reflectance(write_geotiff(hsi, tmp_path / "blocks.tif", block_rows=3))  # 11 uneven blocks
    assert np.array_equal(np.isnan(blocks[0]), nodata)
    _, refl = _written(tmp_path, hsi)
    assert np.isnan(refl[:, src["masked"]]).all()
    assert np.isnan(refl[:, EDGE_PIXEL[0], EDGE_PIXEL[1]]).all()  # background pixel
    assert not np.isnan(refl[0, 0, 0]) and refl[0, 0, 0] == pytest.approx(src["reflectance"][0, 0, 0], abs=1e-6)


def test_gain_and_offset_are_applied(tmp_path):
    src = build_enmap(tmp_path / "p", offset_dn=100)
    (hsi,) = enmap.read(src["folder"])
    assert hsi.offsets == [pytest.approx(-0.01)] * 224
    raw = hsi.read_rows(10, 1)
    assert raw[0, 0, 0] == src["raw"][0, 10, 0] and raw[0, 0, 0] != round(src["reflectance"][0, 10, 0] / 1e-4)
    meta, refl = _written(tmp_path, hsi)
    assert meta.offsets == [pytest.approx(-0.01)] * 224
    ok = ~np.isnan(refl)
    np.testing.assert_allclose(refl[ok], src["reflectance"][ok], rtol=0, atol=1e-6)


def test_missing_quality_layers_mask_nothing_and_say_so(tmp_path):
    src = build_enmap(tmp_path / "p")
    for layer in src["folder"].glob("*QL_QUALITY_*.TIF"):
        layer.unlink()
    (hsi,) = enmap.read(src["folder"])
    assert hsi.invalid_rows is None
    assert any("no cloud/shadow/haze/cirrus quality layers" in n for n in hsi.notes)


def test_registry_finds_enmap_for_folder_and_metadata_and_opens_the_zip(tmp_path):
    src = build_enmap(tmp_path / "p")
    assert find_reader(src["folder"]) is enmap.READER
    assert find_reader(src["metadata"]) is enmap.READER
    assert find_reader(src["folder"] / (src["folder"].name + "-SPECTRAL_IMAGE.TIF")) is None
    assert is_product(src["metadata"])
    archive = shutil.make_archive(str(tmp_path / src["folder"].name), "zip", str(src["folder"].parent),
                                  src["folder"].name)
    (hsi,) = open_product(archive, work_dir=tmp_path / "work")
    assert hsi.product == "EnMAP L2A" and hsi.source == str(tmp_path / "work" / src["folder"].name)
    assert np.array_equal(hsi.read_rows(0, 32), src["raw"])
    assert np.array_equal(hsi.invalid_rows(0, 32), src["masked"])


def test_missing_metadata_file(tmp_path):
    src = build_enmap(tmp_path / "p", metadata=False)
    with pytest.raises(CsakdError, match=r"has no metadata file \(\*-METADATA.XML\)") as err:
        enmap.read(src["folder"])
    assert "\n" not in str(err.value)


def test_missing_spectral_image(tmp_path):
    src = build_enmap(tmp_path / "p", image=False)
    with pytest.raises(CsakdError, match="has no spectral image .*SPECTRAL_IMAGE.TIF") as err:
        enmap.read(src["folder"])
    assert "\n" not in str(err.value)


def test_envi_image_without_header(tmp_path):
    src = build_enmap(tmp_path / "p", fmt="BIL")
    header = next(src["folder"].glob("*-SPECTRAL_IMAGE.HDR"))
    text = header.read_text()
    header.unlink()
    with pytest.raises(CsakdError, match=r"spectral image .* has no ENVI header \(.*SPECTRAL_IMAGE.HDR\)"):
        enmap.read(src["folder"])
    next(src["folder"].glob("*-QL_QUALITY_HAZE.HDR")).unlink()
    header.write_text(text)
    with pytest.raises(CsakdError, match=r"quality layer QL_QUALITY_HAZE .* has no ENVI header"):
        enmap.read(src["folder"])


def test_unknown_version_format_and_level(tmp_path):
    src = build_enmap(tmp_path / "v", version="020001")
    with pytest.raises(CsakdError, match="processing version 02.00.01, which this reader does not know"):
        enmap.read(src["folder"])
    src = build_enmap(tmp_path / "f")
    text = src["metadata"].read_text().replace("GeoTIFF+Metadata", "JPEG2000+Metadata")
    src["metadata"].write_text(text)
    with pytest.raises(CsakdError, match="delivered as 'JPEG2000\\+Metadata'.*does not read"):
        enmap.read(src["folder"])
    src = build_enmap(tmp_path / "l", level="L1C")
    with pytest.raises(CsakdError, match="processing level L1C, not L2A"):
        enmap.read(src["folder"])


def test_damaged_metadata_and_band_count_mismatch(tmp_path):
    src = build_enmap(tmp_path / "d")
    src["metadata"].write_text("<level_X><specific>")
    with pytest.raises(CsakdError, match="is not readable XML"):
        enmap.read(src["folder"])
    src = build_enmap(tmp_path / "n")
    text = src["metadata"].read_text()
    cut = text.index('<bandID number="224">')
    src["metadata"].write_text(text[:cut] + text[text.index("</bandID>", cut) + len("</bandID>"):])
    with pytest.raises(CsakdError, match="has 224 bands but its metadata .* describes 223"):
        enmap.read(src["folder"])


def test_nodata_is_the_image_s_else_the_l2a_fill_value_and_a_differing_background_is_noted(tmp_path):
    src = build_enmap(tmp_path / "a", image_nodata=False)
    (hsi,) = enmap.read(src["folder"])
    assert hsi.nodata == ENMAP_NODATA
    assert "no nodata in the image: the product's documented fill value -32768 used" in hsi.notes
    _, refl = _written(tmp_path, hsi)
    assert np.isnan(refl[:, EDGE_PIXEL[0], EDGE_PIXEL[1]]).all()
    src = build_enmap(tmp_path / "b", background=0)
    (hsi,) = enmap.read(src["folder"])
    assert hsi.nodata == ENMAP_NODATA
    assert "the metadata's background value 0 differs from the nodata -32768 used" in hsi.notes
    src = build_enmap(tmp_path / "c", image_nodata=False, background=0)
    (hsi,) = enmap.read(src["folder"])
    assert hsi.nodata == ENMAP_NODATA
    assert [n for n in hsi.notes if n.startswith(("no nodata", "the metadata's"))] == [
        "no nodata in the image: the product's documented fill value -32768 used",
        "the metadata's background value 0 differs from the nodata -32768 used"]
    (hsi,) = enmap.read(build_enmap(tmp_path / "d")["folder"])
    assert not [n for n in hsi.notes if n.startswith(("no nodata", "the metadata's"))]


def test_a_folder_of_several_products_never_mixes_their_files(tmp_path):
    first = build_enmap(tmp_path / "a" / "x", version="010302")
    second = build_enmap(tmp_path / "a" / "y", version="010400", offset_dn=7)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for src in (first, second):
        for f in src["folder"].iterdir():
            f.rename(mixed / f.name)
    (hsi,) = enmap.read(mixed / second["metadata"].name)
    assert "processing version 01.04.00" in hsi.notes and hsi.source == str(mixed)
    assert np.array_equal(hsi.read_rows(0, 32), second["raw"])
    (hsi,) = enmap.read(mixed)  # the folder: its first product by name
    assert "processing version 01.03.02" in hsi.notes
    assert np.array_equal(hsi.read_rows(0, 32), first["raw"])

"""products/desis.py: DESIS L2A folders built from real EnMAP pixels resampled to the DESIS bands."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _builders import ENMAP_GAIN, ENMAP_NODATA, build_desis
from conftest import requires_shared

from csakd_qgis.errors import CsakdError
from csakd_qgis.products import desis
from csakd_qgis.products.base import write_geotiff
from csakd_qgis.products.registry import find_reader, open_product
from csakd_qgis.raster.io import read_meta, read_reflectance

pytestmark = requires_shared


def test_desis_reads_bands_gain_offset_nodata_and_grid(tmp_path):
    src = build_desis(tmp_path / "p")
    (hsi,) = desis.read(src["folder"])
    assert (hsi.product, hsi.role, hsi.count, hsi.width, hsi.height, hsi.dtype) == (
        "DESIS L2A", "HSI", 235, 32, 32, "int16")
    assert hsi.wavelengths == src["wavelengths"] and hsi.fwhm == src["fwhm"]
    assert hsi.wavelengths[0] == 402.0 and hsi.wavelengths[-1] == 999.5
    assert hsi.scales == [ENMAP_GAIN] * 235 and hsi.offsets == src["offsets"] and hsi.nodata == ENMAP_NODATA
    assert "processing version 02.10" in hsi.notes
    assert np.array_equal(hsi.read_rows(3, 5), src["raw"][:, 3:8])
    out = write_geotiff(hsi, tmp_path / "desis.tif")
    meta = read_meta(out)
    assert meta.crs == src["crs"] and meta.transform == src["transform"] and meta.nodata == ENMAP_NODATA
    np.testing.assert_allclose(meta.wavelengths, src["wavelengths"], atol=5e-4)
    np.testing.assert_allclose(meta.fwhm, src["fwhm"], atol=5e-4)
    np.testing.assert_allclose(meta.offsets, src["offsets"], atol=1e-9)
    refl = read_reflectance(out)
    expected = src["reflectance"].copy()
    expected[:, src["masked"]] = np.nan
    assert np.array_equal(np.isnan(refl), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(refl[ok], expected[ok], rtol=0, atol=1e-6)
    assert np.isnan(refl[:, 0, 31]).all()  # background pixel


def test_shadow_haze_cloud_flags_mask_and_snow_aot_water_vapour_do_not(tmp_path):
    src = build_desis(tmp_path / "p")
    (hsi,) = desis.read(src["metadata"])
    mask = hsi.invalid_rows(0, 32)
    assert np.array_equal(mask, src["masked"]) and mask.sum() == 9 + 1 + 24 + 1
    assert not mask[src["snow"]].any()
    assert any(n.startswith("masked as nodata: shadow, haze over land") for n in hsi.notes)


def test_nodata_falls_back_to_the_metadata_background_value(tmp_path):
    src = build_desis(tmp_path / "p", image_nodata=False)
    (hsi,) = desis.read(src["folder"])
    assert hsi.nodata == ENMAP_NODATA
    assert "no nodata in the image: the metadata's background value -32768 used" in hsi.notes
    meta = read_meta(write_geotiff(hsi, tmp_path / "d.tif"))
    assert meta.nodata == ENMAP_NODATA


def test_without_quality_layer_nothing_is_masked(tmp_path):
    src = build_desis(tmp_path / "p", quality=False)
    (hsi,) = desis.read(src["folder"])
    assert hsi.invalid_rows is None and "no QL_QUALITY-2 layer found: nothing masked" in hsi.notes


def test_registry_finds_desis_for_folder_and_metadata_and_opens_the_zip(tmp_path):
    src = build_desis(tmp_path / "p")
    assert find_reader(src["folder"]) is desis.READER
    assert find_reader(src["metadata"]) is desis.READER
    archive = shutil.make_archive(str(tmp_path / "desis"), "zip", str(src["folder"].parent), src["folder"].name)
    (hsi,) = open_product(archive, work_dir=tmp_path / "work")
    assert hsi.product == "DESIS L2A" and np.array_equal(hsi.read_rows(0, 32), src["raw"])


def test_bad_inputs_each_give_one_clear_line(tmp_path):
    src = build_desis(tmp_path / "m")
    src["metadata"].unlink()
    with pytest.raises(CsakdError, match=r"has no metadata file \(\*-METADATA.xml\)"):
        desis.read(src["folder"])
    src = build_desis(tmp_path / "i")
    next(src["folder"].glob("*SPECTRAL_IMAGE.tif")).unlink()
    with pytest.raises(CsakdError, match="has no spectral image") as err:
        desis.read(src["folder"])
    assert "\n" not in str(err.value)
    src = build_desis(tmp_path / "v", version="0900")
    with pytest.raises(CsakdError, match="processing version 09.00, which this reader does not know"):
        desis.read(src["folder"])
    src = build_desis(tmp_path / "x")
    src["metadata"].write_text("<hsi_doc><specific/></hsi_doc>")
    with pytest.raises(CsakdError, match="has no band elements with bandNumber"):
        desis.read(src["folder"])
    src = build_desis(tmp_path / "q")
    q2 = next(src["folder"].glob("*QL_QUALITY-2.tif"))
    shutil.copy(next(src["folder"].glob("*QL_IMAGE.tif")), q2)  # a 3-band file in its place
    with pytest.raises(CsakdError, match="has 3 bands, fewer than the 7 class bands"):
        desis.read(src["folder"])

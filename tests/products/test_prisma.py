"""products/prisma.py: PRISMA L2D .he5 files built from real EnMAP pixels resampled to the PRISMA bands."""

from __future__ import annotations

import shutil

import h5py  # system package (python3-h5py), installed by make setup
import numpy as np
import pytest
from _builders import N_SWIR_ZERO, PRISMA_SCALE, build_desis, build_enmap, build_prisma
from conftest import requires_shared

from csakd_qgis.errors import CsakdError
from csakd_qgis.products import desis, enmap, prisma
from csakd_qgis.products.base import write_geotiff
from csakd_qgis.products.registry import find_reader, open_product
from csakd_qgis.raster.io import read_meta, read_reflectance

pytestmark = requires_shared


def _expected(src: dict) -> tuple[list[float], list[float], np.ndarray, np.ndarray, int]:
    """Sorted centres, FWHM, reflectance from the DN (formula), source reflectance, VNIR bands dropped."""
    v, s = src["detectors"]["Vnir"], src["detectors"]["Swir"]
    first_swir = min(c for c in s["cw"] if c > 0)
    rows = []
    for key, d in (("Vnir", v), ("Swir", s)):
        lo, hi = (float(np.float32(x)) for x in PRISMA_SCALE[key])
        for i, c in enumerate(d["cw"]):
            if c > 0 and (key == "Swir" or c < first_swir):
                rows.append((c, d["fw"][i], lo + d["dn"][i] * (hi - lo) / 65535.0, d["refl"][i]))
    rows.sort(key=lambda r: r[0])
    dropped = sum(1 for c in v["cw"] if c >= first_swir)
    return ([float(np.float32(r[0])) for r in rows], [float(np.float32(r[1])) for r in rows],
            np.stack([r[2] for r in rows]), np.stack([r[3] for r in rows]), dropped)


def test_hsi_bands_sorted_overlap_dropped_scaling_and_grid(tmp_path):
    src = build_prisma(tmp_path / "p")
    hsi, pan = prisma.read(src["he5"])
    wl, fw, from_dn, source, dropped = _expected(src)
    assert (hsi.product, hsi.role, hsi.width, hsi.height, hsi.dtype) == ("PRISMA L2D", "HSI", 32, 32, "uint16")
    assert hsi.count == 63 + 171 - dropped == len(wl) and dropped == 3  # 972.7, 962.3, 951.4 nm >= 943.0
    assert hsi.wavelengths == wl and hsi.fwhm == fw
    assert all(b > a for a, b in zip(hsi.wavelengths[:-1], hsi.wavelengths[1:], strict=True))
    assert 0.0 not in hsi.wavelengths and hsi.wavelengths[0] == pytest.approx(402.5)
    assert max(w for w, n in zip(hsi.wavelengths, hsi.band_names, strict=True) if n.startswith("VNIR")) < 943.0
    assert "VNIR/SWIR overlap 943-973 nm: SWIR bands kept, 3 VNIR bands dropped" in hsi.notes
    assert hsi.nodata == 0 and hsi.crs == src["crs"] and hsi.transform == src["transform"]
    assert hsi.summary().startswith("PRISMA L2D HSI: 32 x 32 px, 231 bands 402-2497 nm, 30 m pixels (")
    assert pan.summary().startswith("PRISMA L2D PAN: 192 x 192 px, 1 bands 550-550 nm, 5 m pixels (")
    out = write_geotiff(hsi, tmp_path / "hsi.tif")
    meta = read_meta(out)
    assert meta.crs == src["crs"] and meta.transform == src["transform"] and meta.nodata == 0
    np.testing.assert_allclose(meta.wavelengths, wl, atol=5e-4)
    vmin, vmax = PRISMA_SCALE["Vnir"]
    assert meta.offsets[0] == pytest.approx(vmin) and meta.scales[0] == pytest.approx((vmax - vmin) / 65535)
    smin, smax = PRISMA_SCALE["Swir"]
    assert meta.offsets[-1] == pytest.approx(smin) and meta.scales[-1] == pytest.approx((smax - smin) / 65535)
    refl = read_reflectance(out)
    bad = src["masked"] | src["edge"]
    assert np.isnan(refl[:, bad]).all() and not np.isnan(refl[:, ~bad]).any()
    np.testing.assert_allclose(refl[:, ~bad], from_dn[:, ~bad], rtol=0, atol=1e-6)
    # and the DN are the real pixels' reflectance quantised: within half a DN step
    step = max((vmax - vmin), (smax - smin)) / 65535
    assert np.abs(refl[:, ~bad] - source[:, ~bad]).max() <= step / 2 + 1e-6


def test_error_matrix_and_cloud_mask(tmp_path):
    src = build_prisma(tmp_path / "p")
    hsi, _ = prisma.read(src["he5"])
    mask = hsi.invalid_rows(0, 32)
    assert np.array_equal(mask, src["masked"]) and mask.sum() == 2 + 24
    assert not mask[10, 10] and not mask[12, 12] and not mask[14, 14] and not mask[2, 2]
    assert np.array_equal(hsi.invalid_rows(5, 2), src["masked"][5:7])
    assert any("VNIR/SWIR error matrices; Cloud_Mask clouds" in n for n in hsi.notes)
    whole = read_reflectance(write_geotiff(hsi, tmp_path / "whole.tif"))
    blocks = read_reflectance(write_geotiff(hsi, tmp_path / "blocks.tif", block_rows=5))  # 7 uneven blocks
    assert np.array_equal(whole, blocks, equal_nan=True) and np.isnan(blocks[:, src["masked"]]).all()
    src2 = build_prisma(tmp_path / "q", cloud=False)
    hsi2, _ = prisma.read(src2["he5"])
    assert hsi2.invalid_rows(0, 32).sum() == 2
    assert any(n.endswith("no Cloud_Mask in the file") for n in hsi2.notes)


def test_pan_is_on_the_5m_grid_with_the_hsi_corner(tmp_path):
    src = build_prisma(tmp_path / "p")
    hsi, pan = prisma.read(src["folder"])
    assert (pan.role, pan.count, pan.width, pan.height) == ("PAN", 1, 6 * hsi.width, 6 * hsi.height)
    assert pan.transform.a == 5.0 and pan.transform.e == -5.0
    assert (pan.transform.c, pan.transform.f) == (hsi.transform.c, hsi.transform.f)
    assert pan.transform * (pan.width, pan.height) == hsi.transform * (hsi.width, hsi.height)
    assert pan.wavelengths == [550.0] and pan.fwhm == [300.0] and any("approximate" in n for n in pan.notes)
    assert np.array_equal(pan.read_rows(0, 192)[0], src["pan"])
    out = write_geotiff(pan, tmp_path / "pan.tif")
    meta = read_meta(out)
    assert meta.crs == src["crs"] and meta.res == (5.0, 5.0) and meta.wavelengths == [550.0]
    refl = read_reflectance(out)[0]
    pmin, pmax = PRISMA_SCALE["Pan"]
    expected = np.float32(pmin) + src["pan"] * (float(np.float32(pmax)) - float(np.float32(pmin))) / 65535
    bad = src["pan_masked"] | (src["pan"] == 0)
    assert np.isnan(refl[bad]).all() and bad.sum() == 1 + 36
    np.testing.assert_allclose(refl[~bad], expected[~bad], rtol=0, atol=1e-6)


def test_registry_finds_prisma_for_he5_and_folder_and_opens_the_zip(tmp_path):
    src = build_prisma(tmp_path / "p")
    assert find_reader(src["he5"]) is prisma.READER
    assert find_reader(src["folder"]) is prisma.READER
    others = {"enmap": build_enmap(tmp_path / "e"), "desis": build_desis(tmp_path / "d")}
    for reader, paths in ((enmap, ("desis",)), (desis, ("enmap",)), (prisma, ("enmap", "desis"))):
        for key in paths:
            assert not reader.detect(others[key]["folder"]) and not reader.detect(others[key]["metadata"])
    assert not enmap.detect(src["folder"]) and not desis.detect(src["he5"])
    archive = shutil.make_archive(str(tmp_path / "prisma"), "zip", str(src["folder"]))  # the .he5 at the top
    rasters = open_product(archive, work_dir=tmp_path / "work")
    assert [r.role for r in rasters] == ["HSI", "PAN"]
    assert rasters[0].read_rows(0, 32).shape == (rasters[0].count, 32, 32)


def test_bad_inputs_each_give_one_clear_line(tmp_path):
    with pytest.raises(CsakdError, match=r"has no HDF5 file \(PRS_L2D_\*.he5\)"):
        prisma.read(tmp_path)
    src = build_prisma(tmp_path / "l", layout="L2C_names")
    with pytest.raises(CsakdError, match="has no 3-D dataset 'HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields/VNIR_Cube'"
                       r" \(absent\): it is not laid out as a PRISMA L2D product") as err:
        prisma.read(src["he5"])
    assert "\n" not in str(err.value)
    src = build_prisma(tmp_path / "c", level="2C")
    with pytest.raises(CsakdError, match="processing level 2C, not L2D"):
        prisma.read(src["he5"])
    src = build_prisma(tmp_path / "a")
    with h5py.File(str(src["he5"]), "a") as f:
        del f.attrs["Epsg_Code"]
    with pytest.raises(CsakdError, match="lacks the root attribute 'Epsg_Code'"):
        prisma.read(src["he5"])
    src = build_prisma(tmp_path / "n")
    with h5py.File(str(src["he5"]), "a") as f:
        f.attrs["List_Cw_Swir"] = f.attrs["List_Cw_Swir"][:-N_SWIR_ZERO]
    with pytest.raises(CsakdError, match="lists 171 SWIR centres and 173 FWHM but its SWIR_Cube has 173 bands"):
        prisma.read(src["he5"])
    src = build_prisma(tmp_path / "z")
    with h5py.File(str(src["he5"]), "a") as f:
        f.attrs["List_Cw_Vnir"] = np.zeros_like(f.attrs["List_Cw_Vnir"])
    with pytest.raises(CsakdError, match="lists no VNIR band with a non-zero centre"):
        prisma.read(src["he5"])
    broken = tmp_path / "b" / "PRS_L2D_STD_20200101000000_20200101000004_0001.he5"
    broken.parent.mkdir()
    broken.write_bytes(b"not hdf5")
    with pytest.raises(CsakdError, match="is not a readable HDF5 file"):
        prisma.read(broken)

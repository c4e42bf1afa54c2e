"""raster/io.py: metadata, boundless windowed reads, output-path checks, atomic GeoTIFF writing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
from _helpers_raster import enmap_tile, read_all, requires_shared
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import (
    GeoTiffWriter,
    check_output_path,
    parse_creation_options,
    read_meta,
    read_reflectance,
    read_window_raw,
    write_raster,
)

CRS33 = CRS.from_epsg(32633)
TR = Affine(10.0, 0.0, 360000.0, 0.0, -10.0, 5810000.0)


def test_read_meta_missing_and_non_raster(tmp_path):
    with pytest.raises(CsakdError, match="does not exist"):
        read_meta(tmp_path / "nope.tif", "hyperspectral (HSI) input")
    txt = tmp_path / "notes.tif"
    txt.write_text("not a raster\n")
    with pytest.raises(CsakdError, match=r"hyperspectral \(HSI\) input .*not a readable raster"):
        read_meta(txt, "hyperspectral (HSI) input")


@pytest.mark.parametrize("name,pattern", [("out.png", "only GeoTIFF"), ("out.jp2", "only GeoTIFF"),
                                          ("missing_dir/out.tif", "does not exist")])
def test_check_output_path_rejects(tmp_path, name, pattern):
    with pytest.raises(CsakdError, match=pattern):
        check_output_path(tmp_path / name)


def test_check_output_path_parent_is_file_and_input_overwrite(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(CsakdError, match="does not exist"):
        check_output_path(f / "out.tif")
    src = tmp_path / "in.tif"
    write_raster(src, np.zeros((1, 4, 4), np.float32), CRS33, TR)
    with pytest.raises(CsakdError, match="one of the inputs"):
        check_output_path(src, [src])
    assert check_output_path(tmp_path / "ok.TIF") == tmp_path / "ok.TIF"


def test_writer_metadata_block_shape_and_bands(tmp_path):
    out = tmp_path / "w.tif"
    data = np.arange(3 * 40 * 50, dtype=np.float32).reshape(3, 40, 50)
    data[1] = np.nan
    with GeoTiffWriter(out, 50, 40, 3, CRS33, TR, [450.0, 1340.0, 850.5], [10.0, 11.0, None], bbl=[1, 0, 1],
                       creation_options=parse_creation_options("BLOCKXSIZE=32 BLOCKYSIZE=16")) as wr:
        assert wr.block_shape == (16, 32)
        wr.write(data[[0, 2], :20], window=Window(0, 0, 50, 20), indexes=[1, 3])
        wr.write(data[[0, 2], 20:], window=Window(0, 20, 50, 20), indexes=[1, 3])
        wr.write(data[1:2], window=Window(0, 0, 50, 40), indexes=[2])
    back, info = read_all(out)
    assert np.allclose(back[[0, 2]], data[[0, 2]]) and np.isnan(back[1]).all()
    assert [t.get("bbl") for t in info["tags"]] == ["1", "0", "1"]
    assert float(info["tags"][2]["wavelength"]) == pytest.approx(850.5)
    assert "fwhm" not in info["tags"][2]
    assert info["descriptions"][0] == "band 1 (450.00 nm)"
    meta = read_meta(out)
    assert meta.bbl == [1, 0, 1] and meta.good_bands() == [0, 2]


def test_writer_removes_temp_on_error(tmp_path):
    out = tmp_path / "fail.tif"
    with pytest.raises(RuntimeError), GeoTiffWriter(out, 8, 8, 1, CRS33, TR) as wr:
        wr.write(np.zeros((1, 8, 8), np.float32))
        raise RuntimeError("boom")
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_read_window_raw_boundless_plain_and_warped(tmp_path):
    import rasterio
    from rasterio.vrt import WarpedVRT

    src = tmp_path / "src.tif"
    data = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    write_raster(src, data, CRS33, TR)
    with rasterio.open(src) as ds:
        block = read_window_raw(ds, Window(-2, -3, 6, 5), [2])
        assert block.shape == (1, 5, 6)
        assert np.isnan(block[:, :3]).all() and np.isnan(block[:, :, :2]).all()
        assert np.array_equal(block[0, 3:, 2:], data[1, :2, :4])
        with WarpedVRT(ds, crs=CRS33, transform=TR, width=12, height=10, dtype="float32", nodata=np.nan) as vrt:
            wb = read_window_raw(vrt, Window(8, 8, 6, 4), [1])
            assert np.array_equal(wb[0, :2, :4], data[0, 8:, 8:]) and np.isnan(wb[0, 2:]).all()
    full = read_reflectance(src, window=Window(-1, -1, 3, 3), boundless=True)
    assert np.isnan(full[:, 0]).all() and full[0, 1, 1] == data[0, 0, 0]


@requires_shared
@pytest.mark.shared_data
def test_real_enmap_tile_metadata():
    meta = read_meta(enmap_tile(64, 0))
    assert meta.count == 224 and meta.nodata == -32768
    assert len(meta.good_bands()) == 218 and meta.bbl[129:135] == [0] * 6
    assert meta.wavelengths[0] == pytest.approx(418.24, abs=0.01) and meta.fwhm[0] == pytest.approx(7.0, abs=0.1)
    refl = read_reflectance(enmap_tile(64, 0), bands=[20, 130])
    assert 0 < np.nanmean(refl[0]) < 0.5 and np.isnan(refl[1]).all()


def test_written_files_get_normal_permissions(tmp_path):
    """Outputs written through a temporary file get 0666 minus the umask, not mkstemp's 0600."""
    import os
    import stat

    from csakd_qgis.raster.io import chmod_like_new_file

    p = tmp_path / "x.bin"
    p.write_bytes(b"1")
    os.chmod(p, 0o600)
    chmod_like_new_file(p)
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~mask


def test_read_window_raw_into_out_equals_numpy_mirror(tmp_path):
    """Any window (inside, across an edge, beyond the raster) read into a given view equals numpy's symmetric pad."""
    rng = np.random.default_rng(0)
    a = rng.random((2, 13, 11), dtype=np.float32)
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=11, height=13, count=2, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(0, 0, 1, 1)) as ds:
        ds.write(a)
    ref = np.pad(a, ((0, 0), (60, 60), (60, 60)), mode="symmetric")
    with rasterio.open(path) as ds:
        for _ in range(300):
            r, c = (int(v) for v in rng.integers(-30, 30, 2))
            h, w = (int(v) for v in rng.integers(1, 30, 2))
            buf = np.full((2, h + 4, w), -1.0, np.float32)
            got = read_window_raw(ds, Window(c, r, w, h), [1, 2], outside="symmetric", out=buf[:, 2:2 + h])
            assert np.shares_memory(got, buf)
            np.testing.assert_array_equal(buf[:, 2:2 + h], ref[:, r + 60:r + 60 + h, c + 60:c + 60 + w])
            assert (buf[:, :2] == -1).all() and (buf[:, 2 + h:] == -1).all()  # nothing written outside the view
        with pytest.raises(ValueError, match="float32 of shape"):
            read_window_raw(ds, Window(0, 0, 4, 4), [1], out=np.empty((1, 4, 5), np.float32))

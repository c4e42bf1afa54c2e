"""raster/io.py GeoTiffWriter output types and compression threads, end to end through fuse / csakd fuse.

int16/uint16 outputs store reflectance x 10000 with a band scale of 1e-4, and every reader of the output
(read_reflectance, evaluate, batch resume) gets reflectance back; compression on 1 or 2 threads gives the same
pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from _helpers_cli import run_cli
from _helpers_raster import reference, write_pair

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.raster.io import GeoTiffWriter, encode_reflectance, read_meta, read_reflectance


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small pair from the real EnMAP mosaic (synthetic without it), s = 4, one bad band, nodata MSI columns."""
    d = tmp_path_factory.mktemp("dtype")
    p = write_pair(d, reference(), scale=4, bad_bands=1, nodata_msi_cols=8)
    p["dir"] = d
    return p


@pytest.fixture(scope="module")
def fused(pair):
    """The same fusion (glp) written as float32, int16 and uint16, uncompressed (for the byte counts)."""
    out = {}
    for dtype in ("float32", "int16", "uint16"):
        path = pair["dir"] / f"fused_{dtype}.tif"
        fuse(pair["hsi"], pair["msi"], path, model="glp", dtype=dtype, creation_options={"COMPRESS": "NONE"})
        out[dtype] = path
    return out


def test_int16_output_is_float32_within_1e4_half_the_bytes(fused):
    ref = read_reflectance(fused["float32"])
    for dtype, nodata in (("int16", -32768), ("uint16", 65535)):
        with rasterio.open(fused[dtype]) as ds:
            assert ds.dtypes[0] == dtype and ds.nodata == nodata
            assert set(ds.scales) == {1e-4} and set(ds.offsets) == {0.0}
        got = read_reflectance(fused[dtype])
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.array_equal(np.isnan(got), np.isnan(ref))  # nodata (bad band, blank MSI columns) kept
        assert np.isnan(ref[2]).all() and np.isnan(ref[:, :, :8]).all()
        ok = np.isfinite(ref)
        if dtype == "uint16":  # negative reflectance is clipped to 0
            ok &= ref >= 0
        assert np.abs(got[ok] - ref[ok]).max() <= 0.5e-4 + 1e-6
        ratio = fused[dtype].stat().st_size / fused["float32"].stat().st_size
        assert 0.45 < ratio < 0.55, ratio
    assert read_meta(fused["int16"]).wavelengths == read_meta(fused["float32"]).wavelengths


def test_evaluate_reads_the_int16_output_as_reflectance(pair, fused, tmp_path):
    from csakd_qgis.quality.report import evaluate_rasters

    hr = pair["hr"]
    ref_path = tmp_path / "ref.tif"
    with GeoTiffWriter(ref_path, hr.shape[2], hr.shape[1], hr.shape[0], pair["crs"], pair["hr_transform"],
                       [w for w, b in zip(pair["wavelengths"], pair["bbl"], strict=True) if b]) as wr:
        wr.write(hr)
    m32 = evaluate_rasters(ref_path, fused["float32"], pair["scale"])
    m16 = evaluate_rasters(ref_path, fused["int16"], pair["scale"])
    assert m16["n_pixels"] == m32["n_pixels"] > 0
    assert abs(m16["rmse"] - m32["rmse"]) < 1e-4
    assert abs(m16["psnr"] - m32["psnr"]) < 0.05 and abs(m16["sam"] - m32["sam"]) < 0.01


def test_encode_reflectance_rounds_clips_and_marks_nodata():
    x = np.array([[[0.12344, 0.12346, np.nan, np.inf], [-0.5, 3.3, 7.0, -0.00004]]], np.float32)
    i16, valid = encode_reflectance(x, "int16")
    assert valid and i16.tolist() == [[[1234, 1235, -32768, -32768], [-5000, 32767, 32767, 0]]]
    u16, _ = encode_reflectance(x, "uint16")
    assert u16.tolist() == [[[1234, 1235, 65535, 65535], [0, 33000, 65534, 0]]]
    assert not encode_reflectance(np.full((1, 2, 2), np.nan, np.float32), "int16")[1]


def test_bad_dtype_is_a_user_error(pair, tmp_path):
    with pytest.raises(CsakdError, match="int16"):
        fuse(pair["hsi"], pair["msi"], tmp_path / "x.tif", model="glp", dtype="float64")
    assert not (tmp_path / "x.tif").exists()
    with pytest.raises(SystemExit):
        run_cli(["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--out", str(tmp_path / "y.tif"),
                 "--dtype", "int8"])


def test_cli_fuse_dtype_int16_end_to_end(pair, fused, tmp_path):
    out = tmp_path / "cli.tif"
    assert run_cli(["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--out", str(out),
                    "--model", "glp", "--dtype", "int16", "--no-progress"]) == 0
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "int16" and ds.profile["compress"] in ("zstd", "deflate")
    got, ref = read_reflectance(out), read_reflectance(fused["float32"])
    ok = np.isfinite(ref)
    assert np.array_equal(np.isnan(got), ~ok) and np.abs(got[ok] - ref[ok]).max() <= 0.5e-4 + 1e-6


def test_batch_table_dtype_column_and_resume(pair, tmp_path):
    from csakd_qgis.distributed.batch import is_complete, read_jobs, run_batch

    table = tmp_path / "jobs.csv"
    table.write_text(f"hsi,msi,out,model,dtype\n{pair['hsi']},{pair['msi']},{tmp_path / 'b.tif'},glp,int16\n")
    jobs = read_jobs(table)
    assert jobs[0].options["dtype"] == "int16"
    result = run_batch(table)
    assert [r.status for r in result.records] == ["done"]
    with rasterio.open(tmp_path / "b.tif") as ds:
        assert ds.dtypes[0] == "int16"
    assert is_complete(jobs[0])
    changed = type(jobs[0])(1, jobs[0].hsi, jobs[0].msi, jobs[0].out, {**jobs[0].options, "dtype": "uint16"})
    assert not is_complete(changed)  # another output type is another result: resume re-runs it


def test_compression_threads_give_the_same_pixels(tmp_path):
    from affine import Affine

    rng = np.random.default_rng(0)
    a = (0.2 + 0.05 * rng.standard_normal((12, 300, 280))).astype(np.float32)
    a[:, :5] = np.nan
    out = {}
    for th in ("1", "2"):
        out[th] = tmp_path / f"t{th}.tif"
        with GeoTiffWriter(out[th], 280, 300, 12, "EPSG:32633", Affine(10, 0, 0, 0, -10, 0),
                           creation_options={"NUM_THREADS": th, "BLOCKXSIZE": "128", "BLOCKYSIZE": "128"}) as wr:
            wr.write(a)
    with rasterio.open(out["1"]) as d1, rasterio.open(out["2"]) as d2:
        assert np.array_equal(d1.read(), d2.read())


def test_fuse_on_1_and_2_threads_is_bit_identical(pair, tmp_path):
    outs = []
    for th in (1, 2):
        outs.append(tmp_path / f"f{th}.tif")
        fuse(pair["hsi"], pair["msi"], outs[-1], model="glp+cy", threads=th, tile=64, overlap=16)
    with rasterio.open(outs[0]) as d1, rasterio.open(outs[1]) as d2:
        assert np.array_equal(d1.read(), d2.read(), equal_nan=True)

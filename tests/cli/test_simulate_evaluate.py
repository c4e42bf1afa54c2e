"""``csakd simulate`` / ``csakd evaluate`` run in-process: valid GeoTIFFs, metrics JSON and HTML report."""

from __future__ import annotations

import json
import re

import pytest
from _helpers_cli import run_cli
from _helpers_sim import enmap_mosaic, requires_shared_data, smooth_cube
from rasterio.crs import CRS
from rasterio.transform import from_origin

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.raster.io import read_meta, read_reflectance, write_raster


def _reference(path, cube, wl, transform):
    write_raster(path, cube, CRS.from_epsg(32633), transform, wavelengths=list(wl), fwhm=[8.0] * len(wl))
    return path


def _fuse_to_file(lr_path, msi_path, out_path, s, method="glp"):
    lm, mm = read_meta(lr_path), read_meta(msi_path)
    fused = fuse_classical(read_reflectance(lr_path), read_reflectance(msi_path), s, method)
    write_raster(out_path, fused, mm.crs, mm.transform, wavelengths=lm.wavelengths, fwhm=lm.fwhm)
    return out_path


def test_simulate_then_evaluate(tmp_path, capsys):
    cube, wl = smooth_cube(40, 50, 46, seed=2)
    ref = _reference(tmp_path / "ref.tif", cube, wl, from_origin(500000.0, 4000000.0, 10.0, 10.0))
    lr, msi = tmp_path / "lr.tif", tmp_path / "msi.tif"
    assert run_cli(["simulate", "--hsi", str(ref), "--scale", "4", "--sensor", "S2A:B2,B3,B4,B8",
                    "--out-lr", str(lr), "--out-msi", str(msi), "--snr", "40"]) == 0
    assert "LR-HSI 12 x 11 px, 40 bands" in capsys.readouterr().out
    lm, mm = read_meta(lr), read_meta(msi)
    assert (lm.width, lm.height, lm.transform.a) == (11, 12, 40.0)
    assert (mm.width, mm.height, mm.count, mm.transform.a) == (44, 48, 4, 10.0)
    assert lm.transform.c == mm.transform.c == 500000.0 and lm.transform.f == mm.transform.f == 4000000.0

    fused = _fuse_to_file(lr, msi, tmp_path / "fused.tif", 4)
    js, rep = tmp_path / "m.json", tmp_path / "r.html"
    assert run_cli(["evaluate", "--reference", str(ref), "--fused", str(fused), "--scale", "4", "--json", str(js),
                    "--report", str(rep), "--lr", str(lr)]) == 0
    out = capsys.readouterr().out
    assert "fused" in out and "bicubic" in out
    m = json.loads(js.read_text())  # strict JSON
    for k in ("psnr", "sam", "ergas", "rmse", "ssim", "uiqi", "psnr_per_band", "bicubic"):
        assert k in m
    assert m["n_bands"] == 40 and len(m["psnr_per_band"]) == 40
    assert m["window"] == {"row_off": 0, "col_off": 0, "height": 48, "width": 44}
    assert m["psnr"] > m["bicubic"]["psnr"] and m["sam"] < m["bicubic"]["sam"]
    text = rep.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") == 5
    assert not re.search(r"(src|href)=['\"]https?:", text)  # self-contained

    # without --lr the bicubic baseline comes from the Wald-degraded reference
    js2 = tmp_path / "m2.json"
    assert run_cli(["evaluate", "--reference", str(ref), "--fused", str(fused), "--scale", "4",
                    "--json", str(js2)]) == 0
    m2 = json.loads(js2.read_text())
    assert m2["psnr"] == pytest.approx(m["psnr"]) and "Wald" in m2["bicubic_source"]


def test_evaluate_identical_writes_inf_and_matches_crop(tmp_path):
    cube, wl = smooth_cube(12, 30, 30, seed=4)
    tr = from_origin(300000.0, 5000000.0, 30.0, 30.0)
    ref = _reference(tmp_path / "ref.tif", cube, wl, tr)
    # the "fused" raster is an exact copy of a sub-window, offset by (2, 3) pixels on the same grid
    sub = _reference(tmp_path / "sub.tif", cube[:, 2:26, 3:27], wl, from_origin(300090.0, 4999940.0, 30.0, 30.0))
    js = tmp_path / "m.json"
    assert run_cli(["evaluate", "--reference", str(ref), "--fused", str(sub), "--scale", "3", "--json", str(js),
                    "--report", str(tmp_path / "r.html")]) == 0
    m = json.loads(js.read_text())
    assert m["psnr"] == "inf" and m["sam"] == 0.0 and m["rmse"] == 0.0
    assert m["window"] == {"row_off": 2, "col_off": 3, "height": 24, "width": 24}
    assert (tmp_path / "r.html").stat().st_size > 10000


def test_cli_user_errors(tmp_path):
    cube, wl = smooth_cube(6, 16, 16)
    ref = _reference(tmp_path / "ref.tif", cube, wl, from_origin(0.0, 1000.0, 10.0, 10.0))
    with pytest.raises(SystemExit):
        run_cli(["simulate", "--hsi", str(ref), "--scale", "2.5", "--out-lr", "a.tif", "--out-msi", "b.tif"])
    with pytest.raises(CsakdError, match="json"):
        run_cli(["evaluate", "--reference", str(ref), "--fused", str(ref), "--scale", "2", "--json", "m.txt"])
    with pytest.raises(CsakdError, match="does not exist"):
        run_cli(["evaluate", "--reference", str(ref), "--fused", str(tmp_path / "none.tif"), "--scale", "2",
                 "--json", str(tmp_path / "m.json")])
    other = _reference(tmp_path / "other.tif", cube, wl, from_origin(5.0, 1000.0, 10.0, 10.0))
    with pytest.raises(CsakdError, match="fraction of a pixel"):
        run_cli(["evaluate", "--reference", str(ref), "--fused", str(other), "--scale", "2",
                 "--json", str(tmp_path / "m.json")])
    with pytest.raises(CsakdError, match="outside"):
        run_cli(["simulate", "--hsi", str(ref), "--scale", "2", "--sensor", "gaussian:3000/40",
                 "--out-lr", str(tmp_path / "a.tif"), "--out-msi", str(tmp_path / "b.tif")])


@requires_shared_data
@pytest.mark.shared_data
def test_enmap_cli_roundtrip(tmp_path):
    m = enmap_mosaic()
    ref = write_raster(tmp_path / "enmap_ref.tif", m["cube"], m["crs"], m["transform"],
                       wavelengths=list(m["wavelengths"]), fwhm=list(m["fwhm"]))
    lr, msi = tmp_path / "lr.tif", tmp_path / "msi.tif"
    assert run_cli(["simulate", "--hsi", str(ref), "--scale", "3", "--out-lr", str(lr), "--out-msi", str(msi)]) == 0
    lm = read_meta(lr)
    assert (lm.height, lm.width, lm.count) == (21, 32, 218)
    assert lm.transform.a == 90.0 and lm.transform.c == m["transform"].c and lm.transform.f == m["transform"].f
    fused = _fuse_to_file(lr, msi, tmp_path / "fused.tif", 3, "gsa")
    js = tmp_path / "m.json"
    assert run_cli(["evaluate", "--reference", str(ref), "--fused", str(fused), "--scale", "3", "--json", str(js),
                    "--lr", str(lr)]) == 0
    res = json.loads(js.read_text())
    assert res["n_bands"] == 218 and res["window"]["height"] == 63
    assert res["psnr"] > res["bicubic"]["psnr"] + 5 and res["sam"] < res["bicubic"]["sam"]

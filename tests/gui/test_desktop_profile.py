"""Desktop QGIS under Xvfb: Plugins > CSAKD > Spectral profile clicked on a real EnMAP-derived fusion.

Builds a Wald pair from the real EnMAP Potsdam mosaic (LR-HSI with two bad bands and a nodata row, S2 MSI),
fuses it with classical GLP through the engine, reprojects the MSI to EPSG:4326 (a layer in another CRS) and
adds a raster without wavelengths; in the running desktop the tool is started from its action and the map
clicked. The plotted arrays must be the rasters' values at the clicked pixel (wavelengths in nm, bad bands as
gaps), the panel screenshot is saved in test-artifacts/, the CSV export holds the shown profiles, and clicks
outside, on nodata and on a layer without wavelengths give a line in the panel and nothing in QGIS's log.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _helpers_desktop import start_qgis
from _helpers_raster import ROOT, reproject_raster, requires_shared, write_pair
from rasterio.crs import CRS
from rasterio.warp import transform as warp_points

from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.raster.io import read_meta, read_reflectance

pytestmark = [pytest.mark.qgis, pytest.mark.shared_data, requires_shared]
SCRIPT = Path(__file__).with_name("desktop_profile.py")
ARTIFACTS = ROOT / "test-artifacts"
ROW, COL = 40, 52  # the clicked HR pixel
ROW2, COL2 = 20, 80  # the second place, compared with the first one pinned


def _expected(path: Path, x: float, y: float, crs=None) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(wavelengths sorted, reflectance with bad bands NaN, (row, col)) of the raster at map point (x, y)."""
    meta = read_meta(path)
    if crs is not None and crs != meta.crs:
        xs, ys = warp_points(crs, meta.crs, [x], [y])
        x, y = xs[0], ys[0]
    col, row = (int(np.floor(v)) for v in ~meta.transform * (x, y))
    values = read_reflectance(path, window=((row, row + 1), (col, col + 1)))[:, 0, 0].astype(np.float64)
    values[[i for i, b in enumerate(meta.bbl) if not b]] = np.nan
    order = np.argsort(meta.wavelengths, kind="stable")
    return np.asarray(meta.wavelengths)[order], values[order], (row, col)


def _arrays(plotted: dict, label: str) -> tuple[np.ndarray, np.ndarray]:
    d = plotted[label]
    return np.asarray(d["x"]), np.asarray([np.nan if v is None else v for v in d["y"]])


def test_spectral_profile_panel_draws_the_pixel_spectra(tmp_path):
    t0 = time.perf_counter()
    pair = write_pair(tmp_path, scale=3, bad_bands=2, nodata_lr_rows=1)
    fused = tmp_path / "fused_glp.tif"
    fuse(pair["hsi"], pair["msi"], fused, model="glp", device="cpu")
    msi_geo = reproject_raster(pair["msi"], tmp_path / "msi_4326.tif", CRS.from_epsg(4326), resampling="nearest")
    plain = tmp_path / "no_wavelengths.tif"
    with rasterio.open(pair["msi"]) as ds:
        profile = ds.profile | {"count": 2}
        with rasterio.open(plain, "w", **profile) as out:
            out.write(ds.read([1, 2]))
    hr = pair["hr_transform"]
    x, y = hr * (COL + 0.5, ROW + 0.5)
    x2, y2 = hr * (COL2 + 0.5, ROW2 + 0.5)
    x_nodata, y_nodata = hr * (COL + 0.5, 1.5)  # the LR-HSI's first row is nodata: HR rows 0-2 of the fusion too
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    layers = [[str(fused), "fused GLP"], [str(pair["hsi"]), "LR-HSI"], [str(msi_geo), "MSI (EPSG:4326)"],
              [str(plain), "no wavelengths"]]
    data = start_qgis(SCRIPT, {"out_dir": str(out_dir), "layers": layers, "only_visible": "no wavelengths",
                               "second": [x2, y2], "clicks": {"pixel": [x, y], "nodata": [x_nodata, y_nodata],
                                          "outside": [hr.c - 500.0, hr.f + 500.0]}}, tmp_path, timeout=180)
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("panel.png", "panel_first.png", "panel_plain.png", "profiles.png", "window.png"):
        shutil.copy(out_dir / name, ARTIFACTS / f"spectral_profile_{name}")
    print(f"desktop spectral profile test: {time.perf_counter() - t0:.1f} s")

    assert data["plugin_loaded"] and all(data["valid"]), data
    assert "Spectral profile" in data["menu"] and data["tool_active"] and data["panel_visible"]
    assert data["matplotlib"] == "MplPlot"
    assert data["critical"] == [], data["critical"]
    assert data["errors"] == [], data["errors"]  # no Python error in any Qt callback (map tool events, buttons)
    assert any("ZeroDivisionError" in e for e in data["probe"]), data["probe"]  # which that check would catch

    # the clicked pixel: every layer with wavelengths, its values at that point, bad bands as gaps
    click = data["clicks"]["pixel"]
    assert abs(click["point"][0] - x) < 5 and abs(click["point"][1] - y) < 5  # within the 10 m pixel
    crs = pair["crs"]
    px, py = click["point"]
    for label, path in (("fused GLP", fused), ("LR-HSI", pair["hsi"]), ("MSI (EPSG:4326)", msi_geo)):
        wl, values, (row, col) = _expected(Path(path), px, py, crs)
        got_x, got_y = _arrays(click["plotted"], label)
        np.testing.assert_allclose(got_x, wl, rtol=1e-9)
        np.testing.assert_allclose(got_y, values, rtol=1e-6, equal_nan=True)
        assert f"{label}: pixel (row {row}, col {col})" in click["status"], click["status"]
    assert (ROW, COL) == _expected(fused, px, py)[2]
    fx, fy = _arrays(click["plotted"], "fused GLP")
    assert 400 < fx[0] < 430 and 2400 < fx[-1] < 2500  # nm
    assert np.isnan(fy[(fx >= 1340) & (fx <= 1350)]).all() and np.isnan(fy).sum() == 2  # the two bad bands
    assert "no wavelengths: no band wavelengths" in click["status"]
    assert "fused GLP: fusion: glp; scale 3; HSI shift" in click["info"], click["info"]

    # nodata, outside every layer, only a layer without wavelengths, no layer: one clear line each
    nod = data["clicks"]["nodata"]
    assert set(nod["plotted"]) == {"MSI (EPSG:4326)", "fused GLP, pin 1", "LR-HSI, pin 1", "MSI (EPSG:4326), pin 1"}
    for label in ("fused GLP", "LR-HSI"):
        assert f"{label}: no data at pixel (row " in nod["status"] and "(nodata in every band)" in nod["status"]
    out = data["clicks"]["outside"]
    assert out["status"].startswith("Point ") and out["status"].endswith("is outside every visible raster layer.")
    only = data["only_no_wavelengths"]
    assert only["status"].splitlines()[0].startswith("No spectrum at ")
    assert only["status"].splitlines()[1].startswith("no wavelengths: no band wavelengths (GDAL band metadata")
    assert not [k for k in only["plotted"] if "pin" not in k]
    assert data["none_visible"]["status"] == "No visible raster layer: add the fused output or the LR-HSI to the map."
    assert abs(data["shift_move_point"][0] - x) < 20  # a Shift move drew the point under the cursor

    # CSV: wavelength + one column per shown profile (3 current + 3 pinned), the values as plotted
    rows = list(csv.reader(open(out_dir / "profiles.csv", encoding="utf-8")))
    final = data["final"]["plotted"]
    assert rows[0][0] == "wavelength_nm" and len(rows[0]) == 1 + len(final) == 7
    fin_x, fin_y = data["final"]["point"]
    top_first = ["MSI (EPSG:4326)", "LR-HSI", "fused GLP"]  # the canvas's layer order
    assert rows[0][1:] == [f"{name} ({fin_x:.2f}, {fin_y:.2f})" for name in top_first] + [
        f"{name}, pin 1 ({px:.2f}, {py:.2f})" for name in top_first]
    grid = np.array([float(r[0]) for r in rows[1:]])
    for k, label in enumerate(top_first + [f"{name}, pin 1" for name in top_first], start=1):
        lx, ly = _arrays(final, label)
        cells = {float(r[0]): r[k] for r in rows[1:]}
        assert all(round(w, 4) in cells for w in lx)
        np.testing.assert_allclose([np.nan if cells[round(w, 4)] == "" else float(cells[round(w, 4)]) for w in lx],
                                   ly, rtol=1e-5, equal_nan=True)
        assert sum(cells[w] != "" for w in grid) == np.isfinite(ly).sum()  # nothing else in the column
    wl2, values2, _ = _expected(fused, x2, y2)
    np.testing.assert_allclose(_arrays(final, "fused GLP")[1], values2, rtol=1e-6, equal_nan=True)
    assert data["csv_ok"] and data["png_ok"] and "6 profile(s) written to" in data["after_export"]
    ok, message, written = data["export_bad"]
    assert not ok and not written and "spectral profile CSV" in message and "\n" not in message, message
    assert (out_dir / "profiles.png").stat().st_size > 10_000

    # without matplotlib: the same arrays in the QPainter plot
    plain_state = data["plain"]
    assert plain_state["widget"] == "PainterPlot" and "simple plot" in plain_state["note"]
    for label in ("fused GLP", "LR-HSI", "MSI (EPSG:4326)"):
        np.testing.assert_allclose(_arrays(plain_state["plotted"], label)[1], _arrays(final, label)[1],
                                   equal_nan=True)
    assert data["plain_pins"] == [2, 3, 4, 5, 6], data["plain_pins"]  # 5 pins at most, the oldest dropped
    assert data["plain_pin_message"] == "Pinned as pin 6 (pin 1 dropped: 5 pins at most).", data["plain_pin_message"]
    assert data["closed_releases_tool"] and data["reopened"] and data["unloaded"]

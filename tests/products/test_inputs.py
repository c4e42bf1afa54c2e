"""Products as job inputs: the fuse and superresolve commands take product folders/files like rasters."""

from __future__ import annotations

import numpy as np
import rasterio
from _builders import build_enmap, build_prisma
from conftest import requires_shared

from csakd_qgis.cli import main
from csakd_qgis.raster.io import read_meta

pytestmark = requires_shared


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_prisma_hsi_with_its_own_pan_fuses_on_the_5m_grid(tmp_path):
    """The same .he5 as HSI and MSI: the 30 m cube fused with the 5 m PAN (s = 6); masked pixels stay nodata."""
    prod = build_prisma(tmp_path / "in")
    out = tmp_path / "out" / "fused.tif"
    out.parent.mkdir()
    assert main(["fuse", "--hsi", str(prod["he5"]), "--msi", str(prod["he5"]), "--model", "glp", "--out", str(out),
                 "--no-progress"]) == 0
    meta = read_meta(out)
    with rasterio.open(out) as ds:
        data = ds.read(1)
    assert meta.res == (5.0, 5.0) and (meta.width, meta.height) == (192, 192)
    assert meta.transform.c == prod["transform"].c and meta.transform.f == prod["transform"].f
    assert meta.count > 200 and all(np.diff([w for w in meta.wavelengths if w is not None]) > 0)
    lr_masked = np.repeat(np.repeat(prod["masked"], 6, axis=0), 6, axis=1)
    assert (data[lr_masked] == meta.nodata).all()  # HSI cloud / error pixels are nodata in the output
    assert (data[~lr_masked & ~prod["pan_masked"]] != meta.nodata).mean() > 0.9
    assert _leftovers(out.parent) == []  # the products' work folder is gone


def test_enmap_product_as_hsi_and_a_multispectral_only_product_refused(tmp_path, capsys):
    """An HSI-only product given as the MSI: one line, exit 1, no output and no work folder left."""
    prod = build_enmap(tmp_path / "in")
    out = tmp_path / "fused.tif"
    assert main(["fuse", "--hsi", str(prod["folder"]), "--msi", str(prod["metadata"]), "--out", str(out),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multispectral (MSI) input" in err[0] and "EnMAP" in err[0]
    assert not out.exists() and _leftovers(tmp_path) == []


def test_superresolve_takes_an_enmap_product(tmp_path):
    """superresolve reads the product's HSI (gain applied, clouds as nodata) like a raster."""
    prod = build_enmap(tmp_path / "in")
    out = tmp_path / "sr.tif"
    assert main(["superresolve", "--hsi", str(prod["folder"]), "--model", "bicubic", "--scale", "3",
                 "--out", str(out), "--no-progress"]) == 0
    meta = read_meta(out)
    assert (meta.width, meta.height) == (96, 96) and meta.res == (10.0, 10.0)
    with rasterio.open(out) as ds:
        band = ds.read(1)
    cloud = np.repeat(np.repeat(prod["masked"], 3, axis=0), 3, axis=1)
    assert (band[cloud] == meta.nodata).all()
    valid = band[~cloud & (band != meta.nodata)]
    assert 0 < np.median(valid) < 1  # reflectance, not DN
    assert _leftovers(tmp_path) == []


def test_enmap_l2a_with_sentinel2_safe_fuses_on_the_10m_grid(tmp_path, caplog):
    """EnMAP L2A folder + S2 L2A .SAFE: output on the S2 10 m grid, EnMAP's bands, reflectance, clouds as nodata,
    and the SAFE's 20 m bands sharpened and used as well."""
    import logging

    caplog.set_level(logging.INFO, logger="csakd")
    from _builders_msi import build_sentinel2

    enmap = build_enmap(tmp_path / "enmap")
    s2 = build_sentinel2(tmp_path / "s2")
    out = tmp_path / "out" / "fused.tif"
    out.parent.mkdir()
    assert main(["fuse", "--hsi", str(enmap["folder"]), "--msi", str(s2["path"]), "--model", "glp", "--out", str(out),
                 "--no-progress"]) == 0
    log = caplog.text
    assert "Sentinel-2 L2A MSI 20 m" in log and "6 band(s) sharpened" in log, log
    meta = read_meta(out)
    assert meta.res == (10.0, 10.0) and meta.crs == s2["crs"]
    assert (meta.transform.c, meta.transform.f) == (s2["transform10"].c, s2["transform10"].f)
    h, w = meta.height, meta.width
    assert (h, w) == (63, 96)  # the overlap, cropped to whole EnMAP pixels
    assert meta.count == 224 and np.allclose(meta.wavelengths, enmap["wavelengths"], atol=1e-3)
    good = [i for i, b in enumerate(meta.bbl) if b]
    with rasterio.open(out) as ds:
        data = ds.read([good[0] + 1, good[len(good) // 2] + 1])
    nodata = data[0] == meta.nodata
    hsi_cloud = np.repeat(np.repeat(enmap["masked"] | (enmap["raw"][0] == -32768), 3, 0), 3, 1)[:h, :w]
    assert nodata[hsi_cloud].all() and nodata[s2["invalid10"][:h, :w]].all()  # cloudy in either: nodata
    clear = ~hsi_cloud & ~s2["invalid10"][:h, :w]
    assert clear.mean() > 0.6 and not nodata[clear].any()
    assert 0.0 < float(np.median(data[1][clear])) < 1.0  # reflectance (gain / quantification applied)
    assert _leftovers(out.parent) == []


def test_emit_with_landsat_fuses_on_the_landsat_grid(tmp_path):
    """EMIT L2A .nc (orthorectified through its GLT) + a Landsat C2 L2 folder on a grid twice as fine."""
    from _builders_msi import build_emit_landsat

    emit, emit_raster, landsat = build_emit_landsat(tmp_path)
    good = [i for i, b in enumerate(emit_raster.bbl) if b]
    utm, t_utm = landsat["crs"], landsat["transform"]
    out = tmp_path / "fused.tif"
    assert main(["fuse", "--hsi", str(emit["path"]), "--msi", str(landsat["path"]), "--model", "glp",
                 "--out", str(out), "--no-progress"]) == 0
    meta = read_meta(out)
    assert meta.crs == utm and meta.res == (30.0, 30.0)
    assert (meta.transform.c - t_utm.c) % 30 == 0 and (meta.transform.f - t_utm.f) % 30 == 0  # Landsat's grid
    assert meta.count == emit_raster.count and sum(meta.bbl) == len(good)
    with rasterio.open(out) as ds:
        band = ds.read(good[10] + 1)
    r0, c0 = int(round((t_utm.f - meta.transform.f) / 30)), int(round((meta.transform.c - t_utm.c) / 30))
    fill = landsat["invalid"][r0:r0 + meta.height, c0:c0 + meta.width]
    assert (band[fill] == meta.nodata).all()  # Landsat fill / QA, EMIT outside its swath or flagged
    assert (band[~fill] != meta.nodata).mean() > 0.5 and (~fill).sum() > 50
    valid = band[band != meta.nodata]
    assert 0.0 < float(np.median(valid)) < 1.0
    assert _leftovers(tmp_path) == []


def test_products_that_do_not_overlap_or_are_cloudy_everywhere_are_refused(tmp_path, capsys):
    """A SAFE beside the EnMAP scene (no common footprint) and an overlap under cloud: one line each, exit 1."""
    from _builders_msi import build_sentinel2

    s2 = build_sentinel2(tmp_path / "s2")
    apart = build_enmap(tmp_path / "apart", tile=(160, 160))  # 4.8 km south-east of the S2 miniature
    cloudy = build_enmap(tmp_path / "cloudy", cloud_rows=(0, 32))  # cloud over columns 10-17 only ...
    for prod, expect in ((apart, "overlap"), (cloudy, "valid")):
        if prod is cloudy:  # ... so crop the S2 footprint to those columns: every common pixel is cloudy
            import rasterio as rio
            for jp2 in sorted((s2["path"]).rglob("*.jp2")):
                with rio.open(jp2, "r+") as ds:
                    keep = np.zeros((ds.height, ds.width), bool)
                    f = 3 if ds.res[0] == 10 else 1.5
                    keep[:, int(10 * f):int(18 * f)] = True
                    data = ds.read(1)
                    data[~keep] = 0
                    ds.write(data, 1)
        out = tmp_path / f"{expect}.tif"
        code = main(["fuse", "--hsi", str(prod["folder"]), "--msi", str(s2["mtd"]), "--model", "glp",
                     "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and expect in err[0].lower(), err
        assert not out.exists() and _leftovers(tmp_path) == []


def test_a_learned_model_fuses_a_safe_with_its_10m_bands_only(tmp_path, caplog):
    """A zoo student (4 MSI bands in its card) with a SAFE: the 20 m bands are left out and the log says so."""
    import logging

    from _builders_msi import build_sentinel2

    caplog.set_level(logging.INFO, logger="csakd")
    enmap = build_enmap(tmp_path / "enmap")
    s2 = build_sentinel2(tmp_path / "s2")
    out = tmp_path / "fused.tif"
    assert main(["fuse", "--hsi", str(enmap["folder"]), "--msi", str(s2["path"]), "--model", "enmap_s2-4band_x3",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    assert "MSI 20 m bands not used" in caplog.text and "sharpened" not in caplog.text
    assert read_meta(out).count == 224


def test_missing_h5py_names_the_system_package(tmp_path, capsys, monkeypatch):
    """Without h5py a PRISMA product fails on one line that says to install the system's python3-h5py."""
    import builtins

    prod = build_prisma(tmp_path / "in")
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name.split(".")[0] == "h5py":
            raise ImportError("No module named 'h5py'", name="h5py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    out = tmp_path / "fused.tif"
    assert main(["fuse", "--hsi", str(prod["he5"]), "--msi", str(prod["he5"]), "--out", str(out),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'h5py'" in err[0] and "apt-get install python3-h5py" in err[0], err
    assert not out.exists()


def test_a_safe_given_as_the_20m_input_gives_its_20m_bands(tmp_path):
    """product_inputs: a SAFE as msi20 yields its six 20 m bands; the work folder is gone afterwards."""
    from _builders_msi import build_sentinel2

    from csakd_qgis.products.inputs import product_inputs

    s2 = build_sentinel2(tmp_path / "s2")
    with product_inputs({"msi20": str(s2["path"])}, tmp_path / "fused.tif") as (paths, notes):
        meta = read_meta(paths["msi20"])
        assert meta.count == 6 and meta.res == (20.0, 20.0) and len(notes) == 1
    assert _leftovers(tmp_path) == []

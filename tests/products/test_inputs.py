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

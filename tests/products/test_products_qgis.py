"""Products through headless qgis_process: the product file parameters and product paths given as layers."""

from __future__ import annotations

import numpy as np
import pytest
from _builders import build_enmap, build_prisma
from _builders_msi import build_emit_landsat, build_sentinel2
from conftest import requires_shared
from qgis_helpers import run_json

from csakd_qgis.raster.io import read_meta

pytestmark = [pytest.mark.qgis, requires_shared]


def test_products_fuse_through_qgis_process(tmp_path):
    """EnMAP METADATA.XML + a SAFE folder, PRISMA .he5 + its own PAN, EMIT .nc + a Landsat MTL file."""
    enmap = build_enmap(tmp_path / "enmap")
    s2 = build_sentinel2(tmp_path / "s2")
    prisma = build_prisma(tmp_path / "prisma")
    emit, emit_raster, landsat = build_emit_landsat(tmp_path / "emit_landsat")
    runs = {
        "enmap_s2": ({"HSI_PRODUCT": enmap["metadata"], "MSI_PRODUCT": s2["path"]}, 10.0, 224),
        "prisma_pan": ({"HSI_PRODUCT": prisma["he5"], "MSI_PRODUCT": prisma["he5"]}, 5.0, None),
        "emit_landsat": ({"HSI_PRODUCT": emit["path"], "MSI_PRODUCT": landsat["mtl_txt"]}, 30.0, emit_raster.count),
    }
    for name, (inputs, res, count) in runs.items():
        out = tmp_path / f"{name}.tif"
        rc, data, err = run_json("csakd:fuse_classical", {**inputs, "METHOD": "glp", "OUTPUT": out},
                                 tmp_path / "profile")
        assert rc == 0, err
        assert data["results"]["OUTPUT"] == str(out)
        meta = read_meta(out)
        assert meta.res == (res, res) and meta.has_wavelengths
        assert count is None or meta.count == count
        assert np.all(np.diff([w for w in meta.wavelengths]) > 0) or name == "enmap_s2"  # EnMAP: VNIR/SWIR overlap
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_missing_and_doubled_inputs_are_one_line(tmp_path, synthetic_pair):
    """No HSI at all, or an HSI given both as a layer and as a product: exit 1 with the reason, no output."""
    enmap = build_enmap(tmp_path / "enmap")
    s2 = build_sentinel2(tmp_path / "s2")
    for params, expect in (({"MSI_PRODUCT": s2["mtd"]}, "hyperspectral image is missing"),
                           ({"HSI": synthetic_pair["hsi"], "HSI_PRODUCT": enmap["metadata"],
                             "MSI_PRODUCT": s2["path"]}, "given twice")):
        out = tmp_path / "fused.tif"
        rc, _, err = run_json("csakd:fuse_classical", {**params, "METHOD": "glp", "OUTPUT": out},
                              tmp_path / "profile")
        assert rc == 1 and expect in err, err
        assert not out.exists()

"""csakd:simulate_pair writes the 20 m bands and csakd:fuse_classical takes them as 'MSI bands at 20 m'."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from csakd_qgis.raster.io import read_meta, read_reflectance, write_raster

pytestmark = pytest.mark.qgis


def test_simulate_pair_msi20_then_fuse_classical(provider, tmp_path):
    from qgis.core import QgsProcessingException

    import processing

    rng = np.random.default_rng(1)
    wl = np.linspace(420, 2400, 200)
    spectra = 0.05 + 0.4 * rng.random((5, 1)) * (1 + np.sin(wl[None] / (100 + 60 * rng.random((5, 1)))))
    ab = rng.random((5, 36, 36)) ** 3
    cube = np.einsum("mb,myx->byx", spectra, ab / ab.sum(0)).astype(np.float32)
    ref = tmp_path / "ref.tif"
    write_raster(ref, cube, CRS.from_epsg(32633), from_origin(500000.0, 4000000.0, 10.0, 10.0),
                 wavelengths=list(wl), fwhm=[10.0] * len(wl))
    lr, msi, z = (tmp_path / f"{k}.tif" for k in ("lr", "msi", "z"))
    processing.run("csakd:simulate_pair", {"HSI": str(ref), "SENSOR": "S2A:B2,B3,B4,B8", "SCALE": 3, "SNR": 0,
                                           "OUTPUT_LR": str(lr), "OUTPUT_MSI": str(msi), "OUTPUT_MSI20": str(z)})
    zm = read_meta(z)
    assert (zm.width, zm.height, zm.count, zm.transform.a) == (18, 18, 6, 20.0)
    out = tmp_path / "fused.tif"
    processing.run("csakd:fuse_classical", {"HSI": str(lr), "MSI": str(msi), "MSI20": str(z), "METHOD": "glp",
                                            "OUTPUT": str(out)})
    fused = read_reflectance(out)
    assert fused.shape == (200, 36, 36) and np.isfinite(fused).all()
    small = tmp_path / "small.tif"
    write_raster(small, read_reflectance(z)[:, :6], zm.crs, zm.transform)
    with pytest.raises(QgsProcessingException, match="does not cover the HSI/MSI overlap"):
        processing.run("csakd:fuse_classical", {"HSI": str(lr), "MSI": str(msi), "MSI20": str(small),
                                                "METHOD": "glp", "OUTPUT": str(tmp_path / "bad.tif")})
    assert not (tmp_path / "bad.tif").exists()

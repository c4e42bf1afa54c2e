"""Shared test fixtures: paths, the shared-data skip, and a small georeferenced LR-HSI/HR-MSI pair."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# the fault suite's fixtures; a second conftest.py would shadow this one for `from conftest import ...`
pytest_plugins = ["faults.fixtures_faults"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
QGIS_PYTHON_PLUGINS = "/usr/share/qgis/python/plugins"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if QGIS_PYTHON_PLUGINS not in sys.path and os.path.isdir(QGIS_PYTHON_PLUGINS):
    sys.path.append(QGIS_PYTHON_PLUGINS)  # QGIS's own `processing` package, for processing.run tests

requires_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real data folder {SHARED_DATA} is absent (it sits beside the repo in CI; see ../shared/data/README.md)")


def pytest_collection_modifyitems(config, items):
    """Items marked shared_data skip with a reason when ../shared/data is absent."""
    if SHARED_DATA.is_dir():
        return
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"needs {SHARED_DATA} (real EnMAP/AVIRIS data), absent here"))


def synthetic_reference(n_bands: int = 40, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, spatially structured reflectance cube (bands, size, size) and its wavelengths (nm)."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(420, 2400, n_bands)
    yy, xx = np.mgrid[0:size, 0:size] / size
    # three "materials" with distinct smooth spectra, mixed by smooth spatial abundances
    spectra = np.stack([0.05 + 0.3 / (1 + np.exp(-(wl - 720) / 25)),  # vegetation-like red edge
                        0.15 + 0.1 * (wl - 400) / 2000,  # soil-like ramp
                        0.08 + 0.02 * np.sin(wl / 150)])  # urban-like flat
    ab = np.stack([np.sin(3 * np.pi * xx) ** 2, np.cos(2 * np.pi * yy) ** 2,
                   0.3 + 0.2 * rng.random((size, size))])
    ab /= ab.sum(0, keepdims=True)
    cube = np.einsum("mb,myx->byx", spectra, ab).astype(np.float32)
    return cube, wl


@pytest.fixture(scope="session")
def synthetic_pair(tmp_path_factory) -> dict:
    """Georeferenced LR-HSI (s=4, 40 bands) + HR-MSI (S2A 4 bands) GeoTIFFs + their HR reference."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from csakd_qgis.raster.io import write_raster
    from csakd_qgis.raster.simulate import simulate_rasters

    d = tmp_path_factory.mktemp("pair")
    cube, wl = synthetic_reference()
    ref = d / "reference.tif"
    write_raster(ref, cube, CRS.from_epsg(32633), from_origin(362175.0, 5809965.0, 10.0, 10.0),
                 wavelengths=list(wl), fwhm=[10.0] * len(wl))
    lr, msi = d / "lr_hsi.tif", d / "hr_msi.tif"
    simulate_rasters(str(ref), "S2A:B2,B3,B4,B8", 4, str(lr), str(msi))
    return {"dir": d, "reference": ref, "hsi": lr, "msi": msi, "scale": 4}


@pytest.fixture(scope="module")
def provider(qgis_app, qgis_processing):
    """Register our provider the way QGIS does for an enabled plugin; unload removes it again."""
    from qgis.core import QgsApplication

    from csakd_qgis import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("csakd") is not None and registry.algorithmById("csakd:train") is not None
    yield plugin
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById("csakd") is None

"""Helpers of the distributed tests: EnMAP-derived pairs of any size and a 2-worker LocalCluster fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _helpers_raster import enmap_reference, write_pair


def enmap_scene(height: int, width: int, band_step: int = 1) -> dict:
    """The real EnMAP mosaic as an HR reference of ``height`` x ``width`` px (mirrored beyond its 64 x 96 px).

    ``band_step`` keeps every n-th band (fewer bands: cheaper big rasters, still covering the MSI bands).
    """
    ref = dict(enmap_reference())
    cube = ref["cube"][::band_step]
    while cube.shape[1] < height or cube.shape[2] < width:  # mirror about the edges until it is big enough
        cube = np.pad(cube, ((0, 0), (0, min(cube.shape[1], max(0, height - cube.shape[1]))),
                             (0, min(cube.shape[2], max(0, width - cube.shape[2])))), mode="symmetric")
    ref.update(cube=np.ascontiguousarray(cube[:, :height, :width]), wavelengths=ref["wavelengths"][::band_step],
               fwhm=ref["fwhm"][::band_step])
    return ref


def write_reference(path: Path, pair: dict) -> Path:
    """The pair's HR reference HSI as a GeoTIFF on the MSI grid (for the batch metrics)."""
    from csakd_qgis.raster.io import write_raster

    return write_raster(path, pair["hr"], pair["crs"], pair["hr_transform"], pair["wavelengths"], pair["fwhm"])


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture():
    """An executor on a LocalCluster of 2 worker processes, one thread each (skipped without Dask).

    A fixture here, not in a conftest.py: a second module named ``conftest`` would shadow tests/conftest.py
    for the helpers that import from it.
    """
    pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install -e '.[test]')")
    from csakd_qgis.distributed.cluster import executor

    with executor(workers=2) as ex:
        assert ex.workers == 2
        yield ex


__all__ = ["cluster_fixture", "enmap_scene", "write_pair", "write_reference"]

"""Fixtures of the fault suite: one small real (EnMAP, else synthetic) input pair shared by every test, a
qgis_process profile, and a larger synthetic pair for runs that are killed mid-way."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session")
def pair(tmp_path_factory) -> dict:
    """Read-only inputs: LR-HSI + HR-MSI pair (scale 4), its HR reference and a truncated real GeoTIFF.

    The pair is simulated from the real EnMAP mosaic when ../shared/data is present (218 bands: fits the
    zoo models), else from a smooth synthetic cube.
    """
    from _helpers_raster import HAVE_SHARED, enmap_tile, reference, write_pair

    from csakd_qgis.raster.io import write_raster

    d = tmp_path_factory.mktemp("inputs")
    ref = reference()
    p = write_pair(d, ref, scale=4, name="scene")
    refpath = write_raster(d / "scene_reference.tif", p["hr"], ref["crs"], p["hr_transform"],
                           wavelengths=ref["wavelengths"], fwhm=ref["fwhm"])
    info = {"dir": d, "hsi": p["hsi"], "msi": p["msi"], "reference": refpath, "enmap": ref["source"] == "enmap"}
    if HAVE_SHARED:  # a real EnMAP tile cut short, as a failed download or copy leaves it
        trunc = d / "truncated_enmap.tif"
        data = enmap_tile(64, 0).read_bytes()
        trunc.write_bytes(data[: len(data) // 2])
        info["truncated"] = trunc
    return info


@pytest.fixture
def needs_enmap(pair):
    """Skip unless the pair is the real EnMAP one (the zoo models need its 218 bands)."""
    if not pair["enmap"]:
        pytest.skip("needs ../shared/data/enmap_potsdam (the zoo models expect EnMAP's 218 bands); absent here")


@pytest.fixture
def truncated(pair) -> Path:
    """A truncated real EnMAP GeoTIFF (skips without ../shared/data)."""
    if "truncated" not in pair:
        pytest.skip("needs ../shared/data/enmap_potsdam for a real GeoTIFF to truncate; absent here")
    return pair["truncated"]


@pytest.fixture(scope="session")
def profile(tmp_path_factory) -> Path:
    """One qgis_process profile for the whole suite (the plugin is enabled once)."""
    return tmp_path_factory.mktemp("qgis_profile")


@pytest.fixture(scope="session")
def big_pair(tmp_path_factory) -> dict:
    """A synthetic pair large enough (1024 x 1024 HR px, 48 bands) that a run can be killed while it writes."""
    from affine import Affine
    from rasterio.crs import CRS

    from csakd_qgis.raster.io import write_raster

    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    n, s, size = 48, 4, 1024
    lr = (0.1 + 0.2 * rng.random((n, size // s, size // s))).astype(np.float32)
    msi = (0.1 + 0.2 * rng.random((4, size, size))).astype(np.float32)
    crs = CRS.from_epsg(32633)
    hr_tr = Affine(10.0, 0.0, 360000.0, 0.0, -10.0, 5810000.0)
    wl = list(np.linspace(420, 2400, n))
    write_raster(d / "big_hsi.tif", lr, crs, hr_tr * Affine.scale(s), wavelengths=wl, fwhm=[10.0] * n)
    write_raster(d / "big_msi.tif", msi, crs, hr_tr, wavelengths=[490.0, 560.0, 665.0, 842.0])
    return {"dir": d, "hsi": d / "big_hsi.tif", "msi": d / "big_msi.tif"}


@pytest.fixture
def zoo_copy(tmp_path) -> Path:
    """A private copy of the installed zoo (tests that try to overwrite it must not touch the real one)."""
    d = tmp_path / "zoo"
    d.mkdir()
    for name in ("enmap_s2-4band_x4", "enmap_s2-4band_x4_teacher"):
        for ext in (".json", ".safetensors"):
            shutil.copy(Path(__file__).resolve().parents[2] / "models" / f"{name}{ext}", d / f"{name}{ext}")
    return d

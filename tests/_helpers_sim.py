"""Helpers for the simulation/metrics/classical tests: shared-data paths, the EnMAP mosaic, small cubes.

Run as a script to print the classical baseline table on the real EnMAP mosaic:
    .venv/bin/python tests/_helpers_sim.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ENMAP_DIR = SHARED_DATA / "enmap_potsdam"
requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real data folder {SHARED_DATA} is absent (it sits beside the repo in CI; see ../shared/data/README.md)")

# (col, row) pixel offsets of the six tiles forming a contiguous 64 x 96 block (file names are tile_<col>_<row>)
MOSAIC_TILES = [(64, 0), (96, 0), (128, 0), (64, 32), (96, 32), (128, 32)]


def enmap_mosaic() -> dict:
    """The 64 x 96 px EnMAP mosaic (good bands only, reflectance) with wavelengths, FWHM and its grid."""
    from csakd_qgis.raster.io import read_meta
    from csakd_qgis.training.corpus import read_enmap_tiles

    for c, r in MOSAIC_TILES:  # the tiles lie on the 30 m grid the mosaic transform assumes
        meta = read_meta(ENMAP_DIR / f"enmap_potsdam_tile_{c}_{r}.tif")
        assert meta.transform.c == 362175 + 30 * c and meta.transform.f == 5809965 - 30 * r
    cube, wl, fw, geo = read_enmap_tiles(MOSAIC_TILES, SHARED_DATA)
    keep = [k for k in range(cube.shape[0]) if np.isfinite(cube[k]).any()]
    return {"cube": cube[keep], "wavelengths": wl[keep], "fwhm": fw[keep], "transform": geo["transform"],
            "crs": geo["crs"]}


def smooth_cube(n_bands: int = 30, h: int = 48, w: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small structured reflectance cube (bands, h, w) in [0.02, 0.6] and its wavelengths 420-2400 nm."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    wl = np.linspace(420, 2400, n_bands)
    spectra = np.stack([0.05 + 0.4 / (1 + np.exp(-(wl - 720) / 25)), 0.1 + 0.15 * (wl - 400) / 2000,
                        0.08 + 0.03 * np.sin(wl / 150), 0.3 - 0.1 * (wl - 400) / 2000])
    ab = gaussian_filter(rng.random((4, h, w)), (0, 2, 2)) ** 3
    ab /= ab.sum(0, keepdims=True)
    return np.einsum("mb,myx->byx", spectra, ab).astype(np.float32), wl


def baseline_table(scales: tuple[int, ...] = (3, 4), sensor: str = "S2A:B2,B3,B4,B8") -> list[dict]:
    """Bicubic / GSA / GLP metrics on the Wald-simulated EnMAP mosaic at each scale."""
    from csakd_qgis.fusion.classical import CLASSICAL_METHODS, fuse_classical
    from csakd_qgis.quality.metrics import compute_metrics
    from csakd_qgis.spectral.degrade import crop_to_multiple, simulate_pair

    m = enmap_mosaic()
    rows = []
    for s in scales:
        ref = crop_to_multiple(m["cube"], s)
        lr, msi = simulate_pair(ref, m["wavelengths"], m["fwhm"], sensor, s)
        for method in CLASSICAL_METHODS:
            met = compute_metrics(ref, fuse_classical(lr, msi, s, method), s)
            rows.append({"scale": s, "method": method, **{k: met[k] for k in ("psnr", "sam", "ergas", "rmse",
                                                                                 "ssim", "uiqi")}})
    return rows


if __name__ == "__main__":
    print(f"{'s':>2} {'method':8} {'PSNR dB':>8} {'SAM deg':>8} {'ERGAS':>7} {'RMSE':>8} {'SSIM':>6} {'UIQI':>6}")
    for r in baseline_table():
        print(f"{r['scale']:>2} {r['method']:8} {r['psnr']:8.2f} {r['sam']:8.3f} {r['ergas']:7.3f} "
              f"{r['rmse']:8.5f} {r['ssim']:6.4f} {r['uiqi']:6.4f}")

"""Raster fixtures for the io / coreg / tiling / fuse tests: georeferenced LR-HSI + HR-MSI GeoTIFF pairs.

The HR reference is the real EnMAP mosaic of ../shared/data/enmap_potsdam (64 x 96 px, 218 usable bands)
when that folder exists, else a smooth synthetic cube; the pair is simulated by the Wald protocol
(:func:`degrade.simulate_pair`: blur + block mean for the LR-HSI, Sentinel-2A SRFs for the MSI).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"
ENMAP_DIR = SHARED_DATA / "enmap_potsdam"
HAVE_SHARED = ENMAP_DIR.is_dir()
requires_shared = pytest.mark.skipif(
    not HAVE_SHARED, reason=f"real EnMAP data {ENMAP_DIR} is absent (it sits beside the repo in CI; "
                            "see ../shared/data/README.md)")
MOSAIC_TILES = [(64, 0), (96, 0), (128, 0), (64, 32), (96, 32), (128, 32)]  # (col, row): 64 x 96 block

def _msi_spec() -> str:
    """Sentinel-2A B2, B3, B4, B8 (pyrsr data); Gaussian stand-ins where pyrsr is not installed."""
    from csakd_qgis.errors import CsakdError
    from csakd_qgis.spectral.srf import load_srf

    try:
        load_srf("S2A:B2,B3,B4,B8")
        return "S2A:B2,B3,B4,B8"
    except CsakdError:
        return "gaussian:492/66,560/36,665/31,833/106"


MSI_SPEC = _msi_spec()
UTM33 = 32633
_CACHE: dict = {}


def enmap_tile(col: int = 64, row: int = 0) -> Path:
    """Path of one real EnMAP tile (32 x 32 px, 224 bands, 30 m, scale 1e-4, nodata -32768)."""
    return ENMAP_DIR / f"enmap_potsdam_tile_{col}_{row}.tif"


def enmap_reference() -> dict:
    """The 64 x 96 px EnMAP mosaic: good bands only, reflectance, with wavelengths/FWHM and its 30 m grid."""
    if "enmap" in _CACHE:
        return _CACHE["enmap"]
    from affine import Affine

    from csakd_qgis.raster.io import read_meta, read_reflectance

    first = read_meta(enmap_tile(*MOSAIC_TILES[0]))
    good = first.good_bands()
    cube = np.full((len(good), 64, 96), np.nan, np.float32)
    for c, r in MOSAIC_TILES:
        cube[:, r: r + 32, c - 64: c - 32] = read_reflectance(enmap_tile(c, r), bands=good)
    keep = [k for k in range(len(good)) if np.isfinite(cube[k]).all()]
    ref = {"cube": cube[keep], "wavelengths": [first.wavelengths[good[k]] for k in keep],
           "fwhm": [first.fwhm[good[k]] for k in keep], "crs": first.crs,
           "transform": Affine(30.0, 0.0, 362175.0 + 30 * 64, 0.0, -30.0, 5809965.0), "source": "enmap"}
    _CACHE["enmap"] = ref
    return ref


def synthetic_reference(n_bands: int = 32, height: int = 64, width: int = 96, seed: int = 0) -> dict:
    """Smooth, spatially structured synthetic reflectance (3 spectra mixed by smooth abundances + texture)."""
    from affine import Affine
    from rasterio.crs import CRS
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    wl = np.linspace(420.0, 2400.0, n_bands)
    spectra = np.stack([0.05 + 0.3 / (1 + np.exp(-(wl - 720) / 25)), 0.15 + 0.1 * (wl - 400) / 2000,
                        0.08 + 0.02 * np.sin(wl / 150)])
    ab = np.stack([gaussian_filter(rng.random((height, width)), 2.0) for _ in range(3)])
    ab = np.maximum(ab - ab.min(axis=(1, 2), keepdims=True), 0) + 0.05
    ab /= ab.sum(0, keepdims=True)
    cube = np.einsum("mb,myx->byx", spectra, ab).astype(np.float32)
    return {"cube": cube, "wavelengths": list(wl), "fwhm": [12.0] * n_bands, "crs": CRS.from_epsg(UTM33),
            "transform": Affine(30.0, 0.0, 364095.0, 0.0, -30.0, 5809965.0), "source": "synthetic"}


def reference(source: str = "auto") -> dict:
    """EnMAP mosaic when available (``auto``/``enmap``), else the synthetic cube."""
    if source == "enmap" or (source == "auto" and HAVE_SHARED):
        return enmap_reference()
    return synthetic_reference()


def write_pair(d: Path, ref: dict | None = None, scale: int = 4, shift: tuple[float, float] = (0.0, 0.0),
               lr_px: float = 30.0, bad_bands: int = 0, nodata_lr_rows: int = 0, nodata_msi_cols: int = 0,
               lr_crop: tuple[int, int, int, int] | None = None, msi_wavelengths: bool = True,
               name: str = "pair") -> dict:
    """Write an LR-HSI / HR-MSI GeoTIFF pair into ``d`` (LR origin = HR origin).

    The LR pixel is ``lr_px`` m and the HR pixel lr_px / scale, with the reference's upper-left corner.
    ``shift`` moves the LR-HSI content (LR px, :func:`degrade.shift_image` sign). ``bad_bands`` appends
    all-nodata bands flagged bbl = 0 (after band 2). ``nodata_lr_rows`` / ``nodata_msi_cols`` blank the top
    LR rows / left MSI columns. ``lr_crop`` = (row, col, height, width) crops the LR raster (partial overlap).
    Returns paths, arrays and grids.
    """
    from affine import Affine

    from csakd_qgis.raster.io import GeoTiffWriter
    from csakd_qgis.spectral.degrade import simulate_pair
    from csakd_qgis.spectral.srf import load_srf

    ref = ref or reference()
    lr, msi = simulate_pair(ref["cube"], ref["wavelengths"], ref["fwhm"], MSI_SPEC, scale, shift=shift)
    hr_ref = ref["cube"][:, : msi.shape[1], : msi.shape[2]]
    x0, y0 = ref["transform"].c, ref["transform"].f
    hr_tr = Affine(lr_px / scale, 0.0, x0, 0.0, -lr_px / scale, y0)
    lr_tr = Affine(lr_px, 0.0, x0, 0.0, -lr_px, y0)
    wl, fw = list(ref["wavelengths"]), list(ref["fwhm"])
    bbl = [1] * len(wl)
    lr_w = lr.copy()
    if nodata_lr_rows:
        lr_w[:, :nodata_lr_rows] = np.nan
    if bad_bands:
        pos = 2
        lr_w = np.concatenate([lr_w[:pos], np.full((bad_bands, *lr.shape[1:]), np.nan, np.float32), lr_w[pos:]])
        wl = wl[:pos] + [1340.0 + 10 * k for k in range(bad_bands)] + wl[pos:]
        fw = fw[:pos] + [10.0] * bad_bands + fw[pos:]
        bbl = bbl[:pos] + [0] * bad_bands + bbl[pos:]
    if lr_crop is not None:
        r, c, h, w = lr_crop
        lr_w = lr_w[:, r:r + h, c:c + w]
        lr_tr = lr_tr * Affine.translation(c, r)
    msi_w = msi.copy()
    if nodata_msi_cols:
        msi_w[:, :, :nodata_msi_cols] = np.nan
    hsi_path, msi_path = d / f"{name}_hsi.tif", d / f"{name}_msi.tif"
    with GeoTiffWriter(hsi_path, lr_w.shape[2], lr_w.shape[1], lr_w.shape[0], ref["crs"], lr_tr, wl, fw,
                       bbl=bbl) as wr:
        wr.write(lr_w)
    srf = load_srf(MSI_SPEC)
    with GeoTiffWriter(msi_path, msi.shape[2], msi.shape[1], msi.shape[0], ref["crs"], hr_tr,
                       list(srf.centroids()) if msi_wavelengths else None) as wr:
        wr.write(msi_w)
    return {"hsi": hsi_path, "msi": msi_path, "lr": lr, "msi_arr": msi, "hr": hr_ref, "scale": scale,
            "hr_transform": hr_tr, "lr_transform": lr_tr, "crs": ref["crs"], "wavelengths": wl, "fwhm": fw,
            "bbl": bbl, "source": ref["source"]}


def reproject_raster(src: Path, dst: Path, crs, resolution: float | None = None, resampling: str = "cubic",
                     transform=None, width: int | None = None, height: int | None = None) -> Path:
    """Write ``src`` warped to ``crs`` (GDAL-default grid, optionally at ``resolution``) with its band tags."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    with rasterio.open(src) as ds:
        if transform is None:
            kw = {"resolution": resolution} if resolution else {}
            transform, width, height = calculate_default_transform(ds.crs, crs, ds.width, ds.height, *ds.bounds,
                                                                   **kw)
        profile = ds.profile.copy()
        profile.update(crs=crs, transform=transform, width=width, height=height, tiled=False)
        for k in ("blockxsize", "blockysize"):
            profile.pop(k, None)
        with rasterio.open(dst, "w", **profile) as out:
            for b in range(1, ds.count + 1):
                data = np.full((height, width), ds.nodata, np.float32)
                reproject(ds.read(b), data, src_transform=ds.transform, src_crs=ds.crs, dst_transform=transform,
                          dst_crs=crs, src_nodata=ds.nodata, dst_nodata=ds.nodata,
                          resampling=getattr(Resampling, resampling))
                out.write(data, b)
                out.update_tags(b, **ds.tags(b))
                out.set_band_description(b, ds.descriptions[b - 1] or "")
    return dst


def read_all(path: Path) -> tuple[np.ndarray, dict]:
    """(C, H, W) float32 with NaN for nodata, and the profile + per-band tags of a raster."""
    import rasterio

    with rasterio.open(path) as ds:
        data = ds.read().astype(np.float32)
        if ds.nodata is not None:
            data[data == ds.nodata] = np.nan
        info = {"crs": ds.crs, "transform": ds.transform, "width": ds.width, "height": ds.height,
                "count": ds.count, "tags": [ds.tags(b) for b in range(1, ds.count + 1)],
                "descriptions": list(ds.descriptions), "nodata": ds.nodata}
    return data, info


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """RMSE over elements finite in both."""
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))

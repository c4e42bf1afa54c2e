"""Demo inputs: a REAL Sentinel-2 HR-MSI, a synthetic HR-HSI reference built to match it, and its LR-HSI.

- ``hr_msi.tif``: the real Sentinel-2 10 m bands (B2, B3, B4, B8) of the spyndex sample tile, as
  reflectance, cropped to a multiple of the scale. Real pixels; ASSUMED georeferencing (the tile ships
  without any; see :mod:`synthetic`).
- ``reference_hsi.tif``: a synthetic HR-HSI (:func:`synthetic.make_scene`) whose real library spectra are
  mixed per pixel so that, seen through the Sentinel-2A SRF, it reproduces the real MSI (residual written
  to the metadata and to ``demo_inputs.json``; ~0.003 reflectance RMSE).
- ``lr_hsi.tif``: Wald degradation of the reference (:func:`degrade.wald_degrade`: Gaussian blur sigma
  = s/2, s x s block mean), on a grid with the HR origin and s times the pixel size (LR/HR pixel grid).

The fusion therefore sees a real MSI and an LR-HSI that is consistent with it up to the documented
residual; the reference is what a perfect fusion would return.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import set_band_descriptions, write_raster
from csakd_qgis.spectral.band_grids import enmap_grid
from csakd_qgis.spectral.degrade import add_awgn, check_scale, wald_degrade
from csakd_qgis.spectral.srf import canonical_band, load_srf
from csakd_qgis.spectral.synthetic import load_spyndex_s2, make_scene

DEMO_FILES = {"lr_hsi": "lr_hsi.tif", "hr_msi": "hr_msi.tif", "reference_hsi": "reference_hsi.tif"}


def _sensor_bands(sensor: str) -> tuple[str, list[str]]:
    """('S2A', ['B2', ...]) from 'S2A:B2,B3,B4,B8'."""
    name, _, bands = sensor.partition(":")
    return name.strip(), [canonical_band(b) for b in bands.split(",") if b.strip()]


def build_demo_inputs(out_dir: str | os.PathLike, wavelengths: Sequence[float] | None = None,
                      fwhm: Sequence[float] | None = None, scale: int = 3, sensor: str = "S2A:B2,B3,B4,B8",
                      size: int | None = None, seed: int = 0, snr_db: float | None = None) -> dict[str, str]:
    """Write the demo's ``lr_hsi.tif``, ``hr_msi.tif``, ``reference_hsi.tif`` (+ ``demo_inputs.json``).

    ``wavelengths``/``fwhm`` (nm) give the HSI band grid (default: the 218 usable EnMAP bands);
    ``sensor`` names the real MSI bands, a subset of Sentinel-2 B2, B3, B4, B8 (the tile's bands);
    ``size`` crops a centred square (HR pixels, rounded down to a multiple of ``scale``; default the whole
    300 px tile); ``snr_db`` adds white noise to the LR-HSI. Returns the paths by key (lr_hsi, hr_msi,
    reference_hsi, info).
    """

    s = check_scale(scale)
    if s < 2:
        raise CsakdError("The demo needs a scale factor of at least 2.")
    if wavelengths is None:
        if fwhm is not None:
            raise CsakdError("FWHM given without wavelengths: give both, or neither for the EnMAP grid.")
        wl, fw = enmap_grid(good_only=True)
        grid_name = "EnMAP (218 usable bands)"
    else:
        wl = np.asarray(wavelengths, np.float64)
        fw = None if fwhm is None else np.asarray(fwhm, np.float64)
        grid_name = f"user grid ({wl.size} bands)"
    name, bands = _sensor_bands(sensor)
    if name.upper() not in ("S2A", "S2B", "SENTINEL-2A", "SENTINEL-2B", "SENTINEL2A", "SENTINEL2B"):
        raise CsakdError(f"The demo MSI is a real Sentinel-2 tile: sensor must be 'S2A:<bands>' (got '{sensor}').")
    tile = load_spyndex_s2(bands or ["B2", "B3", "B4", "B8"])
    srf = load_srf(sensor if bands else "S2A:B2,B3,B4,B8")
    h, w = tile.bands.shape[1:]
    side = min(h, w) if size is None else min(int(size), h, w)
    side -= side % s
    if side < 4 * s:
        raise CsakdError(f"Demo size {size} is too small for scale {s}: give at least {4 * s} HR pixels.")
    r0, c0 = (h - side) // 2, (w - side) // 2
    msi = tile.bands[:, r0:r0 + side, c0:c0 + side]
    transform = tile.transform * tile.transform.translation(c0, r0)
    scene = make_scene(wl, fw, seed=seed, msi=msi, msi_sensor=srf, crs=tile.crs, transform=transform,
                       spatial_source=f"real: {tile.source}; centred {side} x {side} crop; georeferencing ASSUMED")
    lr = wald_degrade(scene.hr_hsi, s)
    if snr_db is not None:
        lr = add_awgn(lr, snr_db, np.random.default_rng(seed + 1))
    lr_transform = transform * transform.scale(s, s)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: str(out / v) for k, v in DEMO_FILES.items()}
    resid = scene.info["msi_residual"]
    common = {"CSAKD_DEMO": "yes", "GEOREFERENCING": "assumed (the spyndex tile has none)",
              "PROVENANCE_SPATIAL": scene.provenance["spatial"]}
    write_raster(paths["hr_msi"], msi, tile.crs, transform, wavelengths=list(srf.centroids()),
                 fwhm=list(srf.fwhm()),
                 tags={**common, "CONTENT": "REAL Sentinel-2 reflectance (spyndex sample tile)",
                       "SENSOR": sensor, "BAND_NAMES": ",".join(srf.band_names)})
    set_band_descriptions(paths["hr_msi"], [f"{b} ({c:.2f} nm)" for b, c in zip(srf.band_names, srf.centroids(),
                                                                                 strict=True)])
    _tag_band_names(paths["hr_msi"], srf.band_names)
    hsi_tags = {**common, "PROVENANCE_SPECTRA": scene.provenance["spectra"],
                "PROVENANCE_SYNTHETIC": scene.provenance["synthetic"], "BAND_GRID": grid_name,
                "MSI_RESIDUAL_RMSE": f"{resid['rmse']:.5f}"}
    write_raster(paths["reference_hsi"], scene.hr_hsi, tile.crs, transform, list(wl), list(scene.fwhm),
                 tags={**hsi_tags, "CONTENT": "SYNTHETIC HR-HSI reference (real spectra mixed to match the real MSI)"})
    noise = f", AWGN {snr_db:g} dB" if snr_db is not None else ""
    write_raster(paths["lr_hsi"], lr, tile.crs, lr_transform, list(wl), list(scene.fwhm),
                 tags={**hsi_tags, "CONTENT": f"SYNTHETIC LR-HSI: Wald degradation (scale {s}{noise}) of the "
                                              "reference"})
    info = {
        "scale": s, "sensor": sensor, "band_grid": grid_name, "n_bands": int(wl.size), "hr_size": [side, side],
        "lr_size": [side // s, side // s], "crs": str(tile.crs), "georeferencing": "assumed",
        "real": "hr_msi.tif pixels (Sentinel-2 B2/B3/B4/B8 reflectance of the spyndex sample tile)",
        "synthetic": "reference_hsi.tif (real library spectra, synthetic mixing/shading) and lr_hsi.tif "
                     "(its Wald degradation)",
        "provenance": scene.provenance, "msi_residual": resid, "seed": seed, "snr_db": snr_db,
        "endmembers": [f"{n} ({c})" for n, c in zip(scene.info["endmember_names"],
                                                     scene.info["endmember_classes"], strict=True)],
    }
    paths["info"] = str(out / "demo_inputs.json")
    Path(paths["info"]).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return paths


def _tag_band_names(path: str, names: Sequence[str]) -> None:
    """Add a per-band ``band_name`` tag (e.g. 'B8') to a written raster."""
    import rasterio

    with rasterio.open(path, "r+") as ds:
        for i, n in enumerate(names):
            ds.update_tags(i + 1, band_name=n)

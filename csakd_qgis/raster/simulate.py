"""Simulate a georeferenced LR-HSI / HR-MSI GeoTIFF pair from a reference HR-HSI raster (Wald protocol)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import (
    GeoTiffWriter,
    check_output_path,
    read_meta,
    read_reflectance,
    write_raster,
)
from csakd_qgis.spectral.degrade import check_scale, crop_to_multiple, simulate_msi20, simulate_pair
from csakd_qgis.spectral.srf import SRF, load_srf

MSI20_SENSOR = "S2A:B5,B6,B7,B8A,B11,B12"  # Sentinel-2A's 20 m bands


def simulate_rasters(hsi_path: str | os.PathLike, sensor_spec: str | SRF, scale: int,
                     out_lr: str | os.PathLike, out_msi: str | os.PathLike, snr_db: float | None = None,
                     seed: int | None = 0, shift: tuple[float, float] | None = None,
                     creation_options: dict[str, str] | None = None, out_msi20: str | os.PathLike | None = None,
                     sensor20: str | SRF = MSI20_SENSOR, factor20: int = 2) -> dict:
    """Simulate a georeferenced LR-HSI / HR-MSI GeoTIFF pair from a reference HR-HSI raster.

    Bad bands (bbl = 0) and all-NaN bands are dropped. The reference is cropped to multiples of ``scale``
    from its top-left corner; the LR raster has the same origin and ``scale`` times the pixel size and keeps
    the wavelengths/FWHM of the kept bands; the MSI raster is on the (cropped) reference grid with the SRF
    centroids as wavelengths and the band names in the band descriptions. Returns a summary dict.
    ``out_msi20``: also the bands of ``sensor20`` (default Sentinel-2A's 20 m bands) at ``factor20`` times the
    reference pixel size (:func:`degrade.simulate_msi20`: Gaussian blur sigma = factor20/2 px, block mean), for
    ``csakd fuse --msi20``; the reference is then cropped to multiples of both factors.
    """
    from affine import Affine


    s = check_scale(scale)
    if s < 2:
        raise CsakdError(f"The scale factor must be an integer >= 2 (got {scale}).")
    check_output_path(out_lr, [str(hsi_path)], role="LR-HSI output")
    check_output_path(out_msi, [str(hsi_path)], role="HR-MSI output")
    outs = [Path(p).resolve() for p in (out_lr, out_msi, out_msi20) if p is not None]
    if len(set(outs)) < len(outs):
        raise CsakdError("Two of the simulated outputs (LR-HSI, HR-MSI, 20 m MSI) are the same file: give "
                         "different names.")
    f20 = check_scale(factor20)
    if out_msi20 is not None:
        check_output_path(out_msi20, [str(hsi_path)], role="20 m MSI output")
        if f20 < 2:
            raise CsakdError(f"The 20 m MSI pixel-size factor must be an integer >= 2 (got {factor20}).")
    meta = read_meta(hsi_path, "reference hyperspectral (HSI) input")
    if not meta.has_wavelengths:
        raise CsakdError(f"The reference HSI '{hsi_path}' has no band wavelengths in its metadata, so the MSI "
                         "cannot be synthesised. Add wavelength/fwhm band tags (or an ENVI header).")
    srf = load_srf(sensor_spec)
    data = read_reflectance(hsi_path, bands=meta.good_bands())
    keep_local = [k for k in range(data.shape[0]) if np.isfinite(data[k]).any()]
    bands = [meta.good_bands()[k] for k in keep_local]
    if not bands:
        raise CsakdError(f"The reference HSI '{hsi_path}' has no valid band (all bad or nodata).")
    hr = crop_to_multiple(data[keep_local], int(np.lcm(s, f20)) if out_msi20 is not None else s)
    if hr.shape[1] < s or hr.shape[2] < s:
        raise CsakdError(f"The reference HSI ({meta.height} x {meta.width} px) is smaller than the scale {s}.")
    wl = [float(meta.wavelengths[i]) for i in bands]
    fw_list = [meta.fwhm[i] for i in bands]
    fw = None if any(f is None for f in fw_list) else [float(f) for f in fw_list]
    lr, msi = simulate_pair(hr, wl, fw, srf, s, snr_db=snr_db, shift=shift, rng=seed)
    srf20 = load_srf(sensor20) if out_msi20 is not None else None
    z = simulate_msi20(hr, wl, fw, srf20, f20) if srf20 is not None else None
    # pixels nodata in any band of the reference: nodata in the MSI too (already NaN through the einsum)
    hr_tr = meta.transform
    lr_tr = hr_tr * Affine.scale(s, s)
    info = {"reference": str(hsi_path), "scale": s, "sensor": srf.sensor, "msi_bands": srf.band_names,
            **({"msi20_bands": srf20.band_names, "msi20_factor": f20, "msi20_sigma_hr_px": f20 / 2.0,
                "msi20_shape": list(z.shape[1:])} if z is not None else {}),
            "snr_db": snr_db, "shift_lr_px": list(shift) if shift else None, "sigma_hr_px": s / 2.0,
            "n_bands": len(bands), "hr_shape": list(hr.shape[1:]), "lr_shape": list(lr.shape[1:])}
    tags = {"CSAKD_SIMULATION": json.dumps(info)}
    cents = srf.centroids()
    names = [f"{n} ({c:.2f} nm)" for n, c in zip(srf.band_names, cents, strict=True)]
    with GeoTiffWriter(out_lr, lr.shape[2], lr.shape[1], lr.shape[0], meta.crs, lr_tr, wl, fw, tags=tags,
                       creation_options=creation_options, role="LR-HSI output", commit=False) as lr_writer:
        lr_writer.write(lr)
    pending = [lr_writer.pending]
    try:  # the outputs are written all or none
        if z is not None:
            c20 = srf20.centroids()
            with GeoTiffWriter(out_msi20, z.shape[2], z.shape[1], z.shape[0], meta.crs, hr_tr * Affine.scale(f20, f20),
                               list(c20), list(srf20.fwhm()), tags=tags, creation_options=creation_options,
                               descriptions=[f"{n} ({c:.2f} nm)" for n, c in zip(srf20.band_names, c20, strict=True)],
                               role="20 m MSI output", commit=False) as z_writer:
                z_writer.write(z)
            pending.append(z_writer.pending)
        write_raster(out_msi, msi, meta.crs, hr_tr, wavelengths=list(cents), fwhm=list(srf.fwhm()), tags=tags,
                     creation_options=creation_options, descriptions=names, role="HR-MSI output")
    except BaseException:
        for p in pending:
            p.discard()
        raise
    for p in pending:
        p.commit()
    info.update(lr_path=str(out_lr), msi_path=str(out_msi), band_indices=bands,
                **({"msi20_path": str(out_msi20)} if z is not None else {}))
    return info

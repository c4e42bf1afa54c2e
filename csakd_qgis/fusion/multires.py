"""A second, coarser MSI (Sentinel-2's 20 m bands beside its 10 m bands) in HSI + MSI fusion.

The 20 m bands Z are f = 2 times coarser than the HR-MSI M (f any integer >= 2). Two ways to use them,
both measured on held-apart EnMAP scenes by ``bench/eval_multires.py`` (docs/results/multires.md):

- (a) :func:`sharpen_bands` then :func:`stack_bands`: each Z band is sharpened to the HR grid by detail
  injection at scale f, Z_hr = up_f(Z) + sum_j b_kj (M_j - up_f(wald_f(M_j))), with gains b_k regressed on
  details one level down (Z's own 20 m detail Z - G Z, G a Gaussian of ``SHARPEN_DETAIL_SIGMA`` 20 m px, on
  that of the HR-MSI degraded to 20 m) in every ``2 SHARPEN_WINDOW + 1`` square window of 20 m px, pulled
  toward the scene's gains by a ridge (``SHARPEN_RIDGE``): the relation between the SWIR and the VNIR detail
  changes with the land cover (vegetation, soil, roofs, water). Then ``SHARPEN_ROUNDS`` back-projections
  onto the 20 m observation (Z_hr += up_f(Z - wald_f(Z_hr)): degraded as the 20 m bands were, the sharpened
  bands give them back, which also restores the 20 m bands' own detail that their MTF blur attenuates). The
  fusion then sees all bands as one HR-MSI; model-based methods estimate their PSF on the HR-MSI bands only
  (:func:`multires_observation`). This is what ``csakd fuse --msi20`` does (any classical or model-based
  method). Every choice here (gains on details, local windows, their size, ridge and detail scale, the
  back-projection and its rounds, the PSF on the HR bands) was made on the development scenes of
  ``bench/eval_multires.py --set dev`` (docs/RESULTS.md); the first version (gains on levels, no
  back-projection) is :func:`sharpen_bands_levels`, kept for comparison.
- (b) :func:`fuse_per_resolution`: GLP whose detail is split by scale: the LR -> 20 m detail of every band
  (the 10 m bands smoothed to 20 m) with the gains regressed on all bands, plus the 20 m -> 10 m detail of
  the HR-MSI bands with the gains of the HR-MSI alone.

Feeding Z merely upsampled (:func:`upsampled_bands`) as HR-MSI bands is the known trap: the regression at LR
spreads each HSI band's gains over the strongly correlated 10 m and 20 m bands, but at HR only the 10 m
bands carry detail, so the detail is mis-weighted and the spectra distorted (SAM much worse).

Arrays: (C, H, W) float32 reflectance, NaN = nodata; Z (C_z, H/f, W/f) on the grid where 20 m pixel (i, j)
covers HR pixels [i*f, (i+1)*f) x [j*f, (j+1)*f) (the LR/HR pixel grid of docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import (
    lstsq_with_const,
    margin_lr,
)
from csakd_qgis.fusion.methods import is_fusion_method, method_names
from csakd_qgis.fusion.observation import ObservationModel, estimate_observation, parse_psf
from csakd_qgis.raster.resample import repeat_to_hr, upsample_bicubic
from csakd_qgis.spectral.degrade import check_scale, fill_nan_nearest, gaussian_blur, wald_degrade
from csakd_qgis.spectral.srf import load_srf, sensor_name

S2_20M_BANDS = ("B5", "B6", "B7", "B8A", "B11", "B12")  # Sentinel-2's 20 m bands, in band order
SHARPEN_METHOD = "glp"  # detail injection of the 20 m bands (the classical GLP at the 20 m / 10 m scale)
SHARPEN_ROUNDS = 5  # back-projections onto the 20 m observation (dev scenes: 3-10 within 0.4 dB, 5 most robust)
SHARPEN_DETAIL_SIGMA = 0.6  # 20 m px: the Gaussian whose residual is the 20 m detail the gains are fitted on
SHARPEN_WINDOW = 2  # 20 m px: radius of the square windows of the local gains (5 x 5 px, 100 m at 20 m)
SHARPEN_RIDGE = 0.003  # pull of the local gains toward the scene's, relative to the mean 20 m detail power
MSI20_ROLE = "MSI at 2x coarser pixels (--msi20)"


@dataclass
class SharpenParams:
    """Detail-injection gains of the 20 m bands fitted on a scene: ``gains`` (C_z, C_m + 1) [const, b_k1..] on
    the HR-MSI bands, and ``ridge``, the absolute pull of the local gains toward them."""

    factor: int
    gains: np.ndarray
    ridge: float = 0.0
    n_fit_pixels: int = 0


def _detail20(x: np.ndarray) -> np.ndarray:
    """The finest detail of an image on the 20 m grid, x - G x: shift-invariant, so a window starting at any
    20 m pixel gets the whole image's values inside its context."""
    return x - gaussian_blur(x, SHARPEN_DETAIL_SIGMA)


def _hr_cover(z: np.ndarray, msi: np.ndarray, f: int) -> np.ndarray:
    """The HR-MSI cropped to the 20 m bands' footprint (f * h, f * w); one line when it does not cover it."""
    h, w = z.shape[1] * f, z.shape[2] * f
    if msi.shape[1] < h or msi.shape[2] < w:
        raise CsakdError(f"The HR-MSI ({msi.shape[1]} x {msi.shape[2]} px) does not cover the {MSI20_ROLE} "
                         f"({z.shape[1]} x {z.shape[2]} px) at factor {f}: expected {h} x {w} px.")
    return msi[:, :h, :w]


def sharpen_params(z: np.ndarray, msi: np.ndarray, f: int) -> SharpenParams:
    """The scene's injection gains of the 20 m bands ``z``, fitted on details one level down: z's own 20 m
    detail regressed on that of the HR-MSI ``msi`` Wald-degraded to 20 m (pixels valid in all bands)."""
    f = check_scale(f)
    z = np.asarray(z, np.float32)
    m20 = wald_degrade(_hr_cover(z, np.asarray(msi, np.float32), f), f)
    dz, dm = _detail20(z), _detail20(m20)
    ok = np.isfinite(dz).all(0) & np.isfinite(dm).all(0)
    n = int(ok.sum())
    if n < m20.shape[0] + 2:
        raise CsakdError(f"Only {n} pixels of the {MSI20_ROLE} are valid in every band, too few to fit its "
                         "sharpening: give 20 m bands that overlap the MSI's clear area.")
    ridge = SHARPEN_RIDGE * float(np.mean(np.square(dm[:, ok], dtype=np.float64)))
    return SharpenParams(f, lstsq_with_const(dm[:, ok].T, dz[:, ok].T), ridge, n)


def local_gains(z: np.ndarray, m20: np.ndarray, params: SharpenParams, radius: int = SHARPEN_WINDOW) -> np.ndarray:
    """Gains (C_z, C_m, h, w) of every 20 m pixel: the detail regression of :func:`sharpen_params` over the
    (2 radius + 1)^2 window around it, ridge-pulled toward the scene's gains (flat windows keep those).
    ``z`` and ``m20`` (the HR-MSI at 20 m) must be NaN-free."""
    from scipy.ndimage import uniform_filter

    dz, dm = _detail20(z), _detail20(m20)
    size = (2 * int(radius) + 1,) * 2

    def mean(a: np.ndarray) -> np.ndarray:
        return uniform_filter(a, size=size, mode="reflect")

    n_m, n_z = dm.shape[0], dz.shape[0]
    mm, mz = [mean(b) for b in dm], [mean(b) for b in dz]
    a = np.empty(dm.shape[1:] + (n_m, n_m), np.float64)
    for i in range(n_m):
        for j in range(i, n_m):
            a[..., i, j] = a[..., j, i] = mean(dm[i] * dm[j]) - mm[i] * mm[j]
    rhs = np.empty(dm.shape[1:] + (n_m, n_z), np.float64)
    for k in range(n_z):
        for i in range(n_m):
            rhs[..., i, k] = mean(dz[k] * dm[i]) - mz[k] * mm[i]
    a += params.ridge * np.eye(n_m)
    rhs += params.ridge * params.gains[:, 1:].T
    return np.moveaxis(np.linalg.solve(a, rhs), (-1, -2), (0, 1)).astype(np.float32)


def sharpen_margin(rounds: int = SHARPEN_ROUNDS) -> int:
    """20 m px of context :func:`sharpen_bands` reads beyond a window: the local gains' detail, window and
    upsampling, then each back-projection reaching further."""
    gains = int(np.ceil(4 * SHARPEN_DETAIL_SIGMA)) + SHARPEN_WINDOW + margin_lr("bicubic")
    return gains + margin_lr(SHARPEN_METHOD) * (1 + int(rounds))


def sharpen_bands(z: np.ndarray, msi: np.ndarray, f: int, params: SharpenParams | None = None,
                  rounds: int = SHARPEN_ROUNDS) -> np.ndarray:
    """The 20 m bands (C_z, h, w) sharpened to the HR-MSI grid (C_z, f*h, f*w): detail injection with the
    local gains of :func:`local_gains` (around the scene's, :func:`sharpen_params`), then ``rounds``
    back-projections onto the 20 m observation.

    NaN where any HR-MSI band is nodata and, per band, where the 20 m parent pixel is.
    """
    f = check_scale(f)
    z = np.asarray(z, np.float32)
    msi = _hr_cover(z, np.asarray(msi, np.float32), f)
    params = sharpen_params(z, msi, f) if params is None else params
    if params.gains.shape != (z.shape[0], msi.shape[0] + 1):
        raise CsakdError(f"The sharpening gains were fitted for {params.gains.shape[0]} bands at 20 m and "
                         f"{params.gains.shape[1] - 1} MSI bands, not {z.shape[0]} and {msi.shape[0]}.")
    msi_ok, z_ok = np.isfinite(msi).all(0), np.isfinite(z)
    msi_f = msi if msi_ok.all() else np.nan_to_num(fill_nan_nearest(msi))
    z_f = z if z_ok.all() else np.nan_to_num(fill_nan_nearest(z))
    m20 = wald_degrade(msi_f, f)  # the HR-MSI at 20 m: the local gains' regressor and its detail's low-pass
    gains = local_gains(z_f, m20, params)
    gains_hr = upsample_bicubic(gains.reshape(-1, *gains.shape[2:]), f).reshape(*gains.shape[:2], *msi.shape[1:])
    x = upsample_bicubic(z_f, f)
    x += np.einsum("zkhw,khw->zhw", gains_hr, msi_f - upsample_bicubic(m20, f), optimize=True)
    for _ in range(int(rounds)):
        x += upsample_bicubic(z_f - wald_degrade(x, f), f)
    x[:, ~msi_ok] = np.nan
    x[repeat_to_hr(~z_ok, f)] = np.nan
    return x


def multires_observation(lr: np.ndarray, msi: np.ndarray, s: int, hr_bands: int, psf: Any = "auto",
                         **kwargs: Any) -> ObservationModel:
    """Observation model of a stacked MSI (``hr_bands`` HR bands, then the sharpened 20 m bands): the PSF is
    estimated on the HR bands only, whose blur is the sensor's (the sharpened bands carry the sharpening's),
    then the SRF of every band with that PSF. ``kwargs``: srf, sensor, wavelengths, fwhm of
    :func:`fusion.observation.estimate_observation`."""
    if parse_psf(psf, s) != "auto" or not 0 < hr_bands < msi.shape[0]:
        return estimate_observation(lr, msi, s, psf=psf, **kwargs)
    first = estimate_observation(lr, np.asarray(msi)[:hr_bands], s)
    obs = estimate_observation(lr, msi, s, psf=first.psf, **kwargs)
    return dataclasses.replace(obs, psf_source=f"{first.psf_source}, on the {hr_bands} HR bands",
                               info={**first.info, **obs.info, "msi_linear": obs.info.get("msi_linear", True)})


def uses_msi20(model: object) -> bool:
    """Whether ``model`` can fuse with 20 m bands (classical and model-based methods; learned cards fix 4 bands)."""
    return hasattr(model, "predict") or is_fusion_method(model)


def check_multires_model(model: object) -> None:
    """One line refusing learned models with ``msi20``: their cards fix the MSI bands (B2, B3, B4, B8)."""
    if uses_msi20(model):
        return
    raise CsakdError(f"--msi20 works with the fusion methods ({', '.join(method_names())}), not with the learned model '{model}', whose card fixes its MSI bands: drop "
                     "--msi20 or choose such a method.")


def multires_srf(spec: str | None, n_msi: int, n_z: int) -> str:
    """The SRF option for the stacked MSI (HR bands, then 20 m bands): 'auto' stays; a named sensor of the HR
    bands only (e.g. S2A:B2,B3,B4,B8) gets its 20 m bands (B5, B6, B7, B8A, B11, B12) appended."""
    text = (spec or "auto").strip()
    if text.lower() == "auto":
        return text
    prefix, body = ("auto:", text[5:].strip()) if text.lower().startswith("auto:") else ("", text)
    srf = load_srf(body)
    if srf.n_bands == n_msi + n_z:
        return text
    sensor = body.split(":", 1)[0].strip()
    full = sensor_name(sensor) or ""
    if srf.n_bands == n_msi and full.startswith("Sentinel-2"):
        if n_z != len(S2_20M_BANDS):
            raise CsakdError(f"The {MSI20_ROLE} has {n_z} bands but {full}'s 20 m bands are "
                             f"{len(S2_20M_BANDS)} ({', '.join(S2_20M_BANDS)}): give those six bands in that order "
                             "(or SRF auto).")
        return f"{prefix}{sensor}:{','.join([*srf.band_names, *S2_20M_BANDS])}"
    raise CsakdError(f"The SRF '{text}' has {srf.n_bands} bands but the MSI has {n_msi} and the {MSI20_ROLE} "
                     f"{n_z}: name all {n_msi + n_z} bands, the MSI's first (e.g. S2A:B2,B3,B4,B8,"
                     f"{','.join(S2_20M_BANDS)}), or use SRF auto.")


def stacked_wavelengths(msi_wl: Sequence[float | None] | None, z_wl: Sequence[float | None] | None,
                        n_msi: int, n_z: int) -> list[float | None] | None:
    """Band centres of the stacked MSI (None when neither raster has any)."""
    a = list(msi_wl or [None] * n_msi)
    b = list(z_wl or [None] * n_z)
    out = a + b
    return out if any(v is not None for v in out) else None


__all__ = ["MSI20_ROLE", "S2_20M_BANDS", "SHARPEN_DETAIL_SIGMA", "SHARPEN_METHOD", "SHARPEN_RIDGE", "SHARPEN_ROUNDS",
           "SHARPEN_WINDOW", "SharpenParams", "check_multires_model", "local_gains", "multires_observation", "multires_srf", "sharpen_bands",
           "sharpen_margin", "sharpen_params", "stacked_wavelengths", "uses_msi20"]

"""Wald-protocol simulation on arrays: LR-HSI and HR-MSI from a reference HR-HSI.

- spatial: Gaussian blur with sigma = s/2 HR pixels, then s x s block mean on the LR/HR pixel grid
  (LR pixel (i, j) covers HR pixels [i*s, (i+1)*s) x [j*s, (j+1)*s); extents are cropped to multiples of s);
- spectral: MSI band = SRF-weighted mean of the HSI bands (matrix from :func:`srf.srf_matrix`);
- optional AWGN at a given SNR and a sub-pixel shift of the LR-HSI (misregistration).

Arrays are (C, H, W) float32 reflectance with NaN = nodata; everything is NaN-aware.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.srf import SRF, load_srf, srf_matrix


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_scale(scale: int) -> int:
    """Validate an integer scale factor >= 2 (or 1 for a no-op)."""
    s = int(scale)
    if s != scale or s < 1:
        raise CsakdError(f"The scale factor must be an integer >= 2 (got {scale}).")
    return s


def crop_to_multiple(x: np.ndarray, scale: int) -> np.ndarray:
    """Crop the last two axes to multiples of ``scale`` (keeping the top-left origin)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """NaN-aware Gaussian blur of each band (normalised convolution, scipy 'reflect' borders).

    NaN pixels are treated as missing: the blur is a weighted mean of the valid neighbours. Output is
    NaN where the input is NaN.
    """
    from scipy.ndimage import gaussian_filter

    x = np.asarray(x, np.float32)
    if sigma <= 0:
        return x.copy()
    sig = (0,) * (x.ndim - 2) + (sigma, sigma)
    valid = np.isfinite(x)
    if valid.all():
        return gaussian_filter(x, sig, mode="reflect").astype(np.float32)
    num = gaussian_filter(np.where(valid, x, 0).astype(np.float32), sig, mode="reflect")
    den = gaussian_filter(valid.astype(np.float32), sig, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out.astype(np.float32)


def block_mean(x: np.ndarray, scale: int) -> np.ndarray:
    """s x s block mean on the LR/HR pixel grid (docs/ARCHITECTURE.md) (cropping to multiples of s); NaN if any pixel of a block is NaN."""
    x = crop_to_multiple(np.asarray(x), scale)
    *lead, h, w = x.shape
    blocks = x.reshape(*lead, h // scale, scale, w // scale, scale)
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def wald_degrade(hr: np.ndarray, scale: int, sigma: float | None = None) -> np.ndarray:
    """Spatial Wald degradation: Gaussian blur (sigma = s/2 HR px by default) then s x s block mean.

    Works on (C, H, W) or (H, W). LR output is NaN where the HR block had any NaN.
    """
    s = check_scale(scale)
    hr = np.asarray(hr, np.float32)
    if s == 1:
        return hr.copy()
    sig = s / 2.0 if sigma is None else float(sigma)
    hr = crop_to_multiple(hr, s)
    if hr.shape[-1] == 0 or hr.shape[-2] == 0:
        raise CsakdError(f"The image ({hr.shape[-2]} x {hr.shape[-1]} px) is smaller than the scale {s}.")
    return block_mean(gaussian_blur(hr, sig), s)


def synthesize_msi(hr: np.ndarray, R: np.ndarray) -> np.ndarray:
    """HR-MSI (C_m, H, W) = R (C_m, C_h) applied to every HSI spectrum (C_h, H, W); NaN propagates per pixel."""
    R = np.asarray(R, np.float64)
    if R.shape[1] != hr.shape[0]:
        raise CsakdError(f"The SRF matrix expects {R.shape[1]} HSI bands but the image has {hr.shape[0]}.")
    return np.einsum("mc,chw->mhw", R.astype(np.float32), np.asarray(hr, np.float32), optimize=True)


def add_awgn(x: np.ndarray, snr_db: float, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Add white Gaussian noise per band at ``snr_db`` = 10 log10(mean(x_b^2) / sigma_b^2) (valid pixels)."""
    rng = _as_rng(rng)
    x = np.asarray(x, np.float32)
    flat = x.reshape(x.shape[0], -1) if x.ndim == 3 else x.reshape(1, -1)
    power = np.array([np.mean(np.square(b[np.isfinite(b)], dtype=np.float64)) if np.isfinite(b).any() else 0.0
                      for b in flat])
    sigma = np.sqrt(power / 10.0 ** (float(snr_db) / 10.0))
    shape = (-1,) + (1,) * (x.ndim - 1) if x.ndim == 3 else ()
    noise = rng.standard_normal(x.shape).astype(np.float32) * sigma.astype(np.float32).reshape(shape)
    return (x + noise).astype(np.float32)


def shift_image(x: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift the content of (C, H, W) or (H, W) by (dx, dy) pixels with cubic splines (borders: nearest).

    Sign: positive ``dx`` moves content to +x (east / right), positive ``dy`` to +y (south / down), i.e.
    out[y, x] = in[y - dy, x - dx]. NaN pixels move with the content (nearest-neighbour mask).
    """
    from scipy.ndimage import shift as nd_shift

    x = np.asarray(x, np.float32)
    if dx == 0 and dy == 0:
        return x.copy()
    sh = (0,) * (x.ndim - 2) + (float(dy), float(dx))
    valid = np.isfinite(x)
    filled = fill_nan_nearest(x) if not valid.all() else x
    out = nd_shift(filled, sh, order=3, mode="nearest").astype(np.float32)
    if not valid.all():
        moved = nd_shift(valid.astype(np.float32), sh, order=0, mode="nearest") > 0.5
        out[~moved] = np.nan
    return out


def fill_nan_nearest(x: np.ndarray) -> np.ndarray:
    """Replace NaN pixels of each band by the nearest valid pixel of that band (all-NaN bands stay NaN)."""
    from scipy.ndimage import distance_transform_edt

    x = np.array(x, np.float32, copy=True)
    bands = x.reshape(-1, *x.shape[-2:])
    for b in bands:
        bad = ~np.isfinite(b)
        if bad.any() and not bad.all():
            idx = distance_transform_edt(bad, return_distances=False, return_indices=True)
            b[...] = b[tuple(idx)]
    return x


def simulate_pair(hr: np.ndarray, wavelengths: Sequence[float], fwhm: Sequence[float] | None,
                  srf: SRF | str, scale: int, snr_db: float | None = None,
                  shift: tuple[float, float] | None = None,
                  rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(LR-HSI, HR-MSI) from a reference HR-HSI by the Wald protocol.

    The HR image is cropped to multiples of ``scale`` (top-left kept); ``snr_db`` adds AWGN to the LR-HSI
    (and to the MSI at the same SNR); ``shift`` = (dx, dy) in LR pixels moves the LR-HSI content
    (see :func:`shift_image`) to simulate misregistration.
    """
    s = check_scale(scale)
    hr = crop_to_multiple(np.asarray(hr, np.float32), s)
    R = srf_matrix(load_srf(srf), wavelengths, fwhm)
    lr = wald_degrade(hr, s)
    msi = synthesize_msi(hr, R)
    if shift is not None and (shift[0] or shift[1]):
        lr = shift_image(lr, shift[0], shift[1])
    if snr_db is not None:
        gen = _as_rng(rng)
        lr = add_awgn(lr, snr_db, gen)
        msi = add_awgn(msi, snr_db, gen)
    return lr, msi


def simulate_msi20(hr: np.ndarray, wavelengths: Sequence[float], fwhm: Sequence[float] | None,
                   srf: SRF | str, factor: int = 2, sigma: float | None = None) -> np.ndarray:
    """The MSI bands of ``srf`` at ``factor`` times the HR pixel size (e.g. Sentinel-2's 20 m bands beside 10 m).

    The bands are synthesised at HR, blurred by a Gaussian of ``sigma`` HR px (default factor/2, an MTF-like
    blur: about 0.29 at the coarse Nyquist) and averaged over factor x factor blocks (cropped to multiples
    of ``factor`` from the top-left corner): (C_z, H // factor, W // factor).
    """
    f = check_scale(factor)
    if f < 2:
        raise CsakdError(f"The 20 m bands' pixel-size factor must be an integer >= 2 (got {factor}).")
    z = synthesize_msi(crop_to_multiple(np.asarray(hr, np.float32), f),
                       srf_matrix(load_srf(srf), wavelengths, fwhm))
    return wald_degrade(z, f, sigma)



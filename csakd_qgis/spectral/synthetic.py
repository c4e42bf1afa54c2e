"""Synthetic HR-HSI scenes built from real components, for training corpora and the demo.

What is real and what is made up (also written into every scene's ``provenance``):

- spatial structure: a real multispectral image: by default the Sentinel-2 10 m sample tile shipped with
  the ``spyndex`` package (B2, B3, B4, B8; 300 x 300 px; surface reflectance x 10000; no georeferencing
  in the file), or any MSI array the caller gives (e.g. a training scene's own MSI);
- spectra: real earthlib library spectra (measured soils, urban materials, npv, char; PROSAIL-simulated
  canopies as shipped by the library) resampled to the target bands, plus MODELLED water spectra
  (:func:`spectral_library.water_reflectance`) because the library has none;
- synthetic: the per-pixel mixing (abundances fitted so that the scene seen through the MSI's SRF
  reproduces the real MSI as closely as non-negative mixtures of the chosen spectra can), the
  illumination/shading factor (the abundance sum, taken from the MSI brightness), optional painted
  water bodies and shadows, optional sensor noise.

The spectra between and beyond the MSI bands are therefore plausible library spectra, not the true
spectra of the imaged ground. Use such scenes for training variety and demos, never as ground truth of
the real place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.degrade import add_awgn, fill_nan_nearest, synthesize_msi
from csakd_qgis.spectral.library import (
    SpectralLibrary,
    filter_valid,
    load_earthlib,
    package_data_dir,
    resample_library,
    water_library,
)
from csakd_qgis.spectral.srf import SRF, canonical_band, load_srf, srf_matrix

S2_BAND_NAMES = ("B2", "B3", "B4", "B8")
S2_SENSOR = "S2A:B2,B3,B4,B8"
# spyndex ships the tile without any georeferencing. We ASSUME a 10 m north-up UTM grid (zone 23 S, a
# round-number origin) so that GIS tools and metric pixel sizes work; the true place is unknown.
ASSUMED_S2_EPSG = 32723
ASSUMED_S2_ORIGIN = (600000.0, 7800000.0)  # (x of the left edge, y of the top edge), metres
S2_PIXEL_SIZE = 10.0
SPYNDEX_SOURCE = ("Sentinel-2 10 m sample tile 'S2_10m.json' shipped with the spyndex package (bands B02, "
                  "B03, B04, B08, 300 x 300 px, digital numbers = reflectance x 10000; dark-forest blue "
                  "values of ~0.013 indicate surface (L2A-like) reflectance, the processing level is not "
                  "documented)")


@dataclass
class S2Tile:
    """The real Sentinel-2 bands of the spyndex sample tile, as reflectance."""

    bands: np.ndarray  # (4, H, W) float32 reflectance
    band_names: list[str]
    crs: object  # rasterio CRS
    transform: object  # affine.Affine
    georef_assumed: bool
    source: str

    @property
    def sensor(self) -> str:
        """SRF spec of these bands for :func:`srf.load_srf`."""
        return "S2A:" + ",".join(self.band_names)


@dataclass
class SyntheticScene:
    """A synthetic HR-HSI with its band grid, georeferencing and an honest provenance record."""

    hr_hsi: np.ndarray  # (C, H, W) float32 reflectance in [0, 1]; NaN where the source MSI was nodata
    wavelengths: np.ndarray  # (C,) nm
    fwhm: np.ndarray  # (C,) nm
    provenance: dict[str, str]
    crs: object = None
    transform: object = None
    # (C_m, H, W) the real MSI the structure came from; with painted water/shadows/noise it no longer equals
    # the scene's own MSI: use synthesized_msi() for that
    msi: np.ndarray | None = None
    msi_sensor: str | SRF = ""  # SRF spec (or SRF) of the MSI bands
    abundances: np.ndarray | None = None  # (K, H, W), sum to 1 per pixel
    shading: np.ndarray | None = None  # (H, W) illumination / brightness factor
    endmembers: SpectralLibrary | None = None  # the K spectra on the target grid
    info: dict = field(default_factory=dict)  # residuals and generation settings

    def synthesized_msi(self) -> np.ndarray:
        """The scene seen through the MSI sensor's SRF (C_m, H, W)."""

        R = srf_matrix(load_srf(self.msi_sensor), self.wavelengths, self.fwhm)
        return synthesize_msi(self.hr_hsi, R)


def _rng(seed: np.random.Generator | int | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def load_spyndex_s2(bands: Sequence[str] = S2_BAND_NAMES) -> S2Tile:
    """The real spyndex Sentinel-2 10 m tile: reflectance float32 (DN / 10000), bands as asked.

    The JSON file holds a nested list (band, row, col) of integers with no georeferencing; the grid
    returned (EPSG:32723, origin ``ASSUMED_S2_ORIGIN``, 10 m) is ASSUMED (``georef_assumed`` is True).
    Rows are taken as the file's second axis, north up.
    """
    import json

    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    path = package_data_dir("spyndex") / "S2_10m.json"
    if not path.is_file():
        raise CsakdError(f"The spyndex Sentinel-2 sample tile '{path}' is missing: pip install --no-deps "
                         "--force-reinstall spyndex")
    with open(path, encoding="utf-8") as fh:
        raw = np.asarray(json.load(fh), dtype=np.float32)
    if raw.ndim != 3 or raw.shape[0] != len(S2_BAND_NAMES):
        raise CsakdError(f"Unexpected layout {raw.shape} of '{path}': expected (4, rows, cols).")

    names = [canonical_band(b) for b in bands]
    missing = [b for b in names if b not in S2_BAND_NAMES]
    if missing:
        raise CsakdError(f"The spyndex tile has only bands {', '.join(S2_BAND_NAMES)}; "
                         f"{', '.join(missing)} are not available.")
    idx = [S2_BAND_NAMES.index(b) for b in names]
    refl = raw[idx] / 10000.0
    refl[raw[idx] <= 0] = np.nan
    return S2Tile(refl.astype(np.float32), names, CRS.from_epsg(ASSUMED_S2_EPSG),
                  from_origin(*ASSUMED_S2_ORIGIN, S2_PIXEL_SIZE, S2_PIXEL_SIZE), True, SPYNDEX_SOURCE)


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> np.ndarray:
    """k-means++ then Lloyd iterations on (n, d) samples; returns (k', d) centres (empty ones dropped)."""
    n = x.shape[0]
    k = min(k, n)
    centres = [x[rng.integers(n)]]
    d2 = np.sum((x - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(x[rng.choice(n, p=p)])
        d2 = np.minimum(d2, np.sum((x - centres[-1]) ** 2, axis=1))
    c = np.stack(centres)
    for _ in range(iters):
        lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.stack([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    return c[np.unique(lab)]


def _choose_endmembers(centres: np.ndarray, lib_m: np.ndarray, per_cluster: int, top: int,
                       rng: np.random.Generator) -> tuple[list[int], list[list[int]]]:
    """For each MSI cluster centre, ``per_cluster`` library spectra whose MSI projection fits its shape.

    Fit = relative error after the best brightness scaling (limited to 0.5-2); picks are drawn at random
    among the ``top`` best so different seeds give different but plausible spectra.
    """
    norms = np.sum(lib_m * lib_m, axis=1) + 1e-12
    chosen: list[int] = []
    per: list[list[int]] = []
    for m in centres:
        g = np.clip(lib_m @ m / norms, 0.5, 2.0)
        err = np.linalg.norm(lib_m * g[:, None] - m[None], axis=1) / (np.linalg.norm(m) + 1e-12)
        order = np.argsort(err)[: max(top, per_cluster)]
        picks = rng.choice(order, size=min(per_cluster, order.size), replace=False)
        per.append([int(p) for p in picks])
        chosen.extend(int(p) for p in picks if int(p) not in chosen)
    index = {j: i for i, j in enumerate(chosen)}
    return chosen, [[index[j] for j in p] for p in per]


def _fit_abundances(m: np.ndarray, dm: np.ndarray, a0: np.ndarray, ridge: float, iters: int) -> np.ndarray:
    """Non-negative a minimising ||a dm - m||^2 + ridge ||a - a0||^2 per pixel (FISTA, batched).

    m (n, C_m), dm (K, C_m), a0 (n, K) prior. The prior keeps each pixel near the spectra of its own
    clusters; the data term makes the mixture reproduce the pixel's MSI values.
    """
    gram = dm @ dm.T
    step = 1.0 / (float(np.linalg.eigvalsh(gram).max()) + ridge)
    a = a0.copy()
    y = a.copy()
    t = 1.0
    mdm = m @ dm.T
    for _ in range(iters):
        grad = y @ gram - mdm + ridge * (y - a0)
        a_new = np.maximum(y - step * grad, 0.0)
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        y = a_new + ((t - 1) / t_new) * (a_new - a)
        a, t = a_new, t_new
    return a


def _smooth_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field."""
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="reflect")
    return (f - f.mean()) / (f.std() + 1e-12)


def _blob_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator, sigma: float,
               edge: float = 0.5) -> np.ndarray:
    """Soft (0-1) mask of smooth blobs covering about ``fraction`` of the image (edges ~``edge`` * 2 px wide)."""
    f = _smooth_field(shape, sigma, rng)
    thr = np.quantile(f, 1.0 - fraction)
    return 1.0 / (1.0 + np.exp(-(f - thr) / (edge * f.std() / sigma + 1e-6)))


def _crop(arr: np.ndarray, size: int | tuple[int, int] | None, rng: np.random.Generator
          ) -> tuple[np.ndarray, int, int]:
    """Random (seeded) crop of the last two axes to ``size``; returns (crop, row0, col0)."""
    h, w = arr.shape[-2:]
    if size is None:
        return arr, 0, 0
    sh, sw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if sh > h or sw > w or sh < 1 or sw < 1:
        raise CsakdError(f"Scene size {sh} x {sw} does not fit in the {h} x {w} source image.")
    r0 = int(rng.integers(0, h - sh + 1))
    c0 = int(rng.integers(0, w - sw + 1))
    return arr[..., r0:r0 + sh, c0:c0 + sw], r0, c0


def candidate_library(wavelengths: Sequence[float], fwhm: Sequence[float] | None,
                      library: SpectralLibrary | None = None, per_subclass: int = 40, n_water: int = 16,
                      rng: np.random.Generator | int | None = 0) -> SpectralLibrary:
    """Valid earthlib spectra (at most ``per_subclass`` per material) + ``n_water`` modelled water spectra,
    resampled to the target band grid and clipped to [0, 1]."""
    gen = _rng(rng)
    lib = filter_valid(library if library is not None else load_earthlib())
    lib = lib.subsample(per_subclass, gen)
    if n_water > 0 and "water" not in lib.classes:
        lib = lib.concat(water_library(lib.wavelengths, n_water, gen))
    out = resample_library(lib, wavelengths, fwhm)
    out.spectra = np.clip(out.spectra, 0.0, 1.0)
    return out


def make_scene(wavelengths: Sequence[float], fwhm: Sequence[float] | None, size: int | tuple[int, int] | None = None,
               seed: int | np.random.Generator | None = 0, msi: np.ndarray | None = None,
               msi_sensor: str | SRF | None = None, crs=None, transform=None,
               library: SpectralLibrary | None = None, n_clusters: int = 14, per_cluster: int = 3,
               top: int = 6, per_subclass: int = 40, water: bool = True, n_water_bodies: int = 0,
               shadow_fraction: float = 0.0, snr_db: float | None = None, ridge: float = 0.01,
               iters: int = 200, spatial_source: str | None = None) -> SyntheticScene:
    """A synthetic HR-HSI on the band grid (``wavelengths``, ``fwhm`` in nm) with real spatial structure.

    ``msi`` (C_m, H, W) reflectance gives the structure (with ``msi_sensor`` its SRF spec, e.g.
    "S2A:B2,B3,B4,B8", and optional ``crs``/``transform``); without it the real spyndex Sentinel-2 tile
    is used (assumed georeferencing). ``size`` crops a seeded random window. Steps: k-means clusters of
    the MSI pixels; per cluster, library spectra whose MSI projection fits the cluster's spectral shape;
    per-pixel non-negative mixtures of those spectra fitted to the pixel's MSI values (the abundance sum
    is the illumination/shading factor); optional painted water bodies (``n_water_bodies``), extra
    shadows (``shadow_fraction`` of the area darkened to 15-40 %) and AWGN on the HSI (``snr_db``).
    The MSI-domain residual of the mixing fit (before water, shadows and noise) is stored in
    ``info["msi_residual"]`` (reflectance RMSE; ~0.003 = 2 % on the spyndex tile with the EnMAP grid).
    """

    rng = _rng(seed)
    wl = np.asarray(wavelengths, np.float64).ravel()
    fw = (np.asarray(fwhm, np.float64).ravel() if fwhm is not None
          else np.full(wl.shape, float(np.median(np.diff(wl))) if wl.size > 1 else 10.0))
    if fw.size != wl.size:
        raise CsakdError(f"{fw.size} FWHM values for {wl.size} band centres.")
    if msi is None:
        sensor = msi_sensor or S2_SENSOR
        wanted = load_srf(sensor)
        if not wanted.sensor.lower().startswith("sentinel-2"):
            raise CsakdError(f"Without an MSI array the spyndex Sentinel-2 tile is used: msi_sensor must be "
                             f"Sentinel-2 bands B2/B3/B4/B8 (got {wanted.sensor}).")
        tile = load_spyndex_s2(wanted.band_names)
        src = tile.bands
        crs = tile.crs if crs is None else crs
        transform = tile.transform if transform is None else transform
        spatial = spatial_source or f"real: {SPYNDEX_SOURCE}; georeferencing ASSUMED (EPSG:{ASSUMED_S2_EPSG})"
    else:
        src = np.asarray(msi, np.float32)
        if src.ndim != 3:
            raise CsakdError(f"The MSI must be (bands, rows, cols); got shape {src.shape}.")
        sensor = msi_sensor or (S2_SENSOR if src.shape[0] == 4 else None)
        if sensor is None:
            raise CsakdError(f"Give msi_sensor (e.g. 'S2A:B2,B3,B4,B8,B11,B12') for a {src.shape[0]}-band MSI.")
        spatial = spatial_source or "real: the MSI array given by the caller"
    srf = load_srf(sensor)
    if srf.n_bands != src.shape[0]:
        raise CsakdError(f"The MSI has {src.shape[0]} bands but the sensor '{sensor}' has {srf.n_bands}.")
    src, r0, c0 = _crop(src, size, rng)
    if transform is not None and (r0 or c0):
        transform = transform * transform.translation(c0, r0)
    nodata = ~np.isfinite(src).all(axis=0)
    m_img = fill_nan_nearest(src) if nodata.any() else src
    m_img = np.clip(np.nan_to_num(m_img, nan=0.0), 0.0, 1.0)
    c_m, h, w = m_img.shape
    R = srf_matrix(srf, wl, fw).astype(np.float32)

    cand = candidate_library(wl, fw, library, per_subclass, 16 if water else 0, rng)
    cand_m = cand.spectra @ R.T  # (n, C_m)
    pix = m_img.reshape(c_m, -1).T  # (N, C_m)
    sample = pix[rng.choice(pix.shape[0], size=min(4000, pix.shape[0]), replace=False)]
    centres = _kmeans(sample, n_clusters, rng)
    chosen, per = _choose_endmembers(centres, cand_m, per_cluster, top, rng)
    dic = cand.select(chosen)
    dm = dic.spectra @ R.T  # (K, C_m)
    k = len(chosen)

    # prior: soft cluster memberships (softmax of squared distance), split over the cluster's spectra with
    # smooth random weights (within-class variability), scaled to the pixel brightness
    d2 = ((pix[:, None, :] - centres[None]) ** 2).sum(-1)
    tau = max(float(np.median(np.min(d2, axis=1))), 1e-8) * 2.0
    memb = np.exp(-(d2 - d2.min(1, keepdims=True)) / tau)
    memb /= memb.sum(1, keepdims=True)
    var = np.stack([np.exp(0.4 * _smooth_field((h, w), max(h, w) / 20.0, rng)).ravel() for _ in range(k)], 1)
    a0 = np.zeros((pix.shape[0], k), np.float32)
    for ci, members in enumerate(per):
        wts = var[:, members]
        a0[:, members] += memb[:, ci:ci + 1] * wts / wts.sum(1, keepdims=True)
    pred = a0 @ dm
    g = np.sum(pred * pix, 1) / (np.sum(pred * pred, 1) + 1e-12)
    a0 *= np.clip(g, 0.05, 3.0)[:, None]
    a = _fit_abundances(pix.astype(np.float32), dm.astype(np.float32), a0, ridge * float(np.trace(dm @ dm.T)) / k,
                        iters)
    valid = ~nodata.ravel()
    diff = (a @ dm - pix)[valid].T  # MSI-domain residual of the mixing fit (before water/shadow/noise)
    resid = {
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_per_band": [float(v) for v in np.sqrt(np.mean(diff ** 2, axis=1))],
        "relative_rmse": float(np.sqrt(np.mean(diff ** 2)) / (np.sqrt(np.mean(pix[valid] ** 2)) + 1e-12)),
        "mean_abs": float(np.mean(np.abs(diff))),
        "band_names": list(srf.band_names),
    }
    shading = a.sum(1)
    ab = a / np.maximum(shading, 1e-8)[:, None]
    synthetic_notes = ["per-pixel non-negative mixing of library spectra fitted to the MSI (k-means clusters + "
                       "FISTA), abundance sum = illumination/shading factor"]

    ab_img = ab.T.reshape(k, h, w)
    shade = shading.reshape(h, w)
    if n_water_bodies > 0:
        wlib = cand.by_class("water")
        if len(wlib) == 0:
            raise CsakdError("Painting water bodies needs water spectra: call with water=True.")
        for _ in range(n_water_bodies):
            mask = _blob_mask((h, w), float(rng.uniform(0.04, 0.12)), rng, max(h, w) / 10.0)
            wi = int(rng.integers(len(wlib)))
            dic = dic.concat(wlib.select([wi]))
            ab_img = np.concatenate([ab_img * (1 - mask)[None], mask[None]], 0)
            shade = shade * (1 - mask) + mask
        synthetic_notes.append(f"{n_water_bodies} painted water bodies (smooth random blobs, modelled water)")
    if shadow_fraction > 0:
        mask = _blob_mask((h, w), shadow_fraction, rng, max(h, w) / 25.0)
        depth = float(rng.uniform(0.15, 0.4))
        shade = shade * (1 - mask * (1 - depth))
        synthetic_notes.append(f"shadows over ~{100 * shadow_fraction:.0f}% of the area (brightness x {depth:.2f})")

    hsi = np.einsum("kc,khw->chw", dic.spectra.astype(np.float32), ab_img.astype(np.float32), optimize=True)
    hsi *= shade[None].astype(np.float32)
    if snr_db is not None:
        hsi = add_awgn(hsi, snr_db, rng)
        synthetic_notes.append(f"white Gaussian noise at SNR {snr_db:g} dB")
    hsi = np.clip(hsi, 0.0, 1.0).astype(np.float32)
    if nodata.any():
        hsi[:, nodata] = np.nan
    classes = sorted(set(dic.classes))
    origins = sorted(set(dic.origin))
    spectra_note = ("real earthlib library spectra (classes " + ", ".join(c for c in classes if c != "water")
                    + "; origin " + "/".join(o for o in origins if o != "modelled") + " as labelled by earthlib, "
                    "'simulated' = its PROSAIL vegetation canopies)")
    if "water" in classes:
        spectra_note += " + modelled water spectra (csakd semi-analytic water model, not measured)"
    provenance = {
        "spatial": spatial,
        "spectra": spectra_note,
        "synthetic": "; ".join(synthetic_notes),
        "band_grid": f"{wl.size} bands {wl.min():.1f}-{wl.max():.1f} nm, Gaussian band responses from FWHM; "
                     "library gaps (water-vapour regions) interpolated along wavelength",
    }
    info = {"msi_residual": resid, "n_endmembers": len(dic), "n_clusters": len(centres),
            "seed": seed if isinstance(seed, int) else None, "crop_offset_rc": [r0, c0],
            "endmember_names": list(dic.names), "endmember_classes": list(dic.classes)}
    return SyntheticScene(hsi, wl, fw, provenance, crs, transform, m_img.astype(np.float32), sensor,
                          ab_img.astype(np.float32), shade.astype(np.float32), dic, info)


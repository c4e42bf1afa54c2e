"""Real reflectance spectra for synthetic scenes: the earthlib spectral library, band resampling, water model.

Sources and what they are (read this before calling anything "real"):

- ``earthlib`` (package data only, never imported: its dependencies are not installed here):
  ``spectra.sli`` / ``spectra.sli.hdr`` (ENVI spectral library, 7261 spectra, 400-2450 nm at 10 nm with
  the 1350-1460 nm and 1790-1960 nm water-vapour regions left out) and ``spectra.csv`` (one row per
  spectrum: NAME, LEVEL_1 pervious/impervious, LEVEL_2 class bare/vegetation/built/npv/burned, LEVEL_3
  sub-class soil/canopy/road/..., LEVEL_4 measured/simulated, LAT, LON, SOURCE, NOTES).
  Soils, sand, gravel, urban materials, litter/bark/wood (npv) and char are MEASURED spectra (ICRAF-ISRIC
  soil database, ASD field/lab spectra). The 2000 vegetation canopy spectra are SIMULATED by the library
  authors with the PROSAIL radiative-transfer model ("modeled canopy reflectance"): real library data, but
  model output, not measurements. :attr:`SpectralLibrary.origin` keeps that distinction per spectrum.
- The library has no water. :func:`water_reflectance` MODELS clear-to-turbid water (origin "modelled",
  source "csakd water model"); see its docstring for the model and its limits.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.envi import brace_list, envi_header

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
WATER_CLASS = "water"


@dataclass
class SpectralLibrary:
    """Spectra on one wavelength grid plus per-spectrum labels.

    ``spectra`` (n, n_wl) float32 reflectance (NaN = not measured at that wavelength); ``wavelengths``
    (n_wl,) nm ascending. ``classes`` is the coarse class (bare, vegetation, built, npv, burned, water),
    ``subclasses`` the material (soil, canopy, road, ...), ``origin`` one of "measured", "simulated"
    (model output shipped by the library, e.g. PROSAIL canopies) or "modelled" (made here).
    """

    wavelengths: np.ndarray
    spectra: np.ndarray
    names: list[str]
    classes: list[str]
    subclasses: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.wavelengths = np.asarray(self.wavelengths, np.float64)
        self.spectra = np.atleast_2d(np.asarray(self.spectra, np.float32))
        n = self.spectra.shape[0]
        for name in ("subclasses", "origin", "sources"):
            if not getattr(self, name):
                setattr(self, name, ["unknown"] * n)
        if self.spectra.shape[1] != self.wavelengths.size:
            raise CsakdError(f"Spectral library: {self.spectra.shape[1]} samples per spectrum but "
                             f"{self.wavelengths.size} wavelengths.")
        for name in ("names", "classes", "subclasses", "origin", "sources"):
            if len(getattr(self, name)) != n:
                raise CsakdError(f"Spectral library: {len(getattr(self, name))} {name} for {n} spectra.")

    def __len__(self) -> int:
        return self.spectra.shape[0]

    def select(self, index: np.ndarray | Sequence[int] | Sequence[bool]) -> SpectralLibrary:
        """A new library with the spectra picked by an integer index or boolean mask."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        idx = idx.astype(int)
        return SpectralLibrary(self.wavelengths.copy(), self.spectra[idx], [self.names[i] for i in idx],
                               [self.classes[i] for i in idx], [self.subclasses[i] for i in idx],
                               [self.origin[i] for i in idx], [self.sources[i] for i in idx])

    def by_class(self, *classes: str) -> SpectralLibrary:
        """Spectra whose coarse class is one of ``classes``."""
        keep = {c.lower() for c in classes}
        return self.select([c.lower() in keep for c in self.classes])

    def class_counts(self) -> dict[str, int]:
        """Number of spectra per coarse class."""
        out: dict[str, int] = {}
        for c in self.classes:
            out[c] = out.get(c, 0) + 1
        return out

    def concat(self, other: SpectralLibrary) -> SpectralLibrary:
        """Both libraries' spectra on this library's wavelength grid (``other`` must share it)."""
        if other.wavelengths.shape != self.wavelengths.shape or not np.allclose(other.wavelengths, self.wavelengths):
            raise CsakdError("Spectral libraries on different wavelength grids cannot be concatenated; "
                             "resample one first.")
        return SpectralLibrary(self.wavelengths.copy(), np.concatenate([self.spectra, other.spectra]),
                               self.names + other.names, self.classes + other.classes,
                               self.subclasses + other.subclasses, self.origin + other.origin,
                               self.sources + other.sources)

    def subsample(self, per_subclass: int, rng: np.random.Generator | int | None = 0) -> SpectralLibrary:
        """At most ``per_subclass`` randomly chosen spectra of each (class, subclass) pair."""
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(self.classes, self.subclasses, strict=True)):
            groups.setdefault(key, []).append(i)
        picked: list[int] = []
        for key in sorted(groups):
            idx = groups[key]
            if len(idx) > per_subclass:
                idx = sorted(gen.choice(idx, per_subclass, replace=False).tolist())
            picked.extend(idx)
        return self.select(sorted(picked))


def package_data_dir(package: str) -> Path:
    """The ``data`` folder of an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CsakdError(f"The '{package}' package (used for its data files only) is not installed. Install "
                         f"it with: pip install --no-deps {package}")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "data"
        if d.is_dir():
            return d
    raise CsakdError(f"The '{package}' package has no data folder; reinstall it with pip install --no-deps "
                     f"--force-reinstall {package}")


def read_envi_sli(sli_path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(wavelengths nm, spectra (n, n_wl) float32, names) of an ENVI spectral library (float32/64, bsq)."""
    sli = Path(sli_path)
    hdr = next((p for p in (Path(str(sli) + ".hdr"), sli.with_suffix(".hdr")) if p.is_file()), None)
    if hdr is None:
        raise CsakdError(f"No ENVI header (.hdr) next to the spectral library '{sli}'.")
    h = envi_header(hdr)
    samples, lines = int(h["samples"]), int(h["lines"])
    dtype = {"4": "f4", "5": "f8"}.get(h.get("data type", "4"))
    if dtype is None:
        raise CsakdError(f"ENVI library '{sli}': data type {h.get('data type')} is not supported (float only).")
    order = ">" if h.get("byte order", "0").strip() == "1" else "<"
    offset = int(h.get("header offset", "0"))
    data = np.fromfile(sli, dtype=order + dtype, offset=offset)
    if data.size != samples * lines:
        raise CsakdError(f"ENVI library '{sli}' holds {data.size} values, header says {lines} x {samples}.")
    wl = np.asarray([float(v) for v in brace_list(h["wavelength"])], np.float64)
    units = h.get("wavelength units", "").lower()
    if units.startswith("micro") or (not units and wl.max() < 30):
        wl = wl * 1000.0
    names = brace_list(h.get("spectra names", "")) or [f"spectrum {i + 1}" for i in range(lines)]
    return wl, data.reshape(lines, samples).astype(np.float32), names


@functools.lru_cache(maxsize=2)
def _load_earthlib_cached(which: str) -> SpectralLibrary:
    d = package_data_dir("earthlib")
    wl, spectra, names = read_envi_sli(d / f"{which}.sli")
    with open(d / f"{which}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != len(spectra):
        raise CsakdError(f"earthlib {which}: {len(rows)} metadata rows for {len(spectra)} spectra.")
    # the CSV is the metadata of record (the header has one truncated name: 'burncham' for 'burnedcham')
    return SpectralLibrary(
        wl, spectra, names=[r.get("NAME") or n for r, n in zip(rows, names, strict=True)],
        classes=[(r.get("LEVEL_2") or "unknown").strip().lower() for r in rows],
        subclasses=[(r.get("LEVEL_3") or "unknown").strip().lower() for r in rows],
        origin=[(r.get("LEVEL_4") or "unknown").strip().lower() for r in rows],
        sources=[f"earthlib/{(r.get('SOURCE') or 'unknown').strip()}" for r in rows])


def load_earthlib(which: str = "spectra") -> SpectralLibrary:
    """The earthlib library ("spectra" = full, 7261 spectra; "optimized" = the authors' reduced set).

    Returns a copy (callers may modify it). Classes: bare, vegetation (PROSAIL-simulated), built, npv,
    burned; origin per spectrum "measured" or "simulated" as labelled by the library.
    """
    if which not in ("spectra", "optimized"):
        raise CsakdError(f"Unknown earthlib library '{which}': use 'spectra' or 'optimized'.")
    lib = _load_earthlib_cached(which)
    return replace(lib, spectra=lib.spectra.copy(), names=list(lib.names), classes=list(lib.classes),
                   subclasses=list(lib.subclasses), origin=list(lib.origin), sources=list(lib.sources))


def valid_spectra(spectra: np.ndarray, lo: float = 0.0, hi: float = 1.0, min_finite: float = 0.5) -> np.ndarray:
    """(n,) bool: spectra with every finite value in [lo, hi] and at least ``min_finite`` of samples finite."""
    s = np.atleast_2d(np.asarray(spectra, np.float32))
    fin = np.isfinite(s)
    with np.errstate(invalid="ignore"):
        in_range = np.where(fin, (s >= lo) & (s <= hi), True).all(axis=1)
    return in_range & (fin.mean(axis=1) >= min_finite)


def spiky_spectra(wavelengths: Sequence[float], spectra: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """(n,) bool: spectra with an isolated one-sample spike (instrument artefact, not an absorption).

    A sample is a spike when it departs from the mean of its two neighbours by more than
    max(``threshold``, 10 % of that mean) and by more than twice the neighbours' own difference.
    Checked inside contiguous sampled segments only.
    """
    wl = np.asarray(wavelengths, np.float64)
    s = np.atleast_2d(np.asarray(spectra, np.float32))
    d = np.diff(wl)
    flag = np.zeros(s.shape[0], bool)
    for a, b in _segments(wl, 1.5 * float(np.median(d)) if d.size else 1.0):
        if b - a < 3:
            continue
        seg = s[:, a:b]
        nb = 0.5 * (seg[:, 2:] + seg[:, :-2])
        dev = np.abs(seg[:, 1:-1] - nb)
        with np.errstate(invalid="ignore"):
            flag |= ((dev > np.maximum(threshold, 0.1 * nb)) & (dev > 2 * np.abs(seg[:, 2:] - seg[:, :-2]))).any(1)
    return flag


def filter_valid(lib: SpectralLibrary, lo: float = 0.0, hi: float = 1.0,
                 spike_threshold: float | None = 0.02) -> SpectralLibrary:
    """Drop spectra with values outside [lo, hi], mostly NaN, or (unless ``spike_threshold`` is None) with
    isolated spikes (:func:`spiky_spectra`). On the earthlib library this removes one built spectrum that
    exceeds 1 and about 8 spiky ones."""
    keep = valid_spectra(lib.spectra, lo, hi)
    if spike_threshold is not None:
        keep &= ~spiky_spectra(lib.wavelengths, lib.spectra, spike_threshold)
    return lib.select(keep)


def _segments(wl: np.ndarray, max_step: float) -> list[tuple[int, int]]:
    """[start, stop) index ranges of contiguous sampling (no spacing wider than ``max_step``)."""
    breaks = np.nonzero(np.diff(wl) > max_step)[0] + 1
    edges = [0, *breaks.tolist(), wl.size]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b - a >= 1]


def _fine_grid(wl: np.ndarray, spectra: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of spectra onto a regular grid inside each sampled segment; NaN in gaps."""
    d = np.diff(wl)
    typical = float(np.median(d)) if d.size else 1.0
    grid = np.arange(wl[0], wl[-1] + step / 2, step)
    out = np.full((spectra.shape[0], grid.size), np.nan, np.float32)
    for a, b in _segments(wl, 1.5 * typical):
        sel = (grid >= wl[a] - 1e-9) & (grid <= wl[b - 1] + 1e-9)
        if b - a == 1:
            out[:, sel] = spectra[:, a:a + 1]
            continue
        seg = spectra[:, a:b]
        # per spectrum NaN-aware: interpolate between finite samples only
        if np.isfinite(seg).all():
            idx = np.interp(grid[sel], wl[a:b], np.arange(b - a, dtype=np.float64))
            i0 = np.clip(np.floor(idx).astype(int), 0, b - a - 2)
            t = (idx - i0).astype(np.float32)
            out[:, sel] = seg[:, i0] * (1 - t) + seg[:, i0 + 1] * t
        else:
            for k in range(seg.shape[0]):
                ok = np.isfinite(seg[k])
                if ok.sum() >= 2:
                    out[k, sel] = np.interp(grid[sel], wl[a:b][ok], seg[k, ok], left=np.nan, right=np.nan)
    return grid, out


def resample_spectra(wavelengths_src: Sequence[float], spectra: np.ndarray,
                     wavelengths_nm: Sequence[float], fwhm_nm: Sequence[float] | None = None,
                     min_coverage: float = 0.5, fill_gaps: bool = True, step: float = 1.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Resample spectra (n, n_src) to target bands with Gaussian responses (centre, FWHM in nm).

    The source spectra are linearly interpolated onto a ``step`` nm grid inside each contiguous sampled
    segment (never across gaps such as removed water-vapour regions, never through NaN), then integrated
    against each band's Gaussian. Returns (values (n, C) float32, coverage (C,) = fraction of each
    band's Gaussian weight that fell on sampled wavelengths, for the first spectrum's sampling).
    Bands with coverage < ``min_coverage`` are NaN, or with ``fill_gaps`` linearly interpolated along
    wavelength from the neighbouring resolved bands (constant beyond the ends): that fill is an
    interpolation, not a measurement. Without ``fwhm_nm`` the spectra are sampled at the centres.
    """
    wl_src = np.asarray(wavelengths_src, np.float64)
    s = np.atleast_2d(np.asarray(spectra, np.float32))
    order = np.argsort(wl_src)
    wl_src, s = wl_src[order], s[:, order]
    c = np.asarray(wavelengths_nm, np.float64).ravel()
    if fwhm_nm is None:
        fw = np.full(c.shape, step * 2.0)
    else:
        fw = np.asarray(fwhm_nm, np.float64).ravel()
        if fw.size != c.size:
            raise CsakdError(f"{fw.size} FWHM values for {c.size} band centres.")
        fw = np.where(np.isfinite(fw) & (fw > 0), fw, step * 2.0)
    grid, fine = _fine_grid(wl_src, s, step)
    sigma = fw * FWHM_TO_SIGMA
    g = np.exp(-0.5 * ((grid[None, :] - c[:, None]) / sigma[:, None]) ** 2)
    g[np.abs(grid[None, :] - c[:, None]) > 4 * sigma[:, None]] = 0.0
    # total weight of each band over the whole real line (so coverage counts weight outside the grid too)
    total = sigma * np.sqrt(2 * np.pi) / step
    valid = np.isfinite(fine)
    num = np.where(valid, fine, 0).astype(np.float64) @ g.T
    den = valid.astype(np.float64) @ g.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    cov = den / total[None, :]
    out[cov < min_coverage] = np.nan
    if fill_gaps:
        for k in range(out.shape[0]):
            bad = ~np.isfinite(out[k])
            if bad.any() and (~bad).sum() >= 1:
                good = np.nonzero(~bad)[0]
                good = good[np.argsort(c[good], kind="stable")]  # band grids may overlap (EnMAP VNIR/SWIR)
                out[k, bad] = np.interp(c[bad], c[good], out[k, good])
    return out.astype(np.float32), cov[0].astype(np.float32)


def resample_library(lib: SpectralLibrary, wavelengths_nm: Sequence[float],
                     fwhm_nm: Sequence[float] | None = None, min_coverage: float = 0.5,
                     fill_gaps: bool = True) -> SpectralLibrary:
    """The library on a target band grid (see :func:`resample_spectra`); labels are kept."""
    vals, _ = resample_spectra(lib.wavelengths, lib.spectra, wavelengths_nm, fwhm_nm, min_coverage, fill_gaps)
    return SpectralLibrary(np.asarray(wavelengths_nm, np.float64), vals, list(lib.names), list(lib.classes),
                           list(lib.subclasses), list(lib.origin), list(lib.sources))


# Pure-water absorption a_w (1/m), rounded approximations read from published spectra: Pope & Fry (1997)
# for 400-700 nm, Kou et al. (1993) / Hale & Querry (1973) beyond. Interpolated log-linearly. Beyond
# ~900 nm absorption is so strong that the water-leaving signal is effectively zero, so precision there
# does not matter.
_PURE_WATER_ABSORPTION = np.array([
    [400, 0.0066], [420, 0.0045], [440, 0.0064], [460, 0.0098], [480, 0.0145], [500, 0.0204],
    [520, 0.0477], [540, 0.0522], [560, 0.0619], [580, 0.0896], [600, 0.2224], [620, 0.2755],
    [640, 0.3163], [660, 0.40], [680, 0.455], [700, 0.624], [720, 1.23], [740, 2.46], [760, 2.55],
    [780, 2.40], [800, 1.90], [850, 4.3], [900, 6.8], [950, 38.0], [1000, 36.0], [1100, 17.0],
    [1200, 105.0], [1300, 110.0], [1450, 2900.0], [1600, 700.0], [1950, 11000.0], [2200, 1800.0],
    [2500, 6000.0]])


def pure_water_absorption(wavelengths_nm: Sequence[float]) -> np.ndarray:
    """Approximate pure-water absorption coefficient (1/m) at ``wavelengths_nm`` (see the table's note)."""
    wl = np.asarray(wavelengths_nm, np.float64)
    t = _PURE_WATER_ABSORPTION
    return np.exp(np.interp(wl, t[:, 0], np.log(t[:, 1])))


def water_reflectance(wavelengths_nm: Sequence[float], bbp550: float = 0.005, cdom440: float = 0.05,
                      chl: float = 1.0, surface: float = 0.003) -> np.ndarray:
    """MODELLED surface reflectance of deep water at ``wavelengths_nm`` (not a measurement).

    A standard semi-analytic model: absorption a = pure water (table above) + CDOM
    (``cdom440`` * exp(-0.015 (lambda - 440))) + a crude phytoplankton term (Gaussians at 440 and 675 nm
    scaled by ``chl`` mg/m3 ^ 0.65); backscattering b_b = pure seawater (0.00144 (500/lambda)^4.32, Morel
    1974) + particles (``bbp550`` (550/lambda)); u = b_b / (a + b_b); subsurface
    rrs = 0.0949 u + 0.0794 u^2 (Gordon et al. 1988, as used by Lee et al. 2002); above-surface
    Rrs = 0.52 rrs / (1 - 1.7 rrs); reflectance = pi * Rrs + ``surface`` (a flat residual of sky/sun
    glint left by atmospheric correction). Result: clear water peaks in the blue (~0.03), moderately turbid
    water near 550 nm (0.02-0.05), and everything beyond ~750 nm is close to ``surface``. Not modelled:
    bottom reflectance (shallow water), floating vegetation, foam, adjacency effects.
    """
    wl = np.asarray(wavelengths_nm, np.float64)
    a = (pure_water_absorption(wl) + cdom440 * np.exp(-0.015 * (wl - 440.0))
         + 0.06 * chl ** 0.65 * (np.exp(-0.5 * ((wl - 440.0) / 30.0) ** 2)
                                 + 0.5 * np.exp(-0.5 * ((wl - 675.0) / 12.0) ** 2)))
    bb = 0.00144 * (500.0 / wl) ** 4.32 + bbp550 * (550.0 / wl)
    u = bb / (a + bb)
    rrs = 0.0949 * u + 0.0794 * u * u
    return (np.pi * 0.52 * rrs / (1.0 - 1.7 * rrs) + surface).astype(np.float32)


def water_library(wavelengths_nm: Sequence[float] | None = None, n: int = 12,
                  rng: np.random.Generator | int | None = 0) -> SpectralLibrary:
    """``n`` MODELLED water spectra (origin "modelled") spanning clear to turbid/productive water.

    Parameters are drawn log-uniformly: bbp550 0.0005-0.03 /m, CDOM(440) 0.005-0.5 /m, chl 0.05-20 mg/m3,
    surface residual 0-0.006. Default grid: earthlib's (400-2450 nm, 10 nm, without its gaps).
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    wl = (np.asarray(wavelengths_nm, np.float64) if wavelengths_nm is not None
          else _load_earthlib_cached("spectra").wavelengths.copy())

    def logu(lo: float, hi: float) -> float:
        return float(np.exp(gen.uniform(np.log(lo), np.log(hi))))

    spectra, names, sub = [], [], []
    for i in range(n):
        p = dict(bbp550=logu(0.0005, 0.03), cdom440=logu(0.005, 0.5), chl=logu(0.05, 20.0),
                 surface=float(gen.uniform(0.0, 0.006)))
        spectra.append(water_reflectance(wl, **p))
        names.append(f"water_model_{i:02d}")
        sub.append("turbid" if p["bbp550"] > 0.01 else "clear")
    return SpectralLibrary(wl, np.stack(spectra), names, [WATER_CLASS] * n, sub, ["modelled"] * n,
                           ["csakd water model (semi-analytic, see water_reflectance)"] * n)

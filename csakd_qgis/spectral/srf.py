"""Sensor spectral response functions (SRF) and the MSI-from-HSI spectral degradation matrix.

Three sources, all parsed into one :class:`SRF` (responses on a common nanometre grid):

- real sensor curves shipped as package data by the ``pyrsr`` package ("S2A", "S2B", "L8", "L9", "RE",
  optionally with a band subset: "S2A:B2,B3,B4,B8"). The files are read directly; ``pyrsr`` itself is
  never imported (its ``__init__`` pulls in pandas, which can replace the system numpy);
- a user CSV/text file: first column wavelength, one column per band, a header naming the bands;
- Gaussian curves from centre + FWHM: "gaussian:490/65,560/35,665/30,842/115".

:func:`srf_matrix` turns an SRF into the (C_m, C_h) matrix that synthesises MSI bands from HSI bands
(Gaussian band responses where the HSI gives FWHM), rows summing to 1, and refuses MSI bands the HSI does not cover.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError

# sensor key -> (pyrsr folder, instrument folder, band-name prefix in files)
_PYRSR_SENSORS: dict[str, tuple[str, str]] = {
    "Sentinel-2A": ("Sentinel-2A", "MSI"),
    "Sentinel-2B": ("Sentinel-2B", "MSI"),
    "Landsat-8": ("Landsat-8", "OLI_TIRS"),
    "Landsat-9": ("Landsat-9", "OLI_TIRS"),
    "RapidEye": ("RapidEye", "MSI"),
}
_ALIASES: dict[str, str] = {
    "s2a": "Sentinel-2A", "sentinel2a": "Sentinel-2A", "sentinel-2a": "Sentinel-2A", "s2amsi": "Sentinel-2A",
    "s2b": "Sentinel-2B", "sentinel2b": "Sentinel-2B", "sentinel-2b": "Sentinel-2B", "s2bmsi": "Sentinel-2B",
    "l8": "Landsat-8", "landsat8": "Landsat-8", "landsat-8": "Landsat-8", "lc08": "Landsat-8", "oli": "Landsat-8",
    "l9": "Landsat-9", "landsat9": "Landsat-9", "landsat-9": "Landsat-9", "lc09": "Landsat-9", "oli2": "Landsat-9",
    "re": "RapidEye", "rapideye": "RapidEye",
}
# Bands left out when no subset is given: thermal (TIRS), panchromatic and cirrus bands carry no
# surface-reflectance information an HSI/MSI fusion can use (cirrus bands sit in water absorption).
_DEFAULT_EXCLUDE: dict[str, tuple[str, ...]] = {
    "Sentinel-2A": ("B10",), "Sentinel-2B": ("B10",),
    "Landsat-8": ("B8", "B9", "B10", "B11"), "Landsat-9": ("B8", "B9", "B10", "B11"),
}
MIN_COVERAGE = 0.5  # fraction of an MSI band's response the HSI must sample
_trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz


@dataclass
class SRF:
    """Spectral responses of a (multispectral) sensor on one wavelength grid.

    ``wavelengths`` (n_wl,) in nm, ascending; ``responses`` (n_bands, n_wl), non-negative, 0 outside
    each band's measured range. Responses are not normalised (peak is usually 1).
    """

    sensor: str
    band_names: list[str]
    wavelengths: np.ndarray
    responses: np.ndarray

    def __post_init__(self) -> None:
        self.wavelengths = np.asarray(self.wavelengths, np.float64)
        self.responses = np.atleast_2d(np.asarray(self.responses, np.float64))
        if self.responses.shape != (len(self.band_names), self.wavelengths.size):
            raise CsakdError(f"SRF '{self.sensor}': {len(self.band_names)} band names and responses of shape "
                             f"{self.responses.shape} do not match a grid of {self.wavelengths.size} wavelengths.")

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return len(self.band_names)

    def centroids(self) -> np.ndarray:
        """Response-weighted mean wavelength of each band (nm), the usual 'band centre'."""
        w = _trapz(self.responses, self.wavelengths, axis=1)
        return _trapz(self.responses * self.wavelengths, self.wavelengths, axis=1) / w

    def fwhm(self) -> np.ndarray:
        """Full width at half maximum of each band (nm): span between the outermost half-peak crossings."""
        out = np.zeros(self.n_bands)
        wl = self.wavelengths
        for i, r in enumerate(self.responses):
            above = np.nonzero(r >= 0.5 * r.max())[0]
            if above.size == 0:
                continue
            lo, hi = above[0], above[-1]
            left = wl[lo] if lo == 0 else np.interp(0.5 * r.max(), [r[lo - 1], r[lo]], [wl[lo - 1], wl[lo]])
            right = wl[hi] if hi == wl.size - 1 else np.interp(0.5 * r.max(), [r[hi + 1], r[hi]],
                                                               [wl[hi + 1], wl[hi]])
            out[i] = right - left
        return out

    def subset(self, names: Sequence[str]) -> SRF:
        """A new SRF with only the named bands, in the given order (names as in :func:`canonical_band`)."""
        index = {n.upper(): i for i, n in enumerate(self.band_names)}
        idx = []
        for name in names:
            key = canonical_band(name)
            if key not in index:
                raise CsakdError(f"Band '{name}' is not a band of {self.sensor}; its bands are "
                                 f"{', '.join(self.band_names)}.")
            idx.append(index[key])
        return SRF(self.sensor, [self.band_names[i] for i in idx], self.wavelengths.copy(),
                   self.responses[idx].copy())


def canonical_band(name: str) -> str:
    """Normalise a band name: 'b02', 'Band2', 'band_2', '2' -> 'B2'; '8a' -> 'B8A'; others upper-cased."""
    text = str(name).strip()
    m = re.fullmatch(r"(?i)(?:b|band)?[\s_:-]*0*([0-9]+[a-z]?)", text)
    if m:
        return "B" + m.group(1).upper()
    return text.upper()


def _common_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], step: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Resample several (wavelength, response) curves onto one regular grid; zero outside each curve."""
    lo = min(float(w.min()) for w, _ in curves)
    hi = max(float(w.max()) for w, _ in curves)
    grid = np.arange(np.floor(lo), np.ceil(hi) + step / 2, step)
    out = np.zeros((len(curves), grid.size))
    for i, (w, r) in enumerate(curves):
        order = np.argsort(w)
        out[i] = np.interp(grid, w[order], r[order], left=0.0, right=0.0)
    return grid, np.clip(out, 0.0, None)


def _to_nm(wavelengths: np.ndarray) -> np.ndarray:
    """Micrometre wavelengths (all < 30) to nanometres; nanometres unchanged."""
    w = np.asarray(wavelengths, np.float64)
    return w * 1000.0 if np.nanmax(w) < 30 else w


def pyrsr_data_dir() -> Path:
    """Folder of the SRF files shipped with the ``pyrsr`` package, found without importing it."""
    env = os.environ.get("CSAKD_PYRSR_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    spec = importlib.util.find_spec("pyrsr")
    if spec is None or not spec.submodule_search_locations:
        raise CsakdError("Sensor response functions need the 'pyrsr' package (data files only). Install it "
                         "with: pip install --no-deps pyrsr   (or give an SRF CSV file or 'gaussian:c/fwhm,...').")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "data"
        if d.is_dir():
            return d
    raise CsakdError("The installed 'pyrsr' package has no 'data' folder with SRF files; reinstall it with "
                     "pip install --no-deps --force-reinstall pyrsr.")


def _read_pyrsr_band(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pyrsr band file: a header line, then 'wavelength response' rows (nm or micrometres)."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        next(fh, None)
        for line in fh:
            parts = line.split()
            if len(parts) >= 2:
                try:
                    rows.append((float(parts[0]), float(parts[1])))
                except ValueError:
                    continue
    if not rows:
        raise CsakdError(f"SRF file '{path}' has no 'wavelength response' rows.")
    arr = np.asarray(rows)
    return _to_nm(arr[:, 0]), arr[:, 1]


def sensor_name(alias: str) -> str | None:
    """Full sensor name for an alias ('S2A', 'L8', 'rapideye', ...) or None if unknown."""
    key = alias.strip().lower().replace("_", "-").replace(" ", "")
    if key in _ALIASES:
        return _ALIASES[key]
    for name in _PYRSR_SENSORS:
        if key == name.lower():
            return name
    return None


def load_sensor_srf(sensor: str, bands: Sequence[str] | None = None) -> SRF:
    """SRF of a known sensor from pyrsr's data files; ``bands`` selects and orders bands (None = default set).

    The default set is every reflective band except thermal, panchromatic and cirrus bands.
    """
    name = sensor_name(sensor)
    if name is None:
        raise CsakdError(f"Unknown sensor '{sensor}'. Known: S2A, S2B, L8, L9, RE (Sentinel-2A/B, Landsat-8/9, "
                         "RapidEye), a CSV file path, or 'gaussian:centre/fwhm,...'.")
    folder, instrument = _PYRSR_SENSORS[name]
    d = pyrsr_data_dir() / folder / instrument
    if not d.is_dir():
        raise CsakdError(f"pyrsr has no SRF folder '{d}' for {name}; update pyrsr (pip install --no-deps -U pyrsr).")
    files = {}
    for f in d.iterdir():
        if f.name.startswith("band_"):
            files[canonical_band(f.name[len("band_"):])] = f

    def sort_key(b: str) -> tuple[int, str]:
        m = re.match(r"B([0-9]+)(.*)", b)
        return (int(m.group(1)), m.group(2)) if m else (10**6, b)

    if bands:
        names = [canonical_band(b) for b in bands]
        missing = [b for b in names if b not in files]
        if missing:
            raise CsakdError(f"{name} has no band(s) {', '.join(missing)}; its bands are "
                             f"{', '.join(sorted(files, key=sort_key))}.")
    else:
        names = [b for b in sorted(files, key=sort_key) if b not in _DEFAULT_EXCLUDE.get(name, ())]
    curves = [_read_pyrsr_band(files[b]) for b in names]
    grid, resp = _common_grid(curves)
    return SRF(name, names, grid, resp)


def _split_line(line: str) -> list[str]:
    for sep in (",", ";", "\t"):
        if sep in line:
            return [p.strip() for p in line.split(sep)]
    return line.split()


def load_srf_file(path: str | os.PathLike, bands: Sequence[str] | None = None) -> SRF:
    """SRF from a CSV/text table: first column wavelength (nm, or micrometres detected by magnitude),
    one column per band; a header row names the bands (else they are called B1, B2, ...).

    Separators: comma, semicolon, tab or whitespace. Lines starting with '#' or ';' are comments.
    """
    p = Path(path)
    header: list[str] | None = None
    rows: list[list[float]] = []
    with open(p, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            s = line.strip()
            if not s or s.startswith("#") or s.startswith(";"):
                continue
            parts = [x for x in _split_line(s) if x != ""]
            try:
                rows.append([float(x) for x in parts])
            except ValueError:
                if rows:
                    raise CsakdError(f"SRF file '{p}': non-numeric row '{s[:60]}' after the data started.") from None
                header = parts
    if not rows:
        raise CsakdError(f"SRF file '{p}' has no numeric rows: expected 'wavelength, band1, band2, ...'.")
    ncol = min(len(r) for r in rows)
    if ncol < 2:
        raise CsakdError(f"SRF file '{p}' needs at least two columns (wavelength and one band response).")
    arr = np.asarray([r[:ncol] for r in rows], np.float64)
    nbands = ncol - 1
    if header and len(header) >= ncol:
        names = [str(h).strip().strip('"') for h in header[1:ncol]]
    else:
        names = [f"B{i + 1}" for i in range(nbands)]
    wl = _to_nm(arr[:, 0])
    order = np.argsort(wl)
    resp = np.clip(arr[order, 1:].T, 0.0, None)
    if np.any(resp.max(axis=1) <= 0):
        bad = [n for n, r in zip(names, resp, strict=True) if r.max() <= 0]
        raise CsakdError(f"SRF file '{p}': band(s) {', '.join(bad)} have no positive response.")
    srf = SRF(p.stem, names, wl[order], resp)
    if bands:
        index = {n.upper(): n for n in names}
        index.update({canonical_band(n): n for n in names})
        picked = []
        for b in bands:
            key = b.strip().upper() if b.strip().upper() in index else canonical_band(b)
            if key not in index:
                raise CsakdError(f"SRF file '{p}' has no band '{b}'; its bands are {', '.join(names)}.")
            picked.append(index[key])
        idx = [names.index(n) for n in picked]
        srf = SRF(srf.sensor, picked, srf.wavelengths, srf.responses[idx])
    return srf


def gaussian_srf(centers: Sequence[float], fwhms: Sequence[float], names: Sequence[str] | None = None,
                 sensor: str = "gaussian") -> SRF:
    """Gaussian responses (peak 1) from band centres and FWHMs in nm, on a grid fine enough for the narrowest."""
    c = np.asarray(centers, np.float64).ravel()
    f = np.asarray(fwhms, np.float64).ravel()
    if c.size == 0 or c.size != f.size:
        raise CsakdError(f"Gaussian SRF needs as many FWHMs as centres (got {c.size} centres, {f.size} FWHMs).")
    if np.any(f <= 0) or np.any(c <= 0):
        raise CsakdError("Gaussian SRF centres and FWHMs must be positive (nm).")
    sigma = f / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    step = min(1.0, float(f.min()) / 10.0)
    grid = np.arange(np.floor((c - 4 * sigma).min()), np.ceil((c + 4 * sigma).max()) + step / 2, step)
    resp = np.exp(-0.5 * ((grid[None, :] - c[:, None]) / sigma[:, None]) ** 2)
    band_names = list(names) if names is not None else [f"G{int(round(x))}" for x in c]
    return SRF(sensor, band_names, grid, resp)


def _parse_gaussian(text: str) -> SRF:
    centers, fwhms = [], []
    for item in [t for t in re.split(r"[,;\s]+", text.strip()) if t]:
        m = re.fullmatch(r"([0-9.]+)/([0-9.]+)", item)
        if not m:
            raise CsakdError(f"Gaussian SRF item '{item}' is not centre/fwhm in nm (e.g. 'gaussian:490/65,560/35').")
        centers.append(float(m.group(1)))
        fwhms.append(float(m.group(2)))
    if not centers:
        raise CsakdError("Gaussian SRF spec is empty: write e.g. 'gaussian:490/65,560/35,665/30,842/115'.")
    return gaussian_srf(centers, fwhms)


def load_srf(spec: str | os.PathLike | SRF) -> SRF:
    """Parse an SRF spec: 'S2A', 'S2A:B2,B3,B4,B8', 'L8:B2,B3', a CSV/text path (optionally 'path:B1,B2'),
    or 'gaussian:490/65,560/35'. An :class:`SRF` is returned unchanged."""
    if isinstance(spec, SRF):
        return spec
    text = str(spec).strip()
    if not text:
        raise CsakdError("The sensor/SRF is not set: give e.g. 'S2A:B2,B3,B4,B8', a CSV file or 'gaussian:...'.")
    if text.lower().startswith("gaussian:"):
        return _parse_gaussian(text.split(":", 1)[1])
    if os.path.isfile(text):
        return load_srf_file(text)
    head, sep, tail = text.rpartition(":")
    if sep and os.path.isfile(head):
        return load_srf_file(head, [b for b in re.split(r"[,;\s]+", tail) if b])
    sensor, _, bands = text.partition(":")
    if sensor_name(sensor) is None:
        if re.search(r"[\\/.]", sensor) or re.search(r"[\\/]", text):
            raise CsakdError(f"SRF file '{text}' does not exist: check the path.")
        return load_sensor_srf(sensor)  # raises the 'unknown sensor' message
    band_list = [b for b in re.split(r"[,;\s]+", bands) if b] or None
    return load_sensor_srf(sensor, band_list)


def _coverage_mask(srf_wl: np.ndarray, hsi_wl: np.ndarray, hsi_fwhm: np.ndarray | None) -> np.ndarray:
    """True where an SRF grid wavelength is sampled by some HSI band (within ~0.75 of its local width)."""
    order = np.argsort(hsi_wl)
    c = hsi_wl[order]
    if c.size > 1:
        d = np.diff(c)
        local = np.minimum(np.r_[d[0], d], np.r_[d, d[-1]])
    else:
        local = np.array([np.inf if hsi_fwhm is None else 0.0])
    width = local if hsi_fwhm is None else np.maximum(local, np.asarray(hsi_fwhm, np.float64)[order])
    half = 0.75 * width
    covered = np.zeros(srf_wl.shape, bool)
    for ci, hi in zip(c, half, strict=True):
        covered |= np.abs(srf_wl - ci) <= hi
    return covered


def srf_matrix(srf: SRF | str, wavelengths_nm: Sequence[float], fwhm_nm: Sequence[float] | None = None
               ) -> np.ndarray:
    """(C_m, C_h) float64 matrix R such that MSI = R @ HSI spectra (rows sum to 1;).

    Without ``fwhm_nm`` each MSI band's SRF is sampled at the HSI band centres. With it, each entry is the
    overlap integral of the SRF with the HSI band's Gaussian response (centre, FWHM), which is what the MSI
    would see of a spectrum known only through the HSI bands. Raises :class:`CsakdError` if an MSI band has
    less than half of its response inside the HSI's sampled range (e.g. SWIR bands with a VNIR-only HSI).
    """
    s = load_srf(srf) if not isinstance(srf, SRF) else srf
    wl = np.asarray(wavelengths_nm, np.float64).ravel()
    if wl.size == 0 or not np.all(np.isfinite(wl)):
        raise CsakdError("The HSI band wavelengths are missing or not finite; the MSI cannot be synthesised.")
    fw = None
    if fwhm_nm is not None:
        fw = np.asarray([np.nan if f is None else f for f in fwhm_nm], np.float64).ravel()
        if fw.size != wl.size:
            raise CsakdError(f"{fw.size} FWHM values for {wl.size} HSI wavelengths.")
        if not np.all(np.isfinite(fw) & (fw > 0)):
            fw = None  # incomplete FWHM metadata: fall back to sampling at the centres
    grid, resp = s.wavelengths, s.responses
    area = _trapz(resp, grid, axis=1)
    covered = _coverage_mask(grid, wl, fw)
    frac = _trapz(resp * covered, grid, axis=1) / np.where(area > 0, area, 1.0)
    bad = np.nonzero(frac < MIN_COVERAGE)[0]
    if bad.size:
        cents = s.centroids()
        desc = ", ".join(f"{s.band_names[i]} ({cents[i]:.0f} nm, {100 * frac[i]:.0f}% covered)" for i in bad)
        raise CsakdError(f"MSI band(s) {desc} of {s.sensor} fall outside the hyperspectral range "
                         f"{wl.min():.0f}-{wl.max():.0f} nm (or in a gap of removed bands). Drop them from the "
                         "band list (e.g. 'S2A:B2,B3,B4,B8').")
    if fw is None:
        order = np.argsort(grid)
        mat = np.stack([np.interp(wl, grid[order], r[order], left=0.0, right=0.0) for r in resp])
    else:
        sigma = fw / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        # integrate on a fine grid spanning both the SRF and the HSI band responses
        step = float(min(np.min(np.diff(grid)) if grid.size > 1 else 1.0, 1.0, sigma.min() / 4))
        lo = min(grid.min(), (wl - 4 * sigma).min())
        hi = max(grid.max(), (wl + 4 * sigma).max())
        fine = np.arange(lo, hi + step / 2, step)
        r_fine = np.stack([np.interp(fine, grid, r, left=0.0, right=0.0) for r in resp])
        g = np.exp(-0.5 * ((fine[None, :] - wl[:, None]) / sigma[:, None]) ** 2)
        g /= sigma[:, None] * np.sqrt(2 * np.pi)
        mat = r_fine @ g.T * step
    sums = mat.sum(axis=1)
    if np.any(sums <= 0):
        i = int(np.argmin(sums))
        raise CsakdError(f"MSI band {s.band_names[i]} of {s.sensor} has no response at any HSI band centre.")
    return mat / sums[:, None]

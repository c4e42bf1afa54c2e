"""The observation model of a LR-HSI / HR-MSI pair, and its estimation from the pair itself (no reference).

Model: Y = X B S (each HSI band blurred by the PSF B then decimated by s x s block means on the grid where LR
pixel i covers HR pixels [i*s, (i+1)*s)), and M = R X + o (each MSI band a non-negative combination of the
HSI bands plus an offset). Both hold up to noise, and the PSF's centre absorbs a sub-pixel shift between them.

- :class:`PSF`: Gaussian width ``sigma`` (HR px) and centre, given as the HSI shift (dx, dy) in LR px with the
  sign of :func:`raster.coreg.estimate_shift_arrays` (HSI content moved by +dx relative to the MSI). B S is
  separable: one 1-D decimating kernel per axis (:meth:`PSF.kernel`), applied by :func:`degrade`, its adjoint
  :func:`degrade_adjoint` and the minimum-norm inverse :func:`degrade_pinv` (the kernel of (D D^T)^-1 is
  computed once by FFT and truncated where it falls below 1e-5, so everything stays local and tileable).
  With no shift and ``sigma`` = s/2 this is exactly :func:`spectral.degrade.wald_degrade` away from the borders.
- :func:`estimate_psf`: the shift from the existing phase correlation, then (sigma, dx, dy) by Nelder-Mead on
  the misfit between the MSI degraded by the candidate PSF and its regression on the HSI's principal
  components (the HSI's own view of each MSI band).
- :func:`estimate_srf`: each row of R by non-negative least squares with a second-difference smoothness
  penalty (strength chosen on held-out pixels), on centred data so the offset drops out; optionally restricted
  to the support of a named sensor's published SRF; or the published SRF with a fitted gain/offset only.
- :func:`estimate_observation`: all three, as an :class:`ObservationModel` with a JSON-able summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.ndimage import correlate1d
from scipy.optimize import minimize, nnls

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.coreg import estimate_shift_arrays, hsi_components
from csakd_qgis.spectral.degrade import check_scale, fill_nan_nearest
from csakd_qgis.spectral.srf import SRF, load_srf, srf_matrix

TRUNCATE = 4.0  # Gaussian radius in sigmas (scipy's default, so sigma = s/2 matches wald_degrade)
PINV_TOL = 1e-5  # the (D D^T)^-1 kernel is cut where it falls below this fraction of its peak
SIGMA_BOUNDS = (0.05, 1.5)  # PSF search range, in units of s (HR px / s)
PSF_SAMPLE_LR = 128  # PSF/SRF are fitted on a central window of at most this many LR px a side
SRF_MAX_PIXELS = 20_000
SRF_LAMBDAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # smoothness strengths tried (relative to the data scale)
MIN_FIT_PIXELS = 16
PINV_EPS = 1e-3  # Tikhonov term of (D D^T + eps)^-1, relative to its peak: caps the gain at 1000 per axis
MIN_PSF_GAIN = 0.2  # the estimated PSF replaces the Wald one only if it lowers the misfit by this fraction
MIN_LINEAR_R2 = 0.9  # an MSI band explained less than this by any HSI combination is not a linear view of it


@dataclass(frozen=True)
class PSF:
    """Gaussian PSF of the LR-HSI: ``sigma`` in HR px, centre given as the HSI shift (dx, dy) in LR px."""

    sigma: float
    dx: float = 0.0
    dy: float = 0.0

    @classmethod
    def wald(cls, scale: int) -> PSF:
        """The Wald-protocol PSF (sigma = s/2 HR px, no shift) that the classical methods assume."""
        return cls(scale / 2.0)

    def kernel(self, scale: int, axis: str) -> tuple[int, np.ndarray]:
        """1-D decimating kernel along ``axis`` ('x' or 'y'): Y[i] = sum_k w[k] X[s*i - r + k]; returns (r, w)."""
        d = self.dx if axis == "x" else self.dy
        return _kernel(int(scale), round(float(self.sigma), 6), round(-float(d) * scale, 6))

    def margin_lr(self, scale: int) -> int:
        """LR pixels of context the decimation reads beyond a window."""
        r = max(self.kernel(scale, a)[0] for a in "xy")
        return int(np.ceil(r / scale)) + 1

    def summary(self, scale: int) -> dict[str, float]:
        """JSON-able description."""
        return {"sigma_hr_px": round(float(self.sigma), 4), "sigma_over_scale": round(float(self.sigma) / scale, 4),
                "shift_dx_lr_px": round(float(self.dx), 4), "shift_dy_lr_px": round(float(self.dy), 4)}


@lru_cache(maxsize=64)
def _kernel(s: int, sigma: float, centre: float) -> tuple[int, np.ndarray]:
    """Gaussian (sampled at integer HR offsets, centred at ``centre`` HR px) convolved with the s-px block mean."""
    sigma = max(sigma, 1e-3)
    r = int(TRUNCATE * sigma + 0.5) + int(np.ceil(abs(centre)))
    u = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * ((u - centre) / sigma) ** 2)
    g /= g.sum()
    w = np.convolve(g, np.full(s, 1.0 / s))  # taps at HR offsets -r .. r + s - 1 from the block start
    return r, w


def _axis_decimate(x: np.ndarray, s: int, r: int, w: np.ndarray, axis: int) -> np.ndarray:
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1] // s
    pad = [(0, 0)] * (x.ndim - 1) + [(r, w.size - r)]
    xp = np.pad(x, pad, mode="symmetric")
    out = np.zeros(x.shape[:-1] + (n,), np.float32)
    for k, wk in enumerate(w):
        out += np.float32(wk) * xp[..., k: k + s * n: s]
    return np.moveaxis(out, -1, axis)


def _axis_adjoint(y: np.ndarray, s: int, r: int, w: np.ndarray, axis: int) -> np.ndarray:
    y = np.moveaxis(y, axis, -1)
    n = y.shape[-1]
    acc = np.zeros(y.shape[:-1] + (s * n + w.size,), np.float32)
    for k, wk in enumerate(w):
        acc[..., k: k + s * n: s] += np.float32(wk) * y
    return np.moveaxis(acc[..., r: r + s * n], -1, axis)  # contributions beyond the domain are dropped


def degrade(x: np.ndarray, psf: PSF, scale: int) -> np.ndarray:
    """D X: blur by ``psf`` and s x s block mean of (..., H, W) -> (..., H // s, W // s); borders mirrored."""
    s = check_scale(scale)
    x = np.asarray(x, np.float32)
    ry, wy = psf.kernel(s, "y")
    rx, wx = psf.kernel(s, "x")
    return _axis_decimate(_axis_decimate(x, s, rx, wx, -1), s, ry, wy, -2)


def degrade_adjoint(y: np.ndarray, psf: PSF, scale: int) -> np.ndarray:
    """D^T Y: the adjoint of :func:`degrade` (zero-insertion then the flipped kernel), (..., h, w) -> (..., s*h, s*w)."""
    s = check_scale(scale)
    ry, wy = psf.kernel(s, "y")
    rx, wx = psf.kernel(s, "x")
    return _axis_adjoint(_axis_adjoint(np.asarray(y, np.float32), s, ry, wy, -2), s, rx, wx, -1)


@lru_cache(maxsize=64)
def _gram_inverse(s: int, r: int, w: tuple[float, ...], eps: float) -> np.ndarray:
    """Centred LR kernel of (D D^T + eps)^-1 along one axis (FFT on a long grid, truncated at PINV_TOL)."""
    wa = np.asarray(w)
    full = np.correlate(wa, wa, mode="full")  # lags -(n-1)..(n-1) in HR px
    lags = np.arange(-(wa.size - 1), wa.size)
    keep = lags % s == 0
    a_lags, a = lags[keep] // s, full[keep]
    n = 512
    spec = np.zeros(n)
    spec[a_lags % n] = a
    inv = np.real(np.fft.ifft(1.0 / (np.fft.fft(spec) + eps)))
    inv = np.fft.fftshift(inv)
    big = np.nonzero(np.abs(inv) >= PINV_TOL * np.abs(inv).max())[0]
    half = int(max(n // 2 - big.min(), big.max() - n // 2))
    return inv[n // 2 - half: n // 2 + half + 1]


def gram_inverse(psf: PSF, scale: int, axis: str, eps: float = PINV_EPS) -> np.ndarray:
    """LR kernel (odd length, centred) of (D D^T + eps peak)^-1 along ``axis``; its length bounds the projection's reach."""
    r, w = psf.kernel(scale, axis)
    peak = float(np.sum(w * w))
    return _gram_inverse(int(scale), r, tuple(float(v) for v in w), float(eps) * peak)


def _lr_filter(y: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    return correlate1d(y, k.astype(np.float32), axis=axis, mode="reflect")


def degrade_pinv(e: np.ndarray, psf: PSF, scale: int, eps: float = PINV_EPS) -> np.ndarray:
    """D^+ E = D^T (D D^T + eps)^-1 E: the smallest HR image whose degradation is (about) the LR image ``e``."""
    e = np.asarray(e, np.float32)
    g = _lr_filter(_lr_filter(e, gram_inverse(psf, scale, "x", eps), -1), gram_inverse(psf, scale, "y", eps), -2)
    return degrade_adjoint(g, psf, scale)


def pinv_margin_lr(psf: PSF, scale: int) -> int:
    """LR pixels of context :func:`degrade_pinv` after :func:`degrade` reads beyond a window."""
    k = max(gram_inverse(psf, scale, a).size for a in "xy") // 2
    return int(k + 2 * psf.margin_lr(scale))


# ------------------------------------------------------------------------------------------------ SRF
@dataclass
class SpectralModel:
    """M = R X + offset: ``R`` (C_m, C_h) non-negative, rows NOT normalised (row sum = the band's gain)."""

    R: np.ndarray
    offset: np.ndarray
    source: str
    r2: np.ndarray | None = None  # per MSI band, share of the LR MSI variance the model explains
    smoothness: float | None = None

    @property
    def gain(self) -> np.ndarray:
        """Per-band gain of the MSI relative to the SRF-weighted HSI mean."""
        return self.R.sum(axis=1)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """R X + offset for a (C_h, H, W) image."""
        out = np.einsum("mc,chw->mhw", self.R.astype(np.float32), np.asarray(x, np.float32), optimize=True)
        return out + self.offset.astype(np.float32)[:, None, None]

    def summary(self, wavelengths: np.ndarray | None = None) -> dict[str, Any]:
        """JSON-able description: source, gains, offsets, fit R^2 and (with wavelengths) each band's centroid."""
        out: dict[str, Any] = {"source": self.source, "gain": [round(float(v), 4) for v in self.gain],
                               "offset": [round(float(v), 5) for v in self.offset]}
        if self.r2 is not None:
            out["fit_r2"] = [round(float(v), 4) for v in self.r2]
        if self.smoothness is not None:
            out["smoothness"] = self.smoothness
        if wavelengths is not None:
            wl = np.asarray(wavelengths, np.float64)
            rs = np.where(self.gain > 0, self.gain, 1.0)
            out["centroid_nm"] = [round(float(v), 1) for v in (self.R @ wl) / rs]
        return out


def _second_difference(n: int) -> np.ndarray:
    d = np.zeros((max(n - 2, 0), n))
    for i in range(n - 2):
        d[i, i: i + 3] = (1.0, -2.0, 1.0)
    return d


def _fit_pixels(lr: np.ndarray, msi_lr: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, C_h) HSI and (n, C_m) MSI spectra at LR pixels valid in both (at most SRF_MAX_PIXELS, fixed seed)."""
    ok = np.isfinite(lr).all(0) & np.isfinite(msi_lr).all(0)
    n = int(ok.sum())
    if n < MIN_FIT_PIXELS:
        raise CsakdError(f"Only {n} LR pixels are valid in both the HSI and the MSI: the inputs overlap too little "
                         "or are mostly nodata there, so the observation model cannot be estimated. Check the "
                         "nodata values and that both images show the same place.")
    y, m = lr[:, ok].T.astype(np.float64), msi_lr[:, ok].T.astype(np.float64)
    if n > SRF_MAX_PIXELS:
        pick = np.sort(np.random.default_rng(seed).choice(n, SRF_MAX_PIXELS, replace=False))
        y, m = y[pick], m[pick]
    return y, m


def _nnls_smooth(a: np.ndarray, b: np.ndarray, lam: float, support: np.ndarray | None) -> np.ndarray:
    """argmin ||a x - b||^2 + lam ||D2 x||^2 over x >= 0 (zero outside ``support``).

    Solved as an NNLS on the square root of the normal equations (bands x bands instead of pixels x bands:
    the same objective up to a constant, ~30x faster for thousands of pixels).
    """
    n = a.shape[1]
    cols = np.arange(n) if support is None else np.nonzero(support)[0]
    sub = a[:, cols]
    d = _second_difference(cols.size)
    gram = sub.T @ sub + lam * (d.T @ d)
    e, v = np.linalg.eigh(gram)
    keep = e > max(float(e.max()), 1e-300) * 1e-12
    root = np.sqrt(e[keep])
    x = np.zeros(n)
    x[cols] = nnls((v[:, keep] * root).T, (v[:, keep].T @ (sub.T @ b)) / root, maxiter=50 * n)[0]
    return x


def estimate_srf(lr: np.ndarray, msi_lr: np.ndarray, prior: np.ndarray | None = None, mode: str = "auto",
                 seed: int = 0) -> SpectralModel:
    """R and offset with D M = R Y + offset at LR. ``mode`` 'auto': smooth NNLS (inside ``prior``'s support if
    given); 'sensor': the published ``prior`` (C_m, C_h) with a per-band gain and offset only."""
    y, m = _fit_pixels(lr, msi_lr, seed)
    c_m, c_h = m.shape[1], y.shape[1]
    my, mm = y.mean(0), m.mean(0)
    yc, mc = y - my, m - mm
    var = mc.var(0)
    if mode == "sensor":
        if prior is None:
            raise CsakdError("SRF mode 'sensor' needs the MSI sensor's published SRF (give the sensor, e.g. "
                             "'S2A:B2,B3,B4,B8').")
        z = yc @ prior.T  # (n, C_m)
        gains = np.array([float(z[:, k] @ mc[:, k]) / max(float(z[:, k] @ z[:, k]), 1e-30) for k in range(c_m)])
        R = prior * gains[:, None]
        resid = mc - yc @ R.T
        src = "sensor SRF + fitted gain/offset"
        lam_used = None
    elif mode == "auto":
        scale = float(np.mean(yc ** 2)) * yc.shape[0]
        half = np.arange(yc.shape[0]) % 2 == 0
        R = np.zeros((c_m, c_h))
        lam_used = []
        for k in range(c_m):
            support = None if prior is None else _support(prior[k])
            best = None
            for lam in SRF_LAMBDAS:  # strength chosen by the error on held-out (odd) pixels
                r = _nnls_smooth(yc[half], mc[half, k], lam * scale, support)
                err = float(np.mean((yc[~half] @ r - mc[~half, k]) ** 2))
                if best is None or err < best[0]:
                    best = (err, lam)
            lam_used.append(best[1])
            R[k] = _nnls_smooth(yc, mc[:, k], best[1] * scale, support)
        resid = mc - yc @ R.T
        src = "estimated (smooth NNLS" + (" within the sensor SRF support)" if prior is not None else ")")
        lam_used = float(np.median(lam_used))
    else:
        raise CsakdError(f"Unknown SRF mode '{mode}': use auto, sensor, or an SRF file.")
    offset = mm - my @ R.T
    r2 = 1.0 - resid.var(0) / np.where(var > 0, var, 1.0)
    return SpectralModel(R, offset, src, r2=r2, smoothness=lam_used)


def _support(prior_row: np.ndarray, frac: float = 1e-3, grow: int = 2) -> np.ndarray:
    """HSI bands where a published SRF row responds (above ``frac`` of its peak), widened by ``grow`` bands."""
    s = prior_row > frac * prior_row.max()
    idx = np.nonzero(s)[0]
    out = np.zeros_like(s)
    out[max(idx.min() - grow, 0): idx.max() + grow + 1] = True
    return out


# ------------------------------------------------------------------------------------------------ PSF
def _psf_misfit(z: np.ndarray, msi: np.ndarray, valid: np.ndarray, psf: PSF, s: int, inner: int) -> float:
    """Relative residual of D_psf M regressed on the HSI components z (interior LR pixels only)."""
    md = degrade(msi, psf, s)
    ok = valid.copy()
    ok[:inner] = ok[-inner:] = False
    ok[:, :inner] = ok[:, -inner:] = False
    if ok.sum() < MIN_FIT_PIXELS:
        ok = valid
    design = np.concatenate([np.ones((int(ok.sum()), 1)), z[:, ok].T], axis=1)
    t = md[:, ok].T.astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, t, rcond=None)
    res = t - design @ coef
    return float(np.mean(res.var(0) / np.maximum(t.var(0), 1e-30)))


def estimate_psf(lr: np.ndarray, msi: np.ndarray, scale: int, shift: tuple[float, float] | None = None,
                 fit_shift: bool = True) -> tuple[PSF, dict[str, Any]]:
    """Gaussian PSF width and centre that make the degraded MSI best match the HSI's own view of it.

    Start: sigma = s/2 and the phase-correlation shift (or ``shift``); then Nelder-Mead on (sigma, dx, dy)
    (only sigma when ``fit_shift`` is False). Returns the PSF and diagnostics (misfit at start and end).
    """
    s = check_scale(scale)
    lr = np.asarray(lr, np.float32)
    msi = np.asarray(msi, np.float32)[:, : lr.shape[1] * s, : lr.shape[2] * s]
    m_ok = np.isfinite(msi).all(0)
    m_f = msi if m_ok.all() else np.nan_to_num(fill_nan_nearest(msi))
    valid = np.isfinite(lr).all(0) & (degrade(m_ok.astype(np.float32), PSF.wald(s), s) > 0.999)
    if int(valid.sum()) < MIN_FIT_PIXELS or min(lr.shape[1:]) < 4:
        raise CsakdError(f"Only {int(valid.sum())} LR pixels are valid in both the HSI and the MSI "
                         f"({lr.shape[1]} x {lr.shape[2]} LR px): too few to estimate the PSF. Check the nodata "
                         "values and the overlap of the inputs, or give the PSF (e.g. --psf wald).")
    info: dict[str, Any] = {}
    if shift is None:
        est = estimate_shift_arrays(lr, m_f, s)
        shift = (est.dx, est.dy)
        info["shift_confidence"] = round(float(est.confidence), 3)
    z = hsi_components(np.nan_to_num(lr), valid)
    inner = int(np.ceil(TRUNCATE * SIGMA_BOUNDS[1])) + 1
    if min(lr.shape[1:]) <= 2 * inner + 4:
        inner = 1
    lo, hi = SIGMA_BOUNDS[0] * s, SIGMA_BOUNDS[1] * s

    def f(p: np.ndarray) -> float:
        sig = float(np.clip(p[0], lo, hi))
        dx, dy = (float(p[1]), float(p[2])) if fit_shift else shift
        if abs(dx) > 2 or abs(dy) > 2:
            return 1e3
        return _psf_misfit(z, m_f, valid, PSF(sig, dx, dy), s, inner) + (abs(p[0] - sig) * 10.0)

    x0 = np.array([s / 2.0, shift[0], shift[1]] if fit_shift else [s / 2.0])
    info["misfit_start"] = round(f(x0), 6)
    info["misfit_wald"] = round(_psf_misfit(z, m_f, valid, PSF.wald(s), s, inner), 6)
    best = None
    for start in (0.25 * s, 0.5 * s, 0.8 * s):  # several starts: the misfit is not convex in sigma
        x = x0.copy()
        x[0] = start
        simplex = np.array([x] + [x + np.eye(x.size)[i] * (0.1 * s if i == 0 else 0.1) for i in range(x.size)])
        res = minimize(f, x, method="Nelder-Mead",
                       options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-9, "maxiter": 300})
        if best is None or res.fun < best.fun:
            best = res
    p = best.x
    psf = PSF(float(np.clip(p[0], lo, hi)), *((float(p[1]), float(p[2])) if fit_shift else shift))
    info["misfit_end"] = round(float(best.fun), 6)
    info["shift_start_lr_px"] = [round(float(shift[0]), 4), round(float(shift[1]), 4)]
    return psf, info


# ------------------------------------------------------------------------------------------------ model
@dataclass
class ObservationModel:
    """PSF + spectral model of a pair, with where each came from (for logs, the CLI and Processing outputs)."""

    scale: int
    psf: PSF
    spectral: SpectralModel
    psf_source: str = "wald"
    wavelengths: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able dict of the PSF, shift and SRF (no matrices)."""
        return {"scale": self.scale, "psf_source": self.psf_source, **self.psf.summary(self.scale),
                "srf": self.spectral.summary(self.wavelengths), **self.info}

    def message(self) -> str:
        """One line for the log."""
        p = self.psf
        g = ", ".join(f"{v:.3f}" for v in self.spectral.gain)
        r2 = "" if self.spectral.r2 is None else ", fit R^2 " + ", ".join(f"{v:.3f}" for v in self.spectral.r2)
        return (f"Observation model ({self.psf_source} PSF): Gaussian sigma {p.sigma:.3f} HR px "
                f"({p.sigma / self.scale:.3f} s), HSI shift dx={p.dx:+.3f} dy={p.dy:+.3f} LR px; SRF "
                f"{self.spectral.source}, gains {g}{r2}.")


def parse_psf(spec: str | PSF | None, scale: int) -> PSF | str:
    """'auto' -> 'auto'; 'wald' -> sigma s/2; 'gaussian:SIGMA' (HR px) -> that PSF; a PSF unchanged."""
    if isinstance(spec, PSF):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return "auto"
    if text == "wald":
        return PSF.wald(scale)
    if text.startswith("gaussian:"):
        try:
            sigma = float(text.split(":", 1)[1])
        except ValueError:
            sigma = -1.0
        if sigma > 0:
            return PSF(sigma)
    raise CsakdError(f"PSF '{spec}' is not understood: use auto (estimated from the pair), wald (Gaussian sigma "
                     "= scale/2 HR px) or gaussian:SIGMA (sigma in HR-MSI pixels, e.g. gaussian:1.6).")


def parse_srf(spec: str | None) -> tuple[str, str | None]:
    """(mode, sensor) of an SRF option: 'auto' -> estimated; 'auto:SENSOR' -> estimated within that sensor's
    SRF support; a sensor ('S2A:B2,B3,B4,B8') or SRF file -> its published SRF with a fitted gain/offset."""
    text = (spec or "auto").strip()
    if text.lower() == "auto":
        return "auto", None
    if text.lower().startswith("auto:"):
        return "auto", text.split(":", 1)[1].strip()
    if text.lower() == "sensor":
        raise CsakdError("--srf sensor needs the sensor's name and bands, e.g. --srf S2A:B2,B3,B4,B8 (or an SRF "
                         "CSV file, or auto).")
    return "sensor", text


def check_msi_wavelengths(msi_wavelengths, hsi_wavelengths, tolerance_nm: float = 25.0) -> None:
    """One clear CsakdError when an MSI band centre (from its metadata) lies outside the HSI's spectral range."""
    if msi_wavelengths is None or hsi_wavelengths is None or len(msi_wavelengths) == 0:
        return
    hw = [float(w) for w in hsi_wavelengths if w is not None]
    if not hw:
        return
    lo, hi = min(hw) - tolerance_nm, max(hw) + tolerance_nm
    out = [(i + 1, float(w)) for i, w in enumerate(msi_wavelengths) if w is not None and not lo <= float(w) <= hi]
    if out:
        desc = ", ".join(f"band {i} ({w:.0f} nm)" for i, w in out)
        raise CsakdError(f"HR-MSI {desc} lie(s) outside the hyperspectral range {min(hw):.0f}-{max(hw):.0f} nm: no "
                         "spectral overlap, so the MSI cannot be explained by the HSI. Drop those MSI bands (e.g. "
                         "gdal_translate -b) or use an HSI that covers them.")


def sensor_prior(srf: SRF | str | None, wavelengths, fwhm=None) -> np.ndarray | None:
    """The published SRF as a (C_m, C_h) matrix on the HSI bands, or None without a sensor."""
    if srf is None or (isinstance(srf, str) and srf.strip().lower() in ("", "auto", "none")):
        return None
    return srf_matrix(load_srf(srf), wavelengths, fwhm)


def check_pair(lr: np.ndarray, msi: np.ndarray, scale: int, srf_prior: np.ndarray | None = None) -> None:
    """One clear CsakdError for a pair the model cannot describe (too few MSI bands, no common valid pixel)."""
    s = check_scale(scale)
    if lr.ndim != 3 or msi.ndim != 3:
        raise CsakdError(f"LR-HSI {lr.shape} and HR-MSI {msi.shape} must be (bands, rows, cols) arrays.")
    if msi.shape[0] < 1 or msi.shape[0] >= lr.shape[0]:
        raise CsakdError(f"The HR-MSI has {msi.shape[0]} bands and the LR-HSI {lr.shape[0]}: model-based fusion "
                         "needs at least one MSI band and fewer MSI bands than HSI bands. Check that the inputs "
                         "are not swapped.")
    if msi.shape[1] < lr.shape[1] * s or msi.shape[2] < lr.shape[2] * s:
        raise CsakdError(f"The HR-MSI ({msi.shape[1]} x {msi.shape[2]} px) does not cover the LR-HSI "
                         f"({lr.shape[1]} x {lr.shape[2]} px) at scale {s}.")
    if srf_prior is not None and srf_prior.shape != (msi.shape[0], lr.shape[0]):
        raise CsakdError(f"The sensor SRF has {srf_prior.shape[0]} bands but the HR-MSI {msi.shape[0]}: give the "
                         "MSI's band list (e.g. 'S2A:B2,B3,B4,B8').")


def central_sample(lr: np.ndarray, msi: np.ndarray, scale: int, max_lr: int = PSF_SAMPLE_LR
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A central window of at most ``max_lr`` LR px a side of the pair (bounded estimation cost)."""
    h, w = lr.shape[1:]
    r0, c0 = max(0, (h - max_lr) // 2), max(0, (w - max_lr) // 2)
    hh, ww = min(h, max_lr), min(w, max_lr)
    return (lr[:, r0: r0 + hh, c0: c0 + ww],
            msi[:, r0 * scale: (r0 + hh) * scale, c0 * scale: (c0 + ww) * scale])


def estimate_observation(lr: np.ndarray, msi: np.ndarray, scale: int, psf: str | PSF | None = "auto",
                         srf: str = "auto", sensor: SRF | str | None = None, wavelengths=None, fwhm=None,
                         spectral: SpectralModel | None = None) -> ObservationModel:
    """PSF (estimated, Wald or given) and spectral model (estimated, sensor + gain, or ``spectral``) of a pair.

    ``srf`` 'auto' (smooth NNLS, inside the sensor's support when ``sensor`` is given) or 'sensor' (published
    SRF of ``sensor``, gain/offset fitted). Estimation uses a central sample of the pair.
    """
    s = check_scale(scale)
    lr = np.asarray(lr, np.float32)
    msi = np.asarray(msi, np.float32)
    prior = sensor_prior(sensor, wavelengths, fwhm) if sensor is not None else None
    check_pair(lr, msi, s, prior)
    lr_s, msi_s = central_sample(lr, msi, s)
    if not (np.isfinite(lr_s).all(0) & np.isfinite(msi_s[:, ::s, ::s]).all(0)).any():
        raise CsakdError("The HSI and MSI have no pixel valid in both (all nodata where they overlap): nothing "
                         "to fuse. Check the nodata values and that both images show the same place.")
    p = parse_psf(psf, s)
    info: dict[str, Any] = {}
    given_spectral = spectral is not None
    if p == "auto":
        p, info = estimate_psf(lr_s, msi_s, s)
        psf_source = "estimated"
    else:
        psf_source = "wald" if p == PSF.wald(s) else "given"
    if spectral is None:
        spectral = estimate_srf(lr_s, msi_to_lr(msi_s, p, s), prior, mode=srf)
    warnings = []
    linear = spectral.r2 is None or float(np.min(spectral.r2)) >= MIN_LINEAR_R2
    at_bound = psf_source == "estimated" and not (SIGMA_BOUNDS[0] * s * 1.01 < p.sigma < SIGMA_BOUNDS[1] * s * 0.99)
    if psf_source == "estimated" and not at_bound and linear and info["misfit_end"] >= (1 - MIN_PSF_GAIN) * info[
            "misfit_wald"]:  # the data do not tell the estimate from the Wald PSF: keep the standard model
        info["psf_not_significant"] = p.summary(s)
        p, psf_source = PSF.wald(s), "wald (estimate not significantly better)"
        spectral = estimate_srf(lr_s, msi_to_lr(msi_s, p, s), prior, mode=srf) if not given_spectral else spectral
    elif psf_source == "estimated" and (at_bound or not linear or max(abs(p.dx), abs(p.dy)) > 1.0):
        warnings.append(f"The PSF estimate (sigma {p.sigma:.2f} HR px, shift {p.dx:+.2f}, {p.dy:+.2f} LR px) is "
                        "unreliable" + ("" if linear else " (the MSI is not a linear view of the HSI)") +
                        ": the Wald PSF (sigma = s/2, no shift) is used instead.")
        info["psf_rejected"] = p.summary(s)
        p, psf_source = PSF.wald(s), "wald (estimate rejected)"
        spectral = estimate_srf(lr_s, msi_to_lr(msi_s, p, s), prior, mode=srf) if not given_spectral else spectral
        linear = spectral.r2 is None or float(np.min(spectral.r2)) >= MIN_LINEAR_R2
    if not linear:
        warnings.append(f"The MSI is not a linear view of the HSI (SRF fit R^2 down to {np.min(spectral.r2):.2f} < "
                        f"{MIN_LINEAR_R2}): consistency with the MSI is not enforced by 'auto'.")
    info["msi_linear"] = bool(linear)
    if warnings:
        info["warnings"] = warnings
    wl = None if wavelengths is None else np.asarray(wavelengths, np.float64)
    return ObservationModel(s, p, spectral, psf_source, wl, info)


def msi_to_lr(msi: np.ndarray, psf: PSF, s: int) -> np.ndarray:
    """The MSI degraded to LR by ``psf``; NaN where any HR pixel it reads is nodata."""
    ok = np.isfinite(msi).all(0)
    m_lr = degrade(msi if ok.all() else np.nan_to_num(fill_nan_nearest(msi)), psf, s)
    m_lr[:, ~(degrade(ok.astype(np.float32), psf, s) > 0.999)] = np.nan
    return m_lr


__all__ = ["PSF", "ObservationModel", "SpectralModel", "check_pair", "degrade", "degrade_adjoint",
           "degrade_pinv", "check_msi_wavelengths", "estimate_observation", "msi_to_lr", "parse_srf", "estimate_psf", "estimate_srf", "gram_inverse", "parse_psf",
           "pinv_margin_lr", "sensor_prior"]

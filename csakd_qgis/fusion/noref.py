"""Quality of a fused HR-HSI without a reference, from its two inputs (LR-HSI Y, HR-MSI M, integer scale s).

The observation model (PSF B with its centre, SRF R and offset o) is estimated from the pair itself
(:func:`fusion.observation.estimate_observation`), never from the fused image X. Then:

- spectral consistency: D X (X blurred by the estimated PSF and decimated by s) against Y: PSNR, SAM, ERGAS
  and the relative RMS residual;
- spatial consistency: R X + o against M: PSNR, SAM, ERGAS and the relative RMS residual;
- HQNR = (1 - D_lambda)(1 - D_s), the hybrid QNR of Aiazzi et al. (2014) used in the hyperspectral
  pansharpening reviews: D_lambda is Khan's consistency-based spectral distortion, 1 - Q(D X, Y), with the
  band-averaged Q index (UIQI) standing in for Q2^n (a 2^n-dimensional hypercomplex index is impractical for
  hundreds of bands); D_s is the QNR spatial distortion mean |Q(X_i, M_j) - Q(Y_i, D M_j)| (q = 1), averaged
  over HSI bands i and, the detail image being an MSI instead of a PAN, over MSI bands j; D M_j is the MSI
  degraded to the LR grid by the estimated PSF. Q is computed on non-overlapping blocks of ``block_lr`` LR px
  (``block_lr`` s HR px at full resolution: the same ground per block at both scales) and averaged over blocks.
- the reduced-resolution (Wald) score: Y and M degraded once more by s and fused with the same method, the
  result compared with Y (PSNR, SAM, ERGAS); the user's own check of the method on their pair.

Everything runs on a bounded central sample of the pair (the package reads rasters by windows), and a border of
the PSF's reach is left out, where D X depends on how the image is extended. :func:`consistency_residuals` is
the cheap version (two residuals) a fusion run puts in its summary; :func:`evaluate_noref_rasters` is what
``csakd evaluate`` / ``csakd:evaluate`` call without a reference.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.observation import PSF, ObservationModel, degrade, estimate_observation, msi_to_lr
from csakd_qgis.quality.metrics import ergas, psnr, sam, sam_map

log = logging.getLogger("csakd")

EVAL_SAMPLE_LR = 96  # the no-reference indexes use a central window of at most this many LR px a side
RESIDUAL_SAMPLE_LR = 64  # consistency_residuals (every fusion run): a smaller window
BLOCK_LR = 8  # Q blocks, in LR px (8 s HR px at full resolution)
MIN_REDUCED_LR = 8  # the reduced-resolution check needs at least this many LR px a side after the second degradation
FuseFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


# ------------------------------------------------------------------------------------------- Q on blocks
def _blocks(x: np.ndarray, k: int) -> np.ndarray:
    """(C, H, W) -> (C, n_blocks, k*k) float64 over the whole k x k blocks from the top-left corner."""
    c, h, w = x.shape
    hb, wb = h // k, w // k
    x = np.asarray(x[:, : hb * k, : wb * k], np.float64)
    return x.reshape(c, hb, k, wb, k).transpose(0, 1, 3, 2, 4).reshape(c, hb * wb, k * k)


def _q_from_moments(ma, mb, va, vb, cov) -> np.ndarray:
    """Wang & Bovik's Q from block moments (broadcast); flat blocks get the luminance term (both flat: 1)."""
    msum = ma ** 2 + mb ** 2
    vsum = va + vb
    flat = np.abs(vsum) <= 1e-12 * np.maximum(np.abs(msum), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(flat, np.where(msum > 0, 2 * ma * mb / msum, 1.0), 4 * cov * ma * mb / (vsum * msum))
    return np.where(np.isfinite(q), q, np.nan)


def _block_valid(valid: np.ndarray, k: int) -> np.ndarray:
    """(n_blocks,) True where every pixel of the block is valid."""
    return _blocks(valid[None].astype(np.float64), k)[0].min(axis=1) > 0.5


def q_blocks_paired(a: np.ndarray, b: np.ndarray, k: int, valid: np.ndarray | None = None) -> np.ndarray:
    """(C,) band-wise Q of ``a`` vs ``b`` ((C, H, W) each) averaged over the valid k x k blocks."""
    ba, bb = _blocks(a, k), _blocks(b, k)
    keep = np.isfinite(ba).all(axis=(0, 2)) & np.isfinite(bb).all(axis=(0, 2))
    if valid is not None:
        keep &= _block_valid(valid, k)
    if not keep.any():
        raise CsakdError(f"No {k} x {k} px block of the images is valid everywhere: the sample is too small or "
                         "mostly nodata for the Q index.")
    ba, bb = ba[:, keep], bb[:, keep]
    ma, mb = ba.mean(-1), bb.mean(-1)
    cov = (ba * bb).mean(-1) - ma * mb
    q = _q_from_moments(ma, mb, ba.var(-1), bb.var(-1), cov)
    return np.nanmean(q, axis=1)


def q_blocks_cross(a: np.ndarray, b: np.ndarray, k: int, keep: np.ndarray) -> np.ndarray:
    """(C_a, C_b) Q of every band of ``a`` against every band of ``b`` on the k x k blocks marked by ``keep``."""
    ba, bb = _blocks(a, k)[:, keep], _blocks(b, k)[:, keep]
    p = ba.shape[-1]
    ma, mb = ba.mean(-1), bb.mean(-1)
    va, vb = ba.var(-1), bb.var(-1)
    # (n, C_a, p) @ (n, p, C_b): all band-pair covariances per block by batched matrix products
    cov = np.matmul(ba.transpose(1, 0, 2), bb.transpose(1, 2, 0)).transpose(1, 2, 0) / p - ma[:, None] * mb[None]
    q = _q_from_moments(ma[:, None], mb[None], va[:, None], vb[None], cov)
    return np.nanmean(q, axis=-1)


# ------------------------------------------------------------------------------------------- the indexes
@dataclass
class _Prepared:
    x: np.ndarray  # fused (C_h, H, W), interior
    lr: np.ndarray  # LR-HSI (C_h, h, w), interior
    msi: np.ndarray  # HR-MSI (C_m, H, W), interior
    y_hat: np.ndarray  # D X, interior
    m_hat: np.ndarray  # R X + o, interior
    m_lr: np.ndarray  # D M (MSI on the LR grid), interior
    border_lr: int


def _check_arrays(fused: np.ndarray, lr: np.ndarray, msi: np.ndarray, s: int) -> tuple[np.ndarray, ...]:
    x, y, m = (np.asarray(a, np.float32) for a in (fused, lr, msi))
    if x.ndim != 3 or y.ndim != 3 or m.ndim != 3:
        raise CsakdError(f"The fused image {x.shape}, LR-HSI {y.shape} and HR-MSI {m.shape} must be (bands, rows, "
                         "cols) arrays.")
    h, w = y.shape[1] * s, y.shape[2] * s
    if x.shape[0] != y.shape[0]:
        raise CsakdError(f"The fused image has {x.shape[0]} bands but the LR-HSI {y.shape[0]}: give the fused "
                         "image of this LR-HSI.")
    if x.shape[1] < h or x.shape[2] < w or m.shape[1] < h or m.shape[2] < w:
        raise CsakdError(f"The fused image {x.shape[1:]} and the HR-MSI {m.shape[1:]} do not cover the LR-HSI "
                         f"{y.shape[1:]} at scale {s}.")
    return x[:, :h, :w], y, m[:, :h, :w]


def _prepare(fused, lr, msi, obs: ObservationModel) -> _Prepared:
    s = obs.scale
    x, y, m = _check_arrays(fused, lr, msi, s)
    y_hat = degrade(np.nan_to_num(x), obs.psf, s)
    y_hat[:, ~(degrade(np.isfinite(x).all(0).astype(np.float32), obs.psf, s) > 0.999)] = np.nan
    m_hat = obs.spectral.apply(x)
    m_lr = msi_to_lr(m, obs.psf, s)
    b = obs.psf.margin_lr(s)
    if min(y.shape[1:]) - 2 * b < BLOCK_LR:
        b = max(0, (min(y.shape[1:]) - BLOCK_LR) // 2)
    lo, hi = (b, -b) if b else (0, None)
    lh, hh = (b * s, -b * s) if b else (0, None)
    return _Prepared(x[:, lh:hh, lh:hh], y[:, lo:hi, lo:hi], m[:, lh:hh, lh:hh], y_hat[:, lo:hi, lo:hi],
                     m_hat[:, lh:hh, lh:hh], m_lr[:, lo:hi, lo:hi], b)


def _rel_rms(ref: np.ndarray, est: np.ndarray) -> float:
    ok = np.isfinite(ref) & np.isfinite(est)
    den = float(np.mean(ref[ok].astype(np.float64) ** 2)) if ok.any() else 0.0
    return float(np.sqrt(np.mean((est[ok].astype(np.float64) - ref[ok]) ** 2) / den)) if den > 0 else float("nan")


def _scores(ref: np.ndarray, est: np.ndarray, s: int) -> dict[str, float]:
    out = {"psnr": psnr(ref, est), "ergas": ergas(ref, est, s), "rel_rmse": _rel_rms(ref, est)}
    out["sam"] = sam(ref, est) if ref.shape[0] > 1 else float("nan")
    return out


def d_lambda(p: _Prepared, block_lr: int = BLOCK_LR) -> float:
    """Khan's consistency-based spectral distortion 1 - mean_b Q(D X_b, Y_b) (Q on LR blocks)."""
    k = min(block_lr, *p.lr.shape[1:])
    return float(1.0 - np.nanmean(q_blocks_paired(p.y_hat, p.lr, k)))


def d_s(p: _Prepared, scale: int, block_lr: int = BLOCK_LR) -> float:
    """QNR spatial distortion mean_{i,j} |Q(X_i, M_j) - Q(Y_i, D M_j)| on co-located blocks (q = 1)."""
    k = min(block_lr, *p.lr.shape[1:])
    # the interiors are cut on whole LR px, so LR block n and HR block n cover the same ground
    keep = (np.isfinite(_blocks(p.lr, k)).all(axis=(0, 2)) & np.isfinite(_blocks(p.m_lr, k)).all(axis=(0, 2))
            & np.isfinite(_blocks(p.x, k * scale)).all(axis=(0, 2))
            & np.isfinite(_blocks(p.msi, k * scale)).all(axis=(0, 2)))
    if not keep.any():
        raise CsakdError("No block of the sample is valid in the fused image, the LR-HSI and the MSI: too little "
                         "overlap or too much nodata to compute D_s.")
    q_hr = q_blocks_cross(p.x, p.msi, k * scale, keep)
    q_lr = q_blocks_cross(p.lr, p.m_lr, k, keep)
    return float(np.nanmean(np.abs(q_hr - q_lr)))


def noref_indexes(fused: np.ndarray, lr: np.ndarray, msi: np.ndarray, scale: int,
                  obs: ObservationModel | None = None, block_lr: int = BLOCK_LR, maps: bool = False
                  ) -> dict[str, Any]:
    """Spectral and spatial consistency, D_lambda, D_s and HQNR of ``fused`` (C_h, s*h, s*w) from its inputs.

    ``obs``: the pair's observation model (estimated from ``lr`` and ``msi`` when None). With ``maps`` the
    result also holds the per-pixel residual maps (key "maps": spectral SAM of D X vs Y on the LR grid,
    spatial relative error |R X + o - M| / |M| on the HR grid) for the report.
    """
    s = int(scale)
    if obs is None:
        obs = estimate_observation(lr, msi, s)
    p = _prepare(fused, lr, msi, obs)
    dl = d_lambda(p, block_lr)
    ds = d_s(p, s, block_lr)
    out: dict[str, Any] = {
        "spectral": _scores(p.lr, p.y_hat, s), "spatial": _scores(p.msi, p.m_hat, s),
        "d_lambda": dl, "d_s": ds, "hqnr": (1.0 - dl) * (1.0 - ds),
        "border_lr_px": p.border_lr, "block_lr_px": int(min(block_lr, *p.lr.shape[1:])),
        "observation": {k: v for k, v in obs.summary().items() if k not in ("warnings",)},
    }
    if obs.info.get("warnings"):
        out["warnings"] = list(obs.info["warnings"])
    if maps:
        num = np.sqrt(np.nansum((p.m_hat - p.msi) ** 2, axis=0))
        den = np.sqrt(np.nansum(p.msi ** 2, axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            spatial = np.where(den > 0, num / den, np.nan)
        spatial[~(np.isfinite(p.m_hat).all(0) & np.isfinite(p.msi).all(0))] = np.nan
        out["maps"] = {"spectral_sam_deg": sam_map(p.lr, p.y_hat), "spatial_rel_error": spatial}
    return out


def reduced_pair(lr: np.ndarray, msi: np.ndarray, obs: ObservationModel) -> tuple[np.ndarray, np.ndarray]:
    """(Y degraded by the PSF's width, M degraded by the estimated PSF): the pair one scale down, co-registered.

    D M carries the estimated shift, so it lies in Y's geometry; Y is then blurred by the same width without a
    shift, so the reduced pair is aligned as the fusion assumes (the PSF width in units of s is kept).
    """
    s = obs.scale
    y = np.asarray(lr, np.float32)
    h, w = (y.shape[1] // s) * s, (y.shape[2] // s) * s
    y = y[:, :h, :w]
    m_lr = msi_to_lr(np.asarray(msi, np.float32)[:, : h * s, : w * s], obs.psf, s)
    y_lr = degrade(np.nan_to_num(y), PSF(obs.psf.sigma), s)
    y_lr[:, ~(degrade(np.isfinite(y).all(0).astype(np.float32), PSF(obs.psf.sigma), s) > 0.999)] = np.nan
    return y_lr, m_lr


def reduced_resolution_score(lr: np.ndarray, msi: np.ndarray, obs: ObservationModel, fuse_fn: FuseFn
                             ) -> dict[str, float]:
    """Wald check on the user's pair: fuse the pair degraded by s (:func:`reduced_pair`) with ``fuse_fn``
    (lr, msi, s) -> HR estimate, and score it against the LR-HSI (PSNR, SAM, ERGAS; border left out)."""
    s = obs.scale
    y_lr, m_lr = reduced_pair(lr, msi, obs)
    if min(y_lr.shape[1:]) < MIN_REDUCED_LR:
        raise CsakdError(f"The pair is too small for the reduced-resolution check: {y_lr.shape[1]} x "
                         f"{y_lr.shape[2]} LR px after a second degradation by {s} (at least {MIN_REDUCED_LR} "
                         "needed).")
    est = np.asarray(fuse_fn(y_lr, m_lr, s), np.float32)
    ref = np.asarray(lr, np.float32)[:, : est.shape[1], : est.shape[2]]
    b = obs.psf.margin_lr(s) * s if min(est.shape[1:]) > 4 * obs.psf.margin_lr(s) * s else 0
    if b:
        ref, est = ref[:, b:-b, b:-b], est[:, b:-b, b:-b]
    return {"psnr": psnr(ref, est), "sam": sam(ref, est), "ergas": ergas(ref, est, s),
            "lr_px": [int(y_lr.shape[1]), int(y_lr.shape[2])]}


def consistency_of_arrays(fused: np.ndarray, lr: np.ndarray, msi: np.ndarray, obs: ObservationModel
                          ) -> dict[str, float]:
    """The two consistency residuals (relative RMS and PSNR) of ``fused`` against its inputs, interior only."""
    p = _prepare(fused, lr, msi, obs)
    sp, sa = _scores(p.lr, p.y_hat, obs.scale), _scores(p.msi, p.m_hat, obs.scale)
    return {"spectral_rel_rmse": sp["rel_rmse"], "spectral_psnr": sp["psnr"],
            "spatial_rel_rmse": sa["rel_rmse"], "spatial_psnr": sa["psnr"]}


# ------------------------------------------------------------------------------------------- rasters
def _fused_on_grid(fused_path: str | os.PathLike, grid, win_lr: tuple[int, int, int, int]) -> np.ndarray:
    """The fused raster's HSI bands (paired with ``grid.hsi_bands`` by wavelength or position) read on the HR
    window of the LR window ``win_lr``; one-line CsakdError when it is not on the MSI grid or misses it."""
    from rasterio.windows import Window

    from csakd_qgis.quality.report import _grid_offset, _match_bands
    from csakd_qgis.raster.io import read_meta, read_reflectance

    fmeta = read_meta(fused_path, "fused HSI")
    if fmeta.crs is not None and grid.crs is not None and fmeta.crs != grid.crs:
        raise CsakdError(f"The fused raster '{fused_path}' is in {fmeta.crs} but the HR-MSI in {grid.crs}: the fused "
                         "image must lie on the MSI grid (as csakd fuse writes it); evaluate the fused output itself.")
    if (fmeta.crs is None) != (grid.crs is None):
        raise CsakdError(f"The fused raster '{fused_path}' and the HR-MSI must both have a CRS or neither: give the "
                         "fused output of csakd fuse (on the MSI grid).")
    r_off, c_off = _grid_offset(fmeta.transform, grid.hr_transform)  # fused origin on the grid, HR px
    s = grid.scale
    r, c, h, w = win_lr
    rows = (r * s - r_off, r * s - r_off + h * s)
    cols = (c * s - c_off, c * s - c_off + w * s)
    if rows[1] <= 0 or cols[1] <= 0 or rows[0] >= fmeta.height or cols[0] >= fmeta.width:
        raise CsakdError(f"The fused raster '{fused_path}' does not overlap the centre of the HSI/MSI overlap: give "
                         "the fused image of these inputs.")
    wl = list(grid.hsi.wavelengths)
    ref_b, fused_b = _match_bands(wl, list(grid.hsi_bands), fmeta, "fused raster")
    order = {b: k for k, b in enumerate(grid.hsi_bands)}
    if sorted(ref_b) != sorted(grid.hsi_bands):
        raise CsakdError(f"The fused raster '{fused_path}' lacks some of the HSI's {len(grid.hsi_bands)} usable "
                         "bands: give the fused image of this HSI.")
    fused_b = [fb for _, fb in sorted(zip(ref_b, fused_b, strict=True), key=lambda t: order[t[0]])]
    win = Window(cols[0], rows[0], w * s, h * s)
    return read_reflectance(fused_path, window=win, bands=fused_b, boundless=True)


def read_triplet(fused_path: str | os.PathLike, hsi_path: str | os.PathLike, msi_path: str | os.PathLike,
                 max_lr: int = EVAL_SAMPLE_LR, grid=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """(fused, LR-HSI, HR-MSI, grid) on a central window of at most ``max_lr`` LR px of the pair's common grid."""
    from csakd_qgis.raster.coreg import plan_grid

    grid = plan_grid(hsi_path, msi_path) if grid is None else grid
    win = grid.central_window_lr(max_lr)
    s = grid.scale
    with contextlib.nullcontext() if grid.is_open else grid:  # a grid the caller holds open stays open
        lr, msi = grid.read_tile(win[0] * s, win[1] * s, win[2] * s, win[3] * s)
    x = _fused_on_grid(fused_path, grid, win)
    valid = np.isfinite(x).all(0) & np.isfinite(msi).all(0)
    if not valid.any():
        raise CsakdError(f"The fused raster '{fused_path}' has no valid pixel where the HSI and the MSI overlap: give "
                         "the fused image of these inputs.")
    return x, lr, msi, grid


def consistency_residuals(grid, fused_path: str | os.PathLike, obs: ObservationModel | None = None,
                          max_lr: int = RESIDUAL_SAMPLE_LR) -> dict[str, Any]:
    """The two consistency residuals of a fused raster, for a fusion run's summary (bounded, ~1 s).

    ``grid``: the run's :class:`raster.coreg.FusionGrid` (as the HSI was read for the fusion, shift correction
    included); ``fused_path``: the written output; ``obs``: the run's observation model if it has one (else
    estimated on the sample). Returns ``spectral_rel_rmse`` = ||D X - Y|| / ||Y||, ``spatial_rel_rmse`` =
    ||R X + o - M|| / ||M||, their PSNRs (dB), the sample size and the PSF used.
    """
    x, lr, msi, grid = read_triplet(fused_path, grid.hsi.path, grid.msi.path, max_lr, grid=grid)
    if obs is None:
        obs = estimate_observation(lr, msi, grid.scale)
    out: dict[str, Any] = consistency_of_arrays(x, lr, msi, obs)
    out.update(sample_lr_px=[int(lr.shape[1]), int(lr.shape[2])], psf=obs.psf.summary(grid.scale))
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}


def fused_method(fused_path: str | os.PathLike) -> str | None:
    """The method a csakd-fused raster was made with (its CSAKD_FUSION tag; 'auto (x)' gives x), or None."""
    import rasterio

    try:
        with rasterio.open(str(fused_path)) as ds:
            tag = json.loads(ds.tags().get("CSAKD_FUSION", "{}") or "{}")
    except (ValueError, rasterio.errors.RasterioIOError):
        return None
    name = str(tag.get("model") or "").strip()
    if name.startswith("auto (") and name.endswith(")"):
        name = name[6:-1]
    return name or None


def raster_fuse_fn(hsi_meta, msi_meta, hsi_bands: Sequence[int], method: str, work_dir: str | os.PathLike
                   ) -> FuseFn:
    """A ``fuse_fn`` running the package's fusion (:func:`fusion.fuse.fuse`) with ``method`` on small GeoTIFFs
    of the reduced pair written in ``work_dir`` (wavelengths and FWHM of the inputs kept)."""
    from affine import Affine

    from csakd_qgis.raster.io import read_reflectance, write_raster

    def run(y: np.ndarray, m: np.ndarray, s: int) -> np.ndarray:
        from csakd_qgis.fusion.fuse import fuse

        px = 10.0
        hr_tr = Affine(px, 0.0, 500000.0, 0.0, -px, 4000000.0)
        lr_tr = hr_tr * Affine.scale(s, s)
        crs = msi_meta.crs if msi_meta.crs is not None else "EPSG:32633"
        d = Path(work_dir)
        wl = [hsi_meta.wavelengths[i] for i in hsi_bands]
        fw = [hsi_meta.fwhm[i] for i in hsi_bands]
        write_raster(d / "reduced_hsi.tif", y, crs, lr_tr, wavelengths=wl if all(v is not None for v in wl) else None,
                     fwhm=fw if all(v is not None for v in fw) else None)
        mwl = list(msi_meta.wavelengths or [])
        write_raster(d / "reduced_msi.tif", m, crs, hr_tr,
                     wavelengths=mwl if mwl and all(v is not None for v in mwl) else None)
        fuse(d / "reduced_hsi.tif", d / "reduced_msi.tif", d / "reduced_fused.tif", model=method)
        return read_reflectance(d / "reduced_fused.tif")

    return run


def noref_evaluation(fused: str | os.PathLike, hsi: str | os.PathLike, msi: str | os.PathLike,
                     scale: int | None = None, method: str | None = None, maps: bool = False,
                     max_lr: int = EVAL_SAMPLE_LR) -> tuple[dict, dict | None]:
    """(result, residual maps or None) of the no-reference evaluation of a fused raster from its LR-HSI and HR-MSI.

    ``scale``: checked against the pair's pixel-size ratio (None: that ratio). ``method``: the fusion method for
    the reduced-resolution check (None: the one in the fused raster's tags; skipped, with a note, if unknown).
    The result holds the spectral / spatial consistency, d_lambda, d_s, hqnr and reduced_resolution.
    """
    x, lr, m, grid = read_triplet(fused, hsi, msi, max_lr)
    s = grid.scale
    if scale is not None and int(scale) != s:
        raise CsakdError(f"The scale {scale} differs from the HSI/MSI pixel-size ratio {s} of the inputs: give "
                         f"scale {s} (or check that the inputs are the ones fused).")
    wl = [grid.hsi.wavelengths[i] for i in grid.hsi_bands]
    obs = estimate_observation(lr, m, s, wavelengths=wl if all(v is not None for v in wl) else None)
    res = noref_indexes(x, lr, m, s, obs, maps=maps)
    res_maps = res.pop("maps", None)
    used = method or fused_method(fused)
    result: dict[str, Any] = {"mode": "no reference", "fused": str(fused), "hsi": str(hsi), "msi": str(msi),
                              "scale": s, "sample_lr_px": [int(lr.shape[1]), int(lr.shape[2])], **res}
    if used:
        try:
            with tempfile.TemporaryDirectory(prefix=".csakd-reduced-") as tmp:
                fn = raster_fuse_fn(grid.hsi, grid.msi, grid.hsi_bands, used, tmp)
                result["reduced_resolution"] = {"method": used, **reduced_resolution_score(lr, m, obs, fn)}
        except CsakdError as exc:
            result["reduced_resolution"] = {"method": used, "skipped": str(exc)}
    else:
        result["reduced_resolution"] = {"skipped": "the fusion method is unknown (not in the fused raster's tags): "
                                                   "give it (--method / METHOD) for the reduced-resolution check"}
    return result, res_maps


def evaluate_noref_rasters(fused: str | os.PathLike, hsi: str | os.PathLike, msi: str | os.PathLike,
                           scale: int | None = None, method: str | None = None,
                           json_path: str | os.PathLike | None = None,
                           report_path: str | os.PathLike | None = None, max_lr: int = EVAL_SAMPLE_LR) -> dict:
    """:func:`noref_evaluation` written as the metrics JSON and the HTML report (both or neither); returns the result."""
    from csakd_qgis.quality.report import build_noref_report, json_bytes
    from csakd_qgis.raster.io import check_writable_folder, write_files_atomic

    for p, role in ((json_path, "metrics JSON"), (report_path, "HTML report")):
        if p is not None:
            check_writable_folder(Path(str(p)), role)
    result, maps = noref_evaluation(fused, hsi, msi, scale, method, maps=report_path is not None, max_lr=max_lr)
    files = [] if json_path is None else [(json_path, "metrics JSON", json_bytes(result))]
    if report_path is not None:
        doc = build_noref_report(result, maps, None, title=f"csakd evaluation without reference: "
                                                             f"{Path(str(fused)).name}")
        files.append((report_path, "HTML report", doc.encode("utf-8")))
    write_files_atomic(files)
    return result


__all__ = ["BLOCK_LR", "consistency_of_arrays", "consistency_residuals", "d_lambda", "d_s",
           "evaluate_noref_rasters", "fused_method", "noref_evaluation", "noref_indexes", "q_blocks_cross", "q_blocks_paired",
           "read_triplet", "reduced_pair", "reduced_resolution_score"]

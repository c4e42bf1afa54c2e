"""Evaluation of a fused HR-HSI against a reference: metrics JSON and a self-contained HTML report.

:func:`evaluate_rasters` is what ``csakd evaluate`` (and a Processing algorithm) calls: it aligns the fused
raster and the reference on the reference grid (same pixel size, integer pixel offset), matches bands by
wavelength, computes the quality metrics for the fused image and for the bicubic baseline, and writes the
JSON and the report. :func:`build_report` makes the HTML (matplotlib Agg figures embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.quality.metrics import compute_metrics, psnr_per_band, sam_map
from csakd_qgis.raster.io import (
    check_writable_folder,
    read_meta,
    read_reflectance,
    write_bytes_atomic,
    write_files_atomic,
)
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.spectral.degrade import check_scale, crop_to_multiple, wald_degrade

_METRIC_KEYS = ("psnr", "sam", "ergas", "rmse", "ssim", "uiqi")


def json_safe(obj: Any, non_finite: str = "string") -> Any:
    """Recursively convert numpy types for strict JSON; non-finite floats become 'inf'/'-inf'/'nan' strings
    (``non_finite="string"``, metrics files) or null (``"null"``, model cards)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v, non_finite) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [json_safe(v, non_finite) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        if non_finite == "null":
            return None
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def json_bytes(data: dict) -> bytes:
    """``data`` as strict JSON text (non-finite numbers as strings)."""
    return json.dumps(json_safe(data), indent=2, allow_nan=False).encode("utf-8")


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as strict JSON (non-finite numbers as strings), atomically."""
    return write_bytes_atomic(path, json_bytes(data), role="metrics JSON")


def _png(fig) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


TRUE_COLOUR_NM = (640.0, 550.0, 460.0)  # red, green, blue display wavelengths (the quick-looks and QGIS styles)


def rgb_bands(wavelengths: Sequence[float | None] | None, n_bands: int,
              targets: Sequence[float] = TRUE_COLOUR_NM, good: Sequence[int] | None = None) -> list[int]:
    """0-based indices of the bands nearest each target wavelength (nm), true colour by default.

    Only ``good`` bands (e.g. not flagged bbl = 0) are candidates; without wavelengths, spread bands stand in.
    """
    cand = [i for i in (range(n_bands) if good is None else good) if 0 <= i < n_bands] or list(range(n_bands))
    if wavelengths is None or len(wavelengths) != n_bands or any(wavelengths[i] is None for i in cand):
        spread = (0.6, 0.35, 0.1) if len(targets) == 3 else np.linspace(0.0, 1.0, len(targets) + 2)[1:-1]
        return [cand[min(len(cand) - 1, int(len(cand) * f))] for f in spread]
    wl = np.asarray([wavelengths[i] for i in cand], np.float64)
    return [cand[int(np.argmin(np.abs(wl - t)))] for t in targets]


def _breaks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where the wavelength goes backwards (overlapping VNIR/SWIR detectors), to split the line."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cut = np.nonzero(np.diff(x) < 0)[0] + 1
    return np.insert(x, cut, np.nan), np.insert(y, cut, np.nan)


def _stretch(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = (img - lo[:, None, None]) / np.where(hi > lo, hi - lo, 1.0)[:, None, None]
    out = np.clip(np.nan_to_num(out, nan=0.0), 0, 1)
    return np.moveaxis(out, 0, -1)


def _page_head(title: str) -> str:
    """The start of a self-contained report page: doctype, title, style and the heading."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>"""


def build_report(ref: np.ndarray, fused: np.ndarray, out_html: str | os.PathLike | None,
                 wavelengths: Sequence[float] | None = None, bicubic: np.ndarray | None = None,
                 scale: float = 1.0, metrics: dict | None = None, metrics_bicubic: dict | None = None,
                 title: str = "csakd evaluation", info: dict | None = None, n_spectra: int = 4) -> Path | str:
    """Write a self-contained HTML report comparing ``fused`` (and ``bicubic``) with ``ref`` ((C, H, W)).

    ``out_html=None`` returns the document instead of writing it.

    Figures: per-band PSNR vs wavelength, SAM maps, per-pixel RMSE maps, RGB quick-looks (same stretch for
    all), and spectra at a few pixels (worst, median and best SAM of the fused image, and the centre).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ref = np.asarray(ref, np.float32)
    fused = np.asarray(fused, np.float32)
    c = ref.shape[0]
    wl = np.asarray(wavelengths, np.float64) if wavelengths is not None else np.arange(1, c + 1, dtype=float)
    xlabel = "wavelength (nm)" if wavelengths is not None else "band"
    metrics = metrics or compute_metrics(ref, fused, scale)
    if bicubic is not None and metrics_bicubic is None:
        metrics_bicubic = compute_metrics(ref, bicubic, scale)
    estimates = [("fused", fused)] + ([("bicubic", bicubic)] if bicubic is not None else [])
    figs: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name, est in estimates:
        pb = np.asarray(psnr_per_band(ref, est), np.float64)
        ax.plot(*_breaks(wl, np.minimum(pb, 100.0)), ".-", ms=3, lw=1, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Per-band PSNR (peak = reference band max; capped at 100 dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    figs.append(("Per-band PSNR", _png(fig)))

    sams = {name: sam_map(ref, est) for name, est in estimates}
    err = {name: np.sqrt(np.nanmean((est - ref) ** 2, axis=0)) for name, est in estimates}
    for label, maps, cmap, unit in (("Spectral angle (SAM) map", sams, "magma", "degrees"),
                                    ("Per-pixel RMSE map", err, "viridis", "reflectance")):
        vmax = float(np.nanpercentile(np.concatenate([m[np.isfinite(m)] for m in maps.values()]), 99)) \
            if any(np.isfinite(m).any() for m in maps.values()) else 1.0
        fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.6), squeeze=False)
        for a, (name, m) in zip(axes[0], maps.items(), strict=True):
            im = a.imshow(m, cmap=cmap, vmin=0, vmax=vmax or 1.0)
            a.set_title(f"{name}: mean {np.nanmean(m):.4g}")
            a.axis("off")
            fig.colorbar(im, ax=a, fraction=0.046, label=unit)
        figs.append((label, _png(fig)))

    rgb = rgb_bands(None if wavelengths is None else list(wl), c)
    vals = ref[rgb].reshape(3, -1)
    lo = np.array([np.nanpercentile(v, 2) if np.isfinite(v).any() else 0.0 for v in vals])
    hi = np.array([np.nanpercentile(v, 98) if np.isfinite(v).any() else 1.0 for v in vals])
    panels = [("reference", ref)] + estimates
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for a, (name, img) in zip(axes[0], panels, strict=True):
        a.imshow(_stretch(img[rgb], lo, hi), interpolation="nearest")
        a.set_title(name)
        a.axis("off")
    band_txt = ", ".join(f"{wl[i]:.0f}" for i in rgb)
    figs.append((f"Quick-looks (R, G, B = {band_txt}{' nm' if wavelengths is not None else ''}; "
                 "2-98% stretch of the reference)", _png(fig)))

    sm = sams["fused"]
    pts: list[tuple[str, tuple[int, int]]] = []
    if np.isfinite(sm).any():
        flat = np.where(np.isfinite(sm), sm, np.nan).ravel()
        order = np.argsort(np.where(np.isfinite(flat), flat, np.inf))
        n_ok = int(np.isfinite(flat).sum())
        for name, k in (("worst SAM", order[n_ok - 1]), ("median SAM", order[n_ok // 2]), ("best SAM", order[0])):
            pts.append((name, tuple(int(v) for v in np.unravel_index(k, sm.shape))))
    pts.append(("centre", (ref.shape[1] // 2, ref.shape[2] // 2)))
    pts = pts[:n_spectra]
    fig, axes = plt.subplots(1, len(pts), figsize=(4.2 * len(pts), 3.2), squeeze=False)
    for a, (name, (y, x)) in zip(axes[0], pts, strict=True):
        a.plot(*_breaks(wl, ref[:, y, x]), "k-", lw=1.5, label="reference")
        for en, est in estimates:
            a.plot(*_breaks(wl, est[:, y, x]), "-", lw=1, label=en)
        a.set_title(f"{name} (row {y}, col {x})", fontsize=9)
        a.set_xlabel(xlabel)
        a.grid(alpha=0.3)
    axes[0][0].set_ylabel("reflectance")
    axes[0][0].legend(fontsize=8)
    figs.append(("Spectra at selected pixels", _png(fig)))

    def fmt(v) -> str:
        return "inf" if isinstance(v, float) and math.isinf(v) else (f"{v:.4f}" if isinstance(v, float) else str(v))

    rows = "".join(
        f"<tr><td>{html.escape(k.upper())}</td><td>{fmt(metrics.get(k))}</td>"
        + (f"<td>{fmt(metrics_bicubic.get(k))}</td>" if metrics_bicubic else "") + "</tr>" for k in _METRIC_KEYS)
    head = "<tr><th>metric</th><th>fused</th>" + ("<th>bicubic</th>" if metrics_bicubic else "") + "</tr>"
    info_rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                        for k, v in (info or {}).items())
    body = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'/>"
                   for t, b in figs)
    doc = f"""{_page_head(title)}
<p>Generated {_dt.datetime.now().isoformat(timespec='seconds')}. Metrics on reflectance: PSNR per band
(peak = reference band max) averaged; SAM in degrees; ERGAS with scale {scale:g}; SSIM (Gaussian 11x11, sigma 1.5)
and UIQI (8x8) per band averaged.</p>
<table>{head}{rows}</table>
<h2>Inputs</h2><table>{info_rows}</table>
{body}
</body></html>
"""
    if out_html is None:
        return doc
    return write_bytes_atomic(out_html, doc.encode("utf-8"), role="HTML report")


def _grid_offset(transform, ref_transform) -> tuple[int, int]:
    """Integer (row, col) offset of ``transform``'s origin on the ``ref_transform`` grid (same pixel size)."""
    if not (math.isclose(transform.a, ref_transform.a, rel_tol=1e-6)
            and math.isclose(transform.e, ref_transform.e, rel_tol=1e-6)):
        raise CsakdError(f"The rasters have different pixel sizes ({abs(transform.a):g} vs {abs(ref_transform.a):g}): "
                         "evaluate the fused image on the reference grid.")
    if abs(transform.b) > 1e-9 or abs(transform.d) > 1e-9:
        raise CsakdError("Rotated rasters are not supported for evaluation.")
    col = (transform.c - ref_transform.c) / ref_transform.a
    row = (transform.f - ref_transform.f) / ref_transform.e
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise CsakdError(f"The fused raster is offset by a fraction of a pixel ({col:.3f}, {row:.3f} px) from the "
                         "reference grid; the comparison needs both on one grid.")
    return int(round(row)), int(round(col))


def _paste(arr: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Place ``arr`` (C, h, w) at ``offset`` on a NaN canvas of ``shape`` (rows, cols)."""
    out = np.full((arr.shape[0],) + tuple(shape), np.nan, np.float32)
    r0, c0 = offset
    r1, c1 = max(r0, 0), max(c0, 0)
    r2, c2 = min(r0 + arr.shape[1], shape[0]), min(c0 + arr.shape[2], shape[1])
    if r2 > r1 and c2 > c1:
        out[:, r1:r2, c1:c2] = arr[:, r1 - r0: r2 - r0, c1 - c0: c2 - c0]
    return out


def _match_bands(ref_wl: list, ref_idx: list[int], other_meta, role: str) -> tuple[list[int], list[int]]:
    """(reference band indices, other band indices) paired by wavelength (<= 1 nm) or by position."""
    n = other_meta.count
    if other_meta.has_wavelengths and all(ref_wl[i] is not None for i in ref_idx):
        rw = np.array([ref_wl[i] for i in ref_idx], np.float64)
        pairs_ref, pairs_other = [], []
        for j, w in enumerate(other_meta.wavelengths):
            k = int(np.argmin(np.abs(rw - w)))
            if abs(rw[k] - w) <= 1.0:
                pairs_ref.append(ref_idx[k])
                pairs_other.append(j)
        if pairs_other:
            return pairs_ref, pairs_other
        raise CsakdError(f"No band of the {role} matches a reference band by wavelength (within 1 nm).")
    if n == len(ref_idx):
        return list(ref_idx), list(range(n))
    if n == len(ref_wl):
        return list(ref_idx), list(ref_idx)
    raise CsakdError(f"The {role} has {n} bands but the reference has {len(ref_idx)} usable bands "
                     f"({len(ref_wl)} in all), and wavelengths are missing to pair them.")


def evaluate_rasters(reference: str | os.PathLike, fused: str | os.PathLike, scale: int,
                     json_path: str | os.PathLike | None = None, report_path: str | os.PathLike | None = None,
                     lr_path: str | os.PathLike | None = None,
                     no_reference: tuple[dict, dict | None] | None = None) -> dict:
    """Metrics of a fused HR-HSI raster against a reference HR-HSI raster (+ bicubic baseline); writes outputs.

    ``no_reference``: (result, maps) of :func:`fusion.noref.noref_evaluation`, added to the JSON under
    "no_reference" and to the report as its section.

    Bad (bbl = 0) and all-nodata reference bands are dropped; fused bands are paired with reference bands by
    wavelength (else by position). Both rasters must share pixel size and grid; the evaluated area is their
    overlap (pixels valid in both). The bicubic baseline comes from ``lr_path`` (the LR-HSI, s times coarser,
    same grid origin convention) or else from the reference Wald-degraded by ``scale``; its metrics use the
    pixels where it exists. Returns the JSON content (fused metrics at the top level, baseline under
    "bicubic").
    """

    s = check_scale(scale)
    for p, role in ((json_path, "metrics JSON"), (report_path, "HTML report")):
        if p is not None:
            check_writable_folder(Path(str(p)), role)
    rmeta = read_meta(reference, "reference HSI")
    fmeta = read_meta(fused, "fused HSI")
    if rmeta.crs and fmeta.crs and rmeta.crs != fmeta.crs:
        raise CsakdError(f"The fused raster ({fmeta.crs}) and the reference ({rmeta.crs}) have different CRSs.")
    good0 = rmeta.good_bands()
    ref_all = read_reflectance(reference, bands=good0)
    pos = {b: k for k, b in enumerate(good0)}
    good = [b for b in good0 if np.isfinite(ref_all[pos[b]]).any()]
    ref_bands, fused_bands = _match_bands(rmeta.wavelengths, good, fmeta, "fused raster")
    ref = ref_all[[pos[b] for b in ref_bands]]
    del ref_all
    est = read_reflectance(fused, bands=fused_bands)
    r_off, c_off = _grid_offset(fmeta.transform, rmeta.transform)
    if (r_off >= ref.shape[1] or c_off >= ref.shape[2] or r_off + est.shape[1] <= 0
            or c_off + est.shape[2] <= 0):
        raise CsakdError(f"The fused raster '{fused}' and the reference '{reference}' do not overlap (their "
                         "footprints are disjoint on the reference grid): evaluate a fused image of the reference's "
                         "area.")
    est = _paste(est, (r_off, c_off), ref.shape[1:])
    valid = np.isfinite(ref).all(0) & np.isfinite(est).all(0)
    if not valid.any():
        raise CsakdError("The fused raster and the reference overlap, but no pixel of the overlap is valid "
                         "(nodata) in both.")
    rows = np.nonzero(valid.any(1))[0]
    cols = np.nonzero(valid.any(0))[0]
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    ref_w, est_w, valid_w = ref[:, win[0], win[1]], est[:, win[0], win[1]], valid[win]

    if lr_path is not None:
        lmeta = read_meta(lr_path, "LR-HSI")
        lr_ref_bands, lr_bands = _match_bands(rmeta.wavelengths, ref_bands, lmeta, "LR-HSI")
        if lr_ref_bands != ref_bands:
            raise CsakdError("The LR-HSI does not have every evaluated band of the fused raster.")
        lr = read_reflectance(lr_path, bands=lr_bands)
        from affine import Affine

        up_tr = lmeta.transform * Affine.scale(1.0 / s, 1.0 / s)
        bic_full = _paste(upsample_bicubic(lr, s), _grid_offset(up_tr, rmeta.transform), ref.shape[1:])
        bic_source = f"bicubic upsampling of {lr_path}"
    else:
        r0, c0 = win[0].start, win[1].start
        hh, ww = (math.ceil(n / s) * s for n in ref_w.shape[1:])  # cover the window with whole LR pixels
        sub = crop_to_multiple(ref[:, r0: r0 + hh, c0: c0 + ww], s)
        bic = upsample_bicubic(wald_degrade(sub, s), s)
        bic_full = _paste(bic, (r0, c0), ref.shape[1:])
        bic_source = "bicubic upsampling of the reference Wald-degraded by the scale"
    bic_w = bic_full[:, win[0], win[1]]
    bic_valid = valid_w & np.isfinite(bic_w).all(0)

    m_fused = compute_metrics(ref_w, est_w, s, mask=valid_w)
    m_bic = compute_metrics(ref_w, bic_w, s, mask=bic_valid) if bic_valid.any() else None
    wl = [rmeta.wavelengths[i] for i in ref_bands]
    result = {k: m_fused[k] for k in (*_METRIC_KEYS, "psnr_capped", "n_pixels", "n_bands")}
    result.update(scale=s, reference=str(reference), fused=str(fused), bicubic_source=bic_source,
                  window={"row_off": int(win[0].start), "col_off": int(win[1].start),
                          "height": int(ref_w.shape[1]), "width": int(ref_w.shape[2])},
                  psnr_per_band=m_fused["psnr_per_band"], wavelengths_nm=wl)
    if m_bic is not None:
        result["bicubic"] = {k: m_bic[k] for k in (*_METRIC_KEYS, "psnr_capped", "n_pixels", "psnr_per_band")}
    if no_reference is not None:
        result["no_reference"] = no_reference[0]
    files = [] if json_path is None else [(json_path, "metrics JSON", json_bytes(result))]
    if report_path is not None:
        nanmask = ~valid_w
        show_ref, show_est, show_bic = ref_w.copy(), est_w.copy(), bic_w.copy()
        for a in (show_ref, show_est, show_bic):
            a[:, nanmask] = np.nan
        info = {"reference": reference, "fused": fused, "scale": s, "bands evaluated": len(ref_bands),
                "pixels evaluated": m_fused["n_pixels"], "baseline": bic_source}
        doc = build_report(show_ref, show_est, None, wavelengths=wl if all(w is not None for w in wl) else None,
                           bicubic=show_bic if m_bic is not None else None, scale=s, metrics=m_fused,
                           metrics_bicubic=m_bic, title=f"csakd evaluation: {Path(str(fused)).name}", info=info)
        if no_reference is not None:
            doc = doc.replace("</body>", noref_section(*no_reference) + "</body>")
        files.append((report_path, "HTML report", doc.encode("utf-8")))
    write_files_atomic(files)  # both outputs or neither
    return result


_NOREF_ROWS = (("spectral consistency: PSNR (dB) of D X vs LR-HSI", ("spectral", "psnr")),
               ("spectral consistency: SAM (deg)", ("spectral", "sam")),
               ("spectral consistency: ERGAS", ("spectral", "ergas")),
               ("spectral residual ||D X - Y|| / ||Y||", ("spectral", "rel_rmse")),
               ("spatial consistency: PSNR (dB) of SRF(X) vs MSI", ("spatial", "psnr")),
               ("spatial consistency: SAM (deg)", ("spatial", "sam")),
               ("spatial residual ||R X + o - M|| / ||M||", ("spatial", "rel_rmse")),
               ("D_lambda (1 - Q(D X, Y))", ("d_lambda",)),
               ("D_s (QNR spatial distortion)", ("d_s",)),
               ("HQNR = (1 - D_lambda)(1 - D_s)", ("hqnr",)),
               ("reduced resolution: PSNR (dB)", ("reduced_resolution", "psnr")),
               ("reduced resolution: SAM (deg)", ("reduced_resolution", "sam")),
               ("reduced resolution: ERGAS", ("reduced_resolution", "ergas")))


def noref_section(result: dict, maps: dict | None) -> str:
    """HTML fragment of a no-reference evaluation (:func:`fusion.noref.noref_indexes` results): the indexes,
    the observation model and maps of both consistency residuals."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def get(path: tuple[str, ...]):
        v: Any = result
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    def fmt(v) -> str:
        if isinstance(v, float):
            return "inf" if math.isinf(v) else f"{v:.4f}"
        return "-" if v is None else html.escape(str(v))

    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{fmt(get(path))}</td></tr>" for label, path in _NOREF_ROWS)
    body = ""
    if maps:
        panels = [("Spectral residual: SAM of D X vs the LR-HSI (LR grid)", maps["spectral_sam_deg"], "magma",
                   "degrees"),
                  ("Spatial residual: |SRF(X) - MSI| / |MSI| (HR grid)", maps["spatial_rel_error"], "viridis",
                   "relative")]
        fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2), squeeze=False)
        fig.subplots_adjust(wspace=0.45)
        for a, (label, m, cmap, unit) in zip(axes[0], panels, strict=True):
            ok = np.isfinite(m)
            vmax = float(np.nanpercentile(m[ok], 99)) if ok.any() else 1.0
            im = a.imshow(m, cmap=cmap, vmin=0, vmax=vmax or 1.0, interpolation="nearest")
            a.set_title(f"{label}\nmean {np.nanmean(m) if ok.any() else float('nan'):.4g}", fontsize=9)
            a.axis("off")
            fig.colorbar(im, ax=a, fraction=0.046, label=unit)
        body = (f"<h2>Consistency residual maps</h2><img alt='consistency residual maps' "
                f"src='data:image/png;base64,{_png(fig)}'/>")
    obs = result.get("observation", {})
    info = {"fused": result.get("fused"), "LR-HSI": result.get("hsi"), "HR-MSI": result.get("msi"),
            "scale": result.get("scale"), "sample (LR px)": result.get("sample_lr_px"),
            "PSF (estimated from the pair)": f"{obs.get('psf_source')}, sigma {obs.get('sigma_hr_px')} HR px, shift "
                                             f"({obs.get('shift_dx_lr_px')}, {obs.get('shift_dy_lr_px')}) LR px",
            "SRF fit R^2": (obs.get("srf") or {}).get("fit_r2"),
            "reduced-resolution method": get(("reduced_resolution", "method")),
            "reduced-resolution note": get(("reduced_resolution", "skipped"))}
    info_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(v)}</td></tr>" for k, v in info.items() if v is not None)
    warn = "".join(f"<p><b>Note:</b> {html.escape(w)}</p>" for w in result.get("warnings", []))
    return f"""<h2>Quality without a reference</h2>
<p>The fused image X is checked against its own inputs through the observation model estimated from the pair
(PSF blur + decimation D, SRF R and offset o). Spectral consistency compares D X with the LR-HSI Y, spatial
consistency R X + o with the HR-MSI M; both should be small. Consistency is necessary, not sufficient: a method
that projects its output onto the data scores 0 there, noise of the inputs included. HQNR combines Khan's
D_lambda and the QNR D_s (1 is ideal). The reduced-resolution check fuses the pair degraded once more by the
scale and compares the result with the LR-HSI: a full-reference score on the user's own data, one scale down.</p>
<table><tr><th>index</th><th>value</th></tr>{rows}</table>
{warn}<h3>Inputs of the no-reference evaluation</h3><table>{info_rows}</table>
{body}
"""


def build_noref_report(result: dict, maps: dict | None, out_html: str | os.PathLike | None,
                       title: str = "csakd evaluation without reference") -> Path | str:
    """Self-contained HTML of a no-reference evaluation (:func:`noref_section` in a page); ``out_html=None``
    returns the text."""
    doc = f"""{_page_head(title)}
<p>Generated {_dt.datetime.now().isoformat(timespec='seconds')}.</p>
{noref_section(result, maps)}
</body></html>
"""
    if out_html is None:
        return doc
    return write_bytes_atomic(out_html, doc.encode("utf-8"), role="HTML report")

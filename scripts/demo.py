#!/usr/bin/env python3
"""End-to-end demo (`make demo`): real Sentinel-2 MSI + synthetic EnMAP-like HSI -> fusion through qgis_process.

1. builds the inputs (scripts/demo_scene.py): hr_msi.tif = REAL Sentinel-2 B2/B3/B4/B8 of the spyndex
   sample tile; reference_hsi.tif = SYNTHETIC HR-HSI (real library spectra mixed to match that MSI);
   lr_hsi.tif = its Wald degradation by the scale;
2. fuses them headless with `scripts/qgis_process.sh --json run csakd:fuse_classical ...` and its default
   method (the best measured one, glp+cy), else METHOD=glp (``--method fuse``: csakd:fuse and its default zoo model);
3. writes quicklook.png (reference / fused / bicubic / real MSI, true colour, 2-98 % stretch of the
   reference), metrics.json (PSNR, SAM, ERGAS, ... for fused and bicubic) and report.html when
   csakd_qgis.quality.report is available; prints a summary. Exit status 1 with a message on failure.

Usage: .venv/bin/python scripts/demo.py --out demo_out [--scale 3] [--size 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from csakd_qgis.fusion.methods import DEFAULT_METHOD  # noqa: E402
from csakd_qgis.quality.report import rgb_bands  # noqa: E402

QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"


class DemoError(RuntimeError):
    """A failure with a message for the user."""


def _qgis(args: list[str], profile: str | None, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if profile:
        env["CSAKD_QGIS_PROFILE"] = profile
    try:
        return subprocess.run([str(QGIS_PROCESS), *args], capture_output=True, text=True, env=env,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise DemoError(f"cannot run {QGIS_PROCESS}: {exc}. Is QGIS installed (make setup)?") from None
    except subprocess.TimeoutExpired:
        raise DemoError(f"qgis_process {' '.join(args[:3])} did not finish within {timeout:.0f} s") from None


def list_algorithms(profile: str | None) -> set[str]:
    """Ids of the csakd algorithms that `qgis_process list` shows."""
    proc = _qgis(["list"], profile, 120)
    if proc.returncode != 0:
        raise DemoError(f"`qgis_process list` failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    algs = set()
    for line in proc.stdout.splitlines():
        tok = line.strip().split("\t")[0].strip()
        if tok.startswith("csakd:"):
            algs.add(tok)
    return algs


def run_fusion(hsi: str, msi: str, out: str, method: str, profile: str | None) -> tuple[str, float, dict]:
    """Fuse through qgis_process; returns (algorithm description, wall seconds, qgis_process results)."""
    algs = list_algorithms(profile)
    if not algs:
        raise DemoError("qgis_process lists no csakd algorithms: the plugin did not load. Run "
                        "`scripts/qgis_process.sh plugins` and check that csakd_qgis is enabled (make setup).")
    attempts: list[tuple[str, dict]] = []
    if method == "auto":  # the best measured method: fuse_classical's default (glp+cy), GLP as the fallback
        attempts.append(("csakd:fuse_classical", {}))
        attempts.append(("csakd:fuse_classical", {"METHOD": "glp"}))
    elif method == "fuse":
        attempts.append(("csakd:fuse", {}))
    else:
        attempts.append(("csakd:fuse_classical", {"METHOD": method}))
    errors = []
    for alg, extra in attempts:
        if alg not in algs:
            errors.append(f"{alg} is not available (qgis_process lists: {', '.join(sorted(algs))})")
            continue
        params = {"HSI": hsi, "MSI": msi, **extra, "OUTPUT": out}
        t0 = time.perf_counter()
        proc = _qgis(["--json", "run", alg, "--", *[f"{k}={v}" for k, v in params.items()]], profile, 600)
        wall = time.perf_counter() - t0
        if proc.returncode == 0 and Path(out).is_file():
            try:
                results = json.loads(proc.stdout).get("results", {})
            except json.JSONDecodeError:
                results = {}
            label = alg + "".join(f" {k}={v}" for k, v in extra.items())
            if alg == "csakd:fuse":
                label += " (default zoo model)"
            elif not extra:
                label += f" (default method {DEFAULT_METHOD})"
            return label, wall, results
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        print(f"WARNING: {alg} failed (exit {proc.returncode}); its stderr ends:\n"
              + "\n".join(lines[-12:]), file=sys.stderr)
        errors.append(f"{alg} failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")
    raise DemoError("fusion failed:\n  " + "\n  ".join(errors))


def _stretch(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = (img - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None]
    return np.moveaxis(np.clip(np.nan_to_num(out), 0, 1), 0, -1)


def spectrum_pixels(ref: np.ndarray, wavelengths: np.ndarray) -> list[tuple[int, int]]:
    """Two pixels for the spectrum panel: the greenest (max NDVI) and the barest (min NDVI) of the reference."""
    red, nir = rgb_bands(list(wavelengths), len(wavelengths), targets=(665.0, 835.0))
    ndvi = (ref[nir] - ref[red]) / np.maximum(ref[nir] + ref[red], 1e-6)
    ndvi = np.nan_to_num(ndvi, nan=0.0)
    return [tuple(int(v) for v in np.unravel_index(f(ndvi), ndvi.shape)) for f in (np.argmax, np.argmin)]


def write_quicklook(path: Path, ref: np.ndarray, fused: np.ndarray, bic: np.ndarray, msi: np.ndarray,
                    wavelengths, msi_names: list[str], titles: dict[str, str]) -> Path:
    """PNG: reference, fused, bicubic (true colour, bands nearest 640/550/460 nm), the real MSI (B4/B3/B2) and spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = rgb_bands(list(wavelengths), len(wavelengths))  # true colour: nearest 640/550/460 nm
    ref_rgb = ref[idx]
    # one 2-98 % stretch for all three channels (per-channel stretches distort the hues)
    lo = np.full(3, np.nanpercentile(ref_rgb, 2))
    hi = np.full(3, np.nanpercentile(ref_rgb, 98))
    panels = [(titles["reference"], _stretch(ref_rgb, lo, hi)), (titles["fused"], _stretch(fused[idx], lo, hi)),
              (titles["bicubic"], _stretch(bic[idx], lo, hi))]
    order = [msi_names.index(b) for b in ("B4", "B3", "B2") if b in msi_names]
    if len(order) == 3:
        m = msi[order]
        mlo = np.full(3, np.nanpercentile(m, 2))
        mhi = np.full(3, np.nanpercentile(m, 98))
        panels.append((titles["msi"], _stretch(m, mlo, mhi)))
    wl = np.asarray(wavelengths)
    pix = spectrum_pixels(ref, wl)
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.0 * (len(panels) + 1), 4.9),
                             gridspec_kw={"width_ratios": [1] * len(panels) + [1.25]})
    colours = ("tab:green", "tab:brown")
    for k, (ax, (title, img)) in enumerate(zip(axes[:-1], panels, strict=True)):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        if k == 0:
            for (r, c), col in zip(pix, colours, strict=True):
                ax.plot(c, r, "o", mfc="none", mec=col, ms=9, mew=2)
    ax = axes[-1]
    for (r, c), col in zip(pix, colours, strict=True):
        ax.plot(wl, ref[:, r, c], color=col, lw=2.2, label=f"reference ({r}, {c})")
        ax.plot(wl, fused[:, r, c], color="k", lw=0.9, ls="--", label="fused" if col == colours[0] else None)
        ax.plot(wl, bic[:, r, c], color="tab:orange", lw=0.9, ls=":", label="bicubic" if col == colours[0] else None)
    ax.set_xlabel("wavelength (nm)", fontsize=8)
    ax.set_ylabel("reflectance", fontsize=8)
    ax.set_title("spectra at the circled pixels", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.text(0.5, 0.01, f"HSI true colour from bands at {wl[idx[0]]:.0f}/{wl[idx[1]]:.0f}/{wl[idx[2]]:.0f} nm, "
             "one 2-98 % stretch (of the reference) for all HSI panels; MSI stretched on its own",
             ha="center", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.12, wspace=0.16)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def run_demo(out_dir: str | os.PathLike, scale: int = 3, size: int | None = None, seed: int = 0,
             method: str = "auto", profile: str | None = None, snr_db: float | None = None) -> dict:
    """Build inputs, fuse through qgis_process, evaluate; returns a summary dict (also in summary.json)."""
    from demo_scene import build_demo_inputs

    from csakd_qgis.quality.metrics import compute_metrics
    from csakd_qgis.raster.io import read_meta, read_reflectance
    from csakd_qgis.raster.resample import upsample_bicubic

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    paths = build_demo_inputs(out, scale=scale, size=size, seed=seed, snr_db=snr_db)
    timings["build_inputs_s"] = time.perf_counter() - t0
    fused_path = out / "fused_hsi.tif"
    if fused_path.exists():
        fused_path.unlink()
    alg, wall, results = run_fusion(paths["lr_hsi"], paths["hr_msi"], str(fused_path), method, profile)
    timings["fusion_qgis_process_s"] = wall
    if "ELAPSED_S" in results:
        timings["fusion_core_s"] = float(results["ELAPSED_S"])

    t1 = time.perf_counter()
    ref = read_reflectance(paths["reference_hsi"])
    fused = read_reflectance(fused_path)
    lr = read_reflectance(paths["lr_hsi"])
    msi = read_reflectance(paths["hr_msi"])
    if fused.shape != ref.shape:
        raise DemoError(f"the fused image has shape {fused.shape}, the reference {ref.shape}")
    bic = upsample_bicubic(lr, scale)
    m_fused = compute_metrics(ref, fused, scale)
    m_bic = compute_metrics(ref, bic, scale)
    timings["evaluate_s"] = time.perf_counter() - t1
    meta = read_meta(paths["reference_hsi"])
    msi_meta = read_meta(paths["hr_msi"])
    msi_names = [str(d).split(" ")[0] for d in msi_meta.descriptions]
    info = json.loads(Path(paths["info"]).read_text(encoding="utf-8"))
    keys = ("psnr", "sam", "ergas", "rmse", "ssim")
    summary = {
        "algorithm": alg, "scale": scale, "hr_size": list(ref.shape[1:]), "n_bands": int(ref.shape[0]),
        "metrics": {"fused": {k: m_fused[k] for k in keys}, "bicubic": {k: m_bic[k] for k in keys}},
        "metrics_full": {"fused": m_fused, "bicubic": m_bic},
        "msi_residual_rmse": info["msi_residual"]["rmse"],
        "real": info["real"], "synthetic": info["synthetic"], "provenance": info["provenance"],
        "files": {**{k: str(v) for k, v in paths.items()}, "fused": str(fused_path)},
        "timings": timings,
    }
    t2 = time.perf_counter()
    titles = {"reference": "reference HR-HSI (synthetic)",
              "fused": f"fused ({alg.split()[0].split(':')[-1]})\nPSNR {m_fused['psnr']:.2f} dB, SAM "
                       f"{m_fused['sam']:.2f} deg",
              "bicubic": f"bicubic LR-HSI\nPSNR {m_bic['psnr']:.2f} dB, SAM {m_bic['sam']:.2f} deg",
              "msi": "HR-MSI B4/B3/B2 (real Sentinel-2)"}
    ql = write_quicklook(out / "quicklook.png", ref, fused, bic, msi, meta.wavelengths, msi_names, titles)
    summary["files"]["quicklook"] = str(ql)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    summary["files"]["metrics"] = str(metrics_path)
    try:
        from csakd_qgis.quality.report import build_report
    except ImportError:
        build_report = None
    if build_report is not None:
        try:
            rep = build_report(ref, fused, out / "report.html", wavelengths=meta.wavelengths, bicubic=bic,
                               scale=scale, metrics=m_fused, metrics_bicubic=m_bic,
                               title=f"csakd demo: {alg}, scale {scale}",
                               info={"algorithm": alg, "real": info["real"], "synthetic": info["synthetic"],
                                     "MSI residual RMSE": f"{info['msi_residual']['rmse']:.4f}"})
            summary["files"]["report"] = str(rep)
        except Exception as exc:  # the HTML report is optional: keep the demo's main outputs
            print(f"WARNING: HTML report not written: {exc}", file=sys.stderr)
    timings["outputs_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    metrics_path.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    return summary


def print_summary(s: dict) -> None:
    """Short human-readable summary."""
    print(f"csakd demo: {s['algorithm']}, scale {s['scale']}, {s['n_bands']} bands, "
          f"HR {s['hr_size'][0]} x {s['hr_size'][1]} px")
    print(f"  real:      {s['real']}")
    print(f"  synthetic: {s['synthetic']} (MSI residual RMSE {s['msi_residual_rmse']:.4f})")
    print(f"  {'':8s} {'PSNR dB':>8s} {'SAM deg':>8s} {'ERGAS':>7s} {'RMSE':>7s}")
    for name, m in s["metrics"].items():
        print(f"  {name:8s} {m['psnr']:8.2f} {m['sam']:8.2f} {m['ergas']:7.3f} {m['rmse']:7.4f}")
    t = s["timings"]
    print("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    for k, v in s["files"].items():
        print(f"  {k:14s} {v}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="demo_out", help="output folder (created)")
    ap.add_argument("--scale", type=int, default=3, help="HSI/MSI pixel-size ratio (3: EnMAP 30 m / S2 10 m)")
    ap.add_argument("--size", type=int, default=None, help="HR crop size in pixels (default: whole 300 px tile)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snr-db", type=float, default=None, help="add white noise to the LR-HSI at this SNR")
    ap.add_argument("--method", default="auto", choices=["auto", "fuse", "glp", "gsa", "bicubic"],
                    help="auto: csakd:fuse_classical with its default method (the best measured), else glp; "
                         "fuse: csakd:fuse with its default zoo model")
    ap.add_argument("--profile", default=None, help="QGIS profile folder for qgis_process (default .qgis_profile)")
    args = ap.parse_args(argv)
    try:
        summary = run_demo(args.out, args.scale, args.size, args.seed, args.method, args.profile, args.snr_db)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

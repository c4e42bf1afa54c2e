"""Raster-job benchmark of ``csakd fuse`` and ``csakd superresolve``: wall time and peak RSS per HR output size.

Not a test. For each size N, a synthetic LR-HSI (64 bands, N/s px) + HR-MSI (4 bands, N px) GeoTIFF pair is
written to a temporary folder (strip by strip, bounded memory; the HSI only for ``--job superresolve``), then
fused (or super-resolved) in a separate Python process so its peak RSS (VmHWM) is that run's alone. The fusion
model is the lite CSAKD student (random weights: timing only) when ``nets/csakd.py`` is importable, else GLP;
super-resolution uses ``--model`` (default bicubic).

Reported per size:
- ``wall_s``: the whole ``fuse()`` call (co-registration, model load, shift estimate, tiles, GeoTIFF close).
- ``network_s``: time inside the predictor's network forward (``Predictor.network_seconds``) during the run.
- ``outside_network_share`` = (wall - network_s) / wall: the share of the wall time outside the network
  (reading, co-registration, blending, writing, set-up). Reading, blending and compression run in background
  threads while the network runs, so on a machine whose cores are all busy with the network they also
  slow the forward down; two cross-checks make that visible:
- ``network_alone_s``: the same network on the run's batches (the full batches and the remainder one, same
  shapes), run alone after the fusion (median of a few forwards per shape), and ``overhead_vs_alone`` =
  (wall - network_alone_s) / wall: the stricter figure, it also charges the network's slow-down by the
  background threads (and its first-forward set-up) to the outside work.
- ``phase_sum_s``: the sum of the phase timings (set-up, sample, shift, prepare, reads, predict, blend +
  write, finalize) = what the wall time would be without any overlap; ``cpu_s``: the process CPU time.
- ``peak_rss_mb`` (VmHWM of the run), the blend buffer, the output size.

    .venv/bin/python bench/bench_fuse.py --sizes 1024 4096 --out bench/results/fuse.json
    .venv/bin/python bench/bench_fuse.py --job superresolve --sizes 1024 4096 --out bench/results/superresolve.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MSI_SRF = "gaussian:490/65,560/35,665/30,842/115"  # Sentinel-2-like B2, B3, B4, B8
TARGET_RSS_RATIO = 1.1  # target: peak RSS of the largest size within 1.1 x that of the smallest
TARGET_OUTSIDE_SHARE = 0.20  # target: share of the wall time outside the network below 20 %


def _spectra(n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    wl = np.linspace(420.0, 2400.0, n_bands)
    spectra = np.stack([0.05 + 0.3 / (1 + np.exp(-(wl - 720) / 25)),  # vegetation-like
                        0.15 + 0.1 * (wl - 400) / 2000,  # soil-like
                        0.08 + 0.02 * np.sin(wl / 150),  # urban-like
                        0.03 + 0.02 * np.exp(-(wl - 500) ** 2 / 8000)])  # water-like
    return wl, spectra.astype(np.float32)


def _abundances(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(4, len(rows), len(cols)) smooth + textured abundance fields summing to 1 (analytic, any window)."""
    y = rows[:, None].astype(np.float64)
    x = cols[None, :].astype(np.float64)
    fields = []
    for k, (fx, fy, ph) in enumerate([(1 / 173, 1 / 311, 0.3), (1 / 97, 1 / 59, 1.1), (1 / 41, 1 / 233, 2.0),
                                      (1 / 523, 1 / 149, 4.0)]):
        f = 1.2 + np.sin(2 * np.pi * (fx * x + fy * y) + ph) + 0.4 * np.sin(2 * np.pi * (x / 7.3 + y / 5.1) + k)
        fields.append(np.maximum(f, 0.05))
    a = np.stack(fields)
    return (a / a.sum(0, keepdims=True)).astype(np.float32)


def make_inputs(folder: Path, size: int, scale: int = 4, hsi_bands: int = 64, reuse: bool = False,
                with_msi: bool = True) -> dict:
    """Write hsi.tif (LR, hsi_bands) and msi.tif (HR, 4 bands; not with ``with_msi=False``) for a size^2 output.

    ``reuse``: keep the files already in ``folder`` (from an earlier run with the same settings).
    """
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    from csakd_qgis.raster.io import GeoTiffWriter
    from csakd_qgis.spectral.srf import srf_matrix

    if size % scale:
        raise SystemExit(f"size {size} is not a multiple of the scale {scale}")
    wl, spectra = _spectra(hsi_bands)
    R = srf_matrix(MSI_SRF, wl, [10.0] * hsi_bands).astype(np.float32)
    msi_spectra = spectra @ R.T  # (4 endmembers, 4 MSI bands)
    n = size // scale
    crs = CRS.from_epsg(32633)
    hr_tr = Affine(10.0, 0.0, 360000.0, 0.0, -10.0, 5820000.0)
    tag = f"{size}_{hsi_bands}b_s{scale}"
    hsi_path, msi_path = folder / f"hsi_{tag}.tif", folder / f"msi_{tag}.tif"
    out = {"hsi": str(hsi_path), "msi": str(msi_path) if with_msi else None, "wavelengths": [float(w) for w in wl]}
    if reuse and hsi_path.is_file() and (msi_path.is_file() or not with_msi):
        return out
    strip = max(1, 256 // scale)
    with GeoTiffWriter(hsi_path, n, n, hsi_bands, crs, hr_tr * Affine.scale(scale), list(wl),
                       [10.0] * hsi_bands) as wh, \
            (GeoTiffWriter(msi_path, size, size, 4, crs, hr_tr, [490.0, 560.0, 665.0, 842.0]) if with_msi
             else contextlib.nullcontext()) as wm:
        cols = np.arange(size)
        for r0 in range(0, n, strip):
            h = min(strip, n - r0)
            a = _abundances(np.arange(r0 * scale, (r0 + h) * scale), cols)
            if wm is not None:
                wm.write(np.einsum("kb,kyx->byx", msi_spectra, a), window=Window(0, r0 * scale, size, h * scale))
            a_lr = a.reshape(4, h, scale, n, scale).mean(axis=(2, 4))
            wh.write(np.einsum("kb,kyx->byx", spectra, a_lr), window=Window(0, r0, n, h))
    return out


def make_model(folder: Path, hsi_bands: int, scale: int, wavelengths: list[float], preset: str = "lite") -> str:
    """Save a randomly initialised CSAKD student of ``preset`` with its card; 'glp' if nets are unavailable."""
    try:
        from csakd_qgis.nets.csakd import build_model, preset_configs
        from csakd_qgis.zoo.card import save_model
    except ImportError as exc:
        print(f"nets/csakd.py not usable ({exc}): benchmarking glp", file=sys.stderr)
        return "glp"
    _, student = preset_configs(preset, hsi_bands, 4, scale)
    card, _ = save_model(folder / f"bench_{preset}_student", build_model(student),
                         {"role": "student", "name": f"bench_{preset}_student (random weights)",
                          "hsi": {"wavelengths": wavelengths}})
    return str(card)


def _rss_mb() -> tuple[float, float]:
    """(peak, current) resident set size of this process in MB (Linux /proc, else ru_maxrss twice).

    VmHWM is reset at exec, unlike ru_maxrss, which keeps the parent's size at fork time.
    """
    try:
        status = Path("/proc/self/status").read_text()
        vals = {line.split(":")[0]: float(line.split()[1]) / 1024.0 for line in status.splitlines()
                if line.startswith(("VmHWM", "VmRSS"))}
        return vals["VmHWM"], vals["VmRSS"]
    except (OSError, KeyError, ValueError, IndexError):
        peak, _ = _rss_mb()
        return peak, peak


def _network_alone(model: str, device: str, precision: str, threads: int | None, res, n_h: int, batch: int,
                   tile: tuple[int, int], repeats: int = 3, job: str = "fuse") -> float:
    """Seconds the predictor's network needs for the run's batches when run alone.

    The run had n_tiles // batch full batches and one batch of the remainder (plan.batches); each shape is
    timed as the median of ``repeats`` forwards after a warm-up one (the run's own first forward, with
    torch's one-off set-up, is in its network_s: the cross-check leans towards overstating the overhead).
    """
    from csakd_qgis.fusion.predictors import make_predictor
    from csakd_qgis.fusion.superresolve import make_sr_predictor

    if job == "superresolve":
        pred = make_sr_predictor(model, hsi_wavelengths=n_h, scale=res.scale, device=device, precision=precision,
                                 threads=threads)
    else:
        pred = make_predictor(model, scale=res.scale, hsi_bands=n_h, msi_bands=4, device=device,
                              precision=precision, threads=threads)
    if not hasattr(pred, "model"):  # classical: network_s is its apply time already
        return float(res.timings.get("network_s", 0.0))
    s = res.scale
    h, w = tile[0] + 2 * pred.halo_lr * s, tile[1] + 2 * pred.halo_lr * s
    rng = np.random.default_rng(0)
    total = 0.0
    n_full, rem = divmod(int(res.n_tiles), int(batch))
    for b, count in ((batch, n_full), (rem, 1)):
        if b == 0 or count == 0:
            continue
        inputs = [rng.random((b, n_h, h // s, w // s), dtype=np.float32) * 0.3]
        if job != "superresolve":
            inputs.append(rng.random((b, 4, h, w), dtype=np.float32) * 0.3)
        pred.predict(*inputs)  # warm-up
        times = []
        for _ in range(repeats):
            n0 = pred.network_seconds
            pred.predict(*inputs)
            times.append(pred.network_seconds - n0)
        total += float(np.median(times)) * count
    return total


def _child(args: argparse.Namespace) -> int:
    """One fusion (or super-resolution) run in this process; prints a JSON line with timings and peak RSS."""
    import csakd_qgis.fusion.fuse as fuse_mod
    import csakd_qgis.fusion.superresolve as sr_mod

    if args.model not in ("glp", "gsa", "bicubic"):
        import torch  # noqa: F401 - import cost outside the measured run

    _, rss_before = _rss_mb()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    kw = {"model": args.model, "device": args.device, "tile": args.tile, "overlap": args.overlap,
          "batch": args.batch, "threads": args.threads, "precision": args.precision}
    if args.job == "superresolve":
        res = sr_mod.superresolve(args.hsi, args.out_tif, scale=args.scale, **kw)
    else:
        res = fuse_mod.fuse(args.hsi, args.msi, args.out_tif, **kw)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    peak, _ = _rss_mb()
    t = res.timings
    net = float(t.get("network_s", 0.0))
    phases = ("setup_s", "sample_s", "shift_s", "prepare_s", "read_s", "predict_s", "blend_write_s", "finalize_s")
    phase_sum = sum(float(t.get(k, 0.0)) for k in phases)
    import rasterio

    with rasterio.open(args.out_tif) as ds:
        n_h = sum(1 for i in range(1, ds.count + 1) if ds.tags(i).get("bbl", "1") != "0")
    tile = (min(args.tile, res.height), min(args.tile, res.width))
    alone = _network_alone(args.model, args.device, args.precision, args.threads, res, n_h, args.batch, tile,
                           job=args.job)
    print(json.dumps({
        "size": args.size, "model": res.model, "device": res.device_used, "n_tiles": res.n_tiles,
        "wall_s": wall, "network_s": net, "outside_network_share": (wall - net) / wall if wall > 0 else None,
        "network_alone_s": alone, "overhead_vs_alone": (wall - alone) / wall if wall > 0 else None,
        "phase_sum_s": phase_sum, "cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "peak_rss_mb": peak, "rss_after_imports_mb": rss_before, "blend_buffer_mb": t.get("buffer_mb"),
        "timings": t, "bands": res.bands, "scale": res.scale,
        "out_mb": os.path.getsize(args.out_tif) / 2 ** 20}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="HR output sizes (px; default 1024 4096, with --quick 256 512)")
    parser.add_argument("--quick", action="store_true", help="small sizes (256 512): a smoke run")
    parser.add_argument("--job", default="fuse", choices=("fuse", "superresolve"),
                        help="the entry point benchmarked (default: %(default)s)")
    parser.add_argument("--model", default="auto",
                        help="auto (fuse: lite CSAKD student with random weights, else glp; superresolve: "
                             "bicubic), glp, gsa, bicubic or a path")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                        help="network precision on CUDA (default: %(default)s)")
    parser.add_argument("--hsi-bands", type=int, default=64)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=None, help="JSON results (default: bench/results/<job>.json)")
    parser.add_argument("--workdir", default=None,
                        help="keep the generated inputs here and reuse them in later runs (default: temporary)")
    # internal: one measured run
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hsi", help=argparse.SUPPRESS)
    parser.add_argument("--msi", help=argparse.SUPPRESS)
    parser.add_argument("--out-tif", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.sizes is None:
        args.sizes = [256, 512] if args.quick else [1024, 4096]
    sr = args.job == "superresolve"
    if args.model == "auto" and sr:
        args.model = "bicubic"

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"csakd-bench-{args.job}-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    model_cache: dict[int, str] = {}
    try:
        for size in args.sizes:
            t0 = time.perf_counter()
            inputs = make_inputs(work, size, args.scale, args.hsi_bands, reuse=bool(args.workdir), with_msi=not sr)
            gen_s = time.perf_counter() - t0
            if args.model == "auto":
                if args.hsi_bands not in model_cache:
                    model_cache[args.hsi_bands] = make_model(work, args.hsi_bands, args.scale, inputs["wavelengths"])
                model = model_cache[args.hsi_bands]
            else:
                model = args.model
            out_tif = work / f"{args.job}_{size}.tif"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--job", args.job, "--hsi",
                   inputs["hsi"], "--out-tif", str(out_tif), "--size", str(size), "--model", model,
                   "--device", args.device, "--precision", args.precision, "--tile", str(args.tile),
                   "--overlap", str(args.overlap), "--batch", str(args.batch), "--scale", str(args.scale)]
            cmd += [] if sr else ["--msi", inputs["msi"]]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            print(f"size {size}: inputs written in {gen_s:.1f} s, running {args.job} ...", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
            if proc.returncode != 0:
                print(proc.stderr[-4000:], file=sys.stderr)
                return proc.returncode
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            # cumulative over children, and inflated by this process's size at fork: a cross-check only
            rec["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
            rec["input_mb"] = sum(os.path.getsize(inputs[k]) for k in ("hsi", "msi") if inputs[k]) / 2 ** 20
            rec["mpix_per_s"] = size * size / 1e6 / rec["wall_s"]
            results.append(rec)
            out_tif.unlink(missing_ok=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    head = (f"{'HR size':>8} {'model':>24} {'device':>15} {'tiles':>5} {'wall s':>7} {'net s':>7} "
            f"{'outside':>7} {'alone s':>7} {'vs alone':>8} {'phases s':>8} {'CPU s':>7} {'peak RSS MB':>11} "
            f"{'buffer MB':>9} {'Mpx/s':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['size']:>8} {r['model'][:24]:>24} {r['device'][:15]:>15} {r['n_tiles']:>5} {r['wall_s']:>7.1f} "
              f"{r['network_s']:>7.1f} {100 * r['outside_network_share']:>6.1f}% {r['network_alone_s']:>7.1f} "
              f"{100 * r['overhead_vs_alone']:>7.1f}% {r['phase_sum_s']:>8.1f} {r['cpu_s']:>7.1f} "
              f"{r['peak_rss_mb']:>11.0f} {r['blend_buffer_mb']:>9.0f} {r['mpix_per_s']:>6.3f}")
    summary = {}
    if len(results) > 1:
        small, large = min(results, key=lambda r: r["size"]), max(results, key=lambda r: r["size"])
        summary["peak_rss_ratio"] = large["peak_rss_mb"] / small["peak_rss_mb"]
        summary["peak_rss_ratio_sizes"] = [small["size"], large["size"]]
        print(f"peak RSS {large['size']}^2 / {small['size']}^2: {summary['peak_rss_ratio']:.3f} (target <= "
              f"{TARGET_RSS_RATIO} for 4096^2 / 1024^2)")
    summary["max_outside_network_share"] = max(r["outside_network_share"] for r in results)
    summary["max_overhead_vs_alone"] = max(r["overhead_vs_alone"] for r in results)
    print(f"outside the network: at most {100 * summary['max_outside_network_share']:.1f} % of the wall time "
          f"({100 * summary['max_overhead_vs_alone']:.1f} % against the network run alone; target < "
          f"{100 * TARGET_OUTSIDE_SHARE:.0f} % at 1024^2 and 4096^2)")
    out = Path(args.out or ROOT / "bench" / "results" / f"{args.job}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": args.job, "hsi_bands": args.hsi_bands, "msi_bands": 0 if sr else 4, "scale": args.scale,
            "tile": args.tile, "overlap": args.overlap, "batch": args.batch, "device": args.device,
            "precision": args.precision,
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    summary["targets"] = {"peak_rss_ratio_max": TARGET_RSS_RATIO, "outside_network_share_max": TARGET_OUTSIDE_SHARE}
    out.write_text(json.dumps({"config": meta, "results": results, "summary": summary}, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

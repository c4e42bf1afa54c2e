"""`csakd fuse` wall time against the write-only time of its output (the I/O limit), whole processes, interleaved.

Not a test. A synthetic 218-band LR-HSI + 4-band HR-MSI pair (``bench_fuse.make_inputs``, N^2 HR px, s = 3)
is fused by ``python -m csakd_qgis.cli fuse`` once per (method, NUM_THREADS) setting and run, A/B interleaved;
each run's wall, user and system CPU seconds come from ``os.wait4`` (that child alone). The write-only time is
that of the run's own output, read back into memory and written once by ``GeoTiffWriter`` with NUM_THREADS=1
(the output's profile otherwise), in a separate process. Ratios: wall / write-only, CPU s / wall s.

    flock /tmp/csakd-heavy.lock .venv/bin/python bench/bench_io_limit.py --size 1026 --models glp glp+cy \\
        --out bench/results/io_limit.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

_WRITE_ONCE = """
import sys, time
import rasterio
from csakd_qgis.raster.io import GeoTiffWriter, read_reflectance
src, dst, threads, dtype = sys.argv[1:5]
a = read_reflectance(src)
with rasterio.open(src) as ds:
    crs, tr = ds.crs, ds.transform
t0 = time.perf_counter()
with GeoTiffWriter(dst, a.shape[2], a.shape[1], a.shape[0], crs, tr, creation_options={"NUM_THREADS": threads},
                   dtype=dtype) as wr:
    wr.write(a)
print(time.perf_counter() - t0)
"""


def timed(cmd: list[str]) -> dict:
    """Run ``cmd``; its wall seconds, user/system CPU seconds and peak RSS (MB), of that child alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "cores": (ru.ru_utime + ru.ru_stime) / wall,
            "peak_rss_mb": ru.ru_maxrss / 1024.0, "stdout": out.decode(errors="replace").strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1026)
    parser.add_argument("--bands", type=int, default=218)
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["glp"])
    parser.add_argument("--threads", nargs="+", default=["1", "ALL_CPUS"], help="NUM_THREADS settings (--co)")
    parser.add_argument("--dtype", default="float32", help="output data type (--dtype)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--work", default=None, help="folder for the inputs (kept and reused); default: temporary")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    import bench_fuse

    with tempfile.TemporaryDirectory(prefix="csakd_bench_io_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pair = bench_fuse.make_inputs(work, args.size, scale=args.scale, hsi_bands=args.bands, reuse=True)
        runs: dict[str, list[dict]] = {}
        for _ in range(args.runs):
            for model in args.models:
                for th in args.threads:
                    key = f"{model} NUM_THREADS={th}"
                    out = Path(tmp) / f"out_{len(runs)}.tif"
                    cmd = [sys.executable, "-m", "csakd_qgis.cli", "fuse", "--hsi", pair["hsi"], "--msi", pair["msi"],
                           "--model", model, "--out", str(out), "--co", f"NUM_THREADS={th}", "--no-progress"]
                    if args.dtype != "float32":
                        cmd += ["--dtype", args.dtype]
                    r = timed(cmd)
                    r.pop("stdout")
                    runs.setdefault(key, []).append(r)
                    w = timed([sys.executable, "-c", _WRITE_ONCE, str(out), str(Path(tmp) / "w.tif"), "1", args.dtype])
                    runs[key][-1]["write_only_s"] = float(w["stdout"].splitlines()[-1])
                    runs[key][-1]["bytes"] = out.stat().st_size
                    out.unlink()
    rows = {}
    for key, rs in runs.items():
        med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
        med["wall_over_write_only"] = med["wall_s"] / med["write_only_s"]
        rows[key] = med
    print(f"csakd fuse, {args.bands} bands x {args.size}^2 HR px, s = {args.scale}, {args.dtype} "
          f"(median of {args.runs}; write-only = one NUM_THREADS=1 write of the same output):")
    for key, r in rows.items():
        print(f"  {key:28s} wall {r['wall_s']:6.1f} s  user {r['user_s']:6.1f}  sys {r['sys_s']:5.1f}  "
              f"({r['cores']:.2f} cores)  write-only {r['write_only_s']:5.1f} s  wall/write {r['wall_over_write_only']:.2f}"
              f"  peak {r['peak_rss_mb']:.0f} MB")
    for th in args.threads:  # the model-based default against GLP, same compression threads
        glp, cy = rows.get(f"glp NUM_THREADS={th}"), rows.get(f"glp+cy NUM_THREADS={th}")
        if glp and cy:
            print(f"  glp+cy / glp wall (NUM_THREADS={th}): {cy['wall_s'] / glp['wall_s']:.2f}")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes share them)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"size": args.size, "bands": args.bands, "scale": args.scale,
                                              "dtype": args.dtype, "runs": args.runs, "results": rows,
                                              "load_avg_1min_after": os.getloadavg()[0]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write-only benchmark: one (C, N, N) float32 reflectance array written with the fused output's GeoTIFF profile.

Not a test. It times ``GeoTiffWriter`` (the output writer of ``csakd fuse``) writing the same in-memory array
with GDAL's ``NUM_THREADS`` creation option at 1 and at each other value asked for (default: 2, ALL_CPUS), runs
interleaved, and checks that every file holds the same pixels. The array is a four-endmember mixture with
texture and noise (compresses like a fused scene, not like random data). With ``--dtype`` the array is stored as
that output type (``int16``/``uint16``: reflectance x 10000), as ``csakd fuse --dtype`` writes it.

    flock /tmp/csakd-heavy.lock .venv/bin/python bench/bench_write.py --size 1024 --bands 218 --out bench/results/write.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_array(size: int, bands: int, seed: int = 0) -> np.ndarray:
    """(bands, size, size) float32 reflectance: smooth + textured abundances of four spectra, 0.2 % noise."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_fuse import _abundances

    wl = np.linspace(420.0, 2400.0, bands)
    spectra = np.stack([0.05 + 0.3 / (1 + np.exp(-(wl - 720) / 25)), 0.15 + 0.1 * (wl - 400) / 2000,
                        0.08 + 0.02 * np.sin(wl / 150), 0.03 + 0.02 * np.exp(-(wl - 500) ** 2 / 8000)])
    ab = _abundances(np.arange(size), np.arange(size)).reshape(4, -1)
    out = (spectra.T.astype(np.float32) @ ab).reshape(bands, size, size)
    rng = np.random.default_rng(seed)
    for b in range(bands):  # band by band: no second full-size temporary
        out[b] += rng.normal(0, 0.002, (size, size)).astype(np.float32)
    return out


def write_once(path: Path, array: np.ndarray, num_threads: str, dtype: str) -> dict:
    """Write ``array`` with the output profile and NUM_THREADS=``num_threads``; wall and CPU seconds."""
    from affine import Affine

    from csakd_qgis.raster.io import GeoTiffWriter

    c, h, w = array.shape
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with GeoTiffWriter(path, w, h, c, "EPSG:32633", Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0),
                       creation_options={"NUM_THREADS": num_threads}, dtype=dtype) as wr:
        wr.write(array)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--bands", type=int, default=218)
    parser.add_argument("--threads", nargs="+", default=["2", "ALL_CPUS"], help="NUM_THREADS values besides 1")
    parser.add_argument("--dtype", default="float32", choices=["float32", "int16", "uint16"])
    parser.add_argument("--runs", type=int, default=2, help="interleaved runs per setting (median reported)")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    import rasterio

    array = make_array(args.size, args.bands)
    settings = ["1", *args.threads]
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="csakd_bench_write_") as tmp:
        for _ in range(args.runs):
            for s in settings:
                runs[s].append(write_once(Path(tmp) / f"out_{s}.tif", array, s, args.dtype))
        with rasterio.open(Path(tmp) / "out_1.tif") as ds:
            ref = ds.read()
        identical = {}
        for s in settings[1:]:
            with rasterio.open(Path(tmp) / f"out_{s}.tif") as ds:
                identical[s] = bool(np.array_equal(ref, ds.read()))
    rows = {}
    for s in settings:
        wall = float(np.median([r["wall_s"] for r in runs[s]]))
        cpu = float(np.median([r["cpu_s"] for r in runs[s]]))
        rows[s] = {"wall_s": wall, "cpu_s": cpu, "cores": cpu / wall, "bytes": runs[s][-1]["bytes"],
                   "speedup_vs_1": float(np.median([r["wall_s"] for r in runs["1"]])) / wall}
    result = {"size": args.size, "bands": args.bands, "dtype": args.dtype, "runs": args.runs,
              "raw_bytes": int(array.nbytes), "settings": rows, "identical_to_1_thread": identical,
              "load_avg_1min_after": os.getloadavg()[0], "cpus": os.cpu_count()}
    print(f"write-only, {args.bands} x {args.size}^2 {args.dtype} (raw {array.nbytes / 1e6:.0f} MB):")
    for s, r in rows.items():
        print(f"  NUM_THREADS={s:9s} wall {r['wall_s']:6.2f} s  cpu {r['cpu_s']:6.2f} s  ({r['cores']:.2f} cores)  "
              f"x{r['speedup_vs_1']:.2f}  {r['bytes'] / 1e6:.0f} MB")
    print(f"  same pixels as NUM_THREADS=1: {identical}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

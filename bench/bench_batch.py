"""Batch benchmark of ``csakd batch``: 8 pairs on a LocalCluster of 1 vs 2 worker processes.

Not a test. Writes 8 EnMAP-derived pairs (the real mosaic of ../shared/data mirrored to ``--size`` HR px,
synthetic when that folder is absent; scale 4, GLP), fuses them with :func:`distributed.batch.run_batch`
on 1 and then 2 workers (one thread each) and reports the wall times, the speed-up and each worker's peak
RSS, next to the peak RSS of one pair fused in a process of its own (the single-process engine).

    .venv/bin/python bench/bench_batch.py --out bench/results/batch.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "distributed")]


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def single_process_peak(hsi: Path, msi: Path, out: Path) -> float:
    """Peak RSS (MB) of one pair fused in a fresh Python process."""
    code = ("import sys, resource; from csakd_qgis.fusion.fuse import fuse; fuse(sys.argv[1], sys.argv[2], "
            "sys.argv[3], model='glp', threads=1); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    res = subprocess.run([sys.executable, "-c", code, str(hsi), str(msi), str(out)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return float(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--size", type=int, default=512, help="HR px a side of each pair")
    parser.add_argument("--out", default="bench/results/batch.json")
    args = parser.parse_args(argv)
    from _helpers_dist import enmap_scene, write_pair

    from csakd_qgis.distributed.batch import PairJob, run_batch
    from csakd_qgis.distributed.cluster import local_cluster

    results: dict = {"pairs": args.pairs, "size": args.size, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="csakd-bench-batch-") as tmp:
        d = Path(tmp)
        ref = enmap_scene(args.size, args.size)
        pairs = [write_pair(d, ref=ref, name=f"p{k}") for k in range(args.pairs)]
        results["bands"] = int(ref["cube"].shape[0])
        results["single_process_peak_rss_mb"] = single_process_peak(pairs[0]["hsi"], pairs[0]["msi"], d / "one.tif")
        for workers in (1, 2):
            jobs = [PairJob(k + 1, str(p["hsi"]), str(p["msi"]), str(d / f"w{workers}_{k}.tif"))
                    for k, p in enumerate(pairs)]
            with local_cluster(workers) as ex:
                t0 = time.perf_counter()
                res = run_batch(jobs, ex=ex, summary=d / f"w{workers}.json", model="glp")
                wall = time.perf_counter() - t0
                peaks = sorted(ex.client.run(peak_rss_mb).values())
            assert res.count("done") == args.pairs, res.messages
            results["runs"][workers] = {"wall_s": wall, "worker_peak_rss_mb": peaks,
                                        "pair_s": [r.seconds for r in res.records]}
            print(f"{args.pairs} pairs of {args.size}^2 px on {workers} worker(s): {wall:.1f} s, "
                  f"worker peak RSS {', '.join(f'{p:.0f}' for p in peaks)} MB")
    results["speedup"] = results["runs"][1]["wall_s"] / results["runs"][2]["wall_s"]
    print(f"speed-up 1 -> 2 workers: {results['speedup']:.2f}x; one pair alone peaks at "
          f"{results['single_process_peak_rss_mb']:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

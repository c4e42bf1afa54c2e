"""`make bench`: run every benchmark (network speed/memory, torch vs ONNX Runtime, raster engine throughput,
fuse wall against the write-only time of its output).

Benchmarks are not tests: they print tables and write JSON under --out for the closing notes and README.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results", help="folder for the JSON results")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import bench_batch
    import bench_fuse
    import bench_io_limit
    import bench_nets
    import bench_runtime
    import bench_scene
    import bench_write

    t0 = time.time()
    rc = 0
    nets_args = ["--out", str(out / "nets.json"), "--device", args.device] + (["--quick"] if args.quick else [])
    sizes = ["--sizes", "256", "512"] if args.quick else []
    rc |= bench_nets.main(nets_args) or 0
    for job in ("fuse", "superresolve"):  # the one raster job through both entry points (SR: bicubic)
        rc |= bench_fuse.main(["--job", job, "--out", str(out / f"{job}.json"), "--device", args.device, *sizes]) or 0
    io_size = ["--size", "258"] if args.quick else []  # the I/O limit: fuse wall vs writing its output
    rc |= bench_write.main(["--out", str(out / "write.json"), *(["--size", "256"] if args.quick else [])]) or 0
    rc |= bench_io_limit.main(["--out", str(out / "io_limit.json"), "--models", "glp", "glp+cy", *io_size]) or 0
    rc |= bench_runtime.main(["--out", str(out / "runtime.json")] + (["--runs", "2"] if args.quick else [])) or 0
    rc |= bench_scene.main(["--out", str(out / "scene.json"), *(["--size", "510"] if args.quick else [])]) or 0
    rc |= bench_batch.main(["--out", str(out / "batch.json"), *(["--size", "256"] if args.quick else [])]) or 0
    summary = {"elapsed_s": time.time() - t0, "results": [p.name for p in out.glob("*.json")]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"benchmarks written to {out}/ in {summary['elapsed_s']:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())

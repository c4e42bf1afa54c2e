"""The per-scene learner's cost next to glp+cy on the same pair (part of ``make bench``).

    .venv/bin/python bench/bench_scene.py [--size 1020] [--bands 218] [--scale 3] [--out bench/results/scene.json]

Not a test. A synthetic LR-HSI + HR-MSI GeoTIFF pair (``bench_fuse.make_inputs``) is fused with ``glp+cy`` and
with ``scene`` through ``fusion.fuse.fuse`` in this process, one after the other; printed: wall seconds of each,
the learning seconds, and both scaled to 1000 x 1000 HR px (the issue's budget: scene <= 3 min per 1000^2 HR px
on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_fuse import make_inputs  # noqa: E402

from csakd_qgis.fusion.fuse import fuse  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1020)
    ap.add_argument("--bands", type=int, default=218)
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="csakd-bench-scene-") as d:
        inp = make_inputs(Path(d), a.size, a.scale, a.bands)
        for method in ("glp+cy", "scene"):
            t0 = time.perf_counter()
            res = fuse(inp["hsi"], inp["msi"], Path(d) / f"{method.replace('+', '_')}.tif", method)
            wall = time.perf_counter() - t0
            scene = res.observation.get("scene", {})
            per = wall * 1e6 / (a.size * a.size)
            rows[method] = {"wall_s": round(wall, 2), "per_1000sq_s": round(per, 2),
                            "learn_s": scene.get("seconds"), "alpha": scene.get("alpha")}
            print(f"{method:8s} {a.size}^2 HR px x {a.bands} bands, s={a.scale}: {wall:7.1f} s wall "
                  f"({per:6.1f} s per 1000^2 HR px)" + (f", learning {scene['seconds']:.1f} s, alpha "
                                                         f"{scene['alpha']:.2f}" if scene else ""), flush=True)
    extra = rows["scene"]["wall_s"] - rows["glp+cy"]["wall_s"]
    print(f"scene costs {extra:+.1f} s over glp+cy ({rows['scene']['wall_s'] / rows['glp+cy']['wall_s']:.2f}x); "
          f"budget 180 s per 1000^2 HR px: {'met' if rows['scene']['per_1000sq_s'] <= 180 else 'NOT met'}")
    if a.out:
        Path(a.out).write_text(json.dumps({"size": a.size, "bands": a.bands, "scale": a.scale, "methods": rows},
                                          indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

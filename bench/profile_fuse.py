"""Profile one ``fuse()`` run in this process: cProfile top functions, the job's phase timings, user/system CPU
seconds and page faults (minor/major) of the run. Not a test; for finding where wall and system time go.

    flock /tmp/csakd-heavy.lock .venv/bin/python bench/profile_fuse.py --hsi H.tif --msi M.tif --model glp+cy
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hsi", required=True)
    parser.add_argument("--msi", required=True)
    parser.add_argument("--model", default="glp+cy")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--no-profile", action="store_true", help="rusage and phase timings only")
    parser.add_argument("--out", default=None, help="keep the fused GeoTIFF here (default: a temporary, removed)")
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args(argv)
    from csakd_qgis.fusion.fuse import fuse

    with tempfile.TemporaryDirectory(prefix="csakd_profile_") as tmp:
        prof = None if args.no_profile else cProfile.Profile()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        result = fuse(args.hsi, args.msi, args.out or Path(tmp) / "out.tif", model=args.model, tile=args.tile)
        if prof is not None:
            prof.disable()
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{args.model}: wall {wall:.1f} s, user {r1.ru_utime - r0.ru_utime:.1f} s, "
          f"sys {r1.ru_stime - r0.ru_stime:.1f} s, minor faults {r1.ru_minflt - r0.ru_minflt}, "
          f"major faults {r1.ru_majflt - r0.ru_majflt}, peak RSS {r1.ru_maxrss / 1024:.0f} MB")
    print("phases: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(result.timings.items())
                                 if isinstance(v, float)))
    obs = (getattr(result, "observation", None) or {}).get("observation", {})
    if obs:
        print("observation: " + ", ".join(f"{k} {v}" for k, v in obs.items() if not isinstance(v, (list, dict))))
    if prof is not None:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(args.sort).print_stats(args.top)
        print(s.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Network runtimes side by side: seconds per 256 x 256 HR tile and peak memory of torch vs ONNX Runtime (fp32,
int8) for the paper-preset student and the shipped students, on 2 CPU threads; optionally against the public
reference implementation of CSAKD (``--ref`` = an exported copy of its repository), interleaved in one process.

Times: every runtime of a model runs A B C A B C ... in ONE process, so machine noise hits all alike; the table
gives medians and ratios to torch. Peak RSS: each (model, runtime) runs once more in its own subprocess.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF_TOOL = ROOT.parent / "shared" / "tools" / "csakd_ref_bench.py"
TILE_HR = 256


def paper_student(folder: Path, hsi_bands: int = 172) -> Path:
    """A paper-preset CSAKD student with random weights (the reference's 172 bands, 4 MSI bands, s = 4), exported."""
    import torch

    from csakd_qgis.fusion.onnx_export import export_onnx
    from csakd_qgis.nets.csakd import build_model, preset_configs
    from csakd_qgis.zoo.card import save_model

    _, cfg = preset_configs("paper", hsi_bands, 4, 4, residual="bilinear", zero_head=False)
    torch.manual_seed(0)
    card, _ = save_model(folder / "paper_student", build_model(cfg), {
        "role": "student", "name": "paper_student",
        "hsi": {"wavelengths": [float(w) for w in np.linspace(400, 2500, hsi_bands)]}})
    export_onnx(card, variants=("fp32", "int8"), n_tiles=4)
    return card


LABELS = {"torch": ("torch", "fp32"), "onnx_fp32": ("onnx", "fp32"), "onnx_int8": ("onnx", "int8")}


def _runners_one(card: Path, label: str, threads: int):
    """The runner of one (runtime, precision) label for a model card."""
    from csakd_qgis.fusion.runtime import open_runner
    from csakd_qgis.zoo.card import read_card

    rt, prec = LABELS[label]
    return open_runner(card, read_card(card), runtime=rt, device="cpu", precision=prec, threads=threads)


def _inputs(card: Path, seed: int = 0) -> dict[str, np.ndarray]:
    from csakd_qgis.zoo.card import read_card

    c = read_card(card)
    s, n_h = int(c["scale"]), int(c["hsi"]["bands"])
    rng = np.random.default_rng(seed)
    x = {"lr": rng.random((1, n_h, TILE_HR // s, TILE_HR // s), np.float32) * 0.5}
    if c.get("arch") != "dodn":
        x["msi"] = rng.random((1, int(c["msi"]["bands"]), TILE_HR, TILE_HR), np.float32) * 0.5
        if c.get("residual") == "base":
            x["base"] = rng.random((1, n_h, TILE_HR, TILE_HR), np.float32) * 0.5
    return x


def time_interleaved(card: Path, runs: int, threads: int, ref=None) -> dict[str, list[float]]:
    """Seconds per tile of every runtime (and the reference model, if given), run A B C ... in turn."""
    import torch

    torch.set_num_threads(threads)
    runners = {k: _runners_one(card, k, threads) for k in LABELS}
    x = _inputs(card)
    calls = {k: (lambda r=r: r.run(x)) for k, r in runners.items()}
    if ref is not None:
        lr, msi = torch.from_numpy(x["lr"]), torch.from_numpy(x["msi"])

        def run_ref() -> None:
            with torch.inference_mode():
                try:
                    ref(lr, msi, mode=1)
                except TypeError:
                    ref(lr, msi)
        calls["reference"] = run_ref
    for f in calls.values():
        f()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(runs):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def peak_rss_mb(card: Path, label: str, threads: int) -> float:
    """Peak RSS (MB) of a fresh process that loads one runtime and runs one tile."""
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report this process's peak
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r});"
            f"import bench_runtime as b; from pathlib import Path; r = b._runners_one(Path({str(card)!r}), "
            f"{label!r}, {threads}); r.run(b._inputs(Path({str(card)!r})));"
            "print([int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0] / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def load_reference(ref_dir: str):
    """The public reference student (built by the shared measuring tool, which holds no reference code)."""
    spec = importlib.util.spec_from_file_location("csakd_ref_bench", REF_TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model, _ = mod.build(ref_dir, "student", 4)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results/runtime.json")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref", default=os.environ.get("CSAKD_REF_SRC"),
                    help="exported copy of the public CSAKD repository (optional)")
    ap.add_argument("--models", default="paper,enmap_s2-4band_x4,enmap_x4_sr")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    results: dict = {"threads": a.threads, "tile_hr": TILE_HR, "runs": a.runs, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            card = paper_student(Path(tmp)) if name == "paper" else ROOT / "models" / f"{name}.json"
            ref = load_reference(a.ref) if (name == "paper" and a.ref and REF_TOOL.is_file()) else None
            times = time_interleaved(card, a.runs, a.threads, ref)
            med = {k: statistics.median(v) for k, v in times.items()}
            rss = {k: peak_rss_mb(card, k, a.threads) for k in LABELS}
            row = {"s_per_tile": med, "min_s": {k: min(v) for k, v in times.items()}, "peak_rss_mb": rss,
                   "ratio_to_torch": {k: med[k] / med["torch"] for k in med}}
            if "reference" in med:
                fastest = min(("onnx_fp32", "onnx_int8", "torch"), key=lambda k: med[k])
                row["fastest_ours"] = fastest
                row["ratio_fastest_to_reference"] = med[fastest] / med["reference"]
            results["models"][name] = row
            print(f"{name}: " + ", ".join(f"{k} {med[k]:.3f} s ({row['ratio_to_torch'][k]:.2f}x torch)" for k in med)
                  + " | peak RSS MB " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items())
                  + (f" | ours ({row['fastest_ours']}) / reference = {row['ratio_fastest_to_reference']:.2f}"
                     if "reference" in med else ""), flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Network benchmark (not a test): forward time and peak memory per HR tile for the paper and lite
teacher/student, and co-training steps/s of the lite pair, on this machine's CPU (or CUDA).

Defaults follow the CSAKD paper: 172 HSI bands, 4 MSI bands, s = 4, HR 256 x 256 (LR 64 x 64), 2 CPU threads.
Each measurement runs in a fresh subprocess so its peak resident memory (CPU) is its own: "peak MB" is
the growth of the peak RSS during the forwards (activations and workspace; weights and inputs already
allocated), "RSS MB" the process's absolute peak. On CUDA "peak MB" is torch.cuda.max_memory_allocated. Prints a table and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from csakd_qgis.cli.common import positive_int

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def child_forward(spec: dict) -> dict:
    """Forward time / peak memory of one network (runs inside the subprocess)."""
    import torch

    from csakd_qgis.nets.complexity import csakd_complexity
    from csakd_qgis.nets.csakd import build_model, preset_configs

    torch.set_num_threads(spec["threads"])
    dev = spec["device"]
    t_cfg, s_cfg = preset_configs(spec["preset"], spec["hsi"], spec["msi"], spec["scale"])
    cfg = t_cfg if spec["role"] == "teacher" else s_cfg
    torch.manual_seed(0)
    model = build_model(cfg).to(dev).eval()
    lr_size = spec["hr"] // spec["scale"]
    lr = torch.rand(1, spec["hsi"], lr_size, lr_size, device=dev) * 0.5
    msi = torch.rand(1, spec["msi"], lr_size * spec["scale"], lr_size * spec["scale"], device=dev) * 0.5
    amp = dev.startswith("cuda") and spec.get("amp", False)
    base_rss = _rss_mb()
    times = []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        for i in range(spec["repeats"] + 1):  # first run = warm-up
            if dev.startswith("cuda") and i == 1:
                torch.cuda.reset_peak_memory_stats()
            _sync(dev)
            t0 = time.perf_counter()
            model(lr, msi)
            _sync(dev)
            if i:
                times.append(time.perf_counter() - t0)
    out = {"forward_s": min(times), "forward_s_mean": sum(times) / len(times)}
    if dev.startswith("cuda"):
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_rss_mb"] = _rss_mb()
        out["peak_mem_mb"] = _rss_mb() - base_rss  # growth during the forward (activations, workspace)
    out.update(csakd_complexity(cfg, spec["hr"]))
    return out


def child_train(spec: dict) -> dict:
    """Co-training steps/s (teacher step + student step with KD) of a preset pair."""
    import torch

    from csakd_qgis.nets.csakd import build_model, preset_configs
    from csakd_qgis.nets.losses import LossWeights
    from csakd_qgis.nets.pairs import CSAKDPair

    torch.set_num_threads(spec["threads"])
    dev = spec["device"]
    torch.manual_seed(0)
    t_cfg, s_cfg = preset_configs(spec["preset"], spec["hsi"], spec["msi"], spec["scale"], zero_head=True)
    teacher, student = build_model(t_cfg).to(dev), build_model(s_cfg).to(dev)
    pair = CSAKDPair(teacher, student, LossWeights())
    opt_t = torch.optim.AdamW(teacher.parameters(), lr=1e-4)
    opt_s = torch.optim.AdamW(student.parameters(), lr=1e-4)
    b, p, s = spec["batch"], spec["patch"], spec["scale"]
    batch = {"lr": torch.rand(b, spec["hsi"], p // s, p // s, device=dev),
             "msi": torch.rand(b, spec["msi"], p, p, device=dev), "hr": torch.rand(b, spec["hsi"], p, p, device=dev)}
    amp = dev.startswith("cuda") and spec.get("amp", False)
    times = []
    for i in range(spec["steps"] + 1):
        _sync(dev)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out_t = pair.teacher_forward(batch)
            loss_t, _ = pair.teacher_loss(out_t, batch)
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out_s = pair.student_forward(batch)
            loss_s, _ = pair.student_loss(out_s, (out_t[0].detach(), out_t[1].detach()), batch)
        opt_s.zero_grad()
        loss_s.backward()
        opt_s.step()
        _sync(dev)
        if i:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    return {"step_s": step_s, "steps_per_s": 1.0 / step_s, "batch": b, "patch": p,
            "peak_rss_mb": _rss_mb() if not dev.startswith("cuda") else None,
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.startswith("cuda") else None}


def _run_child(kind: str, spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", kind, json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 (errors are recorded per row)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results/nets.json", help="JSON output path")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--hr-size", type=int, default=256)
    parser.add_argument("--hsi-bands", type=int, default=172)
    parser.add_argument("--msi-bands", type=int, default=4)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="timed forwards per network (after 1 warm-up)")
    parser.add_argument("--train-steps", type=positive_int, default=3, help="timed co-training steps (lite)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--quick", action="store_true", help="HR 128, 1 repeat: a smoke run")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        sys.path.insert(0, str(ROOT))
        kind, spec = args._child[0], json.loads(args._child[1])
        print(json.dumps(child_forward(spec) if kind == "forward" else child_train(spec)))
        return 0
    if args.quick:
        args.hr_size, args.repeats, args.train_steps = 128, 1, 2
    common = {"hsi": args.hsi_bands, "msi": args.msi_bands, "scale": args.scale, "threads": args.threads,
              "device": args.device, "amp": args.amp}
    rows = []
    for preset in ("paper", "lite"):
        for role in ("teacher", "student"):
            spec = {**common, "preset": preset, "role": role, "hr": args.hr_size, "repeats": args.repeats}
            res = _run_child("forward", spec, timeout=1800)
            rows.append({"preset": preset, "role": role, **res})
            print(f"  {preset:5s} {role:7s} " + (f"{res['forward_s']:.3f} s" if "forward_s" in res else str(res)),
                  flush=True)
    train_spec = {**common, "preset": "lite", "batch": 4, "patch": 64, "steps": args.train_steps}
    train_res = _run_child("train", train_spec, timeout=1800)
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    result = {"device": args.device, "threads": args.threads, "hr_size": args.hr_size,
              "hsi_bands": args.hsi_bands, "msi_bands": args.msi_bands, "scale": args.scale,
              "machine": platform.processor() or platform.machine(), "torch": torch_version,
              "forward": rows, "train_lite": train_res}
    print(f"\nCSAKD networks, {args.hsi_bands} HSI / {args.msi_bands} MSI bands, s={args.scale}, HR "
          f"{args.hr_size}x{args.hr_size}, device {args.device}, {args.threads} threads")
    print(f"{'preset':6s} {'role':8s} {'params':>12s} {'conv GMACs':>11s} {'forward s':>10s} {'peak MB':>9s} "
          f"{'RSS MB':>8s}")
    for r in rows:
        if "error" in r:
            print(f"{r['preset']:6s} {r['role']:8s} error: {r['error']}")
            continue
        print(f"{r['preset']:6s} {r['role']:8s} {r['params']:12,d} {r['macs'] / 1e9:11.1f} "
              f"{r['forward_s']:10.3f} {r['peak_mem_mb']:9.0f} {r.get('peak_rss_mb') or 0:8.0f}")
    if "error" not in train_res:
        print(f"lite co-training (teacher+student step, batch {train_res['batch']}, HR patch "
              f"{train_res['patch']}): {train_res['steps_per_s']:.2f} steps/s")
    else:
        print(f"lite co-training: error {train_res['error']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

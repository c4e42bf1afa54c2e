"""Per-scene learned fusion (``scene``) next to bicubic, GLP and glp+cy on the fixed scenes of
bench/eval_model_based.py (PSF/SRF estimated from each pair, never given).

    .venv/bin/python bench/eval_scene.py --set dev|held|confirm|mismatch [--out docs/results/scene_<set>.json]
        [--steps N] [--subspace P] [--hidden H]

Choices of the learner are made on ``--set dev`` only; ``held`` (the 10 held-apart scenes), ``confirm`` (the 9
confirmation scenes) and ``mismatch`` (the mismatched-blur sets) are run once with the choices fixed in
csakd_qgis/fusion/scene.py::SceneConfig.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_model_based import (  # noqa: E402
    CONFIRM_MISMATCH,
    CONFIRM_SCENES,
    DEV_MISMATCH,
    DEV_SCENES,
    MISMATCH,
    SCENES,
    make_pair,
)

from bench.array_fusion import fuse_model_based  # noqa: E402
from csakd_qgis.fusion.observation import estimate_observation  # noqa: E402
from csakd_qgis.fusion.scene import SceneConfig, apply_scene, glp_cy, learn_scene  # noqa: E402
from csakd_qgis.quality.metrics import compute_metrics  # noqa: E402

SETS = {"dev": (DEV_SCENES, {}), "devmis": ({}, DEV_MISMATCH), "held": (SCENES, {}), "confirm": (CONFIRM_SCENES, {}),
        "mismatch": ({}, {**MISMATCH, **CONFIRM_MISMATCH})}


def _row(ref, out, s, seconds):
    m = compute_metrics(ref, out, s)
    return {"psnr": round(m["psnr"], 3), "sam": round(m["sam"], 3), "ergas": round(m["ergas"], 3),
            "seconds": round(seconds, 2)}


def evaluate(name: str, cfg: SceneConfig, sigma=None, shift=None, base=None) -> dict:
    lr, msi, ref, s, info = make_pair(base or name, sigma, shift)
    obs = estimate_observation(lr, msi, s, psf="auto", srf="auto")
    rows, cache = {}, {}
    for m in ("bicubic", "glp"):
        t0 = time.perf_counter()
        out, _ = fuse_model_based(lr, msi, s, m, obs=obs, cache=cache)
        rows[m] = _row(ref, out, s, time.perf_counter() - t0)
    t0 = time.perf_counter()
    cy = glp_cy(lr, msi, s, obs)
    rows["glp+cy"] = _row(ref, cy, s, time.perf_counter() - t0)
    t0 = time.perf_counter()
    model = learn_scene(lr, msi, s, obs, cfg)
    out = apply_scene(model, cy, lr, msi, obs)
    rows["scene"] = {**_row(ref, out, s, time.perf_counter() - t0 + rows["glp+cy"]["seconds"]), **model.info}
    d = rows["scene"]["psnr"] - rows["glp+cy"]["psnr"]
    print(f"{name:26s} s={s} glp {rows['glp']['psnr']:7.3f} glp+cy {rows['glp+cy']['psnr']:7.3f} "
          f"scene {rows['scene']['psnr']:7.3f} ({d:+.3f} dB, alpha {model.alpha:.2f}, hold {model.info.get('holdout_gain_db')}, ratio {model.info.get('scale_ratio')}) "
          f"SAM {rows['glp+cy']['sam']:.3f}->{rows['scene']['sam']:.3f}  {rows['scene']['seconds']:.1f} s", flush=True)
    return {"scene": name, "scale": s, **{k: v for k, v in info.items() if k in ("cover", "msi", "bands", "hr_shape")},
            "methods": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="dev", choices=sorted(SETS))
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--out", default=None)
    for f in dataclasses.fields(SceneConfig):
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.default is not None else float,
                            default=None)
    a = ap.parse_args(argv)
    cfg = SceneConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(SceneConfig)
                         if getattr(a, f.name, None) is not None})
    scenes, mismatch = SETS[a.set]
    pick = set(a.scenes.split(",")) if a.scenes else None
    res = []
    for name in scenes:
        if pick is None or name in pick:
            res.append(evaluate(name, cfg))
    for name, (base, sig, sh) in mismatch.items():
        if pick is None or name in pick:
            res.append(evaluate(name, cfg, sig, sh, base))
    gains = [r["methods"]["scene"]["psnr"] - r["methods"]["glp+cy"]["psnr"] for r in res
             if np.isfinite(r["methods"]["scene"]["psnr"])]
    sams = [r["methods"]["scene"]["sam"] - r["methods"]["glp+cy"]["sam"] for r in res]
    print(f"mean gain over glp+cy {np.mean(gains):+.3f} dB (worst {min(gains):+.3f}), SAM {np.mean(sams):+.4f} deg; "
          f"config {dataclasses.asdict(cfg)}")
    if a.out:
        Path(a.out).write_text(json.dumps({"config": dataclasses.asdict(cfg), "scenes": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Real pairs: each method scored against the reference as it lies (HSI geometry) and moved onto the MSI's
geometry by the shift estimated from the pair, plus the no-reference indexes and the reduced-resolution score.

    .venv/bin/python bench/eval_real_pairs.py [--methods bicubic,gsa,glp,glp+cy] [--out docs/results/real_pairs.json]

Scenes: the real cross-sensor pairs of ``bench/eval_model_based.py`` (its reduced-scale protocol: LR-HSI =
Wald-degrade(HSI, s), HR-MSI = the real MSI block-averaged to the HSI grid, reference = the HSI, which lies in the
HSI's geometry). Protocol: :func:`quality.real_pairs.reference_on_msi_geometry` (the shift of
:func:`raster.coreg.estimate_shift_arrays`) and :func:`quality.real_pairs.score_both_geometries`; the
no-reference indexes of :mod:`fusion.noref` use the observation model estimated from the pair.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_model_based import DATA, make_pair  # noqa: E402

from bench.array_fusion import fuse_model_based  # noqa: E402
from csakd_qgis.fusion.noref import noref_indexes, reduced_resolution_score  # noqa: E402
from csakd_qgis.fusion.observation import estimate_observation  # noqa: E402
from csakd_qgis.quality.real_pairs import reference_on_msi_geometry, score_both_geometries  # noqa: E402

REAL_PAIRS = ("houston2018_real",)
METHODS = ("bicubic", "gsa", "glp", "glp+cy")


def evaluate_pair(name: str, methods) -> dict:
    """Both-geometry scores, no-reference indexes and reduced-resolution score of each method on one real pair."""
    lr, msi, ref, s, info = make_pair(name)
    ref_msi, shift = reference_on_msi_geometry(ref, lr, msi, s)
    obs = estimate_observation(lr, msi, s)
    rows = {}
    for m in methods:
        out, _ = fuse_model_based(lr, msi, s, m, obs=obs)
        both = score_both_geometries(ref, ref_msi, out, s, tuple(shift["shift_lr_px"]))
        nr = noref_indexes(out, lr, msi, s, obs)
        rr = reduced_resolution_score(lr, msi, obs, lambda a, b, sc, m=m: fuse_model_based(a, b, sc, m)[0])
        rows[m] = {**both, "hqnr": round(nr["hqnr"], 4), "d_lambda": round(nr["d_lambda"], 4),
                   "d_s": round(nr["d_s"], 4), "spectral_residual": round(nr["spectral"]["rel_rmse"], 5),
                   "spatial_residual": round(nr["spatial"]["rel_rmse"], 5), "reduced_psnr": round(rr["psnr"], 3)}
        print(f"{name} {m:8s} HSI geometry {both['hsi']['psnr']:6.2f} dB  MSI geometry {both['msi']['psnr']:6.2f} dB  "
              f"HQNR {nr['hqnr']:.4f}  reduced {rr['psnr']:.2f} dB", flush=True)
    return {"scene": name, **info, "scale": s, "shift": shift, "observation": {
        k: v for k, v in obs.summary().items() if k in ("psf_source", "sigma_over_scale", "shift_dx_lr_px",
                                                        "shift_dy_lr_px", "msi_linear")}, "methods": rows}


def markdown(results: list[dict], methods) -> str:
    lines = ["| scene | method | PSNR / SAM / ERGAS, reference as it lies (HSI geometry) | same, reference on the MSI "
             "geometry | HQNR | D_lambda | D_s | spectral / spatial residual | reduced-res. PSNR |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for m in methods:
            v = r["methods"][m]
            h, g = v["hsi"], v["msi"]
            lines.append(f"| {r['scene']} | {m} | {h['psnr']:.2f} / {h['sam']:.2f} / {h['ergas']:.2f} | "
                         f"{g['psnr']:.2f} / {g['sam']:.2f} / {g['ergas']:.2f} | {v['hqnr']:.4f} | "
                         f"{v['d_lambda']:.4f} | {v['d_s']:.4f} | {v['spectral_residual']:.4f} / "
                         f"{v['spatial_residual']:.4f} | {v['reduced_psnr']:.2f} |")
        sh = r["shift"]
        lines.append("")
        lines.append(f"{r['scene']}: estimated HSI/MSI shift ({sh['shift_lr_px'][0]:+.3f}, {sh['shift_lr_px'][1]:+.3f}) "
                     f"LR px ({sh.get('method')}, confidence {sh.get('confidence')}); observation model "
                     f"{r['observation']}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "real_pairs.json"))
    a = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to evaluate.", file=sys.stderr)
        return 1
    methods = [m for m in a.methods.split(",") if m]
    results = [evaluate_pair(n, methods) for n in REAL_PAIRS]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"methods": methods, "scenes": results}, indent=1))
    Path(a.out).with_suffix(".md").write_text(markdown(results, methods))
    print(markdown(results, methods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

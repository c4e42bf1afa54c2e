#!/usr/bin/env python
"""Train, evaluate and export the model zoo. Reproducible (fixed seeds) and resumable.

One call = one run: corpus (training.corpus, fixed TRAIN/VAL/TEST split) -> Wald pairs at --scale with
Sentinel-2A B2/B3/B4/B8 SRFs -> training.cotrain.train (progress bar, JSON-lines log, checkpoint under
runs/<name>/, git-ignored) -> evaluation on the TEST split through the inference code path
(fusion.predictors.NetworkPredictor / ClassicalPredictor: per-scene classical coefficients fitted on the whole test
scene, whole scene in one window) -> docs/results/<name>.json -> with --export, models/<zoo>.safetensors +
card (student) and models/<zoo>_teacher (teacher).

Examples (each heavy run wrapped in flock so runs never overlap on shared CPUs):

    flock /tmp/csakd-heavy.lock .venv/bin/python scripts/train_zoo.py --name abl_base_corpus --scale 4 \\
        --residual base --sources enmap,jasper,urban,synthetic --steps 600 --mode student
    flock /tmp/csakd-heavy.lock .venv/bin/python scripts/train_zoo.py --name enmap_s2-4band_x4 --scale 4 \\
        --residual base --steps 1500 --export enmap_s2-4band_x4          # add --resume to continue
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENSOR = "S2A:B2,B3,B4,B8"
BASELINES = ("bicubic", "gsa", "glp")
KEYS = ("psnr", "sam", "ergas", "rmse", "ssim")


def _short(m: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(m[k]), 4) for k in KEYS if k in m}


def evaluate_predictor(pred: Any, scenes: list[Any]) -> dict[str, dict[str, float]]:
    """Metrics of a fusion.predictors predictor on whole Wald scenes (prepare on the scene itself, then predict)."""
    from csakd_qgis.quality.metrics import compute_metrics

    out = {}
    for sc in scenes:
        if hasattr(pred, "params") and getattr(pred, "method", None) is not None:
            pred.params = None  # classical: fit on THIS scene
        if getattr(pred, "base", None) is not None:
            pred.base.params = None
        pred.prepare(sc.lr, sc.msi)
        est = pred.predict(sc.lr[None], sc.msi[None])[0]
        out[sc.name] = _short(compute_metrics(sc.hr, est, sc.scale, mask=np.isfinite(sc.hr).all(0)))
    return out


def evaluate_all(student_path: Path | None, teacher_path: Path | None, scenes: list[Any], scale: int
                 ) -> dict[str, dict[str, dict[str, float]]]:
    from csakd_qgis.fusion.predictors import ClassicalPredictor, NetworkPredictor

    n_h, n_m = scenes[0].hr.shape[0], scenes[0].msi.shape[0]
    res = {m: evaluate_predictor(ClassicalPredictor(m, scale, n_h, n_m), scenes) for m in BASELINES}
    for role, p in (("student", student_path), ("teacher", teacher_path)):
        if p is not None:
            res[role] = evaluate_predictor(NetworkPredictor(p, device="cpu"), scenes)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", help="run name (runs/<name>/, docs/results/<name>.json)")
    ap.add_argument("--eval-last", action="store_true",
                    help="only add the last-checkpoint test metrics of run --name to its results JSON")
    ap.add_argument("--report", action="store_true", help="only print the markdown tables of docs/results/*.json")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--sources", default="enmap,jasper,urban,synthetic")
    ap.add_argument("--n-synthetic", type=int, default=6)
    ap.add_argument("--residual", default="base", choices=["base", "bilinear", "bicubic", "none"])
    ap.add_argument("--base-method", default="glp", choices=["glp", "gsa"])
    ap.add_argument("--mode", default="online", choices=["online", "student"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--patch", type=int, default=24, help="HR patch size (multiple of the scale)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--snr", type=float, default=40.0, help="AWGN SNR (dB) on the LR-HSI in training; 0 = none")
    ap.add_argument("--sam-loss", type=float, default=0.1, help="weight of the SAM loss term")
    ap.add_argument("--sam-kind", default="angle", choices=["angle", "cosine", "norm_weighted"],
                    help="SAM loss variant (norm_weighted: robust to dark spectra)")
    ap.add_argument("--sam-weight", type=float, default=1.0, help="selection score = PSNR - w * SAM")
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", default=None, help="zoo name: write models/<zoo>(.json/.safetensors) + _teacher")
    ap.add_argument("--fp16", action="store_true", help="store exported weights as float16 (checked lossless)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.report:
        print(report())
        return 0
    if not a.name:
        ap.error("--name is required")
    if a.eval_last:
        return eval_last(a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from csakd_qgis.spectral.srf import load_srf
    from csakd_qgis.training.config import TrainConfig
    from csakd_qgis.training.corpus import build_corpus, scene_provenance, to_scenes
    from csakd_qgis.training.cotrain import train

    torch.set_num_threads(a.threads)
    t0 = time.time()
    sources = [s.strip() for s in a.sources.split(",") if s.strip()]
    corpus = build_corpus(sources=sorted(set(sources) | {"enmap", "jasper"}), n_synthetic=a.n_synthetic
                          if "synthetic" in sources else 0, seed=a.seed)
    wl, fw = corpus.wavelengths, corpus.fwhm
    src_map = {"enmap": "enmap_potsdam", "jasper": "aviris_jasper_ridge", "urban": "hydice_urban",
               "synthetic": "synthetic-s2-earthlib", "extra_hsi": "extra_hsi"}
    train_cs = corpus.split("train", sources=[src_map[s] for s in sources])
    val_cs, test_cs = corpus.split("val"), corpus.split("test")
    train_sc = to_scenes(train_cs, wl, fw, SENSOR, a.scale)
    val_sc = to_scenes(val_cs, wl, fw, SENSOR, a.scale)
    test_sc = to_scenes(test_cs, wl, fw, SENSOR, a.scale)
    logging.info("corpus built in %.1f s: train %s", time.time() - t0, [s.name for s in train_sc])

    run_dir = ROOT / "runs" / a.name
    run_dir.mkdir(parents=True, exist_ok=True)
    srf = load_srf(SENSOR)
    msi_info = {"sensor": "Sentinel-2A MSI (pyrsr SRFs)", "band_names": list(srf.band_names),
                "wavelengths": [float(c) for c in srf.centroids()]}
    labels = {sc.name: sc.label() for sc in corpus.scenes}
    card = {"licence": "GPL-2.0-or-later (weights); training data credits in training.data",
            "hsi_sensor": "EnMAP HSI L2A (218 usable bands)",
            "training": {"data": [labels[s.name] for s in train_cs],
                         "provenance": scene_provenance(train_cs + val_cs),
                         "split": {"train": [s.name for s in train_cs], "val": [s.name for s in val_cs],
                                   "test": [s.name for s in test_cs]},
                         "msi_simulation": f"{SENSOR} SRFs (pyrsr) applied to the reference HSI",
                         "script": f"scripts/train_zoo.py {' '.join(argv if argv is not None else sys.argv[1:])}"}}
    cfg = TrainConfig(preset="lite", mode=a.mode, steps=a.steps, batch_size=a.batch_size, patch=a.patch, lr=a.lr,
                      snr_db=a.snr if a.snr > 0 else None, residual=a.residual, base_method=a.base_method,
                      loss={"sam": a.sam_loss, "sam_kind": a.sam_kind}, val_every=a.val_every, log_every=20, sam_weight=a.sam_weight,
                      val_at_start=True, seed=a.seed, device="cpu", threads=a.threads, out=str(run_dir / a.name),
                      resume=a.resume, progress_bar=not a.no_progress, card=card)
    t1 = time.time()
    res = train(train_sc, val_sc, cfg, wl, fw, msi_info)
    train_s = time.time() - t1
    logging.info("trained in %.1f s; best step %d", train_s, res.best_step)

    t2 = time.time()
    test = evaluate_all(res.student_path, res.teacher_path, test_sc, a.scale)
    val = evaluate_all(res.student_path, res.teacher_path, val_sc, a.scale)
    # honesty: also the LAST weights (not selected on validation), so the table shows what training did
    last = save_last(run_dir, a.name, res)
    if last:
        test["student_last"] = evaluate_all(last, None, test_sc, a.scale)["student"]
    out = {"name": a.name, "args": vars(a), "scale": a.scale, "train_scenes": [s.name for s in train_sc],
           "val_scenes": [s.name for s in val_sc], "test_scenes": [s.name for s in test_sc],
           "best_step": res.best_step, "steps": res.steps, "train_seconds": round(train_s, 1),
           "total_seconds": round(time.time() - t0, 1), "test": test, "val": val,
           "history": [{"step": h["step"], "student": _short(h["student"]),
                        **({"teacher": _short(h["teacher"])} if "teacher" in h else {})} for h in res.history],
           "software": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}}
    logging.info("evaluated in %.1f s", time.time() - t2)

    if a.export:
        out["_test_scenes"] = test_sc
        out["export"] = export(a, res, test, val, out)
        out.pop("_test_scenes")
    rdir = ROOT / "docs" / "results"
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / f"{a.name}.json").write_text(json.dumps(out, indent=1) + "\n")
    for scene in test["glp"]:
        row = "  ".join(f"{m}: {test[m][scene]['psnr']:.2f}/{test[m][scene]['sam']:.2f}" for m in test)
        print(f"[{a.name}] TEST {scene} psnr/sam  {row}")
    return 0


def report() -> str:
    """Markdown tables (TEST split) of every docs/results/*.json."""
    rows = []
    for f in sorted((ROOT / "docs" / "results").glob("*.json")):
        r = json.loads(f.read_text())
        for scene in r["test_scenes"]:
            t = r["test"]
            for m in ("bicubic", "gsa", "glp", "student", "student_last", "teacher"):
                if m in t and scene in t[m]:
                    x = t[m][scene]
                    rows.append(f"| {r['name']} | x{r['scale']} | {scene} | {m} | {x['psnr']:.2f} | {x['sam']:.3f} | "
                                f"{x['ergas']:.3f} | {r['best_step']}/{r['steps']} | {r['train_seconds']:.0f} |")
    head = ("| run | scale | test scene | method | PSNR dB | SAM deg | ERGAS | selected/steps | train s |\n"
            "|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


def eval_last(a: argparse.Namespace) -> int:
    """Test metrics of the last weights of a finished run (runs/<name>/), added to docs/results/<name>.json."""
    from types import SimpleNamespace

    from csakd_qgis.training.corpus import build_corpus, to_scenes

    f = ROOT / "docs" / "results" / f"{a.name}.json"
    r = json.loads(f.read_text())
    run_dir = ROOT / "runs" / a.name
    corpus = build_corpus(sources=("enmap", "jasper"), n_synthetic=0)
    test_sc = to_scenes(corpus.split("test"), corpus.wavelengths, corpus.fwhm, SENSOR, r["scale"])
    last = save_last(run_dir, a.name, SimpleNamespace(student_path=run_dir / f"{a.name}_student.json"))
    r["test"]["student_last"] = evaluate_all(last, None, test_sc, r["scale"])["student"]
    f.write_text(json.dumps(r, indent=1) + "\n")
    print(r["test"]["student_last"])
    return 0


def save_last(run_dir: Path, name: str, res: Any) -> Path | None:
    """Write the last student weights of the run's checkpoint as runs/<name>/<name>_last_student."""
    from csakd_qgis.nets.csakd import build_model
    from csakd_qgis.training.checkpoint import load_checkpoint
    from csakd_qgis.zoo.card import read_card, save_model

    ck_path = run_dir / f"{name}.ckpt.pt"
    if res.student_path is None or not ck_path.is_file():
        return None
    ck = load_checkpoint(ck_path)
    model = build_model(ck["student_cfg"])
    model.load_state_dict(ck["student"])
    card = read_card(res.student_path)
    card["name"] = f"{name}_last_student"
    path, _ = save_model(run_dir / f"{name}_last_student", model, card)
    return path


def export(a: argparse.Namespace, res: Any, test: dict, val: dict, summary: dict) -> dict[str, Any]:
    """Copy the best student/teacher into models/ with the test metrics (beside bicubic/gsa/glp) in the card.

    With --fp16 the weights are stored as float16 only if that changes the test PSNR by < 0.01 dB and SAM by
    < 0.01 deg (measured here); otherwise float32 is kept.
    """
    from csakd_qgis.nets.complexity import csakd_complexity
    from csakd_qgis.zoo.card import load_model, model_paths, save_model

    models = ROOT / "models"
    models.mkdir(exist_ok=True)
    test_sc = summary["_test_scenes"]
    info: dict[str, Any] = {}
    for role, src in (("student", res.student_path), ("teacher", res.teacher_path)):
        if src is None:
            continue
        name = a.export if role == "student" else f"{a.export}_teacher"
        model, card = load_model(src)
        card["name"] = name
        card["validation"]["test"] = {
            "protocol": ("Wald pairs (blur sigma s/2 + s x s block mean; S2A SRF MSI) of scenes never seen in "
                         "training or model selection; whole scene through fusion.predictors predictors with the "
                         "classical coefficients fitted on the test scene itself"),
            "scenes": summary["test_scenes"],
            "metrics": {m: test[m] for m in ("bicubic", "gsa", "glp", role)}}
        card["validation"]["val_predictor"] = {m: val[m] for m in ("bicubic", "gsa", "glp", role)}
        cx = csakd_complexity(model.cfg, hr_size=96)
        card["complexity"] = {"params": cx["params"], "conv_macs": cx["macs"], "attn_macs": cx["attn_macs"],
                              "hr_tile_px": 96 // a.scale * a.scale}
        stem = models / name
        fp16_used, fp16_check = False, None
        if a.fp16:
            save_model(stem, model, card, fp16=True)
            m16 = evaluate_all(model_paths(stem)[0] if role == "student" else None,
                               model_paths(stem)[0] if role == "teacher" else None, test_sc, a.scale)[role]
            d_psnr = max(abs(m16[k]["psnr"] - test[role][k]["psnr"]) for k in m16)
            d_sam = max(abs(m16[k]["sam"] - test[role][k]["sam"]) for k in m16)
            fp16_check = {"max_abs_dpsnr_db": round(d_psnr, 5), "max_abs_dsam_deg": round(d_sam, 5)}
            fp16_used = d_psnr < 0.01 and d_sam < 0.01
        card["storage"] = {"fp16": fp16_used, "fp16_check_on_test": fp16_check}
        save_model(stem, model, card, fp16=fp16_used)
        for f in model_paths(stem):
            f.chmod(0o644)  # modelcard writes via mkstemp (0600); zoo files are meant to be shared
        size = model_paths(stem)[1].stat().st_size
        info[role] = {"name": name, "params": cx["params"], "conv_macs_hr96": cx["macs"], "bytes": size,
                      "fp16": fp16_used, "fp16_check": fp16_check}
    return info


if __name__ == "__main__":
    raise SystemExit(main())

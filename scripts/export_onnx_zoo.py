#!/usr/bin/env python3
"""Export every zoo student to ONNX (fp32 + int8) and decide, on the held-apart TEST scenes, what ships.

For each student in models/: `csakd export` (fp32, int8), then the TEST scenes of the fixed corpus split (never
used for training or selection) are fused / super-resolved through the same predictors users run, with torch,
ONNX fp32 and ONNX int8. int8 ships only when it loses <= 0.1 dB mean PSNR against torch fp32 (else its file is
removed). Writes docs/results/onnx_zoo.json. Needs ../shared/data (EnMAP, Jasper). Run from the repository:
    flock /tmp/csakd-heavy.lock .venv/bin/python scripts/export_onnx_zoo.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INT8_MAX_LOSS_DB = 0.1
KEYS = ("psnr", "sam", "ergas")


def test_scenes(card: dict[str, Any]) -> list[Any]:
    """The TEST split (EnMAP 160_160/192_160 and the Jasper Ridge test strip) as Wald scenes at the card's scale."""
    from csakd_qgis.training.corpus import build_corpus, to_scenes

    corpus = build_corpus(sources=("enmap", "jasper"), n_synthetic=0)
    sensor = "S2A:" + ",".join(card["msi"]["band_names"])
    return to_scenes(corpus.split("test"), corpus.wavelengths, corpus.fwhm, sensor, int(card["scale"]))


def evaluate(pred: Any, scenes: list[Any], sr: bool) -> dict[str, dict[str, float]]:
    """Metrics per scene of a fusion or SR predictor on whole scenes (classical bases fitted on each scene)."""
    from csakd_qgis.quality.metrics import compute_metrics

    out = {}
    for sc in scenes:
        if sr:
            est = pred.predict(sc.lr[None])[0]
        else:
            if getattr(pred, "base", None) is not None:
                pred.base.params = None
            pred.prepare(sc.lr, sc.msi)
            est = pred.predict(sc.lr[None], sc.msi[None])[0]
        m = compute_metrics(sc.hr, est, sc.scale, mask=np.isfinite(sc.hr).all(0))
        out[sc.name] = {k: round(float(m[k]), 4) for k in KEYS}
    return out


def mean(per_scene: dict[str, dict[str, float]], key: str) -> float:
    return float(np.mean([v[key] for v in per_scene.values()]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="", help="comma-separated student names (default: every zoo student)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "onnx_zoo.json"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from csakd_qgis.fusion.onnx_export import export_onnx
    from csakd_qgis.fusion.predictors import NetworkPredictor
    from csakd_qgis.fusion.runtime import onnx_path
    from csakd_qgis.fusion.superresolve import NetworkSRPredictor
    from csakd_qgis.zoo.card import read_card

    names = [n for n in a.models.split(",") if n] or sorted(
        p.stem for p in (ROOT / "models").glob("*.json") if read_card(p).get("role") == "student")
    results: dict[str, Any] = {}
    for name in names:
        card_path = ROOT / "models" / f"{name}.json"
        card = read_card(card_path)
        sr = card.get("arch") == "dodn"
        rep = export_onnx(card_path, variants=("fp32", "int8"))
        scenes = test_scenes(card)
        make = NetworkSRPredictor if sr else NetworkPredictor
        metrics = {label: evaluate(make(card_path, device="cpu", runtime=rt, precision=prec, threads=2), scenes, sr)
                   for label, rt, prec in (("torch_fp32", "torch", "fp32"), ("onnx_fp32", "onnx", "fp32"),
                                           ("onnx_int8", "onnx", "int8"))}
        loss = mean(metrics["torch_fp32"], "psnr") - mean(metrics["onnx_int8"], "psnr")
        shipped = loss <= INT8_MAX_LOSS_DB
        if not shipped:
            onnx_path(card_path, "int8").unlink(missing_ok=True)
        export = rep.to_dict()
        for v in export["variants"]:  # paths inside the repository, not of this machine
            v["path"] = str(Path(v["path"]).relative_to(ROOT))
        results[name] = {"export": export, "test_metrics": metrics, "int8_psnr_loss_db": round(loss, 4),
                         "int8_shipped": shipped, "test_scenes": [s.name for s in scenes]}
        print(f"{name}: TEST PSNR torch {mean(metrics['torch_fp32'], 'psnr'):.3f} | onnx fp32 "
              f"{mean(metrics['onnx_fp32'], 'psnr'):.3f} | int8 {mean(metrics['onnx_int8'], 'psnr'):.3f} "
              f"(loss {loss:.3f} dB, {'shipped' if shipped else 'NOT shipped'})", flush=True)
    Path(a.out).write_text(json.dumps(results, indent=1, default=lambda x: None) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

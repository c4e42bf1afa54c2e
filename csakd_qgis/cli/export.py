"""``csakd export --onnx MODEL``: ONNX files of a zoo network beside its card, with size, speed and fidelity."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.onnx_export import export_onnx
from csakd_qgis.fusion.runtime import ONNX_VARIANTS
from csakd_qgis.raster.io import check_writable_folder
from csakd_qgis.zoo.registry import model_dirs, resolve_model_path


def _variants(text: str) -> list[str]:
    items = [v.strip().lower() for v in text.split(",") if v.strip()]
    bad = [v for v in items if v not in ONNX_VARIANTS]
    if not items or bad:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(ONNX_VARIANTS)} (comma-separated), got '{text}'")
    return items


def export_folder(card: Path, out: str | None) -> Path:
    """Where the ONNX files go: ``out``, else beside the card; CsakdError for a folder of the installed zoo
    (its shipped files are never rewritten) or one that cannot be written."""
    dest = Path(out).expanduser() if out else card.parent
    zoo = {d.resolve() for d in model_dirs() if d.is_dir()}
    if dest.resolve() in zoo:
        where = "--out" if out else f"the model '{card.stem}'"
        raise CsakdError(f"The ONNX files would go into the installed model zoo ('{dest}', {where}), which is never "
                         "rewritten: give --out FOLDER outside the zoo (or export a copy of the model).")
    if not dest.is_dir():
        raise CsakdError(f"The ONNX export folder '{dest}' does not exist or is not a folder: create it first.")
    check_writable_folder(dest / card.name, "ONNX export")
    return dest


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``export``."""
    p = subparsers.add_parser(
        "export", help="export a model to ONNX (runs in ONNX Runtime, no PyTorch needed)",
        description="Export a zoo network (fusion or single-image student) to ONNX files beside its card (or into --out; "
                    "never into the installed zoo): "
                    "<stem>.onnx (fp32), <stem>.int8.onnx (static int8, calibrated on synthetic patches on the "
                    "model's band grid), <stem>.fp16.onnx (GPU). Prints size, ONNX Runtime vs torch time per "
                    "tile and the difference to the torch output on the same tiles.")
    p.add_argument("--onnx", required=True, metavar="MODEL", help="zoo model name or .safetensors/.json path")
    p.add_argument("--variants", type=_variants, default=["fp32", "int8"], metavar="LIST",
                   help="comma-separated: fp32, int8, fp16 (default: fp32,int8)")
    p.add_argument("--out", default=None, metavar="FOLDER",
                   help="folder for the ONNX files (default: beside the model's card; a model of the installed "
                        "zoo needs it: the zoo is never rewritten)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads for the timings (default: 2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``csakd export``."""
    card = resolve_model_path(args.onnx)
    dest = export_folder(card, args.out)
    rep = export_onnx(card, variants=args.variants, threads=args.threads, out_dir=dest)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1, default=lambda x: None))
        return 0
    print(f"{rep.model}: torch {rep.torch_s_per_tile * 1e3:.0f} ms per {rep.tile_hr}^2 HR tile ({rep.threads} threads)")
    for v in rep.variants:
        speed = ("GPU only" if math.isnan(v.ort_s_per_tile) else
                 f"{v.ort_s_per_tile * 1e3:.0f} ms/tile ({v.ort_s_per_tile / rep.torch_s_per_tile:.2f} x torch)")
        fid = "" if math.isnan(v.max_abs_diff) else f", max |diff| {v.max_abs_diff:.2e}, PSNR vs torch {v.psnr_vs_torch_db:.1f} dB"
        print(f"  {v.variant:5s} {v.path} {v.bytes / 1e6:.2f} MB, {speed}{fid}")
    return 0

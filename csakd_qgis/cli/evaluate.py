"""``csakd evaluate``: full-reference metrics of a fused raster against a reference, next to bicubic, with an HTML report."""

from __future__ import annotations

import argparse
import logging

from csakd_qgis.cli.common import scale_arg
from csakd_qgis.errors import CsakdError
from csakd_qgis.quality.report import evaluate_rasters

log = logging.getLogger("csakd")


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate``: metrics of a fused HR-HSI against a reference (+ bicubic baseline, HTML report)."""
    p = subparsers.add_parser(
        "evaluate", help="compare a fused image with a reference: PSNR, SAM, ERGAS, RMSE, SSIM (+ HTML report)",
        description="Full-reference evaluation on reflectance. Bands are paired by wavelength; bad "
                    "bands of the reference are dropped. A bicubic baseline is always computed: from --lr if "
                    "given, else from the reference degraded by the Wald protocol.")
    p.add_argument("--reference", required=True, metavar="REF", help="reference high-resolution HSI raster")
    p.add_argument("--fused", required=True, metavar="F", help="fused HSI raster on the reference grid")
    p.add_argument("--scale", required=True, type=scale_arg, metavar="S", help="scale factor used (for ERGAS)")
    p.add_argument("--json", required=True, metavar="M.json", help="output metrics JSON")
    p.add_argument("--report", default=None, metavar="R.html", help="optional self-contained HTML report")
    p.add_argument("--lr", default=None, metavar="LR.tif", help="LR-HSI input, for the bicubic baseline")
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``csakd evaluate``."""

    if not str(args.json).lower().endswith(".json"):
        raise CsakdError(f"The metrics output '{args.json}' should end in .json.")
    if args.report is not None and not str(args.report).lower().endswith((".html", ".htm")):
        raise CsakdError(f"The report output '{args.report}' should end in .html.")
    res = evaluate_rasters(args.reference, args.fused, args.scale, json_path=args.json,
                           report_path=args.report, lr_path=args.lr)

    def line(name: str, m: dict) -> str:
        return (f"{name:8s} PSNR {m['psnr']:.2f} dB  SAM {m['sam']:.3f} deg  ERGAS {m['ergas']:.3f}  "
                f"RMSE {m['rmse']:.5f}  SSIM {m['ssim']:.4f}")

    print(line("fused", res))
    if "bicubic" in res:
        print(line("bicubic", res["bicubic"]))
    print(f"metrics -> {args.json}" + (f"; report -> {args.report}" if args.report else ""))
    return 0

"""``csakd evaluate``: metrics of a fused raster against a reference (next to bicubic), or without a reference from
its two inputs (consistency, HQNR, reduced-resolution score), with an HTML report."""

from __future__ import annotations

import argparse
import logging

from csakd_qgis.cli.common import scale_arg
from csakd_qgis.errors import CsakdError

log = logging.getLogger("csakd")


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate``: metrics of a fused HR-HSI against a reference (+ bicubic baseline, HTML report)."""
    p = subparsers.add_parser(
        "evaluate", help="quality of a fused image: against a reference (PSNR, SAM, ERGAS, RMSE, SSIM), or "
                         "without one from its inputs (consistency, D_lambda, D_s, HQNR) (+ HTML report)",
        description="With --reference: full-reference evaluation on reflectance. Bands are paired by wavelength; "
                    "bad bands of the reference are dropped. A bicubic baseline is always computed: from --lr if "
                    "given, else from the reference degraded by the Wald protocol. Without --reference (give --lr "
                    "and --msi, the inputs of the fusion): spectral consistency (the output degraded by the PSF "
                    "estimated from the pair vs the LR-HSI), spatial consistency (the estimated SRF applied to the "
                    "output vs the MSI), D_lambda, D_s and HQNR, and the reduced-resolution score (the pair "
                    "degraded by the scale, fused with the same method, compared with the LR-HSI), on a central "
                    "sample. With both, the JSON and report carry both.")
    p.add_argument("--reference", default=None, metavar="REF",
                   help="reference high-resolution HSI raster (omit for the no-reference evaluation)")
    p.add_argument("--fused", required=True, metavar="F", help="fused HSI raster (on the reference / MSI grid)")
    p.add_argument("--scale", default=None, type=scale_arg, metavar="S",
                   help="scale factor used (for ERGAS; needed with --reference; without it the HSI/MSI pixel-size "
                        "ratio, checked against S if given)")
    p.add_argument("--json", required=True, metavar="M.json", help="output metrics JSON")
    p.add_argument("--report", default=None, metavar="R.html", help="optional self-contained HTML report")
    p.add_argument("--lr", default=None, metavar="LR.tif",
                   help="LR-HSI input: the bicubic baseline, and with --msi the no-reference evaluation")
    p.add_argument("--msi", default=None, metavar="MSI.tif", help="HR-MSI input of the fusion (no-reference "
                   "evaluation, with --lr)")
    p.add_argument("--method", default=None, metavar="M", help="fusion method for the reduced-resolution check "
                   "(default: the one in the fused raster's tags)")
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``csakd evaluate``."""
    from csakd_qgis.fusion.noref import evaluate_noref_rasters, noref_evaluation
    from csakd_qgis.quality.report import evaluate_rasters

    if not str(args.json).lower().endswith(".json"):
        raise CsakdError(f"The metrics output '{args.json}' should end in .json.")
    if args.report is not None and not str(args.report).lower().endswith((".html", ".htm")):
        raise CsakdError(f"The report output '{args.report}' should end in .html.")
    if args.reference is None and (args.lr is None or args.msi is None):
        raise CsakdError("Give --reference (full-reference evaluation) or, without a reference, the fusion's inputs "
                         "--lr LR-HSI and --msi HR-MSI (no-reference evaluation).")
    if args.msi is not None and args.lr is None:
        raise CsakdError("--msi needs --lr (the LR-HSI fused with it) for the no-reference evaluation.")
    if args.reference is not None and args.scale is None:
        raise CsakdError("--reference needs --scale (the scale factor of the fusion, for ERGAS and the baseline).")
    if args.reference is None:
        res = evaluate_noref_rasters(args.fused, args.lr, args.msi, scale=args.scale, method=args.method,
                                     json_path=args.json, report_path=args.report)
        print_noref(res)
        print(f"metrics -> {args.json}" + (f"; report -> {args.report}" if args.report else ""))
        return 0
    noref = None
    if args.msi is not None:
        noref = noref_evaluation(args.fused, args.lr, args.msi, scale=args.scale, method=args.method,
                                 maps=args.report is not None)
    res = evaluate_rasters(args.reference, args.fused, args.scale, json_path=args.json,
                           report_path=args.report, lr_path=args.lr, no_reference=noref)

    def line(name: str, m: dict) -> str:
        return (f"{name:8s} PSNR {m['psnr']:.2f} dB  SAM {m['sam']:.3f} deg  ERGAS {m['ergas']:.3f}  "
                f"RMSE {m['rmse']:.5f}  SSIM {m['ssim']:.4f}")

    print(line("fused", res))
    if "bicubic" in res:
        print(line("bicubic", res["bicubic"]))
    if noref is not None:
        print_noref(noref[0])
    print(f"metrics -> {args.json}" + (f"; report -> {args.report}" if args.report else ""))
    return 0


def print_noref(res: dict) -> None:
    """The no-reference indexes in three lines."""
    sp, sa = res["spectral"], res["spatial"]
    print(f"spectral consistency (output degraded vs LR-HSI): PSNR {sp['psnr']:.2f} dB  SAM {sp['sam']:.3f} deg  "
          f"ERGAS {sp['ergas']:.3f}  residual {sp['rel_rmse']:.4f}; spatial (SRF(output) vs MSI): PSNR "
          f"{sa['psnr']:.2f} dB  residual {sa['rel_rmse']:.4f}")
    print(f"D_lambda {res['d_lambda']:.4f}  D_s {res['d_s']:.4f}  HQNR {res['hqnr']:.4f}")
    rr = res.get("reduced_resolution", {})
    if "psnr" in rr:
        print(f"reduced resolution ({rr['method']}): PSNR {rr['psnr']:.2f} dB  SAM {rr['sam']:.3f} deg  ERGAS "
              f"{rr['ergas']:.3f}")
    else:
        print(f"reduced resolution: skipped ({rr.get('skipped')})")

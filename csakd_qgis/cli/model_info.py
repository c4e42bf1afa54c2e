"""``csakd model-info``: print a model card (architecture, bands, scale, training, metrics) as JSON or text."""

from __future__ import annotations

import argparse
import json
from typing import Any

from csakd_qgis.errors import CsakdError


def add_model_info_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``csakd model-info``: parameters and conv MACs of a preset's teacher and student."""
    p = subparsers.add_parser("model-info", help="parameter and MAC counts of a network preset",
                              description="Print the parameters and conv multiply-accumulates (MACs, CSA "
                              "attention products excluded) of a preset's teacher and student for one HR tile.")
    p.add_argument("--preset", default="paper", choices=["paper", "lite"])
    p.add_argument("--arch", default="csakd", choices=["csakd", "dodn"],
                   help="csakd (fusion) or dodn (single-image SR student / spectral-SR teacher)")
    p.add_argument("--hsi-bands", type=int, default=172)
    p.add_argument("--msi-bands", type=int, default=4)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--hr-size", type=int, default=256, help="HR tile size in pixels (default 256)")
    p.set_defaults(func=run_model_info)
    return p


def run_model_info(args: argparse.Namespace) -> int:
    """Handler of ``csakd model-info``."""
    from csakd_qgis.nets.complexity import preset_complexity

    if getattr(args, "arch", "csakd") == "dodn":
        from csakd_qgis.nets.dodn import preset_complexity
    if args.hsi_bands < 1 or args.msi_bands < 1 or args.scale < 2 or args.hr_size < args.scale:
        raise CsakdError("Give --hsi-bands >= 1, --msi-bands >= 1, --scale >= 2 and --hr-size >= scale.")
    print(json.dumps(preset_complexity(args.preset, args.hsi_bands, args.msi_bands, args.scale, args.hr_size)))
    return 0

"""``csakd coregister``: resample/snap the LR-HSI onto the LR grid aligned with the HR-MSI and remove the sub-pixel shift."""

from __future__ import annotations

import argparse
import logging

from csakd_qgis.cli.common import creation_options
from csakd_qgis.raster.coreg import coregister

log = logging.getLogger("csakd")


def add_coregister_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``coregister``: write the HSI on the LR grid aligned to the MSI, report the shift."""
    p = subparsers.add_parser(
        "coregister", help="resample the hyperspectral image onto a grid aligned to the multispectral image",
        description="Write the HSI reprojected/snapped onto the low-resolution grid aligned with the MSI "
                    "(the MSI grid at s times its pixel size, over the overlap) and report the sub-pixel "
                    "HSI/MSI shift (LR pixels, +x east, +y south). By default the shift is also removed.")
    p.add_argument("--hsi", required=True, metavar="HSI", help="low-resolution hyperspectral raster")
    p.add_argument("--msi", required=True, metavar="MSI", help="high-resolution multispectral raster")
    p.add_argument("--out", required=True, metavar="OUT.tif", help="output GeoTIFF (HSI on the aligned grid)")
    p.add_argument("--no-shift-correct", action="store_true", help="only snap/reproject; report the shift")
    p.add_argument("--co", action="append", default=None, metavar="KEY=VAL",
                   help="GDAL GeoTIFF creation option, repeatable")
    p.set_defaults(func=run_coregister)
    return p


def run_coregister(args: argparse.Namespace) -> int:
    """Handler of ``csakd coregister``."""

    res = coregister(args.hsi, args.msi, args.out, shift_correct=not args.no_shift_correct,
                     creation_options=creation_options(args.co))
    for line in res.messages:
        log.info(line)
    print(f"{res.out_path}: {res.width} x {res.height} px, {res.bands} bands, scale {res.scale}, HSI shift "
          f"dx={res.shift_x:+.3f} dy={res.shift_y:+.3f} LR px{' (corrected)' if res.shift_corrected else ''}")
    return 0

"""``csakd superresolve``: single-image super-resolution of a hyperspectral raster (no MSI needed).

Thin wrapper around :func:`fusion.superresolve.superresolve` (the tiled raster engine of ``csakd fuse``) with a
tqdm progress bar. User errors are CsakdError (``csakd`` prints one line and exits 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from csakd_qgis.cli.common import (
    PRODUCT_HELP,
    add_cluster_arguments,
    add_run_arguments,
    creation_options,
    run_job,
    scale_arg,
)
from csakd_qgis.fusion.superresolve import superresolve


def add_superresolve_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``superresolve``: LR-HSI -> HR-HSI GeoTIFF on the HSI grid with pixel size / s."""
    p = subparsers.add_parser(
        "superresolve", help="super-resolve a hyperspectral image on its own (no multispectral image)",
        description="Super-resolve a hyperspectral image (HSI) by the model's scale s with a DODN-style "
                    "single-image student (trained with an MSI as privileged information; the MSI is not "
                    "needed here) or bicubic. The output is a GeoTIFF on the HSI grid with s times smaller "
                    "pixels (same origin and CRS), the HSI's bands (bad bands as nodata), wavelengths, FWHM "
                    "and band names, and the HSI's nodata value (else -9999).")
    p.add_argument("--hsi", required=True, metavar="HSI",
                   help="low-resolution hyperspectral raster, or a product: " + PRODUCT_HELP)
    p.add_argument("--model", required=True, metavar="M",
                   help="zoo super-resolution model name (e.g. enmap_x4_sr), a .safetensors model file with "
                        "its .json card beside it, or 'bicubic' (needs --scale)")
    p.add_argument("--out", required=True, metavar="OUT.tif", help="output GeoTIFF")
    p.add_argument("--scale", type=scale_arg, default=None, metavar="S",
                   help="scale factor: required for bicubic; for a model, checked against its card")
    add_run_arguments(p, "output pixels")
    add_cluster_arguments(p, blocks=True)
    p.set_defaults(func=run_superresolve)
    return p


def run_superresolve(args: argparse.Namespace, progress: Callable[[float, str], None] | None = None) -> int:
    """Handler of ``csakd superresolve``."""

    return run_job("superresolve", args, progress, superresolve, {"hsi": args.hsi}, model=args.model,
                   device=args.device, tile=args.tile, overlap=args.overlap, batch=args.batch, scale=args.scale,
                   creation_options=creation_options(args.co), threads=args.threads, precision=args.precision,
                   runtime=args.runtime)


__all__ = ["add_superresolve_parser", "run_superresolve"]

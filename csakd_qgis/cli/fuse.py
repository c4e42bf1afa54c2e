"""``csakd fuse``: the main fusion job (LR-HSI + HR-MSI -> HR-HSI GeoTIFF) with a progress bar and a short summary.

Thin wrappers: parse arguments, call :func:`fusion.fuse.fuse` / :func:`raster.coreg.coregister` with a tqdm
progress bar, print a short summary. User errors are raised as :class:`CsakdError` (``csakd`` prints them
on one line and exits 1).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from csakd_qgis.cli.common import (
    PRODUCT_HELP,
    add_cluster_arguments,
    add_run_arguments,
    creation_options,
    run_job,
)
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.methods import DEFAULT_METHOD, methods_help
from csakd_qgis.fusion.multires import uses_msi20
from csakd_qgis.raster.io import OUTPUT_DTYPES

log = logging.getLogger("csakd")


def add_fuse_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fuse``: LR-HSI + HR-MSI -> HR-HSI GeoTIFF on the MSI grid."""
    p = subparsers.add_parser(
        "fuse", help="fuse a low-resolution hyperspectral and a high-resolution multispectral image",
        description="Fuse a low-resolution hyperspectral image (HSI) with a high-resolution multispectral image "
                    "(MSI) of the same place into a hyperspectral GeoTIFF on the MSI grid (cropped to the "
                    "overlap). The HSI is reprojected/resampled onto the MSI grid when needed; the pixel-size "
                    "ratio must be about an integer >= 2. The output keeps the HSI's bands (bad bands as "
                    "nodata), wavelengths and FWHM; nodata -9999.")
    p.add_argument("--hsi", required=True, metavar="HSI",
                   help="low-resolution hyperspectral raster, or a product: " + PRODUCT_HELP)
    p.add_argument("--msi", required=True, metavar="MSI",
                   help="high-resolution multispectral raster, or a product (its PAN or finest bands; the same "
                        "PRISMA .he5 as --hsi gives its 5 m PAN)")
    p.add_argument("--model", default=DEFAULT_METHOD, metavar="M",
                   help="a fusion method: " + methods_help().replace("%", "%%") + " Or a zoo model name (csakd "
                        "models), or a .safetensors model file (default: %(default)s)")
    p.add_argument("--msi20", default=None, metavar="MSI20",
                   help="optional MSI at 2x coarser pixels, e.g. Sentinel-2 B5,B6,B7,B8A,B11,B12 at 20 m beside "
                        "--msi B2,B3,B4,B8 at 10 m (same CRS, pixel edges on the MSI's, covering the HSI): its "
                        "bands are sharpened to the MSI grid and fused as more MSI bands (classical and "
                        "model-based methods; with --srf SENSOR the 20 m bands' responses are appended)")
    p.add_argument("--out", required=True, metavar="OUT.tif", help="output GeoTIFF")
    add_run_arguments(p, "MSI pixels")
    p.add_argument("--psf", default="auto", metavar="PSF",
                   help="HSI blur for model-based methods: auto (Gaussian width and centre estimated from the pair), "
                        "wald (sigma = scale/2 MSI px) or gaussian:SIGMA (in MSI pixels) (default: %(default)s)")
    p.add_argument("--srf", default="auto", metavar="SRF",
                   help="MSI spectral response for model-based methods: auto (smooth non-negative fit on the pair), "
                        "auto:SENSOR (fit within e.g. S2A:B2,B3,B4,B8's bands), SENSOR or an SRF CSV file (the "
                        "published response, gain/offset fitted) (default: %(default)s)")
    p.add_argument("--shift-correct", action="store_true",
                   help="remove the estimated sub-pixel HSI/MSI shift before fusing (always estimated and "
                        "reported)")
    p.add_argument("--dtype", default="float32", choices=OUTPUT_DTYPES,
                   help="output data type: float32, or int16/uint16 storing reflectance x 10000 with a scale of "
                        "1e-4 (nodata -32768 / 65535; half the bytes; uint16 clips negative values to 0) "
                        "(default: %(default)s)")
    add_cluster_arguments(p, blocks=True)
    p.set_defaults(func=run_fuse)
    return p


def run_fuse(args: argparse.Namespace, progress: Callable[[float, str], None] | None = None) -> int:
    """Handler of ``csakd fuse``."""

    inputs = {"hsi": args.hsi, "msi": args.msi, **({"msi20": args.msi20} if args.msi20 else {})}
    return run_job("fuse", args, progress, fuse, inputs, takes_msi20=uses_msi20(args.model), model=args.model,
                   device=args.device, tile=args.tile, overlap=args.overlap, batch=args.batch,
                   shift_correct=args.shift_correct, creation_options=creation_options(args.co),
                   threads=args.threads, precision=args.precision, runtime=args.runtime,
                   model_options={"psf": args.psf, "srf": args.srf}, dtype=args.dtype)


__all__ = ["add_fuse_parser", "run_fuse"]

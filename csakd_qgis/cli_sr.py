"""``csakd superresolve``: single-image super-resolution of a hyperspectral raster (no MSI needed).

Thin wrapper around :func:`core.superresolve.superresolve` (the tiled raster engine of ``csakd fuse``) with a
tqdm progress bar. User errors are CsakdError (``csakd`` prints one line and exits 1).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from .cli_fuse import _Bar, _creation_options, _non_negative_int, _positive_int

log = logging.getLogger("csakd")


def _scale(text: str) -> int:
    v = _positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"expected an integer scale >= 2, got '{text}'")
    return v


def add_superresolve_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``superresolve``: LR-HSI -> HR-HSI GeoTIFF on the HSI grid with pixel size / s."""
    p = subparsers.add_parser(
        "superresolve", help="super-resolve a hyperspectral image on its own (no multispectral image)",
        description="Super-resolve a hyperspectral image (HSI) by the model's scale s with a DODN-style "
                    "single-image student (trained with an MSI as privileged information; the MSI is not "
                    "needed here) or bicubic. The output is a GeoTIFF on the HSI grid with s times smaller "
                    "pixels (same origin and CRS), the HSI's bands (bad bands as nodata), wavelengths, FWHM "
                    "and band names, and the HSI's nodata value (else -9999).")
    p.add_argument("--hsi", required=True, metavar="HSI", help="low-resolution hyperspectral raster")
    p.add_argument("--model", required=True, metavar="M",
                   help="zoo super-resolution model name (e.g. enmap_x4_sr), a .safetensors model file with "
                        "its .json card beside it, or 'bicubic' (needs --scale)")
    p.add_argument("--out", required=True, metavar="OUT.tif", help="output GeoTIFF")
    p.add_argument("--scale", type=_scale, default=None, metavar="S",
                   help="scale factor: required for bicubic; for a model, checked against its card")
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="auto (CUDA if available), cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                   help="network precision on CUDA (default: %(default)s)")
    p.add_argument("--tile", type=_positive_int, default=256, metavar="PX",
                   help="tile size in output pixels, rounded up to a multiple of the scale (default: %(default)s)")
    p.add_argument("--overlap", type=_non_negative_int, default=32, metavar="PX",
                   help="tile overlap in output pixels, blended with a raised cosine (default: %(default)s)")
    p.add_argument("--batch", type=_positive_int, default=4, metavar="N",
                   help="tiles per network call (default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N", help="CPU threads for torch")
    p.add_argument("--co", action="append", default=None, metavar="KEY=VAL",
                   help="GDAL GeoTIFF creation option, repeatable (e.g. --co COMPRESS=LZW)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_superresolve)
    return p


def run_superresolve(args: argparse.Namespace, progress: Callable[[float, str], None] | None = None) -> int:
    """Handler of ``csakd superresolve``."""
    from .core.superresolve import superresolve

    co = _creation_options(args.co)
    bar = _Bar("superresolve", enabled=not getattr(args, "no_progress", False)) if progress is None else None
    try:
        result = superresolve(args.hsi, args.out, model=args.model, device=args.device, tile=args.tile,
                              overlap=args.overlap, batch=args.batch, scale=args.scale, creation_options=co,
                              progress=progress or bar, threads=args.threads, precision=args.precision)
    finally:
        if bar is not None:
            bar.close()
    for line in result.messages[:-1]:
        log.info(line)
    print(result.summary())
    return 0


__all__ = ["add_superresolve_parser", "run_superresolve"]

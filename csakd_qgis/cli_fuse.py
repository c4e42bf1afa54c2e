"""``csakd fuse`` and ``csakd coregister``: the main fusion job and HSI-onto-MSI co-registration.

Thin wrappers: parse arguments, call :func:`core.fuse.fuse` / :func:`core.coreg.coregister` with a tqdm
progress bar, print a short summary. User errors are raised as :class:`CsakdError` (``csakd`` prints them
on one line and exits 1).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from .core.errors import CsakdError

log = logging.getLogger("csakd")


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """argparse type: an integer >= minimum (``what`` names it in the error)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return v

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _creation_options(items: list[str] | None) -> dict[str, str]:
    from .core.io import parse_creation_options

    return parse_creation_options(" ".join(items or []))


class _Bar:
    """tqdm bar driven by progress(fraction, message) callbacks (percent units)."""

    def __init__(self, desc: str, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=desc, unit="%", disable=not enabled,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
        self.last = 0

    def __call__(self, fraction: float, message: str) -> None:
        pos = int(round(100 * fraction))
        if pos > self.last:
            self.bar.update(pos - self.last)
            self.last = pos
        self.bar.set_postfix_str(message, refresh=False)

    def close(self) -> None:
        self.bar.close()


def add_run_arguments(p: argparse.ArgumentParser, pixels: str) -> None:
    """Device, precision, tiling, threads, creation options and progress of the tiled engine's commands."""
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="auto (CUDA if available), cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                   help="network precision on CUDA (default: %(default)s)")
    p.add_argument("--tile", type=_positive_int, default=256, metavar="PX",
                   help=f"tile size in {pixels}, rounded up to a multiple of the scale (default: %(default)s)")
    p.add_argument("--overlap", type=_non_negative_int, default=32, metavar="PX",
                   help=f"tile overlap in {pixels}, blended with a raised cosine (default: %(default)s)")
    p.add_argument("--batch", type=_positive_int, default=4, metavar="N",
                   help="tiles per network call (default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N", help="CPU threads for torch")
    p.add_argument("--co", action="append", default=None, metavar="KEY=VAL",
                   help="GDAL GeoTIFF creation option, repeatable (e.g. --co COMPRESS=LZW)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_with_bar(name: str, args: argparse.Namespace, progress: Callable[[float, str], None] | None,
                 job: Callable[[Callable[[float, str], None] | None], Any]) -> int:
    """Run ``job(progress)`` with a tqdm bar (unless a callback is given), log its messages, print its summary."""
    bar = _Bar(name, enabled=not getattr(args, "no_progress", False)) if progress is None else None
    try:
        result = job(progress or bar)
    finally:
        if bar is not None:
            bar.close()
    for line in result.messages[:-1]:
        log.info(line)
    print(result.summary())
    return 0


def add_fuse_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fuse``: LR-HSI + HR-MSI -> HR-HSI GeoTIFF on the MSI grid."""
    p = subparsers.add_parser(
        "fuse", help="fuse a low-resolution hyperspectral and a high-resolution multispectral image",
        description="Fuse a low-resolution hyperspectral image (HSI) with a high-resolution multispectral image "
                    "(MSI) of the same place into a hyperspectral GeoTIFF on the MSI grid (cropped to the "
                    "overlap). The HSI is reprojected/resampled onto the MSI grid when needed; the pixel-size "
                    "ratio must be about an integer >= 2. The output keeps the HSI's bands (bad bands as "
                    "nodata), wavelengths and FWHM; nodata -9999.")
    p.add_argument("--hsi", required=True, metavar="HSI", help="low-resolution hyperspectral raster")
    p.add_argument("--msi", required=True, metavar="MSI", help="high-resolution multispectral raster")
    p.add_argument("--model", default="glp", metavar="M",
                   help="classical method (glp, gsa, bicubic), zoo model name, or a .safetensors model file "
                        "(default: %(default)s)")
    p.add_argument("--out", required=True, metavar="OUT.tif", help="output GeoTIFF")
    add_run_arguments(p, "MSI pixels")
    p.add_argument("--shift-correct", action="store_true",
                   help="remove the estimated sub-pixel HSI/MSI shift before fusing (always estimated and "
                        "reported)")
    p.set_defaults(func=run_fuse)
    return p


def run_fuse(args: argparse.Namespace, progress: Callable[[float, str], None] | None = None) -> int:
    """Handler of ``csakd fuse``."""
    from .core.fuse import fuse

    co = _creation_options(args.co)
    return run_with_bar("fuse", args, progress, lambda prog: fuse(
        args.hsi, args.msi, args.out, model=args.model, device=args.device, tile=args.tile, overlap=args.overlap,
        batch=args.batch, shift_correct=args.shift_correct, creation_options=co, progress=prog,
        threads=args.threads, precision=args.precision))


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
    from .core.coreg import coregister

    res = coregister(args.hsi, args.msi, args.out, shift_correct=not args.no_shift_correct,
                     creation_options=_creation_options(args.co))
    for line in res.messages:
        log.info(line)
    print(f"{res.out_path}: {res.width} x {res.height} px, {res.bands} bands, scale {res.scale}, HSI shift "
          f"dx={res.shift_x:+.3f} dy={res.shift_y:+.3f} LR px{' (corrected)' if res.shift_corrected else ''}")
    return 0


__all__ = ["CsakdError", "add_coregister_parser", "add_fuse_parser", "run_coregister", "run_fuse"]

"""Shared pieces of the subcommands: argument types, run options (device, tiles, creation options) and the tqdm progress bar."""

from __future__ import annotations

import argparse
import inspect
import logging
from collections.abc import Callable
from typing import Any

from csakd_qgis.distributed.blocks import LAYOUTS, run_blocks
from csakd_qgis.fusion.runtime import RUNTIME_CHOICES
from csakd_qgis.nets.device import PRECISIONS
from csakd_qgis.products.inputs import product_inputs
from csakd_qgis.raster.io import parse_creation_options
from csakd_qgis.zoo.registry import model_input_files

log = logging.getLogger("csakd")
# what --hsi / --msi accept besides rasters (folder, zip or main metadata file of a delivered product)
PRODUCT_HELP = ("EnMAP L2A or DESIS L2A folder/zip/METADATA.XML, PRISMA L2D .he5, EMIT L2A .nc, Sentinel-2 L2A "
                ".SAFE, Landsat 8/9 C2 L2 folder (scale/offset, band centres and cloud masks from the product)")


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
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


def creation_options(items: list[str] | None) -> dict[str, str]:

    return parse_creation_options(" ".join(items or []))


class ProgressBar:
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
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="network precision: fp16/bf16 on CUDA; int8 = the quantised ONNX model (default: %(default)s)")
    p.add_argument("--runtime", default="auto", choices=RUNTIME_CHOICES,
                   help="learned models: torch, onnx (ONNX Runtime, no PyTorch needed) or auto = torch when "
                        "installed, else onnx (default: %(default)s)")
    p.add_argument("--tile", type=positive_int, default=256, metavar="PX",
                   help=f"tile size in {pixels}, rounded up to a multiple of the scale (default: %(default)s)")
    p.add_argument("--overlap", type=non_negative_int, default=32, metavar="PX",
                   help=f"tile overlap in {pixels}, blended with a raised cosine (default: %(default)s)")
    p.add_argument("--batch", type=positive_int, default=4, metavar="N",
                   help="tiles per network call (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads of the network runtime")
    p.add_argument("--co", action="append", default=None, metavar="KEY=VAL",
                   help="GDAL GeoTIFF creation option, repeatable (e.g. --co COMPRESS=LZW)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_cluster_arguments(p: argparse.ArgumentParser, blocks: bool = False) -> None:
    """Where to run (Dask): a LocalCluster of N worker processes or a running cluster's scheduler; retries.

    ``blocks``: also ``--parts``/``--layout`` of one raster split into block tasks (:func:`run_job`).
    """
    g = p.add_argument_group("scale-out on Dask (needs dask[distributed])")
    g.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="run on a local Dask cluster of N worker processes (N > 1; default: this process)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://head:8786)")
    g.add_argument("--retries", type=non_negative_int, default=1, metavar="N",
                   help="extra attempts of a task that failed for a reason other than its inputs "
                        "(default: %(default)s)")
    if blocks:
        g.add_argument("--parts", type=positive_int, default=None, metavar="N",
                       help="block tasks, each a range of output column groups (default: one per worker; "
                            "every task repeats the set-up)")
        g.add_argument("--layout", default="gtiff", choices=LAYOUTS,
                       help="the blocks assembled into a tiled GeoTIFF like a single-process run's, or a "
                            "Cloud-Optimized GeoTIFF with overviews (default: %(default)s)")


def run_job(name: str, args: argparse.Namespace, progress: Callable[[float, str], None] | None,
            entry: Callable[..., Any], inputs: dict[str, str], takes_msi20: bool | None = None,
            **options: Any) -> int:
    """``entry(**inputs, out=args.out, **options)`` with a bar: in this process, or as Dask block tasks when
    ``--workers`` > 1 or ``--scheduler`` is given (:func:`distributed.blocks.run_blocks`).

    Inputs that are sensor products (folder, zip, metadata file) are read into GeoTIFFs first
    (:func:`products.inputs.product_inputs`); a product's 20 m bands go to ``msi20`` when ``takes_msi20``
    (default: when ``entry`` has that argument)."""
    if takes_msi20 is None:
        takes_msi20 = "msi20" in inspect.signature(entry).parameters
    reads = model_input_files(options.get("model"))
    with product_inputs(inputs, args.out, takes_msi20=takes_msi20, log=log.info, reads=reads) as (paths, notes):
        for line in notes:
            log.info(line)
        if args.scheduler or (args.workers or 1) > 1:
            return run_with_bar(name, args, progress, lambda prog: run_blocks(
                entry, paths, args.out, scheduler=args.scheduler, workers=args.workers, parts=args.parts,
                layout=args.layout, retries=args.retries, progress=prog, **options))
        return run_with_bar(name, args, progress, lambda prog: entry(**paths, out=args.out, progress=prog, **options))


def run_with_bar(name: str, args: argparse.Namespace, progress: Callable[[float, str], None] | None,
                 job: Callable[[Callable[[float, str], None] | None], Any]) -> int:
    """Run ``job(progress)`` with a tqdm bar (unless a callback is given), log its messages, print its summary."""
    bar = ProgressBar(name, enabled=not getattr(args, "no_progress", False)) if progress is None else None
    try:
        result = job(progress or bar)
    finally:
        if bar is not None:
            bar.close()
    for line in result.messages[:-1]:
        log.info(line)
    print(result.summary())
    return 0


def scale_arg(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be an integer >= 2, got '{text}'") from None
    if value != int(value) or value < 2:
        raise argparse.ArgumentTypeError(f"scale must be an integer >= 2, got '{text}'")
    return int(value)


positive_int = int_at_least(1, "a positive integer")


non_negative_int = int_at_least(0, "an integer >= 0")

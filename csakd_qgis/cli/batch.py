"""``csakd batch``: fuse every pair of a jobs table (CSV/JSON), one task per pair, locally or on a Dask cluster."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

from csakd_qgis.cli.common import add_cluster_arguments, add_run_arguments, creation_options, run_with_bar
from csakd_qgis.distributed.batch import PAIR_OPTIONS, match_folders, run_batch
from csakd_qgis.errors import CsakdError

log = logging.getLogger("csakd")


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``batch``: a jobs table in, fused outputs + a summary (JSON and CSV) out."""
    p = subparsers.add_parser(
        "batch", help="fuse many HSI/MSI pairs listed in a table, optionally on a Dask cluster",
        description="Fuse every pair of a jobs table: a CSV with the columns hsi,msi,out (paths, relative to "
                    "the table's folder) and optional per-row columns "
                    f"{','.join(PAIR_OPTIONS)},reference (an HR reference: its metrics go into the summary), "
                    "or a JSON list of such objects; or two folders (--hsi-dir, --msi-dir, --out-dir): each HSI "
                    "with the MSI covering most of its footprint, the nearest date (from the file names) first. "
                    "Each pair is one task with its own log; a pair that fails "
                    "does not stop the others. Outputs that already exist and are complete are skipped "
                    "(--no-resume redoes them). The summary (status, seconds, device, error, metrics per pair) "
                    "is written as JSON and CSV. Exit status 1 when a pair failed.")
    p.add_argument("jobs", metavar="JOBS", nargs="?", help="jobs table (.csv or .json)")
    p.add_argument("--hsi-dir", default=None, metavar="DIR", help="instead of JOBS: a folder of HSIs ...")
    p.add_argument("--msi-dir", default=None, metavar="DIR", help="... matched with the MSIs of this folder ...")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="... fused into this folder as <hsi>_fused.tif (summary: batch_summary.json there)")
    p.add_argument("--model", default="glp", metavar="M",
                   help="model for rows without a model column (default: %(default)s)")
    p.add_argument("--summary", default=None, metavar="SUMMARY.json",
                   help="summary file (default: JOBS_summary.json beside the table; a .csv and a _logs folder "
                        "beside it)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="fuse every pair again, even those whose output is complete")
    add_run_arguments(p, "MSI pixels")
    add_cluster_arguments(p)
    p.set_defaults(func=run_batch_command)
    return p


def run_batch_command(args: argparse.Namespace, progress: Callable[[float, str], None] | None = None) -> int:
    """Handler of ``csakd batch`` (1 when a pair failed)."""
    defaults = dict(model=args.model, device=args.device, precision=args.precision, tile=args.tile,
                    overlap=args.overlap, batch=args.batch, threads=args.threads)
    co = creation_options(args.co)
    if co:
        defaults["creation_options"] = co
    jobs, summary = args.jobs, args.summary
    folders = (args.hsi_dir, args.msi_dir, args.out_dir)
    if any(folders) or not jobs:
        if jobs or not all(folders):
            raise CsakdError("Give either a jobs table (JOBS) or all of --hsi-dir, --msi-dir and --out-dir.")
        jobs, notes = match_folders(*folders)
        for line in notes:
            log.warning(line)
        summary = summary or str(Path(args.out_dir) / "batch_summary.json")
    results = []

    def job(prog):
        results.append(run_batch(jobs, scheduler=args.scheduler, workers=args.workers, retries=args.retries,
                                 resume=args.resume, summary=summary, progress=prog, **defaults))
        return results[0]

    run_with_bar("batch", args, progress, job)
    return 1 if results[0].count("failed") else 0


__all__ = ["add_batch_parser", "run_batch_command"]

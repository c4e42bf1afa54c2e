"""Many pairs: a jobs table (CSV or JSON) run as one task per pair on a Dask cluster or in this process.

Table: one row per pair with the columns ``hsi``, ``msi``, ``out`` (paths; relative ones are relative to the
table's folder) and optional per-row options (``PAIR_OPTIONS``: model, device, tile, overlap, batch,
threads, precision, shift_correct, edge, dtype) and ``reference`` (an HR reference HSI: the summary gets its
metrics). A JSON table is a list of such objects (or ``{"jobs": [...]}``). Or two folders
(:func:`match_folders`): each HSI paired with the MSI covering most of its footprint, nearest date first.

Each pair is one task (:func:`run_pair`): :func:`fusion.fuse.fuse` with its own thread count (the row's,
the batch's, or the worker's), a log file of its own, and a record (status, seconds, device, error line,
metrics). A user error (CsakdError: a missing or unreadable input, a model that does not fit) fails that
pair alone and is not retried; any other exception (a lost worker, a full disk) is retried ``retries``
times. With ``resume`` a pair whose output exists and is complete (written by a fusion of the same inputs:
outputs appear only when finished) is skipped. The summary is written as JSON and CSV.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from csakd_qgis.distributed.cluster import DaskExecutor, SerialExecutor, executor, task_key, task_options
from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.failures import failure_message
from csakd_qgis.raster.coreg import _footprint
from csakd_qgis.raster.io import read_meta, write_bytes_atomic
from csakd_qgis.raster.job import check_int
from csakd_qgis.zoo.registry import model_input_files

log = logging.getLogger("csakd_qgis.distributed")

REQUIRED = ("hsi", "msi", "out")
PAIR_OPTIONS: dict[str, type] = {"model": str, "device": str, "tile": int, "overlap": int, "batch": int,
                                 "threads": int, "precision": str, "shift_correct": bool, "edge": str,
                                 "dtype": str}
METRICS = ("psnr", "sam", "ergas", "rmse", "ssim")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class PairJob:
    """One row of a jobs table: the pair's paths, its fuse options and an optional reference."""

    row: int
    hsi: str
    msi: str
    out: str
    options: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None


@dataclass
class PairRecord:
    """What became of one pair (a row of the summary)."""

    row: int
    hsi: str
    msi: str
    out: str
    status: str  # done | failed | skipped | not run (the batch was stopped first)
    seconds: float | None = None
    device: str = ""
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    log: str = ""


@dataclass
class BatchResult:
    """A batch run: one record per row, where it ran, the summary files."""

    records: list[PairRecord]
    elapsed_s: float
    where: str
    summary_json: str = ""
    summary_csv: str = ""
    messages: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Pairs with this status."""
        return sum(r.status == status for r in self.records)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{len(self.records)} pairs: {self.count('done')} done, {self.count('failed')} failed, "
                f"{self.count('skipped')} skipped in {self.elapsed_s:.1f} s on {self.where}; summary "
                f"{self.summary_json}")


# ------------------------------------------------------------------------------------------ the table
def _option(value: Any, kind: type, name: str, where: str) -> Any:
    """A table cell converted to the option's type; CsakdError naming the row and column otherwise."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE + _FALSE:
            return text in _TRUE
        raise CsakdError(f"{where}: column '{name}' must be true or false (got {value!r}).")
    if kind is int:
        try:
            return check_int(name, value, 0)
        except CsakdError as exc:
            raise CsakdError(f"{where}: {exc}") from None
    return str(value).strip()


def _rows(path: Path) -> list[dict[str, Any]]:
    """The table's rows as dicts (CSV: header row, '#' comment lines and blank lines skipped)."""
    if not path.is_file():
        raise CsakdError(f"The jobs table '{path}' does not exist: give a CSV (hsi,msi,out) or JSON file.")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CsakdError(f"The jobs table '{path}' is not valid JSON ({exc}).") from None
        data = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise CsakdError(f"The jobs table '{path}' must be a JSON list of objects with hsi, msi and out "
                             "(or {\"jobs\": [...]}).")
        return data
    if path.suffix.lower() != ".csv":
        raise CsakdError(f"The jobs table '{path}' must be a .csv or .json file.")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines, skipinitialspace=True)
    return [{(k or "").strip().lower(): v for k, v in row.items()} for row in reader]


def read_jobs(path: str | os.PathLike) -> list[PairJob]:
    """The pairs of a jobs table; CsakdError naming the row and column of a malformed entry."""
    p = Path(str(path)).expanduser()
    rows = _rows(p)
    if not rows:
        raise CsakdError(f"The jobs table '{p}' has no rows: add one line per pair (hsi,msi,out).")
    known = set(REQUIRED) | set(PAIR_OPTIONS) | {"reference"}
    base = p.parent
    jobs = []
    for i, row in enumerate(rows, 1):
        where = f"Jobs table '{p.name}', row {i}"
        unknown = sorted(k for k in row if k not in known)
        if unknown:
            raise CsakdError(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                             f"{', '.join(REQUIRED)} and optionally {', '.join([*PAIR_OPTIONS, 'reference'])}.")
        missing = [k for k in REQUIRED if not str(row.get(k) or "").strip()]
        if missing:
            raise CsakdError(f"{where}: no {', '.join(missing)}: every row needs the hsi, msi and out paths.")
        paths = {k: str(base / os.path.expanduser(str(row[k]).strip())) for k in (*REQUIRED, "reference")
                 if str(row.get(k) or "").strip()}
        out = os.path.normpath(paths["out"])
        opts = {k: _option(row[k], kind, k, where) for k, kind in PAIR_OPTIONS.items()
                if row.get(k) is not None and str(row[k]).strip() != ""}
        jobs.append(PairJob(i, paths["hsi"], paths["msi"], out, opts, paths.get("reference")))
    check_table_paths(jobs, f"Jobs table '{p.name}'")
    return jobs


def _file_key(path: str) -> tuple:
    """What makes two spellings one file: device and inode when it exists, else the path with symlinks and
    ``..`` resolved."""
    real = os.path.realpath(os.path.expanduser(path))
    try:
        st = os.stat(real)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", real)


def check_table_paths(jobs: Sequence[PairJob], where: str = "The batch") -> None:
    """CsakdError, before anything runs, when two rows write one output or a row's output is a file any row
    reads (symlinked folders and ``..`` resolved); the error names both rows."""
    reads: dict[tuple, tuple[int, str]] = {}
    for job in jobs:
        for col in ("hsi", "msi", "reference"):
            path = getattr(job, col)
            if path:
                reads.setdefault(_file_key(path), (job.row, col))
        for f in model_input_files(job.options.get("model")):
            reads.setdefault(_file_key(str(f)), (job.row, "model"))
    outs: dict[tuple, int] = {}
    for job in jobs:
        key = _file_key(job.out)
        if key in outs:
            raise CsakdError(f"{where}: rows {outs[key]} and {job.row} write the same output "
                             f"'{job.out}': give every pair its own output file.")
        outs[key] = job.row
        if key in reads:
            row, col = reads[key]
            raise CsakdError(f"{where}: the output '{job.out}' of row {job.row} is the {col} input of "
                             f"row {row}: writing it would overwrite that input. Give it another output file.")


_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_]?([01]\d)[-_]?([0-3]\d)(?!\d)")
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".dat", ".bsq", ".bil", ".nc", ".jp2")


def name_date(path: str | os.PathLike) -> datetime.date | None:
    """The acquisition date in a file name (YYYYMMDD, YYYY-MM-DD or YYYY_MM_DD), or None."""
    for m in _DATE.finditer(Path(str(path)).name):
        try:
            return datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def _rasters(folder: Path, role: str) -> list[Path]:
    """The raster files of a folder (sorted); CsakdError when it is missing or has none."""
    if not folder.is_dir():
        raise CsakdError(f"The {role} folder '{folder}' does not exist: give a folder of rasters.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
    if not files:
        raise CsakdError(f"The {role} folder '{folder}' holds no raster ({', '.join(RASTER_SUFFIXES)}).")
    return files


def match_folders(hsi_dir: str | os.PathLike, msi_dir: str | os.PathLike, out_dir: str | os.PathLike
                  ) -> tuple[list[PairJob], list[str]]:
    """Pairs from two folders: each HSI with the MSI whose footprint covers most of it (ties: nearest date).

    Dates come from the file names; outputs are ``out_dir/<hsi stem>_fused.tif``. Returns the jobs and one
    message per HSI that no MSI overlaps (those are left out).
    """
    hsis, msis = _rasters(Path(str(hsi_dir)), "HSI"), _rasters(Path(str(msi_dir)), "MSI")
    out = Path(str(out_dir))
    if not out.is_dir():
        raise CsakdError(f"The output folder '{out}' does not exist: create it first.")
    msi_meta = [read_meta(m, "MSI") for m in msis]
    jobs, messages = [], []
    for h in hsis:
        meta = read_meta(h, "HSI")
        own = _footprint(meta, meta.crs)
        day = name_date(h)
        best = None
        for m, mm in zip(msis, msi_meta, strict=True):
            cover = own.intersection(_footprint(mm, meta.crs)).area / max(own.area, 1e-12)
            other = name_date(m)
            days = abs((other - day).days) if day and other else 10 ** 6
            if cover > 0 and (best is None or (round(cover, 3), -days) > best[0]):
                best = ((round(cover, 3), -days), m)
        if best is None:
            messages.append(f"HSI '{h.name}': no MSI in '{msi_dir}' overlaps it; left out.")
            continue
        jobs.append(PairJob(len(jobs) + 1, str(h), str(best[1]), str(out / f"{h.stem}_fused.tif")))
    if not jobs:
        raise CsakdError(f"No HSI in '{hsi_dir}' overlaps an MSI in '{msi_dir}': check the folders and CRSs.")
    return jobs, messages


# ------------------------------------------------------------------------------------------ one pair
BATCH_TAG = "CSAKD_BATCH"  # what made a batch output: its inputs and the options that shape the result
NOT_RESULT_OPTIONS = ("threads", "batch")  # speed only: the same output whatever their value


def provenance(job: PairJob, defaults: Mapping[str, Any]) -> str:
    """The output's ``CSAKD_BATCH`` tag: resolved inputs, their size and time, and the fuse options used."""
    def stamp(path: str) -> list:
        try:
            st = os.stat(path)
            return [os.path.realpath(path), st.st_size, st.st_mtime_ns]
        except OSError:
            return [os.path.realpath(path)]

    opts = {k: v for k, v in {**defaults, **job.options}.items() if k not in NOT_RESULT_OPTIONS}
    return json.dumps({"hsi": stamp(job.hsi), "msi": stamp(job.msi), "options": opts}, sort_keys=True,
                      default=str)


def is_complete(job: PairJob, defaults: Mapping[str, Any] | None = None) -> bool:
    """Whether ``job.out`` is a finished fusion made from ``job``'s inputs with its options (the tag it was
    written with says so; written last, so a partial output has none)."""
    if not os.path.isfile(job.out):
        return False
    import rasterio

    try:
        with rasterio.open(job.out) as ds:
            tag = ds.tags().get(BATCH_TAG)
    except rasterio.errors.RasterioIOError:
        return False
    return tag == provenance(job, defaults or {})


def _error_line(exc: BaseException) -> str:
    """One line for the summary: a CsakdError's message, else the exception type and its first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, CsakdError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def run_pair(job: PairJob, log_path: str, defaults: Mapping[str, Any]) -> PairRecord:
    """Worker side: fuse one pair with its log file; a CsakdError becomes a failed record (no retry)."""
    from csakd_qgis.fusion.fuse import fuse

    engine = logging.getLogger("csakd_qgis")
    handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    thread = threading.get_ident()
    handler.addFilter(lambda rec: rec.thread == thread)  # this pair's records only (threaded workers)
    level, propagate = engine.level, engine.propagate
    engine.addHandler(handler)
    engine.setLevel(logging.DEBUG)
    engine.propagate = False  # the pair's detail goes to its log, not to the console
    record = PairRecord(job.row, job.hsi, job.msi, job.out, "failed", log=log_path)
    opts = task_options({**defaults, **job.options})
    t0 = time.perf_counter()
    try:
        log.info("pair %d on %s (pid %d): %s + %s -> %s, options %s", job.row, socket.gethostname(), os.getpid(),
                 job.hsi, job.msi, job.out, opts)
        result = fuse(job.hsi, job.msi, job.out, **opts, tags={BATCH_TAG: provenance(job, defaults)})
        for line in result.messages:
            log.info("%s", line)
        record.status, record.device = "done", result.device_used
        if job.reference:
            record.metrics, record.error = _metrics(job.reference, job.out, result.scale)
    except CsakdError as exc:
        record.error = _error_line(exc)
        log.error("pair %d failed: %s", job.row, record.error)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] == "rasterio":  # GDAL failed on an input: a user error, no retry
            record.error = failure_message(exc) or _error_line(exc)
            log.error("pair %d failed:\n%s", job.row, traceback.format_exc())
            return record
        log.error("pair %d failed:\n%s", job.row, traceback.format_exc())
        log.error("pair %d failed:\n%s", job.row, traceback.format_exc())
        raise  # retried (if retries are left), then recorded by the caller
    finally:
        record.seconds = time.perf_counter() - t0
        engine.removeHandler(handler)
        engine.setLevel(level)
        engine.propagate = propagate
        handler.close()
    return record


def _metrics(reference: str, fused: str, scale: int) -> tuple[dict[str, float], str]:
    """Metrics of a fused output against its reference, or the reason they could not be computed."""
    from csakd_qgis.quality.report import evaluate_rasters

    try:
        res = evaluate_rasters(reference, fused, scale)
    except CsakdError as exc:
        return {}, f"metrics: {exc}"
    return {m: float(res[m]) for m in METRICS if m in res}, ""


# ------------------------------------------------------------------------------------------ the batch
def _write_summary(result: BatchResult, json_path: Path, csv_path: Path) -> None:
    """The records as JSON (with totals) and as a CSV table (one metric per column)."""
    from csakd_qgis.quality.report import write_json

    write_json(json_path, {"summary": result.summary(), "where": result.where, "elapsed_s": result.elapsed_s,
                           "done": result.count("done"), "failed": result.count("failed"),
                           "skipped": result.count("skipped"), "pairs": [asdict(r) for r in result.records]})
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(["row", "status", "seconds", "device", "error", *METRICS, "hsi", "msi", "out", "log"])
    for r in result.records:
        w.writerow([r.row, r.status, "" if r.seconds is None else f"{r.seconds:.2f}", r.device, r.error,
                    *(r.metrics.get(m, "") for m in METRICS), r.hsi, r.msi, r.out, r.log])
    # atomic, and one line when Windows refuses the replace (e.g. the table is open in a spreadsheet)
    write_bytes_atomic(csv_path, fh.getvalue().encode("utf-8"), role="batch summary table")


def run_batch(jobs: str | os.PathLike | Sequence[PairJob], *, scheduler: str | None = None,
              workers: int | None = None, ex: SerialExecutor | DaskExecutor | None = None, retries: int = 1,
              resume: bool = True, summary: str | os.PathLike | None = None,
              progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
              **defaults: Any) -> BatchResult:
    """Fuse every pair of a jobs table (path or :class:`PairJob` list), one task each; write the summary.

    The cluster: ``ex``, else the scheduler at ``scheduler``, else a LocalCluster of ``workers`` processes
    (> 1), else this process. ``defaults``: fuse options for rows that do not set them. ``summary``: the
    summary JSON (default ``<table>_summary.json`` beside the table; a CSV beside it; logs in
    ``<summary>_logs/``). A failed pair does not stop the others.
    """
    t_start = time.perf_counter()
    table = None if isinstance(jobs, Sequence) and not isinstance(jobs, str) else Path(str(jobs))
    pairs = read_jobs(table) if table is not None else list(jobs)
    if table is None:  # a table file is checked when read
        check_table_paths(pairs)
    unknown = sorted(set(defaults) - set(PAIR_OPTIONS) - {"creation_options"})
    if unknown:
        raise CsakdError(f"Unknown batch option(s) {', '.join(unknown)}: use {', '.join(PAIR_OPTIONS)} or "
                         "creation_options.")
    retries = check_int("retries", retries, 0)
    if summary is None:
        if table is None:
            raise CsakdError("Give a summary path for a batch of jobs that does not come from a table file.")
        summary = table.with_name(f"{table.stem}_summary.json")
    json_path = Path(str(summary)).expanduser()
    if json_path.suffix.lower() != ".json":
        raise CsakdError(f"The batch summary '{json_path}' must end in .json.")
    if not json_path.parent.is_dir():
        raise CsakdError(f"The folder of the batch summary '{json_path.parent}' does not exist: create it.")
    log_dir = json_path.with_name(f"{json_path.stem}_logs")
    log_dir.mkdir(exist_ok=True)
    if ex is None:
        with executor(scheduler, workers) as own:
            return run_batch(pairs, ex=own, retries=retries, resume=resume, summary=json_path, progress=progress,
                             cancel=cancel, **defaults)
    report = progress or (lambda fraction, message: None)
    records: dict[int, PairRecord] = {}
    todo = []
    for job in pairs:
        if resume and is_complete(job, defaults):
            records[job.row] = PairRecord(job.row, job.hsi, job.msi, job.out, "skipped", error="output complete")
        else:
            todo.append(job)
    report(0.0, f"{len(todo)} pairs to fuse ({len(records)} already done) on {ex.description}")
    logs = {job.row: str(log_dir / f"row{job.row:04d}_{Path(job.out).stem}.log") for job in todo}
    futures = [ex.submit(run_pair, job, logs[job.row], defaults,
                         key=task_key("csakd-pair", job.row, job.out), retries=retries) for job in todo]
    by_key = {f.key: job for f, job in zip(futures, todo, strict=True)}
    try:
        for done, fut in enumerate(ex.as_completed(futures), 1):
            job = by_key[fut.key]
            try:  # recorded first: a pair that finished while a cancel was asked for is in the summary
                records[job.row] = fut.result()
            except Exception as exc:  # noqa: BLE001 - a pair that failed after its retries fails alone
                records[job.row] = PairRecord(job.row, job.hsi, job.msi, job.out, "failed", error=_error_line(exc),
                                              log=logs[job.row])
            failed = sum(r.status == "failed" for r in records.values())
            report(done / max(1, len(todo)), f"{done}/{len(todo)} pairs ({failed} failed)")
            if cancel is not None and cancel() and done < len(todo):
                raise CancelledError()
    except BaseException as exc:
        ex.cancel(futures)
        if not isinstance(exc, KeyboardInterrupt | CancelledError):
            raise
        # stopped (SIGTERM, Ctrl-C, cancel): the summary still says which pairs finished
        stopped = BatchResult([records.get(j.row) or PairRecord(j.row, j.hsi, j.msi, j.out, "not run",
                                                                error="stopped before it finished")
                               for j in pairs], time.perf_counter() - t_start, ex.description, str(json_path),
                              str(json_path.with_suffix(".csv")))
        _write_summary(stopped, json_path, Path(stopped.summary_csv))
        finished = stopped.count("done") + stopped.count("skipped")
        raise type(exc)(f"{finished} of {len(pairs)} pairs finished ({stopped.count('done')} fused, "
                        f"{stopped.count('skipped')} already complete, {stopped.count('failed')} failed), the others "
                        f"were not written; summary {json_path}") from None
    result = BatchResult([records[j.row] for j in pairs], time.perf_counter() - t_start, ex.description,
                         str(json_path), str(json_path.with_suffix(".csv")))
    for r in result.records:
        if r.status == "failed":
            result.messages.append(f"row {r.row} ({Path(r.hsi).name}) failed: {r.error} (log: {r.log})")
    _write_summary(result, json_path, Path(result.summary_csv))
    result.messages.append(result.summary())
    report(1.0, "done")
    return result


__all__ = ["BATCH_TAG", "BatchResult", "PAIR_OPTIONS", "PairJob", "PairRecord", "check_table_paths", "is_complete",
           "provenance", "match_folders", "name_date",
           "read_jobs", "run_batch", "run_pair"]

"""One raster across workers: the tiled raster job cut into column-group ranges, one Dask task each.

Each task runs the entry point (:func:`fusion.fuse.fuse`, :func:`fusion.superresolve.superresolve`) with
``part=(k, n)``: the same co-registration, predictor and per-scene fit as a single-process run (so every
task computes the same coefficients), but only the windows of its column groups, written into its own block
GeoTIFF (:class:`raster.job.TiledRasterJob`). Column groups are blended independently (a hard cut on an
output block boundary), so the blocks side by side are exactly the single-process output. The blocks sit in
a temporary folder beside the output (it must be on a filesystem the workers share); a VRT of them is
translated into the output (a tiled GeoTIFF with the engine's creation options, or a Cloud-Optimized GeoTIFF)
through a temporary file renamed into place. On any failure or cancel nothing is left at the output path and
the temporary folder is removed.

What travels to the workers: the entry point (by name), the input paths, the model (a zoo name or a file
path: workers load it themselves) and the options. Nothing else: no arrays, no open datasets, no predictor.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from csakd_qgis.distributed.cluster import DaskExecutor, SerialExecutor, executor, task_key, task_options
from csakd_qgis.errors import CancelledError, CsakdError, name_for_user
from csakd_qgis.raster.io import OUTPUT_DTYPES, atomic_output, check_output_path, default_creation_options
from csakd_qgis.raster.job import EmptyPart, RasterJobResult
from csakd_qgis.temporaries import WorkFolder

log = logging.getLogger("csakd_qgis.distributed")

LAYOUTS = ("gtiff", "cog")
R = TypeVar("R", bound=RasterJobResult)


def run_part(entry: Callable[..., R], inputs: Mapping[str, Any], out: str, part: tuple[int, int],
             options: Mapping[str, Any]) -> R | None:
    """Worker side: ``entry`` writing part ``part`` into ``out``; None when the part has no column group."""
    try:
        return entry(**inputs, out=out, part=part, **task_options(options))
    except EmptyPart:
        return None


def _gdal_check(value: Any, what: str) -> Any:
    """``value`` of a GDAL call; CsakdError with GDAL's message when it failed (None)."""
    if value is None:
        from osgeo import gdal

        raise CsakdError(f"Assembling the block files failed ({what}): {gdal.GetLastErrorMsg() or 'GDAL error'}. "
                         "Check the free disk space of the output folder.")
    return value


def _output_options(layout: str, count: int, width: int, height: int,
                    creation_options: Mapping[str, str] | None, dtype: str = "float32") -> tuple[str, list[str]]:
    """GDAL driver and creation options of the assembled output (the engine's defaults, COG spelling for COG).

    COG: single-threaded (GDAL 3.6 multi-threaded COG writing of many-band pixel-interleaved tiles reports
    libtiff ExtraSamples errors) and band-interleaved only from GDAL 3.11 on (before, always pixel-interleaved).
    """
    from osgeo import gdal

    co = default_creation_options(count, width, height, dtype)
    if layout == "cog":
        cog = {"COMPRESS": co["COMPRESS"], "PREDICTOR": "YES", "BLOCKSIZE": co["BLOCKXSIZE"],
               "BIGTIFF": co["BIGTIFF"]}
        if "ZSTD_LEVEL" in co:
            cog["LEVEL"] = co["ZSTD_LEVEL"]
        if int(gdal.VersionInfo()) >= 3110000:
            cog["INTERLEAVE"] = co["INTERLEAVE"]
        co = cog
    co.update(creation_options or {})
    return ("COG" if layout == "cog" else "GTiff"), [f"{k}={v}" for k, v in co.items()]


def assemble(blocks: list[str], out: str | os.PathLike, layout: str = "gtiff",
             creation_options: Mapping[str, str] | None = None, work_dir: str | None = None) -> Path:
    """Block GeoTIFFs (side by side, same rows) -> one GeoTIFF at ``out`` with the first block's metadata."""
    from osgeo import gdal

    if layout not in LAYOUTS:
        raise CsakdError(f"Output layout '{layout}' is not one of {', '.join(LAYOUTS)}.")
    vrt_path = os.path.join(work_dir or os.path.dirname(os.path.abspath(str(out))), "blocks.vrt")
    vrt = _gdal_check(gdal.BuildVRT(vrt_path, blocks), "building the VRT")
    first = _gdal_check(gdal.Open(blocks[0]), f"opening {blocks[0]}")
    vrt.SetMetadata(first.GetMetadata())  # the entry point's tags (e.g. CSAKD_FUSION)
    for b in range(1, first.RasterCount + 1):
        src, dst = first.GetRasterBand(b), vrt.GetRasterBand(b)
        dst.SetDescription(src.GetDescription())
        dst.SetMetadata(src.GetMetadata())
        if src.GetNoDataValue() is not None:
            dst.SetNoDataValue(src.GetNoDataValue())
        dst.SetScale(src.GetScale() if src.GetScale() is not None else 1.0)  # int16/uint16 outputs: 1e-4
        dst.SetOffset(src.GetOffset() if src.GetOffset() is not None else 0.0)
    dtype = gdal.GetDataTypeName(first.GetRasterBand(1).DataType).lower()
    driver, co = _output_options(layout, vrt.RasterCount, vrt.RasterXSize, vrt.RasterYSize, creation_options,
                                 dtype if dtype in OUTPUT_DTYPES else "float32")
    first = None
    vrt.FlushCache()
    out_path = Path(str(out))
    with atomic_output(out_path) as tmp:
        ds = _gdal_check(gdal.Translate(tmp, vrt, format=driver, creationOptions=co), f"writing the {driver}")
        ds = None  # noqa: F841 - closing flushes the file before the rename
    vrt = None
    return out_path


def run_blocks(entry: Callable[..., R], inputs: Mapping[str, Any], out: str | os.PathLike, *,
               scheduler: str | None = None, workers: int | None = None,
               ex: SerialExecutor | DaskExecutor | None = None, parts: int | None = None, layout: str = "gtiff",
               retries: int = 1, progress: Callable[[float, str], None] | None = None,
               cancel: Callable[[], bool] | None = None, **options: Any) -> R:
    """Run ``entry(**inputs, out=..., **options)`` as block tasks on a cluster and assemble them at ``out``.

    The cluster: ``ex`` (an executor), else the scheduler at ``scheduler``, else a LocalCluster of
    ``workers`` processes. ``parts``: block tasks (default one per worker, as each repeats the set-up; a
    raster has at most one per output column group). ``layout``: "gtiff" (the single-process output's
    layout) or "cog" (Cloud-Optimized GeoTIFF with overviews; pixel-interleaved before GDAL 3.11).
    ``retries``: extra attempts of a failed block task. Returns the entry point's result for the whole output.
    """
    t_start = time.perf_counter()
    out_path = check_output_path(out, [str(v) for v in inputs.values()])
    if layout not in LAYOUTS:
        raise CsakdError(f"Output layout '{layout}' is not one of {', '.join(LAYOUTS)}.")
    if ex is None:
        with executor(scheduler, workers) as own:
            return run_blocks(entry, inputs, out_path, ex=own, parts=parts, layout=layout, retries=retries,
                              progress=progress, cancel=cancel, **options)
    n = int(parts) if parts else ex.workers
    if n < 1:
        raise CsakdError(f"parts must be at least 1 (got {parts}).")
    report = progress or (lambda fraction, message: None)
    if cancel is not None and cancel():
        raise CancelledError()
    folder = WorkFolder(f".{out_path.stem}.blocks.", out_path.parent)  # owned: swept only once this run is dead
    work = folder.name
    futures: list[Any] = []
    try:
        report(0.0, f"{n} block tasks on {ex.description}")
        futures = [ex.submit(run_part, entry, dict(inputs), os.path.join(work, f"block_{k:04d}.tif"), (k, n),
                             options, key=task_key("csakd-block", k, out_path.name), retries=retries)
                   for k in range(n)]
        order = {f.key: k for k, f in enumerate(futures)}
        results: dict[int, R] = {}
        for done, fut in enumerate(ex.as_completed(futures), 1):
            if cancel is not None and cancel():
                raise CancelledError()
            res = fut.result()
            if res is not None:
                results[order[fut.key]] = res
            report(0.9 * done / n, f"block {done}/{n}")
        ordered = [results[k] for k in sorted(results)]
        report(0.9, f"assembling {len(ordered)} blocks")
        t0 = time.perf_counter()
        assemble([r.out_path for r in ordered], out_path, layout, options.get("creation_options"), work)
        assemble_s = time.perf_counter() - t0
    except BaseException as exc:
        ex.cancel(futures)
        hidden = {os.path.join(work, f"block_{k:04d}.tif"): str(out_path) for k in range(n)}
        name_for_user(exc, {**hidden, work: str(out_path.parent)})
        raise
    finally:
        folder.cleanup()
    return _merge(ordered, out_path, ex, layout, time.perf_counter() - t_start, assemble_s, report)


def _merge(parts: list[R], out_path: Path, ex: Any, layout: str, elapsed: float, assemble_s: float,
           report: Callable[[float, str], None]) -> R:
    """The whole output's result from its blocks' results (first block's fields, summed tiles and width)."""
    first = parts[0]
    devices = sorted({p.device_used for p in parts})
    timings = {"blocks": float(len(parts)), "block_max_s": max(p.elapsed_s for p in parts),
               "block_sum_s": sum(p.elapsed_s for p in parts), "assemble_s": assemble_s}
    messages = [m for m in first.messages[:-1] if not m.startswith("Column groups ")]
    messages.append(f"{len(parts)} block tasks on {ex.description} (longest {timings['block_max_s']:.1f} s), "
                    f"assembled into a {'Cloud-Optimized GeoTIFF' if layout == 'cog' else 'GeoTIFF'} in "
                    f"{assemble_s:.1f} s.")
    result = dataclasses.replace(first, out_path=str(out_path), device_used="+".join(devices),
                                 n_tiles=sum(p.n_tiles for p in parts), elapsed_s=elapsed,
                                 width=sum(p.width for p in parts), timings=timings, messages=messages)
    messages.append(result.summary())
    report(1.0, "done")
    return result


__all__ = ["LAYOUTS", "assemble", "run_blocks", "run_part"]

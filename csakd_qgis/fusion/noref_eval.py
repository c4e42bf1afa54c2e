"""Evaluation of a fused raster without a reference, from files: the no-reference indexes of :mod:`fusion.noref`
on the fused image and its two inputs, plus the reduced-resolution check that fuses the pair degraded by s
with the same method through :func:`fusion.fuse.fuse` (so this module sits above ``fuse``)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.noref import (
    EVAL_SAMPLE_LR,
    FuseFn,
    fused_method,
    noref_indexes,
    read_triplet,
    reduced_resolution_score,
)
from csakd_qgis.fusion.observation import estimate_observation

log = logging.getLogger(__name__)


def raster_fuse_fn(hsi_meta, msi_meta, hsi_bands: Sequence[int], method: str, work_dir: str | os.PathLike
                   ) -> FuseFn:
    """A ``fuse_fn`` running the package's fusion (:func:`fusion.fuse.fuse`) with ``method`` on small GeoTIFFs
    of the reduced pair written in ``work_dir`` (wavelengths and FWHM of the inputs kept)."""
    from affine import Affine

    from csakd_qgis.raster.io import read_reflectance, write_raster

    def run(y: np.ndarray, m: np.ndarray, s: int) -> np.ndarray:
        px = 10.0
        hr_tr = Affine(px, 0.0, 500000.0, 0.0, -px, 4000000.0)
        lr_tr = hr_tr * Affine.scale(s, s)
        crs = msi_meta.crs if msi_meta.crs is not None else "EPSG:32633"
        d = Path(work_dir)
        wl = [hsi_meta.wavelengths[i] for i in hsi_bands]
        fw = [hsi_meta.fwhm[i] for i in hsi_bands]
        write_raster(d / "reduced_hsi.tif", y, crs, lr_tr, wavelengths=wl if all(v is not None for v in wl) else None,
                     fwhm=fw if all(v is not None for v in fw) else None)
        mwl = list(msi_meta.wavelengths or [])
        write_raster(d / "reduced_msi.tif", m, crs, hr_tr,
                     wavelengths=mwl if mwl and all(v is not None for v in mwl) else None)
        fuse(d / "reduced_hsi.tif", d / "reduced_msi.tif", d / "reduced_fused.tif", model=method)
        return read_reflectance(d / "reduced_fused.tif")

    return run


def noref_evaluation(fused: str | os.PathLike, hsi: str | os.PathLike, msi: str | os.PathLike,
                     scale: int | None = None, method: str | None = None, maps: bool = False,
                     max_lr: int = EVAL_SAMPLE_LR) -> tuple[dict, dict | None]:
    """(result, residual maps or None) of the no-reference evaluation of a fused raster from its LR-HSI and HR-MSI.

    ``scale``: checked against the pair's pixel-size ratio (None: that ratio). ``method``: the fusion method for
    the reduced-resolution check (None: the one in the fused raster's tags; skipped, with a note, if unknown).
    The result holds the spectral / spatial consistency, d_lambda, d_s, hqnr and reduced_resolution.
    """
    x, lr, m, grid = read_triplet(fused, hsi, msi, max_lr)
    s = grid.scale
    if scale is not None and int(scale) != s:
        raise CsakdError(f"The scale {scale} differs from the HSI/MSI pixel-size ratio {s} of the inputs: give "
                         f"scale {s} (or check that the inputs are the ones fused).")
    wl = [grid.hsi.wavelengths[i] for i in grid.hsi_bands]
    obs = estimate_observation(lr, m, s, wavelengths=wl if all(v is not None for v in wl) else None)
    res = noref_indexes(x, lr, m, s, obs, maps=maps)
    res_maps = res.pop("maps", None)
    used = method or fused_method(fused)
    result: dict[str, Any] = {"mode": "no reference", "fused": str(fused), "hsi": str(hsi), "msi": str(msi),
                              "scale": s, "sample_lr_px": [int(lr.shape[1]), int(lr.shape[2])], **res}
    if used:
        try:
            with tempfile.TemporaryDirectory(prefix=".csakd-reduced-") as tmp:
                fn = raster_fuse_fn(grid.hsi, grid.msi, grid.hsi_bands, used, tmp)
                result["reduced_resolution"] = {"method": used, **reduced_resolution_score(lr, m, obs, fn)}
        except CsakdError as exc:
            result["reduced_resolution"] = {"method": used, "skipped": str(exc)}
    else:
        result["reduced_resolution"] = {"skipped": "the fusion method is unknown (not in the fused raster's tags): "
                                                   "give it (--method / METHOD) for the reduced-resolution check"}
    return result, res_maps


def evaluate_noref_rasters(fused: str | os.PathLike, hsi: str | os.PathLike, msi: str | os.PathLike,
                           scale: int | None = None, method: str | None = None,
                           json_path: str | os.PathLike | None = None,
                           report_path: str | os.PathLike | None = None, max_lr: int = EVAL_SAMPLE_LR) -> dict:
    """:func:`noref_evaluation` written as the metrics JSON and the HTML report (both or neither); returns the result."""
    from csakd_qgis.quality.report import build_noref_report, json_bytes
    from csakd_qgis.raster.io import check_writable_folder, write_files_atomic

    for p, role in ((json_path, "metrics JSON"), (report_path, "HTML report")):
        if p is not None:
            check_writable_folder(Path(str(p)), role)
    result, maps = noref_evaluation(fused, hsi, msi, scale, method, maps=report_path is not None, max_lr=max_lr)
    files = [] if json_path is None else [(json_path, "metrics JSON", json_bytes(result))]
    if report_path is not None:
        doc = build_noref_report(result, maps, None, title=f"csakd evaluation without reference: "
                                                             f"{Path(str(fused)).name}")
        files.append((report_path, "HTML report", doc.encode("utf-8")))
    write_files_atomic(files)
    return result


__all__ = ["evaluate_noref_rasters", "noref_evaluation", "raster_fuse_fn"]

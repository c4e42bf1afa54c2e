"""The one reader of reference HR-HSI scenes for training: GeoTIFF/ENVI with band wavelengths, or .mat cubes."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import read_meta, read_reflectance, usable_bands
from csakd_qgis.training.sources.mat_cubes import MAT_SUFFIXES, read_mat_cube

WL_TOLERANCE_NM = 1.0  # band centres further apart than this mean another sensor or band set


def read_scene(path: str | os.PathLike) -> tuple[np.ndarray, list[float], list[float] | None, str]:
    """(cube, wavelengths, fwhm, note) of a reference HR-HSI raster (bad / all-NaN bands dropped) or .mat."""
    if str(path).lower().endswith(MAT_SUFFIXES):
        return read_mat_cube(path)

    meta = read_meta(path, "training scene")
    if not meta.has_wavelengths:
        raise CsakdError(f"The training scene '{path}' has no band wavelengths in its metadata; they are needed "
                         "to synthesise the MSI through the sensor's SRFs.")
    data = read_reflectance(path)
    good = usable_bands(meta, data)
    if not good:
        raise CsakdError(f"The training scene '{path}' has no valid band.")
    fwhm = [meta.fwhm[i] for i in good]
    return (data[good], [float(meta.wavelengths[i]) for i in good],
            None if any(f is None for f in fwhm) else [float(f) for f in fwhm], Path(str(path)).stem)


def read_references(paths: Sequence[str | os.PathLike], ref_wl: Sequence[float] | None = None,
                    what: str = "training raster",
                    progress: Callable[[float, str], None] | None = None
                    ) -> tuple[list[tuple[str, np.ndarray]], list[float] | None, list[float] | None]:
    """([(stem, cube)], wavelengths, fwhm) of reference scenes that all share one band set.

    The band set is the first scene's, or ``ref_wl`` when given (validation scenes of a training set; the fwhm is
    then None). ``progress(fraction, message)`` before each read.
    """
    refs: list[tuple[str, np.ndarray]] = []
    wl0 = None if ref_wl is None else list(ref_wl)
    fw0 = None
    for i, p in enumerate(paths):
        if progress is not None:
            progress(i / len(paths), f"reading {Path(str(p)).name}")
        cube, wl, fw, _ = read_scene(p)
        if wl0 is None:
            wl0, fw0 = wl, fw
        elif len(wl) != len(wl0) or float(np.max(np.abs(np.asarray(wl) - np.asarray(wl0)))) > WL_TOLERANCE_NM:
            raise CsakdError(f"The {what} '{p}' has {len(wl)} bands at other wavelengths than the first one "
                             f"({len(wl0)} bands): all must come from the same sensor and band set.")
        refs.append((Path(str(p)).stem, cube))
    return refs, wl0, fw0

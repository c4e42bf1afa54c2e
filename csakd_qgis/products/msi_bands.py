"""What the multispectral readers share: band centres from the sensor's SRF, one grid, rows of one-band files.

Band centres come from the same responses (``spectral/srf.py``) that simulate that sensor's MSI from an
HSI, so the band tags a reader writes agree with what models trained on simulated pairs expect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.srf import SRF, load_sensor_srf


def srf_centres(srf: SRF) -> tuple[list[float], list[float | None]]:
    """Response-weighted centres and FWHM (nm) of every band of ``srf``."""
    return ([round(float(c), 3) for c in srf.centroids()],
            [round(float(f), 3) if f > 0 else None for f in srf.fwhm()])


def sensor_centres(sensor: str, bands: Sequence[str]) -> tuple[list[float], list[float | None]] | None:
    """Centres and FWHM of ``bands`` of a sensor known to ``spectral/srf.py`` ('S2A', 'L8', ...), or None.

    None when the sensor's response files are not installed (pyrsr) or it has no such band, so the caller
    can fall back to what the product's metadata states.
    """
    try:
        return srf_centres(load_sensor_srf(sensor, list(bands)))
    except CsakdError:
        return None


def shared_grid(files: Sequence[Path], product: str, what: str) -> tuple[int, int, object, object]:
    """(width, height, crs, transform) common to the one-band ``files``, or one clear error."""
    import rasterio

    grids = []
    for f in files:
        with rasterio.open(str(f)) as ds:
            grids.append((ds.width, ds.height, ds.crs, ds.transform))
    if any(g != grids[0] for g in grids[1:]):
        raise CsakdError(f"The {product} {what} files do not share one grid ({', '.join(f.name for f in files)}): "
                         "the product is damaged; download it again.")
    return grids[0]


def band_rows(files: Sequence[Path], width: int, dtype: str = "uint16") -> Callable[[int, int], np.ndarray]:
    """A ``read_rows(row0, n)`` stacking rows ``row0 .. row0 + n`` of one-band ``files`` into (C, n, width)."""
    files = list(files)

    def read_rows(row0: int, n: int) -> np.ndarray:
        import rasterio

        out = np.empty((len(files), n, width), dtype)
        for i, f in enumerate(files):
            with rasterio.open(str(f)) as ds:
                out[i] = ds.read(1, window=((row0, row0 + n), (0, width)))
        return out

    return read_rows

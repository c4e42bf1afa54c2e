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


MAX_STRIP_ROWS = 1024  # rows of one file kept decoded at most (JPEG 2000 tiles are decoded whole)


class StripCache:
    """Rows of one-band files read in strips aligned to the files' tile rows, the current strip kept.

    Whole-width blocks of fewer rows than a JPEG 2000 tile would otherwise decode each tile several times
    (4 times for 256-row blocks of 1024-row tiles).
    """

    def __init__(self, files: Sequence[Path], width: int, dtype: str) -> None:
        self.files, self.width, self.dtype = list(files), width, dtype
        self.strips: dict[int, tuple[int, np.ndarray]] = {}

    def rows(self, i: int, row0: int, n: int) -> np.ndarray:
        """Rows ``row0 .. row0 + n`` (full width) of file ``i``."""
        import rasterio

        cached = self.strips.get(i)
        if cached is not None and cached[0] <= row0 and row0 + n <= cached[0] + cached[1].shape[0]:
            return cached[1][row0 - cached[0]: row0 - cached[0] + n]
        with rasterio.open(str(self.files[i])) as ds:
            tile_rows = ds.block_shapes[0][0]
            if tile_rows > MAX_STRIP_ROWS or n > tile_rows:
                return ds.read(1, window=((row0, row0 + n), (0, self.width))).astype(self.dtype, copy=False)
            first = row0 // tile_rows * tile_rows
            last = min(ds.height, -(-(row0 + n) // tile_rows) * tile_rows)
            strip = ds.read(1, window=((first, last), (0, self.width))).astype(self.dtype, copy=False)
        self.strips[i] = (first, strip)
        return strip[row0 - first: row0 - first + n]


def band_rows(files: Sequence[Path], width: int, dtype: str = "uint16") -> Callable[[int, int], np.ndarray]:
    """A ``read_rows(row0, n)`` stacking rows ``row0 .. row0 + n`` of one-band ``files`` into (C, n, width)."""
    cache = StripCache(files, width, dtype)

    def read_rows(row0: int, n: int) -> np.ndarray:
        out = np.empty((len(cache.files), n, width), dtype)
        for i in range(len(cache.files)):
            out[i] = cache.rows(i, row0, n)
        return out

    return read_rows

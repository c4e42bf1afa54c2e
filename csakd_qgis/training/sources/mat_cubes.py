"""The .mat benchmark cubes (AVIRIS Jasper Ridge, HYDICE Urban): their variables, layouts and band centres."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError

# HYDICE Urban: 210 channels over 400-2500 nm; the common 162-band version drops these (1-based).
_URBAN_DROPPED = [*range(1, 5), 76, 87, *range(101, 112), *range(136, 154), *range(198, 211)]
MAT_SUFFIXES = (".mat",)


def hydice_urban_wavelengths() -> np.ndarray:
    """Approximate centres (nm) of the 162 HYDICE Urban bands: the 210-channel 400-2500 nm grid minus the usual drops."""
    grid = np.linspace(400.0, 2500.0, 210)
    dropped = set(_URBAN_DROPPED)
    return grid[[i for i in range(210) if (i + 1) not in dropped]]


def load_mat_variables(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Name -> array of the variables of a .mat file (v4-v7 via scipy, v7.3/HDF5 via h5py, MATLAB axis order)."""
    import scipy.io

    p = Path(str(path))
    if not p.is_file():
        raise CsakdError(f"The .mat scene '{p}' does not exist: check the path.")
    try:
        return {k: v for k, v in scipy.io.loadmat(str(p)).items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        pass
    except (ValueError, OSError) as exc:
        raise CsakdError(f"The .mat scene '{p}' cannot be read ({exc}): save it again from MATLAB.") from None
    try:
        import h5py
    except ImportError:
        raise CsakdError(f"The .mat scene '{p}' is a MATLAB v7.3 file, which needs h5py: pip install h5py.") from None
    with h5py.File(p, "r") as f:
        # h5py sees MATLAB's column-major arrays with the axes reversed
        return {k: np.asarray(v[()]).T for k, v in f.items() if isinstance(v, h5py.Dataset)}


def read_mat_cube(path: str | os.PathLike) -> tuple[np.ndarray, list[float], list[float] | None, str]:
    """(cube (C, H, W) reflectance, wavelengths nm, fwhm or None, note) of a .mat benchmark cube.

    Knows the AVIRIS Jasper Ridge layout (``Y`` (bands, pixels), ``SlectBands``, reflectance x 1e4;
    centres 380 + (ch - 1) * 2120 / 223 nm) and the HYDICE Urban layout (``im`` (rows, cols, 162),
    reflectance; centres from the 210-channel 400-2500 nm grid minus the usual dropped channels).
    Both sets of centres are approximate (not stored in the files).
    """
    p = Path(str(path))
    d = load_mat_variables(p)
    if "Y" in d and "SlectBands" in d:
        y = np.asarray(d["Y"], np.float32)
        n_row = int(np.asarray(d.get("nRow", [[int(np.sqrt(y.shape[1]))]])).ravel()[0])
        n_col = int(np.asarray(d.get("nCol", [[y.shape[1] // n_row]])).ravel()[0])
        cube = y.reshape(y.shape[0], n_col, n_row).transpose(0, 2, 1) / 10000.0
        ch = np.asarray(d["SlectBands"]).ravel().astype(np.float64)
        wl = list(380.0 + (ch - 1.0) * 2120.0 / 223.0)
        return cube.astype(np.float32), wl, None, "AVIRIS Jasper Ridge (approximate band centres)"
    if "im" in d and np.asarray(d["im"]).ndim == 3 and np.asarray(d["im"]).shape[-1] == 162:
        cube = np.asarray(d["im"], np.float32).transpose(2, 0, 1)
        return cube, list(hydice_urban_wavelengths()), None, "HYDICE Urban (approximate band centres)"
    raise CsakdError(f"The .mat scene '{p}' has an unknown layout (variables {sorted(k for k in d if not k.startswith('__'))}); "
                     "supported: Jasper Ridge (Y, SlectBands) and Urban (im, 162 bands). Convert it to GeoTIFF "
                     "with band wavelengths instead.")

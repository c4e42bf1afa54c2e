"""The one line shown for a failure: the user's (a CsakdError, I/O, GDAL, memory, a missing package) or None (a bug).

The CLI prints it as ``csakd: error: ...`` and exits 1; Processing raises it as a ``QgsProcessingException``.
"""

from __future__ import annotations

import re

from csakd_qgis import deps
from csakd_qgis.errors import CsakdError

# optional packages -> what they are needed for (the install line names the pip package)
OPTIONAL_PACKAGES = {"torch": "learned models (PyTorch)", "safetensors": "model files (safetensors)",
                     "onnxruntime": "ONNX models (ONNX Runtime)", "tqdm": "progress bars (tqdm)",
                     "h5py": "HDF5 products (h5py)", "netCDF4": "netCDF products (netCDF4)",
                     "dask": "distributed processing (dask)"}
# optional packages that must come from the system (they link the HDF5 library QGIS/GDAL already loaded)
SYSTEM_PACKAGES = {"h5py": "python3-h5py", "netCDF4": "python3-netcdf4"}


def failure_message(exc: BaseException) -> str | None:
    """One line for a failure the user can act on (input, I/O, GDAL, memory, missing package); None for a bug."""
    if isinstance(exc, CsakdError):
        text = str(exc)
    elif isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in OPTIONAL_PACKAGES:
        name = (exc.name or "").split(".")[0]
        how = (f"with the system's package manager, which builds it on the HDF5 library QGIS uses (Debian/Ubuntu: "
               f"sudo apt-get install {SYSTEM_PACKAGES[name]}; OSGeo4W: its {SYSTEM_PACKAGES[name]} package)"
               if name in SYSTEM_PACKAGES else f"with: {deps.install_hint(name)}")
        text = (f"The Python package '{name}' is needed for {OPTIONAL_PACKAGES[name]} but is not installed in the "
                f"Python this runs in ({deps.python_executable()}). Install it {how}")
    elif type(exc).__module__.split(".")[0] == "rasterio":  # before OSError: RasterioIOError is one
        detail = str(exc).strip().rstrip(".") or type(exc).__name__
        text = (f"GDAL failed on a raster ({detail}). If that file is damaged or incomplete (e.g. a cut-short "
                "download or copy), copy or export it again.")
    elif isinstance(exc, OSError):
        where = f" '{exc.filename}'" if getattr(exc, "filename", None) else ""
        text = (f"A file{where} could not be read or written: {exc.strerror or exc}. Check the paths, the free "
                "disk space and the folder permissions.")
    elif isinstance(exc, MemoryError):
        text = "Out of memory: use a smaller tile size or batch, or close other programs."
    else:
        return None
    return " ".join(_HIDDEN_WORK_FILE.sub(_hidden_name, text).split())


# work files of a run inside hidden folders beside the output (20 m sharpening, products, blocks): a message names
# what they stand for instead, when no caller translated it already (:func:`name_for_user`)
_HIDDEN_WORK_FILE = re.compile(r"[^\s'\"]*/\.(?:csakd-msi20-|[^/\s'\"]+\.(?:products|blocks)\.)[a-z0-9_]{8}/"
                               r"([^\s'\"/]+)")
_HIDDEN_ROLES = {"msi20_sharpened.tif": "the sharpened 20 m bands (a work file beside the output)"}


def _hidden_name(m: re.Match) -> str:
    return _HIDDEN_ROLES.get(m.group(1), f"a work file of this run ({m.group(1)}, beside the output)")

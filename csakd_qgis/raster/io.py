"""Raster I/O over rasterio: band wavelength metadata, windowed reflectance reads, atomic GeoTIFF writing.

Every reader returns float32 reflectance (scale/offset applied) with NaN where the input is nodata,
so downstream code never sees sensor-specific integer scalings or nodata sentinels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csakd_qgis import oscompat
from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.envi import number_list
from csakd_qgis.temporaries import (
    TEMP_SUFFIX,
    OwnedFile,
    is_temporary_name,  # noqa: F401 - re-exported (its home was here)
    sweep_stale_temporaries,
)

log = logging.getLogger("csakd")

OUTPUT_NODATA = -9999.0
OUTPUT_DTYPES = ("float32", "int16", "uint16")
REFLECTANCE_SCALE = 1e-4  # integer outputs store round(reflectance / scale), as EnMAP L2A delivers
INTEGER_NODATA = {"int16": -32768, "uint16": 65535}
SUPPORTED_OUTPUT_EXTENSIONS = (".tif", ".tiff")
_DESC_WAVELENGTH = re.compile(r"\(\s*([0-9]+(?:\.[0-9]*)?)\s*(nm|nanometers?|um|µm|micrometers?)\s*\)", re.I)
_UNIT_FACTORS = {"nanometers": 1.0, "nanometer": 1.0, "nm": 1.0, "micrometers": 1000.0, "micrometer": 1000.0,
                 "um": 1000.0, "µm": 1000.0, "microns": 1000.0, "millimeters": 1e6, "mm": 1e6}


@dataclass
class RasterMeta:
    """What the engine needs to know about a raster, read once from its header."""

    path: str
    width: int
    height: int
    count: int
    crs: object  # rasterio.crs.CRS or None
    transform: object  # affine.Affine
    nodata: float | None
    scales: list[float]
    offsets: list[float]
    wavelengths: list[float | None]
    fwhm: list[float | None]
    bbl: list[int]
    descriptions: list[str | None] = field(default_factory=list)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def has_wavelengths(self) -> bool:
        """True when every band has a centre wavelength."""
        return all(w is not None for w in self.wavelengths)

    def good_bands(self) -> list[int]:
        """0-based indices of bands not flagged bad (bbl = 0)."""
        return [i for i, b in enumerate(self.bbl) if b]


def _unit_factor(units: str | None, values: Sequence[float]) -> float:
    """Factor that converts wavelengths in ``units`` to nanometres (guessing from magnitude if unknown)."""
    if units:
        key = units.strip().lower()
        if key in _UNIT_FACTORS:
            return _UNIT_FACTORS[key]
    finite = [v for v in values if v is not None]
    if finite and max(finite) < 30:  # micrometres (0.4-2.5) have no plausible nm reading
        return 1000.0
    return 1.0


def _band_spectral_meta(ds) -> tuple[list[float | None], list[float | None], list[int]]:
    """Wavelength (nm), FWHM (nm) and bad-band list from GDAL band tags, the ENVI domain or descriptions."""
    n = ds.count
    wl: list[float | None] = [None] * n
    fw: list[float | None] = [None] * n
    bbl = [1] * n
    units = [None] * n
    for i in range(n):
        tags = {k.lower(): v for k, v in ds.tags(i + 1).items()}
        if "wavelength" in tags:
            try:
                wl[i] = float(tags["wavelength"])
            except ValueError:
                pass
        if "fwhm" in tags:
            try:
                fw[i] = float(tags["fwhm"])
            except ValueError:
                pass
        if "bbl" in tags:
            try:
                bbl[i] = int(float(tags["bbl"]))
            except ValueError:
                pass
        units[i] = tags.get("wavelength_units")
    envi = {k.lower(): v for k, v in ds.tags(ns="ENVI").items()} if n else {}
    envi_wl = number_list(envi.get("wavelength"))
    if any(w is None for w in wl) and envi_wl and len(envi_wl) == n:
        wl = list(envi_wl)
        units = [envi.get("wavelength_units")] * n
    if envi_wl and len(envi_wl) == n:  # GDAL copies ENVI wavelengths to band tags but not always fwhm / bbl
        envi_fw = number_list(envi.get("fwhm"))
        if envi_fw and len(envi_fw) == n and any(f is None for f in fw):
            fw = list(envi_fw)
        envi_bbl = number_list(envi.get("bbl"))
        if envi_bbl and len(envi_bbl) == n and all(b == 1 for b in bbl):
            bbl = [int(b) for b in envi_bbl]
    if any(w is None for w in wl):
        for i, desc in enumerate(ds.descriptions):
            m = _DESC_WAVELENGTH.search(desc or "")
            if m and wl[i] is None:
                wl[i] = float(m.group(1))
                units[i] = m.group(2)
    factor = _unit_factor(next((u for u in units if u), None), wl)
    wl = [None if w is None else w * factor for w in wl]
    fw = [None if f is None else f * factor for f in fw]
    return wl, fw, bbl


def read_meta(path: str | os.PathLike, role: str = "input raster") -> RasterMeta:
    """Open ``path`` and read its grid, nodata, scaling and band spectral metadata.

    ``role`` names the input in error messages (e.g. "hyperspectral (HSI) input").
    """
    import rasterio

    p = str(path)
    if not p:
        raise CsakdError(f"The {role} is not set: give the path of a raster file.")
    if not os.path.exists(p):
        raise CsakdError(f"The {role} '{p}' does not exist: check the path.")
    from csakd_qgis.raster.guard import check_regular_input

    check_regular_input(p, role)
    if os.path.isfile(p) and os.path.getsize(p) == 0:
        raise CsakdError(f"The {role} '{p}' is an empty file (0 bytes), not a raster: copy or export it again.")
    try:
        with rasterio.open(p) as ds:
            wl, fw, bbl = _band_spectral_meta(ds)
            return RasterMeta(
                path=p, width=ds.width, height=ds.height, count=ds.count, crs=ds.crs,
                transform=ds.transform, nodata=ds.nodata,
                scales=[float(s) if s is not None else 1.0 for s in ds.scales],
                offsets=[float(o) if o is not None else 0.0 for o in ds.offsets],
                wavelengths=wl, fwhm=fw, bbl=bbl, descriptions=list(ds.descriptions),
            )
    except rasterio.errors.RasterioIOError as exc:
        raise CsakdError(f"The {role} '{p}' is not a readable raster ({exc}). Give a GeoTIFF, ENVI or "
                         "other GDAL-readable raster.") from None


def to_reflectance(raw: np.ndarray, meta: RasterMeta, bands: Sequence[int] | None = None,
                   copy: bool = True) -> np.ndarray:
    """Apply nodata masking (-> NaN) and per-band scale/offset to a raw (C, h, w) block.

    ``copy=False`` may modify and return ``raw`` itself when it is already float32 (a freshly read block).
    """
    idx = list(range(meta.count)) if bands is None else list(bands)
    out = raw.astype(np.float32, copy=copy)
    if meta.nodata is not None and not np.isnan(meta.nodata):
        for b in range(raw.shape[0]):  # band by band: the mask stays one band, not a copy of the block
            bad = raw[b] == meta.nodata
            if bad.any():
                out[b][bad] = np.nan
    scales = np.asarray([meta.scales[i] for i in idx], np.float32)[:, None, None]
    offsets = np.asarray([meta.offsets[i] for i in idx], np.float32)[:, None, None]
    if np.any(scales != 1) or np.any(offsets != 0):
        out *= scales
        out += offsets
    return out


def read_reflectance(path: str | os.PathLike, window=None, bands: Sequence[int] | None = None,
                     boundless: bool = False) -> np.ndarray:
    """Read a (C, h, w) float32 reflectance block; NaN marks nodata (and out-of-raster when boundless).

    ``bands`` are 0-based indices; ``window`` is a rasterio Window (None = whole raster).
    """
    import rasterio

    meta = read_meta(path)
    idx = list(range(meta.count)) if bands is None else list(bands)
    with rasterio.open(str(path)) as ds:
        if boundless:
            fill = meta.nodata if meta.nodata is not None else np.nan
            raw = ds.read([i + 1 for i in idx], window=window, boundless=True, fill_value=fill)
        else:
            raw = ds.read([i + 1 for i in idx], window=window)
    return to_reflectance(raw, meta, idx)


def check_has_valid_pixel(path: str | os.PathLike, role: str, bands: Sequence[int] | None = None,
                          chunk_bytes: int = 64 * 2 ** 20) -> None:
    """CsakdError when no pixel of ``path`` is valid in its usable bands (all nodata), before any compute.

    A decimated read usually finds a valid pixel at once; otherwise the raster is scanned in row chunks of
    about ``chunk_bytes`` (memory stays bounded, and it stops at the first valid pixel).
    """
    import rasterio
    from rasterio.windows import Window

    meta = read_meta(path, role)
    idx = meta.good_bands() if bands is None else list(bands)
    if idx:
        with rasterio.open(str(path)) as ds:
            shape = (len(idx), min(ds.height, 256), min(ds.width, 256))
            if np.isfinite(to_reflectance(ds.read([i + 1 for i in idx], out_shape=shape), meta, idx)).any():
                return
            rows = max(1, int(chunk_bytes // max(1, 4 * len(idx) * ds.width)))
            for r0 in range(0, ds.height, rows):
                raw = ds.read([i + 1 for i in idx], window=Window(0, r0, ds.width, min(rows, ds.height - r0)))
                if np.isfinite(to_reflectance(raw, meta, idx, copy=False)).any():
                    return
    raise CsakdError(f"The {role} '{path}' has no valid pixel: every pixel is nodata"
                     f"{f' ({meta.nodata:g})' if meta.nodata is not None else ''} in its usable bands. Check the "
                     "file and its nodata value.")


OUTSIDE_MODES = ("fill", "edge", "symmetric")


def _outside_index(idx: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Indices into [0, n) for ``idx`` beyond the edges: clipped ("edge") or mirrored ("symmetric")."""
    if mode == "edge":
        return np.clip(idx, 0, n - 1)
    m = np.mod(idx, 2 * n)  # period 2n: 0..n-1 forward, n..2n-1 backward (edge pixel repeated)
    return np.where(m < n, m, 2 * n - 1 - m)


def read_window_raw(ds, window, indexes: Sequence[int], fill: float = np.nan, outside: str = "fill",
                    out: np.ndarray | None = None) -> np.ndarray:
    """Read an integer ``window`` of 1-based band ``indexes`` from an open dataset as float32, boundless.

    Only the part of the window inside the dataset is read (so it works on WarpedVRTs, which refuse
    rasterio's boundless reads); the rest is ``fill`` (``outside="fill"``), replicates the nearest edge
    pixel of the dataset (``outside="edge"``, the nearest-pixel filling of that region, without NaN) or
    mirrors the dataset about its edge, edge pixel included (``outside="symmetric"``: numpy's "symmetric",
    scipy.ndimage's "reflect"; repeated for windows reaching further than the dataset size). Symmetric
    extension commutes with the s x s block mean of the LR/HR pixel grid (an HR raster mirrored about an LR
    pixel edge block-averages to the mirrored LR raster), so an LR-HSI and its HR-MSI extended this way stay
    a consistent pair; edge replication does not (the replicated HR edge row is not the LR edge pixel).
    ``out``: a float32 (bands, height, width) array (a view is fine) to fill and return instead of a new one.
    """
    from rasterio.windows import Window

    if outside not in OUTSIDE_MODES:
        raise ValueError(f"outside must be one of {', '.join(OUTSIDE_MODES)}, not {outside!r}")
    row0, col0 = int(round(window.row_off)), int(round(window.col_off))
    h, w = int(round(window.height)), int(round(window.width))
    r0, r1 = max(row0, 0), min(row0 + h, ds.height)
    c0, c1 = max(col0, 0), min(col0 + w, ds.width)
    if out is None:
        out = np.empty((len(indexes), h, w), np.float32)
    elif out.shape != (len(indexes), h, w) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {(len(indexes), h, w)}, not {out.dtype} {out.shape}")
    if (r0, r1, c0, c1) == (row0, row0 + h, col0, col0 + w) and len(indexes) and h > 0 and w > 0:
        # inside the raster: read straight into the result (no fill, no copy)
        ds.read(list(indexes), window=Window(c0, r0, w, h), out=out)
        return out
    if outside != "fill" and len(indexes) and h > 0 and w > 0 and ds.height > 0 and ds.width > 0:
        rows = _outside_index(np.arange(row0, row0 + h), ds.height, outside) - row0
        cols = _outside_index(np.arange(col0, col0 + w), ds.width, outside) - col0
        inner_r, inner_c = slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)
        if (r1 > r0 and c1 > c0 and rows.min() >= inner_r.start and rows.max() < inner_r.stop
                and cols.min() >= inner_c.start and cols.max() < inner_c.stop):
            # the mirrored context comes from the part inside: read that in place, then copy rows and columns
            ds.read(list(indexes), window=Window(c0, r0, c1 - c0, r1 - r0), out=out[:, inner_r, inner_c])
            for i in np.flatnonzero(rows != np.arange(h)):
                out[:, i, inner_c] = out[:, rows[i], inner_c]
            for j in np.flatnonzero(cols != np.arange(w)):
                out[:, :, j] = out[:, :, cols[j]]
            return out
        lo_r, lo_c = int(rows.min()) + row0, int(cols.min()) + col0
        data = ds.read(list(indexes), window=Window(lo_c, lo_r, int(cols.max()) + col0 - lo_c + 1,
                                                    int(rows.max()) + row0 - lo_r + 1), out_dtype=np.float32)
        out[...] = data[:, (rows + row0 - lo_r)[:, None], (cols + col0 - lo_c)[None, :]]
        return out
    out.fill(fill)
    if r1 > r0 and c1 > c0 and len(indexes):
        ds.read(list(indexes), window=Window(c0, r0, c1 - c0, r1 - r0), out=out[:, r0 - row0:r1 - row0,
                                                                                  c0 - col0:c1 - col0])
    return out


def check_writable_folder(path: Path, role: str) -> Path:
    """The folder of output ``path``; CsakdError when it is missing or not writable (tested by a real write)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CsakdError(f"The folder of the {role} '{parent}' does not exist: create it or choose another.")
    if not os.access(parent, os.W_OK):
        raise CsakdError(f"The folder of the {role} '{parent}' is not writable: choose another location.")
    try:  # os.access says yes to root even on read-only mounts: really try
        fd, probe = tempfile.mkstemp(prefix=".csakd-write-test.", dir=str(parent))
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise CsakdError(f"The folder of the {role} '{parent}' is not writable ({exc.strerror}): choose another "
                         "location.") from None
    return parent


def check_output_path(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (),
                      role: str = "output raster") -> Path:
    """Validate an output path before any compute: GeoTIFF extension, writable folder, not an input."""
    p = Path(str(path)).expanduser()
    if not str(path):
        raise CsakdError(f"The {role} path is empty: give a .tif file name.")
    if p.suffix.lower() not in SUPPORTED_OUTPUT_EXTENSIONS:
        raise CsakdError(f"The {role} '{p}' has extension '{p.suffix}', but only GeoTIFF "
                         f"({', '.join(SUPPORTED_OUTPUT_EXTENSIONS)}) is written. Rename it to end in .tif.")
    folder = check_writable_folder(p, role)
    _check_path_length(p, role)
    sweep_stale_temporaries(folder)  # the start of every run into a folder: killed runs' temporaries go
    if p.is_dir():
        raise CsakdError(f"The {role} '{p}' is a folder: give a file name ending in .tif.")
    from csakd_qgis.raster.guard import check_not_input

    check_not_input(p, inputs, role)
    return p


def _check_path_length(path: Path, role: str) -> None:
    """CsakdError when the output's temporary (about 24 characters longer) would pass Windows' path limit."""
    limit = oscompat.max_path_length()
    full = os.path.abspath(str(path))
    if limit is not None and len(full) + 24 > limit:
        raise CsakdError(f"The {role} '{full}' is {len(full)} characters long, too long for Windows here (at most "
                         f"{limit - 24} for an output, as its temporary is longer): choose a shorter folder or "
                         "name, or enable long paths in Windows (LongPathsEnabled).")


def locked_output_error(path: str | os.PathLike, role: str) -> CsakdError:
    """The one line for an output Windows refuses to replace: another program (or QGIS's layer) holds it open."""
    return CsakdError(f"The {role} '{path}' cannot be replaced: it is open in another program (in QGIS: a layer "
                      "of the project reads it). Remove that layer from the project or close the program using "
                      "the file, or choose another output name; nothing was written there (the existing file is "
                      "kept).")


def band_description(index: int, wavelength: float | None) -> str:
    """Band description in the EnMAP/QGIS style, e.g. 'band 12 (492.40 nm)'."""
    if wavelength is None:
        return f"band {index + 1}"
    return f"band {index + 1} ({wavelength:.2f} nm)"


@functools.lru_cache(maxsize=1)
def zstd_available() -> bool:
    """Whether this GDAL writes ZSTD-compressed GeoTIFFs (GDAL >= 2.3 built with libzstd)."""
    import rasterio
    from affine import Affine

    path = "/vsimem/csakd_zstd_probe.tif"
    try:
        with rasterio.Env(CPL_LOG="OFF"), rasterio.open(
                path, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32", COMPRESS="ZSTD",
                PREDICTOR="3", transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, 16.0)) as ds:
            ds.write(np.zeros((1, 16, 16), np.float32))
        with rasterio.open(path) as ds:
            return str(getattr(ds.compression, "value", ds.compression) or "").upper() == "ZSTD"
    except Exception:  # noqa: BLE001 - any failure means: not available
        return False
    finally:
        try:
            from rasterio.shutil import delete

            delete(path)
        except Exception:  # noqa: BLE001
            pass


def default_creation_options(n_bands: int, width: int, height: int, dtype: str = "float32") -> dict[str, str]:
    """Tiled GeoTIFF, compressed on all cores; BIGTIFF when the raw size nears 4 GB.

    Compression: ZSTD level 1 with the floating-point predictor (horizontal differencing for the integer
    ``dtype`` outputs; ~3x faster than DEFLATE level 6 for about the same size; read by GDAL >= 2.3, so
    QGIS >= 3.4), DEFLATE level 6 where this GDAL lacks ZSTD. Pass e.g. ``COMPRESS=DEFLATE`` (or ``--co``)
    for readers without ZSTD support.
    """
    raw = n_bands * width * height * np.dtype(dtype).itemsize
    comp = {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "1"} if zstd_available() else {"COMPRESS": "DEFLATE"}
    return {"TILED": "YES", "BLOCKXSIZE": "256", "BLOCKYSIZE": "256", **comp,
            "PREDICTOR": "3" if dtype == "float32" else "2", "INTERLEAVE": "PIXEL" if n_bands <= 8 else "BAND",
            "BIGTIFF": "YES" if raw > 3.5e9 else "IF_SAFER", "NUM_THREADS": "ALL_CPUS"}


def check_output_dtype(dtype: str | None) -> str:
    """The output data type name (float32 when None); CsakdError for anything but float32, int16, uint16."""
    name = str(dtype or "float32").strip().lower()
    if name not in OUTPUT_DTYPES:
        raise CsakdError(f"Output data type '{dtype}' is not supported: give one of {', '.join(OUTPUT_DTYPES)} "
                         "(int16/uint16 store reflectance x 10000 with a scale of 1e-4).")
    return name


def encode_reflectance(block: np.ndarray, dtype: str) -> tuple[np.ndarray, bool]:
    """A float reflectance block as stored in a ``dtype`` output (integers: round(x * 10000), clipped to the
    type's range less the nodata value; NaN/inf -> nodata) and whether it held any finite value."""
    nodata = INTEGER_NODATA[dtype]
    info = np.iinfo(dtype)
    lo, hi = (info.min + 1, info.max) if nodata == info.min else (info.min, info.max - 1)
    out = np.empty(block.shape, dtype)
    any_valid = False
    for i, plane in enumerate(block.reshape(-1, *block.shape[-2:])):  # band by band: one-plane temporaries
        finite = np.isfinite(plane)
        any_valid = any_valid or bool(finite.any())
        scaled = np.rint(np.clip(np.where(finite, plane, 0.0) * (1.0 / REFLECTANCE_SCALE), lo, hi))
        out.reshape(-1, *block.shape[-2:])[i] = np.where(finite, scaled, nodata)
    return out, any_valid


def parse_creation_options(text: str | None) -> dict[str, str]:
    """Parse 'KEY=VALUE KEY2=VALUE2' (space, comma or '|' separated) GDAL creation options."""
    out: dict[str, str] = {}
    for item in re.split(r"[\s,|]+", (text or "").strip()):
        if not item:
            continue
        if "=" not in item:
            raise CsakdError(f"Creation option '{item}' is not KEY=VALUE (e.g. COMPRESS=LZW).")
        k, v = item.split("=", 1)
        out[k.strip().upper()] = v.strip()
    return out


def chmod_like_new_file(path: str | os.PathLike) -> None:
    """Give a mkstemp file (mode 0600) the permissions a normally created file gets (0666 minus the umask)."""
    mask = 0o022
    if sys.platform.startswith("linux"):
        try:  # read without changing it: os.umask() would briefly affect other threads
            with open("/proc/self/status", encoding="ascii") as fh:
                mask = next((int(ln.split()[1], 8) for ln in fh if ln.startswith("Umask:")), mask)
        except OSError:
            pass
    os.chmod(path, 0o666 & ~mask)


def write_error(path: str | os.PathLike, role: str, exc: BaseException) -> BaseException:
    """The exception to raise for a failed write of ``path``: a one-line CsakdError for I/O and GDAL failures."""
    if isinstance(exc, CsakdError | KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    elif isinstance(exc, MemoryError):
        reason = "out of memory"
    elif type(exc).__module__.startswith("rasterio"):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    else:
        return exc
    return CsakdError(f"Writing the {role} '{path}' failed ({reason}). {_SPACE_HINT}")


_SPACE_HINT = "Check the free disk space and the folder; nothing was written there (an existing file is kept)."


class AtomicOutput:
    """A hidden, locked temporary file beside ``path``: :meth:`commit` fsyncs and renames it onto ``path``.

    :meth:`discard` removes it, leaving an existing file at ``path`` untouched. The lock lets
    :func:`sweep_stale_temporaries` tell a running writer's temporary from a killed run's.
    """

    def __init__(self, path: str | os.PathLike, role: str = "output") -> None:
        self.path = Path(str(path))
        self.role = role
        folder = str(self.path.parent) or "."
        sweep_stale_temporaries(folder)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX, dir=folder)
        except OSError as exc:
            raise write_error(self.path, role, exc) from None
        self.tmp = Path(tmp)
        self._fd: int | None = fd
        self._owner = OwnedFile(self.tmp, fd)

    def commit(self) -> Path:
        """Flush the temporary to disk and rename it onto the final path (normal file permissions)."""
        try:
            os.fsync(self._fd)
            if oscompat.windows_semantics():  # Windows renames no file that is open: close (and unlock) first
                self._close()
            chmod_like_new_file(self.tmp)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            if oscompat.is_refused_replace(exc):
                raise locked_output_error(self.path, self.role) from None
            raise write_error(self.path, self.role, exc) from None
        self._close()
        with contextlib.suppress(OSError):
            dfd = os.open(str(self.path.parent) or ".", os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return self.path

    def discard(self) -> None:
        """Remove the temporary (if still there); the final path is not touched."""
        if self.tmp.exists() and not self._discarded:
            if oscompat.windows_semantics():  # Windows removes no open file: close first
                self._close()
            with contextlib.suppress(OSError):
                os.remove(self.tmp)
        self._discarded = True
        self._close()

    _discarded = False

    def _close(self) -> None:
        if self._fd is not None:
            self._owner.release()
            self._fd = None


def write_files_atomic(items: Sequence[tuple[str | os.PathLike, str, bytes | Callable[[Path], None]]]) -> None:
    """Write several files all or nothing: (path, role, bytes or a function writing the given temporary path).

    Every file is written and flushed to its temporary first; only then are they renamed into place.
    """
    outs: list[AtomicOutput] = []
    try:
        for path, role, data in items:
            out = AtomicOutput(path, role)
            outs.append(out)
            try:
                if callable(data):
                    data(out.tmp)
                else:
                    with open(out.tmp, "wb") as fh:
                        fh.write(data)
            except BaseException as exc:
                raise write_error(path, role, exc) from None
    except BaseException:
        for out in outs:
            out.discard()
        raise
    for out in outs:
        out.commit()


def write_bytes_atomic(path: str | os.PathLike, data: bytes | Callable[[Path], None], role: str = "output"
                       ) -> Path:
    """Write ``data`` (bytes, or a function writing the given temporary path) to ``path`` atomically."""
    write_files_atomic([(path, role, data)])
    return Path(str(path))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, role: str = "output") -> Iterator[str]:
    """A temporary file name beside ``path`` for writers that take a name (e.g. gdal.Translate): renamed onto
    ``path`` when the block succeeds, removed otherwise (an existing file at ``path`` is kept)."""
    out = AtomicOutput(path, role)
    try:
        yield str(out.tmp)
    except BaseException as exc:
        out.discard()
        raise write_error(path, role, exc) from None
    out.commit()


class GdalErrorTrap:
    """Collects GDAL failures of a writer instead of letting GDAL print them; use ``with trap:`` around each call.

    GDAL reports a failed block write (e.g. "No space left on device") only through its error handler, often
    while flushing at close; :meth:`check` turns the first failure into a CsakdError. The handler is pushed
    and popped around each call on the calling thread (rasterio replaces handlers pushed earlier).
    """

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._lock = threading.Lock()
        try:
            from osgeo import gdal
        except ImportError:  # rasterio without GDAL's Python bindings: failures then surface as exceptions
            gdal = None
        self._gdal = gdal

    def _handler(self, err_class: int, err_no: int, message: str) -> None:
        if err_class >= 3:  # CE_Failure, CE_Fatal
            with self._lock:
                self.failures.append(str(message).strip())
        elif err_class == 2:
            log.warning("GDAL: %s", message)

    def __enter__(self) -> GdalErrorTrap:
        if self._gdal is not None:
            self._gdal.PushErrorHandler(self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._gdal is not None:
            self._gdal.PopErrorHandler()

    def check(self, path: str | os.PathLike, role: str) -> None:
        """Raise CsakdError naming the first GDAL failure, if any occurred."""
        if self.failures:
            raise CsakdError(f"Writing the {role} '{path}' failed ({self.failures[0]}). {_SPACE_HINT}")


class GeoTiffWriter:
    """Write a float32 GeoTIFF block by block into a temporary file; rename into place on success.

    Use as a context manager: on an exception (including cancel) or a GDAL write failure (e.g. disk full)
    the temporary file is removed and an existing file at the output path is kept. ``require_valid``: the
    error message raised at the end when no valid (finite) value was written. ``commit=False`` leaves the
    finished temporary in :attr:`pending` (an :class:`AtomicOutput`) for the caller to commit or discard,
    so several outputs can be committed together. ``dtype`` int16/uint16 stores reflectance x 10000 with a
    band scale of 1e-4 (offset 0) and the type's nodata (-32768 / 65535), which readers apply.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, count: int, crs, transform,
                 wavelengths: Sequence[float | None] | None = None,
                 fwhm: Sequence[float | None] | None = None,
                 nodata: float = OUTPUT_NODATA, creation_options: dict[str, str] | None = None,
                 tags: dict[str, str] | None = None, bbl: Sequence[int] | None = None,
                 descriptions: Sequence[str | None] | None = None, role: str = "output raster",
                 require_valid: str | None = None, commit: bool = True, dtype: str = "float32") -> None:
        self.path = Path(str(path))
        self.width, self.height, self.count = width, height, count
        self.dtype = check_output_dtype(dtype)
        if self.dtype != "float32":
            nodata = INTEGER_NODATA[self.dtype]
        self.crs, self.transform, self.nodata = crs, transform, nodata
        self.wavelengths = list(wavelengths) if wavelengths is not None else [None] * count
        self.fwhm = list(fwhm) if fwhm is not None else [None] * count
        self.options = default_creation_options(count, width, height, self.dtype)
        self.options.update(creation_options or {})
        self.tags = tags or {}
        self.bbl = list(bbl) if bbl is not None else None
        self.descriptions = list(descriptions) if descriptions is not None else None
        self.role = role
        self.require_valid = require_valid
        self.any_valid = False
        self.commit = commit
        self.pending: AtomicOutput | None = None
        self._ds = None
        self._out: AtomicOutput | None = None
        self._trap: GdalErrorTrap | None = None

    def __enter__(self) -> GeoTiffWriter:
        import rasterio

        self._out = AtomicOutput(self.path, self.role)
        self._trap = GdalErrorTrap()
        try:
            with self._trap:
                self._ds = rasterio.open(self._out.tmp, "w", driver="GTiff", width=self.width,
                                         height=self.height, count=self.count, dtype=self.dtype, crs=self.crs,
                                         transform=self.transform, nodata=self.nodata, **self.options)
            self._trap.check(self.path, self.role)
        except BaseException as exc:
            self._out.discard()
            raise write_error(self.path, self.role, exc) from None
        return self

    @property
    def block_shape(self) -> tuple[int, int]:
        """(rows, cols) of the GeoTIFF's internal blocks (tiles or strips); writing whole blocks is cheapest."""
        if self._ds is None:
            raise RuntimeError("GeoTiffWriter is not open")
        rows, cols = self._ds.block_shapes[0]
        return int(rows), int(cols)

    def write(self, block: np.ndarray, window=None, indexes: Sequence[int] | None = None) -> None:
        """Write a (C, h, w) reflectance block; NaN becomes the output nodata value.

        ``indexes`` (1-based) writes only those bands (block then has len(indexes) bands). ``block`` is not
        modified; it is copied only when it holds non-finite values (or is not float32). A block whose
        band planes are contiguous but not the whole array (a view into a larger buffer) is written band
        by band, without a copy.
        """
        block = np.asarray(block)
        if self.dtype != "float32":
            block, valid = encode_reflectance(block, self.dtype)
            self.any_valid = self.any_valid or valid
        elif block.dtype != np.float32 or not np.isfinite(np.add.reduce(block, axis=None)):
            finite = np.isfinite(block)
            self.any_valid = self.any_valid or bool(finite.any())
            block = np.where(finite, block, self.nodata).astype(np.float32)
        elif block.size:
            self.any_valid = True
        idx = list(range(1, self.count + 1)) if indexes is None else [int(i) for i in indexes]
        try:
            with self._trap:  # a block flushed from the cache may fail (e.g. disk full)
                if block.ndim == 3 and not block.flags.c_contiguous and all(b.flags.c_contiguous for b in block):
                    for i, b in zip(idx, block, strict=True):
                        self._ds.write(b, indexes=i, window=window)
                elif indexes is None:
                    self._ds.write(block, window=window)
                else:
                    self._ds.write(block, indexes=idx, window=window)
        except BaseException as exc:
            raise write_error(self.path, self.role, exc) from None
        self._trap.check(self.path, self.role)  # stop at the first failed block, not after the whole job

    def _finish_metadata(self) -> None:
        ds = self._ds
        if self.dtype != "float32":
            ds.scales = (REFLECTANCE_SCALE,) * self.count
            ds.offsets = (0.0,) * self.count
        for i in range(self.count):
            desc = self.descriptions[i] if self.descriptions and self.descriptions[i] else None
            ds.set_band_description(i + 1, desc or band_description(i, self.wavelengths[i]))
            band_tags = {}
            if self.wavelengths[i] is not None:
                band_tags["wavelength"] = f"{self.wavelengths[i]:.4f}"
                band_tags["wavelength_units"] = "Nanometers"
            if self.fwhm[i] is not None:
                band_tags["fwhm"] = f"{self.fwhm[i]:.4f}"
            if self.bbl is not None:
                band_tags["bbl"] = str(int(self.bbl[i]))
            if band_tags:
                ds.update_tags(i + 1, **band_tags)
        if self.tags:
            ds.update_tags(**self.tags)

    def __exit__(self, exc_type, exc, tb) -> bool:
        failure = exc
        try:
            if exc_type is None:
                if self.require_valid and not self.any_valid:
                    raise CsakdError(self.require_valid)
                with self._trap:
                    self._finish_metadata()
        except BaseException as err:  # noqa: BLE001 - handled below: temporary removed, error converted
            failure = err
        finally:
            try:
                with self._trap:
                    self._ds.close()
            except BaseException as err:  # noqa: BLE001
                failure = failure or err
        if failure is None:
            try:
                self._trap.check(self.path, self.role)
                if self.commit:
                    self._out.commit()
                else:
                    self.pending = self._out
                return False
            except BaseException as err:  # noqa: BLE001
                failure = err
        self._out.discard()
        if failure is exc:  # the caller's error (a failed read, a cancel ...): raised unchanged
            return False
        raise write_error(self.path, self.role, failure) from None


def write_raster(path: str | os.PathLike, array: np.ndarray, crs, transform,
                 wavelengths: Sequence[float | None] | None = None,
                 fwhm: Sequence[float | None] | None = None, tags: dict[str, str] | None = None,
                 creation_options: dict[str, str] | None = None,
                 descriptions: Sequence[str | None] | None = None, role: str = "output raster") -> Path:
    """Write a whole (C, H, W) reflectance array as a georeferenced GeoTIFF (atomically)."""
    c, h, w = array.shape
    with GeoTiffWriter(path, w, h, c, crs, transform, wavelengths, fwhm, tags=tags,
                       creation_options=creation_options, descriptions=descriptions, role=role) as wr:
        wr.write(array)
    return Path(str(path))


def set_band_descriptions(path: str | os.PathLike, descriptions: Sequence[str | None]) -> None:
    """Overwrite the band descriptions of an existing raster (e.g. 'B2 (492.40 nm)' for MSI bands)."""
    import rasterio

    with rasterio.open(str(path), "r+") as ds:
        if len(descriptions) != ds.count:
            raise CsakdError(f"{len(descriptions)} band descriptions for {ds.count} bands in '{path}'.")
        for i, d in enumerate(descriptions):
            if d is not None:
                ds.set_band_description(i + 1, str(d))


def usable_bands(meta, data: np.ndarray | None = None) -> list[int]:
    """0-based indices of bands not flagged bad (bbl = 0) and, if ``data`` (all bands) is given, not all-NaN."""
    good = meta.good_bands()
    if data is not None:
        good = [i for i in good if np.isfinite(data[i]).any()]
    return good

"""What every sensor-product reader yields: rasters with their band characterisation, ready to fuse.

A reader turns a delivered product (folder, zip or its main metadata file) into one or more
:class:`ProductRaster` (e.g. EnMAP: the HSI; PRISMA: the HSI and the PAN; Sentinel-2: the 10 m and the
20 m bands). :func:`write_geotiff` stores one as a GeoTIFF whose band tags (wavelength, fwhm, bbl),
scale/offset and nodata the rest of the engine already reads, with the product's cloud/quality mask
written as nodata.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError


@dataclass(frozen=True)
class Reader:
    """A product format: ``detect(path)`` is True for its folder or main metadata file; ``read`` opens it."""

    name: str  # e.g. "EnMAP L2A"
    detect: Callable[[Path], bool]
    read: Callable[[Path], list[ProductRaster]]


@dataclass
class ProductRaster:
    """One raster of a product on a map grid; reflectance = raw * scale + offset per band.

    ``read_rows(row0, n)`` returns the raw (C, n, width) block of rows ``row0 .. row0 + n``;
    ``invalid_rows(row0, n)`` (optional) a bool (n, width) mask, True where the product flags the pixel
    (cloud, shadow, haze, saturated, outside the swath): those pixels become nodata.
    """

    product: str  # e.g. "EnMAP L2A", "Sentinel-2 L2A"
    role: str  # e.g. "HSI", "PAN", "MSI 10 m", "MSI 20 m"
    source: str  # the product path it came from
    width: int
    height: int
    crs: object  # rasterio CRS
    transform: object  # affine.Affine
    wavelengths: list[float]
    fwhm: list[float | None]
    scales: list[float]
    offsets: list[float]
    nodata: float | None  # the raw value meaning "no data" (before scale/offset)
    dtype: str  # raw dtype, e.g. "int16", "uint16", "float32"
    read_rows: Callable[[int, int], np.ndarray]
    invalid_rows: Callable[[int, int], np.ndarray] | None = None
    bbl: list[int] | None = None  # 1 good / 0 bad per band
    band_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # provenance, mask used, approximations

    @property
    def count(self) -> int:
        """Number of bands."""
        return len(self.wavelengths)

    def summary(self) -> str:
        """One line for logs and the CLI: product, role, size, bands, range and pixel size."""
        res = abs(self.transform.a)
        unit = "deg" if getattr(self.crs, "is_geographic", False) else "m"
        return (f"{self.product} {self.role}: {self.width} x {self.height} px, {self.count} bands "
                f"{min(self.wavelengths):.0f}-{max(self.wavelengths):.0f} nm, {res:g} {unit} pixels"
                + (f" ({'; '.join(self.notes)})" if self.notes else ""))


def _write_value(nodata: float | None, dtype: str) -> float:
    """The raw value written where the mask flags a pixel (the product's nodata, else a dtype-safe one)."""
    if nodata is not None:
        return nodata
    return float("nan") if np.dtype(dtype).kind == "f" else float(np.iinfo(np.dtype(dtype)).min)


def write_geotiff(raster: ProductRaster, path: str | os.PathLike, block_rows: int = 256) -> Path:
    """Store ``raster`` as a tiled GeoTIFF (raw values, scale/offset, nodata, band wavelength/FWHM tags).

    Written in blocks of ``block_rows`` rows so memory stays bounded for whole product scenes. Pixels the
    product's mask flags are written as nodata. Returns ``path``.
    """
    import rasterio

    from csakd_qgis.raster.io import band_description

    nodata = _write_value(raster.nodata, raster.dtype)
    profile = dict(driver="GTiff", width=raster.width, height=raster.height, count=raster.count,
                   dtype=raster.dtype, crs=raster.crs, transform=raster.transform, nodata=nodata,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate", interleave="band",
                   BIGTIFF="IF_SAFER")
    with rasterio.open(str(path), "w", **profile) as ds:
        ds.scales = tuple(float(s) for s in raster.scales)
        ds.offsets = tuple(float(o) for o in raster.offsets)
        bbl = raster.bbl or [1] * raster.count
        for i in range(raster.count):
            tags = {"wavelength": f"{raster.wavelengths[i]:.3f}", "wavelength_units": "nm", "bbl": str(int(bbl[i]))}
            if raster.fwhm[i] is not None:
                tags["fwhm"] = f"{raster.fwhm[i]:.3f}"
            ds.update_tags(i + 1, **tags)
            name = raster.band_names[i] if raster.band_names else None
            ds.set_band_description(i + 1, name and f"{name} ({raster.wavelengths[i]:.1f} nm)"
                                    or band_description(i, raster.wavelengths[i]))
        ds.update_tags(CSAKD_PRODUCT=raster.product, CSAKD_PRODUCT_ROLE=raster.role,
                       CSAKD_PRODUCT_SOURCE=raster.source, CSAKD_PRODUCT_NOTES="; ".join(raster.notes))
        for row0 in range(0, raster.height, block_rows):
            n = min(block_rows, raster.height - row0)
            block = np.asarray(raster.read_rows(row0, n))
            if block.shape != (raster.count, n, raster.width):
                raise CsakdError(f"The {raster.product} reader returned a block of shape {block.shape} for rows "
                                 f"{row0}..{row0 + n} (expected {(raster.count, n, raster.width)}): the product "
                                 f"'{raster.source}' is not laid out as its format specifies.")
            block = block.astype(raster.dtype, copy=False)
            if raster.invalid_rows is not None:
                bad = np.asarray(raster.invalid_rows(row0, n), bool)
                if bad.any():
                    block = block.copy()
                    block[:, bad] = nodata
            ds.write(block, window=((row0, row0 + n), (0, raster.width)))
    return Path(str(path))


MAX_UNZIPPED_BYTES = 64 * 10 ** 9  # a whole hyperspectral scene unpacks to a few GB
MAX_ZIP_RATIO = 100.0  # unpacked / packed size: rasters and JPEG 2000 tiles pack 1-10 x, a zip bomb 1000 x
RATIO_FROM_BYTES = 256 * 10 ** 6  # the ratio is checked only above this unpacked size


def check_zip_size(path: str | os.PathLike, zf: zipfile.ZipFile, folder: Path) -> int:
    """The unpacked size of a product zip; CsakdError before unpacking when it exceeds the free space of
    ``folder``, ``MAX_UNZIPPED_BYTES`` or ``MAX_ZIP_RATIO`` times the zip's own size (a zip bomb)."""
    import shutil

    total = sum(max(0, int(i.file_size)) for i in zf.infolist())
    packed = max(1, sum(max(0, int(i.compress_size)) for i in zf.infolist()))
    gb = total / 1e9
    if total > MAX_UNZIPPED_BYTES:
        raise CsakdError(f"The zipped product '{path}' would unpack to {gb:.1f} GB, more than any product this "
                         f"plugin reads ({MAX_UNZIPPED_BYTES / 1e9:.0f} GB): it is not a product as delivered.")
    if total > RATIO_FROM_BYTES and total / packed > MAX_ZIP_RATIO:
        raise CsakdError(f"The zipped product '{path}' would unpack {packed / 1e6:.1f} MB to {gb:.1f} GB "
                         f"({total / packed:.0f} x): no product packs like that (a zip bomb?); it was not unpacked.")
    free = shutil.disk_usage(folder).free
    if total > free:
        raise CsakdError(f"The zipped product '{path}' needs {gb:.1f} GB to unpack beside the output, but only "
                         f"{free / 1e9:.1f} GB are free there: free space, choose another output folder or "
                         "unpack it by hand.")
    return total


def extract_zip(path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Unpack a zipped product into ``folder`` and return the product's top folder (or ``folder``).

    Members that would land outside ``folder`` (absolute or ``..`` paths) are refused, as is a zip that would
    not fit (:func:`check_zip_size`).
    """
    folder = Path(str(folder))
    try:
        with zipfile.ZipFile(str(path)) as zf:
            folder.mkdir(parents=True, exist_ok=True)
            check_zip_size(path, zf, folder)
            root = folder.resolve()
            for name in zf.namelist():
                target = (folder / name).resolve()
                if root != target and root not in target.parents:
                    raise CsakdError(f"The zipped product '{path}' has a member outside its folder ({name!r}); "
                                     "unpack it by hand after checking where it came from.")
            zf.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise CsakdError(f"The product '{path}' is not a readable zip file ({exc}): download it again.") from None
    tops = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else folder


def find_one(folder: Path, patterns: Sequence[str], what: str, product: str) -> Path:
    """The one file in ``folder`` (recursively) matching any glob of ``patterns``, or one clear error."""
    hits = sorted({p for pat in patterns for p in folder.rglob(pat) if p.is_file()})
    if not hits:
        raise CsakdError(f"The {product} product '{folder}' has no {what} (looked for {', '.join(patterns)}): "
                         "give the complete product folder or zip as delivered.")
    return hits[0]

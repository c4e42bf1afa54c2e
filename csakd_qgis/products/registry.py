"""Which reader opens a given product path, and opening it (zips unpacked into a work folder first)."""

from __future__ import annotations

import os
from pathlib import Path

from csakd_qgis.errors import CsakdError
from csakd_qgis.products import desis, emit, enmap, landsat, prisma, sentinel2  # each defines READER
from csakd_qgis.products.base import ProductRaster, Reader, extract_zip


def readers() -> list[Reader]:
    """Every known product reader, in detection order."""
    return [enmap.READER, desis.READER, prisma.READER, sentinel2.READER, landsat.READER, emit.READER]


def product_names() -> list[str]:
    """Names of the supported products (for help texts)."""
    return [r.name for r in readers()]


def find_reader(path: str | os.PathLike) -> Reader | None:
    """The reader whose format ``path`` (folder or metadata file; not a zip) is, or None for a plain raster."""
    p = Path(str(path))
    for reader in readers():
        if reader.detect(p):
            return reader
    return None


def is_product(path: str | os.PathLike) -> bool:
    """True when ``path`` is a product folder, a product's metadata file or a zip (zips are products only)."""
    p = Path(str(path))
    return p.suffix.lower() == ".zip" or find_reader(p) is not None


def open_product(path: str | os.PathLike, work_dir: str | os.PathLike | None = None) -> list[ProductRaster]:
    """The rasters of the product at ``path`` (folder, zip or metadata file); zips unpack into ``work_dir``."""
    p = Path(str(path))
    if not p.exists():
        raise CsakdError(f"The product '{p}' does not exist: check the path.")
    if p.suffix.lower() == ".zip":
        if work_dir is None:
            raise CsakdError(f"The product '{p}' is a zip: unpack it, or give a work folder to unpack it into.")
        p = extract_zip(p, work_dir)
    reader = find_reader(p)
    if reader is None:
        raise CsakdError(f"'{p}' is not a product this plugin reads (supported: {', '.join(product_names())}; "
                         "or give a GeoTIFF/ENVI raster with band wavelengths).")
    return reader.read(p)

"""What the readers of GDAL-readable products with an XML sidecar share (EnMAP, DESIS).

The XML metadata parsed with one clear error, the processing version taken from the product name, raw
band rows read from the spectral image, and per-pixel flag layers turned into one invalid-pixel mask.
"""

from __future__ import annotations

import fnmatch
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError

ENVI_EXTENSIONS = (".BSQ", ".BIL", ".BIP")


def name_matches(path: Path, patterns: Iterable[str]) -> bool:
    """True when the file name of ``path`` matches one of the globs (case-insensitive)."""
    name = path.name.upper()
    return any(fnmatch.fnmatchcase(name, pat.upper()) for pat in patterns)


def folder_has(folder: Path, patterns: Iterable[str]) -> bool:
    """True when ``folder`` or one of its sub-folders directly holds a file matching one of ``patterns``."""
    if not folder.is_dir():
        return False
    candidates = list(folder.iterdir())
    candidates += [q for p in candidates if p.is_dir() for q in p.iterdir()]
    return any(c.is_file() and name_matches(c, patterns) for c in candidates)


def siblings(meta: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files beside metadata file ``meta`` named ``<its product name>-<suffix>`` (or ``_<suffix>``), sorted.

    The product name is ``meta``'s name without ``-METADATA.XML``; case is ignored, so a folder holding
    several products never mixes their files.
    """
    prefix = re.sub(r"[-_]METADATA\.XML$", "", meta.name.upper())
    prefix = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
    return sorted(p for p in meta.parent.iterdir()
                  if p.is_file() and name_matches(p, [f"{prefix}[-_]{s}" for s in suffixes]))


def product_folder(path: Path) -> Path:
    """The folder of a product given as its folder or one of its files."""
    return path if path.is_dir() else path.parent


def parse_xml(path: Path, product: str) -> ET.Element:
    """The root element of the product's XML metadata file, or one clear error when it is not XML."""
    try:
        return ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CsakdError(f"The {product} metadata file '{path}' is not readable XML ({exc}): download the "
                         "product again.") from None


def xml_text(root: ET.Element, *paths: str) -> str | None:
    """Stripped text of the first element found at one of ``paths`` (ElementTree paths), else None."""
    for p in paths:
        el = root.find(p)
        if el is not None and el.text is not None and el.text.strip():
            return el.text.strip()
    return None


# plausible ranges of what products state (nm; a gain/scale is never 0)
WAVELENGTH_NM = (200.0, 3000.0)
WIDTH_NM = (0.0, 500.0)


def checked_number(value: object, name: str, what: str, source: str | Path, product: str,
                   lo: float | None = None, hi: float | None = None, nonzero: bool = False) -> float:
    """``value`` as a finite float within (``lo``, ``hi``) (open bounds; non-zero with ``nonzero``), or one
    clear error naming the number, where it is and the metadata file."""
    try:
        v = float(str(value).strip()) if not isinstance(value, int | float) else float(value)
    except (TypeError, ValueError):
        v = None
    problem = None
    if v is None:
        problem = "not a number"
    elif not math.isfinite(v):
        problem = "not finite"
    elif (lo is not None and v <= lo) or (hi is not None and v >= hi):
        problem = f"outside {lo:g}..{hi:g}" if lo is not None and hi is not None else (
            f"not above {lo:g}" if lo is not None else f"not below {hi:g}")
    elif nonzero and v == 0:
        problem = "zero"
    if problem is not None:
        raise CsakdError(f"The {product} metadata '{source}' gives {name} = {value!r} for {what} ({problem}): the "
                         "file is damaged or was edited; download the product again.")
    return v  # type: ignore[return-value]


def xml_float(el: ET.Element, tag: str, what: str, source: Path, product: str, lo: float | None = None,
              hi: float | None = None, nonzero: bool = False) -> float:
    """The number in child ``tag`` of ``el`` (finite, in range: :func:`checked_number`), or one clear error."""
    text = el.findtext(tag)
    if text is None:
        raise CsakdError(f"The {product} metadata file '{source}' has no {tag} for {what}: the file is damaged or "
                         "of an unknown version.")
    return checked_number(text, tag, what, source, product, lo, hi, nonzero)


def check_version(name: str, pattern: str, known_majors: Sequence[int], product: str) -> str | None:
    """The processing version in ``name`` (e.g. '01.03.02'), or a clear error for an unknown major version.

    ``pattern`` is a regex with one group per version part (the first the major version). None when the
    name carries no version (a renamed product): the reader goes on and says so in its notes.
    """
    m = re.search(pattern, name)
    if not m:
        return None
    parts = m.groups()
    version = ".".join(parts)
    if int(parts[0]) not in known_majors:
        known = ", ".join(f"{k:02d}.x" for k in known_majors)
        raise CsakdError(f"The {product} product '{name}' has processing version {version}, which this reader "
                         f"does not know (it reads {known}): its metadata layout may differ; update the plugin "
                         "or convert the product to a GeoTIFF with band wavelengths.")
    return version


def nodata_value(image: float | None, metadata: str | None, default: float | None, notes: list[str],
                 metadata_first: bool = True) -> float | None:
    """The raw nodata: the spectral image's own, else the metadata's background value, else ``default``.

    ``metadata_first`` False puts ``default`` before the metadata (for products whose background value is
    known to be unreliable). Whatever is used, a differing metadata value and a fallback are noted.
    """
    try:
        xml_value = float(metadata) if metadata is not None else None
        if xml_value is not None and not math.isfinite(xml_value):
            raise ValueError(metadata)
    except ValueError:
        notes.append(f"the metadata's background value {metadata!r} is not a finite number: ignored")
        xml_value = None
    candidates = [("image nodata", image), ("the metadata's background value", xml_value),
                  ("the product's documented fill value", default)]
    if not metadata_first:
        candidates[1], candidates[2] = candidates[2], candidates[1]
    label, value = next(((k, v) for k, v in candidates if v is not None), ("", None))
    if value is None:
        notes.append("no nodata in the image or the metadata: none used")
        return None
    if label != "image nodata":
        notes.append(f"no nodata in the image: {label} {value:g} used")
    if xml_value is not None and xml_value != value:
        notes.append(f"the metadata's background value {xml_value:g} differs from the nodata {value:g} used")
    return float(value)


@dataclass(frozen=True)
class RasterInfo:
    """Grid, band count, raw dtype and nodata of a GDAL-readable raster."""

    path: Path
    width: int
    height: int
    count: int
    crs: object
    transform: object
    dtype: str
    nodata: float | None


def raster_info(path: Path, what: str, product: str) -> RasterInfo:
    """Open ``path`` once for its header; a clear error when GDAL cannot read it."""
    import rasterio

    if path.suffix.upper() in ENVI_EXTENSIONS and not any(
            h.stem.upper() == path.stem.upper() and h.suffix.upper() == ".HDR" for h in path.parent.iterdir()):
        raise CsakdError(f"The {product} {what} '{path}' has no ENVI header ({path.stem}.HDR) beside it: give "
                         "the complete product folder or zip as delivered.")
    try:
        with rasterio.open(str(path)) as ds:
            return RasterInfo(path, ds.width, ds.height, ds.count, ds.crs, ds.transform, ds.dtypes[0], ds.nodata)
    except rasterio.errors.RasterioIOError as exc:
        raise CsakdError(f"The {product} {what} '{path}' is not a readable raster ({exc}): download the product "
                         "again.") from None


def image_rows(path: Path, width: int) -> Callable[[int, int], np.ndarray]:
    """``read_rows(row0, n)``: the raw (C, n, width) block of every band of the raster at ``path``."""

    def read_rows(row0: int, n: int) -> np.ndarray:
        import rasterio

        with rasterio.open(str(path)) as ds:
            return ds.read(window=((row0, row0 + n), (0, width)))

    return read_rows


@dataclass(frozen=True)
class FlagLayer:
    """A quality raster whose listed bands (1-based) flag a pixel where their value is in ``values``."""

    path: Path
    bands: tuple[int, ...]
    values: tuple[int, ...]
    label: str


def flag_rows(layers: Sequence[FlagLayer], width: int) -> Callable[[int, int], np.ndarray]:
    """``invalid_rows(row0, n)``: True where any of ``layers`` flags the pixel."""

    def invalid_rows(row0: int, n: int) -> np.ndarray:
        import rasterio

        bad = np.zeros((n, width), bool)
        for layer in layers:
            with rasterio.open(str(layer.path)) as ds:
                block = ds.read(list(layer.bands), window=((row0, row0 + n), (0, width)))
            bad |= np.isin(block, layer.values).any(axis=0)
        return bad

    return invalid_rows


def check_layer_grid(layer: Path, image: RasterInfo, what: str, product: str) -> RasterInfo:
    """The header of quality layer ``layer``; a clear error when its size differs from the spectral image."""
    info = raster_info(layer, what, product)
    if (info.width, info.height) != (image.width, image.height):
        raise CsakdError(f"The {product} {what} '{layer}' is {info.width} x {info.height} px but the spectral "
                         f"image is {image.width} x {image.height}: the product folder mixes files of "
                         "different scenes; download it again.")
    return info

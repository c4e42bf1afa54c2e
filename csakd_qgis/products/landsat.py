"""Landsat 8/9 Collection 2 Level-2 (L2SP/L2SR): the surface reflectance bands SR_B1..SR_B7 at 30 m.

Reflectance = DN * REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n from the MTL's Level-2 surface
reflectance group (the MTL also holds Level-1 TOA factors under the same key names, which are not the
ones that apply); DN 0 is fill. QA_PIXEL bits fill, dilated cloud, cirrus, cloud and cloud shadow make
a pixel invalid (snow is kept: it is a valid surface).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.products.base import ProductRaster, Reader, find_one
from csakd_qgis.products.msi_bands import StripCache, band_rows, sensor_centres, shared_grid
from csakd_qgis.products.sidecar import checked_number

PRODUCT = "Landsat 8/9 C2 L2"
BANDS = tuple(range(1, 8))  # SR_B1 .. SR_B7 (coastal aerosol .. SWIR 2)
SR_GROUP = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
QA_BITS = {0: "fill", 1: "dilated cloud", 2: "cirrus", 3: "cloud", 4: "cloud shadow"}
QA_SNOW_BIT = 5
_ID = re.compile(r"L[COTE]0[89]_L[12][A-Z]{2}_\d{6}_\d{8}_\d{8}_\d{2}_(T1|T2|RT)", re.I)
_MTL = re.compile(_ID.pattern + r"_MTL\.(txt|xml)", re.I)


def detect(path: Path) -> bool:
    """True for a Landsat 8/9 product folder (by name or by its *_MTL file) or that MTL file."""
    if path.is_file():
        return bool(_MTL.fullmatch(path.name))
    if path.is_dir():
        return bool(_ID.fullmatch(path.name)) or any(_MTL.fullmatch(p.name) for p in path.glob("*_MTL.*"))
    return False


def parse_mtl_text(text: str) -> dict[str, dict[str, str]]:
    """An ODL MTL ('GROUP = X' ... 'KEY = value' ... 'END_GROUP = X') as {group: {key: value}} (innermost group)."""
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip().strip('"')
        if not sep:
            continue
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            groups[stack[-1]][key] = value
    return groups


def parse_mtl_xml(path: Path) -> dict[str, dict[str, str]]:
    """An XML MTL (LANDSAT_METADATA_FILE / group / key) as {group: {key: value}}."""
    root = ET.parse(str(path)).getroot()
    return {g.tag: {k.tag: (k.text or "").strip() for k in g} for g in root if len(g)}


def _mtl_file(path: Path) -> Path:
    if path.is_file():
        return path
    for ext in ("txt", "xml"):
        hits = sorted(p for p in path.glob(f"*_MTL.{ext}") if _MTL.fullmatch(p.name))
        if hits:
            return hits[0]
    raise CsakdError(f"The {PRODUCT} product '{path}' has no *_MTL.txt or *_MTL.xml metadata: give the complete "
                     "product folder or tar/zip contents as delivered.")


def _read_mtl(mtl: Path) -> dict[str, dict[str, str]]:
    try:
        groups = parse_mtl_xml(mtl) if mtl.suffix.lower() == ".xml" else parse_mtl_text(
            mtl.read_text(encoding="utf-8", errors="replace"))
    except ET.ParseError as exc:
        raise CsakdError(f"The {PRODUCT} metadata '{mtl}' is not readable XML ({exc}): download it again.") from None
    if "PRODUCT_CONTENTS" not in groups:
        raise CsakdError(f"The {PRODUCT} metadata '{mtl}' has no PRODUCT_CONTENTS group: it is not a Collection 2 "
                         "MTL; download the product again.")
    return groups


def _factor(sr: dict[str, str], key: str, mtl: Path) -> float:
    if key not in sr:
        raise CsakdError(f"The {PRODUCT} metadata '{mtl}' has no valid {key} in {SR_GROUP}: the reflectance scale "
                         "is unknown; download the product again.")
    return checked_number(sr[key], key, SR_GROUP, mtl, PRODUCT, nonzero="MULT" in key)


def _band_file(folder: Path, contents: dict[str, str], key: str, suffix: str) -> Path:
    """The file the MTL names under ``key`` when present in ``folder``, else the one ending with ``suffix``."""
    named = contents.get(key)
    if named and (folder / named).is_file():
        return folder / named
    return find_one(folder, [f"*{suffix}"], f"band file *{suffix}", PRODUCT)


def read(path: Path, mask_snow: bool = False) -> list[ProductRaster]:
    """The 30 m surface reflectance raster of a Landsat 8/9 C2 L2 product (folder or its MTL file)."""
    path = Path(path)
    mtl = _mtl_file(path)
    folder = mtl.parent
    groups = _read_mtl(mtl)
    contents = groups["PRODUCT_CONTENTS"]
    collection = contents.get("COLLECTION_NUMBER", "").lstrip("0")
    level = contents.get("PROCESSING_LEVEL", "")
    if collection != "2" or level not in ("L2SP", "L2SR"):
        raise CsakdError(f"The Landsat product '{mtl.name}' is collection {contents.get('COLLECTION_NUMBER', '?')}, "
                         f"level {level or '?'}; this reader reads Collection 2 Level-2 (L2SP/L2SR) surface "
                         "reflectance: download that product.")
    if SR_GROUP not in groups:
        raise CsakdError(f"The {PRODUCT} metadata '{mtl}' has no {SR_GROUP} group: the reflectance scale is "
                         "unknown; download the product again.")
    sr = groups[SR_GROUP]
    scales = [_factor(sr, f"REFLECTANCE_MULT_BAND_{b}", mtl) for b in BANDS]
    offsets = [_factor(sr, f"REFLECTANCE_ADD_BAND_{b}", mtl) for b in BANDS]
    files = [_band_file(folder, contents, f"FILE_NAME_BAND_{b}", f"_SR_B{b}.TIF") for b in BANDS]
    qa = _band_file(folder, contents, "FILE_NAME_QUALITY_L1_PIXEL", "_QA_PIXEL.TIF")
    width, height, crs, transform = shared_grid(files + [qa], PRODUCT, "band and QA_PIXEL")
    craft = groups.get("IMAGE_ATTRIBUTES", {}).get("SPACECRAFT_ID", "") or mtl.name[:4]
    sensor = "L9" if "9" in craft else "L8"
    names = [f"B{b}" for b in BANDS]
    known = sensor_centres(sensor, names)
    if known is None:
        raise CsakdError(f"The {PRODUCT} band centres come from the OLI spectral responses, which need the "
                         "'pyrsr' package: pip install --no-deps pyrsr")
    bits = sum(1 << b for b in QA_BITS) | ((1 << QA_SNOW_BIT) if mask_snow else 0)

    qa_rows = StripCache([qa], width, "uint16")

    def invalid_rows(row0: int, n: int) -> np.ndarray:
        return (qa_rows.rows(0, row0, n) & bits) != 0

    product = f"Landsat {sensor[1]} C2 L2"
    notes = [contents.get("LANDSAT_PRODUCT_ID", mtl.name[:-8]),
             "QA_PIXEL masked: " + ", ".join(QA_BITS.values()) + (", snow" if mask_snow else " (snow kept)"),
             f"band centres from the {sensor} OLI spectral responses"]
    return [ProductRaster(
        product=product, role="MSI 30 m", source=str(folder), width=width, height=height, crs=crs,
        transform=transform, wavelengths=known[0], fwhm=known[1], scales=scales, offsets=offsets, nodata=0,
        dtype="uint16", read_rows=band_rows(files, width), invalid_rows=invalid_rows, bbl=[1] * len(BANDS),
        band_names=[f"SR_B{b}" for b in BANDS], notes=notes)]


READER = Reader(PRODUCT, detect, read)

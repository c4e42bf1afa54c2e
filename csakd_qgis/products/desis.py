"""DESIS Level-2A (surface reflectance) products as DLR delivers them: one VNIR HSI raster.

A product ``DESIS-HSI-L2A-DT..._<tile>-<time>-V<version>`` has ``*-SPECTRAL_IMAGE.tif`` (235 bands,
401-1000 nm), ``*-METADATA.xml`` (per ``band``: bandNumber, wavelengthCenterOfBand,
wavelengthWidthOfBand = FWHM, gainOfBand, offsetOfBand; backgroundValue = nodata) and the L2A pixel
classification ``*-QL_QUALITY-2.tif`` (one 0/1 band per class: 1 shadow, 2 land, 3 snow, 4 haze over
land, 5 haze over water, 6 cloud over land, 7 cloud over water, 8 water, then AOT and water vapour);
shadow, haze and cloud pixels become nodata.
"""

from __future__ import annotations

from pathlib import Path

from csakd_qgis.errors import CsakdError
from csakd_qgis.products.base import ProductRaster, Reader, find_one
from csakd_qgis.products.sidecar import (
    WAVELENGTH_NM,
    WIDTH_NM,
    FlagLayer,
    check_layer_grid,
    check_version,
    flag_rows,
    folder_has,
    image_rows,
    name_matches,
    nodata_value,
    parse_xml,
    product_folder,
    raster_info,
    siblings,
    xml_float,
)

NAME = "DESIS L2A"
METADATA_PATTERNS = ("DESIS-HSI-L2A*METADATA.XML",)
IMAGE_NAMES = ("SPECTRAL_IMAGE.TIF", "SPECTRAL_IMAGE.TIFF")
QUALITY_NAMES = ("QL_QUALITY-2.TIF", "QL_QUALITY-2.TIFF")
MASK_BANDS = {1: "shadow", 4: "haze over land", 5: "haze over water", 6: "cloud over land", 7: "cloud over water"}
VERSION_PATTERN = r"[-_]V(\d{2})(\d{2})(?=[-_.])"
KNOWN_MAJORS = (1, 2, 3)


def detect(path: Path) -> bool:
    """True for a DESIS L2A product folder or its ``*-METADATA.xml``."""
    p = Path(path)
    if p.is_file():
        return name_matches(p, METADATA_PATTERNS)
    return folder_has(p, METADATA_PATTERNS)


def _quality_layer(meta: Path, image, notes: list[str]) -> FlagLayer | None:
    """The shadow/haze/cloud flags of ``*-QL_QUALITY-2.tif``, or None (noted) when the layer is absent."""
    hits = siblings(meta, QUALITY_NAMES)
    if not hits:
        notes.append("no QL_QUALITY-2 layer found: nothing masked")
        return None
    info = check_layer_grid(hits[0], image, "quality layer QL_QUALITY-2", NAME)
    if info.count < max(MASK_BANDS):
        raise CsakdError(f"The {NAME} quality layer '{hits[0]}' has {info.count} bands, fewer than the "
                         f"{max(MASK_BANDS)} class bands of an L2A QL_QUALITY-2: download the product again.")
    notes.append(f"masked as nodata: {', '.join(MASK_BANDS.values())}")
    return FlagLayer(hits[0], tuple(MASK_BANDS), (1,), "QL_QUALITY-2")


def read(path: Path) -> list[ProductRaster]:
    """The HSI of the DESIS L2A product at ``path`` (folder or metadata file)."""
    folder = product_folder(Path(path))
    meta = Path(path) if Path(path).is_file() else find_one(
        folder, ("DESIS-HSI-L2A*METADATA.xml", "DESIS-HSI-L2A*METADATA.XML"), "metadata file (*-METADATA.xml)",
        NAME)
    version = check_version(meta.name, VERSION_PATTERN, KNOWN_MAJORS, NAME)
    root = parse_xml(meta, NAME)
    bands = sorted((el for el in root.iter("band") if el.find("bandNumber") is not None),
                   key=lambda el: int(el.findtext("bandNumber", "0")))
    if not bands:
        raise CsakdError(f"The {NAME} metadata file '{meta}' has no band elements with bandNumber: it is "
                         "damaged or of an unknown version.")
    wl, fw, gains, offsets = [], [], [], []
    for el in bands:
        what = f"band {el.findtext('bandNumber')}"
        wl.append(xml_float(el, "wavelengthCenterOfBand", what, meta, NAME, *WAVELENGTH_NM))
        fw.append(xml_float(el, "wavelengthWidthOfBand", what, meta, NAME, *WIDTH_NM))
        gains.append(xml_float(el, "gainOfBand", what, meta, NAME, nonzero=True))
        offsets.append(xml_float(el, "offsetOfBand", what, meta, NAME))
    hits = siblings(meta, IMAGE_NAMES)
    if not hits:
        raise CsakdError(f"The {NAME} product '{meta.parent}' has no spectral image (looked for *-"
                         f"{', *-'.join(IMAGE_NAMES)} beside {meta.name}): give the complete product folder or "
                         "zip as delivered.")
    info = raster_info(hits[0], "spectral image", NAME)
    if info.count != len(bands):
        raise CsakdError(f"The {NAME} spectral image '{hits[0]}' has {info.count} bands but its metadata "
                         f"'{meta.name}' describes {len(bands)}: the folder mixes files of different products.")
    notes = [f"processing version {version}" if version else "processing version not in the product name"]
    background = next((el.text.strip() for el in root.iter("backgroundValue") if el.text and el.text.strip()),
                      None)
    nodata = nodata_value(info.nodata, background, None, notes)
    layer = _quality_layer(meta, info, notes)
    return [ProductRaster(
        product=NAME, role="HSI", source=str(meta.parent), width=info.width, height=info.height, crs=info.crs,
        transform=info.transform, wavelengths=wl, fwhm=fw, scales=gains, offsets=offsets, nodata=nodata,
        dtype=info.dtype, read_rows=image_rows(hits[0], info.width),
        invalid_rows=flag_rows([layer], info.width) if layer else None, notes=notes)]


READER = Reader(NAME, detect, read)

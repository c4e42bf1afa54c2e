"""EnMAP Level-2A (surface reflectance) products as DLR delivers them: one HSI raster with its band metadata.

A product folder ``ENMAP01-____L2A-DT..._V01xxxx_...`` holds ``*-SPECTRAL_IMAGE`` (GeoTIFF, or ENVI
BSQ/BIL/BIP with a header), ``*-METADATA.XML`` (per band centre, FWHM, gain and offset; the background
value; the delivered format) and the quality layers ``*-QL_QUALITY_*``: cloud, cloud shadow, haze and
cirrus pixels become nodata (snow is a surface and stays). Bands stay in the delivered order, VNIR
then SWIR, with the detectors' overlap (about 900-1000 nm) present in both.
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
    xml_text,
)

NAME = "EnMAP L2A"
METADATA_PATTERNS = ("ENMAP*L2A*-METADATA.XML",)
# productFormat value -> spectral image name patterns (matched case-insensitively)
IMAGE_NAMES = {
    "GeoTIFF+Metadata": ("SPECTRAL_IMAGE.TIF", "SPECTRAL_IMAGE.TIFF", "SPECTRAL_IMAGE_COG.TIF"),
    "BSQ+Metadata": ("SPECTRAL_IMAGE.BSQ",),
    "BIL+Metadata": ("SPECTRAL_IMAGE.BIL",),
    "BIP+Metadata": ("SPECTRAL_IMAGE.BIP",),
}
# quality layer -> raw values that flag a pixel (cirrus: thin, medium, thick; 0 clear, 255 fill are kept)
MASK_LAYERS = {"QL_QUALITY_CLOUD": (1,), "QL_QUALITY_CLOUDSHADOW": (1,), "QL_QUALITY_HAZE": (1,),
               "QL_QUALITY_CIRRUS": (1, 2, 3)}
LAYER_EXTENSIONS = ("TIF", "TIFF", "BSQ", "BIL", "BIP")  # quality layers come in the image's format
VERSION_PATTERN = r"_V(\d{2})(\d{2})(\d{2})_"
KNOWN_MAJORS = (1,)
DEFAULT_NODATA = -32768.0  # the L2A fill value
NODATA_BAND_MEAN = -1000000.0  # bandStatistics mean DLR writes for a band that is all background


def detect(path: Path) -> bool:
    """True for an EnMAP L2A product folder or its ``*-METADATA.XML``."""
    p = Path(path)
    if p.is_file():
        return name_matches(p, METADATA_PATTERNS)
    return folder_has(p, METADATA_PATTERNS)


def _spectral_image(fmt: str | None, meta: Path) -> Path:
    """The spectral image of the delivered format (any supported one when the XML does not say)."""
    if fmt is not None and fmt not in IMAGE_NAMES:
        raise CsakdError(f"The {NAME} product '{meta.parent}' is delivered as '{fmt}' (metadata {meta.name}), "
                         f"which this reader does not read: order it as {', '.join(IMAGE_NAMES)}.")
    names = IMAGE_NAMES[fmt] if fmt else tuple(n for ns in IMAGE_NAMES.values() for n in ns)
    hits = siblings(meta, names)
    if not hits:
        raise CsakdError(f"The {NAME} product '{meta.parent}' has no spectral image (looked for *-"
                         f"{', *-'.join(names)} beside {meta.name}): give the complete product folder or zip "
                         "as delivered.")
    return hits[0]


def _detector_names(root, count: int) -> list[str] | None:
    """'VNIR n' / 'SWIR n' per band from the expected channel lists, when the XML has them."""
    names: dict[int, str] = {}
    for det in ("vnir", "swir"):
        text = xml_text(root, f"specific/{det}ProductQuality/expectedChannelsList")
        for tok in (text or "").split(","):
            if tok.strip().isdigit():
                names[int(tok)] = f"{det.upper()} {int(tok)}"
    if len(names) != count:
        return None
    return [names.get(i + 1, f"band {i + 1}") for i in range(count)]


def _bad_bands(root, count: int) -> list[int] | None:
    """0 for bands the XML's band statistics mark as all background, else 1 (None without statistics)."""
    stats = root.findall("product/bandStatistics/bandID")
    if len(stats) != count:
        return None
    bbl = []
    for el in stats:
        try:
            empty = float(el.findtext("mean", "nan")) == NODATA_BAND_MEAN and float(
                el.findtext("stdDeviation", "nan")) == 0
        except ValueError:
            empty = False
        bbl.append(0 if empty else 1)
    return bbl


def read(path: Path) -> list[ProductRaster]:
    """The HSI of the EnMAP L2A product at ``path`` (folder or metadata file)."""
    folder = product_folder(Path(path))
    meta = Path(path) if Path(path).is_file() else find_one(
        folder, ("ENMAP*L2A*-METADATA.XML", "ENMAP*L2A*-METADATA.xml"), "metadata file (*-METADATA.XML)", NAME)
    version = check_version(meta.name, VERSION_PATTERN, KNOWN_MAJORS, NAME)
    root = parse_xml(meta, NAME)
    level = xml_text(root, "base/level", "metadata/schema/processingLevel")
    if level is not None and level.upper() != "L2A":
        raise CsakdError(f"The EnMAP product '{meta}' is processing level {level}, not L2A: this reader needs "
                         "surface reflectance; order the L2A product.")
    fmt = xml_text(root, "processing/productFormat")
    image = _spectral_image(fmt, meta)
    bands = sorted(root.findall("specific/bandCharacterisation/bandID"),
                   key=lambda el: int(el.get("number", "0")))
    if not bands:
        raise CsakdError(f"The {NAME} metadata file '{meta}' has no specific/bandCharacterisation/bandID "
                         "elements: it is damaged or of an unknown version.")
    wl, fw, gains, offsets = [], [], [], []
    for el in bands:
        what = f"band {el.get('number')}"
        wl.append(xml_float(el, "wavelengthCenterOfBand", what, meta, NAME, *WAVELENGTH_NM))
        fw.append(xml_float(el, "FWHMOfBand", what, meta, NAME, *WIDTH_NM))
        gains.append(xml_float(el, "GainOfBand", what, meta, NAME, nonzero=True))
        offsets.append(xml_float(el, "OffsetOfBand", what, meta, NAME))
    info = raster_info(image, "spectral image", NAME)
    if info.count != len(bands):
        raise CsakdError(f"The {NAME} spectral image '{image}' has {info.count} bands but its metadata "
                         f"'{meta.name}' describes {len(bands)}: the folder mixes files of different products.")
    notes = [f"processing version {version}" if version else "processing version not in the product name",
             f"format {fmt or image.suffix.lstrip('.').upper()}"]
    # L2A background values in the XML have been missing or wrong, so the fill value -32768 comes first
    nodata = nodata_value(info.nodata, xml_text(root, "specific/backgroundValue"), DEFAULT_NODATA, notes,
                          metadata_first=False)
    layers, found = [], []
    for key, values in MASK_LAYERS.items():
        hits = siblings(meta, [f"{key}.{ext}" for ext in LAYER_EXTENSIONS])
        if hits:
            check_layer_grid(hits[0], info, f"quality layer {key}", NAME)
            layers.append(FlagLayer(hits[0], (1,), values, key))
            found.append(key.removeprefix("QL_QUALITY_").lower())
    notes.append(f"masked as nodata: {', '.join(found)}" if found else
                 "no cloud/shadow/haze/cirrus quality layers found: nothing masked")
    return [ProductRaster(
        product=NAME, role="HSI", source=str(meta.parent), width=info.width, height=info.height, crs=info.crs,
        transform=info.transform, wavelengths=wl, fwhm=fw, scales=gains, offsets=offsets, nodata=nodata,
        dtype=info.dtype, read_rows=image_rows(image, info.width),
        invalid_rows=flag_rows(layers, info.width) if layers else None,
        bbl=_bad_bands(root, len(bands)), band_names=_detector_names(root, len(bands)), notes=notes)]


READER = Reader(NAME, detect, read)

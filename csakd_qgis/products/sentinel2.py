"""Sentinel-2 Level-2A (.SAFE): the 10 m bands (B2, B3, B4, B8) and the 20 m bands (B5-B7, B8A, B11, B12).

Reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE, the offset (per band) exists from
processing baseline 04.00 on; DN 0 is no data. The scene classification (SCL, 20 m) flags no data,
saturated/defective, cloud shadow, medium/high-probability cloud and thin cirrus pixels as invalid
(snow is kept: it is a valid surface); at 10 m each SCL pixel covers 2 x 2 pixels (nearest).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.products.base import ProductRaster, Reader, find_one
from csakd_qgis.products.msi_bands import StripCache, band_rows, sensor_centres, shared_grid, srf_centres
from csakd_qgis.products.sidecar import WAVELENGTH_NM, checked_number
from csakd_qgis.spectral.srf import SRF, canonical_band

PRODUCT = "Sentinel-2 L2A"
MTD_NAME = "MTD_MSIL2A.xml"
# role -> (pixel size in m, bands in output order)
ROLES: dict[str, tuple[int, tuple[str, ...]]] = {
    "MSI 10 m": (10, ("B2", "B3", "B4", "B8")),
    "MSI 20 m": (20, ("B5", "B6", "B7", "B8A", "B11", "B12")),
}
# band_id of each physical band when the metadata has no Spectral_Information (fixed by the format)
DEFAULT_BAND_IDS = {b: i for i, b in enumerate(("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                                                 "B10", "B11", "B12"))}
SCL_INVALID = {0: "no data", 1: "saturated/defective", 3: "cloud shadow", 8: "cloud medium probability",
               9: "cloud high probability", 10: "thin cirrus"}
SCL_SNOW = 11  # not masked: snow and ice are a surface the fusion may keep
KNOWN_BASELINES = (2, 5)  # major versions this reader knows (02.xx .. 05.xx)
_SAFE_NAME = re.compile(r"S2[A-D]_MSIL2A_\d{8}T\d{6}_N\d{4}_R\d{3}_T[0-9A-Z]{5}_\d{8}T\d{6}(\.SAFE)?", re.I)
_SPACECRAFT = re.compile(r"sentinel-?2([a-d])", re.I)


def detect(path: Path) -> bool:
    """True for a Sentinel-2 L2A .SAFE folder (by name or by its MTD_MSIL2A.xml) or that metadata file."""
    if path.is_file():
        return path.name.upper() == MTD_NAME.upper()
    if path.is_dir():
        return bool(_SAFE_NAME.fullmatch(path.name)) or (path / MTD_NAME).is_file()
    return False


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first(root: ET.Element, name: str, suffix: bool = False) -> ET.Element | None:
    for el in root.iter():
        tag = _local(el.tag)
        if tag == name or (suffix and tag.endswith(name)):
            return el
    return None


def _number(el: ET.Element | None, what: str, mtd: Path, where: str = "the product", **limits) -> float:
    """The number in ``el`` (finite, within ``limits``: :func:`sidecar.checked_number`), or one clear error."""
    if el is None or not (el.text or "").strip():
        raise CsakdError(f"The {PRODUCT} metadata '{mtd}' has no valid {what}: the file is incomplete or not "
                         "an L2A product; download the product again.")
    return checked_number(el.text, what, where, mtd, PRODUCT, **limits)


def _baseline(root: ET.Element, mtd: Path) -> tuple[str, int]:
    el = _first(root, "PROCESSING_BASELINE")
    text = (el.text or "").strip() if el is not None else ""
    m = re.fullmatch(r"(\d{2})\.(\d{2})", text)
    if not m or not KNOWN_BASELINES[0] <= int(m.group(1)) <= KNOWN_BASELINES[1]:
        raise CsakdError(f"The {PRODUCT} metadata '{mtd}' states processing baseline {text or '(none)'!r}; this "
                         f"reader knows baselines 0{KNOWN_BASELINES[0]}.00-0{KNOWN_BASELINES[1]}.xx: convert the "
                         "product to GeoTIFF with its reflectance scale, or update the plugin.")
    return text, int(m.group(1))


def _spectral_info(root: ET.Element, mtd: Path) -> dict[str, dict]:
    """physical band name -> {'id', 'central', 'min', 'max', 'srf': (wavelengths, responses) or None}; every
    number checked (finite, plausible), a bad one named with its band."""
    out: dict[str, dict] = {}
    for el in root.iter():
        if _local(el.tag) != "Spectral_Information":
            continue
        band = canonical_band(el.get("physicalBand", ""))
        where = f"band {el.get('physicalBand', '?')}"
        info: dict = {"id": int(checked_number(el.get("bandId", el.get("band_id", DEFAULT_BAND_IDS.get(band, -1))),
                                               "bandId", where, mtd, PRODUCT)), "srf": None}
        for key in ("CENTRAL", "MIN", "MAX"):
            sub = _first(el, key)
            info[key.lower()] = (_number(sub, key, mtd, where, lo=WAVELENGTH_NM[0], hi=WAVELENGTH_NM[1])
                                 if sub is not None and (sub.text or "").strip() else None)
        step, values = _first(el, "STEP"), _first(el, "VALUES")
        if step is not None and values is not None and values.text and info["min"] is not None:
            resp = np.asarray([checked_number(v, "VALUES", where, mtd, PRODUCT) for v in values.text.split()],
                              np.float64)
            info["srf"] = (info["min"] + _number(step, "STEP", mtd, where, lo=0.0, hi=100.0) * np.arange(resp.size),
                           resp)
        out[band] = info
    return out


def _offsets(root: ET.Element, major: int, mtd: Path) -> dict[int, float]:
    """band_id -> BOA_ADD_OFFSET (baseline >= 04.00: required; before: none, all 0)."""
    if major < 4:
        return {}
    out = {int(el.get("band_id", "-1")): _number(el, "BOA_ADD_OFFSET", mtd, f"band_id {el.get('band_id')}",
                                                 lo=-65536.0, hi=65536.0)
           for el in root.iter() if _local(el.tag) == "BOA_ADD_OFFSET"}
    if not out:
        raise CsakdError(f"The {PRODUCT} metadata '{mtd}' (baseline 04.00 or later) has no BOA_ADD_OFFSET_VALUES_LIST: "
                         "without it the reflectance would be off by the offset; download the product again.")
    return out


def _centres(sensor: str, bands: tuple[str, ...], spectral: dict[str, dict]
             ) -> tuple[list[float], list[float | None], str]:
    """Band centres/FWHM: the sensor's SRF files, else the product's own responses, else MIN/MAX/CENTRAL."""
    known = sensor_centres(sensor, bands) if sensor in ("S2A", "S2B") else None
    if known is not None:
        return known[0], known[1], f"band centres from the {sensor} spectral responses"
    if all(spectral.get(b, {}).get("srf") is not None for b in bands):
        curves = [spectral[b]["srf"] for b in bands]
        grid = np.arange(min(c[0][0] for c in curves), max(c[0][-1] for c in curves) + 0.5, 1.0)
        resp = np.stack([np.interp(grid, w, r, left=0.0, right=0.0) for w, r in curves])
        c, f = srf_centres(SRF(sensor, list(bands), grid, resp))
        return c, f, "band centres from the product's spectral responses"
    if all(spectral.get(b, {}).get("central") is not None for b in bands):
        fwhm = [spectral[b]["max"] - spectral[b]["min"] if spectral[b]["max"] and spectral[b]["min"] else None
                for b in bands]
        return [spectral[b]["central"] for b in bands], fwhm, "band centres from the product's CENTRAL wavelengths"
    raise CsakdError(f"The {PRODUCT} product of {sensor} states no band wavelengths and pyrsr has no {sensor} "
                     "responses: install pyrsr (pip install --no-deps pyrsr).")


def _scl_reader(scl: Path, width: int, height: int, transform, invalid: tuple[int, ...]):
    """invalid_rows for a grid whose pixels are an integer fraction of the SCL pixels (nearest)."""
    import rasterio

    with rasterio.open(str(scl)) as ds:
        st, sw, sh = ds.transform, ds.width, ds.height
    factor = st.a / transform.a
    k = int(round(factor))
    if abs(factor - k) > 1e-6 or (st.c, st.f) != (transform.c, transform.f) or sw * k < width or sh * k < height:
        raise CsakdError(f"The {PRODUCT} scene classification '{scl.name}' is not on a grid nested with the "
                         f"{transform.a:g} m bands: the product is damaged; download it again.")

    cache = StripCache([scl], sw, "uint8")

    def invalid_rows(row0: int, n: int) -> np.ndarray:
        r0, r1 = row0 // k, -(-(row0 + n) // k)
        classes = cache.rows(0, r0, r1 - r0)
        if k > 1:
            classes = np.repeat(np.repeat(classes, k, axis=0), k, axis=1)
        classes = classes[row0 - r0 * k: row0 - r0 * k + n, :width]
        return np.isin(classes, invalid)

    return invalid_rows


def read(path: Path, mask_snow: bool = False) -> list[ProductRaster]:
    """The 10 m and 20 m rasters of a Sentinel-2 L2A product (folder or its MTD_MSIL2A.xml)."""
    path = Path(path)
    root_dir = path.parent if path.is_file() else path
    mtd = root_dir / MTD_NAME
    if not mtd.is_file():
        raise CsakdError(f"The {PRODUCT} product '{root_dir}' has no {MTD_NAME}: give the complete .SAFE folder "
                         "or zip as delivered.")
    try:
        root = ET.parse(str(mtd)).getroot()
    except ET.ParseError as exc:
        raise CsakdError(f"The {PRODUCT} metadata '{mtd}' is not readable XML ({exc}): download the product "
                         "again.") from None
    baseline, major = _baseline(root, mtd)
    quant = _number(_first(root, "BOA_QUANTIFICATION_VALUE", suffix=True), "BOA_QUANTIFICATION_VALUE", mtd,
                    lo=0.0, hi=1e9)
    if quant <= 0:
        raise CsakdError(f"The {PRODUCT} metadata '{mtd}' has BOA_QUANTIFICATION_VALUE {quant:g} (must be > 0).")
    offsets = _offsets(root, major, mtd)
    spectral = _spectral_info(root, mtd)
    craft = _first(root, "SPACECRAFT_NAME")
    m = _SPACECRAFT.search(craft.text or "") if craft is not None else None
    if m is None:
        m = _SPACECRAFT.search("sentinel2" + root_dir.name[2:3])  # from the S2x_ product name
    sensor = f"S2{m.group(1).upper()}" if m else "S2A"
    invalid = tuple(SCL_INVALID) + ((SCL_SNOW,) if mask_snow else ())
    scl = find_one(root_dir, ["GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2"], "scene classification SCL_20m.jp2",
                   PRODUCT)
    rasters = []
    for role, (res, bands) in ROLES.items():
        files = []
        for b in bands:
            code = b if b == "B8A" else f"B{int(b[1:]):02d}"
            files.append(find_one(root_dir, [f"GRANULE/*/IMG_DATA/R{res}m/*_{code}_{res}m.jp2"],
                                  f"band file {code}_{res}m.jp2", PRODUCT))
        width, height, crs, transform = shared_grid(files, PRODUCT, f"{role} band")
        ids = [spectral.get(b, {}).get("id", DEFAULT_BAND_IDS[b]) for b in bands]
        if major >= 4 and any(i not in offsets for i in ids):
            missing = [b for b, i in zip(bands, ids, strict=True) if i not in offsets]
            raise CsakdError(f"The {PRODUCT} metadata '{mtd}' has no BOA_ADD_OFFSET for band(s) "
                             f"{', '.join(missing)}: download the product again.")
        centres, fwhm, centre_note = _centres(sensor, bands, spectral)
        notes = [f"{sensor}, baseline {baseline}",
                 f"BOA_ADD_OFFSET {offsets[ids[0]]:g} applied" if major >= 4 else "no BOA_ADD_OFFSET (before 04.00)",
                 "SCL masked: " + ", ".join(SCL_INVALID.values()) + (", snow" if mask_snow else " (snow kept)"),
                 centre_note]
        rasters.append(ProductRaster(
            product=PRODUCT, role=role, source=str(root_dir), width=width, height=height, crs=crs,
            transform=transform, wavelengths=centres, fwhm=fwhm, scales=[1.0 / quant] * len(bands),
            offsets=[offsets.get(i, 0.0) / quant for i in ids], nodata=0, dtype="uint16",
            read_rows=band_rows(files, width), invalid_rows=_scl_reader(scl, width, height, transform, invalid),
            bbl=[1] * len(bands), band_names=list(bands), notes=notes))
    return rasters


READER = Reader(PRODUCT, detect, read)

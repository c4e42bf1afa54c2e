"""Miniature EnMAP L2A, DESIS L2A and PRISMA L2D products laid out as delivered, filled with real EnMAP pixels.

Each builder writes the product's files (names, XML elements, HDF5 paths and attributes as the readers
expect them) into a folder and returns what the reader must find: raw values, reflectance, band
characterisation, grid and the pixels its quality layers flag.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from _helpers_raster import ENMAP_DIR, enmap_tile
from affine import Affine

ENMAP_NAME = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"
DESIS_NAME = "DESIS-HSI-L2A-DT0483531728_001-20200601T234520-V0210"
PRISMA_NAME = "PRS_L2D_STD_20200601101404_20200601101408_0001"
ENMAP_NODATA = -32768
ENMAP_GAIN = 1e-4
N_VNIR_ENMAP = 91  # EnMAP L2A bands 1-91 are VNIR, 92-224 SWIR (the detectors overlap at ~900-1000 nm)
EDGE_PIXEL = (0, 31)  # written as background (nodata) in every band, like a swath edge


def enmap_bands() -> tuple[list[float], list[float], list[int]]:
    """Centre, FWHM and bad-band flag of the 224 EnMAP bands, from the real product's table."""
    with open(ENMAP_DIR / "enmap_potsdam_wavelengths.csv") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows], [int(r[2]) for r in rows]


def sensor_bands(sensor: str) -> tuple[list[float], list[float]]:
    """Band centres and FWHM of ``sensor`` ('desis', 'prisma') from the shared response tables."""
    with open(ENMAP_DIR.parent / "srf" / "enmapbox" / f"{sensor}.csv") as fh:
        rows = list(csv.reader(fh))[1:]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


def enmap_raw(col: int = 64, row: int = 0) -> tuple[np.ndarray, object, Affine]:
    """The real tile's stored values (C, 32, 32) as int16 with the edge pixel set to background."""
    import rasterio

    with rasterio.open(str(enmap_tile(col, row))) as ds:
        raw = ds.read().astype(np.int16)
        crs, transform = ds.crs, ds.transform
    raw[:, EDGE_PIXEL[0], EDGE_PIXEL[1]] = ENMAP_NODATA
    return raw, crs, transform


def resample_spectra(raw: np.ndarray, centres: list[float]) -> np.ndarray:
    """Reflectance (len(centres), H, W) of the real EnMAP pixels interpolated to other band centres.

    VNIR bands (< 1000 nm) come from EnMAP's VNIR detector, longer ones from its SWIR detector; its
    all-background water-vapour bands are skipped.
    """
    wl, _, bbl = enmap_bands()
    wl_a = np.asarray(wl)
    refl = raw.astype(np.float64) * ENMAP_GAIN
    vnir = [i for i in range(N_VNIR_ENMAP)]
    swir = [i for i in range(N_VNIR_ENMAP, len(wl)) if bbl[i] and wl[i] > 1000]
    use = vnir + swir
    x = wl_a[use]
    flat = refl[use].reshape(len(use), -1)
    out = np.empty((len(centres), flat.shape[1]))
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(centres, x, flat[:, j])
    return out.reshape(len(centres), *raw.shape[1:])


def _sub(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def _write_tif(path: Path, data: np.ndarray, crs, transform, nodata=None, driver="GTiff", **opts) -> None:
    import rasterio

    data = data if data.ndim == 3 else data[None]
    with rasterio.open(str(path), "w", driver=driver, width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
                       **opts) as ds:
        ds.write(data)


def _write_enmap_file(prod: Path, stem: str, data: np.ndarray, fmt: str, crs, transform, nodata=None) -> None:
    """One EnMAP raster as DLR names it: ``stem.TIF``, or ``stem.<BSQ|BIL|BIP>`` with ``stem.HDR``."""
    if fmt == "GeoTIFF":
        _write_tif(prod / f"{stem}.TIF", data, crs, transform, nodata)
        return
    _write_tif(prod / f"{stem}.{fmt}", data, crs, transform, nodata, driver="ENVI", interleave=fmt)
    (prod / f"{stem}.hdr").rename(prod / f"{stem}.HDR")
    for extra in prod.glob("*.aux.xml"):
        extra.unlink()


def build_enmap(folder: Path, fmt: str = "GeoTIFF", version: str = "010302", level: str = "L2A",
                offset_dn: int = 0, metadata: bool = True, image: bool = True, image_nodata: bool = True,
                background: int = ENMAP_NODATA, tile: tuple[int, int] = (64, 0),
                cloud_rows: tuple[int, int] = (4, 10)) -> dict:
    """An EnMAP L2A product folder: spectral image in ``fmt`` (GeoTIFF/BSQ/BIL/BIP), XML, quality layers.

    ``offset_dn`` shifts the stored values by that many DN and writes OffsetOfBand = -offset_dn * gain,
    so the reflectance stays that of the real tile. ``tile``: which real tile (col, row); ``cloud_rows``: the
    rows of the cloud stamp (columns 10-17). ``image_nodata`` False leaves the nodata tag out of the
    image (the metadata's ``background`` value then tells it); quality layers share the image's format.
    """
    name = ENMAP_NAME.replace("_V010302_", f"_V{version}_")
    prod = folder / name
    prod.mkdir(parents=True)
    raw, crs, transform = enmap_raw(*tile)
    wl, fw, bbl = enmap_bands()
    stored = raw.copy()
    stored[raw != ENMAP_NODATA] += offset_dn
    if image:
        _write_enmap_file(prod, f"{name}-SPECTRAL_IMAGE", stored, fmt, crs, transform,
                          ENMAP_NODATA if image_nodata else None)
    h, w = raw.shape[1:]
    cloud = np.zeros((h, w), np.uint8)
    cloud[cloud_rows[0]:cloud_rows[1], 10:18] = 1
    shadow = np.zeros((h, w), np.uint8)
    shadow[20:24, 2:6] = 1
    haze = np.zeros((h, w), np.uint8)
    haze[28:30, 12:14] = 1
    cirrus = np.zeros((h, w), np.uint8)
    cirrus[27, 27] = 2  # medium cirrus
    snow = np.zeros((h, w), np.uint8)
    snow[0:2, 0:2] = 1  # snow is a surface, not masked
    for key, layer in (("CLOUD", cloud), ("CLOUDSHADOW", shadow), ("HAZE", haze), ("CIRRUS", cirrus),
                       ("SNOW", snow), ("CLASSES", np.ones((h, w), np.uint8)),
                       ("TESTFLAGS", np.zeros((h, w), np.uint8))):
        _write_enmap_file(prod, f"{name}-QL_QUALITY_{key}", layer, fmt, crs, transform)
    _write_enmap_file(prod, f"{name}-QL_PIXELMASK", np.zeros(raw.shape, np.uint8), fmt, crs, transform)
    meta = prod / f"{name}-METADATA.XML"
    if metadata:
        root = ET.Element("level_X")
        md = _sub(root, "metadata")
        schema = _sub(md, "schema")
        _sub(schema, "versionSchema", "01.03.00")
        _sub(schema, "processingLevel", level)
        _sub(md, "name", meta.name)
        base = _sub(root, "base")
        _sub(base, "format", f"ENMAP_{level}")
        _sub(base, "level", level)
        _sub(base, "revision", f"{version[:2]}.{version[2:4]}.{version[4:]}")
        processing = _sub(root, "processing")
        _sub(processing, "productFormat", f"{fmt}+Metadata")
        specific = _sub(root, "specific")
        _sub(specific, "code", level)
        _sub(specific, "backgroundValue", background)
        for det, numbers in (("vnir", range(1, N_VNIR_ENMAP + 1)), ("swir", range(N_VNIR_ENMAP + 1, 225))):
            q = _sub(specific, f"{det}ProductQuality")
            _sub(q, "expectedChannelsList", ",".join(str(n) for n in numbers))
        chars = _sub(specific, "bandCharacterisation")
        for i in range(len(wl)):
            b = _sub(chars, "bandID", number=str(i + 1))
            _sub(b, "wavelengthCenterOfBand", wl[i])
            _sub(b, "FWHMOfBand", fw[i])
            _sub(b, "GainOfBand", ENMAP_GAIN)
            _sub(b, "OffsetOfBand", -offset_dn * ENMAP_GAIN)
        stats = _sub(_sub(root, "product"), "bandStatistics")
        for i in range(len(wl)):
            b = _sub(stats, "bandID", number=str(i + 1))
            valid = raw[i][raw[i] != ENMAP_NODATA] * ENMAP_GAIN
            _sub(b, "wavelength", wl[i])
            _sub(b, "mean", valid.mean() if valid.size else -1000000)
            _sub(b, "stdDeviation", valid.std() if valid.size else 0)
        ET.ElementTree(root).write(str(meta), encoding="UTF-8", xml_declaration=True)
    reflectance = raw.astype(np.float32) * np.float32(ENMAP_GAIN)
    reflectance[raw == ENMAP_NODATA] = np.nan
    return dict(folder=prod, metadata=meta, raw=stored, reflectance=reflectance, wavelengths=wl, fwhm=fw,
                bbl=bbl, crs=crs, transform=transform, masked=(cloud == 1) | (shadow == 1) | (haze == 1)
                | (cirrus > 0), snow=snow == 1)


def build_desis(folder: Path, version: str = "0210", quality: bool = True, image_nodata: bool = True) -> dict:
    """A DESIS L2A product folder: SPECTRAL_IMAGE.tif, METADATA.xml, QL_QUALITY-2.tif (+ the L1 layers)."""
    name = DESIS_NAME.replace("-V0210", f"-V{version}")
    prod = folder / name
    prod.mkdir(parents=True)
    raw_e, crs, transform = enmap_raw()
    wl, fw = sensor_bands("desis")
    refl = resample_spectra(raw_e, wl)
    raw = np.round(refl / ENMAP_GAIN).astype(np.int16)
    edge = raw_e[0] == ENMAP_NODATA
    raw[:, edge] = ENMAP_NODATA
    # gains as DESIS writes them per band (here 1e-4, with a small per-band offset to test it is applied)
    offsets = [round(-0.0005 * (i % 3), 6) for i in range(len(wl))]
    _write_tif(prod / f"{name}-SPECTRAL_IMAGE.tif", raw, crs, transform, ENMAP_NODATA if image_nodata else None)
    h, w = raw.shape[1:]
    q2 = np.zeros((10, h, w), np.uint8)
    q2[1] = 1  # land
    q2[0, 2:5, 2:5] = 1  # shadow
    q2[2, 30:32, 0:3] = 1  # snow: not masked
    q2[3, 8, 8] = 1  # haze over land
    q2[5, 12:16, 20:26] = 1  # cloud over land
    q2[6, 25, 4] = 1  # cloud over water
    q2[8] = 17  # AOT x 100
    q2[9] = 1  # water vapour (a value of 1 here must not flag anything)
    if quality:
        _write_tif(prod / f"{name}-QL_QUALITY-2.tif", q2, crs, transform)
    _write_tif(prod / f"{name}-QL_QUALITY.tif", np.zeros((len(wl), h, w), np.uint8), crs, transform)
    _write_tif(prod / f"{name}-QL_IMAGE.tif", np.zeros((3, h, w), np.uint8), crs, transform)
    root = ET.Element("hsi_doc")
    base = _sub(root, "base")
    _sub(base, "mission", "DESIS")
    _sub(base, "sensor", "HSI")
    _sub(base, "productType", "L2A")
    _sub(base, "version", f"{version[:2]}.{version[2:]}")
    specific = _sub(root, "specific")
    _sub(specific, "numberOfBands", len(wl))
    _sub(specific, "backgroundValue", ENMAP_NODATA)
    chars = _sub(specific, "bandCharacterisation")
    for i in range(len(wl)):
        b = _sub(chars, "band")
        _sub(b, "bandNumber", i + 1)
        _sub(b, "wavelengthCenterOfBand", wl[i])
        _sub(b, "wavelengthWidthOfBand", fw[i])
        _sub(b, "gainOfBand", ENMAP_GAIN)
        _sub(b, "offsetOfBand", offsets[i])
    meta = prod / f"{name}-METADATA.xml"
    ET.ElementTree(root).write(str(meta), encoding="UTF-8", xml_declaration=True)
    reflectance = raw.astype(np.float32) * np.float32(ENMAP_GAIN) + np.asarray(offsets, np.float32)[:, None, None]
    reflectance[raw == ENMAP_NODATA] = np.nan
    masked = (q2[0] == 1) | (q2[3] == 1) | (q2[4] == 1) | (q2[5] == 1) | (q2[6] == 1)
    return dict(folder=prod, metadata=meta, raw=raw, reflectance=reflectance, wavelengths=wl, fwhm=fw,
                offsets=offsets, crs=crs, transform=transform, masked=masked, snow=q2[2] == 1)


PRISMA_SCALE = {"Vnir": (0.001, 0.8), "Swir": (0.0005, 1.0), "Pan": (0.0, 0.9)}
N_VNIR_ZERO, N_SWIR_ZERO = 3, 2  # unused bands: zero centres at the start of VNIR's and the end of SWIR's list


def build_prisma(folder: Path, layout: str = "L2D", cloud: bool = True, level: str = "2D") -> dict:
    """A PRISMA L2D .he5: VNIR/SWIR cubes (rows x bands x cols, descending wavelength), PAN, error matrices.

    ``layout`` 'L2C_names' writes the swaths as PRS_L2C_* (a wrong layout for an L2D reader).
    """
    import h5py
    from rasterio.warp import transform as warp

    prod = folder / PRISMA_NAME
    prod.mkdir(parents=True)
    raw_e, crs, transform = enmap_raw()
    h, w = raw_e.shape[1:]
    edge = raw_e[0] == ENMAP_NODATA
    centres, fwhm = sensor_bands("prisma")
    n_vnir_real = next(i for i in range(1, len(centres)) if centres[i] < centres[i - 1])  # 63
    detectors = {}
    for det, lo, hi in (("Vnir", 0, n_vnir_real), ("Swir", n_vnir_real, len(centres))):
        cw = list(reversed(centres[lo:hi]))
        fw = list(reversed(fwhm[lo:hi]))
        if det == "Vnir":
            cw, fw = [0.0] * N_VNIR_ZERO + cw, [0.0] * N_VNIR_ZERO + fw
        else:
            cw, fw = cw + [0.0] * N_SWIR_ZERO, fw + [0.0] * N_SWIR_ZERO
        smin, smax = PRISMA_SCALE[det]
        refl = resample_spectra(raw_e, [c if c > 0 else 500.0 for c in cw])
        dn = np.clip(np.round((refl - smin) / (smax - smin) * 65535), 1, 65535).astype(np.uint16)
        dn[[i for i, c in enumerate(cw) if c == 0]] = 0
        dn[:, edge] = 0
        detectors[det] = dict(cw=cw, fw=fw, dn=dn, refl=refl)
    swath = "PRS_L2C" if layout == "L2C_names" else "PRS_L2D"
    he5 = prod / f"{PRISMA_NAME}.he5"
    ulx, uly = transform.c + 15.0, transform.f - 15.0  # corner attributes are pixel centres
    pan_src = raw_e[:40].astype(np.float64).mean(axis=0) * ENMAP_GAIN  # EnMAP's ~420-700 nm mean
    pmin, pmax = PRISMA_SCALE["Pan"]
    pan = np.kron(np.clip(np.round((pan_src - pmin) / (pmax - pmin) * 65535), 1, 65535), np.ones((6, 6)))
    pan = pan.astype(np.uint16)
    pan[np.kron(edge, np.ones((6, 6), bool))] = 0
    err_v = np.zeros((h, len(detectors["Vnir"]["cw"]), w), np.uint8)
    err_s = np.zeros((h, len(detectors["Swir"]["cw"]), w), np.uint8)
    err_v[5, 30, 7] = 1  # invalid L1 pixel in a kept VNIR band: masked
    err_s[6, 100, 9] = 1  # invalid in a SWIR band: masked
    err_v[10, 20, 10] = 2  # negative after atmospheric correction: not masked
    err_v[12, 0, 12] = 1  # in an unused (zero-centre) band: not masked
    err_v[14, N_VNIR_ZERO, 14] = 1  # in the longest VNIR band, dropped in the overlap: not masked
    cloud_mask = np.zeros((h, w), np.uint8)
    cloud_mask[20:24, 20:26] = 1
    cloud_mask[2, 2] = 255  # the mask's own error value: not cloud
    err_pan = np.zeros(pan.shape, np.uint8)
    err_pan[100, 50] = 1
    xs = [transform.c + 30 * (j + 0.5) for i in range(h) for j in range(w)]
    ys = [transform.f - 30 * (i + 0.5) for i in range(h) for j in range(w)]
    lon, lat = warp(crs, "EPSG:4326", xs, ys)
    with h5py.File(str(he5), "w") as f:
        f.attrs["Processing_Level"] = np.bytes_(level)
        f.attrs["Product_ID"] = np.bytes_("PRS_L2D_STD")
        f.attrs["Epsg_Code"] = np.int32(crs.to_epsg())
        f.attrs["Product_ULcorner_easting"] = ulx
        f.attrs["Product_ULcorner_northing"] = uly
        f.attrs["Product_LRcorner_easting"] = ulx + 30.0 * (w - 1)
        f.attrs["Product_LRcorner_northing"] = uly - 30.0 * (h - 1)
        for det, d in detectors.items():
            f.attrs[f"List_Cw_{det}"] = np.asarray(d["cw"], np.float32)
            f.attrs[f"List_Fwhm_{det}"] = np.asarray(d["fw"], np.float32)
            f.attrs[f"List_Cw_{det}_Flags"] = np.asarray([int(c > 0) for c in d["cw"]], np.int8)
        for key, (lo, hi) in PRISMA_SCALE.items():
            f.attrs[f"L2Scale{key}Min"] = np.float32(lo)
            f.attrs[f"L2Scale{key}Max"] = np.float32(hi)
        hco = f.create_group(f"HDFEOS/SWATHS/{swath}_HCO")
        data = hco.create_group("Data Fields")
        data["VNIR_Cube"] = detectors["Vnir"]["dn"].transpose(1, 0, 2)  # rows x bands x cols
        data["SWIR_Cube"] = detectors["Swir"]["dn"].transpose(1, 0, 2)
        data["VNIR_PIXEL_L2_ERR_MATRIX"] = err_v
        data["SWIR_PIXEL_L2_ERR_MATRIX"] = err_s
        if cloud:
            data["Cloud_Mask"] = cloud_mask
        geo = hco.create_group("Geolocation Fields")
        geo["Latitude"] = np.asarray(lat, np.float32).reshape(h, w)
        geo["Longitude"] = np.asarray(lon, np.float32).reshape(h, w)
        angles = hco.create_group("Geometric Fields")
        for key in ("Observing_Angle", "Rel_Azimuth_Angle", "Solar_Zenith_Angle"):
            angles[key] = np.zeros((h, w), np.float32)
        pco = f.create_group(f"HDFEOS/SWATHS/{swath}_PCO/Data Fields")
        pco["Cube"] = pan
        pco["PIXEL_L2_ERR_MATRIX"] = err_pan
    masked = np.zeros((h, w), bool)
    masked[5, 7] = masked[6, 9] = True
    if cloud:
        masked |= cloud_mask == 1
    return dict(folder=prod, he5=he5, detectors=detectors, crs=crs, transform=transform, pan=pan,
                pan_masked=err_pan == 1, masked=masked, edge=edge)

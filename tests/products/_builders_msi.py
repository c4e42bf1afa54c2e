"""Miniature Sentinel-2 L2A, Landsat 8/9 C2 L2 and EMIT L2A products, laid out as delivered, with real pixels.

The multispectral bands are the real EnMAP Potsdam spectra (``../shared/data/enmap_potsdam``) through the
sensor's spectral responses, quantised the way each product stores them; the EMIT cube is the real EMIT
scene in ``../shared/data/extra_hsi/emit``. Each builder returns what the reader must get back
(reflectance per band, masks, grids) so the tests compare against values computed here, not by the reader.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from _helpers_raster import SHARED_DATA, enmap_reference
from affine import Affine

from csakd_qgis.spectral.degrade import block_mean, synthesize_msi
from csakd_qgis.spectral.srf import load_srf, srf_matrix

ACOLITE = SHARED_DATA / "srf" / "acolite"
EMIT_CUBE = SHARED_DATA / "extra_hsi" / "emit" / "emit20250324t221005_jpl_unmix_ex"
S2_10M = ("B2", "B3", "B4", "B8")
S2_20M = ("B5", "B6", "B7", "B8A", "B11", "B12")
S2_IDS = {b: i for i, b in enumerate(("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10",
                                      "B11", "B12"))}
S2_OFFSET = -1000.0
S2_QUANT = 10000.0
# SCL stamps on the 20 m grid: (rows, cols, class)
SCL_STAMPS = [((2, 6), (5, 10), 9), ((6, 8), (5, 10), 3), ((10, 11), (10, 16), 10), ((12, 13), (20, 21), 8),
              ((13, 14), (21, 22), 1), ((14, 15), (22, 23), 11), ((15, 16), (23, 24), 7), ((15, 16), (24, 25), 2)]
SCL_MASKED = (0, 1, 3, 8, 9, 10)
L_MULT, L_ADD = 2.75e-05, -0.2
QA_CLEAR = (1 << 6) | (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # clear, all confidences low: 21824
QA_WATER = QA_CLEAR | (1 << 7)
# QA stamps on the 30 m grid: (rows, cols, value); fill (bit 0) is column 0
QA_STAMPS = [((3, 7), (10, 16), (1 << 1) | (1 << 3) | (3 << 8) | (1 << 10) | (1 << 12) | (1 << 14)),  # cloud
             ((7, 9), (10, 16), (1 << 4) | (1 << 8) | (3 << 10) | (1 << 12) | (1 << 14)),  # cloud shadow
             ((12, 13), (30, 40), (1 << 2) | (1 << 8) | (1 << 10) | (1 << 12) | (3 << 14)),  # cirrus
             ((14, 15), (30, 34), (1 << 1) | (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)),  # dilated cloud
             ((20, 22), (50, 54), (1 << 5) | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 14))]  # snow: kept
QA_MASK_BITS = 0b11111


def _msi(sensor: str, bands: tuple[str, ...], ref: dict | None = None) -> np.ndarray:
    """(C, H, W) reflectance of ``bands`` synthesised from ``ref`` (default: the real EnMAP mosaic, 64 x 96)
    through the sensor's SRF."""
    ref = enmap_reference() if ref is None else ref
    R = srf_matrix(load_srf(f"{sensor}:{','.join(bands)}"), ref["wavelengths"], ref["fwhm"])
    return synthesize_msi(ref["cube"], R).astype(np.float64)


def _write_tif_or_jp2(path: Path, band: np.ndarray, transform, crs, driver: str = "GTiff") -> None:
    import rasterio

    opts = dict(QUALITY="100", REVERSIBLE="YES") if driver == "JP2OpenJPEG" else dict(compress="deflate")
    with rasterio.open(str(path), "w", driver=driver, width=band.shape[1], height=band.shape[0], count=1,
                       dtype=band.dtype.name, crs=crs, transform=transform, **opts) as ds:
        ds.write(band, 1)


def acolite_srf(sensor: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Band -> (wavelengths nm, response) from the ACOLITE copy of ESA's S2A/S2B/S2C MSI responses (v4.0)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    band = None
    for line in (ACOLITE / f"{sensor}_MSI_V4.txt").read_text().splitlines():
        m = re.match(r"#\s*S2[ABC]_MSI Band (\w+)", line)
        if m:
            band = "B" + m.group(1).upper()
            curves[band] = []
        elif line.strip() and not line.startswith("#") and band:
            w, r = line.split()[:2]
            curves[band].append((float(w), float(r)))
    return {b: (np.array([w for w, _ in c]), np.array([r for _, r in c])) for b, c in curves.items()}


def _spectral_information(sensor: str) -> str:
    """The Spectral_Information_List of an MTD_MSIL2A.xml, with the sensor's responses at 1 nm."""
    items = []
    for band, (w, r) in acolite_srf(sensor).items():
        nz = np.nonzero(r > 0)[0]
        w, r = w[nz[0]: nz[-1] + 1], r[nz[0]: nz[-1] + 1]
        res = 10 if band in S2_10M else 60 if band in ("B1", "B9", "B10") else 20
        central = float(np.sum(w * r) / np.sum(r))
        items.append(
            f'<Spectral_Information bandId="{S2_IDS[band]}" physicalBand="{band}"><RESOLUTION>{res}</RESOLUTION>'
            f'<Wavelength><MIN unit="nm">{w[0]:g}</MIN><MAX unit="nm">{w[-1]:g}</MAX>'
            f'<CENTRAL unit="nm">{central:.1f}</CENTRAL></Wavelength><Spectral_Response><STEP unit="nm">1</STEP>'
            f'<VALUES>{" ".join(f"{v:.8f}" for v in r)}</VALUES></Spectral_Response></Spectral_Information>')
    return "<Spectral_Information_List>" + "".join(items) + "</Spectral_Information_List>"


def _mtd_msil2a(safe: str, baseline: str, spacecraft: str, images: list[str], with_offsets: bool) -> str:
    sensor = "S2" + spacecraft[-1]
    offsets = ("<BOA_ADD_OFFSET_VALUES_LIST>" + "".join(
        f'<BOA_ADD_OFFSET band_id="{i}">{S2_OFFSET:g}</BOA_ADD_OFFSET>' for i in range(13))
        + "</BOA_ADD_OFFSET_VALUES_LIST>") if with_offsets else ""
    files = "".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in images)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<n1:General_Info><Product_Info>
<PRODUCT_START_TIME>2022-07-24T10:15:59.024Z</PRODUCT_START_TIME>
<PRODUCT_STOP_TIME>2022-07-24T10:15:59.024Z</PRODUCT_STOP_TIME>
<PRODUCT_URI>{safe}</PRODUCT_URI><PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
<PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
<PRODUCT_DOI>https://doi.org/10.5270/S2_-znk9xsj</PRODUCT_DOI>
<GENERATION_TIME>2022-07-24T13:39:07.000000Z</GENERATION_TIME>
<Datatake datatakeIdentifier="GS2A_20220724T101559_036996_N{baseline.replace('.', '')}">
<SPACECRAFT_NAME>{spacecraft}</SPACECRAFT_NAME><DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
<DATATAKE_SENSING_START>2022-07-24T10:15:59.024Z</DATATAKE_SENSING_START>
<SENSING_ORBIT_NUMBER>22</SENSING_ORBIT_NUMBER><SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
</Datatake>
<Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>
<Product_Organisation><Granule_List><Granule datastripIdentifier="S2A_OPER_MSI_L2A_DS_2APS_20220724T133907"
 granuleIdentifier="S2A_OPER_MSI_L2A_TL_2APS_20220724T133907_A036996_T33UUU" imageFormat="JPEG2000">
{files}</Granule></Granule_List></Product_Organisation>
</Product_Info>
<Product_Image_Characteristics>
<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">{S2_QUANT:g}</BOA_QUANTIFICATION_VALUE>
<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
<WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>
{offsets}
{_spectral_information(sensor)}
<PHYSICAL_GAINS bandId="0">1</PHYSICAL_GAINS>
<REFERENCE_BAND>1</REFERENCE_BAND>
<Scene_Classification_List>
<Scene_Classification_ID><SCENE_CLASSIFICATION_TEXT>SC_NODATA</SCENE_CLASSIFICATION_TEXT><SCENE_CLASSIFICATION_INDEX>0</SCENE_CLASSIFICATION_INDEX></Scene_Classification_ID>
<Scene_Classification_ID><SCENE_CLASSIFICATION_TEXT>SC_CLOUD_HIGH_PROBA</SCENE_CLASSIFICATION_TEXT><SCENE_CLASSIFICATION_INDEX>9</SCENE_CLASSIFICATION_INDEX></Scene_Classification_ID>
</Scene_Classification_List>
</Product_Image_Characteristics>
</n1:General_Info>
<n1:Quality_Indicators_Info><Cloud_Coverage_Assessment>3.1</Cloud_Coverage_Assessment></n1:Quality_Indicators_Info>
</n1:Level-2A_User_Product>
"""


def build_sentinel2(folder: Path, baseline: str = "05.10", spacecraft: str = "Sentinel-2A",
                    with_offsets: bool | None = None) -> dict:
    """A .SAFE folder (64 x 96 px at 10 m, 32 x 48 at 20 m) and what its reader must return.

    The EnMAP 30 m pixels stand in for 10 m pixels (their spectra are real; the grid is relabelled), the
    20 m bands are 2 x 2 means of the same synthesis. Returns {'path', 'mtd', 'refl10', 'refl20', 'scl',
    'invalid10', 'invalid20', 'transform10', 'transform20', 'crs', 'sensor'}.
    """
    sensor = "S2" + spacecraft[-1]
    srf_sensor = sensor if sensor in ("S2A", "S2B") else "S2A"  # pyrsr has no S2C: its pixels use S2A's
    ref = enmap_reference()
    major = int(baseline.split(".")[0])
    add = S2_OFFSET if major >= 4 else 0.0
    with_offsets = major >= 4 if with_offsets is None else with_offsets
    refl10 = _msi(srf_sensor, S2_10M)
    refl20 = block_mean(_msi(srf_sensor, S2_20M), 2).astype(np.float64)
    dn10 = np.clip(np.round(refl10 * S2_QUANT - add), 1, 65535).astype(np.uint16)
    dn20 = np.clip(np.round(refl20 * S2_QUANT - add), 1, 65535).astype(np.uint16)
    dn10[:, :, :2] = 0  # outside the orbit swath: DN 0 and SCL 0
    dn20[:, :, :1] = 0
    ndvi = (refl20[3] - refl20[0]) / (refl20[3] + refl20[0])
    scl = np.where(refl20[3] < 0.05, 6, np.where(ndvi > 0.3, 4, 5)).astype(np.uint8)
    scl[:, :1] = 0
    for (r0, r1), (c0, c1), cls in SCL_STAMPS:
        scl[r0:r1, c0:c1] = cls
    x0, y0 = ref["transform"].c, ref["transform"].f
    t10, t20 = Affine(10, 0, x0, 0, -10, y0), Affine(20, 0, x0, 0, -20, y0)
    tile, when = "T33UUU", "20220724T101559"
    name = f"{sensor}_MSIL2A_{when}_N{baseline.replace('.', '')}_R022_{tile}_20220724T133907.SAFE"
    safe = folder / name
    img = safe / "GRANULE" / f"L2A_{tile}_A036996_20220724T101606" / "IMG_DATA"
    images = []
    for res, bands, dn in ((10, S2_10M, dn10), (20, S2_20M, dn20)):
        (img / f"R{res}m").mkdir(parents=True, exist_ok=True)
        for k, b in enumerate(bands):
            code = b if b == "B8A" else f"B{int(b[1:]):02d}"
            stem = f"{tile}_{when}_{code}_{res}m"
            _write_tif_or_jp2(img / f"R{res}m" / f"{stem}.jp2", dn[k], t10 if res == 10 else t20, ref["crs"],
                              "JP2OpenJPEG")
            images.append(f"GRANULE/L2A_{tile}_A036996_20220724T101606/IMG_DATA/R{res}m/{stem}")
    _write_tif_or_jp2(img / "R20m" / f"{tile}_{when}_SCL_20m.jp2", scl, t20, ref["crs"], "JP2OpenJPEG")
    (safe / "DATASTRIP").mkdir()
    (safe / "AUX_DATA").mkdir()
    (safe / "manifest.safe").write_text("<?xml version='1.0' encoding='UTF-8'?><xfdu:XFDU "
                                        "xmlns:xfdu='urn:ccsds:schema:xfdu:1'/>\n")
    mtd = safe / "MTD_MSIL2A.xml"
    mtd.write_text(_mtd_msil2a(name[:-5], baseline, spacecraft, images, with_offsets))
    bad20 = np.isin(scl, SCL_MASKED)
    return {"path": safe, "mtd": mtd, "refl10": (dn10 + add) / S2_QUANT, "refl20": (dn20 + add) / S2_QUANT,
            "dn10": dn10, "dn20": dn20, "synth10": refl10, "synth20": refl20, "scl": scl, "invalid20": bad20 | (dn20[0] == 0),
            "invalid10": np.repeat(np.repeat(bad20, 2, 0), 2, 1) | (dn10[0] == 0),
            "transform10": t10, "transform20": t20, "crs": ref["crs"], "sensor": sensor}


def _mtl_groups(product_id: str, spacecraft: str, files: dict[str, str], sr: bool = True,
                collection: str = "02", level: str = "L2SP") -> dict[str, dict[str, str]]:
    """The groups of a C2 L2 MTL (the Level-1 TOA factors share key names with the SR ones)."""
    contents = {"ORIGIN": "Image courtesy of the U.S. Geological Survey",
                "DIGITAL_OBJECT_IDENTIFIER": "https://doi.org/10.5066/P9OGBGM6", "LANDSAT_PRODUCT_ID": product_id,
                "PROCESSING_LEVEL": level, "COLLECTION_NUMBER": collection, "COLLECTION_CATEGORY": "T1",
                "OUTPUT_FORMAT": "GEOTIFF", **files}
    image = {"SPACECRAFT_ID": spacecraft, "SENSOR_ID": "OLI_TIRS", "WRS_TYPE": "2", "WRS_PATH": "193",
             "WRS_ROW": "23", "DATE_ACQUIRED": "2022-07-24", "CLOUD_COVER": "3.12"}
    proj = {"MAP_PROJECTION": "UTM", "DATUM": "WGS84", "ELLIPSOID": "WGS84", "UTM_ZONE": "33",
            "GRID_CELL_SIZE_REFLECTIVE": "30.00", "REFLECTIVE_LINES": "64", "REFLECTIVE_SAMPLES": "96"}
    srp = {}
    for b in range(1, 8):
        srp[f"REFLECTANCE_MAXIMUM_BAND_{b}"] = "1.602213"
        srp[f"REFLECTANCE_MINIMUM_BAND_{b}"] = "-0.199972"
    for b in range(1, 8):
        srp[f"QUANTIZE_CAL_MAX_BAND_{b}"] = "65535"
        srp[f"QUANTIZE_CAL_MIN_BAND_{b}"] = "1"
    for b in range(1, 8):
        srp[f"REFLECTANCE_MULT_BAND_{b}"] = "2.75E-05"
    for b in range(1, 8):
        srp[f"REFLECTANCE_ADD_BAND_{b}"] = "-0.200000"
    l1 = {f"REFLECTANCE_MULT_BAND_{b}": "2.0000E-05" for b in range(1, 10)}
    l1.update({f"REFLECTANCE_ADD_BAND_{b}": "-0.100000" for b in range(1, 10)})
    groups = {"PRODUCT_CONTENTS": contents, "IMAGE_ATTRIBUTES": image, "PROJECTION_ATTRIBUTES": proj,
              "LEVEL2_PROCESSING_RECORD": {"ALGORITHM_SOURCE_SURFACE_REFLECTANCE": "LaSRC_1.5.0"}}
    if sr:
        groups["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"] = srp
    groups["LEVEL1_RADIOMETRIC_RESCALING"] = l1
    return groups


def _odl(v: str) -> str:
    return v if re.fullmatch(r"-?[0-9.]+(E[-+]?[0-9]+)?", v) else f'"{v}"'


def write_mtl(folder: Path, stem: str, groups: dict[str, dict[str, str]], txt: bool = True, xml: bool = True) -> None:
    """``stem``_MTL.txt (ODL) and/or ``stem``_MTL.xml holding ``groups`` under LANDSAT_METADATA_FILE."""
    if txt:
        lines = ["GROUP = LANDSAT_METADATA_FILE"]
        for g, kv in groups.items():
            lines += [f"  GROUP = {g}"] + [f"    {k} = {_odl(v)}" for k, v in kv.items()] + [f"  END_GROUP = {g}"]
        lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END"]
        (folder / f"{stem}_MTL.txt").write_text("\n".join(lines) + "\n")
    if xml:
        body = "".join(f"<{g}>" + "".join(f"<{k}>{v}</{k}>" for k, v in kv.items()) + f"</{g}>"
                       for g, kv in groups.items())
        (folder / f"{stem}_MTL.xml").write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                                                f"<LANDSAT_METADATA_FILE>{body}</LANDSAT_METADATA_FILE>\n")


def build_landsat(folder: Path, spacecraft: str = "LANDSAT_8", txt: bool = True, xml: bool = True,
                  collection: str = "02", sr_group: bool = True, ref: dict | None = None) -> dict:
    """A Landsat 8/9 C2 L2SP folder and what its reader must return.

    Pixels and grid from ``ref`` ({'cube', 'wavelengths', 'fwhm', 'transform', 'crs'}; NaN pixels become
    fill), by default the real EnMAP mosaic on its own grid (64 x 96 px, 30 m).
    """
    ref = enmap_reference() if ref is None else ref
    sensor = "L9" if spacecraft.endswith("9") else "L8"
    refl = _msi(sensor, tuple(f"B{b}" for b in range(1, 8)), ref)
    fill = ~np.isfinite(refl).all(0)
    fill[:, 0] = True
    dn = np.clip(np.round((np.nan_to_num(refl) - L_ADD) / L_MULT), 1, 65535).astype(np.uint16)
    dn[:, fill] = 0  # fill
    qa = np.where(refl[4] < 0.05, QA_WATER, QA_CLEAR).astype(np.uint16)
    qa[fill] = 1
    for (r0, r1), (c0, c1), v in QA_STAMPS:
        qa[r0:r1, c0:c1] = v
    pid = f"LC0{sensor[1]}_L2SP_193023_20220724_20220802_{collection}_T1"
    d = folder / pid
    d.mkdir(parents=True)
    files = {}
    for b in range(1, 8):
        files[f"FILE_NAME_BAND_{b}"] = f"{pid}_SR_B{b}.TIF"
        _write_tif_or_jp2(d / files[f"FILE_NAME_BAND_{b}"], dn[b - 1], ref["transform"], ref["crs"])
    files["FILE_NAME_QUALITY_L1_PIXEL"] = f"{pid}_QA_PIXEL.TIF"
    _write_tif_or_jp2(d / files["FILE_NAME_QUALITY_L1_PIXEL"], qa, ref["transform"], ref["crs"])
    files["FILE_NAME_METADATA_ODL"] = f"{pid}_MTL.txt"
    write_mtl(d, pid, _mtl_groups(pid, spacecraft, files, sr=sr_group, collection=collection), txt=txt, xml=xml)
    return {"path": d, "mtl_txt": d / f"{pid}_MTL.txt", "mtl_xml": d / f"{pid}_MTL.xml",
            "refl": dn * L_MULT + L_ADD, "dn": dn, "synth": refl, "qa": qa, "invalid": (qa & QA_MASK_BITS) != 0,
            "transform": ref["transform"], "crs": ref["crs"], "sensor": sensor}


def emit_swath() -> dict:
    """The real EMIT cube (10 x 10 x 285, ENVI) with its wavelengths, FWHM and bbl."""
    import rasterio

    with rasterio.open(str(EMIT_CUBE)) as ds:
        cube = ds.read().astype(np.float32)  # (bands, downtrack, crosstrack)
        envi = ds.tags(ns="ENVI")  # the header's lists (GDAL keeps fwhm and bbl only here)

    def values(key: str) -> list[float]:
        return [float(v) for v in envi[key].strip("{} ").split(",")]

    return {"cube": np.moveaxis(cube, 0, -1).copy(), "wavelengths": values("wavelength"), "fwhm": values("fwhm"),
            "bbl": [int(v) for v in values("bbl")]}


EMIT_MASK_BANDS = ["Cloud flag", "Cirrus flag", "Water flag", "Spacecraft Flag", "Dilated Cloud Flag", "AOD550",
                   "H2O (g cm-2)", "Aggregate Flag"]
EMIT_RES = 0.000542232520256367  # degrees, as in the delivered products


def _glt(n_down: int, n_cross: int, angle_deg: float, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """GLT of a swath rotated by ``angle_deg`` on a map grid of the same pixel size: (glt_x, glt_y), 1-based."""
    a = np.deg2rad(angle_deg)
    size = int(np.ceil((n_down + n_cross) * 1.0)) + 2 * pad
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    cy = cx = size / 2
    # map -> swath: rotate the map offsets back by the swath angle, swath centred on the map centre
    s = np.cos(a) * (xx - cx) + np.sin(a) * (yy - cy) + n_cross / 2
    d = -np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + n_down / 2
    inside = (s >= 0) & (s < n_cross) & (d >= 0) & (d < n_down)
    gx = np.where(inside, np.floor(s).astype(np.int32) + 1, 0).astype(np.int32)
    gy = np.where(inside, np.floor(d).astype(np.int32) + 1, 0).astype(np.int32)
    return gx, gy


def build_emit(folder: Path, with_mask: bool = True, drop: tuple[str, ...] = (),
               corner: tuple[float, float] = (13.0512, 52.4093)) -> dict:
    """EMIT_L2A_RFL_001_*.nc (+ EMIT_L2A_MASK_001_*.nc) from the real EMIT cube, its swath rotated 30 degrees.

    ``drop`` leaves out variables ('reflectance', 'glt_x', ...); ``corner``: (lon, lat) of the grid's corner. Returns {'path', 'mask_path', 'cube', 'glt_x',
    'glt_y', 'transform', 'wavelengths', 'fwhm', 'bbl', 'flag' (source pixels with aggregate flag 1),
    'bad_pixel' (a source pixel set to the fill value)}.
    """
    import netCDF4

    sw = emit_swath()
    cube = sw["cube"].copy()
    n_down, n_cross, n_bands = cube.shape
    bad_pixel = (4, 6)
    cube[bad_pixel] = -9999.0
    gx, gy = _glt(n_down, n_cross, 30.0, 1)
    lon0, lat0 = corner  # upper-left (lon, lat) of the ortho grid
    gt = [lon0, EMIT_RES, 0.0, lat0, 0.0, -EMIT_RES]
    wkt = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
           'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
           '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
           'AUTHORITY["EPSG","4326"]]')
    stem = "001_20250324T221005_2508315_004"
    path = folder / f"EMIT_L2A_RFL_{stem}.nc"
    # location of each swath pixel: the centre of the map pixels that point to it
    lat = np.full((n_down, n_cross), -9999.0)
    lon = np.full((n_down, n_cross), -9999.0)
    rows, cols = np.nonzero(gx)
    lon[gy[rows, cols] - 1, gx[rows, cols] - 1] = lon0 + (cols + 0.5) * EMIT_RES
    lat[gy[rows, cols] - 1, gx[rows, cols] - 1] = lat0 - (rows + 0.5) * EMIT_RES
    with netCDF4.Dataset(str(path), "w") as ds:
        ds.setncatts({"ncei_template_version": "NCEI_NetCDF_Swath_Template_v2.0", "title": "EMIT L2A Estimated "
                      "Surface Reflectance 60 m V001", "sensor": "EMIT (Earth Surface Mineral Dust Source "
                      "Investigation)", "platform": "ISS", "Conventions": "CF-1.63", "spatial_ref": wkt,
                      "spatialResolution": EMIT_RES, "flight_line": "emit20250324t221005_o08315_s004",
                      "time_coverage_start": "2025-03-24T22:10:05+0000"})
        ds.setncattr("geotransform", np.asarray(gt, np.float64))
        for name, size in (("downtrack", n_down), ("crosstrack", n_cross), ("bands", n_bands),
                           ("ortho_y", gx.shape[0]), ("ortho_x", gx.shape[1])):
            ds.createDimension(name, size)
        if "reflectance" not in drop:
            v = ds.createVariable("reflectance", "f4", ("downtrack", "crosstrack", "bands"), fill_value=-9999.0)
            v.long_name = "Surface Reflectance"
            v.units = "unitless"
            v[:] = cube
        sbp = ds.createGroup("sensor_band_parameters")
        for name, values, kind in (("wavelengths", sw["wavelengths"], "f4"), ("fwhm", sw["fwhm"], "f4"),
                                   ("good_wavelengths", sw["bbl"], "u1")):
            if name not in drop:
                sbp.createVariable(name, kind, ("bands",))[:] = np.asarray(values)
        loc = ds.createGroup("location")
        for name, values in (("lat", lat), ("lon", lon), ("elev", np.where(lat > -9999, 35.0, -9999.0))):
            loc.createVariable(name, "f8", ("downtrack", "crosstrack"), fill_value=-9999.0)[:] = values
        for name, values in (("glt_x", gx), ("glt_y", gy)):
            if name not in drop:
                var = loc.createVariable(name, "i4", ("ortho_y", "ortho_x"), fill_value=0)
                var[:] = values
    flag = np.zeros((n_down, n_cross), bool)
    flag[1:3, 2:5] = True  # a small cloud in the swath
    mask_path = folder / f"EMIT_L2A_MASK_{stem}.nc"
    if with_mask:
        with netCDF4.Dataset(str(mask_path), "w") as ds:
            ds.setncatts({"spatial_ref": wkt, "title": "EMIT L2A Masks 60 m V001"})
            ds.setncattr("geotransform", np.asarray(gt, np.float64))
            for name, size in (("downtrack", n_down), ("crosstrack", n_cross), ("bands", len(EMIT_MASK_BANDS)),
                               ("ortho_y", gx.shape[0]), ("ortho_x", gx.shape[1])):
                ds.createDimension(name, size)
            m = np.zeros((n_down, n_cross, len(EMIT_MASK_BANDS)), np.float32)
            m[..., 0] = flag
            m[..., 4] = flag
            m[..., 5] = 0.08
            m[..., 6] = 1.4
            m[..., 7] = flag
            ds.createVariable("mask", "f4", ("downtrack", "crosstrack", "bands"), fill_value=-9999.0)[:] = m
            sbp = ds.createGroup("sensor_band_parameters")
            sbp.createVariable("mask_bands", str, ("bands",))[:] = np.array(EMIT_MASK_BANDS, object)
            loc = ds.createGroup("location")
            for name, values in (("glt_x", gx), ("glt_y", gy)):
                loc.createVariable(name, "i4", ("ortho_y", "ortho_x"), fill_value=0)[:] = values
    return {"path": path, "mask_path": mask_path, "cube": cube, "glt_x": gx, "glt_y": gy,
            "transform": Affine.from_gdal(*gt), "wavelengths": sw["wavelengths"], "fwhm": sw["fwhm"],
            "bbl": sw["bbl"], "flag": flag, "bad_pixel": bad_pixel}


def zip_folder(folder: Path, zip_base: Path) -> Path:
    """``folder`` zipped with its top folder as the one member root (how products are downloaded)."""
    return Path(shutil.make_archive(str(zip_base), "zip", root_dir=folder.parent, base_dir=folder.name))


def build_emit_landsat(folder: Path) -> tuple[dict, object, dict]:
    """An EMIT L2A .nc near the equator (~60 m pixels) and a Landsat C2 L2 folder on its own UTM 30 m grid over
    the same place, whose bands are the EMIT spectra (orthorectified, warped nearest) through the OLI SRFs.

    Returns (build_emit's dict, the EMIT ProductRaster, build_landsat's dict).
    """
    from rasterio.crs import CRS
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from csakd_qgis.products.emit import READER

    (folder / "emit").mkdir(parents=True, exist_ok=True)
    emit = build_emit(folder / "emit", corner=(33.0, 1.0))
    (raster,) = READER.read(emit["path"])
    cube = raster.read_rows(0, raster.height).astype(np.float32)
    cube[cube == raster.nodata] = np.nan
    if raster.invalid_rows is not None:
        cube[:, raster.invalid_rows(0, raster.height)] = np.nan
    good = [i for i, b in enumerate(raster.bbl) if b]
    utm = CRS.from_epsg(32636)
    t_utm, w_utm, h_utm = calculate_default_transform(raster.crs, utm, raster.width, raster.height,
                                                      *array_bounds(raster.height, raster.width, raster.transform),
                                                      resolution=30.0)
    warped = np.full((len(good), h_utm, w_utm), np.nan, np.float32)
    reproject(cube[good], warped, src_transform=raster.transform, src_crs=raster.crs, dst_transform=t_utm,
              dst_crs=utm, resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
    ref = {"cube": warped, "wavelengths": [raster.wavelengths[i] for i in good],
           "fwhm": [raster.fwhm[i] for i in good], "crs": utm, "transform": t_utm}
    return emit, raster, build_landsat(folder / "landsat", ref=ref)

"""PRISMA Level-2D (geocoded surface reflectance) products: the 30 m HSI and the 5 m PAN of one ``.he5``.

``PRS_L2D_STD_*.he5`` (HDF-EOS5) holds ``VNIR_Cube`` and ``SWIR_Cube`` under
``HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields``, stored rows x bands x columns as uint16 with
reflectance = L2Scale<Det>Min + raw * (L2Scale<Det>Max - L2Scale<Det>Min) / 65535; band centres and FWHM
are root attributes ``List_Cw_<Det>`` / ``List_Fwhm_<Det>`` (a zero centre marks an unused band; the
lists run in descending wavelength). VNIR and SWIR are merged in ascending wavelength; where they overlap
(about 920-1010 nm) the SWIR bands are kept and the VNIR ones dropped. The map grid comes from
``Epsg_Code`` and the ``Product_UL/LRcorner_easting/northing`` pixel centres. The PAN ``Cube`` of
``PRS_L2D_PCO`` shares the HSI's upper-left corner at 5 m (6 x 6 PAN pixels per HSI pixel). Pixels
the error matrices flag as invalid, and cloud pixels where the file has a ``Cloud_Mask``, become nodata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from csakd_qgis.errors import CsakdError
from csakd_qgis.products.base import ProductRaster, Reader, find_one
from csakd_qgis.products.sidecar import checked_number, folder_has, name_matches, product_folder

NAME = "PRISMA L2D"
FILE_PATTERNS = ("PRS_L2D_*.HE5",)
HCO = "HDFEOS/SWATHS/PRS_L2D_HCO"
PCO = "HDFEOS/SWATHS/PRS_L2D_PCO"
CUBES = {"VNIR": f"{HCO}/Data Fields/VNIR_Cube", "SWIR": f"{HCO}/Data Fields/SWIR_Cube"}
ERRORS = {"VNIR": f"{HCO}/Data Fields/VNIR_PIXEL_L2_ERR_MATRIX", "SWIR": f"{HCO}/Data Fields/SWIR_PIXEL_L2_ERR_MATRIX"}
PAN_CUBE = f"{PCO}/Data Fields/Cube"
PAN_ERROR = f"{PCO}/Data Fields/PIXEL_L2_ERR_MATRIX"
CLOUD_MASK = "Cloud_Mask"  # searched for anywhere under the HCO swath
CLOUD_VALUE = 1
ERR_INVALID = 1  # error matrix values: 0 good, 1 invalid L1 pixel, 2 negative and 4 saturated after correction
GRID_ATTRS = ("Epsg_Code", "Product_ULcorner_easting", "Product_ULcorner_northing",
              "Product_LRcorner_easting", "Product_LRcorner_northing")
HSI_RES = 30.0
PAN_FACTOR = 6
PAN_CENTRE, PAN_FWHM = 550.0, 300.0  # PRISMA PAN covers about 400-700 nm
NODATA = 0.0  # raw fill value outside the swath
DN_MAX = 65535.0


def detect(path: Path) -> bool:
    """True for a PRISMA L2D ``.he5`` file or a folder holding one."""
    p = Path(path)
    if p.is_file():
        return name_matches(p, FILE_PATTERNS)
    return folder_has(p, FILE_PATTERNS)


def _text(value) -> str:
    """An HDF5 string attribute as str."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _attr(f, key: str, he5: Path):
    """Root attribute ``key``, or one clear error naming it."""
    if key not in f.attrs:
        raise CsakdError(f"The {NAME} file '{he5}' lacks the root attribute '{key}': it is not laid out as a "
                         "PRISMA L2D product (or is damaged); download it again.")
    return f.attrs[key]


def _dataset(f, key: str, ndim: int, he5: Path):
    """The ``ndim``-D dataset at ``key``, or one clear error naming the path."""
    ds = f.get(key)
    if ds is None or not hasattr(ds, "shape") or len(ds.shape) != ndim:
        found = "absent" if ds is None else f"shape {getattr(ds, 'shape', '?')}"
        raise CsakdError(f"The {NAME} file '{he5}' has no {ndim}-D dataset '{key}' ({found}): it is not laid out "
                         "as a PRISMA L2D product (or is damaged); download it again.")
    return ds


@dataclass
class _Detector:
    """Kept bands of one detector: indices into its cube, centres, FWHM, and its reflectance scaling."""

    name: str
    index: list[int]
    wavelengths: list[float]
    fwhm: list[float]
    scale: float
    offset: float


def _detector(f, name: str, he5: Path) -> _Detector:
    """The non-zero-centre bands of ``name`` ('VNIR'/'SWIR') and its scaling, checked against its cube."""
    det = name.capitalize()
    cw = np.asarray(_attr(f, f"List_Cw_{det}", he5), float).ravel()
    fw = np.asarray(_attr(f, f"List_Fwhm_{det}", he5), float).ravel()
    lo, hi = (checked_number(np.asarray(_attr(f, f"L2Scale{det}{k}", he5)).ravel()[0], f"L2Scale{det}{k}",
                             f"the {name} cube", he5, NAME) for k in ("Min", "Max"))
    bad = [i for i in range(len(cw)) if not (np.isfinite(cw[i]) and np.isfinite(fw[i]))]
    if bad:
        raise CsakdError(f"The {NAME} file '{he5}' gives List_Cw_{det}/List_Fwhm_{det} = {cw[bad[0]]!r}/"
                         f"{fw[bad[0]]!r} for {name} band {bad[0] + 1} (not finite): the file is damaged or was "
                         "edited; download the product again.")
    n_bands = _dataset(f, CUBES[name], 3, he5).shape[1]
    if len(cw) != n_bands or len(fw) != n_bands:
        raise CsakdError(f"The {NAME} file '{he5}' lists {len(cw)} {name} centres and {len(fw)} FWHM but its "
                         f"{name}_Cube has {n_bands} bands (stored rows x bands x columns): the file is damaged.")
    keep = [i for i in range(n_bands) if cw[i] > 0]
    return _Detector(name, keep, [float(cw[i]) for i in keep], [float(fw[i]) for i in keep],
                     (hi - lo) / DN_MAX, lo)


def _find_named(group, name: str):
    """The first dataset called ``name`` anywhere under ``group``, or None."""
    hits: list = []
    group.visititems(lambda key, obj: hits.append(obj) if key.rsplit("/", 1)[-1] == name
                     and hasattr(obj, "shape") else None)
    return hits[0].name if hits else None


def _grid(f, he5: Path, width: int, height: int, notes: list[str]) -> tuple[CRS, Affine]:
    """CRS and 30 m transform from the corner pixel centres; a note when they disagree with the cube size."""
    epsg, ulx, uly, lrx, lry = (_attr(f, k, he5) for k in GRID_ATTRS)
    crs = CRS.from_epsg(int(np.asarray(epsg).ravel()[0]))
    ulx, uly, lrx, lry = (float(np.asarray(v).ravel()[0]) for v in (ulx, uly, lrx, lry))
    cols, rows = round((lrx - ulx) / HSI_RES) + 1, round((uly - lry) / HSI_RES) + 1
    if (cols, rows) != (width, height):
        notes.append(f"corner attributes span {cols} x {rows} px, the cube {width} x {height}: cube size used")
    half = HSI_RES / 2
    return crs, Affine(HSI_RES, 0.0, ulx - half, 0.0, -HSI_RES, uly + half)


def _hsi_reader(he5: Path, dets: list[_Detector], order: list[tuple[int, int]], width: int
                ) -> Callable[[int, int], np.ndarray]:
    """``read_rows``: raw (C, n, width) of the kept bands, in ascending wavelength (``order``: (det, i))."""

    def read_rows(row0: int, n: int) -> np.ndarray:
        import h5py

        out = np.empty((len(order), n, width), np.uint16)
        with h5py.File(str(he5), "r") as f:
            blocks = [f[CUBES[d.name]][row0:row0 + n] for d in dets]  # (n, bands, width)
        for c, (d, i) in enumerate(order):
            out[c] = blocks[d][:, dets[d].index[i], :]
        return out

    return read_rows


def _hsi_invalid(he5: Path, dets: list[_Detector], errors: dict[str, str], cloud: str | None, width: int
                 ) -> Callable[[int, int], np.ndarray]:
    """``invalid_rows``: invalid in any kept band of the error matrices, or cloud in ``Cloud_Mask``."""

    def invalid_rows(row0: int, n: int) -> np.ndarray:
        import h5py

        bad = np.zeros((n, width), bool)
        with h5py.File(str(he5), "r") as f:
            for d in dets:
                if d.name in errors:
                    err = f[errors[d.name]][row0:row0 + n][:, d.index, :]
                    bad |= (err == ERR_INVALID).any(axis=1)
            if cloud is not None:
                bad |= f[cloud][row0:row0 + n] == CLOUD_VALUE
        return bad

    return invalid_rows


def _pan(f, he5: Path, crs: CRS, hsi_transform: Affine, width: int, height: int, folder: Path
         ) -> ProductRaster | None:
    """The 5 m PAN on the HSI's upper-left corner, or None when the file has no PCO cube."""
    if PAN_CUBE not in f:
        return None
    ds = _dataset(f, PAN_CUBE, 2, he5)
    rows, cols = ds.shape
    lo, hi = (checked_number(np.asarray(_attr(f, f"L2ScalePan{k}", he5)).ravel()[0], f"L2ScalePan{k}",
                             "the PAN cube", he5, NAME) for k in ("Min", "Max"))
    res = HSI_RES / PAN_FACTOR
    notes = [f"band centre {PAN_CENTRE:g} nm and FWHM {PAN_FWHM:g} nm are approximate (PAN covers ~400-700 nm)"]
    if (rows, cols) != (PAN_FACTOR * height, PAN_FACTOR * width):
        notes.append(f"PAN is {cols} x {rows} px, not {PAN_FACTOR} x the HSI's {width} x {height}")
    has_err = PAN_ERROR in f and f[PAN_ERROR].shape == ds.shape

    def read_rows(row0: int, n: int) -> np.ndarray:
        import h5py

        with h5py.File(str(he5), "r") as g:
            return g[PAN_CUBE][row0:row0 + n][None]

    def invalid_rows(row0: int, n: int) -> np.ndarray:
        import h5py

        with h5py.File(str(he5), "r") as g:
            return g[PAN_ERROR][row0:row0 + n] == ERR_INVALID

    notes.append("invalid pixels of the PAN error matrix masked" if has_err else "no PAN error matrix")
    return ProductRaster(
        product=NAME, role="PAN", source=str(folder), width=cols, height=rows, crs=crs,
        transform=Affine(res, 0.0, hsi_transform.c, 0.0, -res, hsi_transform.f),
        wavelengths=[PAN_CENTRE], fwhm=[PAN_FWHM], scales=[(hi - lo) / DN_MAX], offsets=[lo], nodata=NODATA,
        dtype="uint16", read_rows=read_rows, invalid_rows=invalid_rows if has_err else None,
        band_names=["PAN"], notes=notes)


def read(path: Path) -> list[ProductRaster]:
    """The HSI (and the PAN, when present) of the PRISMA L2D product at ``path`` (``.he5`` or its folder)."""
    import h5py

    p = Path(path)
    he5 = p if p.is_file() else find_one(p, ("PRS_L2D_*.he5", "PRS_L2D_*.HE5"), "HDF5 file (PRS_L2D_*.he5)", NAME)
    folder = product_folder(p)
    try:
        f = h5py.File(str(he5), "r")
    except OSError as exc:
        raise CsakdError(f"The {NAME} file '{he5}' is not a readable HDF5 file ({exc}): download it again.") from None
    with f:
        level = _text(f.attrs.get("Processing_Level", "2D")).strip().upper()
        if not level.endswith("2D"):
            raise CsakdError(f"The PRISMA file '{he5}' is processing level {level}, not L2D: this reader needs "
                             "geocoded surface reflectance; order the L2D product.")
        dets = [_detector(f, name, he5) for name in ("VNIR", "SWIR")]
        shapes = {d.name: f[CUBES[d.name]].shape for d in dets}
        (h, _, w), (h2, _, w2) = shapes["VNIR"], shapes["SWIR"]
        if (h, w) != (h2, w2):
            raise CsakdError(f"The {NAME} file '{he5}' has a VNIR cube of {w} x {h} px and a SWIR cube of "
                             f"{w2} x {h2}: the file is damaged; download it again.")
        vnir, swir = dets
        for d in dets:
            if not d.wavelengths:
                raise CsakdError(f"The {NAME} file '{he5}' lists no {d.name} band with a non-zero centre "
                                 f"(List_Cw_{d.name.capitalize()}): the file is damaged; download it again.")
        first_swir = min(swir.wavelengths)
        dropped = [i for i, c in enumerate(vnir.wavelengths) if c >= first_swir]
        notes = [f"VNIR/SWIR overlap {first_swir:.0f}-{max(vnir.wavelengths):.0f} nm: SWIR bands kept, "
                 f"{len(dropped)} VNIR bands dropped", "unused (zero-centre) bands dropped"]
        kept = [i for i in range(len(vnir.index)) if i not in dropped]
        dets[0] = vnir = _Detector("VNIR", [vnir.index[i] for i in kept], [vnir.wavelengths[i] for i in kept],
                                   [vnir.fwhm[i] for i in kept], vnir.scale, vnir.offset)
        order = sorted([(c, 0, i) for i, c in enumerate(vnir.wavelengths)]
                       + [(c, 1, i) for i, c in enumerate(swir.wavelengths)])
        crs, transform = _grid(f, he5, w, h, notes)
        cloud = _find_named(f[HCO], CLOUD_MASK)
        if cloud is not None and f[cloud].shape != (h, w):
            cloud = None
        errors = {d.name: ERRORS[d.name] for d in dets if ERRORS[d.name] in f}
        for name, key in errors.items():
            if f[key].shape != shapes[name]:
                raise CsakdError(f"The {NAME} file '{he5}' has a {name} error matrix of shape {f[key].shape} "
                                 f"but a {name} cube of {shapes[name]}: the file is damaged; download it again.")
        notes.append(f"masked as nodata: invalid pixels of the {'/'.join(errors) or 'no'} error matrices"
                     + ("; Cloud_Mask clouds" if cloud else "; no Cloud_Mask in the file"))
        hsi = ProductRaster(
            product=NAME, role="HSI", source=str(folder), width=w, height=h, crs=crs, transform=transform,
            wavelengths=[dets[d].wavelengths[i] for _, d, i in order],
            fwhm=[dets[d].fwhm[i] for _, d, i in order],
            scales=[dets[d].scale for _, d, i in order], offsets=[dets[d].offset for _, d, i in order],
            nodata=NODATA, dtype="uint16",
            read_rows=_hsi_reader(he5, dets, [(d, i) for _, d, i in order], w),
            invalid_rows=_hsi_invalid(he5, dets, errors, cloud, w) if errors or cloud else None,
            band_names=[f"{dets[d].name} {dets[d].index[i] + 1}" for _, d, i in order], notes=notes)
        pan = _pan(f, he5, crs, transform, w, h, folder)
    return [hsi] + ([pan] if pan is not None else [])


READER = Reader(NAME, detect, read)

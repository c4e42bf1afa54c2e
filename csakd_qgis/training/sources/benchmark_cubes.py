"""Catalogue and readers of the known real benchmark cubes in ``../shared/data`` (extra_hsi, real_pairs/houston2018).

Each cube is read as (cube (C, H, W) float32 reflectance-like in [0, 1.5], wavelengths nm, FWHM nm or None,
provenance). The files store different things, so each catalogue entry names its value rule:

- ``reflectance``: surface reflectance as stored (EMIT L2A, MUUFL CASI);
- ``x1e-4`` / ``x1e-3`` / ``x1/65535``: a known integer scale (Cuprite reflectance x 10^4; the HYDICE Urban
  crop, which jasper_urban/ stores divided by 1000; CAVE 16-bit PNGs);
- ``robust``: unknown scale (DN, or [0, 1] normalised by the dataset): values multiplied so that the 99.5th
  percentile of the cube equals :data:`REFERENCE_P995`, the 99.5th percentile of the known-scale cubes;
- ``radiance``: at-sensor radiance (AVIRIS-NG; the ABU AVIRIS-C cubes, whose spectra fall like the solar
  spectrum into the SWIR): divided by a 5778 K blackbody solar spectrum (apparent-reflectance shape, with the
  atmospheric absorptions left in), then the ``robust`` rule. The ABU AVIRIS-C integers carry the AVIRIS
  radiance gains 1:2:4 over channels 1-110, 111-160, 161-224; they are undone where the cube still holds its
  1.38 / 1.88 um absorption bands (which anchor its channels, :func:`_aviris_anchored`); a cube without them
  (188 or 191 bands) keeps only its bands below 1000 nm, where the channel placement is close and the gain 1.

Bands dropped on reading: flagged bad in the header (bbl = 0), outside the entry's ``keep_nm`` range (noisy
sensor edges), not finite everywhere, constant, or dark (99th percentile below 1 % of the cube's: dead
detectors and saturated absorptions). Band centres come from the file where it stores them, else from the
sensor's band grid ("approximate (sensor grid)": the list of removed channels is not stored for most files).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import read_meta, read_reflectance
from csakd_qgis.spectral.envi import brace_list, envi_header
from csakd_qgis.training.sources.mat_cubes import hydice_urban_wavelengths, load_mat_variables

REFERENCE_P995 = 0.5  # 99.5th percentile of the known-scale cubes (EnMAP Potsdam, Cuprite, HYDICE, EMIT, MUUFL)
MAX_REFLECTANCE = 1.5
DARK_BAND_FRACTION = 0.01
WL_FILE = "file"
WL_APPROX = "approximate (sensor grid)"

_ABU = "X. Kang et al., IEEE TGRS 55(10), 2017 (ABU data set), research use; AVIRIS data NASA/JPL"
_AVIRIS = "AVIRIS, NASA/JPL"
_GATOR_PAVIA = "ROSIS Pavia, University of Pavia (P. Gamba); crop via GatorSense/hsi_toolkit"
_MUUFL = "MUUFL Gulfport, Gader et al., tech. rep. REP-2013-570 (repository MIT)"
_CAVE = "CAVE multispectral images, Yasuma et al., IEEE TIP 2010, research use"
HOUSTON_ATTRIBUTION = ("University of Houston campus, IEEE GRSS Data Fusion Contest 2018: Hyperspectral Image "
                       "Analysis Lab, University of Houston, and NCALM; research use with acknowledgement")
HOUSTON_SOURCE = "featurefusion_igarss2021@6ebbfc489c66d60ca3db646e0fe2d34cfc533cfd:data/houston_dataset.mat"
# 1-based AVIRIS-C channels that the usual benchmark versions drop (not stored in the files)
_CUPRITE_DROPPED = [1, 2, *range(105, 116), *range(150, 171), 223, 224]
_SANDIEGO_DROPPED = [*range(1, 7), 33, 34, 35, 97, *range(107, 114), *range(153, 167), *range(221, 225)]


@dataclass(frozen=True)
class CubeSpec:
    """One known cube: where it is, how it is laid out, what it shows and whose it is."""

    key: str
    path: str  # relative to the data folder
    layout: str  # reader: abu, samson, moffett, cuprite, muufl, rosis, envi, cave, houston
    sensor: str
    scene: str
    land_cover: tuple[str, ...]
    site: str  # acquisition: crops sharing a site always share a corpus split
    attribution: str
    scaling: str
    variable: str | None = None
    keep_nm: tuple[float, float] | None = None
    licence: str = "research use with attribution"


def _abu(key: str, sensor: str, scene: str, cover: tuple[str, ...], site: str, scaling: str = "radiance",
         fname: str | None = None) -> CubeSpec:
    return CubeSpec(key, f"extra_hsi/abu/{fname or key}.mat", "abu", sensor, scene, cover, site, _ABU, scaling, "data")


CATALOGUE: tuple[CubeSpec, ...] = (
    _abu("abu-airport-1", "AVIRIS-C", "Los Angeles airport", ("urban", "vegetation"), "los_angeles"),
    _abu("abu-airport-2", "AVIRIS-C", "Los Angeles airport", ("urban", "vegetation"), "los_angeles"),
    _abu("abu-airport-3", "AVIRIS-C", "Los Angeles airport", ("urban", "vegetation"), "los_angeles"),
    _abu("abu-airport-4", "AVIRIS-C", "Gulfport airport", ("urban", "vegetation"), "gulfport_airport"),
    _abu("abu-beach-1", "AVIRIS-C", "Cat Island: sea water, beach", ("water", "soil"), "cat_island"),
    _abu("abu-beach-3", "AVIRIS-C", "Bay Champagne: water, vegetation", ("water", "vegetation"), "bay_champagne"),
    CubeSpec("abu-beach-4", "extra_hsi/abu/abu-beach-4.mat", "rosis", "ROSIS-03", "Pavia centre: river, bridge",
             ("urban", "water", "vegetation"), "pavia", f"{_ABU}; ROSIS Pavia, University of Pavia (P. Gamba)",
             "robust", "data"),
    _abu("abu-urban-1", "AVIRIS-C", "Texas coast: urban, agriculture", ("urban", "agriculture"), "texas_coast"),
    _abu("abu-urban-2", "AVIRIS-C", "Texas coast: urban, agriculture", ("urban", "agriculture"), "texas_coast"),
    _abu("abu-urban-4", "AVIRIS-C", "Los Angeles urban", ("urban", "soil"), "los_angeles"),
    _abu("abu-urban-5", "AVIRIS-C", "Los Angeles urban", ("urban", "soil"), "los_angeles"),
    CubeSpec("hydice-urban-ad", "extra_hsi/abu/hydice_urban_ad_80x100.mat", "abu", "HYDICE",
             "Urban, Copperas Cove (crop apart from jasper_urban's)", ("urban", "vegetation", "soil"), "hydice_urban",
             f"{_ABU}; HYDICE Urban, US Army AGC", "x1e-3", "data"),
    _abu("sandiego-ad", "AVIRIS-C", "San Diego airport", ("urban",), "san_diego", "robust", "sandiego_ad_100x100"),
    _abu("sandiego-plane", "AVIRIS-C", "San Diego airport", ("urban",), "san_diego", "robust",
         "sandiego_plane_100x100"),
    CubeSpec("samson", "extra_hsi/samson/samson_1.mat", "samson", "SAMSON", "Samson: water, soil, trees",
             ("water", "soil", "vegetation"), "samson", "Samson, via F. Zhu (arXiv:1708.05125)", "robust", "V"),
    CubeSpec("moffett", "extra_hsi/moffett/Moffett_vca.mat", "moffett", "AVIRIS-C", "Moffett Field 1997: lake, "
             "vegetation, soil", ("water", "vegetation", "soil"), "moffett", _AVIRIS, "robust", "Y"),
    CubeSpec("cuprite", "extra_hsi/cuprite/Rcuprite50x90x188.mat", "cuprite", "AVIRIS-C", "Cuprite NV: minerals",
             ("minerals", "soil"), "cuprite", f"{_AVIRIS}; crop by L. Zhuang et al., TGRS 2019 (repository GPL-2.0)",
             "x1e-4", "Rcuprite50x90x188"),
    CubeSpec("muufl-sub", "extra_hsi/muufl/an_hsi_image_sub_for_demo.mat", "muufl", "CASI-1500",
             "MUUFL Gulfport campus", ("urban", "vegetation"), "muufl_gulfport", _MUUFL, "reflectance", "hsi_img_sub",
             (400.0, 1000.0), "MIT (repository)"),
    CubeSpec("muufl-class", "extra_hsi/muufl/an_hsi_img_for_class_demo.mat", "muufl", "CASI-1500",
             "MUUFL Gulfport campus", ("urban", "vegetation"), "muufl_gulfport", _MUUFL, "reflectance", "hsi_sub",
             (400.0, 1000.0), "MIT (repository)"),
    CubeSpec("muufl-target", "extra_hsi/muufl/an_hsi_img_for_tgt_det_demo.mat", "muufl", "CASI-1500",
             "MUUFL Gulfport campus: targets", ("urban", "vegetation"), "muufl_gulfport", _MUUFL, "reflectance",
             "hsi_sub", (400.0, 1000.0), "MIT (repository)"),
    CubeSpec("pavia-u", "extra_hsi/paviaU_sub/paviaU_subimg.mat", "rosis", "ROSIS-03", "Pavia University",
             ("urban", "vegetation"), "pavia", _GATOR_PAVIA, "robust", "paviaU_subimg"),
    CubeSpec("aviris-ng-yuma", "extra_hsi/aviris_ng/ang20170323t202244_rdn_7000-7010", "envi", "AVIRIS-NG",
             "Yuma AZ (10 x 10 chunk)", ("soil", "agriculture"), "yuma", "AVIRIS-NG, NASA/JPL; via isofit (Apache-2.0)",
             "radiance", licence="Apache-2.0 (repository)"),
    CubeSpec("aviris-ng-la-hills", "extra_hsi/aviris_ng/ang20160910t185702_2rdn_img", "envi", "AVIRIS-NG",
             "hills north of Los Angeles", ("vegetation", "soil"), "la_hills",
             "AVIRIS-NG, NASA/JPL; via isofit (Apache-2.0)", "radiance", licence="Apache-2.0 (repository)"),
    CubeSpec("emit", "extra_hsi/emit/emit20250324t221005_jpl_unmix_ex", "envi", "EMIT", "EMIT L2A 2025-03-24 chunk",
             ("soil", "vegetation"), "emit_2025", "EMIT, NASA/JPL; via emit-sds/SpectralUnmixing (Apache-2.0)",
             "reflectance", licence="Apache-2.0 (repository)"),
    *(CubeSpec(f"cave-{sc.removesuffix('_ms').replace('_', '-')}", f"extra_hsi/cave/{sc}", "cave", "CAVE lab camera",
               f"CAVE {sc.removesuffix('_ms').replace('_', ' ')}", ("lab",), f"cave_{sc}", _CAVE, "x1/65535")
      for sc in ("chart_and_stuffed_toy_ms", "fake_and_real_peppers_ms", "feathers_ms", "flowers_ms",
                 "real_and_fake_apples_ms", "thread_spools_ms")),
    CubeSpec("houston2018", "real_pairs/houston2018/houston_dataset.mat", "houston", "CASI-1500",
             "University of Houston campus", ("urban", "vegetation"), "houston", HOUSTON_ATTRIBUTION, "robust",
             "hyprImg", licence="research use with acknowledgement; test data only, never shipped"),
)
SPECS = {spec.key: spec for spec in CATALOGUE}


@dataclass
class BenchmarkCube:
    """A cube read from the catalogue: reflectance-like (C, H, W), band centres, FWHM and provenance."""

    cube: np.ndarray
    wavelengths: np.ndarray
    fwhm: np.ndarray | None
    provenance: dict[str, Any]


def default_data_dir() -> Path:
    """``../shared/data`` beside the repository."""
    return Path(__file__).resolve().parents[4] / "shared" / "data"


def _source_rows(data_dir: Path) -> dict[str, str]:
    """extra_hsi file (relative path) -> "repo@commit:path" from the folder's provenance.tsv."""
    p = data_dir / "extra_hsi" / "provenance.tsv"
    if not p.is_file():
        return {}
    with open(p, newline="", encoding="utf-8") as fh:
        return {r["dest"]: f"{r['repo']}@{r['commit']}:{r['path']}" for r in csv.DictReader(fh, delimiter="\t")}


def aviris_c_wavelengths(data_dir: Path) -> np.ndarray:
    """The 224 AVIRIS-C channel centres (nm) stored beside the Moffett cube."""
    d = load_mat_variables(data_dir / "extra_hsi" / "moffett" / "AVIRIS_wavelengths.mat")
    wl = np.asarray(d["AVIRIS_wavlen"], np.float64).ravel()
    return wl * 1000.0 if wl.max() < 30 else wl


def _aviris_subset(full: np.ndarray, n: int, dropped: list[int] | None) -> tuple[np.ndarray, str]:
    """Centres of an n-channel AVIRIS-C cube: the known dropped list, else channels spread evenly over 224."""
    if dropped is not None and full.size - len(dropped) == n:
        return np.delete(full, np.asarray(dropped) - 1), "AVIRIS-C grid minus the benchmark's usual dropped channels"
    idx = np.round(np.linspace(0, full.size - 1, n)).astype(int)
    return full[idx], f"AVIRIS-C grid, {n} of 224 channels spread evenly (removed channels not recorded)"


def _aviris_anchored(full: np.ndarray, cube: np.ndarray) -> np.ndarray | None:
    """0-based AVIRIS-C channels of a radiance cube's bands, anchored on its 1.38 and 1.88 um absorption minima.

    The bands are first placed evenly over the 224 channels; the darkest band near each absorption is tied to the
    channel nearest 1380 / 1880 nm, and the bands between anchors are spread evenly over the channels between them.
    None when the anchors leave fewer channels than bands in a segment (the absorption bands were removed).
    """
    n = cube.shape[0]
    med = np.median(cube.reshape(n, -1), axis=1)
    guess = full[np.round(np.linspace(0, full.size - 1, n)).astype(int)]
    bands, chans = [0], [0]
    for lo, hi, centre in ((1300.0, 1460.0, 1380.0), (1800.0, 1960.0, 1880.0)):
        win = np.nonzero((guess > lo) & (guess < hi))[0]
        if not win.size:
            return None
        bands.append(int(win[np.argmin(med[win])]))
        chans.append(int(np.argmin(np.abs(full - centre))))
    bands.append(n - 1)
    chans.append(full.size - 1)
    out = [0]
    for k in range(len(bands) - 1):
        (b0, b1), (c0, c1) = bands[k: k + 2], chans[k: k + 2]
        if b1 <= b0 or b1 - b0 > c1 - c0:
            return None
        out += np.round(np.linspace(c0, c1, b1 - b0 + 1))[1:].astype(int).tolist()
    return np.asarray(out)


def _envi_spectral(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(centres nm, FWHM or None, bbl or None) from an ENVI header: ``wavelength`` or "<nm> Nanometers" band names."""
    h = envi_header(Path(str(path) + ".hdr"))
    if "wavelength" in h:
        wl = np.asarray([float(v) for v in brace_list(h["wavelength"])])
    else:
        wl = np.asarray([float(v.split()[0]) for v in brace_list(h.get("band names", "{}"))
                         if v.lower().endswith("nanometers")])
    fw = np.asarray([float(v) for v in brace_list(h["fwhm"])]) if "fwhm" in h else None
    bbl = np.asarray([float(v) for v in brace_list(h["bbl"])]) > 0 if "bbl" in h else None
    return wl, fw, bbl


class _Raw(NamedTuple):
    """A cube as the file holds it, with what the reader knows about its bands and values."""

    cube: np.ndarray  # (C, H, W)
    wavelengths: np.ndarray
    wl_source: str  # WL_FILE | WL_APPROX
    wl_note: str
    fwhm: np.ndarray | None = None
    good: np.ndarray | None = None  # band mask known from the header or the layout
    value_note: str = ""  # what the reader already did to the values


def _read_raw(spec: CubeSpec, data_dir: Path) -> _Raw:
    """The cube of ``spec`` as stored (per layout), its band centres and what is known about them."""
    p = data_dir / spec.path
    if spec.layout == "envi":
        meta = read_meta(p, f"benchmark cube '{spec.key}'")
        cube = read_reflectance(p)
        wl, fw, bbl = _envi_spectral(p)
        if wl.size != meta.count:
            raise CsakdError(f"The ENVI header of '{p}' lists {wl.size} wavelengths for {meta.count} bands.")
        return _Raw(cube, wl, WL_FILE, "ENVI header", fw, bbl)
    if spec.layout == "cave":
        try:
            from PIL import Image
        except ImportError:
            raise CsakdError(f"Reading the CAVE PNG bands of '{spec.key}' needs Pillow: pip install pillow.") from None

        bands = []
        for i in range(1, 32):
            im = np.asarray(Image.open(p / f"{p.name}_{i:02d}.png"))
            bands.append(im[..., 0].astype(np.float32) * 257.0 if im.ndim == 3 else im.astype(np.float32))
        return _Raw(np.stack(bands), np.arange(400.0, 701.0, 10.0), WL_APPROX, "CAVE 400-700 nm, 10 nm steps")
    d = load_mat_variables(p)
    v = np.asarray(d[spec.variable], np.float32)
    if spec.layout == "samson":
        n_row, n_col = int(np.ravel(d["nRow"])[0]), int(np.ravel(d["nCol"])[0])
        cube = v.T.reshape((n_row, n_col, v.shape[0]), order="F").transpose(2, 0, 1)
        return _Raw(cube, np.linspace(401.0, 889.0, v.shape[0]), WL_APPROX, "401-889 nm (data set description)")
    if spec.layout == "moffett":
        n = int(np.sqrt(v.shape[1]))
        cube = v.T.reshape((n, n, v.shape[0])).transpose(2, 0, 1)
        ch = np.asarray(d["selected_bands"]).ravel().astype(int)
        wl = aviris_c_wavelengths(data_dir)[ch - 1]
        return _Raw(cube, wl, WL_APPROX, "AVIRIS-C grid at the channel indices stored in the file")
    if spec.layout == "houston":
        return _Raw(v.transpose(2, 0, 1), np.linspace(380.0, 1050.0, v.shape[-1]), WL_APPROX,
                    "CASI-1500 48 bands, 380-1050 nm nominal (about 14 nm apart)")
    cube = v.transpose(2, 0, 1)
    n = cube.shape[0]
    if spec.layout == "muufl":
        wl_key = next(k for k in ("wavelengths", "wavlength") if k in d)
        return _Raw(cube, np.asarray(d[wl_key], np.float64).ravel(), WL_FILE, "stored in the file")
    if spec.layout == "rosis":
        return _Raw(cube, np.linspace(430.0, 860.0, n), WL_APPROX, f"ROSIS 430-860 nm, {n} bands")
    if spec.sensor == "HYDICE":
        return _Raw(cube, hydice_urban_wavelengths(), WL_APPROX, "HYDICE Urban 162-band grid")
    full = aviris_c_wavelengths(data_dir)
    if spec.scaling == "radiance":  # ABU AVIRIS-C integer radiance: gains 1:2:4 over channels 1-110, 111-160, 161-224
        ch = _aviris_anchored(full, cube)
        if ch is not None:
            gain = np.where(ch >= 160, 4.0, np.where(ch >= 110, 2.0, 1.0)).astype(np.float32)
            return _Raw(cube / gain[:, None, None], full[ch], WL_APPROX,
                        "AVIRIS-C grid anchored on the 1.38 / 1.88 um absorption minima",
                        value_note="AVIRIS-C integer radiance gains 1:2:4 (channels 1-110, 111-160, 161-224) undone; ")
        wl, note = _aviris_subset(full, n, None)
        return _Raw(cube, wl, WL_APPROX, note + "; absorption bands removed, so channels and gains beyond 1000 nm "
                    "are unknown: VNIR kept", good=wl < 1000.0)
    dropped = {"cuprite": _CUPRITE_DROPPED, "san_diego": _SANDIEGO_DROPPED}.get(spec.site)
    wl, note = _aviris_subset(full, n, dropped)
    return _Raw(cube, wl, WL_APPROX, note)


def solar_shape(wavelengths_nm: np.ndarray) -> np.ndarray:
    """Relative top-of-atmosphere solar irradiance: a 5778 K blackbody, 1 at its maximum over the given bands."""
    lam = np.asarray(wavelengths_nm, np.float64) * 1e-9
    planck = lam ** -5 / np.expm1(6.62607015e-34 * 2.99792458e8 / (lam * 1.380649e-23 * 5778.0))
    return planck / planck.max()


def _scale(cube: np.ndarray, wl: np.ndarray, rule: str) -> tuple[np.ndarray, str]:
    """Values -> reflectance-like by the entry's rule; returns the cube and a sentence saying what was done."""
    if rule == "reflectance":
        return cube, "surface reflectance as stored"
    factor = {"x1e-4": 1e-4, "x1e-3": 1e-3, "x1/65535": 1.0 / 65535.0}.get(rule)
    if factor is not None:
        return cube * np.float32(factor), f"known scale: values {rule.removeprefix('x')}"
    note = ""
    if rule == "radiance":
        cube = cube / solar_shape(wl).astype(np.float32)[:, None, None]
        note = "radiance divided by a 5778 K blackbody solar spectrum, then "
    p = float(np.nanpercentile(cube, 99.5))
    if not np.isfinite(p) or p <= 0:
        raise CsakdError("A benchmark cube has no positive values: it cannot be normalised.")
    return (cube * np.float32(REFERENCE_P995 / p),
            f"{note}robust scale: x {REFERENCE_P995 / p:.4g} so the 99.5th percentile is {REFERENCE_P995}")


def _good_bands(cube: np.ndarray, wl: np.ndarray, bbl: np.ndarray | None, keep_nm: tuple[float, float] | None
                ) -> np.ndarray:
    """Mask of bands kept: flagged good, inside ``keep_nm``, finite, not constant, not dark."""
    flat = cube.reshape(cube.shape[0], -1)
    good = np.isfinite(flat).all(1)
    if bbl is not None:
        good &= bbl
    if keep_nm is not None:
        good &= (wl >= keep_nm[0]) & (wl <= keep_nm[1])
    idx = np.nonzero(good)[0]
    if idx.size:
        sel = flat[idx]
        p99 = np.percentile(sel, 99, axis=1)
        keep = (sel.std(axis=1) > 0) & (p99 > DARK_BAND_FRACTION * np.percentile(sel, 99))
        good[idx[~keep]] = False
    return good


def read_benchmark_cube(key: str, data_dir: str | os.PathLike | None = None) -> BenchmarkCube:
    """The catalogue cube ``key`` (see :data:`CATALOGUE`) as reflectance-like (C, H, W) with its provenance."""
    spec = SPECS.get(key)
    if spec is None:
        raise CsakdError(f"Unknown benchmark cube '{key}': use one of {', '.join(SPECS)}.")
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if not (d / spec.path).exists():
        raise CsakdError(f"The benchmark cube '{key}' is missing ({d / spec.path}): put ../shared/data beside the "
                         "repository or pass its folder.")
    r = _read_raw(spec, d)
    raw, wl, fw = np.asarray(r.cube, np.float32), r.wavelengths, r.fwhm
    n_raw = raw.shape[0]
    good = _good_bands(raw, wl, r.good, spec.keep_nm)
    if not good.any():
        raise CsakdError(f"The benchmark cube '{key}' has no usable band.")
    cube, wl = raw[good], np.asarray(wl, np.float64)[good]
    fw = None if fw is None else np.asarray(fw, np.float64)[good]
    order = np.argsort(wl, kind="stable")
    cube, wl, fw = cube[order], wl[order], None if fw is None else fw[order]
    cube, scaling = _scale(cube, wl, spec.scaling)
    scaling = r.value_note + scaling
    cube = np.clip(cube, 0.0, MAX_REFLECTANCE).astype(np.float32)
    if spec.layout == "houston":
        source = f"University of Houston / NCALM (DFC 2018), crop {HOUSTON_SOURCE}"
    elif spec.layout == "cave":
        source = f"CAVE multispectral image database, Columbia University ({spec.path}; no repository recorded)"
    else:
        source = _source_rows(d).get(spec.path.removeprefix("extra_hsi/")) or f"{spec.path} (no provenance.tsv row)"
    provenance = {"key": key, "sensor": spec.sensor, "scene": spec.scene, "land_cover": list(spec.land_cover),
                  "site": spec.site, "source": source, "attribution": spec.attribution, "licence": spec.licence,
                  "value_scaling": scaling, "wavelengths": r.wl_source, "wavelength_note": r.wl_note,
                  "fwhm": "file" if fw is not None else None, "bands_read": int(n_raw),
                  "bands_dropped": int(n_raw - good.sum()), "shape": [int(s) for s in cube.shape]}
    return BenchmarkCube(cube, wl, fw, provenance)


__all__ = ["CATALOGUE", "SPECS", "BenchmarkCube", "CubeSpec", "aviris_c_wavelengths",
           "default_data_dir", "read_benchmark_cube", "solar_shape"]

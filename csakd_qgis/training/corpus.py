"""Training corpus builder: real and synthetic reference HR-HSI scenes on ONE target band grid.

Every scene is a reference HR-HSI cube (C, H, W) of reflectance on the target band grid (default: the
218 usable EnMAP bands, :func:`band_grids.enmap_grid`) with a provenance record:

- ``provenance`` "real" (measured by an imaging spectrometer; resampled to the target grid) or
  "synthetic" (:mod:`spectral.synthetic`: real Sentinel-2 structure + real earthlib spectra + modelled water);
- ``source`` (dataset), ``attribution`` (required credit line), ``notes`` (what was done to it).

Sources (all from ``../shared/data``, see its README, plus the spyndex/earthlib package data):

- EnMAP Potsdam L2A tiles (real, 30 m): mosaicked by their pixel offsets into blocks; bad bands
  (bbl = 0) dropped; nodata (-32768) -> NaN. Already on the EnMAP grid: no spectral resampling.
- AVIRIS Jasper Ridge (real; approximate band centres, FWHM assumed 10 nm) and HYDICE Urban (real;
  approximate centres, FWHM assumed = band spacing): resampled to the target grid with Gaussian band
  responses (:func:`spectral_library.resample_spectra`); target bands in the removed water-vapour regions
  are linearly interpolated along wavelength (declared in ``notes``).
- Synthetic: :func:`synthetic.make_scene` with painted water bodies and shadows (dark spectra are rare in the
  real data but frequent in unseen scenes).

Splits (fixed here so every script and test uses the same one; never tune on TEST):

- TEST: EnMAP tiles 160_160 + 192_160 (mosaic, 32 x 64 px) and the right 30 columns of Jasper Ridge;
- VALIDATION (model selection): EnMAP 160_64 + 192_64 (mosaic, 32 x 64 px);
- TRAIN: the EnMAP 6-tile block (64 x 96 px), Jasper Ridge columns 0-69, Urban, synthetic scenes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import read_meta, read_reflectance
from csakd_qgis.raster.scene import read_mat_cube
from csakd_qgis.spectral.band_grids import enmap_grid
from csakd_qgis.spectral.library import resample_spectra
from csakd_qgis.spectral.synthetic import make_scene
from csakd_qgis.training.scenes import make_wald_scenes

ENMAP_ATTRIBUTION = "Contains modified EnMAP data (c) DLR 2022 (EnMAP-Box test data, GPL-3.0)"
JASPER_ATTRIBUTION = "AVIRIS Jasper Ridge, NASA/JPL (unmixing benchmark crop, 100 x 100 px)"
URBAN_ATTRIBUTION = "HYDICE Urban, US Army (unmixing benchmark sub-image)"
SYNTH_ATTRIBUTION = ("synthetic: Sentinel-2 structure from the spyndex sample tile, earthlib spectral library "
                     "spectra, modelled water (csakd_qgis.spectral.synthetic)")

TRAIN_BLOCK = [(64, 0), (96, 0), (128, 0), (64, 32), (96, 32), (128, 32)]
VAL_TILES = [(160, 64), (192, 64)]
TEST_TILES = [(160, 160), (192, 160)]
JASPER_TEST_COLS = 30
SPLITS = ("train", "val", "test")
PROVENANCES = ("real", "synthetic")


@dataclass
class CorpusScene:
    """A reference HR-HSI on the corpus band grid with its provenance."""

    name: str
    cube: np.ndarray  # (C, H, W) float32 reflectance, NaN = nodata
    provenance: str  # "real" | "synthetic"
    source: str
    attribution: str
    split: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise CsakdError(f"Scene '{self.name}': provenance must be one of {PROVENANCES}.")
        if self.split not in SPLITS:
            raise CsakdError(f"Scene '{self.name}': split must be one of {SPLITS}.")
        self.cube = np.asarray(self.cube, np.float32)

    def label(self) -> dict[str, Any]:
        """JSON-serialisable description (for model cards and result files)."""
        valid = np.isfinite(self.cube).all(0)
        return {"name": self.name, "provenance": self.provenance, "source": self.source,
                "attribution": self.attribution, "split": self.split, "shape": list(self.cube.shape),
                "valid_pixels": int(valid.sum()), "notes": list(self.notes)}


@dataclass
class Corpus:
    """Scenes on one band grid (``wavelengths``/``fwhm`` in nm)."""

    wavelengths: np.ndarray
    fwhm: np.ndarray
    scenes: list[CorpusScene]

    def split(self, name: str, provenance: str | None = None, sources: Sequence[str] | None = None
              ) -> list[CorpusScene]:
        """Scenes of one split, optionally only one provenance and/or some sources."""
        return [sc for sc in self.scenes if sc.split == name and (provenance is None or sc.provenance == provenance)
                and (sources is None or sc.source in sources)]

    def labels(self) -> list[dict[str, Any]]:
        """Provenance labels of all scenes."""
        return [sc.label() for sc in self.scenes]


def default_data_dir() -> Path:
    """``../shared/data`` beside the repository."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _clean(cube: np.ndarray) -> np.ndarray:
    """Reflectance sanity: non-finite stays NaN, values clipped to [0, 1] (tiny negative L2A values -> 0)."""
    cube = np.asarray(cube, np.float32).copy()
    finite = np.isfinite(cube)
    cube[finite] = np.clip(cube[finite], 0.0, 1.0)
    return cube


def enmap_block(tiles: Sequence[tuple[int, int]], data_dir: Path | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Mosaic of EnMAP tiles given as (col, row) offsets: (cube (218, H, W), wavelengths, fwhm, geo dict).

    Reflectance clipped to [0, 1] (:func:`read_enmap_tiles` returns the values as stored).
    """
    cube, wl, fw, geo = read_enmap_tiles(tiles, data_dir)
    return _clean(cube), wl, fw, geo


def read_enmap_tiles(tiles: Sequence[tuple[int, int]], data_dir: Path | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The good bands of EnMAP tiles (col, row offsets) mosaicked as stored; NaN where no tile covers."""
    from affine import Affine


    d = (data_dir or default_data_dir()) / "enmap_potsdam"
    if not d.is_dir():
        raise CsakdError(f"The EnMAP tiles folder '{d}' does not exist (../shared/data/enmap_potsdam).")
    col0, row0 = min(c for c, _ in tiles), min(r for _, r in tiles)
    ncol = max(c for c, _ in tiles) + 32 - col0
    nrow = max(r for _, r in tiles) + 32 - row0
    first = read_meta(d / f"enmap_potsdam_tile_{tiles[0][0]}_{tiles[0][1]}.tif")
    good = first.good_bands()
    cube = np.full((len(good), nrow, ncol), np.nan, np.float32)
    for c, r in tiles:
        path = d / f"enmap_potsdam_tile_{c}_{r}.tif"
        meta = read_meta(path)
        cube[:, r - row0: r - row0 + meta.height, c - col0: c - col0 + meta.width] = read_reflectance(path, bands=good)
    wl = np.array([first.wavelengths[i] for i in good], np.float64)
    fw = np.array([first.fwhm[i] for i in good], np.float64)
    geo = {"crs": first.crs, "transform": Affine(30.0, 0.0, 362175.0 + 30 * col0, 0.0, -30.0, 5809965.0 - 30 * row0)}
    return cube, wl, fw, geo


def resample_cube(cube: np.ndarray, wl_src: Sequence[float], fw_src: Sequence[float] | None,
                  wl_dst: Sequence[float], fw_dst: Sequence[float]) -> np.ndarray:
    """A (C_src, H, W) cube on the target grid with Gaussian band responses; gaps interpolated along wavelength.

    The source bands are treated as point samples of the spectrum (narrow source bands); ``fw_src`` is only
    used to decide nothing here but is kept for the record. NaN pixels stay NaN.
    """

    c, h, w = cube.shape
    flat = cube.reshape(c, -1).T
    valid = np.isfinite(flat).all(1)
    out = np.full((len(wl_dst), h * w), np.nan, np.float32)
    if valid.any():
        vals, _ = resample_spectra(wl_src, flat[valid], wl_dst, fw_dst, min_coverage=0.5, fill_gaps=True)
        out[:, valid] = vals.T
    return _clean(out.reshape(len(wl_dst), h, w))


def jasper_urban(data_dir: Path | None = None) -> dict[str, tuple[np.ndarray, list[float], str]]:
    """{"jasper": (cube, wavelengths, note), "urban": (...)} as read by cli_train.read_mat_cube."""

    d = (data_dir or default_data_dir()) / "jasper_urban"
    out = {}
    for key, fname in (("jasper", "jasperRidge2_R198.mat"), ("urban", "subimage_Urban_R162.mat")):
        p = d / fname
        if p.is_file():
            cube, wl, _, note = read_mat_cube(p)
            out[key] = (cube, wl, note)
    return out


def synthetic_scenes(wavelengths: Sequence[float], fwhm: Sequence[float], n: int, size: int = 96, seed: int = 0
                     ) -> list[CorpusScene]:
    """``n`` synthetic scenes (crops of the spyndex S2 tile; painted water and shadows on most of them)."""

    scenes = []
    for k in range(n):
        rng = np.random.default_rng(seed + 1000 + k)
        n_water = int(rng.integers(0, 3))
        shadow = float(rng.choice([0.0, 0.05, 0.12]))
        sc = make_scene(wavelengths, fwhm, size=size, seed=seed + k, n_water_bodies=n_water,
                        shadow_fraction=shadow, iters=120)
        notes = [f"{key}: {val}" for key, val in sc.provenance.items()]
        scenes.append(CorpusScene(f"synthetic_{k}", _clean(sc.hr_hsi), "synthetic", "synthetic-s2-earthlib",
                                  SYNTH_ATTRIBUTION, "train", notes))
    return scenes


def build_corpus(data_dir: Path | None = None, sources: Sequence[str] = ("enmap", "jasper", "urban", "synthetic"),
                 n_synthetic: int = 6, synthetic_size: int = 96, seed: int = 0,
                 wavelengths: Sequence[float] | None = None, fwhm: Sequence[float] | None = None) -> Corpus:
    """The corpus with the fixed TRAIN / VAL / TEST split (module docstring) on the target grid.

    Default grid: the 218 usable EnMAP bands. ``sources`` picks what goes in ("enmap" also provides the VAL and
    TEST EnMAP mosaics; "jasper" provides its TEST part too).
    """

    if wavelengths is None:
        wl, fw = enmap_grid(good_only=True)
    else:
        wl = np.asarray(wavelengths, np.float64)
        fw = np.asarray(fwhm if fwhm is not None else np.full(wl.shape, 10.0), np.float64)
    scenes: list[CorpusScene] = []
    if "enmap" in sources:
        for split, tiles, name in (("train", TRAIN_BLOCK, "enmap_train_block"), ("val", VAL_TILES, "enmap_val"),
                                   ("test", TEST_TILES, "enmap_test")):
            cube, ewl, efw, _ = enmap_block(tiles, data_dir)
            notes = [f"tiles {', '.join(f'{c}_{r}' for c, r in tiles)} mosaicked; bad bands (bbl = 0) dropped"]
            if ewl.size != wl.size or np.max(np.abs(ewl - wl)) > 0.5:
                cube = resample_cube(cube, ewl, efw, wl, fw)
                notes.append("resampled to the target grid (Gaussian band model)")
            scenes.append(CorpusScene(name, cube, "real", "enmap_potsdam", ENMAP_ATTRIBUTION, split, notes))
    mats = jasper_urban(data_dir) if ("jasper" in sources or "urban" in sources) else {}
    if "jasper" in sources and "jasper" in mats:
        cube, swl, note = mats["jasper"]
        res = resample_cube(cube, swl, None, wl, fw)
        notes = [note, "resampled to the target grid with Gaussian band responses; water-vapour gaps interpolated"]
        cut = cube.shape[-1] - JASPER_TEST_COLS
        scenes.append(CorpusScene("jasper_train", res[:, :, :cut], "real", "aviris_jasper_ridge", JASPER_ATTRIBUTION,
                                  "train", notes + [f"columns 0-{cut - 1}"]))
        scenes.append(CorpusScene("jasper_test", res[:, :, cut:], "real", "aviris_jasper_ridge", JASPER_ATTRIBUTION,
                                  "test", notes + [f"columns {cut}-{cube.shape[-1] - 1} (right {JASPER_TEST_COLS})"]))
    if "urban" in sources and "urban" in mats:
        cube, swl, note = mats["urban"]
        res = resample_cube(cube, swl, None, wl, fw)
        scenes.append(CorpusScene("urban", res, "real", "hydice_urban", URBAN_ATTRIBUTION, "train",
                                  [note, "resampled to the target grid with Gaussian band responses; "
                                         "water-vapour gaps interpolated"]))
    if "synthetic" in sources and n_synthetic > 0:
        scenes += synthetic_scenes(wl, fw, n_synthetic, synthetic_size, seed)
    return Corpus(wl, fw, scenes)


def to_scenes(scenes: Sequence[CorpusScene], wavelengths: Sequence[float], fwhm: Sequence[float], sensor: Any,
              scale: int) -> list[Any]:
    """Wald training/evaluation pairs (training.scenes.Scene) of corpus scenes at ``scale``."""

    return make_wald_scenes([(sc.name, sc.cube) for sc in scenes], wavelengths, fwhm, sensor, scale)


__all__ = ["Corpus", "CorpusScene", "build_corpus", "enmap_block", "resample_cube", "synthetic_scenes", "to_scenes"]

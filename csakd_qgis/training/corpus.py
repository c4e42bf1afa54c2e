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
- extra_hsi (source "extra_hsi"): the catalogue of :mod:`training.sources.benchmark_cubes` (AVIRIS-C, AVIRIS-NG, EMIT, HYDICE,
  ROSIS, CASI, SAMSON cubes, the Houston 2018 CASI cube and the CAVE lab scenes), each resampled to the target grid
  with Gaussian band responses when its span holds >= :data:`MIN_GRID_COVERAGE` of the grid's band centres
  (:func:`grid_coverage`; the few end bands beyond it are held constant), else skipped with the reason in
  ``Corpus.skipped``.

Splits (fixed here so every script and test uses the same one; never tune on TEST):

- TEST: EnMAP tiles 160_160 + 192_160 (mosaic, 32 x 64 px) and the right 30 columns of Jasper Ridge;
- VALIDATION (model selection): EnMAP 160_64 + 192_64 (mosaic, 32 x 64 px);
- TRAIN: the EnMAP 6-tile block (64 x 96 px), Jasper Ridge columns 0-69, Urban, synthetic scenes.

The extra_hsi cubes are split WHOLE, by acquisition site (:data:`EXTRA_SPLIT`; crops of one site, e.g. the three
MUUFL crops or the two San Diego crops, always share a split). TEST holds every scene the held-apart benchmark
(bench/eval_model_based.py) scores: Samson, Moffett, Cuprite, ABU beach-1, the Texas coast (ABU urban-1/2), Pavia
(Pavia University + ABU beach-4), MUUFL, Houston 2018, plus AVIRIS-NG LA hills (a third full-range sensor for
VNIR-SWIR grids). VALIDATION: San Diego (2 crops), ABU beach-3, EMIT. TRAIN: the rest (Los Angeles, Gulfport airport,
HYDICE Urban crop (same scene as Urban), AVIRIS-NG Yuma, CAVE). CAVE is TRAIN only: lab scenes, 400-700 nm,
so they enter only grids inside that range and never a score. EnMAP and Jasper keep their older split into
spatially disjoint parts of one acquisition, so earlier test numbers stay comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import read_meta, read_reflectance
from csakd_qgis.spectral.band_grids import enmap_grid
from csakd_qgis.spectral.library import resample_spectra
from csakd_qgis.spectral.synthetic import make_scene
from csakd_qgis.training.scenes import make_wald_scenes
from csakd_qgis.training.sources.benchmark_cubes import (
    CATALOGUE,
    WL_APPROX,
    WL_FILE,
    default_data_dir,
    read_benchmark_cube,
)
from csakd_qgis.training.sources.mat_cubes import read_mat_cube

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
# extra_hsi acquisition site -> split (every catalogue site is listed; see the module docstring)
EXTRA_SPLIT = {
    "samson": "test", "moffett": "test", "cuprite": "test", "cat_island": "test", "texas_coast": "test",
    "pavia": "test", "muufl_gulfport": "test", "houston": "test", "la_hills": "test",
    "san_diego": "val", "bay_champagne": "val", "emit_2025": "val",
    "los_angeles": "train", "gulfport_airport": "train", "hydice_urban": "train", "yuma": "train",
    **{spec.site: "train" for spec in CATALOGUE if spec.layout == "cave"},
}
MIN_GRID_COVERAGE = 0.9  # target band centres inside a cube's span; the rest (grid ends) are held constant
_LEGACY_META = {
    "enmap_potsdam": {"sensor": "EnMAP HSI", "scene": "Potsdam 2022-07-24", "land_cover": ["urban", "vegetation",
                      "water"], "site": "potsdam", "licence": "GPL-3.0 (EnMAP-Box test data)",
                      "origin": "EnMAP-Box test data, enmap_potsdam/ tiles",
                      "value_scaling": "known scale: file metadata (x 1e-4)", "wavelengths": WL_FILE},
    "aviris_jasper_ridge": {"sensor": "AVIRIS-C", "scene": "Jasper Ridge", "land_cover": ["vegetation", "soil",
                            "water"], "site": "jasper_ridge", "licence": "research use with attribution",
                            "origin": "jasper_urban/jasperRidge2_R198.mat (unmixing benchmark)",
                            "value_scaling": "known scale: values 1e-4", "wavelengths": WL_APPROX},
    "hydice_urban": {"sensor": "HYDICE", "scene": "Urban, Copperas Cove", "land_cover": ["urban", "vegetation",
                     "soil"], "site": "hydice_urban", "licence": "research use with attribution",
                     "origin": "jasper_urban/subimage_Urban_R162.mat (unmixing benchmark)",
                     "value_scaling": "reflectance as stored", "wavelengths": WL_APPROX},
    "synthetic-s2-earthlib": {"sensor": "synthetic", "scene": "Sentinel-2 structure + earthlib spectra",
                              "land_cover": ["urban", "vegetation", "water", "soil"], "site": "synthetic", "origin": "generated",
                              "licence": "generated", "value_scaling": "reflectance (simulated)",
                              "wavelengths": WL_FILE},
}


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
    meta: dict[str, Any] = field(default_factory=dict)  # sensor, scene, land_cover, licence, value_scaling, ...

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise CsakdError(f"Scene '{self.name}': provenance must be one of {PROVENANCES}.")
        if self.split not in SPLITS:
            raise CsakdError(f"Scene '{self.name}': split must be one of {SPLITS}.")
        self.cube = np.asarray(self.cube, np.float32)
        self.meta = {**_LEGACY_META.get(self.source, {}), **self.meta}

    def label(self) -> dict[str, Any]:
        """JSON-serialisable description (for model cards and result files)."""
        valid = np.isfinite(self.cube).all(0)
        return {"name": self.name, "provenance": self.provenance, "source": self.source,
                "attribution": self.attribution, "split": self.split, "shape": list(self.cube.shape),
                "valid_pixels": int(valid.sum()), "notes": list(self.notes), **self.meta}


@dataclass
class Corpus:
    """Scenes on one band grid (``wavelengths``/``fwhm`` in nm)."""

    wavelengths: np.ndarray
    fwhm: np.ndarray
    scenes: list[CorpusScene]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # extra_hsi cubes left out, with the reason

    def split(self, name: str, provenance: str | None = None, sources: Sequence[str] | None = None
              ) -> list[CorpusScene]:
        """Scenes of one split, optionally only one provenance and/or some sources."""
        return [sc for sc in self.scenes if sc.split == name and (provenance is None or sc.provenance == provenance)
                and (sources is None or sc.source in sources)]

    def labels(self) -> list[dict[str, Any]]:
        """Provenance labels of all scenes."""
        return [sc.label() for sc in self.scenes]

    def provenance(self, splits: Sequence[str] = ("train", "val")) -> list[dict[str, Any]]:
        """Scenes and sources used by ``splits`` with their credit lines: the ``training.provenance`` of a model card."""
        return scene_provenance([sc for sc in self.scenes if sc.split in splits])

    def pixel_counts(self) -> dict[str, int]:
        """Valid reference pixels per split."""
        return {name: int(sum(np.isfinite(sc.cube).all(0).sum() for sc in self.split(name))) for name in SPLITS}


def _clean(cube: np.ndarray) -> np.ndarray:
    """Reflectance sanity: non-finite stays NaN, values clipped to [0, 1] (tiny negative L2A values -> 0)."""
    cube = np.asarray(cube, np.float32).copy()
    finite = np.isfinite(cube)
    cube[finite] = np.clip(cube[finite], 0.0, 1.0)
    return cube


def scene_provenance(scenes: Sequence[CorpusScene]) -> list[dict[str, Any]]:
    """One {"name", "split", "source", "attribution", sensor, scene, origin, land cover, licence, ...} per scene."""
    keys = ("sensor", "scene", "origin", "land_cover", "licence", "value_scaling", "wavelengths")
    return [{"name": sc.name, "split": sc.split, "source": sc.source, "attribution": sc.attribution,
             **{k: sc.meta.get(k) for k in keys}, "pixels": int(np.isfinite(sc.cube).all(0).sum())} for sc in scenes]


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
    used to decide nothing here but is kept for the record. NaN pixels stay NaN. Resampling is linear and the
    same for every fully valid pixel, so it is computed once on the unit spectra and applied as one matrix.
    """

    c, h, w = cube.shape
    flat = cube.reshape(c, -1).T
    valid = np.isfinite(flat).all(1)
    out = np.full((len(wl_dst), h * w), np.nan, np.float32)
    if valid.any():
        matrix, _ = resample_spectra(wl_src, np.eye(c, dtype=np.float32), wl_dst, fw_dst, min_coverage=0.5,
                                     fill_gaps=True)
        out[:, valid] = (flat[valid] @ matrix).T
    return _clean(out.reshape(len(wl_dst), h, w))


def jasper_urban(data_dir: Path | None = None) -> dict[str, tuple[np.ndarray, list[float], str]]:
    """{"jasper": (cube, wavelengths, note), "urban": (...)} as read by :func:`training.sources.mat_cubes.read_mat_cube`."""

    d = (data_dir or default_data_dir()) / "jasper_urban"
    out = {}
    for key, fname in (("jasper", "jasperRidge2_R198.mat"), ("urban", "subimage_Urban_R162.mat")):
        p = d / fname
        if p.is_file():
            cube, wl, _, note = read_mat_cube(p)
            out[key] = (cube, wl, note)
    return out


def grid_coverage(wl_src: Sequence[float], wl_dst: Sequence[float], fw_dst: Sequence[float]) -> float:
    """Fraction of target band centres inside the source's sampled span (widened by half each target FWHM).

    Interior gaps (removed water-vapour bands) do not count against it: they are interpolated, as for Jasper and
    Urban; a target band beyond the span's ends would only be extrapolated, so it counts as not covered.
    """
    src = np.asarray(wl_src, np.float64)
    c, half = np.asarray(wl_dst, np.float64), np.asarray(fw_dst, np.float64) / 2.0
    return float(np.mean((c + half >= src.min()) & (c - half <= src.max())))


def extra_hsi_scenes(wavelengths: Sequence[float], fwhm: Sequence[float], data_dir: Path | None = None,
                     min_coverage: float = MIN_GRID_COVERAGE) -> tuple[list[CorpusScene], list[dict[str, Any]]]:
    """The catalogue cubes that cover the target grid, resampled onto it and split by :data:`EXTRA_SPLIT`.

    Returns (scenes, skipped): a cube whose span holds fewer than ``min_coverage`` of the target band centres
    (:func:`grid_coverage`) is skipped rather than extrapolated, and listed with its coverage.
    """
    scenes, skipped = [], []
    for spec in CATALOGUE:
        if not ((data_dir or default_data_dir()) / spec.path).exists():
            skipped.append({"name": spec.key, "reason": "file absent"})
            continue
        bc = read_benchmark_cube(spec.key, data_dir)
        cov = grid_coverage(bc.wavelengths, wavelengths, fwhm)
        if cov < min_coverage:
            skipped.append({"name": spec.key, "reason": f"covers {cov:.0%} of the target bands "
                            f"({bc.wavelengths[0]:.0f}-{bc.wavelengths[-1]:.0f} nm), needs {min_coverage:.0%}"})
            continue
        res = resample_cube(bc.cube, bc.wavelengths, bc.fwhm, wavelengths, fwhm)
        prov = bc.provenance
        notes = [prov["value_scaling"], f"wavelengths {prov['wavelengths']}: {prov['wavelength_note']}",
                 f"{prov['bands_dropped']} of {prov['bands_read']} bands dropped (bad, dark or noisy)",
                 f"resampled to the target grid with Gaussian band responses ({cov:.0%} of the bands inside its "
                 "span; interior gaps interpolated)"]
        meta = {k: prov[k] for k in ("sensor", "scene", "land_cover", "site", "licence", "value_scaling",
                                     "wavelengths")}
        meta["origin"] = prov["source"]
        scenes.append(CorpusScene(spec.key, res, "real", spec.path.split("/")[0], prov["attribution"],
                                  EXTRA_SPLIT[spec.site], notes, meta))
    return scenes, skipped


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
    TEST EnMAP mosaics; "jasper" provides its TEST part too; "extra_hsi" adds the catalogue cubes that cover the
    grid, in all three splits).
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
    skipped: list[dict[str, Any]] = []
    if "extra_hsi" in sources:
        extra, skipped = extra_hsi_scenes(wl, fw, data_dir)
        scenes += extra
    if "synthetic" in sources and n_synthetic > 0:
        scenes += synthetic_scenes(wl, fw, n_synthetic, synthetic_size, seed)
    return Corpus(wl, fw, scenes, skipped)


def to_scenes(scenes: Sequence[CorpusScene], wavelengths: Sequence[float], fwhm: Sequence[float], sensor: Any,
              scale: int) -> list[Any]:
    """Wald training/evaluation pairs (training.scenes.Scene) of corpus scenes at ``scale``."""

    return make_wald_scenes([(sc.name, sc.cube) for sc in scenes], wavelengths, fwhm, sensor, scale)


__all__ = ["EXTRA_SPLIT", "Corpus", "CorpusScene", "build_corpus", "default_data_dir", "enmap_block", "extra_hsi_scenes",
           "grid_coverage", "resample_cube", "scene_provenance", "synthetic_scenes", "to_scenes"]

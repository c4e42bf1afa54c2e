"""Benchmark cube readers (training.sources.benchmark_cubes) and the corpus' extra_hsi source (training.corpus): values,
band centres, provenance, the split by acquisition site, resampling to the EnMAP grid and Wald pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_shared

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.band_grids import enmap_grid
from csakd_qgis.training.corpus import EXTRA_SPLIT, MIN_GRID_COVERAGE, build_corpus, grid_coverage, to_scenes
from csakd_qgis.training.sources.benchmark_cubes import (
    CATALOGUE,
    MAX_REFLECTANCE,
    REFERENCE_P995,
    SPECS,
    WL_APPROX,
    WL_FILE,
    default_data_dir,
    read_benchmark_cube,
    solar_shape,
)
from csakd_qgis.training.sources.mat_cubes import load_mat_variables
from csakd_qgis.zoo.card import check_training_provenance

LAND_COVERS = ("urban", "vegetation", "water", "soil", "minerals", "agriculture", "lab")  # catalogue vocabulary

# the extra_hsi / real_pairs scenes bench/eval_model_based.py scores as held apart: they must stay TEST
BENCH_HELD_APART = ("samson", "moffett", "cuprite", "abu-beach-1", "abu-urban-1", "pavia-u", "muufl-sub", "houston2018")
VNIR_ONLY_ABU = {"abu-beach-1", "abu-beach-3", "abu-airport-4"}  # absorption bands removed: channels unknown > 1 um
FROM_FILE = {"muufl-sub", "muufl-class", "muufl-target", "aviris-ng-yuma", "aviris-ng-la-hills", "emit"}
# (first band above, last band below) in nm for each sensor, after bad / dark / edge bands are dropped
SENSOR_SPAN = {"AVIRIS-C": (360, 2200), "AVIRIS-NG": (370, 2450), "EMIT": (375, 2450), "HYDICE": (400, 2300),
               "ROSIS-03": (425, 850), "CASI-1500": (375, 990), "SAMSON": (400, 880), "CAVE lab camera": (400, 700)}


@pytest.fixture(scope="module")
def cubes():
    return {spec.key: read_benchmark_cube(spec.key, SHARED_DATA) for spec in CATALOGUE}


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(SHARED_DATA, sources=("enmap", "jasper", "urban", "extra_hsi"), n_synthetic=0)


def test_grid_coverage_rule_counts_span_not_interior_gaps():
    wl, fw = enmap_grid()
    full = np.arange(400.0, 2501.0, 10.0)
    gappy = full[(full < 1340) | (full > 1450)]
    assert grid_coverage(full, wl, fw) == 1.0 and grid_coverage(gappy, wl, fw) == 1.0
    vnir = grid_coverage(np.arange(400.0, 1001.0, 5.0), wl, fw)
    assert 0.4 < vnir < 0.5 < MIN_GRID_COVERAGE  # the EnMAP grid has 101 of its 218 bands below 1000 nm


def test_solar_shape_peaks_in_the_visible_and_falls_into_the_swir():
    s = solar_shape(np.array([400.0, 500.0, 1000.0, 2200.0]))
    assert s[1] == 1.0 and s[0] < 1.0 and s[2] < 0.5 and s[3] < 0.1


def test_mat_v73_read_through_h5py(tmp_path):
    import h5py  # system package (python3-h5py), installed by make setup

    p = tmp_path / "cube_v73.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        f["data"] = np.arange(24, dtype=np.float32).reshape(4, 3, 2)  # MATLAB (2, 3, 4) column-major
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Dec  1 12:00:00 2026 HDF5 schema 1.00 ."
    with open(p, "r+b") as fh:
        fh.write(header.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")
    d = load_mat_variables(p)
    assert d["data"].shape == (2, 3, 4) and d["data"][1, 2, 3] == 23.0


@requires_shared
def test_every_reader_on_the_real_files(cubes):
    assert len(cubes) == 31 and set(SPECS) == set(cubes)
    for key, bc in cubes.items():
        spec = SPECS[key]
        c, wl = bc.cube, bc.wavelengths
        assert c.dtype == np.float32 and c.ndim == 3 and c.shape[0] == wl.size, key
        assert np.isfinite(c).all() and c.min() >= 0.0 and c.max() <= MAX_REFLECTANCE, key
        assert 0.2 < np.percentile(c, 99.5) < 1.0, key  # reflectance-like whatever the file stored
        assert np.all(np.diff(wl) > 0), key
        lo, hi = SENSOR_SPAN[spec.sensor]
        hi = 990 if key in VNIR_ONLY_ABU else hi
        assert lo <= wl[0] < lo + 75 and hi <= wl[-1] <= 2510, (key, wl[0], wl[-1])
        if bc.fwhm is not None:
            assert bc.fwhm.shape == wl.shape and np.all((bc.fwhm > 3) & (bc.fwhm < 15)), key
        pv = bc.provenance
        assert pv["wavelengths"] == (WL_FILE if key in FROM_FILE else WL_APPROX), key
        assert pv["shape"] == list(c.shape) and pv["bands_read"] - pv["bands_dropped"] == c.shape[0]
        assert set(pv["land_cover"]) <= set(LAND_COVERS) and pv["land_cover"], key
        for field in ("sensor", "scene", "site", "source", "attribution", "licence", "value_scaling"):
            assert isinstance(pv[field], str) and pv[field], (key, field)
        if spec.path.startswith("extra_hsi/") and spec.layout != "cave":  # CAVE: no repository in provenance.tsv
            assert "@" in pv["source"] and len(pv["source"].split("@")[1].split(":")[0]) == 40, key  # repo@commit
        if spec.scaling in ("robust", "radiance"):
            assert "robust scale" in pv["value_scaling"] and abs(np.percentile(c, 99.5) - REFERENCE_P995) < 0.01
    shapes = {k: cubes[k].cube.shape for k in ("abu-beach-1", "hydice-urban-ad", "samson", "moffett", "cuprite",
                                                "pavia-u", "aviris-ng-la-hills", "emit", "cave-feathers")}
    assert shapes == {"abu-beach-1": (57, 150, 150), "hydice-urban-ad": (162, 80, 100), "samson": (156, 95, 95),
                      "moffett": (189, 50, 50), "cuprite": (188, 50, 90), "pavia-u": (103, 50, 50),
                      "aviris-ng-la-hills": (379, 25, 30), "emit": (244, 10, 10), "cave-feathers": (31, 512, 512)}
    # known scales: Cuprite reflectance x 1e4 (file max 8153), EMIT as stored (bbl = 0 bands dropped)
    assert cubes["cuprite"].cube.max() == pytest.approx(0.8153, abs=1e-4)
    assert cubes["emit"].cube.max() == pytest.approx(0.3978, abs=1e-3) and cubes["emit"].provenance["bands_dropped"] == 41
    # AVIRIS-NG radiance: the saturated 1.38 and 1.88 um absorptions are dropped as dark bands
    for key in ("aviris-ng-yuma", "aviris-ng-la-hills"):
        wl = cubes[key].wavelengths
        assert not ((wl > 1350) & (wl < 1420)).any() and not ((wl > 1820) & (wl < 1940)).any(), key
    # ABU AVIRIS-C radiance: gains 1:2:4 undone, so the SWIR continues the NIR (2.6x too bright at 1650 nm without)
    for key in ("abu-airport-1", "abu-urban-1", "abu-urban-4"):
        bc = cubes[key]
        med = np.median(bc.cube.reshape(bc.cube.shape[0], -1), axis=1)
        at = {t: med[np.argmin(abs(bc.wavelengths - t))] for t in (1250.0, 1650.0, 2200.0)}
        assert bc.provenance["value_scaling"].startswith("AVIRIS-C integer radiance gains") and bc.wavelengths[-1] > 2400
        assert 0.8 < at[1650.0] / at[1250.0] < 1.4 and 0.2 < at[2200.0] / at[1250.0] < 1.0, key
    assert all(cubes[k].wavelengths[-1] < 1000 for k in VNIR_ONLY_ABU)
    # MUUFL keeps 400-1000 nm (noisy CASI edges dropped); its stored centres start at 367.7 nm
    assert cubes["muufl-sub"].wavelengths[0] > 400 and cubes["muufl-sub"].provenance["bands_dropped"] == 9


def read_houston_pair(data_dir=None):
    """The Houston 2018 real pair: the CASI cube (as read_benchmark_cube) and its real RGB (3, 4H, 4W) in [0, 1]."""
    hsi = read_benchmark_cube("houston2018", data_dir)
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    rgb = np.asarray(load_mat_variables(d / SPECS["houston2018"].path)["rgbImg"], np.float32)
    return hsi, (rgb / 255.0).transpose(2, 0, 1)


@requires_shared
def test_houston_pair_reader():
    hsi, rgb = read_houston_pair(SHARED_DATA)
    assert hsi.cube.shape == (48, 128, 128) and rgb.shape == (3, 512, 512)
    assert rgb.dtype == np.float32 and 0.0 <= rgb.min() and rgb.max() <= 1.0 and rgb.max() > 0.9
    assert hsi.provenance["wavelengths"] == WL_APPROX and "Houston" in hsi.provenance["attribution"]
    assert hsi.wavelengths[0] == 380.0 and hsi.wavelengths[-1] == 1050.0


def test_split_is_by_site_and_test_is_diverse():
    sites = {spec.site for spec in CATALOGUE}
    assert sites == set(EXTRA_SPLIT)  # every acquisition site has exactly one split
    for key in BENCH_HELD_APART:
        assert EXTRA_SPLIT[SPECS[key].site] == "test", key
    assert all(EXTRA_SPLIT[spec.site] == "train" for spec in CATALOGUE if spec.layout == "cave")
    test = [spec for spec in CATALOGUE if EXTRA_SPLIT[spec.site] == "test"]
    assert len({spec.sensor for spec in test}) >= 3
    assert len({c for spec in test for c in spec.land_cover}) >= 3
    by_split = {s: {spec.site for spec in CATALOGUE if EXTRA_SPLIT[spec.site] == s} for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["val"] & by_split["test"])
    assert by_split["val"] and by_split["train"]


@requires_shared
def test_corpus_on_the_enmap_grid(corpus):
    wl, fw = enmap_grid()
    names = [sc.name for sc in corpus.scenes]
    assert len(names) == len(set(names))
    extra = [sc for sc in corpus.scenes if sc.name in SPECS]
    assert len(extra) == 14
    for sc in extra:
        assert sc.cube.shape[0] == 218 and np.isfinite(sc.cube).all() and 0 <= sc.cube.min() and sc.cube.max() <= 1
        assert sc.split == EXTRA_SPLIT[SPECS[sc.name].site] and sc.meta["sensor"] == SPECS[sc.name].sensor
    # VNIR-only and lab cubes do not cover the 418-2446 nm grid: skipped, with the reason
    skipped = {s["name"]: s["reason"] for s in corpus.skipped}
    assert {"samson", "pavia-u", "muufl-sub", "houston2018", "cave-feathers", "moffett", *VNIR_ONLY_ABU} <= set(skipped)
    assert "covers 36%" in skipped["samson"] and len(skipped) == 31 - 14
    # resampling keeps the spectrum: EMIT's 10 nm-apart bands against the EnMAP bands next to them
    emit_src = read_benchmark_cube("emit", SHARED_DATA)
    emit = next(sc for sc in extra if sc.name == "emit")
    for target in (550.0, 860.0, 1650.0, 2200.0):
        k, j = int(np.argmin(abs(wl - target))), int(np.argmin(abs(emit_src.wavelengths - target)))
        assert emit.cube[k].mean() == pytest.approx(emit_src.cube[j].mean(), rel=0.08), target
    # the EnMAP and Jasper test parts stay test; the test split spans >= 3 sensors and land covers on this grid
    test = corpus.split("test")
    assert {"enmap_test", "jasper_test"} <= {sc.name for sc in test}
    assert {sc.meta["sensor"] for sc in test} == {"EnMAP HSI", "AVIRIS-C", "AVIRIS-NG"}
    assert {"urban", "water", "minerals", "vegetation"} <= {c for sc in test for c in sc.meta["land_cover"]}
    counts = corpus.pixel_counts()
    print("corpus pixels on the EnMAP grid:", counts)
    assert counts == {"train": 73896, "val": 22148, "test": 30298}
    assert sum(counts.values()) == sum(int(np.prod(sc.cube.shape[1:])) for sc in corpus.scenes)


@requires_shared
def test_wald_pairs_and_card_provenance(corpus):
    test = corpus.split("test")
    pairs = to_scenes(test, corpus.wavelengths, corpus.fwhm, "S2A:B2,B3,B4,B8", 4)
    for sc, pair in zip(test, pairs, strict=True):
        h, w = (sc.cube.shape[1] // 4) * 4, (sc.cube.shape[2] // 4) * 4
        assert pair.hr.shape == (218, h, w) and pair.lr.shape == (218, h // 4, w // 4)
        assert pair.msi.shape == (4, h, w) and np.isfinite(pair.msi).all()
    prov = corpus.provenance()
    assert {p["split"] for p in prov} == {"train", "val"} and not {p["name"] for p in prov} & {s.name for s in test}
    check_training_provenance(prov)
    assert any("EnMAP" in p["attribution"] for p in prov) and any("Kang" in p["attribution"] for p in prov)
    assert all(p["pixels"] > 0 and p["sensor"] and p["land_cover"] and p["origin"] for p in prov)
    extra = [p for p in prov if p["source"] == "extra_hsi"]
    assert len(extra) == 10 and all("@" in p["origin"] for p in extra)
    assert {sc.name for sc in corpus.split("train", sources=["extra_hsi"])} == {
        "abu-airport-1", "abu-airport-2", "abu-airport-3", "abu-urban-4", "abu-urban-5", "hydice-urban-ad",
        "aviris-ng-yuma"}
    with pytest.raises(CsakdError, match="attribution"):
        check_training_provenance([{**prov[0], "attribution": ""}])


@requires_shared
def test_vnir_grid_takes_the_vnir_cubes(cubes):
    wl, fw = enmap_grid()
    vnir = wl < 1000.0
    used = {k for k, bc in cubes.items() if grid_coverage(bc.wavelengths, wl[vnir], fw[vnir]) >= MIN_GRID_COVERAGE}
    assert {"muufl-sub", "houston2018", "moffett", *VNIR_ONLY_ABU} <= used
    assert not {"samson", "pavia-u", "abu-beach-4"} & used and not any(k.startswith("cave-") for k in used)

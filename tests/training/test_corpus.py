"""Training corpus (training.corpus): band grid, reflectance ranges, provenance labels, fixed split; and the
classical-residual ("base") training option starting exactly at the classical estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.band_grids import enmap_grid
from csakd_qgis.training.corpus import (
    JASPER_TEST_COLS,
    PROVENANCES,
    SPLITS,
    CorpusScene,
    build_corpus,
    resample_cube,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs {SHARED} (real EnMAP / AVIRIS / HYDICE "
                                  "data; absent in a user's clone)")


def test_resample_cube_gaussian_band_model_and_gaps():
    wl_src = np.arange(400.0, 2500.0, 10.0)
    keep = (wl_src < 1340) | (wl_src > 1450)  # a removed water-vapour gap
    spectrum = 0.1 + 0.2 * (wl_src - 400) / 2100  # linear: any normalised band model reproduces it
    cube = np.repeat(spectrum[keep, None, None], 6, axis=1).repeat(5, axis=2).astype(np.float32)
    cube[:, 0, 0] = np.nan
    wl, fw = enmap_grid()
    out = resample_cube(cube, wl_src[keep], None, wl, fw)
    assert out.shape == (218, 6, 5) and np.isnan(out[:, 0, 0]).all()
    expect = 0.1 + 0.2 * (wl - 400) / 2100
    assert np.allclose(out[:, 3, 3], expect, atol=2e-3)  # incl. the 1.4 um bands filled across the gap


def test_scene_labels_are_checked():
    with pytest.raises(CsakdError, match="provenance"):
        CorpusScene("x", np.zeros((3, 2, 2)), "invented", "s", "a", "train")
    with pytest.raises(CsakdError, match="split"):
        CorpusScene("x", np.zeros((3, 2, 2)), "real", "s", "a", "holdout")


@pytest.mark.shared_data
@needs_shared
def test_corpus_grid_ranges_provenance_and_split():
    corpus = build_corpus(n_synthetic=1, synthetic_size=48)
    wl, fw = enmap_grid()
    assert np.allclose(corpus.wavelengths, wl) and np.allclose(corpus.fwhm, fw) and wl.size == 218
    names = {sc.name: sc for sc in corpus.scenes}
    assert {"enmap_train_block", "enmap_val", "enmap_test", "jasper_train", "jasper_test", "urban",
            "synthetic_0"} <= set(names)
    for sc in corpus.scenes:
        assert sc.cube.shape[0] == 218, sc.name
        v = sc.cube[np.isfinite(sc.cube)]
        assert v.size > 0 and v.min() >= 0.0 and v.max() <= 1.0, sc.name
        assert sc.provenance in PROVENANCES and sc.split in SPLITS and sc.attribution and sc.source
        lab = sc.label()
        assert lab["provenance"] == sc.provenance and lab["valid_pixels"] > 0
    assert names["synthetic_0"].provenance == "synthetic"
    assert all(names[n].provenance == "real" for n in ("enmap_train_block", "jasper_train", "urban"))
    assert "EnMAP" in names["enmap_test"].attribution and "DLR" in names["enmap_test"].attribution
    # the fixed split: test/val never in train, Jasper split by columns
    assert [s.name for s in corpus.split("test")] == ["enmap_test", "jasper_test"]
    assert [s.name for s in corpus.split("val")] == ["enmap_val"]
    assert names["enmap_test"].cube.shape[1:] == (32, 64) and names["enmap_train_block"].cube.shape[1:] == (64, 96)
    assert names["jasper_test"].cube.shape[-1] == JASPER_TEST_COLS
    assert names["jasper_train"].cube.shape[-1] + JASPER_TEST_COLS == 100
    # EnMAP mosaic values are the file's reflectance (no resampling on its own grid)
    from csakd_qgis.raster.io import read_meta, read_reflectance

    tile = SHARED / "enmap_potsdam" / "enmap_potsdam_tile_160_160.tif"
    ref = read_reflectance(tile, bands=read_meta(tile).good_bands())
    assert np.allclose(names["enmap_test"].cube[:, :, :32], np.clip(ref, 0, 1), equal_nan=True)


def test_base_residual_training_starts_exactly_at_the_classical_estimate(tmp_path):
    """residual="base" + zero head: the untrained net IS the classical (GLP) fusion fitted on the whole scene,
    and the step-0 validation (val_at_start) equals the GLP baseline metrics."""
    import torch

    from csakd_qgis.fusion.classical import fuse_classical
    from csakd_qgis.training.config import TrainConfig
    from csakd_qgis.training.cotrain import train
    from csakd_qgis.training.scenes import make_wald_scenes
    from csakd_qgis.training.validation import baseline_metrics

    rng = np.random.default_rng(0)
    wl = np.linspace(420.0, 1000.0, 24)
    from scipy.ndimage import gaussian_filter

    def cube(seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        ab = np.stack([gaussian_filter(r.random((32, 32)), 2) for _ in range(3)])
        spectra = r.uniform(0.05, 0.5, (24, 3))
        return np.einsum("bk,khw->bhw", spectra, ab / ab.sum(0)).astype(np.float32)

    del rng
    scenes = make_wald_scenes([("a", cube(1)), ("b", cube(2))], wl, [10.0] * 24, "S2A:B2,B3,B4,B8", 4)
    val = make_wald_scenes([("v", cube(3))], wl, [10.0] * 24, "S2A:B2,B3,B4,B8", 4)
    cfg = TrainConfig(preset="lite", mode="student", steps=1, batch_size=2, patch=8, lr=1e-3, residual="base",
                      base_method="glp", val_at_start=True, val_every=1, threads=2, out=str(tmp_path / "m"),
                      progress_bar=False, seed=0)
    res = train(scenes, val, cfg, wl)
    h0 = res.history[0]
    assert h0["step"] == 0
    glp = baseline_metrics(val, "glp")
    assert h0["student"]["psnr"] == pytest.approx(glp["psnr"], abs=1e-4)
    assert h0["student"]["sam"] == pytest.approx(glp["sam"], abs=1e-4)
    # and the base is the whole-scene classical fit, exactly as at inference
    assert np.allclose(val[0].base, fuse_classical(val[0].lr, val[0].msi, 4, "glp"))
    from csakd_qgis.nets.csakd import build_model, preset_configs

    _, s_cfg = preset_configs("lite", 24, 4, 4, residual="base")
    net = build_model(s_cfg).eval()
    base = torch.from_numpy(val[0].base)[None]
    with torch.no_grad():
        y, _ = net(torch.from_numpy(val[0].lr)[None], torch.from_numpy(val[0].msi)[None], base=base)
    assert torch.equal(y, base)

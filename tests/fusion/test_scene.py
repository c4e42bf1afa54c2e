"""Per-scene learned fusion (``scene``): gate, determinism, stop, subspace, consistency, tiled == whole, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from _helpers_raster import MSI_SPEC, reference, write_pair

from csakd_qgis.fusion.consistency import residuals
from csakd_qgis.fusion.observation import estimate_observation
from csakd_qgis.fusion.scene import SceneConfig, apply_scene, fuse_scene, glp_cy, learn_scene
from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.spectral.degrade import simulate_pair

FAST = SceneConfig(steps=300)


@pytest.fixture(scope="module")
def pair():
    """A real EnMAP-derived pair (EnMAP mosaic as the reference when present) at s = 3, with its estimate."""
    ref = reference()
    cube = ref["cube"][:, :63, :96]
    lr, msi = simulate_pair(cube, ref["wavelengths"], ref["fwhm"], MSI_SPEC, 3)
    obs = estimate_observation(lr, msi, 3)
    return {"lr": lr, "msi": msi, "ref": cube[:, : msi.shape[1], : msi.shape[2]], "obs": obs, "s": 3}


def test_noise_msi_gives_alpha_zero_and_exactly_glp_cy(pair):
    """An MSI that is pure noise has nothing to teach: the gate shuts (alpha 0) and the output IS glp+cy."""
    rng = np.random.default_rng(1)
    lr, s = pair["lr"], pair["s"]
    noise = rng.random(pair["msi"].shape).astype(np.float32) * 0.3
    obs = estimate_observation(lr, noise, s, psf="wald")
    out, model = fuse_scene(lr, noise, s, obs, FAST)
    assert model.alpha == 0.0
    np.testing.assert_array_equal(out, glp_cy(lr, noise, s, obs))


def test_same_seed_same_output_and_stop_gives_glp_cy(pair):
    lr, msi, s, obs = pair["lr"], pair["msi"], pair["s"], pair["obs"]
    a, ma = fuse_scene(lr, msi, s, obs, FAST)
    b, mb = fuse_scene(lr, msi, s, obs, FAST)
    assert ma.alpha == mb.alpha
    np.testing.assert_array_equal(a, b)
    calls = []
    stopped = learn_scene(lr, msi, s, obs, FAST, stop=lambda: calls.append(1) or len(calls) > 5)
    assert stopped.alpha == 0.0 and "stopped" in stopped.info["reason"]
    base = glp_cy(lr, msi, s, obs)
    np.testing.assert_array_equal(apply_scene(stopped, base, lr, msi, obs), base)


def test_learns_gain_stays_in_subspace_and_consistent(pair):
    """On the real pair the learner improves on glp+cy against the reference; the correction lies in the
    HSI's subspace; the output blurred + decimated gives back the LR-HSI (consistency projection)."""
    lr, msi, s, obs, ref = pair["lr"], pair["msi"], pair["s"], pair["obs"], pair["ref"]
    model = learn_scene(lr, msi, s, obs)
    base = glp_cy(lr, msi, s, obs)
    out = apply_scene(model, base, lr, msi, obs)
    assert model.alpha > 0, model.info
    corr = model.correction(base, msi)
    flat = corr.reshape(corr.shape[0], -1)
    inside = model.basis @ (model.basis.T @ flat)
    assert np.abs(flat - inside).max() <= 1e-5 * max(1.0, np.abs(flat).max())
    assert compute_metrics(ref, out, s)["psnr"] > compute_metrics(ref, base, s)["psnr"]
    r_out, r_pre = residuals(out, lr, msi, obs), residuals(base + corr, lr, msi, obs)
    assert r_out["lr_hsi"] < 1e-3 and r_out["lr_hsi"] * 10 < r_pre["lr_hsi"]


def test_fuse_scene_tiled_equals_whole_and_tags(tmp_path):
    """Through fuse(): small tiles give the one-tile result; the tags and result carry alpha and the gain."""
    from csakd_qgis.fusion.fuse import fuse
    from csakd_qgis.fusion.predictors import ScenePredictor

    p = write_pair(tmp_path, scale=3)
    res = {}
    for name, tile in (("whole", 600), ("tiled", 24)):
        pred = ScenePredictor(3, len(p["wavelengths"]), 4, config=FAST, wavelengths=p["wavelengths"])
        pred.min_tile = 0  # small tiles on purpose: each with the two projections' halo
        res[name] = fuse(p["hsi"], p["msi"], tmp_path / f"{name}.tif", pred, tile=tile, overlap=6)
    whole, tiled = res["whole"], res["tiled"]
    assert whole.n_tiles == 1 and tiled.n_tiles > 1
    with rasterio.open(whole.out_path) as a, rasterio.open(tiled.out_path) as b:
        x, y = a.read(masked=False), b.read(masked=False)
        tags = json.loads(a.tags()["CSAKD_FUSION"])
    assert np.abs(x - y).max() <= 1e-4
    scene = tags["observation"]["scene"]
    assert tags["model"] == "scene" and scene["alpha"] == whole.observation["scene"]["alpha"]
    assert "scene: alpha" in whole.summary()


def test_cli_fuse_scene_end_to_end(tmp_path):
    """``csakd fuse --model scene`` on a real EnMAP-derived pair: exit 0, alpha in the summary, valid output."""
    from _helpers_cli import run_cli

    p = write_pair(tmp_path, scale=3)
    out = tmp_path / "scene.tif"
    assert run_cli(["fuse", "--hsi", str(p["hsi"]), "--msi", str(p["msi"]), "--model", "scene",
                    "--out", str(out)]) == 0
    with rasterio.open(out) as ds:
        tags = json.loads(ds.tags()["CSAKD_FUSION"])
        assert ds.count == len(p["wavelengths"])
    assert 0.0 <= tags["observation"]["scene"]["alpha"] <= 1.0

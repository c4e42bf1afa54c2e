"""Model zoo / scene-adaptive training (training.adapt, ``csakd train --adapt``, ``csakd models``, csakd:train).

- unit: the reduced-scale (Wald) pair and the held-out strip keep the s x s grid; the zoo model chosen for an
  EnMAP band grid + Sentinel-2 4 bands at scale 4 is enmap_s2-4band_x4, and none fits another band grid;
- acceptance on a small REAL pair (EnMAP mosaic of ../shared/data, Wald-simulated LR-HSI + S2 MSI, scale 2):
  a short adaptation never scores below its starting point on the held-out strip and its full-resolution
  fusion is not worse than the classical GLP fusion of the same pair (numbers printed); the card records the
  provenance; a cancel writes nothing;
- the CLI (``csakd train --adapt``, ``csakd models``) and the Processing algorithm (processing.run in both
  modes, one qgis_process run, bad inputs leave no file).

Everything trains for a handful of steps on tiny rasters (seconds on 2 CPU cores), except the real-pair
acceptance run (300 steps, ~20 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _helpers_raster import ENMAP_DIR, HAVE_SHARED, MSI_SPEC, enmap_reference, write_pair
from conftest import ROOT
from qgis_helpers import leftovers, run_json, unwritable_folder

# validation strips narrower than the 11 px SSIM window give SSIM = NaN (recorded as null): expected here
pytestmark = pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")

ZOO_X4 = ROOT / "models" / "enmap_s2-4band_x4.json"
FAST = {"budget_min": 0.0, "steps": 4, "val_every": 2, "device": "cpu", "warmup_steps": 2}  # FitConfig kwargs


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory) -> dict:
    """A 40-band LR-HSI (16 x 16 px, 40 m) + S2 4-band HR-MSI (64 x 64 px, 10 m) GeoTIFF pair, scale 4.

    conftest's synthetic_pair has 40 bands 50 nm apart over 420-2400 nm, so a narrow S2 band is one HSI band
    and GLP rebuilds those bands exactly (validation PSNR = inf). Here the 40 bands span 420-1000 nm (~15 nm
    apart, several per S2 band) and every band gets its own smooth texture on top of the 3-spectra mixture.
    """
    from conftest import synthetic_reference
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from scipy.ndimage import gaussian_filter

    from csakd_qgis.raster.io import write_raster
    from csakd_qgis.raster.simulate import simulate_rasters

    d = tmp_path_factory.mktemp("tiny")
    cube, _ = synthetic_reference()
    wl = np.linspace(420.0, 1000.0, cube.shape[0])
    rng = np.random.default_rng(3)
    cube = cube + 0.02 * gaussian_filter(rng.standard_normal(cube.shape), (0, 1.5, 1.5)).astype(np.float32)
    ref = d / "reference.tif"
    write_raster(ref, np.clip(cube, 0.005, None), CRS.from_epsg(32633), from_origin(362175.0, 5809965.0, 10.0, 10.0),
                 wavelengths=list(wl), fwhm=[10.0] * len(wl))
    lr, msi = d / "lr_hsi.tif", d / "hr_msi.tif"
    simulate_rasters(str(ref), "S2A:B2,B3,B4,B8", 4, str(lr), str(msi))
    return {"dir": d, "reference": ref, "hsi": lr, "msi": msi, "scale": 4}


def score(m: dict) -> float:
    """The model-selection score of training.adapt (PSNR - SAM)."""
    return float(m["psnr"]) - float(m["sam"])


# ------------------------------------------------------------------------------------------------ unit
def test_reduced_scale_scene_is_the_pair_degraded_once_more():
    from csakd_qgis.errors import CsakdError
    from csakd_qgis.spectral.degrade import wald_degrade
    from csakd_qgis.training.scenes import reduced_scale_scene

    rng = np.random.default_rng(0)
    lr = rng.random((6, 10, 13)).astype(np.float32)  # not multiples of 4: cropped to 8 x 12
    msi = rng.random((4, 40, 52)).astype(np.float32)
    sc = reduced_scale_scene("pair", lr, msi, 4)
    assert sc.scale == 4 and sc.name == "pair"
    assert sc.hr.shape == (6, 8, 12) and sc.lr.shape == (6, 2, 3) and sc.msi.shape == (4, 8, 12)
    np.testing.assert_array_equal(sc.hr, lr[:, :8, :12])  # the target is the user's LR-HSI itself
    np.testing.assert_allclose(sc.lr, wald_degrade(lr[:, :8, :12], 4), atol=1e-6)
    np.testing.assert_allclose(sc.msi, wald_degrade(msi[:, :32, :48], 4), atol=1e-6)  # MSI on the LR grid
    with pytest.raises(CsakdError, match="does not cover"):
        reduced_scale_scene("short", lr, msi[:, :20], 4)
    with pytest.raises(CsakdError, match="smaller than the scale"):
        reduced_scale_scene("tiny", lr[:, :3, :3], msi, 4)


@pytest.mark.parametrize("shape_lr", [(5, 10), (11, 4)])
def test_split_scene_holds_out_a_strip_on_the_lr_grid(shape_lr):
    from csakd_qgis.training.scenes import Scene, split_scene

    s, (h, w) = 3, shape_lr
    rng = np.random.default_rng(1)
    hr = rng.random((5, h * s, w * s)).astype(np.float32)
    sc = Scene("x", hr, rng.random((5, h, w)), rng.random((4, h * s, w * s)), base=hr + 1)
    sc.base_method = "glp"
    tr, va = split_scene(sc, 0.2)
    axis = -1 if w >= h else -2  # along the longer side
    n = max(h, w)
    n_val = max(2, round(n * 0.2))
    assert (tr.name, va.name) == ("x:train", "x:val") and tr.scale == va.scale == s
    assert tr.lr.shape[axis] == n - n_val and va.lr.shape[axis] == n_val
    for part in (tr, va):  # every part keeps the s x s grid (HR = s x LR, MSI and base on the HR grid)
        assert part.hr.shape[-2:] == part.msi.shape[-2:] == part.base.shape[-2:]
        assert part.hr.shape[-2] == s * part.lr.shape[-2] and part.hr.shape[-1] == s * part.lr.shape[-1]
        assert part.base_method == "glp"
    for key in ("hr", "lr", "msi", "base"):  # the two parts tile the scene exactly
        np.testing.assert_array_equal(np.concatenate([getattr(tr, key), getattr(va, key)], axis=axis),
                                      getattr(sc, key))


def test_split_scene_refuses_a_scene_too_small_to_validate():
    from csakd_qgis.errors import CsakdError
    from csakd_qgis.training.scenes import Scene, split_scene

    sc = Scene("small", np.zeros((3, 12, 12)), np.zeros((3, 3, 3)), np.zeros((4, 12, 12)))
    with pytest.raises(CsakdError, match="too small to hold out a validation strip"):
        split_scene(sc, 0.2)


def _zoo_card() -> dict:
    return json.loads(ZOO_X4.read_text())


def test_closest_zoo_model_picks_the_enmap_s2_x4_student():
    from csakd_qgis.zoo.registry import closest_zoo_model

    card = _zoo_card()
    wl = [w + 1.5 for w in card["hsi"]["wavelengths"]]  # an EnMAP band grid (within the 5 nm tolerance)
    msi_wl = [490.0, 560.0, 665.0, 842.0]  # Sentinel-2 B2, B3, B4, B8 (nominal centres)
    best, lines = closest_zoo_model(wl, 4, 4, msi_wl, "Sentinel-2A")
    assert best is not None and best.name == "enmap_s2-4band_x4" and best.card["role"] == "student"
    assert best.path.name == "enmap_s2-4band_x4.json"
    assert "zoo model enmap_s2-4band_x4: chosen" in "\n".join(lines)
    assert any("enmap_s2-4band_x4_teacher: skipped: not a student" in ln for ln in lines)
    assert any("enmap_s2-4band_x3: skipped" in ln and "scale" in ln for ln in lines)
    best3, _ = closest_zoo_model(wl, 4, 3, msi_wl, "Sentinel-2A")
    assert best3 is not None and best3.name == "enmap_s2-4band_x3"


@pytest.mark.parametrize("case", ["40_bands", "shifted_centres", "8_msi_bands", "scale_5"])
def test_closest_zoo_model_is_none_for_an_incompatible_grid(case):
    from csakd_qgis.zoo.registry import closest_zoo_model

    wl = list(_zoo_card()["hsi"]["wavelengths"])
    n_m, s = 4, 4
    if case == "40_bands":
        wl = list(np.linspace(420, 2400, 40))
    elif case == "shifted_centres":
        wl = [w + 20.0 for w in wl]
    elif case == "8_msi_bands":
        n_m = 8
    else:
        s = 5
    best, lines = closest_zoo_model(wl, n_m, s)
    assert best is None
    assert lines[-1] == "no zoo model fits these data: training from scratch"
    assert not any(": chosen" in ln for ln in lines)


# -------------------------------------------------------------------------- acceptance on a real pair
REAL_SCALE = 2
REAL_CFG = {"budget_min": 0.0, "steps": 300, "init": "scratch", "patch": 16, "lr": 3e-4, "warmup_steps": 20,
            "val_every": 20, "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> dict:
    """Adapt on the Wald-simulated EnMAP pair (64 x 96 px EnMAP mosaic = HR reference, scale 2, S2 4 bands)."""
    if not HAVE_SHARED:
        pytest.skip(f"real EnMAP data {ENMAP_DIR} is absent (it sits beside the repo in CI; see "
                    "../shared/data/README.md)")
    from csakd_qgis.fusion.fuse import fuse
    from csakd_qgis.quality.metrics import compute_metrics
    from csakd_qgis.training.adapt import adapt
    from csakd_qgis.training.config import FitConfig

    d = tmp_path_factory.mktemp("real")
    pair = write_pair(d, enmap_reference(), scale=REAL_SCALE, name="enmap")
    ref = pair["hr"]

    def full_res(path: Path) -> dict:
        with rasterio.open(path) as ds:
            est = ds.read().astype(np.float32)[:, : ref.shape[1], : ref.shape[2]]
        return compute_metrics(ref, est, REAL_SCALE, mask=np.isfinite(ref).all(0))

    scores = {}
    for method in ("bicubic", "glp"):
        fuse(pair["hsi"], pair["msi"], d / f"{method}.tif", model=method, device="cpu")
        scores[method] = full_res(d / f"{method}.tif")
    res = adapt(pair["hsi"], pair["msi"], d / "adapted.safetensors", fused=d / "adapted.tif",
                cfg=FitConfig(**REAL_CFG), sensor=MSI_SPEC, hsi_sensor="EnMAP HSI L2A")
    scores["adapted"] = full_res(d / "adapted.tif")
    print(f"\nreal EnMAP pair {ref.shape} scale {REAL_SCALE}, {REAL_CFG}: {res.steps} steps, best at step "
          f"{res.best_step}, {res.timings}")
    print("validation (reduced-scale held-out strip): start PSNR {psnr:.3f} dB SAM {sam:.3f} deg".format(
        **res.start_metrics), "-> adapted PSNR {psnr:.3f} dB SAM {sam:.3f} deg".format(**res.best_metrics))
    for k, m in scores.items():
        print(f"full resolution vs HR reference: {k:8s} PSNR {m['psnr']:.3f} dB  SAM {m['sam']:.3f} deg  "
              f"ERGAS {m['ergas']:.3f}")
    return {"pair": pair, "res": res, "scores": scores, "dir": d}


@pytest.mark.shared_data
def test_adapt_on_a_real_pair_is_never_worse_than_its_start_or_glp(real_run):
    res, sc = real_run["res"], real_run["scores"]
    assert res.init == "scratch" and res.steps == REAL_CFG["steps"] and res.stopped_by == "steps"
    assert res.device_used == "cpu" and res.scale == REAL_SCALE
    # by construction: the exported weights are the best of the validation checks, step 0 included
    assert score(res.best_metrics) >= score(res.start_metrics) - 1e-9
    # from scratch the student corrects GLP with a zero head: it starts exactly at the GLP baseline
    assert res.start_metrics["psnr"] == pytest.approx(res.baseline_metrics["glp"]["psnr"], abs=1e-3)
    assert res.baseline_metrics["bicubic"]["psnr"] < res.start_metrics["psnr"] - 5
    # full resolution, against the HR reference the training never saw
    a, glp, bic = sc["adapted"], sc["glp"], sc["bicubic"]
    assert a["psnr"] >= glp["psnr"] - 0.05 and a["sam"] <= glp["sam"] + 0.02
    assert a["psnr"] > bic["psnr"] + 5 and a["sam"] < bic["sam"]


@pytest.mark.shared_data
def test_adapted_card_records_the_provenance(real_run):
    from csakd_qgis.zoo.card import load_model, validate_card

    res, pair = real_run["res"], real_run["pair"]
    model, card = load_model(res.model_path)
    assert Path(res.card_path) == Path(res.model_path).with_suffix(".json")
    assert card["name"] == "adapted" and card["role"] == "student" and card["arch"] == "csakd"
    assert card["residual"] == "base" and card["base_method"] == "glp" and card["scale"] == REAL_SCALE
    validate_card(card, pair["wavelengths"], 4, REAL_SCALE)  # it fits the pair it was adapted to
    assert card["hsi"]["sensor"] == "EnMAP HSI L2A" and card["msi"]["bands"] == 4
    ad = card["adaptation"]
    assert ad["mode"] == "adaptive" and "reduced-scale Wald" in ad["protocol"]
    assert ad["hsi"] == str(pair["hsi"]) and ad["msi"] == str(pair["msi"])
    assert ad["source_model"] is None and ad["source_sha256"] is None  # from scratch
    assert ad["steps"] == res.steps and ad["best_step"] == res.best_step and ad["max_steps"] == 300
    assert ad["device"] == "cpu" and ad["budget_min"] == 0 and ad["scale"] == REAL_SCALE
    assert ad["validation_start"]["psnr"] == pytest.approx(res.start_metrics["psnr"])
    assert ad["validation_best"]["psnr"] == pytest.approx(res.best_metrics["psnr"])
    assert ad["lr_window"][2:] == list(pair["lr"].shape[1:]) and ad["created"]
    assert card["training"]["protocol"] == ad["protocol"] and card["validation"]["best_step"] == res.best_step
    with rasterio.open(res.fused_path) as ds:
        assert json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "adapted"


@pytest.mark.shared_data
def test_auto_init_picks_the_x4_zoo_model_for_a_real_enmap_s2_pair(tmp_path):
    if not HAVE_SHARED:
        pytest.skip(f"real EnMAP data {ENMAP_DIR} is absent")
    from csakd_qgis.spectral.srf import load_srf
    from csakd_qgis.training.adapt_pairs import read_pair
    from csakd_qgis.zoo.registry import closest_zoo_model

    pair = write_pair(tmp_path, enmap_reference(), scale=4, name="enmap4")
    data = read_pair(pair["hsi"], pair["msi"])
    assert data.scale == 4 and len(data.wavelengths) == 218
    srf = load_srf(MSI_SPEC)
    best, lines = closest_zoo_model(data.wavelengths, 4, 4, list(srf.centroids()), srf.sensor)
    assert best is not None and best.name == "enmap_s2-4band_x4", lines


def test_cancel_leaves_no_model_files(tiny_pair, tmp_path, monkeypatch):
    from csakd_qgis.errors import CancelledError
    from csakd_qgis.training.adapt import adapt
    from csakd_qgis.training.config import FitConfig

    calls = {"n": 0}

    def cancel() -> bool:  # cancel during training (after a few checks)
        calls["n"] += 1
        return calls["n"] > 3

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CancelledError):
        adapt(tiny_pair["hsi"], tiny_pair["msi"], out / "m.safetensors", fused=out / "f.tif",
              cfg=FitConfig(**{**FAST, "steps": 50}), cancel=cancel)
    assert 3 < calls["n"] < 50 and leftovers(out) == []
    # a cancel right after training, before the weights are written, writes nothing either
    import csakd_qgis.training.adapt as adapt_mod

    real_fit = adapt_mod.fit_student
    state = {"trained": False}

    def fit_then_cancel(*a, **k):
        r = real_fit(*a, **k)
        state["trained"] = True
        return r

    monkeypatch.setattr(adapt_mod, "fit_student", fit_then_cancel)
    with pytest.raises(CancelledError):
        adapt(tiny_pair["hsi"], tiny_pair["msi"], out / "m.safetensors", cfg=FitConfig(**FAST),
              cancel=lambda: state["trained"])
    assert state["trained"] and leftovers(out) == []


# ------------------------------------------------------------------------------------------------- CLI
def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from csakd_qgis.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_train_adapt_end_to_end(tiny_pair, tmp_path, capsys, caplog, monkeypatch):
    import logging

    from csakd_qgis.zoo.card import read_card

    caplog.set_level(logging.INFO)

    model, fused = tmp_path / "adapted.safetensors", tmp_path / "fused.tif"
    base = ["train", "--adapt", "--hsi", str(tiny_pair["hsi"]), "--msi", str(tiny_pair["msi"]),
            "--steps", "4", "--budget-min", "0", "--device", "cpu", "--seed", "1", "--no-progress"]
    rc, out, err = _cli([*base, "--out", str(model), "--fused", str(fused), "--sensor", "S2A:B2,B3,B4,B8"], capsys)
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["model"] == str(model) and summary["card"] == str(model.with_suffix(".json"))
    assert summary["fused"] == str(fused) and summary["device"] == "cpu" and summary["steps"] == 4
    assert summary["init"] == "scratch"  # no zoo model has 40 bands: auto falls back to scratch
    assert score(summary["validation"]) >= score(summary["validation_start"]) - 1e-3
    assert summary["elapsed_s"] > 0 and 20 < summary["validation_start"]["psnr"] < 60  # a real, finite PSNR
    assert "no zoo model fits these data" in caplog.text and "Model written" in caplog.text
    card = read_card(model)
    assert card["msi"]["band_names"] == ["B2", "B3", "B4", "B8"] and card["adaptation"]["max_steps"] == 4
    with rasterio.open(fused) as ds, rasterio.open(tiny_pair["msi"]) as m:
        assert (ds.width, ds.height, ds.count) == (m.width, m.height, 40)
        assert np.isfinite(ds.read()).all()
    # fine-tune the model just written (--init PATH): the card names its source and checksum
    model2 = tmp_path / "again.safetensors"
    rc, out, err = _cli([*base, "--out", str(model2), "--init", str(model)], capsys)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["init"] == "adapted"
    ad = read_card(model2)["adaptation"]
    assert ad["source_model"] == "adapted" and ad["source_sha256"] == card["weights"]["sha256"]
    # a folder of adapted models on $CSAKD_MODEL_PATH shows up in `csakd models`, flagged as adapted
    monkeypatch.setenv("CSAKD_MODEL_PATH", str(tmp_path))
    rc, out, err = _cli(["models"], capsys)
    assert rc == 0, err
    row = next(ln for ln in out.splitlines() if ln.startswith("adapted "))
    assert "[adapted]" in row and "40 bands" in row and "B2,B3,B4,B8" in row
    rc, out, err = _cli(["models", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["adapted"]["adapted"] is True and rows["again"]["adapted"] is True
    assert rows["adapted"]["metrics_source"] == "validation" and rows["adapted"]["metrics"]["psnr"] > 20


def test_perfect_validation_stays_strict_json(synthetic_pair, tmp_path, capsys):
    """conftest's 3-spectra pair is rebuilt exactly by GLP: PSNR = inf, reported as the 100 dB cap, not Infinity."""

    def no_constants(c):
        raise AssertionError(f"non-standard JSON constant {c}")

    model = tmp_path / "perfect.safetensors"
    rc, out, err = _cli(["train", "--adapt", "--hsi", str(synthetic_pair["hsi"]), "--msi", str(synthetic_pair["msi"]),
                         "--out", str(model), "--steps", "2", "--budget-min", "0", "--device", "cpu", "--no-progress"],
                        capsys)
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1], parse_constant=no_constants)
    assert summary["validation_start"]["psnr"] == pytest.approx(100.0, abs=1e-3)
    assert summary["validation_start"]["sam"] < 1e-3
    json.loads(model.with_suffix(".json").read_text(), parse_constant=no_constants)


@pytest.mark.parametrize("case", ["missing_msi", "adapt_with_scenes", "reference_without_scenes", "bad_extension",
                                  "init_sr_model", "init_teacher", "no_budget"])
def test_cli_train_errors_are_one_clear_line(case, tiny_pair, tmp_path, capsys):
    hsi, msi = str(tiny_pair["hsi"]), str(tiny_pair["msi"])
    out = str(tmp_path / "m.safetensors")
    argv, expect = {
        "missing_msi": (["--adapt", "--hsi", hsi, "--out", out], "csakd train --adapt needs --msi"),
        "adapt_with_scenes": (["--adapt", "--hsi", hsi, "--msi", msi, "--scenes", hsi, "--out", out],
                              "--scenes belong(s) to reference training"),
        "reference_without_scenes": (["--hsi", hsi, "--msi", msi, "--out", out], "add --adapt"),
        "bad_extension": (["--adapt", "--hsi", hsi, "--msi", msi, "--out", str(tmp_path / "m.pt")],
                          "has extension '.pt'"),
        "init_sr_model": (["--adapt", "--hsi", hsi, "--msi", msi, "--out", out, "--init", "enmap_x4_sr"],
                          "'enmap_x4_sr' is a 'dodn' model"),
        "init_teacher": (["--adapt", "--hsi", hsi, "--msi", msi, "--out", out, "--init",
                          "enmap_s2-4band_x4_teacher"], "is a teacher: only students are fine-tuned"),
        "no_budget": (["--adapt", "--hsi", hsi, "--msi", msi, "--out", out, "--budget-min", "0"],
                      "Give a time budget (minutes) or a number of steps"),
    }[case]
    steps = "0" if case == "no_budget" else "2"
    rc, stdout, err = _cli(["train", *argv, "--steps", steps, "--device", "cpu", "--no-progress"], capsys)
    assert rc == 1 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("csakd: error: ") and expect in lines[0], err
    assert leftovers(tmp_path) == []


def test_cli_train_adapt_missing_msi_exit_code(tiny_pair, tmp_path):
    """The installed entry point (a real process): exit code 1 and one line on stderr, nothing written."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "csakd_qgis.cli", "train", "--adapt", "--hsi", str(tiny_pair["hsi"]),
                           "--out", str(tmp_path / "m.safetensors")], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == ("csakd: error: csakd train --adapt needs --msi: give the low-resolution "
                                   "hyperspectral image (--hsi LR.tif) and the high-resolution multispectral image "
                                   "(--msi MSI.tif) of the same place.")
    assert leftovers(tmp_path) == []


def test_cli_train_reference_mode_still_requires_scenes_and_sensor(tmp_path, capsys):
    rc, _, err = _cli(["train", "--scenes", str(tmp_path / "x.tif"), "--out", str(tmp_path / "m")], capsys)
    assert rc == 1 and "Reference training needs --sensor" in err and "csakd train --adapt" in err


def test_cli_models_lists_every_zoo_model(capsys):
    names = sorted(p.stem for p in (ROOT / "models").glob("*.json"))
    assert {"enmap_s2-4band_x3", "enmap_s2-4band_x4", "enmap_x4_sr"} <= set(names)
    rc, out, err = _cli(["models"], capsys)
    assert rc == 0, err
    table = out.splitlines()
    assert table[0].split()[:4] == ["name", "arch", "role", "scale"]
    for name in names:
        row = next((ln for ln in table if ln.split()[0] == name), None)
        assert row is not None, f"{name} missing from:\n{out}"
    x4 = next(ln for ln in table if ln.split()[0] == "enmap_s2-4band_x4")
    assert " csakd " in x4 and " student " in x4 and "218 bands" in x4 and "B2,B3,B4,B8" in x4
    rc, out, err = _cli(["models", "--json"], capsys)
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(names) <= set(rows)
    for name in names:
        card = json.loads((ROOT / "models" / f"{name}.json").read_text())
        r = rows[name]
        assert "error" not in r, r
        assert (r["arch"], r["role"], r["scale"], r["hsi_bands"], r["msi_bands"]) == (
            card["arch"], card["role"], card["scale"], card["hsi"]["bands"], card["msi"]["bands"])
        assert r["params"] > 1000 and r["metrics"]["psnr"] > 20 and r["adapted"] is False


# ------------------------------------------------------------------------------------------ Processing
@pytest.mark.qgis
def test_processing_train_offers_only_fusion_students(provider):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("csakd:train")
    options = list(alg.parameterDefinition("INIT").options())
    assert options[:2] == ["auto", "scratch"]
    assert {"enmap_s2-4band_x3", "enmap_s2-4band_x4"} <= set(options)
    assert not [o for o in options if o.endswith("_teacher") or o == "enmap_x4_sr"]


def _check_outputs(res: dict, model: Path) -> dict:
    from csakd_qgis.zoo.card import read_card

    assert res["MODEL"] == str(model) and model.is_file()
    assert res["CARD"] == str(model.with_suffix(".json")) and Path(res["CARD"]).is_file()
    assert res["DEVICE_USED"] == "cpu" and res["STEPS_DONE"] == 3 and res["ELAPSED_S"] > 0
    assert res["VAL_PSNR"] - res["VAL_SAM"] >= res["START_PSNR"] - res["START_SAM"] - 1e-6
    assert res["VAL_PSNR"] > 20 and 0 < res["VAL_SAM"] < 10
    return read_card(model)


@pytest.mark.qgis
def test_processing_train_adaptive_mode(provider, tiny_pair, tmp_path):
    import processing

    model, fused = tmp_path / "adapted.safetensors", tmp_path / "fused.tif"
    res = processing.run("csakd:train", {
        "HSI": str(tiny_pair["hsi"]), "MSI": str(tiny_pair["msi"]), "SENSOR": "S2A:B2,B3,B4,B8",
        "INIT": "auto", "STEPS": 3, "BUDGET": 0, "DEVICE": "cpu", "MODEL": str(model), "FUSED": str(fused)})
    card = _check_outputs(res, model)
    assert res["INIT_USED"] == "scratch" and res["FUSED"] == str(fused)
    assert fused.with_suffix(".qml").exists() and "csakd:train" in fused.with_suffix(".qmd").read_text()
    assert card["adaptation"]["mode"] == "adaptive" and card["adaptation"]["hsi"] == str(tiny_pair["hsi"])
    with rasterio.open(fused) as ds:
        assert ds.count == 40 and json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "adapted"


@pytest.mark.qgis
def test_processing_train_reference_mode(provider, tiny_pair, tmp_path):
    import processing

    model = tmp_path / "ref_trained.safetensors"
    res = processing.run("csakd:train", {
        "REFERENCES": [str(tiny_pair["reference"])], "SENSOR": "S2A:B2,B3,B4,B8", "SCALE": 4,
        "INIT": "scratch", "STEPS": 3, "BUDGET": 0, "DEVICE": "cpu", "MODEL": str(model)})
    card = _check_outputs(res, model)
    assert res["INIT_USED"] == "scratch" and card["scale"] == 4 and card["hsi"]["bands"] == 40
    ad = card["adaptation"]
    assert ad["mode"] == "reference" and ad["references"] == [str(tiny_pair["reference"])]
    assert card["msi"]["band_names"] == ["B2", "B3", "B4", "B8"]


@pytest.mark.qgis
def test_qgis_process_train_adaptive(tiny_pair, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    model = out / "qp_model.safetensors"
    rc, data, err = run_json("csakd:train", {
        "HSI": tiny_pair["hsi"], "MSI": tiny_pair["msi"], "INIT": "scratch", "STEPS": 3, "BUDGET": 0,
        "DEVICE": "cpu", "MODEL": model}, tmp_path / "profile")
    assert rc == 0, err
    r = data["results"]
    assert r["MODEL"] == str(model) and r["DEVICE_USED"] == "cpu" and r["STEPS_DONE"] == 3
    assert r["VAL_PSNR"] - r["VAL_SAM"] >= r["START_PSNR"] - r["START_SAM"] - 1e-6
    assert leftovers(out) == ["qp_model.json", "qp_model.safetensors"]
    assert "Device used: cpu" in json.dumps(data["log"])


@pytest.mark.qgis
@pytest.mark.parametrize("case", ["references_and_hsi", "only_hsi", "wrong_extension", "no_extension", "unwritable",
                                  "no_budget", "fused_in_reference_mode"])
def test_processing_train_bad_inputs_fail_clearly_and_leave_nothing(case, provider, tiny_pair, tmp_path):
    from qgis.core import QgsProcessingException

    import processing

    out = tmp_path / "out"
    out.mkdir()
    pair = {"HSI": str(tiny_pair["hsi"]), "MSI": str(tiny_pair["msi"])}
    refs = {"REFERENCES": [str(tiny_pair["reference"])]}
    model = str(out / "m.safetensors")
    common = {"STEPS": 2, "BUDGET": 0, "DEVICE": "cpu", "MODEL": model}
    params, expect = {
        "references_and_hsi": ({**refs, **pair, **common}, "not both"),
        "only_hsi": ({"HSI": pair["HSI"], **common}, "needs both"),
        "wrong_extension": ({**pair, **common, "MODEL": str(out / "m.pt")}, "must end in .safetensors"),
        "no_extension": ({**pair, **common, "MODEL": str(out / "m")}, "must end in .safetensors"),
        "unwritable": None,
        "no_budget": ({**pair, **common, "STEPS": 0}, "both are 0"),
        "fused_in_reference_mode": ({**refs, **common, "FUSED": str(out / "f.tif")}, "only produced in adaptive"),
    }[case] or (None, None)
    folder = out
    if case == "unwritable":
        folder = unwritable_folder(tmp_path)
        params, expect = {**pair, **common, "MODEL": str(folder / "m.safetensors")}, "not writable"
    before = leftovers(folder)
    with pytest.raises(QgsProcessingException) as exc:
        processing.run("csakd:train", params)
    msg = str(exc.value)
    assert expect in msg and "Traceback" not in msg, msg
    assert leftovers(folder) == before

"""Desktop QGIS under Xvfb: csakd:fuse through processing.runAndLoadResults is drawn in true colour at once.

Starts the real ``qgis`` application (not qgis_process) with an isolated profile and this checkout as plugin
folder, fuses a Wald pair simulated from the real EnMAP Potsdam mosaic with the default zoo model, and checks
the map canvas screenshot (saved in test-artifacts/) against the reference's true-colour quick-look; then the
output opened again in a new project must look the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers_raster import HAVE_SHARED, ROOT, write_pair

from csakd_qgis.quality.report import TRUE_COLOUR_NM, rgb_bands
from csakd_qgis.raster.io import read_meta
from csakd_qgis.zoo.registry import available_models

pytestmark = [
    pytest.mark.qgis, pytest.mark.shared_data,
    pytest.mark.skipif(not (shutil.which("xvfb-run") and shutil.which("qgis")),
                       reason="desktop QGIS under Xvfb needs the qgis and xvfb packages (make setup installs them)"),
    pytest.mark.skipif(not HAVE_SHARED, reason="needs the real EnMAP tiles in ../shared/data/enmap_potsdam"),
]
SCRIPT = Path(__file__).with_name("desktop_canvas.py")
ARTIFACTS = ROOT / "test-artifacts"


def _start_qgis(job: dict, tmp_path: Path, timeout: float = 120.0) -> dict:
    """Run desktop QGIS with desktop_canvas.py under Xvfb and return its report.json."""
    profiles = tmp_path / "profiles"
    ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\ncsakd_qgis=true\nprocessing=true\n\n[qgis]\ncheckVersion=false\n",
                   encoding="utf-8")
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH")}
    env.update(CSAKD_CANVAS_JOB=str(tmp_path / "job.json"), QGIS_PLUGINPATH=str(ROOT),
               PYTHONPATH=str(ROOT / ".venv" / "lib" / "python3.11" / "site-packages"),
               XDG_RUNTIME_DIR=str(tmp_path / "runtime"))
    (tmp_path / "runtime").mkdir(mode=0o700)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
           "--profiles-path", str(profiles), "--code", str(SCRIPT)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    report = Path(job["out_dir"]) / "report.json"
    assert report.exists(), f"QGIS exited with {proc.returncode} without a report:\n{proc.stderr[-3000:]}"
    data = json.loads(report.read_text(encoding="utf-8"))
    assert "error" not in data, data["error"]
    return data


def _quicklook_means(cube: np.ndarray, bands: list[int]) -> np.ndarray:
    """R/G/B means (0-255) of a true-colour quick-look: one 2-98 % stretch over the three bands."""
    rgb = cube[bands]
    lo, hi = np.nanquantile(rgb, [0.02, 0.98])
    return 255.0 * np.clip((rgb - lo) / (hi - lo), 0, 1).reshape(3, -1).mean(axis=1)


def _canvas_means(png: str, box: list[float]) -> np.ndarray:
    """R/G/B means (0-255) of the screenshot inside the raster's pixel box (a 2 px margin left out)."""
    from matplotlib.image import imread

    img = imread(png)[..., :3] * 255.0
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inner = img[max(0, y0) + 2: min(img.shape[0], y1) - 2, max(0, x0) + 2: min(img.shape[1], x1) - 2]
    assert inner.size, f"the raster's box {box} is outside the {img.shape[1]} x {img.shape[0]} screenshot"
    return inner.reshape(-1, 3).mean(axis=0)


def test_fused_image_is_true_colour_on_the_desktop_canvas(tmp_path):
    t0 = time.perf_counter()
    pair = write_pair(tmp_path, scale=3)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fused = out_dir / "fused_10m.tif"
    data = _start_qgis({"out_dir": str(out_dir), "params": {
        "HSI": str(pair["hsi"]), "MSI": str(pair["msi"]), "DEVICE": "cpu", "OUTPUT": str(fused)}}, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("canvas_after_fuse.png", "canvas_reopened.png", "window_after_fuse.png"):
        shutil.copy(out_dir / name, ARTIFACTS / f"desktop_{name}")

    assert data["plugin_loaded"] and data["plugin_file"] == str(ROOT / "csakd_qgis" / "__init__.py")
    loaded, reopened = data["loaded"], data["reopened"]
    meta = read_meta(fused)
    expected = [b + 1 for b in rgb_bands(meta.wavelengths, meta.count, TRUE_COLOUR_NM, meta.good_bands())]
    nearest = [int(np.argmin([abs(w - t) for w in meta.wavelengths])) + 1 for t in (640.0, 550.0, 460.0)]
    assert expected == nearest
    assert loaded["renderer"] == "multibandcolor" and loaded["bands"] == nearest, loaded
    assert all(f"({meta.wavelengths[b - 1]:.2f} nm)" in name
               for b, name in zip(nearest, loaded["band_names"], strict=True)), loaded["band_names"]
    default_model = available_models()[0]  # MODEL was not given: the first zoo model
    for text in ("csakd:fuse", f"model: {default_model}", "scale: 3", "device: cpu", "HSI shift: dx", "time: "):
        assert text in loaded["abstract"], loaded["abstract"]

    # opened again in a fresh project (the .qml / .qmd sidecars): the same style and abstract
    assert fused.with_suffix(".qml").exists() and fused.with_suffix(".qmd").exists()
    for key in ("renderer", "bands", "abstract"):
        assert reopened[key] == loaded[key], key
    np.testing.assert_allclose(reopened["limits"], loaded["limits"], rtol=1e-6)

    # the canvas is a true-colour image: its channel means differ like the reference quick-look's
    ref_means = _quicklook_means(pair["hr"], [b - 1 for b in nearest])
    shot = _canvas_means(loaded["png"], loaded["box"])
    again = _canvas_means(reopened["png"], reopened["box"])
    print(f"reference quick-look RGB means {np.round(ref_means, 1)}, canvas {np.round(shot, 1)}, reopened "
          f"{np.round(again, 1)}; {time.perf_counter() - t0:.1f} s")
    assert np.ptp(shot) > 0.5 * np.ptp(ref_means) and np.ptp(ref_means) > 5, (shot, ref_means)
    assert list(np.argsort(shot)) == list(np.argsort(ref_means)), (shot, ref_means)
    np.testing.assert_allclose(shot, ref_means, atol=12)
    np.testing.assert_allclose(again, shot, atol=1.0)

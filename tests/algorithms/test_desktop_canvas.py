"""Desktop QGIS under Xvfb: csakd:fuse through processing.runAndLoadResults is drawn in true colour at once.

Starts the real ``qgis`` application (not qgis_process) with an isolated profile and this checkout as plugin
folder, fuses a Wald pair simulated from the real EnMAP Potsdam mosaic with the default zoo model, and checks
the map canvas screenshot (saved in test-artifacts/) against the reference's true-colour quick-look; then the
output opened again in a new project must look the same.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers_desktop import start_qgis
from _helpers_raster import HAVE_SHARED, ROOT, write_pair

from csakd_qgis.quality.report import TRUE_COLOUR_NM, rgb_bands
from csakd_qgis.raster.io import read_meta
from csakd_qgis.zoo.registry import available_models

pytestmark = [
    pytest.mark.qgis, pytest.mark.shared_data,
    pytest.mark.skipif(not HAVE_SHARED, reason="needs the real EnMAP tiles in ../shared/data/enmap_potsdam"),
]
SCRIPT = Path(__file__).with_name("desktop_canvas.py")
ARTIFACTS = ROOT / "test-artifacts"


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
    data = start_qgis(SCRIPT, {"out_dir": str(out_dir), "params": {
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

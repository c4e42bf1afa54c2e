"""The evaluation report: strict JSON, the RGB band choice and a self-contained HTML page with its figures."""

from __future__ import annotations

import json
import math
import re

import numpy as np
from conftest import synthetic_reference

from csakd_qgis.quality.metrics import compute_metrics
from csakd_qgis.quality.report import build_report, json_safe, rgb_bands, write_json
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.spectral.degrade import wald_degrade


def test_json_safe_converts_numpy_and_non_finite_values():
    out = json_safe({"a": np.float32(1.5), "b": [np.inf, -np.inf, np.nan], 3: np.arange(2), "t": (1, 2)})
    assert out == {"a": 1.5, "b": ["inf", "-inf", "nan"], "3": [0, 1], "t": [1, 2]}


def test_write_json_is_strict_and_leaves_no_temporary(tmp_path):
    p = write_json(tmp_path / "m.json", {"psnr": math.inf, "sam": np.float64(2.0)})
    assert json.loads(p.read_text()) == {"psnr": "inf", "sam": 2.0}
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]


def test_rgb_bands_nearest_true_colour_or_spread_without_wavelengths():
    wl = np.linspace(400, 1000, 61)  # 10 nm steps
    assert rgb_bands(list(wl), 61) == [24, 15, 6]  # 640, 550, 460 nm (TRUE_COLOUR_NM)
    assert rgb_bands(list(wl), 61, targets=(860.0,), good=[k for k in range(61) if k != 46]) == [45]
    assert rgb_bands(None, 10) == [6, 3, 1]
    assert rgb_bands([500.0, None], 2) == [1, 0, 0]


def test_build_report_writes_one_self_contained_page_with_figures(tmp_path):
    ref, wl = synthetic_reference(n_bands=30, size=48)
    bic = upsample_bicubic(wald_degrade(ref, 4), 4)
    fused = (0.7 * ref + 0.3 * bic).astype(np.float32)
    m_f, m_b = compute_metrics(ref, fused, 4), compute_metrics(ref, bic, 4)
    out = build_report(ref, fused, tmp_path / "r.html", wavelengths=list(wl), bicubic=bic, scale=4,
                       metrics=m_f, metrics_bicubic=m_b, title="unit report", info={"model": "glp"})
    html = out.read_text(encoding="utf-8")
    assert "unit report" in html and "glp" in html
    images = re.findall(r"src=['\"]data:image/png;base64,", html)
    assert len(images) >= 4  # PSNR per band, SAM maps, RMSE maps, quick-looks (+ spectra)
    assert not re.search(r"src=['\"](?!data:)", html)  # nothing linked from outside the file
    assert f"{m_f['psnr']:.2f}" in html and f"{m_b['psnr']:.2f}" in html

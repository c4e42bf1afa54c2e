"""The zip from `make plugin` installs into a fresh QGIS profile and runs from there (no venv)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT
from qgis_helpers import assert_same_grid, run_json

pytestmark = pytest.mark.qgis


def test_zip_installs_and_runs(tmp_path, synthetic_pair):
    zpath = tmp_path / "csakd_qgis.zip"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_plugin.py"), "--out", str(zpath)], check=True)
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert "csakd_qgis/metadata.txt" in names and "csakd_qgis/LICENSE" in names
        assert "csakd_qgis/__init__.py" in names and "csakd_qgis/icon.png" in names
        assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
        assert "hasProcessingProvider=yes" in zf.read("csakd_qgis/metadata.txt").decode()
        for stem in ("enmap_s2-4band_x4", "enmap_s2-4band_x3", "enmap_x4_sr"):  # students run without torch
            assert {f"csakd_qgis/models/{stem}{ext}" for ext in (".json", ".safetensors", ".onnx", ".int8.onnx")
                    } <= set(names)
        assert not any("_teacher" in n for n in names)
        assert zpath.stat().st_size < 25_000_000  # the QGIS plugin repository's upload limit
        profile = tmp_path / "profile"
        plugins = profile / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        zf.extractall(plugins)
    empty = tmp_path / "no_plugins_here"
    empty.mkdir()
    out = tmp_path / "fused.tif"
    # No venv on PYTHONPATH and no checkout on QGIS_PLUGINPATH: only the installed copy can answer.
    env = {"CSAKD_PLUGIN_DIR": str(empty), "CSAKD_NO_VENV": "1", "PYTHONPATH": ""}
    rc, data, err = run_json("csakd:fuse_classical", {"HSI": synthetic_pair["hsi"], "MSI": synthetic_pair["msi"],
                                                       "METHOD": "glp", "OUTPUT": out}, profile, env)
    assert rc == 0, err
    assert_same_grid(out, synthetic_pair["msi"])

"""csakd:fuse with a zoo model in a QGIS whose Python has no PyTorch: ONNX Runtime runs it; with neither runtime
the algorithm stops with one line saying what to install."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers_raster import enmap_reference, read_all, write_pair
from _helpers_runtime import block_modules
from conftest import ROOT, requires_shared
from qgis_helpers import run_json

from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.runtime import onnx_path

pytestmark = [pytest.mark.qgis, pytest.mark.shared_data]
ZOO_MODEL = "enmap_s2-4band_x4"
SITE = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"


@requires_shared
def test_zoo_model_without_torch_runs_on_onnx_runtime_and_without_both_says_what_to_install(tmp_path):
    assert onnx_path(ROOT / "models" / f"{ZOO_MODEL}.json").is_file(), "the zoo ships its ONNX students"
    pair = write_pair(tmp_path, enmap_reference(), scale=4)
    fuse(pair["hsi"], pair["msi"], tmp_path / "torch.tif", model=ZOO_MODEL, device="cpu", runtime="torch")
    params = {"HSI": pair["hsi"], "MSI": pair["msi"], "MODEL": ZOO_MODEL, "OUTPUT": tmp_path / "qgis.tif"}
    no_torch = block_modules(tmp_path / "no_torch", "torch")
    env = {"CSAKD_NO_VENV": "1", "PYTHONPATH": f"{no_torch}:{SITE}"}
    rc, data, err = run_json("csakd:fuse", params, tmp_path / "profile", env)
    assert rc == 0, err
    assert "ONNX Runtime" in err and "Traceback" not in err
    diff = np.abs(read_all(tmp_path / "qgis.tif")[0] - read_all(tmp_path / "torch.tif")[0])
    assert float(diff.max()) <= 1e-4

    neither = block_modules(tmp_path / "neither", "torch", "onnxruntime")
    env = {"CSAKD_NO_VENV": "1", "PYTHONPATH": f"{neither}:{SITE}"}
    rc, data, err = run_json("csakd:fuse", {**params, "OUTPUT": tmp_path / "none.tif"}, tmp_path / "profile", env)
    assert rc == 1 and "Traceback" not in err, err
    hint = {ln.strip() for ln in err.splitlines() if "neither is installed" in ln}  # QGIS logs and reports it
    assert len(hint) == 1, err
    line = hint.pop()
    assert "/usr/bin/python3" in line and "-m pip install" in line and "onnxruntime" in line, line  # QGIS's Python
    assert not (tmp_path / "none.tif").exists()

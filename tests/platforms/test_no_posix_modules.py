"""The whole plugin loads and fuses where POSIX-only modules do not exist (as on Windows): a child process whose
sitecustomize installs a meta-path finder refusing fcntl, termios, resource, pwd and grp imports the plugin
(classFactory, the provider, every algorithm) and runs csakd:fuse_classical on a small real EnMAP-derived pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers_raster import reference, write_pair
from conftest import QGIS_PYTHON_PLUGINS, ROOT

pytestmark = pytest.mark.qgis

REFUSED = ("fcntl", "termios", "resource", "pwd", "grp")

SITECUSTOMIZE = f'''
import importlib.abc, sys
REFUSED = {REFUSED!r}
class RefusePosixOnly(importlib.abc.MetaPathFinder):
    """Windows has none of these modules: any import of them fails as it would there."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (refused: POSIX-only)", name=name)
        return None
for mod in REFUSED:
    sys.modules.pop(mod, None)
sys.meta_path.insert(0, RefusePosixOnly())
'''

SCRIPT = r"""
import json, os, sys
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback
app = QgsApplication([], False)
app.initQgis()
sys.path.append(sys.argv[3])
from processing.core.Processing import Processing
Processing.initialize()
try:
    import fcntl  # noqa: F401
    blocked = False
except ImportError:
    blocked = True
import csakd_qgis
plugin = csakd_qgis.classFactory(None)
plugin.initProcessing()
registry = QgsApplication.processingRegistry()
provider = registry.providerById("csakd")
algs = sorted(a.id() for a in provider.algorithms())
import csakd_qgis.algorithms, pkgutil, importlib
for m in pkgutil.iter_modules(csakd_qgis.algorithms.__path__):
    importlib.import_module("csakd_qgis.algorithms." + m.name)
alg = registry.createAlgorithmById("csakd:fuse_classical")
ctx, fb = QgsProcessingContext(), QgsProcessingFeedback()
params = {"HSI": sys.argv[1], "MSI": sys.argv[2], "METHOD": "glp", "OUTPUT": sys.argv[4]}
ok, msg = alg.checkParameterValues(params, ctx)
res, run_ok = alg.run(params, ctx, fb)
refused = sorted(m for m in ("fcntl", "termios", "resource", "pwd", "grp") if m in sys.modules)
print(json.dumps({"blocked": blocked, "algs": algs, "check": [ok, msg], "ok": run_ok,
                  "out": (res or {}).get("OUTPUT"), "loaded_refused": refused}))
plugin.unload()
"""


def run_without_posix(tmp_path: Path, root: Path) -> subprocess.CompletedProcess:
    """Run SCRIPT with the plugin from ``root`` and the POSIX-only modules refused."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    p = write_pair(tmp_path, reference(), scale=4, name="pair")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(site), str(root), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", SCRIPT, str(p["hsi"]), str(p["msi"]), QGIS_PYTHON_PLUGINS,
                           str(tmp_path / "fused.tif")], capture_output=True, text=True, env=env, timeout=300,
                          cwd=str(tmp_path))


def test_plugin_loads_and_fuses_without_posix_only_modules(tmp_path):
    proc = run_without_posix(tmp_path, ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["blocked"] and res["loaded_refused"] == []
    assert {"csakd:fuse", "csakd:fuse_classical", "csakd:train", "csakd:coregister", "csakd:simulate_pair",
            "csakd:evaluate", "csakd:superresolve", "csakd:fuse_batch"} <= set(res["algs"])
    assert res["check"][0], res["check"]
    assert res["ok"] and res["out"] == str(tmp_path / "fused.tif") and (tmp_path / "fused.tif").is_file()
    import rasterio

    with rasterio.open(tmp_path / "fused.tif") as ds, rasterio.open(tmp_path / "pair_msi.tif") as msi:
        assert (ds.width, ds.height) == (msi.width, msi.height) and ds.count > 4
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "no temporary is left"

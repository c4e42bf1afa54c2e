"""The Plugins > CSAKD > Check / install dependencies dialog as real Qt widgets (offscreen; pip faked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import QGIS_PYTHON_PLUGINS, ROOT

pytestmark = pytest.mark.qgis

SCRIPT = r"""
import io, json, sys, time
from qgis.core import QgsApplication
app = QgsApplication([], True)
from csakd_qgis import deps
from csakd_qgis.deps import DependencyCheck, PackageStatus
state = {"ort": False}
deps.package_status = lambda: [PackageStatus("torch", False, None, "No module named 'torch'"),
                               PackageStatus("onnxruntime", state["ort"], "1.32.0" if state["ort"] else None, "")]
class Pip:
    def __init__(self, code): self.code = code
    def __call__(self, cmd, **kw):
        self.stdout = io.StringIO("Collecting onnxruntime\n" + ("ERROR: disk full\n" if self.code else "Successfully installed\n"))
        return self
    def wait(self):
        state["ort"] = self.code == 0
        return self.code
from csakd_qgis.plugin import DependencyDialog
out = {}
for code in (1, 0):
    dlg = DependencyDialog(check=DependencyCheck(popen=Pip(code)))
    dlg.show()
    before = {r: b.isEnabled() for r, b in dlg.buttons.items()}
    dlg.start("onnx")
    t0 = time.time()
    while dlg.worker is not None and time.time() - t0 < 20:
        app.processEvents(); time.sleep(0.01)
    out[str(code)] = {"before": before, "after": {r: b.isEnabled() for r, b in dlg.buttons.items()},
                      "result": dlg.result.text(), "summary": dlg.summary.text(), "log": dlg.log.toPlainText(),
                      "status": [dlg.table.item(i, 1).text() for i in range(dlg.table.rowCount())]}
    dlg.grab().save(sys.argv[1] + f"/deps_dialog_exit{code}.png")
print(json.dumps(out))
"""


def test_dialog_shows_status_installs_and_reports_failure(tmp_path):
    art = ROOT / "test-artifacts"
    art.mkdir(exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(ROOT), QGIS_PYTHON_PLUGINS, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(art)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    failed, ok = res["1"], res["0"]
    assert failed["before"] == {"onnx": True, "torch": True}
    assert "failed (pip exit code 1): ERROR: disk full" in failed["result"] and failed["status"][1] == "missing"
    assert failed["after"]["onnx"] and "Collecting onnxruntime" in failed["log"]
    assert "can run now" in ok["result"] and ok["status"][1] == "installed 1.32.0"
    assert not ok["after"]["onnx"] and ok["after"]["torch"]  # installed: no longer offered; torch still is
    assert ok["summary"] == "Learned models run with ONNX Runtime."
    assert (art / "deps_dialog_exit1.png").stat().st_size > 1000

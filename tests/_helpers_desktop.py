"""Real desktop QGIS under Xvfb for tests: an isolated profile with this checkout as plugin folder, a script run
with ``qgis --code`` that writes report.json into the job's out_dir."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from _helpers_raster import ROOT


def start_qgis(script: Path, job: dict, tmp_path: Path, timeout: float = 120.0) -> dict:
    """Run desktop QGIS with ``script`` (job file in $CSAKD_CANVAS_JOB) under Xvfb; return its report.json."""
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
           "--profiles-path", str(profiles), "--code", str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    report = Path(job["out_dir"]) / "report.json"
    assert report.exists(), f"QGIS exited with {proc.returncode} without a report:\n{proc.stderr[-3000:]}"
    data = json.loads(report.read_text(encoding="utf-8"))
    assert "error" not in data, data["error"]
    return data

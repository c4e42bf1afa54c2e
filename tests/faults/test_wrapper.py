"""scripts/qgis_process.sh must not depend on which Python comes first on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _faults import QGIS_PROCESS, child_env


def foreign_python() -> Path | None:
    """A python3 other than the system one (pyenv, conda, ...), or None."""
    system = Path("/usr/bin/python3").resolve()
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3"), key=lambda p: "3.11" not in str(p))
    found = [str(p) for p in pyenv] + [shutil.which("python3")]
    for cand in found:
        if cand and Path(cand).resolve() != system and ".venv" not in cand:
            return Path(cand)
    return None


@pytest.mark.qgis
def test_another_python_first_on_path(tmp_path):
    py = foreign_python()
    if py is None:
        pytest.skip("no Python other than /usr/bin/python3 on this machine to put first on PATH")
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("python3", "python"):
        os.symlink(py, fake / name)
    env = child_env({"PATH": f"{fake}{os.pathsep}{os.environ.get('PATH', '')}",
                     "CSAKD_QGIS_PROFILE": str(tmp_path / "profile")})
    proc = subprocess.run([str(QGIS_PROCESS), "list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "csakd:fuse" in proc.stdout

"""Helpers for tests that drive QGIS: qgis_process subprocesses and raster checks."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import QGIS_PROCESS


def run_qgis_process(args: list[str], profile: Path, env: dict | None = None,
                     timeout: int = 600) -> subprocess.CompletedProcess:
    """Run scripts/qgis_process.sh with an isolated profile; returns the completed process."""
    full_env = dict(os.environ)
    full_env["CSAKD_QGIS_PROFILE"] = str(profile)
    full_env.update(env or {})
    return subprocess.run([str(QGIS_PROCESS), *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def run_json(alg: str, params: dict, profile: Path, env: dict | None = None) -> tuple[int, dict | None, str]:
    """`qgis_process --json run ALG -- K=V ...`: (returncode, parsed JSON or None, stderr)."""
    args = ["--json", "run", alg, "--"] + [f"{k}={v}" for k, v in params.items()]
    proc = run_qgis_process(args, profile, env)
    data = None
    if proc.returncode == 0:
        data = json.loads(proc.stdout)
    return proc.returncode, data, proc.stderr + proc.stdout


def assert_same_grid(a: str | Path, b: str | Path) -> None:
    """Assert two rasters share CRS, transform and size."""
    import rasterio

    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert da.crs == db.crs
        assert da.transform.almost_equals(db.transform)
        assert (da.width, da.height) == (db.width, db.height)


def leftovers(folder: Path) -> list[str]:
    """Files left in an output folder (temporary files included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder that refuses new files: read-only permissions, or (as root, who ignores them) /sys/fs."""
    d = tmp_path / "readonly"
    d.mkdir()
    d.chmod(0o555)
    for cand in (d, Path("/sys/fs"), Path("/proc/sys")):
        try:
            fd, probe = tempfile.mkstemp(dir=str(cand))
        except OSError:
            return cand
        os.close(fd)
        os.remove(probe)
    pytest.skip("no unwritable folder available (running as root without a read-only /sys)")

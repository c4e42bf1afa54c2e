"""The dependency check behind Plugins > CSAKD > Check / install dependencies (pip mocked at the subprocess call)."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from csakd_qgis import deps
from csakd_qgis.deps import DependencyCheck, PackageStatus


class FakePopen:
    """Stands in for subprocess.Popen: records the command, replays pip's output, exits with ``code``."""

    calls: list[list[str]] = []

    def __init__(self, lines: list[str], code: int) -> None:
        self.lines, self.code = lines, code

    def __call__(self, cmd, **kwargs):
        FakePopen.calls.append(list(cmd))
        self.stdout = io.StringIO("".join(f"{ln}\n" for ln in self.lines))
        return self

    def wait(self) -> int:
        return self.code


def _status(torch: bool, ort: bool) -> list[PackageStatus]:
    return [PackageStatus("torch", torch, "2.13.0" if torch else None, "CPU build" if torch else "missing"),
            PackageStatus("onnxruntime", ort, "1.32.0" if ort else None, "providers: CPUExecutionProvider")]


@pytest.fixture
def fake_status(monkeypatch):
    state = {"torch": False, "ort": False}
    monkeypatch.setattr(deps, "package_status", lambda: _status(state["torch"], state["ort"]))
    return state


def test_rows_summary_and_offers_follow_what_is_installed(fake_status):
    check = DependencyCheck()
    assert [r[1] for r in check.rows()] == ["missing", "missing"]
    assert "cannot run" in check.summary() and "Install ONNX Runtime" in check.summary()
    assert check.installable() == ["onnx", "torch"]
    fake_status["ort"] = True
    check.refresh()
    assert check.rows()[1][1] == "installed 1.32.0" and check.installable() == ["torch"]
    assert check.summary() == "Learned models run with ONNX Runtime."


def test_install_success_pins_numpy_and_refreshes(fake_status):
    FakePopen.calls.clear()

    class Installs(FakePopen):
        def wait(self) -> int:
            fake_status["ort"] = True  # what a real pip run changes
            return 0

    lines: list[str] = []
    res = DependencyCheck(popen=Installs(["Collecting onnxruntime", "Successfully installed onnxruntime-1.32.0"],
                                         0)).install("onnx", lines.append)
    assert res.ok and "onnxruntime installed: learned models can run now" in res.message
    assert lines[-1].startswith("Successfully installed")
    cmd = FakePopen.calls[-1]
    assert cmd[1:4] == ["-m", "pip", "install"] and "onnxruntime" in cmd
    assert f"numpy=={np.__version__}" in cmd  # numpy stays the one GDAL and QGIS were built with
    assert "torch" not in cmd


def test_install_failure_and_unstartable_pip_give_one_line(fake_status):
    res = DependencyCheck(popen=FakePopen(["ERROR: No matching distribution found for onnxruntime"], 1)).install("onnx")
    assert not res.ok and "failed (pip exit code 1)" in res.message and "No matching distribution" in res.message

    def broken(cmd, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    res = DependencyCheck(popen=broken).install("onnx")
    assert not res.ok and "could not be started" in res.message and "pip install" in res.message


def test_success_without_visible_package_asks_for_restart(fake_status):
    res = DependencyCheck(popen=FakePopen(["Successfully installed onnxruntime"], 0)).install("onnx")
    assert res.ok and "restart QGIS" in res.message


def test_python_executable_and_hint_inside_and_outside_qgis(monkeypatch):
    assert deps.python_executable().name.startswith("python")
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")  # inside QGIS sys.executable is the QGIS binary
    assert deps.python_executable().name.startswith("python")
    hint = deps.install_hint("onnx")
    assert "-m pip install" in hint and "onnxruntime" in hint and f"numpy=={np.__version__}" in hint
    err = deps.missing_runtime_error("enmap_s2-4band_x4")
    assert "\n" not in str(err) and "enmap_s2-4band_x4" in str(err) and hint in str(err)


def test_real_status_reports_both_runtimes_here():
    names = {s.name: s for s in deps.package_status()}
    assert names["torch"].present and names["onnxruntime"].present
    assert "CPUExecutionProvider" in names["onnxruntime"].detail

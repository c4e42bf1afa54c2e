"""QGIS's own Python and the pip command for it, over folders laid out like each kind of QGIS install (the values
of ``sys`` and the environment are given as they are inside QGIS on that platform)."""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import numpy as np
import pytest

from csakd_qgis import deps, python_finder
from csakd_qgis.python_finder import PythonFacts, find_qgis_python


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def _win(p: Path) -> str:
    return str(PureWindowsPath(p.as_posix()))


def _facts(platform: str, executable: Path, prefix: Path, version=(3, 12), environ=None, tmp: Path | None = None):
    return PythonFacts(str(executable), str(prefix), str(prefix), str(prefix), platform, version, environ or {},
                       flatpak_info=(tmp or prefix) / "no-flatpak-info")


def test_osgeo4w_python_in_apps_run_from_the_osgeo4w_shell(tmp_path, monkeypatch):
    root = tmp_path / "OSGeo4W"
    prefix = root / "apps" / "Python312"
    _touch(root / "OSGeo4W.bat", root / "bin" / "qgis-ltr-bin.exe", prefix / "python.exe",
           root / "etc" / "setup" / "installed.db")
    (prefix / "Lib" / "site-packages").mkdir(parents=True)
    facts = _facts("win32", root / "bin" / "qgis-ltr-bin.exe", prefix)
    qp = find_qgis_python(facts)
    assert qp.kind == "osgeo4w" and qp.executable == _win(prefix / "python.exe")
    assert not qp.user  # an OSGeo4W folder the user can write to: no --user
    hint = qp.hint(["onnxruntime", "numpy==1.26.4"])
    assert hint.startswith("in the OSGeo4W Shell") and "OSGeo4W.bat" in hint
    assert hint.endswith(f"{_win(prefix / 'python.exe')} -m pip install onnxruntime numpy==1.26.4")


def test_standalone_installer_under_program_files_quotes_and_uses_user(tmp_path, monkeypatch):
    root = tmp_path / "Program Files" / "QGIS 3.34.4"
    prefix = root / "apps" / "Python312"
    _touch(root / "OSGeo4W.bat", root / "bin" / "qgis-bin.exe", prefix / "python.exe")
    (prefix / "Lib" / "site-packages").mkdir(parents=True)
    monkeypatch.setattr(python_finder, "_writable", lambda folder: False)  # Program Files: admin only
    qp = find_qgis_python(_facts("win32", root / "bin" / "qgis-bin.exe", prefix))
    assert qp.kind == "windows-installer" and qp.user
    assert qp.pip_install(["onnxruntime"]) == [_win(prefix / "python.exe"), "-m", "pip", "install", "--user",
                                                "onnxruntime"]
    hint = qp.hint(["onnxruntime", "numpy==1.26.4"])
    assert "OSGeo4W Shell of this QGIS" in hint and "QGIS 3.34.4" in hint
    assert f'"{_win(prefix / "python.exe")}" -m pip install --user onnxruntime numpy==1.26.4' in hint


def test_macos_qgis_app_uses_the_bundles_python3_and_user_site(tmp_path):
    app = tmp_path / "Applications" / "QGIS-LTR.app"
    fw = app / "Contents" / "Frameworks" / "Python.framework" / "Versions" / "3.9"
    _touch(app / "Contents" / "MacOS" / "QGIS", app / "Contents" / "MacOS" / "bin" / "python3",
           fw / "bin" / "python3.9")
    qp = find_qgis_python(_facts("darwin", app / "Contents" / "MacOS" / "QGIS", fw, version=(3, 9)))
    assert qp.kind == "macos-app" and qp.user
    assert qp.executable == str(app / "Contents" / "MacOS" / "bin" / "python3")
    assert qp.hint(["onnxruntime"]) == f"{app}/Contents/MacOS/bin/python3 -m pip install --user onnxruntime"


def test_macos_app_with_spaces_is_quoted_for_the_shell(tmp_path):
    app = tmp_path / "Applications" / "QGIS 3.40.app"
    _touch(app / "Contents" / "MacOS" / "QGIS", app / "Contents" / "MacOS" / "bin" / "python3")
    qp = find_qgis_python(_facts("darwin", app / "Contents" / "MacOS" / "QGIS", app / "Contents" / "Frameworks"))
    assert qp.hint(["onnxruntime"]).startswith(f"'{app}/Contents/MacOS/bin/python3' -m pip")


@pytest.mark.parametrize("managed", [True, False])
def test_linux_distribution_python_with_user_and_pep668(tmp_path, managed):
    usr = tmp_path / "usr"
    _touch(usr / "bin" / "python3.11", usr / "bin" / "python3", usr / "bin" / "qgis")
    if managed:  # Debian 12 / Ubuntu 23.04+: pip refuses even --user without --break-system-packages
        _touch(usr / "lib" / "python3.11" / "EXTERNALLY-MANAGED")
    qp = find_qgis_python(_facts("linux", usr / "bin" / "qgis", usr, version=(3, 11), tmp=tmp_path))
    assert qp.kind == "linux" and qp.executable == str(usr / "bin" / "python3.11") and qp.user
    flags = ["--user", "--break-system-packages"] if managed else ["--user"]
    assert qp.pip_install(["onnxruntime"]) == [str(usr / "bin" / "python3.11"), "-m", "pip", "install", *flags,
                                               "onnxruntime"]


def test_flatpak_runs_pip_in_the_sandbox_and_hints_flatpak_run(tmp_path):
    app = tmp_path / "app"
    _touch(app / "bin" / "python3", app / "bin" / "qgis")
    qp = find_qgis_python(_facts("linux", app / "bin" / "qgis", app, environ={"FLATPAK_ID": "org.qgis.qgis"}))
    assert qp.kind == "flatpak" and qp.user
    assert qp.pip_install(["onnxruntime"])[:2] == [str(app / "bin" / "python3"), "-m"]  # inside QGIS: direct
    assert qp.hint(["onnxruntime"]) == ("flatpak run --command=python3 org.qgis.qgis -m pip install --user "
                                        "onnxruntime")


def test_virtual_environment_keeps_its_interpreter_without_user(tmp_path):
    venv = tmp_path / "venv"
    _touch(venv / "bin" / "python3.11", venv / "bin" / "python")
    facts = PythonFacts(str(venv / "bin" / "python"), str(venv), "/usr", "/usr", "linux", (3, 11), {},
                        flatpak_info=tmp_path / "none")
    qp = find_qgis_python(facts)
    assert qp.kind == "venv" and not qp.user and qp.executable == str(venv / "bin" / "python")


def test_dependency_hint_and_error_follow_the_platform(tmp_path, monkeypatch):
    root = tmp_path / "OSGeo4W"
    prefix = root / "apps" / "Python312"
    _touch(root / "OSGeo4W.bat", prefix / "python.exe", root / "etc" / "setup" / "installed.db")
    facts = _facts("win32", root / "bin" / "qgis-bin.exe", prefix)
    monkeypatch.setattr(PythonFacts, "current", classmethod(lambda cls: facts))
    assert deps.python_executable() == Path(_win(prefix / "python.exe"))
    hint = deps.install_hint("onnx")
    assert "OSGeo4W Shell" in hint and f"onnxruntime numpy=={np.__version__}" in hint
    err = str(deps.missing_runtime_error("enmap_s2-4band_x4"))
    assert "\n" not in err and hint in err
    assert deps.python_line().startswith(f"QGIS's Python: {_win(prefix / 'python.exe')} (OSGeo4W")


def test_pip_runs_without_a_console_window_on_windows_and_reads_utf8(monkeypatch):
    import io

    from csakd_qgis import oscompat
    from csakd_qgis.deps import DependencyCheck, PackageStatus

    seen = {}

    class Pip:
        def __call__(self, cmd, **kw):
            seen.update(kw, cmd=cmd)
            self.stdout = io.StringIO("Téléchargement onnxruntime\n")
            return self

        def wait(self):
            return 1

    monkeypatch.setattr(deps, "package_status", lambda: [PackageStatus("torch", False), PackageStatus(
        "onnxruntime", False)])
    monkeypatch.setattr(oscompat, "windows_semantics", lambda: True)
    res = DependencyCheck(popen=Pip()).install("onnx")
    assert seen["creationflags"] == 0x08000000 and seen["encoding"] == "utf-8"
    assert seen["env"]["PYTHONIOENCODING"] == "utf-8" and not res.ok and "Téléchargement" in res.message

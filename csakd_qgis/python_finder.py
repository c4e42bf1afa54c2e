"""Which Python is QGIS's own on each platform, and how pip must be run for it.

Inside QGIS ``sys.executable`` is the QGIS binary (or whatever ``python3`` comes first on PATH), never QGIS's
Python, so the interpreter is found from the prefix and the layout of each kind of install: OSGeo4W and the
Windows standalone installer (``<root>\\apps\\Python3xx\\python.exe``, which needs the OSGeo4W environment),
macOS QGIS.app (``QGIS*.app/Contents/MacOS/bin/python3``), Flatpak (``/app/bin/python3`` inside the sandbox) and
Linux distributions (the system ``python3``). pip gets ``--user`` where the prefix is not writable.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PureWindowsPath

FLATPAK_INFO = Path("/.flatpak-info")


@dataclass(frozen=True)
class PythonFacts:
    """The values of ``sys`` and the environment that decide where the interpreter is (patched in tests)."""

    executable: str
    prefix: str
    base_prefix: str
    base_exec_prefix: str
    platform: str
    version: tuple[int, int]
    environ: Mapping[str, str] = field(default_factory=dict)
    flatpak_info: Path = FLATPAK_INFO

    @classmethod
    def current(cls) -> PythonFacts:
        """The facts of this process."""
        return cls(sys.executable or "", sys.prefix, sys.base_prefix, sys.base_exec_prefix, sys.platform,
                   (sys.version_info.major, sys.version_info.minor), dict(os.environ))

    @property
    def windows(self) -> bool:
        """Whether the paths are Windows paths."""
        return self.platform == "win32"

    def path(self, text: str) -> PurePath:
        """``text`` as a path of this platform (Windows paths stay Windows paths in tests on Linux)."""
        return PureWindowsPath(text) if self.windows else Path(text)


@dataclass(frozen=True)
class QgisPython:
    """QGIS's Python: the interpreter, the kind of install, and how pip must be run for it."""

    executable: str
    kind: str  # venv, osgeo4w, windows-installer, macos-app, flatpak, linux, python
    user: bool  # pip --user: the prefix is not writable (or is an app bundle / a read-only sandbox)
    run_from: str = ""  # where the command must be run, e.g. "the OSGeo4W Shell (C:\\OSGeo4W\\OSGeo4W.bat)"
    launcher: tuple[str, ...] = ()  # replaces the interpreter in a terminal (Flatpak: flatpak run ...)
    externally_managed: bool = False  # PEP 668: pip refuses even --user without --break-system-packages

    def pip_install(self, packages: list[str], terminal: bool = False) -> list[str]:
        """argv of ``pip install PACKAGES`` for this Python (``terminal``: as typed in a shell outside QGIS)."""
        args = [*(self.launcher if terminal and self.launcher else (self.executable,)), "-m", "pip", "install"]
        if self.user:
            args.append("--user")
        if self.externally_managed:
            args.append("--break-system-packages")  # with --user it writes only the user's site-packages
        return args + list(packages)

    def hint(self, packages: list[str]) -> str:
        """The install command as one line for a terminal, with where to run it."""
        argv = self.pip_install(packages, terminal=True)
        quote = (lambda a: f'"{a}"' if " " in a else a) if self.kind in WINDOWS_KINDS else shlex.quote
        line = " ".join(quote(a) for a in argv)
        return f"in {self.run_from}: {line}" if self.run_from else line


WINDOWS_KINDS = ("osgeo4w", "windows-installer")


def _writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (os.access ignores Windows ACLs and read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".csakd-write-test.", dir=str(folder))
    except OSError:
        return False
    os.close(fd)
    try:
        os.remove(probe)
    except OSError:
        pass
    return True


def _local(p: PurePath) -> Path:
    """A concrete path for a check on disk (a Windows path written with '/' works on both platforms)."""
    return Path(p.as_posix())


def _first_file(candidates: list[PurePath]) -> PurePath:
    return next((c for c in candidates if _local(c).is_file()), candidates[0])


def _site_packages(facts: PythonFacts, prefix: PurePath) -> Path:
    if facts.windows:
        return _local(prefix / "Lib" / "site-packages")
    return _local(prefix / "lib" / f"python{facts.version[0]}.{facts.version[1]}" / "site-packages")


def _externally_managed(facts: PythonFacts, prefix: PurePath) -> bool:
    stdlib = prefix / "Lib" if facts.windows else prefix / "lib" / f"python{facts.version[0]}.{facts.version[1]}"
    return _local(stdlib / "EXTERNALLY-MANAGED").is_file()


def _posix_names(facts: PythonFacts, prefix: PurePath) -> list[PurePath]:
    ver = f"{facts.version[0]}.{facts.version[1]}"
    return [prefix / "bin" / f"python{ver}", prefix / "bin" / "python3", prefix / "bin" / "python"]


def _keep_executable(facts: PythonFacts, names: list[PurePath]) -> PurePath | None:
    """``sys.executable`` when it is a python in one of the candidate folders (e.g. python3.11 vs python3)."""
    exe = facts.path(facts.executable) if facts.executable else None
    if exe is not None and exe.name.lower().startswith("python") and exe.parent in {n.parent for n in names}:
        return exe
    return None


def _app_bundle(facts: PythonFacts) -> PurePath | None:
    for text in (facts.executable, facts.prefix, facts.base_exec_prefix):
        if not text:
            continue
        p = facts.path(text)
        for part in (p, *p.parents):
            if part.name.endswith(".app"):
                return part
    return None


def find_qgis_python(facts: PythonFacts | None = None) -> QgisPython:
    """QGIS's Python for the process described by ``facts`` (default: this one)."""
    facts = facts or PythonFacts.current()
    if facts.prefix != facts.base_prefix:  # a virtual environment: its own interpreter, no --user
        prefix = facts.path(facts.prefix)
        names = ([prefix / "Scripts" / "python.exe", prefix / "python.exe"] if facts.windows
                 else _posix_names(facts, prefix))
        return QgisPython(str(_keep_executable(facts, names) or _first_file(names)), "venv", user=False)
    prefix = facts.path(facts.base_exec_prefix)
    if facts.windows:
        return _windows_python(facts, prefix)
    if facts.platform == "darwin" and (app := _app_bundle(facts)) is not None:
        names = [app / "Contents" / "MacOS" / "bin" / "python3",
                 app / "Contents" / "MacOS" / "bin" / f"python{facts.version[0]}.{facts.version[1]}",
                 *_posix_names(facts, prefix)]
        # never pip into the signed bundle (an update replaces it anyway): the user's site
        return QgisPython(str(_first_file(names)), "macos-app", user=True)
    names = _posix_names(facts, prefix)
    exe = str(_keep_executable(facts, names) or _first_file(names))
    flatpak_id = facts.environ.get("FLATPAK_ID")
    if flatpak_id or facts.flatpak_info.is_file():
        app_id = flatpak_id or "org.qgis.qgis"
        return QgisPython(exe, "flatpak", user=True,
                          launcher=("flatpak", "run", f"--command={Path(exe).name}", app_id))
    if facts.platform.startswith("linux"):  # the distribution's python3: never pip into /usr
        return QgisPython(exe, "linux", user=True, externally_managed=_externally_managed(facts, prefix))
    return QgisPython(exe, "python", user=not _writable(_site_packages(facts, prefix)),
                      externally_managed=_externally_managed(facts, prefix))


def _windows_python(facts: PythonFacts, prefix: PurePath) -> QgisPython:
    """OSGeo4W or the standalone installer: ``<root>\\apps\\Python3xx\\python.exe``, run from the OSGeo4W Shell."""
    exe = str(_first_file([prefix / "python.exe", prefix / "Scripts" / "python.exe"]))
    user = not _writable(_site_packages(facts, prefix))
    root = prefix.parent.parent if prefix.parent.name.lower() == "apps" else None
    if root is None or not _local(root / "OSGeo4W.bat").is_file():
        return QgisPython(exe, "python", user=user)
    shell = root / "OSGeo4W.bat"
    if _local(root / "etc" / "setup" / "installed.db").is_file():  # the OSGeo4W network installer's record
        return QgisPython(exe, "osgeo4w", user=user,
                          run_from=f"the OSGeo4W Shell (Start menu > OSGeo4W > OSGeo4W Shell, or {shell})")
    return QgisPython(exe, "windows-installer", user=user,
                      run_from=f"the OSGeo4W Shell of this QGIS (Start menu > {root.name} > OSGeo4W Shell, or {shell})")


__all__ = ["PythonFacts", "QgisPython", "find_qgis_python"]

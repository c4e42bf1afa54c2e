"""Optional runtime dependencies (PyTorch, ONNX Runtime): what is importable, and how to install what is not.

:class:`DependencyCheck` is the logic of the plugin's "Check / install dependencies" dialog (rows to show, what
can be installed, running pip and reading its result), kept here so it is tested without a screen.

The install command targets the Python that runs this code (QGIS's own Python inside QGIS) and pins numpy to
the version already there, so installing a runtime never replaces the numpy that GDAL and QGIS were built with.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from csakd_qgis import oscompat
from csakd_qgis.errors import CsakdError
from csakd_qgis.python_finder import find_qgis_python

RUNTIMES = ("torch", "onnx")
PIP_NAMES = {"torch": "torch", "onnx": "onnxruntime"}


@dataclass
class PackageStatus:
    """One optional package: importable or not, its version, and what it says about GPUs."""

    name: str
    present: bool
    version: str | None = None
    detail: str = ""


def python_executable() -> Path:
    """QGIS's own Python interpreter (inside QGIS ``sys.executable`` is the QGIS binary or another ``python3`` on
    PATH, never QGIS's Python itself): found from this process's prefix and the platform's install layout."""
    return Path(find_qgis_python().executable)


def install_command(runtime: str) -> list[str]:
    """pip arguments that install ``runtime`` ("onnx", "torch" or another pip package name) for this Python,
    numpy pinned as it is (``--user`` where its prefix is not writable)."""
    import numpy

    return find_qgis_python().pip_install([PIP_NAMES.get(runtime, runtime), f"numpy=={numpy.__version__}"])


def install_hint(runtime: str = "onnx") -> str:
    """The install command as one line for a terminal (arguments with spaces quoted), with where to run it
    (e.g. the OSGeo4W Shell on Windows; ``flatpak run`` for the Flatpak)."""
    import numpy

    return find_qgis_python().hint([PIP_NAMES.get(runtime, runtime), f"numpy=={numpy.__version__}"])


def python_line() -> str:
    """One line for the dependency dialog: which Python the packages go to, and how."""
    qp = find_qgis_python()
    how = {"osgeo4w": "OSGeo4W", "windows-installer": "QGIS standalone installer", "macos-app": "QGIS.app",
           "flatpak": "Flatpak", "linux": "system Python", "venv": "virtual environment"}.get(qp.kind, "Python")
    return f"QGIS's Python: {qp.executable} ({how}{'; pip --user' if qp.user else ''})"


def runtime_available(runtime: str) -> bool:
    """Whether ``runtime`` imports in this process (a broken or blocked install counts as missing)."""
    try:
        importlib.import_module("torch" if runtime == "torch" else "onnxruntime")
    except ImportError:
        return False
    return True


def missing_runtime_error(model: str) -> CsakdError:
    """The one-line error for a learned model when neither PyTorch nor ONNX Runtime can be imported."""
    return CsakdError(f"The learned model '{model}' needs ONNX Runtime or PyTorch, and neither is installed in "
                      f"this Python ({python_executable()}). Install ONNX Runtime (CPU, about 20 MB) with: "
                      f"{install_hint('onnx')}  -- or choose a classical method (glp).")


def package_status() -> list[PackageStatus]:
    """Status of torch and onnxruntime (versions, CUDA / execution providers) for the dependency dialog."""
    out = []
    try:
        import torch

        cuda = (f"CUDA {torch.version.cuda}, GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
                else f"no usable CUDA GPU ({'CUDA ' + torch.version.cuda + ' build' if torch.version.cuda else 'CPU build'})")
        out.append(PackageStatus("torch", True, torch.__version__, cuda))
    except ImportError as exc:
        out.append(PackageStatus("torch", False, None, str(exc)))
    try:
        import onnxruntime

        out.append(PackageStatus("onnxruntime", True, onnxruntime.__version__,
                                 "providers: " + ", ".join(onnxruntime.get_available_providers())))
    except ImportError as exc:
        out.append(PackageStatus("onnxruntime", False, None, str(exc)))
    return out


LABELS = {"torch": "PyTorch (training and fusion)", "onnxruntime": "ONNX Runtime (fusion without PyTorch)"}


@dataclass
class InstallResult:
    """How one pip run ended: success, the one line to show, and pip's output for the details box."""

    ok: bool
    message: str
    output: str


class DependencyCheck:
    """The dialog's logic: package rows, install offers and running pip (``popen`` is the subprocess boundary)."""

    def __init__(self, popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        self.popen = popen
        self.refresh()

    def refresh(self) -> None:
        """Read the status of torch and onnxruntime again (after an install)."""
        self.status = {s.name: s for s in package_status()}

    def rows(self) -> list[tuple[str, str, str]]:
        """(package, 'installed <version>' or 'missing', detail) per runtime."""
        return [(LABELS[n], f"installed {s.version}" if s.present else "missing", s.detail)
                for n, s in self.status.items()]

    def summary(self) -> str:
        """One line: can learned models run here, and with what."""
        have = [n for n, s in self.status.items() if s.present]
        if not have:
            return ("Learned models cannot run: neither ONNX Runtime nor PyTorch is installed in QGIS's Python "
                    f"({python_executable()}). Install ONNX Runtime below (about 20 MB).")
        return "Learned models run with " + " and ".join("PyTorch" if n == "torch" else "ONNX Runtime" for n in have) + "."

    def installable(self) -> list[str]:
        """Runtimes ('onnx', 'torch') offered for installation: the missing ones."""
        return [r for r, pkg in (("onnx", "onnxruntime"), ("torch", "torch")) if not self.status[pkg].present]

    def install(self, runtime: str, on_line: Callable[[str], None] | None = None) -> InstallResult:
        """Run pip for ``runtime``, streaming its output lines; the result says what happened in one line."""
        cmd = install_command(runtime)
        lines: list[str] = []
        try:
            # pip's output as UTF-8 on every platform; no console window flashing up on Windows
            proc = self.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                              errors="replace", env={**os.environ, "PYTHONIOENCODING": "utf-8"},
                              **({"creationflags": 0x08000000} if oscompat.windows_semantics() else {}))
        except OSError as exc:
            return InstallResult(False, f"pip could not be started ({exc.strerror or exc}): run this in a "
                                        f"terminal: {install_hint(runtime)}", "")
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(lines[-1])
        code = proc.wait()
        self.refresh()
        pkg = PIP_NAMES[runtime]
        if code == 0 and self.status["onnxruntime" if runtime == "onnx" else "torch"].present:
            return InstallResult(True, f"{pkg} installed: learned models can run now.", "\n".join(lines))
        if code == 0:
            return InstallResult(True, f"{pkg} installed; restart QGIS so that its Python picks it up.", "\n".join(lines))
        last = next((ln for ln in reversed(lines) if ln.strip()), "no output")
        return InstallResult(False, f"Installing {pkg} failed (pip exit code {code}): {last}", "\n".join(lines))

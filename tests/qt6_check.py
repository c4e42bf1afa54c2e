"""An ast check of Python files for what QGIS's PyQt5-to-PyQt6 migration script (scripts/pyqt5_to_pyqt6 in the QGIS
source) would change or warn about, so the plugin stays ready for QGIS 4 / Qt 6 without that script at hand.

Reported: direct PyQt5/PyQt6/sip imports (use qgis.PyQt), unscoped enum values of Qt and QGIS classes (found by
resolving ``Class.Member`` through the module the file imports ``Class`` from: a member whose type is an enum
nested in another name of the class), ``exec_``, ``qApp``, ``QVariant()`` values, Qt enums renamed in Qt 6,
QRegExp, QDesktopWidget, compiled resources, ``fontMetrics().width``, ``activated[str]``, and QAction /
QActionGroup / QShortcut imported from QtWidgets without a QtGui fallback (Qt 6 moved them).
"""

from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

RENAMED_ENUMS = {("Qt", "MidButton"), ("Qt", "TextColorRole"), ("Qt", "BackgroundColorRole"),
                 ("QPainter", "HighQualityAntialiasing")}
REMOVED_NAMES = {"QRegExp": "QRegExp is removed in Qt 6: use QRegularExpression",
                 "QDesktopWidget": "QDesktopWidget is removed in Qt 6: use QScreen",
                 "resources_rc": "compiled resources are not supported with Qt 6: load files by path"}
MOVED_TO_QTGUI = {"QAction", "QActionGroup", "QShortcut", "QFileSystemModel", "QUndoCommand", "QUndoStack"}
BINDING_MODULES = ("PyQt5", "PyQt6", "sip", "PyQt5.sip", "PyQt6.sip")


@dataclass(frozen=True)
class Finding:
    """One thing to change: file, line and what."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _enum_scope(owner: object, member: str) -> str | None:
    """The enum name to put between ``owner`` and ``member`` when ``owner.member`` is an unscoped enum value."""
    try:
        value = getattr(owner, member)
    except Exception:  # noqa: BLE001 - not resolvable: nothing to say
        return None
    kind = type(value)
    is_enum = type(kind).__name__ in ("enumtype", "EnumType", "EnumMeta") or any(
        base.__name__ in ("Enum", "IntEnum", "Flag", "IntFlag") for base in kind.__mro__[1:])
    if not is_enum:
        return None
    qual = kind.__qualname__.split(".")
    owner_name = getattr(owner, "__name__", "")
    if len(qual) >= 2 and qual[-1] != member and qual[-1] != owner_name:
        return qual[-1]
    return None


def _imports_from_qtgui_in_try(tree: ast.AST) -> set[int]:
    """Lines of ``from ...QtWidgets import QAction`` that are the ImportError fallback of a QtGui import."""
    ok: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            gui = any(isinstance(n, ast.ImportFrom) and (n.module or "").endswith("QtGui") for n in node.body)
            for handler in node.handlers:
                for n in ast.walk(handler):
                    if gui and isinstance(n, ast.ImportFrom):
                        ok.add(n.lineno)
    return ok


def check_source(text: str, path: str = "<string>") -> list[Finding]:
    """Findings for one file's source."""
    tree = ast.parse(text, filename=path)
    out: list[Finding] = []
    origin: dict[str, tuple[str, str]] = {}  # name in the file -> (module, name there)
    fallback_lines = _imports_from_qtgui_in_try(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("PyQt5", "PyQt6") or alias.name == "sip":
                    out.append(Finding(path, node.lineno, f"import {alias.name}: import it from qgis.PyQt"))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module in BINDING_MODULES or module.split(".")[0] in ("PyQt5", "PyQt6"):
                out.append(Finding(path, node.lineno, f"from {module} import ...: import it from qgis.PyQt"))
            for alias in node.names:
                origin[alias.asname or alias.name] = (module, alias.name)
                if alias.name in REMOVED_NAMES:
                    out.append(Finding(path, node.lineno, REMOVED_NAMES[alias.name]))
                if (alias.name in MOVED_TO_QTGUI and module.endswith("QtWidgets")
                        and node.lineno not in fallback_lines):
                    out.append(Finding(path, node.lineno, f"{alias.name} is in QtGui with Qt 6: import it from "
                                                          "qgis.PyQt.QtGui, falling back to QtWidgets on ImportError"))
        elif isinstance(node, ast.FunctionDef) and node.name == "exec_":
            out.append(Finding(path, node.lineno, "def exec_: name it exec (exec_ is removed in Qt 6)"))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "exec_":
                out.append(Finding(path, node.lineno, ".exec_(): use .exec() (exec_ is removed in Qt 6)"))
            if isinstance(func, ast.Name) and func.id == "QVariant":
                out.append(Finding(path, node.lineno, "QVariant(...) value: use qgis.core NULL or a plain value"))
            if (isinstance(func, ast.Attribute) and func.attr == "desktop" and not node.args):
                out.append(Finding(path, node.lineno, REMOVED_NAMES["QDesktopWidget"]))
        elif isinstance(node, ast.Subscript):
            if (isinstance(node.value, ast.Attribute) and node.value.attr == "activated"
                    and isinstance(node.slice, ast.Name) and node.slice.id == "str"):
                out.append(Finding(path, node.lineno, "activated[str] is removed in Qt 6: use textActivated"))
        elif isinstance(node, ast.Name) and node.id == "qApp":
            out.append(Finding(path, node.lineno, "qApp is removed in Qt 6: use QApplication.instance()"))
        if isinstance(node, ast.Attribute):
            if (node.attr == "width" and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "fontMetrics"):
                out.append(Finding(path, node.lineno, "QFontMetrics.width() is removed in Qt 6: horizontalAdvance()"))
            if isinstance(node.value, ast.Name):
                owner_name = node.value.id
                if (owner_name, node.attr) in RENAMED_ENUMS:
                    out.append(Finding(path, node.lineno, f"{owner_name}.{node.attr} is removed in Qt 6"))
                elif owner_name in origin:
                    scope = _resolve_scope(*origin[owner_name], node.attr)
                    if scope is not None:
                        out.append(Finding(path, node.lineno, f"unscoped enum {owner_name}.{node.attr}: write "
                                                              f"{owner_name}.{scope}.{node.attr}"))
    return sorted(set(out), key=lambda f: (f.path, f.line, f.message))


def _resolve_scope(module: str, name: str, member: str) -> str | None:
    if not module.startswith(("qgis", "PyQt5", "PyQt6")):
        return None
    try:
        owner = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - a module or name this QGIS lacks: cannot tell
        return None
    return _enum_scope(owner, member)


def check_tree(root: str | Path) -> list[Finding]:
    """Findings for every .py file under ``root``."""
    out: list[Finding] = []
    for path in sorted(Path(root).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        out += check_source(path.read_text(encoding="utf-8"), str(path))
    return out


if __name__ == "__main__":
    findings = check_tree(sys.argv[1] if len(sys.argv) > 1 else ".")
    for f in findings:
        print(f)
    sys.exit(1 if findings else 0)

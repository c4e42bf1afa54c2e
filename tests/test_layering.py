"""The import rules of docs/ARCHITECTURE.md, read from the source with ast (nothing is imported).

Layers, top to bottom: the QGIS layer (package root, plugin.py, provider.py, algorithms/, incl. its profile/ panel) and the CLI (cli/)
use the engine (raster/, fusion/, spectral/, training/, zoo/, quality/, products/, distributed/), which may use the
networks (nets/); all may use the base modules (errors, deps, failures, version). Imports point down only; QGIS
(and Qt through it) is imported by the QGIS layer only; torch and the other optional runtimes are imported inside
the functions that need them outside nets/ (directly or through a module that imports them at import time); no
two modules (nor two subpackages) import each other, even through imports inside functions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT

PKG = "csakd_qgis"
QGIS_LAYER = ("csakd_qgis.plugin", "csakd_qgis.provider", "csakd_qgis.algorithms")
BASE = ("csakd_qgis.errors", "csakd_qgis.deps", "csakd_qgis.failures", "csakd_qgis.version", "csakd_qgis.oscompat",
        "csakd_qgis.temporaries", "csakd_qgis.python_finder")
# layer -> the layers it may import
ALLOWED = {"qgis": {"qgis", "engine", "nets", "base"}, "cli": {"cli", "engine", "nets", "base"},
           "engine": {"engine", "nets", "base"}, "nets": {"nets", "base"}, "base": {"base"}}
LAZY = ("torch", "onnxruntime", "onnx", "dask", "distributed", "h5py", "netCDF4")  # imported where used
QT = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")  # Qt only through qgis.PyQt


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where, and whether it runs when the module is imported."""

    source: str
    target: str
    line: int
    top: bool  # False inside a function (or under TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}{'' if self.top else ' (inside a function)'}"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``root``."""
    out = {}
    for path in sorted((root / PKG).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


class _Collector(ast.NodeVisitor):
    def __init__(self, name: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.name, self.modules, self.depth, self.found = name, modules, 0, []
        self.package = name if is_package else name.rpartition(".")[0]

    def _add(self, target: str, node: ast.AST) -> None:
        self.found.append(Import(self.name, target, node.lineno, self.depth == 0))

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested  # noqa: N815

    def visit_If(self, node: ast.If) -> None:  # noqa: N802
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self._nested(node)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.modules else base, node)


def collect(root: Path) -> list[Import]:
    """Every import of every module of the package under ``root``."""
    modules = module_names(root)
    found: list[Import] = []
    for name, path in modules.items():
        c = _Collector(name, path.name == "__init__.py", modules)
        c.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found += c.found
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer(name: str) -> str:
    """The layer of a package module."""
    if name == PKG or _within(name, QGIS_LAYER):
        return "qgis"
    if _within(name, BASE):
        return "base"
    if _within(name, (f"{PKG}.cli",)):
        return "cli"
    if _within(name, (f"{PKG}.nets",)):
        return "nets"
    return "engine"


def layer_violations(imports: list[Import]) -> list[str]:
    """Imports that point up or sideways (engine -> CLI, nets -> engine, CLI <-> QGIS layer ...)."""
    return [f"{imp}: the {layer(imp.source)} layer may not import the {layer(imp.target)} layer" for imp in imports
            if _within(imp.target, (PKG,)) and layer(imp.target) not in ALLOWED[layer(imp.source)]]


def qgis_violations(imports: list[Import]) -> list[str]:
    """qgis imported outside the QGIS layer, or Qt imported other than through qgis.PyQt."""
    out = [f"{imp}: only plugin.py, provider.py and algorithms/ import qgis" for imp in imports
           if imp.target.split(".")[0] == "qgis" and layer(imp.source) != "qgis"]
    return out + [f"{imp}: import Qt through qgis.PyQt" for imp in imports if imp.target.split(".")[0] in QT]


def lazy_violations(imports: list[Import]) -> list[str]:
    """Modules outside nets/ that import an optional runtime when they are imported, directly or through others."""
    top: dict[str, set[str]] = {}
    for imp in imports:
        if imp.top:
            top.setdefault(imp.source, set()).add(imp.target)
    heavy: dict[str, str] = {}  # module -> the chain to the runtime it imports at import time
    changed = True
    while changed:
        changed = False
        for src, targets in top.items():
            if src in heavy:
                continue
            for t in sorted(targets):
                if t.split(".")[0] in LAZY:
                    heavy[src] = t
                elif t in heavy:
                    heavy[src] = f"{t} -> {heavy[t]}"
                if src in heavy:
                    changed = True
                    break
    # the root causes: modules outside nets/ whose first step is the runtime itself or a nets/ module
    return [f"{m} imports {chain} at import time: import it inside the function that needs it"
            for m, chain in sorted(heavy.items()) if layer(m) != "nets"
            and (chain.split(".")[0] in LAZY or layer(chain.split(" -> ")[0]) == "nets")]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Groups of package modules that import each other (imports inside functions count), by Tarjan's algorithm."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if _within(imp.target, (PKG,)) and imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_cycles(imports: list[Import]) -> list[list[str]]:
    """Groups of subpackages (raster, fusion, ...) that import each other: the engine's own order is a DAG too."""

    def top_package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    return cycles([Import(top_package(i.source), top_package(i.target), i.line, i.top) for i in imports
                   if _within(i.target, (PKG,))])


def check(root: Path) -> list[str]:
    """Every broken rule of the package under ``root``, one line each."""
    imports = collect(root)
    return (layer_violations(imports) + qgis_violations(imports) + lazy_violations(imports)
            + [f"import cycle: {' <-> '.join(c)}" for c in cycles(imports)]
            + [f"package cycle: {' <-> '.join(c)}" for c in package_cycles(imports)])


# ------------------------------------------------------------------------------------------------- tests
def test_imports_point_down_only():
    found = layer_violations(collect(ROOT))
    assert not found, "\n".join(found)


def test_only_the_qgis_layer_imports_qgis():
    found = qgis_violations(collect(ROOT))
    assert not found, "\n".join(found)


def test_optional_runtimes_are_imported_lazily_outside_nets():
    found = lazy_violations(collect(ROOT))
    assert not found, "\n".join(found)


def test_no_import_cycles_even_through_function_local_imports():
    found = cycles(collect(ROOT))
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_the_subpackages_import_each_other_in_one_direction_only():
    found = package_cycles(collect(ROOT))
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_the_checker_finds_planted_violations(tmp_path):
    """A small package with one broken rule per module: each is reported, and a clean tree reports nothing."""
    files = {
        "__init__.py": "",
        "errors.py": "class CsakdError(Exception):\n    pass\n",
        "raster/__init__.py": "",
        "raster/io.py": "import numpy as np\nfrom csakd_qgis.errors import CsakdError\n",
        "raster/job.py": "from csakd_qgis.raster import io\n\n\ndef run():\n    import torch\n    return torch, io\n",
        "nets/__init__.py": "",
        "nets/blocks.py": "import torch\n",
        "cli/__init__.py": "from csakd_qgis.raster.job import run\n",
        "algorithms/__init__.py": "from qgis.core import QgsProcessingAlgorithm\nfrom csakd_qgis.raster import job\n",
    }
    for rel, text in files.items():
        (tmp_path / PKG / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PKG / rel).write_text(text)
    assert check(tmp_path) == []
    planted = {
        "raster/cli_use.py": "from csakd_qgis.cli import run\n",  # engine -> CLI
        "nets/engine_use.py": "from csakd_qgis.raster.io import np\n",  # nets -> engine
        "fusion/__init__.py": "",
        "fusion/qt.py": "from qgis.PyQt.QtCore import QObject\n",  # qgis outside the QGIS layer
        "fusion/heavy.py": "from csakd_qgis.nets import blocks\n",  # torch at import time, through nets
        "raster/loop.py": "def f():\n    from csakd_qgis.raster import job\n",  # cycle through a local import:
    }
    planted["raster/io.py"] = files["raster/io.py"] + "\n\ndef g():\n    from csakd_qgis.raster import loop\n"
    for rel, text in planted.items():
        (tmp_path / PKG / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PKG / rel).write_text(text)
    (tmp_path / PKG / "raster/job.py").write_text(files["raster/job.py"].replace(
        "def run():", "def run():\n    from csakd_qgis.raster import loop  # noqa: F401"))
    report = "\n".join(check(tmp_path))
    assert "csakd_qgis.raster.cli_use:1 imports csakd_qgis.cli: the engine layer may not import the cli" in report
    assert "csakd_qgis.nets.engine_use:1 imports csakd_qgis.raster.io: the nets layer may not import the engine" \
        in report
    assert "csakd_qgis.fusion.qt:1 imports qgis.PyQt.QtCore: only plugin.py" in report
    assert "csakd_qgis.fusion.heavy imports csakd_qgis.nets.blocks -> torch at import time" in report
    assert "import cycle: csakd_qgis.raster.io <-> csakd_qgis.raster.job <-> csakd_qgis.raster.loop" in report
    assert "package cycle: csakd_qgis.cli <-> csakd_qgis.raster" in report  # raster.cli_use and cli/__init__
    assert "csakd_qgis.raster.job imports torch" not in report  # inside a function: lazy, allowed
    assert "csakd_qgis.algorithms" not in report  # the QGIS layer may import qgis and the engine

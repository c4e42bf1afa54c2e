"""Test helper: make packages look uninstalled to a subprocess (a folder first on its PYTHONPATH)."""

from __future__ import annotations

from pathlib import Path


def block_modules(folder: Path, *names: str) -> str:
    """A folder that, first on PYTHONPATH, makes ``import NAME`` fail as if the package were not installed."""
    for name in names:
        pkg = folder / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    return str(folder)

"""Test helpers of the runtimes: make packages look uninstalled to a subprocess (a folder first on its PYTHONPATH),
read the card stored inside an exported ONNX file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def block_modules(folder: Path, *names: str) -> str:
    """A folder that, first on PYTHONPATH, makes ``import NAME`` fail as if the package were not installed."""
    for name in names:
        pkg = folder / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    return str(folder)


def read_onnx_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card stored inside an exported ONNX file (the card beside the file is the one used to run)."""
    import onnx

    from csakd_qgis.fusion.runtime import META_PREFIX

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert META_PREFIX + "card" in meta, f"'{path}' holds no csakd card in its metadata"
    return json.loads(meta[META_PREFIX + "card"])

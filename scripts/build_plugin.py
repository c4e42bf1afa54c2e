"""Build the QGIS plugin zip: csakd_qgis/ + metadata.txt + LICENSE + the zoo (weights, cards, ONNX files).

Caches, tests, the venv and the zoo's teachers (training only) are left out; the zip must stay under the QGIS
plugin repository's 25 MB upload limit; symlinks (metadata.txt) are stored as real files.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_PARTS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def plugin_files() -> list[tuple[Path, str]]:
    """(source file, path inside the zip) for everything the plugin needs at run time."""
    files: list[tuple[Path, str]] = []
    for p in sorted((ROOT / "csakd_qgis").rglob("*")):
        if p.is_dir() or SKIP_PARTS & set(p.parts) or p.suffix in SKIP_SUFFIXES:
            continue
        rel = p.relative_to(ROOT).as_posix()
        if rel == "csakd_qgis/metadata.txt":
            continue  # added below from the top-level source of truth
        files.append((p, rel))
    files.append((ROOT / "metadata.txt", "csakd_qgis/metadata.txt"))
    files.append((ROOT / "LICENSE", "csakd_qgis/LICENSE"))
    models = ROOT / "models"
    if models.is_dir():
        for p in sorted(models.iterdir()):
            if p.name.split(".")[0].endswith("_teacher"):
                continue  # teachers serve offline KD training from a checkout; the plugin runs students
            if p.suffix in {".safetensors", ".json", ".onnx"} or p.name == "README.md":
                files.append((p, f"csakd_qgis/models/{p.name}"))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="zip file to write")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, arc in plugin_files():
            zf.write(src.resolve(), arc)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

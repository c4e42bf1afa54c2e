"""What a run reads and what it writes beside its outputs, checked before anything runs.

Every file behind an input (a product folder's members, a product zip, a model's card, weights and ONNX
graphs) is compared with each output after resolving symlinks and ``..``, so an output never overwrites
something the run reads; inputs that are not regular files (a FIFO would block the reader for ever) are
refused at once; the QGIS style sidecars of an output (``.qml``/``.qmd``) are outputs too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from csakd_qgis.errors import CsakdError
from csakd_qgis.temporaries import TEMP_SUFFIX, OwnedFile

VIRTUAL_PREFIX = "/vsi"  # GDAL virtual file systems (/vsizip/, /vsicurl/, /vsimem/ ...): not local files
MAX_PRODUCT_FILES = 20000  # members listed per product folder (a product has tens to hundreds)
SIDECAR_EXTENSIONS = (".qml", ".qmd")
# extension QGIS drops when it looks for a raster's default style: only there the sidecar is <stem>.qml
DEFAULT_STYLE_EXTENSION = ".tif"
NOT_RASTERS = (".json", ".safetensors", ".onnx", ".xml", ".txt", ".zip")  # inputs QGIS draws no style for


def is_virtual(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a GDAL virtual file (``/vsi...``), which is no local file to check."""
    return str(path).startswith(VIRTUAL_PREFIX)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file or a folder)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def is_special_file(path: object) -> bool:
    """Whether ``path`` (a string) names an existing FIFO, socket or device (no GDAL virtual path)."""
    if not isinstance(path, str | os.PathLike) or not str(path) or is_virtual(path):
        return False
    try:
        return _kind(os.stat(str(path)).st_mode) is not None
    except OSError:
        return False


def check_regular_input(path: str | os.PathLike | None, role: str = "input") -> None:
    """CsakdError when input ``path`` is a FIFO, socket or device: reading one blocks or never ends.

    Regular files and folders (products) pass, as do GDAL virtual paths and paths that do not exist (the
    reader names those)."""
    if not path or is_virtual(path):
        return
    try:
        mode = os.stat(str(path)).st_mode
    except OSError:
        return
    kind = _kind(mode)
    if kind is not None:
        raise CsakdError(f"The {role} '{path}' is a {kind}, not a regular file: reading it could block for ever. "
                         "Give a raster file (copy the data into a file first).")


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def _model_files(path: Path) -> list[Path]:
    """A model's card, weights and ONNX graphs (any variant) beside ``path`` (.json or .safetensors)."""
    stem = path.name[: -len(path.suffix)]
    return [path.with_name(f"{stem}.json"), path.with_name(f"{stem}.safetensors"),
            *path.parent.glob(f"{stem}.onnx"), *path.parent.glob(f"{stem}.*.onnx")]


def input_files(path: str | os.PathLike | None) -> list[Path]:
    """Every existing file a run reads for input ``path``: the file itself, every file of a product folder
    (or of the folder of a product's metadata file), a model's card, weights and ONNX graphs."""
    if not path or is_virtual(path):
        return []
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        folder = p
    elif p.is_file():
        folder = None
        if p.suffix.lower() in (".json", ".safetensors"):
            return [f for f in _model_files(p) if f.is_file()]
        if p.suffix.lower() in (".xml", ".txt"):  # a product's metadata file: its members are beside it
            folder = p.parent  # (any metadata-like file counts: refusing too much beats overwriting a member)
        if folder is None:
            return [p]
    else:
        return []
    files: list[Path] = []
    for root, _dirs, names in os.walk(folder):  # symlinked folders not followed: no cycles
        files.extend(Path(root) / n for n in names)
        if len(files) > MAX_PRODUCT_FILES:
            break
    return files


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                    role: str = "output") -> None:
    """CsakdError when output ``out`` is (after resolving symlinks and ``..``) a file any input reads."""
    target = _real(out)
    exists = os.path.exists(target)
    for src in inputs:
        for f in input_files(src):
            same = _real(f) == target
            if not same and exists:
                try:
                    same = os.path.samefile(f, target)  # hard links
                except OSError:
                    same = False
            if same:
                what = "" if _real(f) == _real(src) else f" (the file '{f}' of it)"
                raise CsakdError(f"The {role} '{out}' is one of the inputs ('{src}'{what}): choose a different file "
                                 "name so the input is not overwritten.")


def style_sidecars(raster: str | os.PathLike) -> tuple[str, str]:
    """(display style .qml, layer metadata .qmd) written beside an output raster.

    A ``.tif`` gets QGIS's default names (``<stem>.qml``: QGIS applies it when the file is opened); any other
    extension keeps it in the name (``lr_m.tiff.qml``), so ``lr_m.tiff`` never takes ``lr_m.tif``'s style.
    """
    text = str(raster)
    base, ext = os.path.splitext(text)
    stem = base if ext.lower() == DEFAULT_STYLE_EXTENSION else text
    return stem + ".qml", stem + ".qmd"


def default_sidecars(raster: str | os.PathLike) -> tuple[str, str]:
    """The .qml/.qmd QGIS itself reads and writes for a raster (its name minus the last extension)."""
    base = os.path.splitext(str(raster))[0]
    return base + ".qml", base + ".qmd"


def check_sidecars(outputs: Sequence[str | os.PathLike], inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """CsakdError before any compute when an output's sidecar is a folder or special file, an input, an input's
    own sidecar, or the sidecar of another output of the same run."""
    srcs = [s for s in inputs if s]
    rasters = [s for s in srcs if not Path(str(s)).is_dir() and Path(str(s)).suffix.lower() not in NOT_RASTERS]
    theirs = {_real(q): s for s in rasters for q in default_sidecars(s)}
    mine: dict[str, str] = {}
    for out in outputs:
        if not out:
            continue
        for side in style_sidecars(out):
            real = _real(side)
            if os.path.isdir(real):
                raise CsakdError(f"The style sidecar '{side}' of the output '{out}' is a folder: remove or rename "
                                 "it, or choose another output name.")
            if os.path.exists(real) and _kind(os.stat(real).st_mode) is not None:
                raise CsakdError(f"The style sidecar '{side}' of the output '{out}' is not a regular file: "
                                 "choose another output name.")
            if real in mine:
                raise CsakdError(f"The outputs '{mine[real]}' and '{out}' would share the style sidecar '{side}': "
                                 "give them different names.")
            mine[real] = str(out)
            if real in theirs and _real(theirs[real]) != _real(out):
                raise CsakdError(f"The style sidecar '{side}' of the output '{out}' is the style of the input "
                                 f"'{theirs[real]}': choose another output name so the input's style is kept.")
            check_not_input(side, srcs, role=f"style sidecar of the output '{out}'")


class Backup:
    """A hard link to an existing output, kept (locked, so no sweep takes it) until the run ends: restoring it
    puts the old file back if the run fails after replacing it. Folders without hard links get none."""

    def __init__(self, path: str | os.PathLike) -> None:
        p = Path(str(path))
        self.path, self.link, self._owned = p, None, None
        link = p.with_name(f".{p.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.link(p, link)
        except OSError:
            return
        self.link = link
        with contextlib.suppress(OSError):
            self._owned = OwnedFile(link, os.open(link, os.O_RDONLY))  # locked (or marked): no sweep takes it

    def restore(self) -> None:
        """Put the old file back at its path."""
        if self.link is not None and self.link.exists():
            os.replace(self.link, self.path)
        self.close()

    def close(self) -> None:
        """Drop the backup (the run succeeded, or it was restored)."""
        if self._owned is not None:
            self._owned.release()
            self._owned = None
        if self.link is not None and self.link.exists():
            with contextlib.suppress(OSError):
                os.remove(self.link)


__all__ = ["Backup", "SIDECAR_EXTENSIONS", "check_not_input", "check_regular_input", "check_sidecars", "default_sidecars",
           "input_files", "is_special_file", "is_virtual", "style_sidecars"]

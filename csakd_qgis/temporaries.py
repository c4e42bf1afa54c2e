"""Hidden temporaries beside outputs (files and work folders), who owns them, and the sweep of killed runs' ones.

A temporary's owner holds an OS lock on it while it lives: ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
Windows (both in the standard library, imported inside the functions; msvcrt locks one byte far beyond the
data, as its locks are mandatory and would otherwise block GDAL's own writes). A lock dies with its process,
so a temporary whose lock can be taken belongs to a killed run. Where the file system takes no locks, an owner
marker (pid, host, process start) tells instead. The sweep never removes what a live run owns.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from csakd_qgis import oscompat

log = logging.getLogger("csakd")

PROCESS_START = time.time()
TEMP_SUFFIX = ".csakd-tmp"
OWNER_NAME = ".csakd-owner"  # the owner file inside a work folder
MARKER_SUFFIX = ".owner"  # beside a temporary file whose lock the file system refused
UNKNOWN_OWNER_AGE_S = 24 * 3600.0  # a temporary whose owner cannot be checked is stale after a day untouched
OWNERLESS_FOLDER_AGE_S = 600.0  # an owner-less work folder (earlier versions) untouched for 10 min is stale
_WINDOWS_LOCK_OFFSET = 2 ** 40  # msvcrt locks a byte range: one byte far beyond anything written

_R = r"[a-z0-9_]{8}"  # tempfile's random part
# this tool's temporary files: ".<name>.<8>.csakd-tmp", and those of earlier versions (".<stem>.<8>.tmp.tif"
# rasters, ".<name>.<8>.tmp" model files, ".<name>.tmp" JSON/HTML/CSV/checkpoints), the write probe
_TEMP_FILE = re.compile(rf"^\..+\.{_R}\.csakd-tmp$|^\..+\.{_R}\.tmp(\.tif)?$|^\..+\.(json|html?|pt|csv)\.tmp$"
                        rf"|^\.csakd-write-test\.{_R}$")
# work folders: product rasters, distributed blocks, the sharpened 20 m bands, ONNX export
WORK_FOLDER_PREFIXES = {"products": ".{name}.products.", "blocks": ".{stem}.blocks.", "msi20": ".csakd-msi20-",
                        "onnx": ".csakd-onnx."}
_TEMP_FOLDER = re.compile(rf"^\..+\.products\.{_R}$|^\..+\.blocks\.{_R}$|^\.csakd-msi20-{_R}$"
                          rf"|^\.csakd-onnx\.{_R}$")


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is the name of one of this tool's temporary output files."""
    return bool(_TEMP_FILE.match(name))


def is_work_folder_name(name: str) -> bool:
    """Whether ``name`` is the name of one of this tool's hidden work folders."""
    return bool(_TEMP_FOLDER.match(name))


# ------------------------------------------------------------------------------------------------ locks
def try_lock(fd: int) -> bool | None:
    """Take an exclusive lock on open file ``fd`` without waiting: True taken, False held by another process
    (or another open of the file), None when this platform or file system has no locks."""
    if oscompat.windows_semantics():
        try:
            import msvcrt
        except ImportError:
            return None
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError as exc:
            return False if exc.errno in (errno.EACCES, errno.EDEADLK) else None
        finally:
            os.lseek(fd, pos, os.SEEK_SET)
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        return False if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES) else None


def owner_record() -> dict[str, object]:
    """This process as the owner of a temporary: pid, host and process start token."""
    return {"pid": os.getpid(), "host": oscompat.hostname(), "start": oscompat.process_start_token(os.getpid())}


def owner_alive(record: dict) -> bool | None:
    """Whether the process of an owner ``record`` is still running: True / False, None when it cannot be told
    (another host)."""
    if record.get("host") != oscompat.hostname():
        return None
    try:
        pid = int(record.get("pid"))
    except (TypeError, ValueError):
        return None
    if pid == os.getpid():
        return record.get("start") in (None, oscompat.process_start_token(pid))
    if not oscompat.pid_alive(pid):
        return False
    start, now = record.get("start"), oscompat.process_start_token(pid)
    return not (start and now and start != now)  # a reused pid is another process


def _read_record(path: str | os.PathLike) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None


class OwnedFile:
    """Ownership of a temporary file this process has open (``fd``): its lock, or a marker where locks fail."""

    def __init__(self, path: str | os.PathLike, fd: int, marker: bool = True) -> None:
        self.path, self.fd = Path(str(path)), fd
        self.marker: Path | None = None
        if try_lock(fd) is not True and marker:  # no locks here: say who owns it in a marker beside it
            self.marker = self.path.with_name(self.path.name + MARKER_SUFFIX)
            with open(self.marker, "w", encoding="utf-8") as fh:
                json.dump(owner_record(), fh)

    def release(self) -> None:
        """Close the file (dropping its lock) and remove the marker, if any."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        if self.marker is not None:
            with contextlib.suppress(OSError):
                os.remove(self.marker)
            self.marker = None


class WorkFolder:
    """A hidden work folder ``<prefix>XXXXXXXX`` in ``parent``, owned (locked owner file inside) until closed.

    Used like ``tempfile.TemporaryDirectory``: ``with WorkFolder(prefix, parent) as path:``; removed on exit
    (errors ignored). Creating one first sweeps ``parent`` of killed runs' temporaries.
    """

    def __init__(self, prefix: str, parent: str | os.PathLike) -> None:
        parent = str(parent) or "."
        sweep_stale_temporaries(parent)
        self.name = tempfile.mkdtemp(prefix=prefix, dir=parent)
        try:
            fd = os.open(os.path.join(self.name, OWNER_NAME), os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0),
                         0o600)
            # locked first, then the owner record written into it (for file systems without locks)
            self._owner: OwnedFile | None = OwnedFile(os.path.join(self.name, OWNER_NAME), fd, marker=False)
            os.write(fd, json.dumps(owner_record()).encode("utf-8"))
        except OSError:
            shutil.rmtree(self.name, ignore_errors=True)
            raise

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Release the owner file (Windows cannot remove an open file) and remove the folder."""
        if self._owner is not None:
            self._owner.release()
            self._owner = None
        shutil.rmtree(self.name, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ sweep
def _remove_if_unlocked(path: str, remove: Callable[[], None]) -> bool | None:
    """Open ``path`` and try its lock: True (and ``remove()`` done) when free, False when held by a live owner,
    None when the file system takes no locks (or ``path`` cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    state = try_lock(fd)
    if state is True and not oscompat.windows_semantics():
        try:  # POSIX: remove while holding the lock, so that no new owner can take it in between
            remove()
        finally:
            os.close(fd)
        return True
    os.close(fd)  # Windows removes no open file: close first
    if state is True:
        remove()
    return state


def _dead(record: dict | None, mtime: float) -> bool:
    """Whether the owner in ``record`` is gone: not running, or unknown (no record, another host) and the
    temporary untouched for :data:`UNKNOWN_OWNER_AGE_S`."""
    alive = owner_alive(record) if record is not None else None
    return alive is False or (alive is None and time.time() - mtime > UNKNOWN_OWNER_AGE_S)


def _sweep_file(entry: os.DirEntry) -> bool:
    """Remove a temporary file of a dead owner; True when removed."""
    mtime = entry.stat(follow_symlinks=False).st_mtime
    if mtime >= PROCESS_START:  # made while this process runs: never a killed earlier run's
        return False
    marker = entry.path + MARKER_SUFFIX

    def remove() -> None:
        os.remove(entry.path)
        with contextlib.suppress(OSError):
            os.remove(marker)

    if os.path.exists(marker):  # its owner had no locks: the marker tells
        if _dead(_read_record(marker), mtime):
            remove()
            return True
        return False
    state = _remove_if_unlocked(entry.path, remove)
    if state is None and _dead(None, mtime):
        remove()
        return True
    return bool(state)


def _sweep_marker(entry: os.DirEntry) -> bool:
    """Remove an owner marker left without its temporary file (killed between the two removals)."""
    if os.path.exists(entry.path[:-len(MARKER_SUFFIX)]) or entry.stat().st_mtime >= PROCESS_START:
        return False
    os.remove(entry.path)
    return True


def _sweep_folder(entry: os.DirEntry) -> bool:
    """Remove a work folder of a dead owner; True when removed."""
    owner = os.path.join(entry.path, OWNER_NAME)

    def remove() -> None:
        shutil.rmtree(entry.path)

    if not os.path.exists(owner):  # an earlier version's folder, or one being created this instant
        mtime = entry.stat(follow_symlinks=False).st_mtime
        if mtime < PROCESS_START and time.time() - mtime > OWNERLESS_FOLDER_AGE_S:
            remove()
            return True
        return False
    record = _read_record(owner)
    if record is not None and record.get("pid") == os.getpid() and owner_alive(record):
        return False  # this process's own folder (locks emulated per process, e.g. on NFS, would not say so)
    state = _remove_if_unlocked(owner, remove)
    if state is None and _dead(record, os.stat(owner).st_mtime):  # no locks: the record tells
        remove()
        return True
    return bool(state)


def sweep_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove this tool's temporaries in ``folder`` (files and work folders) left by killed runs.

    Never those of a live run (its lock, or its owner marker, says so). Returns the names removed (and logs them).
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if is_temporary_name(entry.name) and entry.is_file(follow_symlinks=False):
                done = _sweep_file(entry)
            elif is_work_folder_name(entry.name) and entry.is_dir(follow_symlinks=False):
                done = _sweep_folder(entry)
            elif entry.name.endswith(TEMP_SUFFIX + MARKER_SUFFIX) and entry.name.startswith("."):
                done = _sweep_marker(entry)
            else:
                continue
        except OSError:
            continue  # vanished, or refused (Windows: still open by its owner)
        if done:
            removed.append(entry.name)
    if removed:
        log.warning("Removed %d stale temporary file(s) or folder(s) of an interrupted earlier run from '%s': %s",
                    len(removed), folder, ", ".join(removed))
    return removed


__all__ = ["OWNER_NAME", "PROCESS_START", "TEMP_SUFFIX", "WORK_FOLDER_PREFIXES", "OwnedFile", "WorkFolder",
           "is_temporary_name", "is_work_folder_name", "owner_alive", "owner_record", "sweep_stale_temporaries",
           "try_lock"]

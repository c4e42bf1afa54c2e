"""What differs between Windows, macOS and Linux for this package: file-replace semantics, path limits, signals and
whether another process is still alive. Platform modules (msvcrt, ctypes.windll, /proc) are used lazily, inside the
functions that need them, so that importing the package works on every platform.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

# Windows error codes of a replace refused because another handle has the file open (sharing / lock violation),
# or the target is a read-only or in-use file (access denied)
_SHARING_WINERRORS = {5, 32, 33}
_WINDOWS_MAX_PATH = 259  # MAX_PATH (260) minus the terminating NUL


def windows_semantics() -> bool:
    """Whether files follow Windows rules here: an open file cannot be replaced, renamed or deleted."""
    return os.name == "nt"


def is_refused_replace(exc: BaseException) -> bool:
    """Whether ``exc`` (from os.replace / os.remove) means Windows refused it because the file is open elsewhere."""
    if not windows_semantics() or not isinstance(exc, OSError):
        return False
    return isinstance(exc, PermissionError) or getattr(exc, "winerror", None) in _SHARING_WINERRORS


def long_paths_enabled() -> bool:
    """Whether Windows accepts paths longer than MAX_PATH here (the LongPathsEnabled policy); True elsewhere."""
    if not windows_semantics():
        return True
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except (ImportError, OSError):
        return False


def max_path_length() -> int | None:
    """The longest file path this platform takes without extra set-up (Windows without long paths), else None."""
    return None if long_paths_enabled() else _WINDOWS_MAX_PATH


def stop_signals() -> list[signal.Signals]:
    """The signals that stop a run cleanly on this platform: SIGINT, and SIGTERM where the platform delivers it."""
    sigs = [signal.SIGINT]
    term = getattr(signal, "SIGTERM", None)
    if term is not None and not windows_semantics():  # Windows defines SIGTERM but never delivers it
        sigs.append(term)
    return sigs


def hostname() -> str:
    """This machine's name, as recorded in the owner marker of a temporary."""
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (never signals it: os.kill(pid, 0) would end it on Windows)."""
    if pid <= 0:
        return False
    if windows_semantics():
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def process_start_token(pid: int) -> str | None:
    """An opaque token of when process ``pid`` started (tells a reused pid from its first owner); None if unknown.

    Linux: the start time in clock ticks since boot (/proc/<pid>/stat); Windows: the creation time
    (GetProcessTimes); elsewhere None, and only the pid is compared.
    """
    if sys.platform.startswith("linux"):
        try:
            data = Path(f"/proc/{int(pid)}/stat").read_bytes()
            return data.rsplit(b")", 1)[1].split()[19].decode("ascii")  # field 22 (starttime), fields from 3 on
        except (OSError, IndexError, UnicodeDecodeError):
            return None
    if windows_semantics():
        return _windows_start_token(pid)
    return None


def _windows_open_process(pid: int):
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    return kernel32, kernel32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION


def _windows_pid_alive(pid: int) -> bool:
    try:
        import ctypes

        kernel32, handle = _windows_open_process(pid)
        if not handle:
            return ctypes.GetLastError() == 5  # access denied: the process exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    except (ImportError, AttributeError, OSError):
        return True  # cannot tell: treat as alive (never remove a live run's temporaries)


def _windows_start_token(pid: int) -> str | None:
    try:
        import ctypes

        kernel32, handle = _windows_open_process(pid)
        if not handle:
            return None
        try:
            times = [ctypes.c_ulonglong() for _ in range(4)]
            if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
                return None
            return str(times[0].value)
        finally:
            kernel32.CloseHandle(handle)
    except (ImportError, AttributeError, OSError):
        return None


__all__ = ["hostname", "is_refused_replace", "long_paths_enabled", "max_path_length", "pid_alive",
           "process_start_token", "stop_signals", "windows_semantics"]

"""Fault injection for the black-box fault suite: run the CLI and qgis_process as a user would, break the
environment (full or read-only disk, killed runs, blocked imports) and check that a failure left nothing behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
ZOO = ROOT / "models"
# names a failed run must never leave: this tool's temporaries (any version) and GDAL side files
LEFTOVER = re.compile(r"\.tmp|csakd-tmp|csakd-write-test|\.aux\.xml$")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child run: this checkout first on PYTHONPATH, headless Qt."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra or {})
    return env


def cli_command(*args: object) -> list[str]:
    """argv of ``csakd ARGS`` run by this test interpreter (the venv Python)."""
    return [sys.executable, "-m", "csakd_qgis.cli", *(str(a) for a in args)]


def run_cli(*args: object, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``csakd ARGS``; returns the completed process (text output)."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, env=child_env(env), timeout=timeout,
                          cwd=str(ROOT))


def qgis_command(alg: str, params: dict[str, object]) -> list[str]:
    """argv of ``qgis_process run ALG -- K=V ...`` through the project's wrapper."""
    return [str(QGIS_PROCESS), "run", alg, "--", *(f"{k}={v}" for k, v in params.items())]


def run_qgis(alg: str, params: dict[str, object], profile: Path, env: dict[str, str] | None = None,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """Run one Processing algorithm headless with an isolated profile."""
    return subprocess.run(qgis_command(alg, params), capture_output=True, text=True, timeout=timeout,
                          env=child_env({"CSAKD_QGIS_PROFILE": str(profile), **(env or {})}), cwd=str(ROOT))


def sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(*folders: Path) -> dict[Path, str]:
    """{path: sha256} of every file in ``folders`` (inputs must come out of a run byte-identical)."""
    return {p: sha256(p) for d in folders for p in sorted(Path(d).iterdir()) if p.is_file()}


QGIS_NOISE = ("QStandardPaths:", "qt.", "libEGL", "MESA", "<string>:1: DeprecationWarning: setapi()",
              "ERROR:\tAn error was encountered while checking parameter values")  # qgis_process's own framing
# QGIS itself computing layer statistics of an all-nodata raster while it resolves the parameter, before the
# plugin runs: not the plugin's output
QGIS_STATS = re.compile(r"^ERROR 1: .*Failed to compute statistics, no valid pixels")


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The distinct error lines on stderr. qgis_process 3.22 prints an algorithm's error three times (once with
    an 'ERROR:' prefix), a refused parameter under a header line of its own, and a deprecation notice at start-up;
    those count as one line."""
    out: list[str] = []
    for ln in proc.stderr.splitlines():
        text = ln.removeprefix("ERROR:").strip()
        if text and not ln.startswith(QGIS_NOISE) and not QGIS_STATS.match(ln) and text not in out:
            out.append(text)
    return out


def assert_failed_cleanly(proc: subprocess.CompletedProcess, *, expect: str | None = None,
                          absent: tuple[Path, ...] = (), kept: dict[Path, bytes] | None = None,
                          folders: tuple[Path, ...] = (), inputs: dict[Path, str] | None = None,
                          rc: int = 1) -> str:
    """The run failed with exit code ``rc`` and one error line (no traceback), left no file at ``absent``,
    kept the ``kept`` files byte-identical, left no temporary in ``folders`` and did not touch ``inputs``.

    Returns the error line. ``expect``: a regular expression the line must contain (case-insensitive).
    """
    text = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == rc, text
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, text
    lines = error_lines(proc)
    assert len(lines) == 1, text
    if expect:
        assert re.search(expect, lines[0], re.I), text
    for p in absent:
        assert not Path(p).exists(), f"{p} was left behind\n{text}"
    for p, content in (kept or {}).items():
        assert Path(p).read_bytes() == content, f"{p} was changed\n{text}"
    for d in folders:
        left = sorted(n for n in os.listdir(d) if LEFTOVER.search(n))
        assert not left, f"temporaries left in {d}: {left}\n{text}"
    for p, digest in (inputs or {}).items():
        assert p.exists() and sha256(p) == digest, f"input {p} was modified\n{text}"
    return lines[0]


def put_old(*paths: Path) -> dict[Path, bytes]:
    """Write a distinct 'previous result' into each path (a failed run must keep it byte-identical)."""
    out = {}
    for p in paths:
        content = f"previous result {p.name}\n".encode()
        Path(p).write_bytes(content)
        out[Path(p)] = content
    return out


def fill_up(folder: Path) -> None:
    """Fill the file system of ``folder`` until writes fail with ENOSPC (down to the last block)."""
    fd = os.open(Path(folder) / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@contextlib.contextmanager
def tmpfs(size: str = "4m", readonly: bool = False) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (read-only with ``readonly``); skips when mounting is not permitted."""
    d = Path(tempfile.mkdtemp(prefix="csakd-faults-mnt-"))
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True, text=True)
    if res.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a small tmpfs to simulate a full or read-only disk (needs root or "
                    f"CAP_SYS_ADMIN): {res.stderr.strip() or res.returncode}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
        with contextlib.suppress(OSError):
            d.rmdir()


def import_blocker(folder: Path, *modules: str) -> dict[str, str]:
    """Env making ``import MODULE`` fail with ModuleNotFoundError for each of ``modules`` in every Python started with
    it (a sitecustomize on PYTHONPATH: works for the CLI and for QGIS's embedded Python alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import sys\n\n\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {sorted(modules)!r}:\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "        return None\n\n\n"
        "sys.meta_path.insert(0, _Block())\n")
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def start_and_kill(argv: list[str], env: dict[str, str], watch: Path, sig: int, timeout: float = 120.0,
                   before_signal: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Start ``argv``, wait until it writes a temporary in ``watch``, call ``before_signal()``, send ``sig``."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    t0 = time.monotonic()
    try:
        while not any(LEFTOVER.search(n) and "write-test" not in n for n in os.listdir(watch)):
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the run ended (rc={proc.returncode}) before it wrote a temporary file:\n{err[-2000:]}")
            if time.monotonic() - t0 > timeout:
                proc.kill()
                pytest.fail("no temporary file appeared")
            time.sleep(0.05)
        time.sleep(0.3)
        if before_signal is not None:
            before_signal()
            if proc.poll() is not None:
                pytest.fail("the run ended before the signal: make its input larger")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


__all__ = ["LEFTOVER", "QGIS_PROCESS", "ROOT", "ZOO", "assert_failed_cleanly", "child_env", "cli_command",
           "error_lines", "fill_up", "import_blocker", "put_old", "qgis_command", "run_cli", "run_qgis", "sha256",
           "signal", "snapshot", "start_and_kill", "tmpfs"]

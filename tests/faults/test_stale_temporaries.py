"""Issue 32 item 3: one sweep for every kind of temporary the package makes (raster temporaries, the hidden product
work folder, the distributed block folder, the 20 m sharpening folder, the ONNX export folder). A run that was
SIGKILLed leaves them; the next run into the folder removes each kind and says so, and never touches those of a
run still alive. The owners here are real child processes holding the package's own temporaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults import ROOT, child_env, run_cli

from csakd_qgis import temporaries
from csakd_qgis.temporaries import OWNER_NAME, WorkFolder, owner_record, sweep_stale_temporaries

OWNER = r"""
import json, sys, time
from pathlib import Path
from csakd_qgis.raster.io import AtomicOutput
from csakd_qgis.temporaries import WorkFolder
folder = Path(sys.argv[1])
made = [AtomicOutput(folder / "out.tif", "output raster").tmp.name]
for prefix in (".out.tif.products.", ".out.blocks.", ".csakd-msi20-", ".csakd-onnx."):
    w = WorkFolder(prefix, folder)
    (Path(w.name) / "part.tif").write_bytes(b"x" * 1000)
    made.append(Path(w.name).name)
print(json.dumps(made), flush=True)
time.sleep(600)
"""

KINDS = ("csakd-tmp", ".products.", ".blocks.", ".csakd-msi20-", ".csakd-onnx.")


def start_owner(folder: Path) -> tuple[subprocess.Popen, list[str]]:
    """A child process that makes one temporary of every kind in ``folder`` and then stays alive."""
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env=child_env(), cwd=str(ROOT))
    made = json.loads(proc.stdout.readline())
    assert sorted(made) == sorted(os.listdir(folder)) and all(any(k in m for m in made) for k in KINDS)
    time.sleep(0.05)  # the next run starts strictly later than these were made
    return proc, made


def fuse_into(pair: dict, folder: Path, name: str = "next.tif") -> subprocess.CompletedProcess:
    return run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", "glp", "--no-progress",
                   "--out", folder / name)


def test_sigkilled_runs_temporaries_of_every_kind_removed_by_next_run(pair, tmp_path):
    proc, made = start_owner(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    nxt = fuse_into(pair, tmp_path)
    assert nxt.returncode == 0, nxt.stderr
    assert "stale temporary" in nxt.stderr and all(m in nxt.stderr for m in made)
    assert sorted(os.listdir(tmp_path)) == ["next.tif"]


def test_live_runs_temporaries_are_kept_then_swept_once_it_is_killed(pair, tmp_path):
    proc, made = start_owner(tmp_path)
    try:
        res = fuse_into(pair, tmp_path, "while_alive.tif")
        assert res.returncode == 0, res.stderr
        assert "stale temporary" not in res.stderr
        assert set(made) <= set(os.listdir(tmp_path))
        assert all((tmp_path / m / "part.tif").is_file() for m in made if "csakd-tmp" not in m)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    res = fuse_into(pair, tmp_path, "after.tif")
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["after.tif", "while_alive.tif"]


def _old(*paths: Path, age: float = 2 * 86400) -> None:
    t = time.time() - age
    for p in paths:
        os.utime(p, (t, t))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def no_locks(monkeypatch):
    """A file system that takes no locks (some network shares): the owner markers decide."""
    monkeypatch.setattr(temporaries, "try_lock", lambda fd: None)


def test_without_locks_owner_markers_keep_live_and_remove_dead_owners(tmp_path, no_locks):
    live = tmp_path / ".a.tif.abcdefgh.csakd-tmp"
    dead = tmp_path / ".b.tif.abcdefgh.csakd-tmp"
    far = tmp_path / ".c.tif.abcdefgh.csakd-tmp"
    recent_far = tmp_path / ".d.tif.abcdefgh.csakd-tmp"
    for p, rec in ((live, owner_record()), (dead, {**owner_record(), "pid": _dead_pid()}),
                   (far, {**owner_record(), "host": "another-host"}),
                   (recent_far, {**owner_record(), "host": "another-host"})):
        p.write_bytes(b"x")
        p.with_name(p.name + ".owner").write_text(json.dumps(rec), encoding="utf-8")
    _old(live, dead, far)
    _old(recent_far, age=3600.0)
    removed = sweep_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead.name, far.name])  # another host: only after a day untouched
    assert live.exists() and recent_far.exists() and not dead.exists() and not far.exists()
    assert not (tmp_path / (dead.name + ".owner")).exists()


def test_without_locks_work_folders_follow_their_owner_record(tmp_path, no_locks):
    mine = WorkFolder(".x.blocks.", tmp_path)
    gone = WorkFolder(".y.tif.products.", tmp_path)
    gone._owner.release()
    (Path(gone.name) / OWNER_NAME).write_text(json.dumps({**owner_record(), "pid": _dead_pid()}), encoding="utf-8")
    gone._owner = None
    try:
        assert sweep_stale_temporaries(tmp_path) == [Path(gone.name).name]
        assert Path(mine.name).is_dir()
    finally:
        mine.cleanup()
    assert os.listdir(tmp_path) == []


def test_locked_owner_file_keeps_a_folder_of_this_process_and_a_pid_reuse_is_dead(tmp_path):
    with WorkFolder(".csakd-msi20-", tmp_path) as w:
        assert sweep_stale_temporaries(tmp_path) == []  # its owner file is locked by this process
        assert Path(w).is_dir()
    assert temporaries.owner_alive(owner_record()) is True
    if temporaries.oscompat.process_start_token(os.getppid()) is not None:  # a live pid that started otherwise
        assert temporaries.owner_alive({**owner_record(), "pid": os.getppid(), "start": "another start"}) is False


def test_ownerless_folders_of_earlier_versions_go_only_when_old(tmp_path):
    old = tmp_path / ".o.blocks.abcdefgh"
    fresh = tmp_path / ".f.blocks.abcdefgh"
    for d in (old, fresh):
        d.mkdir()
        (d / "block_0000.tif").write_bytes(b"x")
    _old(old, age=3600.0)
    assert sweep_stale_temporaries(tmp_path) == [old.name]
    assert fresh.is_dir() and not old.exists()


def test_windows_locks_use_msvcrt_far_beyond_the_data(tmp_path, monkeypatch):
    """The Windows branch: msvcrt.locking on one byte at 2**40 (GDAL's own writes never meet it), the file
    position restored; a lock held elsewhere (EACCES) reads as 'held', other errors as 'no locks'."""
    import errno
    import types

    calls = []
    state = {"err": None}

    def locking(fd, mode, n):
        calls.append((os.lseek(fd, 0, os.SEEK_CUR), mode, n))
        if state["err"] is not None:
            raise OSError(state["err"], os.strerror(state["err"]))

    fake = types.SimpleNamespace(LK_NBLCK=2, locking=locking)
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(temporaries.oscompat, "windows_semantics", lambda: True)
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR)
    try:
        os.lseek(fd, 3, os.SEEK_SET)
        assert temporaries.try_lock(fd) is True and calls[-1] == (2 ** 40, 2, 1) and os.lseek(fd, 0, 1) == 3
        state["err"] = errno.EACCES
        assert temporaries.try_lock(fd) is False
        state["err"] = errno.EINVAL
        assert temporaries.try_lock(fd) is None
    finally:
        os.close(fd)

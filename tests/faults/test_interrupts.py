"""Class 5: a run stopped by SIGTERM removes its temporary and writes nothing; a SIGKILLed run's temporary is
removed by the next run into the same folder (which says so), while a running writer's temporary is spared."""

from __future__ import annotations

import os
import signal

import pytest
from _faults import (
    LEFTOVER,
    assert_failed_cleanly,
    child_env,
    cli_command,
    qgis_command,
    run_cli,
    start_and_kill,
)


def _fuse_big(big: dict, out) -> list[str]:
    return cli_command("fuse", "--hsi", big["hsi"], "--msi", big["msi"], "--model", "glp", "--tile", 128,
                       "--no-progress", "--out", out / "big.tif")


def test_cli_sigterm_cleans_up(big_pair, tmp_path):
    proc = start_and_kill(_fuse_big(big_pair, tmp_path), child_env(), tmp_path, signal.SIGTERM)
    assert_failed_cleanly(proc, rc=143, expect=r"terminated", absent=(tmp_path / "big.tif",), folders=(tmp_path,))


def test_cli_sigkill_leftover_removed_by_next_run(big_pair, pair, tmp_path):
    proc = start_and_kill(_fuse_big(big_pair, tmp_path), child_env(), tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    stale = [n for n in os.listdir(tmp_path) if LEFTOVER.search(n)]
    assert stale, "a killed run leaves its temporary (nothing can remove it then)"
    nxt = run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", "glp", "--no-progress",
                  "--out", tmp_path / "next.tif")
    assert nxt.returncode == 0, nxt.stderr
    assert "stale temporary" in nxt.stderr and stale[0] in nxt.stderr
    assert sorted(os.listdir(tmp_path)) == ["next.tif"]


@pytest.mark.qgis
def test_qgis_sigterm_cancels_and_spares_running_writer(big_pair, pair, tmp_path, profile):
    """qgis_process stopped by SIGTERM (Ctrl-C alike) cancels cleanly; a concurrent run into the same folder does
    not remove the running writer's (locked) temporary."""
    argv = qgis_command("csakd:fuse_classical", {"HSI": big_pair["hsi"], "MSI": big_pair["msi"], "METHOD": "glp",
                                                 "TILE": 128, "OUTPUT": tmp_path / "big.tif"})
    seen = {}

    def concurrent_run() -> None:
        running = [n for n in os.listdir(tmp_path) if LEFTOVER.search(n)]
        res = run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", "glp", "--no-progress",
                      "--out", tmp_path / "small.tif")
        seen.update(rc=res.returncode, running=running, after=os.listdir(tmp_path))

    proc = start_and_kill(argv, child_env({"CSAKD_QGIS_PROFILE": str(profile)}), tmp_path, signal.SIGTERM,
                          before_signal=concurrent_run)
    assert seen["rc"] == 0 and seen["running"] and set(seen["running"]) <= set(seen["after"])
    assert_failed_cleanly(proc, expect=r"cancel", absent=(tmp_path / "big.tif",), folders=(tmp_path,))

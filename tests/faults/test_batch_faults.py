"""Round 2, class 10: ``csakd batch`` resumes only outputs made with the row's current options, writes the summary
of what finished when it is stopped (SIGTERM), and records a pair whose input GDAL cannot read as one clean line,
without retrying it."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
import rasterio
from _faults import assert_failed_cleanly, child_env, cli_command, qgis_command, run_cli, sha256


def _table(path, rows, model=None) -> None:
    head = "hsi,msi,out" + (",model" if model else "")
    path.write_text(head + "\n" + "".join(f"{h},{m},{o}" + (f",{model}" if model else "") + "\n" for h, m, o in rows))


def _summary(table) -> dict:
    return json.loads(table.with_name(f"{table.stem}_summary.json").read_text())


def test_cli_batch_resume_redoes_a_row_whose_options_changed(pair, tmp_path):
    table = tmp_path / "jobs.csv"
    out = tmp_path / "o.tif"
    _table(table, [(pair["hsi"], pair["msi"], out)], model="bicubic")
    assert run_cli("batch", table, "--no-progress").returncode == 0
    first = sha256(out)
    _table(table, [(pair["hsi"], pair["msi"], out)], model="glp")  # the model changed: not complete any more
    proc = run_cli("batch", table, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in _summary(table)["pairs"]] == ["done"] and sha256(out) != first
    with rasterio.open(out) as ds:
        made = json.loads(ds.tags()["CSAKD_BATCH"])
    assert made["options"]["model"] == "glp"
    second = sha256(out)
    assert run_cli("batch", table, "--no-progress").returncode == 0  # unchanged: skipped, output kept
    assert [r["status"] for r in _summary(table)["pairs"]] == ["skipped"] and sha256(out) == second


def test_cli_batch_sigterm_writes_the_summary_of_what_finished(pair, big_pair, tmp_path):
    """Rows 1-2 small, row 3 large: SIGTERM while row 3 runs -> exit 143, one line saying 2 of 3 finished, the
    summary lists them, row 3 'not run' and absent, no temporary left."""
    table = tmp_path / "jobs.csv"
    outs = [tmp_path / f"o{k}.tif" for k in (1, 2, 3)]
    _table(table, [(pair["hsi"], pair["msi"], outs[0]), (pair["hsi"], pair["msi"], outs[1]),
                   (big_pair["hsi"], big_pair["msi"], outs[2])], model="glp")
    proc = subprocess.Popen(cli_command("batch", table, "--no-progress", "--tile", 128), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())
    t0 = time.monotonic()
    try:
        while not (outs[1].exists() and any(".o3.tif." in p.name for p in tmp_path.iterdir())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 120, "row 3 never started"
            time.sleep(0.05)
        time.sleep(0.3)
        assert proc.poll() is None, "the batch ended before the signal: make row 3 larger"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_failed_cleanly(done, rc=143, expect=r"terminated: 2 of 3 pairs finished", absent=(outs[2],),
                                 folders=(tmp_path,))
    assert "no output was written" not in line and "jobs_summary.json" in line
    assert [r["status"] for r in _summary(table)["pairs"]] == ["done", "done", "not run"]
    assert outs[0].is_file() and outs[1].is_file()
    assert table.with_name("jobs_summary.csv").is_file()


def _corrupt_first_tile(src, dst) -> None:
    """A copy of ``src`` whose first compressed tile is garbage: the header reads, the pixels do not."""
    from osgeo import gdal

    data = bytearray(src.read_bytes())
    ds = gdal.Open(str(src))
    off = int(ds.GetRasterBand(1).GetMetadataItem("BLOCK_OFFSET_0_0", "TIFF"))
    size = int(ds.GetRasterBand(1).GetMetadataItem("BLOCK_SIZE_0_0", "TIFF"))
    ds = None
    data[off:off + size] = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))


def test_cli_batch_unreadable_pixels_are_a_user_error_not_retried(pair, tmp_path):
    bad = tmp_path / "bad_hsi.tif"
    _corrupt_first_tile(pair["hsi"], bad)
    table = tmp_path / "jobs.csv"
    _table(table, [(bad, pair["msi"], tmp_path / "o1.tif"), (pair["hsi"], pair["msi"], tmp_path / "o2.tif")],
           model="glp")
    proc = run_cli("batch", table, "--no-progress", "--retries", 2)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    rows = _summary(table)["pairs"]
    assert [r["status"] for r in rows] == ["failed", "done"]
    error = rows[0]["error"]
    assert "\n" not in error and error.startswith("GDAL failed on a raster") and "RasterioIOError" not in error
    log = open(rows[0]["log"]).read()
    assert log.count("pair 1 on ") == 1  # one attempt: a bad input is not retried
    assert not (tmp_path / "o1.tif").exists()


@pytest.mark.qgis
def test_qgis_batch_sigterm_writes_the_summary_of_what_finished(pair, big_pair, tmp_path, profile):
    """csakd:fuse_batch stopped by SIGTERM while row 3 (large) runs: the pair running finishes, row 4 is not
    started, the summary lists what finished and the line says so."""
    table = tmp_path / "jobs.csv"
    outs = [tmp_path / f"o{k}.tif" for k in (1, 2, 3, 4)]
    _table(table, [(pair["hsi"], pair["msi"], outs[0]), (pair["hsi"], pair["msi"], outs[1]),
                   (big_pair["hsi"], big_pair["msi"], outs[2]), (pair["hsi"], pair["msi"], outs[3])], model="glp")
    argv = qgis_command("csakd:fuse_batch", {"JOBS": table, "SUMMARY": tmp_path / "s.json"})
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env({"CSAKD_QGIS_PROFILE": str(profile)}))
    t0 = time.monotonic()
    try:
        while not (outs[1].exists() and any(".o3.tif." in p.name for p in tmp_path.iterdir())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 120, "row 3 never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_failed_cleanly(done, expect=r"Cancelled: 3 of 4 pairs finished", absent=(outs[3],),
                                 folders=(tmp_path,))
    assert "No output was written" not in line
    rows = json.loads((tmp_path / "s.json").read_text())["pairs"]
    assert [r["status"] for r in rows] == ["done", "done", "done", "not run"]

"""csakd batch: a jobs table of real EnMAP-derived pairs, one task each, on a 2-worker LocalCluster and serially."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from _helpers_dist import cluster_fixture, write_pair, write_reference  # noqa: F401 - the cluster fixture

from csakd_qgis.distributed.batch import read_jobs, run_batch
from csakd_qgis.distributed.cluster import SerialExecutor
from csakd_qgis.errors import CsakdError

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """4 pairs (64 x 96 px HR, 218 bands, scale 4) in a CSV; pair 3's MSI is not a raster."""
    d = tmp_path_factory.mktemp("batch")
    rows = []
    for k in range(4):
        p = write_pair(d, shift=(0.1 * k, 0.0), name=f"p{k}")
        rows.append({"hsi": p["hsi"].name, "msi": p["msi"].name, "out": f"out/fused_{k}.tif", "model": "glp"})
        if k == 0:
            rows[0]["reference"] = write_reference(d / "p0_ref.tif", p).name
    (d / "p2_msi.tif").write_text("not a raster")
    rows[1]["model"] = "gsa"
    (d / "out").mkdir()
    with open(d / "jobs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["hsi", "msi", "out", "model", "reference"])
        w.writeheader()
        w.writerows(rows)
    return d / "jobs.csv"


def test_batch_on_two_workers_broken_pair_fails_alone_and_resume_skips(table, cluster):
    res = run_batch(table, ex=cluster)
    st = {r.row: r for r in res.records}
    assert [st[k].status for k in (1, 2, 3, 4)] == ["done", "done", "failed", "done"], res.messages
    assert "not a readable raster" in st[3].error and "p2_msi.tif" in st[3].error
    assert not (table.parent / "out" / "fused_2.tif").exists()
    for k in (1, 2, 4):
        assert st[k].device == "cpu" and st[k].seconds > 0 and Path(st[k].out).is_file()
        assert "fused" in Path(st[k].log).read_text()  # the pair's own log: the fusion's messages
    assert st[1].metrics["psnr"] > 30 and set(st[1].metrics) == {"psnr", "sam", "ergas", "rmse", "ssim"}
    assert not st[2].metrics
    summary = json.loads(Path(res.summary_json).read_text())
    assert (summary["done"], summary["failed"], summary["skipped"]) == (3, 1, 0)
    assert summary["where"].startswith("LocalCluster of 2")
    with open(res.summary_csv) as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["status"] for r in csv_rows] == ["done", "done", "failed", "done"] and csv_rows[0]["psnr"]
    assert any("row 3" in m and "not a readable raster" in m for m in res.messages)

    mtimes = {k: os.path.getmtime(st[k].out) for k in (1, 2, 4)}
    again = run_batch(table, ex=cluster)
    st2 = {r.row: r for r in again.records}
    assert [st2[k].status for k in (1, 2, 3, 4)] == ["skipped", "skipped", "failed", "skipped"]
    assert all(os.path.getmtime(st2[k].out) == mtimes[k] for k in (1, 2, 4))


def test_transient_errors_are_retried_user_errors_are_not(table, tmp_path, monkeypatch):
    import csakd_qgis.fusion.fuse as fuse_module

    real, calls = fuse_module.fuse, []

    def flaky(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(fuse_module, "fuse", flaky)
    jobs = [j for j in read_jobs(table) if j.row in (2, 3)]
    jobs = [type(j)(j.row, j.hsi, j.msi, str(tmp_path / f"o{j.row}.tif"), j.options) for j in jobs]
    res = run_batch(jobs, ex=SerialExecutor(), retries=1, summary=tmp_path / "s.json")
    assert [r.status for r in res.records] == ["done", "failed"] and len(calls) == 3  # retried once, then not
    calls.clear()
    res = run_batch(jobs[:1], ex=SerialExecutor(), retries=0, resume=False, summary=tmp_path / "s.json")
    assert res.records[0].status == "failed" and res.records[0].error == "OSError: [Errno 28] No space left on device"


def test_cli_batch_on_a_scheduler(table, tmp_path, capsys, cluster):
    from csakd_qgis.cli import main

    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"hsi": str(table.parent / "p0_hsi.tif"), "msi": str(table.parent / "p0_msi.tif"),
                                          "out": "a.tif", "tile": 64}]}))
    address = cluster.client.scheduler.address
    assert main(["batch", str(jobs), "--no-progress", "--scheduler", address]) == 0
    out = capsys.readouterr().out
    assert "1 pairs: 1 done, 0 failed" in out and f"scheduler {address}" in out and (tmp_path / "a.tif").is_file()
    assert (tmp_path / "jobs_summary.csv").is_file() and (tmp_path / "jobs_summary_logs").is_dir()


@pytest.mark.parametrize("text, expect", [
    ("hsi,msi\na.tif,b.tif\n", "no out"),
    ("hsi,msi,out,colour\na,b,c.tif,red\n", "unknown column(s) 'colour'"),
    ("hsi,msi,out\na,b,c.tif\nd,e,c.tif\n", "rows 1 and 2 write the same output"),
    ("hsi,msi,out\na,b,c.tif\nc.tif,e,f.tif\n", "output '"),
    ("hsi,msi,out,tile\na,b,c.tif,big\n", "row 1: tile must be an integer"),
    ("hsi,msi,out,shift_correct\na,b,c.tif,maybe\n", "must be true or false"),
    ("# only a comment\n", "has no rows"),
])
def test_bad_jobs_tables_name_the_row_and_column(tmp_path, text, expect):
    (tmp_path / "jobs.csv").write_text(text)
    with pytest.raises(CsakdError) as err:
        read_jobs(tmp_path / "jobs.csv")
    assert expect in str(err.value)


def test_jobs_table_paths_options_and_json(tmp_path):
    (tmp_path / "jobs.csv").write_text("hsi, msi, out, model, tile, shift_correct\n"
                                       "h.tif, m.tif, o/x.tif, gsa, 128, yes\nh2.tif, m2.tif, y.tif,, ,\n")
    a, b = read_jobs(tmp_path / "jobs.csv")
    assert a.hsi == str(tmp_path / "h.tif") and a.out == str(tmp_path / "o" / "x.tif")
    assert a.options == {"model": "gsa", "tile": 128, "shift_correct": True} and b.options == {}
    (tmp_path / "jobs.json").write_text(json.dumps([{"hsi": "h.tif", "msi": "m.tif", "out": "z.tif", "batch": 2}]))
    (c,) = read_jobs(tmp_path / "jobs.json")
    assert c.options == {"batch": 2} and c.row == 1
    (tmp_path / "jobs.txt").write_text("hsi,msi,out\n")
    with pytest.raises(CsakdError, match="must be a .csv or .json"):
        read_jobs(tmp_path / "jobs.txt")


def test_without_dask_one_clear_line(monkeypatch):
    import sys

    from csakd_qgis.distributed.cluster import executor

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(CsakdError, match=r'needs Dask, which is not installed: python -m pip install "dask\[distributed\]'):
        with executor(workers=2):
            pass
    with executor(workers=1) as ex:  # nothing asked: no Dask needed
        assert isinstance(ex, SerialExecutor)


def test_two_folders_matched_by_footprint_then_date(tmp_path, capsys):
    import shutil

    from _helpers_raster import enmap_reference
    from affine import Affine

    from csakd_qgis.cli import main
    from csakd_qgis.distributed.batch import match_folders, name_date

    hsi_dir, msi_dir, out_dir = (tmp_path / n for n in ("hsi", "msi", "out"))
    for d in (hsi_dir, msi_dir, out_dir):
        d.mkdir()
    here = write_pair(tmp_path, name="here")
    far_ref = dict(enmap_reference(), transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 5809965.0))
    far = write_pair(tmp_path, ref=far_ref, name="far")
    shutil.copy(here["hsi"], hsi_dir / "ENMAP_20240601_hsi.tif")
    shutil.copy(far["hsi"], hsi_dir / "ENMAP_20240601_far.tif")
    for day in ("2024-05-20", "2024-06-03", "20240630"):
        shutil.copy(here["msi"], msi_dir / f"S2A_{day}.tif")
    assert name_date("S2A_2024-06-03.tif").isoformat() == "2024-06-03" and name_date("x_12345678.tif") is None
    jobs, notes = match_folders(hsi_dir, msi_dir, out_dir)
    assert [(j.hsi, j.msi, j.out) for j in jobs] == [(str(hsi_dir / "ENMAP_20240601_hsi.tif"),
                                                      str(msi_dir / "S2A_2024-06-03.tif"),
                                                      str(out_dir / "ENMAP_20240601_hsi_fused.tif"))]
    assert len(notes) == 1 and "ENMAP_20240601_far.tif" in notes[0] and "no MSI" in notes[0]
    args = ["batch", "--hsi-dir", str(hsi_dir), "--msi-dir", str(msi_dir), "--out-dir", str(out_dir), "--no-progress",
            "--tile", "64"]
    assert main(args) == 0
    assert (out_dir / "ENMAP_20240601_hsi_fused.tif").is_file() and (out_dir / "batch_summary.json").is_file()
    assert main(["batch", "--hsi-dir", str(hsi_dir)]) == 1
    assert "either a jobs table (JOBS) or all of --hsi-dir" in capsys.readouterr().err


def test_worker_python_inside_qgis(monkeypatch):
    import sys

    from csakd_qgis.distributed.cluster import worker_python

    assert worker_python() is None  # pytest runs under this Python (or a venv linking to it)
    for exe in ("/usr/bin/qgis_process.bin", "/root/.pyenv/shims/python3"):  # what QGIS may report
        monkeypatch.setattr(sys, "executable", exe)
        python = Path(worker_python())  # the interpreter of this Python's standard library, not the first on PATH
        assert python.is_file() and python.name == f"python{sys.version_info.major}.{sys.version_info.minor}"

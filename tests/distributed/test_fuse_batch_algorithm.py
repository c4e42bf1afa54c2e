"""csakd:fuse_batch in QGIS: a jobs table in, the fused outputs and a summary (JSON, CSV, counts) out."""

from __future__ import annotations

import json

import pytest
from _helpers_dist import write_pair

pytestmark = [pytest.mark.qgis, pytest.mark.shared_data]


def test_fuse_batch_processing_run(provider, tmp_path):
    import rasterio
    from qgis.core import QgsProcessingException

    import processing

    p = write_pair(tmp_path, name="a")
    (tmp_path / "jobs.csv").write_text("hsi,msi,out,tile\na_hsi.tif,a_msi.tif,fused_a.tif,64\n"
                                       "missing.tif,a_msi.tif,fused_b.tif,\n")
    params = {"JOBS": str(tmp_path / "jobs.csv"), "MODEL": "gsa", "SUMMARY": str(tmp_path / "summary.json")}
    res = processing.run("csakd:fuse_batch", params)
    assert (res["DONE"], res["FAILED"], res["SKIPPED"]) == (1, 1, 0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pairs"][1]["status"] == "failed" and "does not exist" in summary["pairs"][1]["error"]
    with rasterio.open(tmp_path / "fused_a.tif") as ds:
        assert json.loads(ds.tags()["CSAKD_FUSION"])["model"] == "gsa"
    assert res["SUMMARY_CSV"].endswith("summary.csv") and p["hsi"].is_file()
    res = processing.run("csakd:fuse_batch", params)  # resume: the done pair is skipped
    assert (res["DONE"], res["FAILED"], res["SKIPPED"]) == (0, 1, 1)
    with pytest.raises(QgsProcessingException, match="must end in .json"):
        processing.run("csakd:fuse_batch", {**params, "SUMMARY": str(tmp_path / "s.txt")})


def test_fuse_batch_qgis_process_on_two_workers(tmp_path):
    """qgis_process (sys.executable is the QGIS binary) starts a LocalCluster of Python worker processes."""
    from qgis_helpers import run_json

    for k in range(2):
        write_pair(tmp_path, name=f"q{k}")
    (tmp_path / "jobs.csv").write_text("hsi,msi,out\nq0_hsi.tif,q0_msi.tif,f0.tif\nq1_hsi.tif,q1_msi.tif,f1.tif\n")
    rc, data, err = run_json("csakd:fuse_batch", {"JOBS": tmp_path / "jobs.csv", "WORKERS": 2,
                                                  "SUMMARY": tmp_path / "summary.json"}, tmp_path / "profile")
    assert rc == 0, err
    assert data["results"]["DONE"] == 2 and data["results"]["FAILED"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["where"] == "LocalCluster of 2 worker processes"

"""Windows file rules on this machine: an output that cannot be replaced (QGIS or another program holds it open)
gives one line naming it and what to do, the temporary beside it is removed and the existing file kept; paths too
long for Windows are refused before any compute; paths with spaces and non-ASCII names work through the CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from csakd_qgis import oscompat
from csakd_qgis.cli import main
from csakd_qgis.errors import CsakdError


@pytest.fixture
def windows(monkeypatch):
    """Windows semantics: an open file cannot be renamed or removed (so our own handle is closed first)."""
    monkeypatch.setattr(oscompat, "windows_semantics", lambda: True)


@pytest.fixture
def locked_target(monkeypatch):
    """os.replace onto ``target`` fails as Windows fails it for a file another program has open."""
    real = os.replace
    state: dict[str, Path] = {}

    def replace(src, dst, *a, **kw):
        if "target" in state and Path(dst) == state["target"]:
            err = PermissionError(13, "The process cannot access the file because it is being used by another "
                                      "process")
            err.winerror = 32
            raise err
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    return state


def test_locked_output_gives_one_line_and_leaves_no_temporary(pair, tmp_path, windows, locked_target, capsys):
    out = tmp_path / "fused.tif"
    out.write_bytes(b"the user's earlier result")
    locked_target["target"] = out
    code = main(["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--model", "glp",
                              "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    line = err[-1]
    assert line.startswith("csakd: error: ") and str(out) in line and "cannot be replaced" in line
    assert "Remove that layer from the project" in line and "PermissionError" not in line
    assert out.read_bytes() == b"the user's earlier result"
    assert sorted(os.listdir(tmp_path)) == ["fused.tif"]  # temporary (and its owner marker) removed


def test_locked_output_through_the_writer_is_a_csakd_error(tmp_path, windows, locked_target):
    import numpy as np
    from affine import Affine

    from csakd_qgis.raster.io import write_raster

    out = tmp_path / "locked.tif"
    locked_target["target"] = out
    with pytest.raises(CsakdError, match="cannot be replaced: it is open in another program"):
        write_raster(out, np.zeros((2, 8, 8), np.float32), "EPSG:32633", Affine(10, 0, 0, 0, -10, 80))
    assert os.listdir(tmp_path) == []


def test_on_linux_a_refused_replace_stays_a_write_error(tmp_path, locked_target):
    import numpy as np
    from affine import Affine

    from csakd_qgis.raster.io import write_raster

    out = tmp_path / "r.tif"
    locked_target["target"] = out
    with pytest.raises(CsakdError, match="Writing the output raster") as exc:
        write_raster(out, np.zeros((1, 4, 4), np.float32), "EPSG:32633", Affine(10, 0, 0, 0, -10, 40))
    assert "another program" not in str(exc.value) and os.listdir(tmp_path) == []


def test_output_path_too_long_for_windows_is_refused_first(pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(oscompat, "max_path_length", lambda: 259)
    deep = tmp_path / ("d" * 120) / ("e" * 60)
    deep.mkdir(parents=True)
    out = deep / ("f" * 40 + ".tif")
    code = main(["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--model", "glp",
                              "--no-progress", "--out", str(out)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "too long for Windows" in line and "LongPathsEnabled" in line
    assert os.listdir(deep) == []


@pytest.mark.parametrize("folder", ["with spaces/and more", "Straße ünïcødé/東京 データ"])
def test_paths_with_spaces_and_non_ascii_names_through_the_cli(pair, tmp_path, folder):
    from _faults import run_cli

    d = tmp_path / folder
    d.mkdir(parents=True)
    hsi, msi = d / "EnMAP Szene ä.tif", d / "Sentinel-2 été.tif"
    shutil.copy(pair["hsi"], hsi)
    shutil.copy(pair["msi"], msi)
    out = d / "fusionné résultat 10 m.tif"
    res = run_cli("fuse", "--hsi", hsi, "--msi", msi, "--model", "glp", "--no-progress", "--out", out)
    assert res.returncode == 0, res.stderr
    import rasterio

    with rasterio.open(out) as ds:
        assert ds.count > 4 and ds.tags(1).get("wavelength")
    assert sorted(os.listdir(d)) == sorted([hsi.name, msi.name, out.name])


def test_stop_signals_only_where_the_platform_delivers_them(monkeypatch):
    import signal

    assert signal.SIGTERM in oscompat.stop_signals()
    monkeypatch.setattr(oscompat, "windows_semantics", lambda: True)
    assert oscompat.stop_signals() == [signal.SIGINT]
    monkeypatch.undo()
    assert oscompat.pid_alive(os.getpid()) and not oscompat.pid_alive(0)

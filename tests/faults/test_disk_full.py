"""Class 1: the output disk fills up. Every writer fails with one line, keeps an existing output
byte-identical (CLI cases) or leaves no file (qgis_process cases), and removes its temporaries."""

from __future__ import annotations

import os

import pytest
from _faults import assert_failed_cleanly, fill_up, put_old, run_cli, run_qgis, snapshot, tmpfs
from _helpers_raster import MSI_SPEC

FULL = r"(no space left|disk)"


def cli_case(name: str, p: dict, out) -> tuple[list, list]:
    """(argv after 'csakd', output paths) of one writing subcommand into folder ``out``."""
    hsi, msi, ref = p["hsi"], p["msi"], p["reference"]
    return {
        "fuse": (["fuse", "--hsi", hsi, "--msi", msi, "--model", "glp", "--no-progress", "--out", out / "f.tif"],
                 [out / "f.tif"]),
        "superresolve": (["superresolve", "--hsi", hsi, "--model", "bicubic", "--scale", 4, "--no-progress",
                          "--out", out / "sr.tif"], [out / "sr.tif"]),
        "coregister": (["coregister", "--hsi", hsi, "--msi", msi, "--out", out / "co.tif"], [out / "co.tif"]),
        "simulate": (["simulate", "--hsi", ref, "--scale", 4, "--sensor", MSI_SPEC, "--out-lr", out / "lr.tif",
                      "--out-msi", out / "msi.tif"], [out / "lr.tif", out / "msi.tif"]),
        "evaluate": (["evaluate", "--reference", ref, "--fused", ref, "--scale", 4, "--json", out / "m.json",
                      "--report", out / "r.html"], [out / "m.json", out / "r.html"]),
        "train": (["train", "--scenes", ref, "--sensor", MSI_SPEC, "--scale", 4, "--steps", 2, "--val-every", 1,
                   "--batch-size", 2, "--patch", 16, "--no-progress", "--device", "cpu", "--out", out / "m"],
                  [out / "m_student.json", out / "m_student.safetensors", out / "m_teacher.json",
                   out / "m_teacher.safetensors"]),
    }[name]


@pytest.mark.parametrize("name", ["fuse", "superresolve", "coregister", "simulate", "evaluate", "train"])
def test_cli_disk_full_keeps_old_output(pair, name):
    with tmpfs("4m") as out:
        argv, outputs = cli_case(name, pair, out)
        old = put_old(*outputs)
        before = snapshot(pair["dir"])
        fill_up(out)
        proc = run_cli(*argv)
        assert_failed_cleanly(proc, expect=FULL, kept=old, folders=(out, pair["dir"]), inputs=before)
        assert sorted(os.listdir(out)) == sorted(["filler.bin", *(p.name for p in outputs)])  # no log either


def qgis_case(name: str, p: dict, out) -> tuple[str, dict, list]:
    """(algorithm, parameters, output paths) of one writing Processing algorithm into folder ``out``."""
    hsi, msi, ref = p["hsi"], p["msi"], p["reference"]
    return {
        "fuse_classical": ("csakd:fuse_classical", {"HSI": hsi, "MSI": msi, "METHOD": "glp", "OUTPUT": out / "f.tif"},
                           [out / "f.tif"]),
        "fuse": ("csakd:fuse", {"HSI": hsi, "MSI": msi, "MODEL": "glp", "OUTPUT": out / "f.tif"}, [out / "f.tif"]),
        "superresolve": ("csakd:superresolve", {"HSI": hsi, "MODEL": "bicubic", "SCALE": 4, "OUTPUT": out / "sr.tif"},
                         [out / "sr.tif"]),
        "coregister": ("csakd:coregister", {"HSI": hsi, "MSI": msi, "OUTPUT": out / "co.tif"}, [out / "co.tif"]),
        "simulate_pair": ("csakd:simulate_pair", {"HSI": ref, "SENSOR": MSI_SPEC, "SCALE": 4, "SNR": 0,
                                                  "OUTPUT_LR": out / "lr.tif", "OUTPUT_MSI": out / "msi.tif"},
                          [out / "lr.tif", out / "msi.tif"]),
        "evaluate": ("csakd:evaluate", {"FUSED": ref, "REFERENCE": ref, "SCALE": 4, "JSON": out / "m.json",
                                        "REPORT": out / "r.html"}, [out / "m.json", out / "r.html"]),
        "train": ("csakd:train", {"HSI": hsi, "MSI": msi, "MODEL": out / "m.safetensors", "INIT": "scratch",
                                  "STEPS": 2, "BUDGET": 0, "DEVICE": "cpu", "PATCH": 8, "BATCH_SIZE": 2},
                  [out / "m.safetensors", out / "m.json"]),
    }[name]


@pytest.mark.qgis
@pytest.mark.parametrize("name", ["fuse_classical", "fuse", "superresolve", "coregister", "simulate_pair",
                                  "evaluate", "train"])
def test_qgis_disk_full_leaves_nothing(pair, profile, name):
    with tmpfs("4m") as out:
        alg, params, outputs = qgis_case(name, pair, out)
        before = snapshot(pair["dir"])
        fill_up(out)
        proc = run_qgis(alg, params, profile)
        assert_failed_cleanly(proc, expect=FULL, absent=tuple(outputs), folders=(out, pair["dir"]), inputs=before)
        assert os.listdir(out) == ["filler.bin"]

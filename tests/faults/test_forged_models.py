"""Round 2, classes 4 and 11: a forged ONNX graph beside a model card (another network renamed with the weights
checksum copied, other band counts, another scale, a truncated file, a stored card that differs from the card
beside it) is refused before it runs; a learned model refuses input in digital numbers (no scale tag), with the
fix in the message, while a classical method fuses it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
from _faults import ZOO, assert_failed_cleanly, run_cli, run_qgis, snapshot

STUDENT = "enmap_s2-4band_x4"


def _set_meta(m, **kv) -> None:
    props = {p.key: p.value for p in m.metadata_props}
    props.update(kv)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)


def forged(folder, case: str):
    """A copy of the zoo student (card + weights) whose ``mine.onnx`` is forged as ``case``; returns the weights."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    for ext in (".json", ".safetensors"):
        shutil.copy(ZOO / f"{STUDENT}{ext}", folder / f"mine{ext}")
    card = json.loads((folder / "mine.json").read_text())
    sha = {"csakd.weights_sha256": card["weights"]["sha256"]}
    onnx_out = folder / "mine.onnx"
    if case == "other network":  # the SR student's graph, renamed, with this card's weights checksum
        m = onnx.load(str(ZOO / "enmap_x4_sr.onnx"))
        _set_meta(m, **sha)
    elif case == "other scale":  # the x3 student's graph carrying this card and checksum
        m = onnx.load(str(ZOO / "enmap_s2-4band_x3.onnx"))
        _set_meta(m, **sha, **{"csakd.card": json.dumps(card)})
    elif case == "other band counts":
        m = onnx.load(str(ZOO / f"{STUDENT}.onnx"))
        m.graph.input[1].type.tensor_type.shape.dim[1].dim_value = 5
    elif case == "stored card differs":
        m = onnx.load(str(ZOO / f"{STUDENT}.onnx"))
        _set_meta(m, **{"csakd.card": json.dumps({**card, "hsi": {**card["hsi"], "bands": 200}})})
    elif case == "truncated":
        data = (ZOO / f"{STUDENT}.onnx").read_bytes()
        onnx_out.write_bytes(data[: len(data) // 2])
        return folder / "mine.safetensors"
    else:
        raise ValueError(case)
    onnx.save(m, str(onnx_out))
    return folder / "mine.safetensors"


EXPECT = {"other network": r"does not match its card.*stored in it differs",
          "other scale": r"does not match its card.*scale 4",
          "other band counts": r"does not match its card.*'msi' takes 5 bands",
          "stored card differs": r"does not match its card.*stored in it differs \(hsi\)",
          "truncated": r"cannot be loaded.*corrupt"}


@pytest.mark.parametrize("case", list(EXPECT))
def test_cli_forged_onnx_graph_is_refused(pair, needs_enmap, tmp_path, case):
    model = forged(tmp_path / "model", case)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(model.parent)
    proc = run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", model, "--runtime", "onnx",
                   "--no-progress", "--out", out / "o.tif")
    assert_failed_cleanly(proc, expect=EXPECT[case], absent=(out / "o.tif",), folders=(out, model.parent),
                          inputs=before)


@pytest.mark.qgis
def test_qgis_forged_onnx_graph_is_refused(pair, needs_enmap, tmp_path, profile):
    model = forged(tmp_path / "model", "other network")
    before = snapshot(model.parent)
    proc = run_qgis("csakd:fuse", {"HSI": pair["hsi"], "MSI": pair["msi"], "MODEL": "file", "MODEL_FILE": model,
                                   "RUNTIME": "onnx", "DEVICE": "cpu", "OUTPUT": tmp_path / "o.tif"}, profile)
    assert_failed_cleanly(proc, expect=EXPECT["other network"], absent=(tmp_path / "o.tif",),
                          folders=(tmp_path,), inputs=before)


def test_the_installed_onnx_graphs_pass_the_check(needs_enmap, pair, tmp_path):
    """The zoo's own graphs fuse through ONNX Runtime (the check refuses forgeries only)."""
    proc = run_cli("fuse", "--hsi", pair["hsi"], "--msi", pair["msi"], "--model", STUDENT, "--runtime", "onnx",
                   "--no-progress", "--out", tmp_path / "o.tif")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.tif").is_file()


@pytest.fixture(scope="module")
def dn_pair(pair, tmp_path_factory) -> dict:
    """The pair stored as digital numbers (reflectance x 10000, int16, no scale tag), as a user's export may be."""
    d = tmp_path_factory.mktemp("dn")
    out = {}
    for key in ("hsi", "msi"):
        with rasterio.open(pair[key]) as src:
            profile, data = src.profile, src.read()
            tags = [src.tags(b) for b in range(1, src.count + 1)]
        profile.update(dtype="int16", nodata=-32768)
        dn = np.where(np.isfinite(data), np.round(data * 10000), -32768).astype(np.int16)
        out[key] = d / f"dn_{key}.tif"
        with rasterio.open(out[key], "w", **profile) as ds:
            ds.write(dn)
            for b, t in enumerate(tags, 1):
                ds.update_tags(b, **t)
    out["dir"] = d
    return out


def test_cli_learned_model_refuses_digital_numbers(dn_pair, needs_enmap, tmp_path):
    before = snapshot(dn_pair["dir"])
    proc = run_cli("fuse", "--hsi", dn_pair["hsi"], "--msi", dn_pair["msi"], "--model", STUDENT, "--no-progress",
                   "--out", tmp_path / "o.tif")
    line = assert_failed_cleanly(proc, expect=r"is not reflectance \(median value \d+", absent=(tmp_path / "o.tif",),
                                 folders=(tmp_path, dn_pair["dir"]), inputs=before)
    assert "gdal_edit.py -scale 0.0001" in line and "dn_hsi.tif" in line
    ok = run_cli("fuse", "--hsi", dn_pair["hsi"], "--msi", dn_pair["msi"], "--model", "glp", "--no-progress",
                 "--out", tmp_path / "glp.tif")
    assert ok.returncode == 0, ok.stderr  # a classical method absorbs the gain
    assert (tmp_path / "glp.tif").is_file()


@pytest.mark.qgis
def test_qgis_learned_model_refuses_digital_numbers(dn_pair, needs_enmap, tmp_path, profile):
    proc = run_qgis("csakd:fuse", {"HSI": dn_pair["hsi"], "MSI": dn_pair["msi"], "MODEL": STUDENT, "DEVICE": "cpu",
                                   "OUTPUT": tmp_path / "o.tif"}, profile)
    assert_failed_cleanly(proc, expect=r"is not reflectance.*-scale 0.0001", absent=(tmp_path / "o.tif",),
                          folders=(tmp_path,))

"""fusion/fuse.py + fusion/predictors.py + cli/fuse.py: the main fusion job end to end on GeoTIFF pairs."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from _helpers_predictors import CallablePredictor
from _helpers_raster import (
    MSI_SPEC,
    enmap_reference,
    enmap_tile,
    read_all,
    reproject_raster,
    requires_shared,
    rmse,
    synthetic_reference,
    write_pair,
)
from rasterio.crs import CRS

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.predictors import make_predictor
from csakd_qgis.zoo.registry import resolve_model_path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Synthetic 32-band pair at s=4 with two bad bands (34 bands in the HSI file)."""
    return write_pair(tmp_path_factory.mktemp("fuse"), synthetic_reference(), scale=4, bad_bands=2)


def _tiny_conv(n_h: int, n_m: int, s: int, seed: int = 0):
    """A conv-only torch fusion net (LR conv -> bilinear up -> concat MSI -> 2 HR convs), forward(lr, msi)."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.lr_conv = nn.Conv2d(n_h, 8, 3, padding=1)
            self.hr1 = nn.Conv2d(8 + n_m, 8, 3, padding=1)
            self.hr2 = nn.Conv2d(8, n_h, 3, padding=1)

        def forward(self, lr, msi, base=None):
            up = nn.functional.interpolate(self.lr_conv(lr), scale_factor=s, mode="bilinear", align_corners=False)
            feat = torch.relu(self.hr1(torch.cat([up, msi], 1)))
            lr_up = nn.functional.interpolate(lr, scale_factor=s, mode="bilinear", align_corners=False)
            return lr_up + 0.1 * self.hr2(feat), feat

    net = Tiny().eval()

    def fn(lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(lr), torch.from_numpy(msi))[0].numpy()

    return fn


def test_output_grid_bands_and_metadata_equal_inputs(pair, tmp_path):
    out = tmp_path / "fused.tif"
    res = fuse(pair["hsi"], pair["msi"], out, model="glp", tile=32, overlap=8)
    data, info = read_all(out)
    msi_data, msi_info = read_all(pair["msi"])
    _, hsi_info = read_all(pair["hsi"])
    assert (info["crs"], info["transform"], info["width"], info["height"]) == (
        msi_info["crs"], msi_info["transform"], msi_info["width"], msi_info["height"])
    assert info["count"] == hsi_info["count"] == 34 == res.bands
    for t_out, t_in in zip(info["tags"], hsi_info["tags"], strict=True):
        assert t_out["wavelength"] == t_in["wavelength"] and t_out["fwhm"] == t_in["fwhm"]
        assert t_out["bbl"] == t_in["bbl"]
    assert info["nodata"] == -9999.0
    assert np.isnan(data[2]).all() and np.isnan(data[3]).all()  # bad bands kept as nodata
    good = [i for i, b in enumerate(pair["bbl"]) if b]
    assert np.isfinite(data[good]).all()
    assert res.scale == 4 and res.n_tiles > 1 and res.device_used == "cpu" and res.model == "glp"
    assert (res.width, res.height) == (96, 64) and os.listdir(tmp_path) == ["fused.tif"]
    # sanity: GLP beats bicubic against the HR reference
    bic = fuse(pair["hsi"], pair["msi"], tmp_path / "bic.tif", model="bicubic")
    assert bic.n_tiles == 1
    assert rmse(data[good], pair["hr"]) < 0.9 * rmse(read_all(tmp_path / "bic.tif")[0][good], pair["hr"])


def test_tiled_equals_whole_for_conv_model(pair, tmp_path):
    n_h = sum(pair["bbl"])
    pred = CallablePredictor(_tiny_conv(n_h, 4, 4), 4, n_h, 4, name="tiny-conv", halo_lr=3)
    whole = fuse(pair["hsi"], pair["msi"], tmp_path / "whole.tif", model=pred, tile=512)
    tiled = fuse(pair["hsi"], pair["msi"], tmp_path / "tiled.tif", model=pred, tile=32, overlap=8, batch=3)
    padded = fuse(pair["hsi"], pair["msi"], tmp_path / "padded.tif", model=pred, tile=40, overlap=8, batch=2,
                  edge="pad")
    assert whole.n_tiles == 1 and tiled.n_tiles >= 6 and padded.n_tiles >= 6
    a = read_all(tmp_path / "whole.tif")[0]
    for name in ("tiled", "padded"):
        b = read_all(tmp_path / f"{name}.tif")[0]
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert np.nanmax(np.abs(a - b)) < 1e-5, name
    # classical GLP (coefficients fitted once per scene, halo = its margin): also tile-invariant
    fuse(pair["hsi"], pair["msi"], tmp_path / "g1.tif", model="glp", tile=512)
    fuse(pair["hsi"], pair["msi"], tmp_path / "g2.tif", model="glp", tile=24, overlap=8)
    assert np.nanmax(np.abs(read_all(tmp_path / "g1.tif")[0] - read_all(tmp_path / "g2.tif")[0])) < 1e-5


@pytest.mark.parametrize("edge,tile,group_width,blocks,max_mb", [
    ("shift", 24, 48, ((4, 1), (16, 3)), 96.0),  # column groups, chunks cut on small block rows
    ("pad", 28, 56, ((5, 0), (8, 0)), 96.0),  # padded edge windows read beyond the raster
    ("shift", 24, None, ((256, 0), (256, 0)), 96.0),  # one group, blocks taller than the raster
    ("pad", 28, 48, ((4, 1), (16, 3)), 1e-3),  # chunks too large: window by window
])
def test_window_reader_equals_read_tile(pair, edge, tile, group_width, blocks, max_mb, monkeypatch):
    """The job's chunked reader gives exactly grid.read_tile's windows (halo, padding, mirrored outside)."""
    from csakd_qgis.raster.coreg import plan_grid
    from csakd_qgis.raster.job import OUTSIDE, WindowReader
    from csakd_qgis.raster.tiling import plan_tiles

    grid = plan_grid(pair["hsi"], pair["msi"])
    plan = plan_tiles(grid.hr_height, grid.hr_width, 4, tile, 8, edge=edge, group_width=group_width, group_align=8)
    assert (len(plan.groups) > 1) == (group_width is not None)
    assert edge == "shift" or any(t.pad_bottom or t.pad_right for t in plan.tiles)
    with grid:
        monkeypatch.setattr(grid, "block_rows", lambda: blocks)
        reader = WindowReader(grid.layers(), plan, 3, max_chunk_mb=max_mb)
        for t in plan.tiles:
            lr, m = reader.read(t)
            lr0, m0 = grid.read_tile(t.row, t.col, t.height + t.pad_bottom, t.width + t.pad_right, halo_lr=3,
                                     outside=OUTSIDE)
            assert lr.shape == lr0.shape and m.shape == m0.shape
            assert np.array_equal(lr, lr0, equal_nan=True) and np.array_equal(m, m0, equal_nan=True), t
        assert (reader.chunks is None) == (max_mb < 1)
        if reader.chunks is not None:  # one read per chunk, not per window
            n_last = sum(1 for t in plan.tiles if t.group == plan.tiles[-1].group)
            assert all(ch.reads < n_last for ch in reader.chunks)


def test_mirrored_context_beyond_the_rasters(pair):
    """Context beyond the rasters is numpy's "symmetric" extension (also further than the raster size)."""
    from csakd_qgis.raster.coreg import plan_grid
    from csakd_qgis.raster.job import OUTSIDE

    assert OUTSIDE == "symmetric"
    grid = plan_grid(pair["hsi"], pair["msi"])
    h = 20  # LR px: more than the 16-px LR height
    lr_ext = np.pad(pair["lr"], ((0, 0), (h, h), (h, h)), mode="symmetric")
    msi_ext = np.pad(pair["msi_arr"], ((0, 0), (4 * h, 4 * h), (4 * h, 4 * h)), mode="symmetric")
    with grid:
        for row, col in ((0, 0), (32, 64)):
            lr, m = grid.read_tile(row, col, 32, 32, halo_lr=h, outside=OUTSIDE)
            assert np.array_equal(lr, lr_ext[:, row // 4:row // 4 + 8 + 2 * h, col // 4:col // 4 + 8 + 2 * h])
            assert np.array_equal(m, msi_ext[:, row:row + 32 + 8 * h, col:col + 32 + 8 * h])
    # the mirrored HR-MSI block-averages to the mirrored LR grid (what edge replication does not do)
    blocks = msi_ext.reshape(4, -1, 4, msi_ext.shape[2] // 4, 4).mean(axis=(2, 4))
    inner = pair["msi_arr"].reshape(4, 16, 4, 24, 4).mean(axis=(2, 4))
    assert np.allclose(blocks, np.pad(inner, ((0, 0), (h, h), (h, h)), mode="symmetric"), atol=1e-6)


def test_column_groups_equal_whole_for_conv_model(pair, tmp_path):
    """Column groups (cuts on 16-px output blocks) with chunked reads: same output as one window."""
    n_h = sum(pair["bbl"])
    pred = CallablePredictor(_tiny_conv(n_h, 4, 4), 4, n_h, 4, name="tiny-conv", halo_lr=3)
    co = {"BLOCKXSIZE": "16", "BLOCKYSIZE": "16"}
    whole = fuse(pair["hsi"], pair["msi"], tmp_path / "whole.tif", model=pred, tile=512)
    grouped = fuse(pair["hsi"], pair["msi"], tmp_path / "grouped.tif", model=pred, tile=24, overlap=8, batch=5,
                   group_width=32, creation_options=co)
    assert whole.n_tiles == 1 and any("column groups" in m for m in grouped.messages)
    a, b = read_all(tmp_path / "whole.tif")[0], read_all(tmp_path / "grouped.tif")[0]
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.nanmax(np.abs(a - b)) < 1e-5


def test_glp_fuse_matches_in_memory_glp(tmp_path):
    """The fuse path's border context (mirrored halo) reproduces in-memory GLP: never worse, tiled or not.

    Edge-replicated context (the former behaviour) disagreed with the LR edge pixel and with the mirror
    border of the Wald blur inside GLP: on the 32 x 64 px EnMAP test mosaic it cost 1.3 dB.
    """
    from csakd_qgis.fusion.classical import fuse_classical
    from csakd_qgis.quality.metrics import compute_metrics

    ref = enmap_reference() if os.path.isdir(str(enmap_tile().parent)) else synthetic_reference()
    p = write_pair(tmp_path, ref, scale=4)
    hr = p["hr"]
    mem = compute_metrics(hr, fuse_classical(p["lr"], p["msi_arr"], 4, "glp"), 4)["psnr"]
    for name, kw in (("one", {"tile": 512}), ("tiled", {"tile": 32, "overlap": 8})):
        fuse(p["hsi"], p["msi"], tmp_path / f"{name}.tif", model="glp", **kw)
        got = compute_metrics(hr, read_all(tmp_path / f"{name}.tif")[0], 4)["psnr"]
        assert mem - 1e-3 <= got <= mem + 0.1, (name, got, mem)


def test_nodata_where_inputs_are_nodata(tmp_path):
    p = write_pair(tmp_path, synthetic_reference(), scale=4, nodata_lr_rows=2, nodata_msi_cols=5)
    fuse(p["hsi"], p["msi"], tmp_path / "nd.tif", model="gsa", tile=32, overlap=8)
    data, _ = read_all(tmp_path / "nd.tif")
    bad = np.zeros(data.shape[1:], bool)
    bad[:8] = True
    bad[:, :5] = True
    assert np.isnan(data[:, bad]).all() and np.isfinite(data[:, ~bad]).all()


def test_hsi_in_other_crs_fuses_on_msi_grid(pair, tmp_path):
    other = reproject_raster(pair["hsi"], tmp_path / "hsi_3035.tif", CRS.from_epsg(3035), resolution=30.0)
    res = fuse(other, pair["msi"], tmp_path / "o.tif", model="glp", tile=32, overlap=8)
    data, info = read_all(tmp_path / "o.tif")
    mt = pair["hr_transform"]
    assert info["crs"] == pair["crs"] and info["transform"].a == mt.a and info["transform"].e == mt.e
    col, row = ~mt * (info["transform"].c, info["transform"].f)
    assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6
    assert res.width <= 96 and res.height <= 64 and res.width % 4 == 0
    assert any("EPSG:3035" in m for m in res.messages)
    good = [i for i, b in enumerate(pair["bbl"]) if b]
    c0, r0 = int(round(col)), int(round(row))
    ref = pair["hr"][:, r0:r0 + res.height, c0:c0 + res.width]
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert rmse(data[good][inner], ref[inner]) / float(np.nanmean(ref)) < 0.1


def test_cancel_leaves_no_file(pair, tmp_path):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] >= 5  # after a few batches

    fractions: list[float] = []
    with pytest.raises(CancelledError):
        fuse(pair["hsi"], pair["msi"], tmp_path / "c.tif", model="glp", tile=16, overlap=4, batch=1,
             cancel=cancel, progress=lambda f, m: fractions.append(f))
    assert os.listdir(tmp_path) == [] and calls["n"] == 5
    assert fractions and max(fractions) < 1.0


def test_output_checked_before_any_compute(tmp_path, monkeypatch):
    import csakd_qgis.raster.coreg as coreg

    monkeypatch.setattr(coreg, "plan_grid", lambda *a, **k: pytest.fail("computed before checking the output"))
    with pytest.raises(CsakdError, match="folder of the fused output .* does not exist"):
        fuse(tmp_path / "missing_hsi.tif", tmp_path / "missing_msi.tif", tmp_path / "no_dir" / "out.tif")
    with pytest.raises(CsakdError, match="only GeoTIFF"):
        fuse(tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "out.png")
    with pytest.raises(CsakdError, match="tile must be at least 1"):
        fuse(tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "out.tif", tile=0)


def test_qualified_input_errors(pair, tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(CsakdError, match=r"hyperspectral \(HSI\) input .*nope\.tif' does not exist"):
        fuse(tmp_path / "nope.tif", pair["msi"], out)
    txt = tmp_path / "table.csv"
    txt.write_text("a,b\n1,2\n")
    with pytest.raises(CsakdError, match=r"multispectral \(MSI\) input .*table\.csv' is not a readable raster"):
        fuse(pair["hsi"], txt, out)
    with pytest.raises(CsakdError, match="has 34 bands but the hyperspectral"):
        fuse(pair["msi"], pair["hsi"], out)
    far = tmp_path / "far.tif"
    t = pair["lr_transform"]
    from affine import Affine

    reproject_raster(pair["hsi"], far, pair["crs"], transform=Affine(t.a, 0, t.c, 0, t.e, t.f + 90000),
                     width=24, height=16)
    with pytest.raises(CsakdError, match="do not overlap"):
        fuse(far, pair["msi"], out)
    with pytest.raises(CsakdError, match="Unknown model 'no_such_model'"):
        fuse(pair["hsi"], pair["msi"], out, model="no_such_model")
    with pytest.raises(CsakdError, match="does not exist"):
        fuse(pair["hsi"], pair["msi"], out, model=str(tmp_path / "missing.safetensors"))
    assert not out.exists()


def test_torch_model_from_card(pair, tmp_path):
    """A tiny CSAKD saved with modelcard: loads, runs tiled on CPU; residual='base' untrained == its GLP base."""
    from csakd_qgis.nets.csakd import CSAKDConfig, build_model
    from csakd_qgis.zoo.card import save_model

    good = [i for i, b in enumerate(pair["bbl"]) if b]
    wl = [pair["wavelengths"][i] for i in good]
    cfg = CSAKDConfig(hsi_bands=len(good), msi_bands=4, scale=4, nf=8, gc=4, heads=2, d=8,
                      blocks={"hm": 0, "mh": 1, "h": 1, "m": 0}, residual="base")
    stem = tmp_path / "tiny_base"
    card_path, _ = save_model(stem, build_model(cfg), {"role": "student", "name": "tiny_base",
                                                       "hsi": {"wavelengths": wl}, "training": {"base_method": "glp"}})
    assert resolve_model_path(str(stem) + ".safetensors") == card_path
    res = fuse(pair["hsi"], pair["msi"], tmp_path / "t.tif", model=str(card_path), tile=32, overlap=8, batch=2,
               threads=1)
    assert res.device_used.startswith("cpu") and res.model == "tiny_base" and res.timings["network_s"] > 0
    net = read_all(tmp_path / "t.tif")[0]
    fuse(pair["hsi"], pair["msi"], tmp_path / "g.tif", model="glp", tile=32, overlap=8)
    glp = read_all(tmp_path / "g.tif")[0]
    assert np.nanmax(np.abs(net - glp)) < 1e-4  # zero-initialised head: the net returns its base
    # a model for another sensor is refused before compute
    with pytest.raises(CsakdError, match="does not fit the inputs"):
        make_predictor(str(card_path), scale=3, hsi_bands=len(good), msi_bands=4, device="cpu")


def test_torch_model_nodata_and_normalisation(tmp_path):
    """Per-band normalised network: NaN inputs are filled before the net and masked to nodata after it."""
    from csakd_qgis.nets.csakd import CSAKDConfig, build_model
    from csakd_qgis.zoo.card import save_model

    p = write_pair(tmp_path, synthetic_reference(), scale=4, nodata_lr_rows=2, nodata_msi_cols=5)
    n_h = len(p["wavelengths"])
    cfg = CSAKDConfig(hsi_bands=n_h, msi_bands=4, scale=4, nf=8, gc=4, heads=2, d=8,
                      blocks={"hm": 0, "mh": 1, "h": 0, "m": 0}, residual="bilinear")
    norm = {"type": "per_band", "hsi_mean": [0.1] * n_h, "hsi_std": [0.05] * n_h, "msi_mean": [0.1] * 4,
            "msi_std": [0.05] * 4}
    card_path, _ = save_model(tmp_path / "tiny_norm", build_model(cfg),
                              {"role": "student", "normalization": norm})
    res = fuse(p["hsi"], p["msi"], tmp_path / "n.tif", model=str(card_path), device="cpu", tile=32, overlap=8)
    data, _ = read_all(tmp_path / "n.tif")
    bad = np.zeros(data.shape[1:], bool)
    bad[:8] = True
    bad[:, :5] = True
    assert np.isnan(data[:, bad]).all() and np.isfinite(data[:, ~bad]).all()
    assert 0.0 < float(np.nanmean(data)) < 1.0 and res.device_used.startswith("cpu")


def test_cuda_requested_without_gpu_is_a_clear_error(pair, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    from csakd_qgis.nets.device import resolve_device

    with pytest.raises(CsakdError, match="requested but torch .* sees no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_cli_fuse_and_coregister(pair, tmp_path, capsys):
    from csakd_qgis.cli.coregister import add_coregister_parser
    from csakd_qgis.cli.fuse import add_fuse_parser

    parser = argparse.ArgumentParser(prog="csakd")
    sub = parser.add_subparsers(dest="command", required=True)
    add_fuse_parser(sub)
    add_coregister_parser(sub)
    out = tmp_path / "cli.tif"
    args = parser.parse_args(["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--model", "gsa",
                              "--out", str(out), "--tile", "32", "--overlap", "8", "--co", "COMPRESS=LZW",
                              "--no-progress"])
    assert args.func(args) == 0 and out.exists()
    assert "scale 4" in capsys.readouterr().out
    args = parser.parse_args(["coregister", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--out",
                              str(tmp_path / "co.tif")])
    assert args.func(args) == 0 and (tmp_path / "co.tif").exists()
    args = parser.parse_args(["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--model", "zzz",
                              "--out", str(tmp_path / "x.tif"), "--no-progress"])
    with pytest.raises(CsakdError):
        args.func(args)


@requires_shared
@pytest.mark.shared_data
def test_real_enmap_tile_as_hsi_keeps_all_224_bands(tmp_path):
    """A real EnMAP L2A tile (scale 1e-4, nodata -32768, 6 bad bands) with a 10 m MSI: s = 3, 224 bands out."""
    from affine import Affine

    from csakd_qgis.raster.io import read_meta, read_reflectance, write_raster
    from csakd_qgis.raster.resample import upsample_bicubic
    from csakd_qgis.spectral.srf import srf_matrix

    hsi = enmap_tile(96, 32)
    meta = read_meta(hsi)
    good = meta.good_bands()
    lr = read_reflectance(hsi, bands=good)
    R = srf_matrix(MSI_SPEC, [meta.wavelengths[i] for i in good], [meta.fwhm[i] for i in good])
    msi = upsample_bicubic(np.einsum("mc,chw->mhw", R.astype(np.float32), lr), 3)
    t = meta.transform
    msi_path = tmp_path / "s2.tif"
    write_raster(msi_path, msi, meta.crs, Affine(10.0, 0, t.c, 0, -10.0, t.f))
    res = fuse(hsi, msi_path, tmp_path / "f.tif", model="glp", tile=48, overlap=12)
    data, info = read_all(tmp_path / "f.tif")
    assert res.scale == 3 and info["count"] == 224 and (info["width"], info["height"]) == (96, 96)
    assert [float(tg["wavelength"]) for tg in info["tags"]] == pytest.approx(meta.wavelengths, abs=1e-3)
    assert [int(tg["bbl"]) for tg in info["tags"]] == meta.bbl
    assert np.isnan(data[129:135]).all() and np.isfinite(data[good]).mean() > 0.99
    # reflectance units: the 1e-4 scale was applied
    assert 0.0 < np.nanmedian(data[good]) < 0.6


@requires_shared
@pytest.mark.shared_data
def test_shift_reported_and_correction_helps_on_enmap(tmp_path):
    """0.3 LR px injected: reported within 0.1; correcting it gives the error of a perfectly registered pair."""
    p = write_pair(tmp_path, enmap_reference(), scale=4, shift=(0.3, 0.0))
    p0 = write_pair(tmp_path, enmap_reference(), scale=4, name="registered")
    kw = dict(model="glp", tile=32, overlap=8)
    plain = fuse(p["hsi"], p["msi"], tmp_path / "plain.tif", **kw)
    fixed = fuse(p["hsi"], p["msi"], tmp_path / "fixed.tif", shift_correct=True, **kw)
    ideal = fuse(p0["hsi"], p0["msi"], tmp_path / "ideal.tif", **kw)
    assert abs(plain.shift_x - 0.3) < 0.1 and abs(plain.shift_y) < 0.1 and not plain.shift_corrected
    assert abs(ideal.shift_x) < 0.05 and abs(ideal.shift_y) < 0.05
    assert fixed.shift_corrected and fixed.shift_x == pytest.approx(plain.shift_x)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    err = {name: rmse(read_all(tmp_path / f"{name}.tif")[0][inner], p["hr"][inner])
           for name in ("plain", "fixed", "ideal")}
    assert err["fixed"] < err["plain"] and err["fixed"] < 1.02 * err["ideal"], err


def test_radiometry_check_flags_unscaled_inputs():
    from csakd_qgis.fusion.fuse import radiometry_check

    lr = np.full((5, 4, 4), 0.12, np.float32)
    assert radiometry_check(lr, np.full((4, 16, 16), 0.1, np.float32)) is None
    note = radiometry_check(lr, np.full((4, 16, 16), 1200.0, np.float32))
    assert note is not None and "1/10000" in note


CSA_TILING_MIN_PSNR_DB = 50.0  # tiled vs whole-image output of the CSA model at the default tile/overlap
# Extra model cards to check the same way (os.pathsep-separated), e.g. a trained bilinear-residual student:
# CSAKD_CSA_TILING_MODELS=runs/<run>/<run>_student.json pytest -s tests/test_fuse.py -k csa_tiled
_CSA_EXTRA = [p for p in os.environ.get("CSAKD_CSA_TILING_MODELS", "").split(os.pathsep) if p]


@pytest.mark.parametrize("model", ["lite-random"] + _CSA_EXTRA)
def test_csa_tiled_vs_whole_psnr_at_default_tile(model, tmp_path):
    """CSA (channel attention over the whole window) makes tiled output differ from whole-image output.

    A 512 x 384 px HR scene at s = 4 on the 218-band EnMAP grid (spatial structure from the real spyndex
    Sentinel-2 tile upsampled 2x, earthlib spectra, two painted water bodies: heterogeneous, so windows
    see different channel statistics) is fused by a lite CSAKD student with a bilinear residual and a
    randomly initialised (non-zero) head, once with fuse()'s default tile / overlap (256 / 32 px: 6
    windows) and once as one window; the PSNR between the two (metrics.psnr: per band, peak = the
    whole-image band maximum) must be >= 50 dB. Models in $CSAKD_CSA_TILING_MODELS are checked the same way.
    """
    import torch
    from affine import Affine
    from scipy.ndimage import zoom

    from csakd_qgis.nets.csakd import build_model, preset_configs
    from csakd_qgis.quality.metrics import psnr
    from csakd_qgis.spectral.band_grids import enmap_grid
    from csakd_qgis.spectral.synthetic import load_spyndex_s2, make_scene
    from csakd_qgis.zoo.card import base_method_of, read_card, save_model

    s = 4
    wl, fw = enmap_grid(good_only=True)
    structure = zoom(load_spyndex_s2(["B2", "B3", "B4", "B8"]).bands, (1, 2, 2), order=3)[:, :384, :512]
    with np.errstate(over="ignore"):
        scene = make_scene(wl, fw, msi=np.clip(structure, 0.0, 1.0), msi_sensor="S2A:B2,B3,B4,B8", seed=0,
                           n_water_bodies=2, iters=60)
    ref = {"cube": scene.hr_hsi, "wavelengths": list(wl), "fwhm": list(fw), "crs": CRS.from_epsg(32633),
           "transform": Affine(20.0, 0.0, 360000.0, 0.0, -20.0, 5820000.0), "source": "synthetic"}
    p = write_pair(tmp_path, ref, scale=s, lr_px=20.0)
    label = model
    if model == "lite-random":
        _, cfg = preset_configs("lite", len(wl), 4, s)  # residual "bilinear", PyTorch-default (non-zero) head
        assert cfg.residual == "bilinear" and cfg.csa == "corrected" and not cfg.zero_head
        torch.manual_seed(0)
        model, _ = save_model(tmp_path / "lite", build_model(cfg), {"role": "student", "name": "lite-random",
                                                                    "hsi": {"wavelengths": list(wl)}})
    whole = fuse(p["hsi"], p["msi"], tmp_path / "whole.tif", model=str(model), device="cpu", tile=1024)
    tiled = fuse(p["hsi"], p["msi"], tmp_path / "tiled.tif", model=str(model), device="cpu")  # defaults
    assert whole.n_tiles == 1 and tiled.n_tiles == 6 and (tiled.width, tiled.height) == (512, 384)
    a, b = read_all(tmp_path / "whole.tif")[0], read_all(tmp_path / "tiled.tif")[0]
    assert np.isfinite(a).all() and np.isfinite(b).all()
    # the head matters: the output is not just the network's residual (else tiling could not show)
    card = read_card(model)
    residual = str(card.get("residual", card.get("config", {}).get("residual", "none")))
    if residual == "base":  # a classical base (zoo models): the head is what the net adds to it
        fuse(p["hsi"], p["msi"], tmp_path / "base.tif", model=base_method_of(card), tile=1024)
        res_img = read_all(tmp_path / "base.tif")[0]
    elif residual in ("bilinear", "bicubic"):
        res_img = torch.nn.functional.interpolate(torch.from_numpy(p["lr"][None]), scale_factor=s, mode=residual,
                                                  align_corners=False)[0].numpy()
    else:
        res_img = np.zeros_like(a)
    head = float(np.mean(np.abs(a - res_img)))
    value = psnr(a, b)
    print(f"\nCSA tiled (tile 256, overlap 32, {tiled.n_tiles} windows) vs whole image, {label} (residual "
          f"{residual}): PSNR {value:.2f} dB, max |diff| {np.max(np.abs(a - b)):.2e}, mean |head| {head:.2e}")
    if label == "lite-random":
        assert head > 0.005
        assert np.max(np.abs(a - b)) > 0  # CSA is global over the window: tiled != whole
    assert value >= CSA_TILING_MIN_PSNR_DB, value

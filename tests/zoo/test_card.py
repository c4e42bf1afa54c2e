"""Model files: safetensors + JSON card round trip, corrupt/mismatched checkpoints, card validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch  # noqa: E402  (installed by make setup)

from csakd_qgis.errors import CsakdError  # noqa: E402
from csakd_qgis.nets.csakd import CSAKDConfig, build_model  # noqa: E402
from csakd_qgis.zoo.card import (  # noqa: E402
    REQUIRED_KEYS,
    apply_normalization,
    invert_normalization,
    load_model,
    read_card,
    save_model,
    validate_card,
)

torch.set_num_threads(1)
WL = [450.0 + 20 * i for i in range(6)]


def small_model(residual: str = "bilinear", **kw):
    torch.manual_seed(0)
    cfg = CSAKDConfig(hsi_bands=6, msi_bands=2, scale=2, nf=8, gc=4, heads=2, d=8,
                      blocks={"hm": 1, "mh": 1, "h": 1, "m": 0}, residual=residual, **kw)
    return build_model(cfg)


def card(**kw):
    c = {"role": "student", "name": "tiny", "hsi": {"wavelengths": WL, "fwhm": [10.0] * 6, "sensor": "test"},
         "msi": {"sensor": "S2A", "band_names": ["B4", "B8"], "wavelengths": [664.6, 832.8]},
         "validation": {"psnr": 30.0}}
    c.update(kw)
    return c


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 6, 4, 3, generator=g), torch.rand(1, 2, 8, 6, generator=g)


@pytest.mark.parametrize("fp16", [False, True])
def test_round_trip_identical_outputs(tmp_path, fp16):
    net = small_model().eval()
    json_path, st_path = save_model(tmp_path / "m", net, card(), fp16=fp16)
    assert json_path.name == "m.json" and st_path.name == "m.safetensors"
    for path in (tmp_path / "m", json_path, st_path):
        loaded, c = load_model(path)
        assert not loaded.training
        lr, msi = inputs()
        with torch.no_grad():
            y0, _ = net(lr, msi)
            y1, _ = loaded(lr, msi)
        if fp16:
            assert torch.allclose(y0, y1, atol=1e-2)
        else:
            assert torch.equal(y0, y1)
    for key in REQUIRED_KEYS:
        assert key in c
    assert c["weights"]["dtype"] == ("float16" if fp16 else "float32")
    assert c["config"] == net.cfg.to_dict() and c["scale"] == 2 and c["residual"] == "bilinear"
    assert c["software"]["torch"] == torch.__version__ and c["hsi"]["bands"] == 6
    assert c["normalization"] == {"type": "none"}
    json.loads(json_path.read_text())  # plain JSON


def test_missing_files(tmp_path):
    with pytest.raises(CsakdError, match="does not exist"):
        load_model(tmp_path / "none.safetensors")
    json_path, st_path = save_model(tmp_path / "m", small_model(), card())
    st_path.unlink()
    with pytest.raises(CsakdError, match="weights .* do not exist"):
        load_model(json_path)


def test_corrupt_weights(tmp_path):
    _, st_path = save_model(tmp_path / "m", small_model(), card())
    data = bytearray(st_path.read_bytes())
    st_path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CsakdError, match="corrupt"):
        load_model(tmp_path / "m")
    with pytest.raises(CsakdError, match="corrupt|cannot be read"):
        load_model(tmp_path / "m", verify_checksum=False)


def test_corrupt_card(tmp_path):
    json_path, _ = save_model(tmp_path / "m", small_model(), card())
    json_path.write_text("{not json")
    with pytest.raises(CsakdError, match="not valid JSON"):
        load_model(json_path)
    c = card()
    json_path, _ = save_model(tmp_path / "m", small_model(), c)
    d = json.loads(json_path.read_text())
    del d["config"]
    json_path.write_text(json.dumps(d))
    with pytest.raises(CsakdError, match="lacks required keys.*config"):
        load_model(json_path)


def test_mismatched_checkpoint(tmp_path):
    """Weights of one network with the card of another -> a clear message naming the tensors."""
    save_model(tmp_path / "a", small_model(), card())
    other = build_model(CSAKDConfig(hsi_bands=6, msi_bands=2, scale=2, nf=12, gc=4, heads=2, d=8,
                                    blocks={"hm": 1, "mh": 1, "h": 1, "m": 0}))
    save_model(tmp_path / "b", other, card())
    (tmp_path / "a.safetensors").write_bytes((tmp_path / "b.safetensors").read_bytes())
    with pytest.raises(CsakdError, match="checksum"):
        load_model(tmp_path / "a")
    with pytest.raises(CsakdError, match="do not fit the network.*shape mismatch"):
        load_model(tmp_path / "a", verify_checksum=False)
    # a card whose config has a different block count -> missing/unexpected tensors
    d = json.loads((tmp_path / "b.json").read_text())
    d["config"]["blocks"]["m"] = 1
    (tmp_path / "b.json").write_text(json.dumps(d))
    with pytest.raises(CsakdError, match="missing"):
        load_model(tmp_path / "b")


def test_card_consistency_checked_on_save(tmp_path):
    with pytest.raises(CsakdError, match="role"):
        save_model(tmp_path / "m", small_model(), card(role="pupil"))
    with pytest.raises(CsakdError, match="wavelengths"):
        save_model(tmp_path / "m", small_model(), card(hsi={"wavelengths": WL[:4]}))
    with pytest.raises(CsakdError, match="does not exist"):
        save_model(tmp_path / "nodir" / "m", small_model(), card())


def test_validate_card(tmp_path):
    json_path, _ = save_model(tmp_path / "m", small_model(), card())
    c = read_card(json_path)
    validate_card(c, WL, 2, 2)
    validate_card(c, [w + 3 for w in WL], 2, 2)  # within the 5 nm tolerance
    validate_card(c, 6, None, None)
    with pytest.raises(CsakdError, match="7 bands but tiny expects 6"):
        validate_card(c, WL + [600.0], 2, 2)
    with pytest.raises(CsakdError, match="band centres differ.*band 3"):
        validate_card(c, [w + (40 if i == 2 else 0) for i, w in enumerate(WL)], 2, 2)
    with pytest.raises(CsakdError, match="multispectral input has 4 bands.*S2A: B4, B8"):
        validate_card(c, WL, 4, 2)
    with pytest.raises(CsakdError, match="scale.*is 3"):
        validate_card(c, WL, 2, 3)


def test_normalization_helpers(tmp_path):
    norm = {"type": "per_band", "hsi_mean": [0.1] * 6, "hsi_std": [0.2] * 6, "msi_mean": [0.3, 0.4],
            "msi_std": [0.5, 0.5]}
    json_path, _ = save_model(tmp_path / "m", small_model(), card(normalization=norm))
    c = read_card(json_path)
    lr, msi = np.ones((6, 2, 2), np.float32), np.ones((2, 4, 4), np.float32)
    lr_n, msi_n, _ = apply_normalization(c, lr, msi)
    assert np.allclose(lr_n, 4.5) and np.allclose(msi_n[1], 1.2)
    assert np.allclose(invert_normalization(c, lr_n), lr)
    t_lr_n, _, _ = apply_normalization(c, torch.ones(1, 6, 2, 2), torch.ones(1, 2, 4, 4))
    assert torch.allclose(t_lr_n, torch.full((1, 6, 2, 2), 4.5))
    with pytest.raises(CsakdError, match="normalization.hsi_std"):
        save_model(tmp_path / "m2", small_model(), card(normalization={**norm, "hsi_std": [1.0]}))


def test_validate_card_accepts_raster_meta(tmp_path):
    from csakd_qgis.raster.io import RasterMeta

    json_path, _ = save_model(tmp_path / "m", small_model(), card())
    c = read_card(json_path)
    hsi = RasterMeta(path="x", width=4, height=4, count=7, crs=None, transform=None, nodata=None,
                     scales=[1.0] * 7, offsets=[0.0] * 7, wavelengths=WL + [1400.0], fwhm=[None] * 7,
                     bbl=[1] * 6 + [0])
    msi = RasterMeta(path="y", width=8, height=8, count=2, crs=None, transform=None, nodata=None,
                     scales=[1.0] * 2, offsets=[0.0] * 2, wavelengths=[None] * 2, fwhm=[None] * 2, bbl=[1, 1])
    validate_card(c, hsi, msi, 2)

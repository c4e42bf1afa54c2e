"""CSAKD network: shapes, reference parameter/MAC counts, CSA switch, gradients, base residual."""

from __future__ import annotations

import json

import pytest
import torch  # noqa: E402  (installed by make setup)

from csakd_qgis.nets.complexity import conv_macs, count_params, csakd_complexity  # noqa: E402
from csakd_qgis.nets.csakd import CSAKDConfig, build_model, preset_configs  # noqa: E402

torch.set_num_threads(2)


def tiny_cfg(**kw) -> CSAKDConfig:
    base = dict(hsi_bands=7, msi_bands=3, scale=4, nf=8, gc=4, heads=2, d=8,
                blocks={"hm": 1, "mh": 1, "h": 1, "m": 1})
    base.update(kw)
    return CSAKDConfig(**base)


def inputs(cfg: CSAKDConfig, h: int = 3, w: int = 2, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(b, cfg.hsi_bands, h, w, generator=g)
    msi = torch.rand(b, cfg.msi_bands, h * cfg.scale, w * cfg.scale, generator=g)
    return lr, msi


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("bands", [(5, 1), (12, 4), (31, 6)])
def test_output_shapes(scale, bands):
    cfg = tiny_cfg(hsi_bands=bands[0], msi_bands=bands[1], scale=scale)
    net = build_model(cfg).eval()
    lr, msi = inputs(cfg, 3, 5)
    with torch.no_grad():
        y, f = net(lr, msi)
    assert y.shape == (2, bands[0], 3 * scale, 5 * scale)
    assert f.shape == (2, cfg.nf, 3 * scale, 5 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("preset", ["paper", "lite"])
def test_presets_build_and_run_small(preset):
    t_cfg, s_cfg = preset_configs(preset, 10, 4, 3)
    for cfg in (t_cfg, s_cfg):
        with torch.device("meta"):
            net = build_model(cfg)
            y, f = net(torch.zeros(1, 10, 4, 4), torch.zeros(1, 4, 12, 12))
        assert y.shape == (1, 10, 12, 12) and f.shape == (1, cfg.nf, 12, 12)


def test_wrong_sizes_raise():
    cfg = tiny_cfg()
    net = build_model(cfg)
    lr, msi = inputs(cfg)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(lr, msi[..., :-1])
    with pytest.raises(ValueError, match="bands"):
        net(lr[:, :-1], msi)


def test_config_roundtrip_json():
    t_cfg, s_cfg = preset_configs("paper", 172, 4, 4, csa="reference", residual="none")
    for cfg in (t_cfg, s_cfg):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert CSAKDConfig.from_dict(d) == cfg
    assert s_cfg.groups["h"] == 43 and s_cfg.blocks == {"hm": 0, "mh": 4, "h": 4, "m": 1}
    assert t_cfg.blocks == {"hm": 6, "mh": 6, "h": 4, "m": 4}
    with pytest.raises(ValueError):
        CSAKDConfig.from_dict({**t_cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        CSAKDConfig(hsi_bands=4, msi_bands=2, residual="cubic")


def test_paper_counts_match_reference():
    """The paper's reference teacher 26,807,686 params / 941.8 G conv MACs, student 7,449,946 / 144.8 G."""
    for csa in ("reference", "corrected"):
        t_cfg, s_cfg = preset_configs("paper", 172, 4, 4, csa=csa, residual="none")
        t = csakd_complexity(t_cfg, 256)
        s = csakd_complexity(s_cfg, 256)
        assert abs(t["params"] - 26_807_686) / 26_807_686 < 1e-3
        assert abs(s["params"] - 7_449_946) / 7_449_946 < 1e-3
        assert abs(t["macs"] - 941.8e9) / 941.8e9 < 0.01
        assert abs(s["macs"] - 144.8e9) / 144.8e9 < 0.01
        if csa == "reference":  # exact parity: no temperature parameter
            assert t["params"] == 26_807_686 and s["params"] == 7_449_946


def test_lite_keeps_paper_ratios():
    t_cfg, s_cfg = preset_configs("lite", 172, 4, 4)
    t, s = csakd_complexity(t_cfg, 256), csakd_complexity(s_cfg, 256)
    assert s["params"] * 3 <= t["params"]
    assert s["macs"] * 5 <= t["macs"]
    p_t, _ = preset_configs("paper", 172, 4, 4)
    assert t["params"] < csakd_complexity(p_t, 256)["params"] / 5


def test_conv_macs_counter_on_known_net():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1, groups=2))
    assert conv_macs(net, torch.zeros(1, 3, 5, 6)) == 30 * 8 * 3 * 9 + 30 * 4 * 4
    assert count_params(net) == 8 * 3 * 9 + 8 + 4 * 4 + 4


def _set_qk(net, value: float) -> None:
    with torch.no_grad():
        for conv in (net.fusion.query, net.fusion.key):
            conv.weight.normal_(std=value)
            conv.bias.normal_(std=value)


def test_reference_csa_ignores_qk_default_does_not():
    torch.manual_seed(0)
    lr, msi = inputs(tiny_cfg())
    outs = {}
    for csa in ("reference", "corrected"):
        torch.manual_seed(1)
        net = build_model(tiny_cfg(csa=csa)).eval()
        with torch.no_grad():
            att_a = net.fusion.attend(*(torch.randn(2, 8, 6, 5) for _ in range(3)))
            y_a, _ = net(lr, msi)
            _set_qk(net, 3.0)
            y_b, _ = net(lr, msi)
        outs[csa] = (y_a - y_b).abs().max().item()
        if csa == "reference":  # each head returns the sum of its value channels on every channel
            per_head = att_a.reshape(2, net.fusion.heads, -1, 6, 5)
            assert torch.allclose(per_head, per_head[:, :, :1].expand_as(per_head))
    assert outs["reference"] < 1e-5
    assert outs["corrected"] > 1e-4


def test_corrected_attention_is_size_normalised():
    """L2-normalised Q/K: the logits are bounded by the temperature, whatever the tile size."""
    net = build_model(tiny_cfg())
    fus = net.fusion
    for size in (4, 64):
        z = torch.randn(1, 8, size, size) * 100
        q = torch.nn.functional.normalize(fus.query(z).reshape(1, 2, 4, -1), dim=-1)
        k = torch.nn.functional.normalize(fus.key(z).reshape(1, 2, 4, -1), dim=-1)
        assert (q @ k.transpose(-2, -1)).abs().max() <= 1.0 + 1e-5


def test_gradients_reach_every_parameter():
    for residual in ("bilinear", "none"):
        net = build_model(tiny_cfg(residual=residual, groups={"h": 2}))
        lr, msi = inputs(net.cfg)
        y, f = net(lr, msi)
        (y.square().mean() + f.square().mean()).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
        assert not missing, missing


def test_base_residual_outputs_base_at_init():
    cfg = tiny_cfg(residual="base")
    net = build_model(cfg).eval()
    lr, msi = inputs(cfg)
    base = torch.rand(2, cfg.hsi_bands, 12, 8)
    with torch.no_grad():
        y, _ = net(lr, msi, base=base)
    assert torch.equal(y, base)
    with pytest.raises(ValueError, match="base"):
        net(lr, msi)
    with pytest.raises(ValueError, match="base"):
        build_model(tiny_cfg())(lr, msi, base=base)


def test_residual_modes_and_upsample():
    lr, msi = inputs(tiny_cfg())
    for residual in ("bilinear", "bicubic", "none"):
        for up in ("nearest", "bilinear"):
            net = build_model(tiny_cfg(residual=residual, upsample=up)).eval()
            with torch.no_grad():
                y, _ = net(lr, msi)
            assert y.shape == (2, 7, 12, 8)


def test_bilinear_residual_dominates_untrained_output():
    """A constant LR image upsampled stays constant; the untrained correction is small."""
    cfg = tiny_cfg()
    net = build_model(cfg).eval()
    with torch.no_grad():
        lr = torch.full((1, 7, 3, 2), 0.3)
        y, _ = net(lr, torch.full((1, 3, 12, 8), 0.3))
        net_none = build_model(tiny_cfg(residual="none")).eval()
        net_none.load_state_dict(net.state_dict())
        y0, _ = net_none(lr, torch.full((1, 3, 12, 8), 0.3))
    assert torch.allclose(y - y0, torch.full_like(y, 0.3), atol=1e-6)

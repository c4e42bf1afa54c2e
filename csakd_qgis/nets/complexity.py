"""Parameter and conv-MAC counts of a network for a given input size.

MACs are counted by forward hooks on every ``nn.Conv2d``: output elements * (in_ch / groups) * kh * kw
(bias additions, activations, interpolation, softmax and elementwise ops are not counted). The CSA
attention matrix products (Q K^T and A V: 2 * d * (d / heads) * H * W MACs) are NOT in ``macs``,
the "conv MACs" we report; they are reported separately as ``attn_macs``. The forward runs on the
``meta`` device by default, so even the paper teacher at 256 x 256 is counted without computing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (unique tensors), optionally only those with requires_grad."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_macs(model: nn.Module, *inputs: torch.Tensor, **kwargs: Any) -> int:
    """Conv2d MACs of one forward of ``model(*inputs, **kwargs)`` (batch included) by forward hooks."""
    total = 0

    def hook(mod: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() * (mod.in_channels // mod.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def csakd_complexity(cfg: Any, hr_size: int = 256, device: str = "meta") -> dict[str, int]:
    """{"params", "macs", "attn_macs"} of a CSAKD network for one HR tile ``hr_size`` (batch 1).

    ``hr_size`` is rounded down to a multiple of the scale; the LR size is hr_size / scale.
    """
    from csakd_qgis.nets.csakd import CSAKDConfig, build_model

    if isinstance(cfg, dict):
        cfg = CSAKDConfig.from_dict(cfg)
    s = cfg.scale
    lr_size = max(1, int(hr_size) // s)
    hr = lr_size * s
    with torch.device(device):
        model = build_model(cfg).eval()
        lr = torch.zeros(1, cfg.hsi_bands, lr_size, lr_size)
        msi = torch.zeros(1, cfg.msi_bands, hr, hr)
        base = torch.zeros(1, cfg.hsi_bands, hr, hr) if cfg.residual == "base" else None
    macs = conv_macs(model, lr, msi, base=base)
    attn = 2 * cfg.d * (cfg.d // cfg.heads) * hr * hr
    return {"params": count_params(model), "macs": macs, "attn_macs": attn}


def preset_complexity(preset: str, hsi_bands: int, msi_bands: int, scale: int, hr_size: int = 256
                      ) -> dict[str, dict[str, int]]:
    """{"teacher": {...}, "student": {...}} complexity of a named preset (see csakd.preset_configs)."""
    from csakd_qgis.nets.csakd import preset_configs

    teacher, student = preset_configs(preset, hsi_bands, msi_bands, scale)
    return {"teacher": csakd_complexity(teacher, hr_size), "student": csakd_complexity(student, hr_size)}

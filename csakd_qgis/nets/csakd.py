"""CSAKD fusion network : four feature streams, CSA fusion, head, optional global residual.

Inputs: LR-HSI ``lr`` (B, C_h, h, w) and HR-MSI ``msi`` (B, C_m, s*h, s*w); output HR-HSI
(B, C_h, s*h, s*w) and the fused feature map F (the distilled feature). The HR size must be exactly
``scale`` times the LR size: callers pad or crop their windows to a multiple of ``scale``.

Grid convention (LR/HR pixel grid): LR pixel (i, j) covers HR pixels [i*s, (i+1)*s) x [j*s, (j+1)*s). The
bilinear upsampling of X_h (align_corners=False), the s x s block mean that brings X_m to LR and the
nearest upsampling of LR features all follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from csakd_qgis.nets.blocks import CSA_MODES, CSAFusion, Stream, lrelu
from csakd_qgis.nets.config import DictConfig

STREAMS = ("hm", "mh", "h", "m")
RESIDUAL_MODES = ("bilinear", "bicubic", "none", "base")
UPSAMPLE_MODES = ("nearest", "bilinear")
PRESETS = ("paper", "lite")


def _streams(hm: int, mh: int, h: int, m: int) -> dict[str, int]:
    return {"hm": hm, "mh": mh, "h": h, "m": m}


@dataclass
class CSAKDConfig(DictConfig):
    """Architecture of one CSAKD network (teacher or student); JSON-serialisable via to_dict.

    - ``blocks``: CLRA blocks per stream, keys ``hm`` (HR joint), ``mh`` (LR joint), ``h`` (HSI, LR),
      ``m`` (MSI, HR); 0 = stem only.
    - ``groups``: conv groups of each stream's CLRA blocks (the paper student uses h = nf // 2).
    - ``residual``: ``"bilinear"`` (default: add the bilinearly upsampled LR-HSI),
      ``"bicubic"`` (bicubic-upsampled LR-HSI, same grid convention), ``"none"`` (reference parity) or
      ``"base"`` (forward gets a ``base`` HR-HSI, e.g. a classical fusion, and the net predicts a
      correction; the last head conv is zero-initialised so the untrained net returns ``base``).
    - ``csa``: ``"corrected"`` (default) or ``"reference"`` (reproduces the reference attention bug).
    - ``upsample``: how LR-stream features reach HR: ``"nearest"`` (reference) or ``"bilinear"``.
    - ``zero_head``: zero-initialise the last head conv so the untrained net outputs its residual
      (always on for ``residual="base"``; off = PyTorch default init, as the reference).
    """

    hsi_bands: int
    msi_bands: int
    scale: int = 4
    nf: int = 32
    gc: int = 16
    heads: int = 4
    d: int = 32
    blocks: dict[str, int] = field(default_factory=lambda: _streams(6, 6, 4, 4))
    groups: dict[str, int] = field(default_factory=lambda: _streams(1, 1, 1, 1))
    residual: str = "bilinear"
    csa: str = "corrected"
    upsample: str = "nearest"
    zero_head: bool = False
    arch: str = "csakd"

    def __post_init__(self) -> None:
        self.blocks = {k: int(self.blocks.get(k, 0)) for k in STREAMS}
        self.groups = {k: int(self.groups.get(k, 1)) for k in STREAMS}
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        if self.arch != "csakd":
            raise ValueError(f"CSAKDConfig.arch must be 'csakd', got {self.arch!r}")
        for name in ("hsi_bands", "msi_bands", "nf", "gc", "heads", "d"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CSAKDConfig.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.scale) < 2:
            raise ValueError(f"CSAKDConfig.scale must be an integer >= 2, got {self.scale}")
        if self.residual not in RESIDUAL_MODES:
            raise ValueError(f"CSAKDConfig.residual must be one of {RESIDUAL_MODES}, got {self.residual!r}")
        if self.csa not in CSA_MODES:
            raise ValueError(f"CSAKDConfig.csa must be one of {CSA_MODES}, got {self.csa!r}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"CSAKDConfig.upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.d % self.heads:
            raise ValueError(f"CSAKDConfig.d={self.d} must be divisible by heads={self.heads}")
        if any(b < 0 for b in self.blocks.values()):
            raise ValueError(f"CSAKDConfig.blocks must be >= 0, got {self.blocks}")


def preset_configs(name: str, hsi_bands: int, msi_bands: int, scale: int, **overrides: Any
                   ) -> tuple[CSAKDConfig, CSAKDConfig]:
    """(teacher_cfg, student_cfg) of a preset; ``overrides`` (e.g. residual, csa, upsample) go to both.

    - ``paper``: nf 86, gc 43, 4 heads, d 64; teacher blocks hm/mh/h/m = 6/6/4/4; student 0/4/4/1 with
      the Z_h stream grouped (groups = nf / 2).
    - ``lite``: nf 32, gc 16, 4 heads, d 32; teacher 6/6/4/4; student 0/3/3/0 with Z_h grouped
      (groups = nf / 2). The student has <= 1/3 of the teacher's parameters and <= 1/5 of its conv
      MACs (at 172 HSI bands, 4 MSI bands, s = 4), the paper's ratios.
    """
    if name == "paper":
        nf, gc, d = 86, 43, 64
        t_blocks, s_blocks = _streams(6, 6, 4, 4), _streams(0, 4, 4, 1)
    elif name == "lite":
        nf, gc, d = 32, 16, 32
        t_blocks, s_blocks = _streams(6, 6, 4, 4), _streams(0, 3, 3, 0)
    else:
        raise ValueError(f"unknown preset {name!r}: choose one of {PRESETS}")
    common = dict(hsi_bands=int(hsi_bands), msi_bands=int(msi_bands), scale=int(scale), nf=nf, gc=gc,
                  heads=4, d=d)
    common.update(overrides)
    teacher = CSAKDConfig(blocks=t_blocks, **common)
    student = CSAKDConfig(blocks=s_blocks, groups=_streams(1, 1, nf // 2, 1), **common)
    return teacher, student


class CSAKDNet(nn.Module):
    """The CSAKD body: streams Z_hm, Z_mh, Z_h, Z_m -> CSA fusion -> head (+ global residual)."""

    def __init__(self, cfg: CSAKDConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ch, cm, nf, gc = cfg.hsi_bands, cfg.msi_bands, cfg.nf, cfg.gc
        b, g = cfg.blocks, cfg.groups
        self.z_hm = Stream(ch + cm, nf, gc, b["hm"], g["hm"])
        self.z_mh = Stream(ch + cm, nf, gc, b["mh"], g["mh"])
        self.z_h = Stream(ch, nf, gc, b["h"], g["h"])
        self.z_m = Stream(cm, nf, gc, b["m"], g["m"])
        self.fusion = CSAFusion(nf, cfg.d, cfg.heads, cfg.csa)
        self.head1 = nn.Conv2d(nf, ch, 3, 1, 1, bias=True)
        self.act = lrelu()
        self.head2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        if cfg.residual == "base" or cfg.zero_head:
            nn.init.zeros_(self.head2.weight)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        s = self.cfg.scale
        if self.cfg.upsample == "nearest":
            return F.interpolate(x, scale_factor=s, mode="nearest")
        return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)

    def _check(self, lr: torch.Tensor, msi: torch.Tensor, base: torch.Tensor | None) -> None:
        c, s = self.cfg, self.cfg.scale
        if lr.dim() != 4 or msi.dim() != 4:
            raise ValueError(f"expected 4-D (B, C, H, W) inputs, got lr {tuple(lr.shape)}, "
                             f"msi {tuple(msi.shape)}")
        if lr.shape[1] != c.hsi_bands or msi.shape[1] != c.msi_bands:
            raise ValueError(f"the network expects {c.hsi_bands} HSI and {c.msi_bands} MSI bands, got "
                             f"{lr.shape[1]} and {msi.shape[1]}")
        if msi.shape[-2:] != (lr.shape[-2] * s, lr.shape[-1] * s) or lr.shape[0] != msi.shape[0]:
            raise ValueError(f"the HR-MSI size {tuple(msi.shape[-2:])} must be scale={s} times the "
                             f"LR-HSI size {tuple(lr.shape[-2:])}: pad or crop to a multiple of {s}")
        if c.residual == "base":
            if base is None:
                raise ValueError("residual='base' needs a base HR-HSI tensor (e.g. a classical fusion)")
            if base.shape != (lr.shape[0], c.hsi_bands, *msi.shape[-2:]):
                raise ValueError(f"base has shape {tuple(base.shape)}, expected "
                                 f"{(lr.shape[0], c.hsi_bands, *msi.shape[-2:])}")
        elif base is not None:
            raise ValueError(f"a base tensor was given but residual={c.residual!r}; use residual='base'")

    def forward(self, lr: torch.Tensor, msi: torch.Tensor, base: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (HR-HSI (B, C_h, sH, sW), fused feature F (B, nf, sH, sW))."""
        self._check(lr, msi, base)
        s = self.cfg.scale
        lr_up = F.interpolate(lr, scale_factor=s, mode="bilinear", align_corners=False)
        msi_down = F.avg_pool2d(msi, s)  # s x s block mean = area downsampling on the LR grid
        z_hm = self.z_hm(torch.cat((lr_up, msi), 1))
        z_mh = self._up(self.z_mh(torch.cat((lr, msi_down), 1)))
        z_h = self._up(self.z_h(lr))
        z_m = self.z_m(msi)
        feat = self.fusion(z_h, z_m, z_mh, z_hm)
        out = self.head2(self.act(self.head1(feat)))
        mode = self.cfg.residual
        if mode == "bilinear":
            out = out + lr_up
        elif mode == "bicubic":
            out = out + F.interpolate(lr, scale_factor=s, mode="bicubic", align_corners=False)
        elif mode == "base":
            out = out + base
        return out, feat


def build_model(cfg: CSAKDConfig | dict[str, Any]) -> CSAKDNet:
    """A freshly initialised CSAKD network for ``cfg`` (a CSAKDConfig or its dict form)."""
    if isinstance(cfg, dict):
        cfg = CSAKDConfig.from_dict(cfg)
    return CSAKDNet(cfg)

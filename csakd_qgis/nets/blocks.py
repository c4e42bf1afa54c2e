"""Building blocks of the CSAKD body : dense residual unit, CLRA block, CSA fusion.

Pure torch; imported only by code that needs the networks (never at QGIS plugin load).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
RES_SCALE = 0.2


def lrelu() -> nn.LeakyReLU:
    """LeakyReLU(0.2), the activation used everywhere in the body."""
    return nn.LeakyReLU(negative_slope=LRELU_SLOPE)


def init_scaled_kaiming(convs: list[nn.Conv2d], scale: float = 0.1) -> None:
    """Kaiming-normal (fan_in) weights scaled by ``scale``, zero bias (ESRGAN-style residual init)."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
        with torch.no_grad():
            conv.weight.mul_(scale)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


class DenseResidualUnit(nn.Module):
    """Five 3x3 convs on a growing concatenation; output = x + 0.2 * conv5(...).

    Inputs of the convs: nf, nf+gc, nf+2gc, nf+3gc, nf+4gc channels; the first four output ``gc``
    (followed by LReLU), the fifth outputs ``nf`` with no activation. ``groups`` applies to all five.
    """

    def __init__(self, nf: int, gc: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        for i, c_in in enumerate(range(nf, nf + 5 * gc, gc)):
            c_out = gc if i < 4 else nf
            if c_in % groups or c_out % groups:
                raise ValueError(f"groups={groups} must divide every conv width of the dense unit "
                                 f"(nf={nf}, gc={gc})")
            setattr(self, f"conv{i + 1}", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias, groups=groups))
        self.act = lrelu()
        init_scaled_kaiming([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.act(self.conv1(x))
        x2 = self.act(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + RES_SCALE * x5


class CLRABlock(nn.Module):
    """Cross-layer residual aggregation: three dense residual units; output = x + 0.2 * units(x)."""

    def __init__(self, nf: int, gc: int, groups: int = 1) -> None:
        super().__init__()
        self.units = nn.Sequential(*(DenseResidualUnit(nf, gc, groups) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RES_SCALE * self.units(x)


class Stream(nn.Module):
    """One feature stream: 3x3 conv stem (in_ch -> nf) + LReLU, then ``n_blocks`` CLRA blocks."""

    def __init__(self, in_ch: int, nf: int, gc: int, n_blocks: int, groups: int = 1) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_ch, nf, 3, 1, 1, bias=True)
        self.act = lrelu()
        self.blocks = nn.Sequential(*(CLRABlock(nf, gc, groups) for _ in range(n_blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act(self.stem(x)))


CSA_MODES = ("corrected", "reference")


class CSAFusion(nn.Module):
    """Cross self-attention fusion of the four HR feature maps .

    Q from Z_h, K from Z_m, V from Z_mh (all nf -> d by 1x1 convs, split into ``heads``); channel
    attention per head. ``mode="corrected"``: Q and K are L2-normalised along the spatial axis and
    scaled by a learnable per-head temperature, ``out = softmax(Q K^T t) V`` (same key index).
    ``mode="reference"`` reproduces the reference einsum bug: the key index of A and V differ, so
    each head returns the sum of its value channels copied to every channel (Q, K have no effect).
    Then ``attended = 1x1 conv(out) + Z_hm``; a sigmoid 1x1 gate on the concatenation of
    [Z_h, Z_m, Z_mh, attended] gives one weight per pixel per stream; output = weighted sum.
    """

    def __init__(self, nf: int, d: int = 64, heads: int = 4, mode: str = "corrected") -> None:
        super().__init__()
        if mode not in CSA_MODES:
            raise ValueError(f"csa must be one of {CSA_MODES}, got {mode!r}")
        if d % heads:
            raise ValueError(f"attention width d={d} must be divisible by heads={heads}")
        self.mode, self.heads, self.dh = mode, heads, d // heads
        self.query = nn.Conv2d(nf, d, 1)
        self.key = nn.Conv2d(nf, d, 1)
        self.value = nn.Conv2d(nf, d, 1)
        self.proj = nn.Conv2d(d, nf, 1)
        self.gate = nn.Conv2d(4 * nf, 4, 1)
        if mode == "corrected":
            self.temperature = nn.Parameter(torch.ones(heads, 1, 1))

    def attend(self, z_h: torch.Tensor, z_m: torch.Tensor, z_mh: torch.Tensor) -> torch.Tensor:
        """Multi-head channel attention; returns (B, d, H, W) before the output projection."""
        b, _, h, w = z_h.shape
        q = self.query(z_h).reshape(b, self.heads, self.dh, h * w)
        k = self.key(z_m).reshape(b, self.heads, self.dh, h * w)
        v = self.value(z_mh).reshape(b, self.heads, self.dh, h * w)
        if self.mode == "corrected":
            q = F.normalize(q, dim=-1)
            k = F.normalize(k, dim=-1)
            attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.temperature, dim=-1)
            out = torch.matmul(attn, v)
        else:  # the reference's einsum, key letters of A and V deliberately different
            attn = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) / self.dh ** 0.5, dim=-1)
            out = torch.einsum("bhqk,bhvd->bhqd", attn, v)
        return out.reshape(b, self.heads * self.dh, h, w)

    def forward(self, z_h: torch.Tensor, z_m: torch.Tensor, z_mh: torch.Tensor,
                z_hm: torch.Tensor) -> torch.Tensor:
        attended = self.proj(self.attend(z_h, z_m, z_mh)) + z_hm
        g = torch.sigmoid(self.gate(torch.cat((z_h, z_m, z_mh, attended), 1)))
        return g[:, 0:1] * z_h + g[:, 1:2] * z_m + g[:, 2:3] * z_mh + g[:, 3:4] * attended

"""DODN-style single-image hyperspectral super-resolution with privileged MSI knowledge (DODN-style).

This is OUR RECONSTRUCTION from the DODN paper's abstract, not the authors' network: only the abstract is
public. What the abstract confirms: at inference the student sees only the LR-HSI; paired MSI-HSI data
are used only in training; a 2D-CNN spectral super-resolution teacher (HR-MSI -> HR-HSI) transfers
spatial knowledge; the student is built from mixed 2D/3D blocks (DODB) whose 3D branch models
spectral-spatial correlation and whose 2D branch receives the teacher's knowledge by distillation.
Everything else below (widths, depths, the spectral stem, the read-out, the upsampler, the adapter) is
our choice.

- Teacher (:class:`DODNTeacher`): residual 2D CNN on the HR-MSI: 3x3 stem (C_m -> nf) + LReLU,
  ``n_blocks`` residual blocks (conv3x3-LReLU-conv3x3, skip), 3x3 body conv + global feature skip ->
  F_T (B, nf, sH, sW), head (C_h). Forward ``teacher(msi) -> (Y_T, F_T)``.
- Student (:class:`DODNStudent`), all at LR until the upsampler:
  1. spectral stem: Conv3d(1 -> c3d, kernel (r, 3, 3), stride (r, 1, 1)) over (band, y, x) of the LR-HSI
     (bands edge-padded to r * depth), so the 3D features are (B, c3d, depth, h, w): ``depth`` band
     positions of r adjacent bands each (r = ceil(C_h / depth));
  2. ``n_blocks`` DODB blocks: 3D branch = two 3x3x3 Conv3d over (band, y, x) with LReLU between;
     2D branch = the input folded to (B, c3d * depth, h, w) (bands into channels) -> conv3x3 (-> nf) ->
     LReLU -> conv3x3 (nf); merge = 1x1 conv of [folded 3D output, 2D output] -> c3d * depth, unfolded
     and added to the block input (residual);
  3. 2D read-out: 1x1 conv of [all blocks' 2D-branch outputs, folded last 3D features] -> nf, + LReLU,
     3x3 conv (global 2D feature fusion);
  4. upsampler: conv3x3 nf -> nf * s^2 + PixelShuffle(s) + LReLU -> F_S (B, nf, sH, sW), the student's
     2D-branch features after upsampling (any integer s >= 2);
  5. head conv (``head_kernel`` 1 or 3) nf -> C_h, zero-initialised (``zero_head``) so the untrained
     student returns its global residual: the upsampled LR-HSI (``residual`` = "bicubic", the Keys a=-0.5
     cubic of :func:`raster.resample.upsample_bicubic`, edges replicated; or "bilinear"; or "none").
  Forward ``student(lr) -> (Y_S, F_S)``.
- Distillation (:class:`DODNStudentKD`, training only): a 1x1 adapter maps F_S (nf) to the teacher's
  feature width (``kd_width``); :class:`DODNPair` matches it to F_T with L1, plus L1 to the ground truth
  and to the teacher output. The exported student (:meth:`DODNStudentKD.export_module`) is the bare
  :class:`DODNStudent`: neither the adapter nor the teacher is in its weights.

Pure torch (imported only where the networks are needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from csakd_qgis.nets.blocks import init_scaled_kaiming, lrelu
from csakd_qgis.nets.config import DictConfig

NETS = ("teacher", "student")
RESIDUAL_MODES = ("bicubic", "bilinear", "none")
PRESETS = ("paper", "lite")


@dataclass
class DODNConfig(DictConfig):
    """Architecture of one DODN-style network (``net`` = "teacher" or "student"); JSON via to_dict/from_dict.

    Shared: ``hsi_bands`` (C_h), ``msi_bands`` (C_m), ``scale`` (s), ``nf`` (2D feature width),
    ``n_blocks`` (teacher residual blocks / student DODB blocks), ``head_kernel`` (1 or 3).
    Student only: ``c3d`` (3D-branch channels), ``depth`` (band positions of the 3D features),
    ``kd_width`` (the teacher's feature width, the output width of the training-only adapter),
    ``residual`` (global residual from the upsampled LR-HSI: "bicubic" | "bilinear" | "none"),
    ``zero_head`` (zero-init the head so training starts at the residual image).
    The teacher sees only the HR-MSI, so its ``residual`` is always "none".
    """

    hsi_bands: int
    msi_bands: int
    scale: int = 4
    net: str = "student"
    nf: int = 32
    n_blocks: int = 3
    head_kernel: int = 3
    c3d: int = 8
    depth: int = 16
    kd_width: int = 64
    residual: str = "bicubic"
    zero_head: bool = True
    arch: str = "dodn"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        if self.arch != "dodn":
            raise ValueError(f"DODNConfig.arch must be 'dodn', got {self.arch!r}")
        if self.net not in NETS:
            raise ValueError(f"DODNConfig.net must be one of {NETS}, got {self.net!r}")
        for name in ("hsi_bands", "msi_bands", "nf", "n_blocks", "c3d", "depth", "kd_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DODNConfig.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.scale) < 2:
            raise ValueError(f"DODNConfig.scale must be an integer >= 2, got {self.scale}")
        if self.head_kernel not in (1, 3):
            raise ValueError(f"DODNConfig.head_kernel must be 1 or 3, got {self.head_kernel}")
        if self.residual not in RESIDUAL_MODES:
            raise ValueError(f"DODNConfig.residual must be one of {RESIDUAL_MODES}, got {self.residual!r}")
        if self.net == "teacher" and self.residual != "none":
            raise ValueError("the DODN teacher sees only the HR-MSI: its residual must be 'none'")


def preset_configs(name: str, hsi_bands: int, msi_bands: int, scale: int, **overrides: Any
                   ) -> tuple[DODNConfig, DODNConfig]:
    """(teacher_cfg, student_cfg) of a preset; ``overrides`` go to the student (e.g. residual, zero_head).

    - ``paper`` (paper-like scale, for GPUs): teacher nf 128, 8 residual blocks, 3x3 head; student nf 64,
      6 DODB blocks, c3d 16, depth min(C_h, 32), 3x3 head.
    - ``lite`` (CPU-trainable): teacher nf 64, 4 residual blocks, 3x3 head; student nf 32, 3 DODB blocks,
      c3d 8, depth min(C_h, 16), 1x1 head.
    Unknown ``overrides`` keys raise ValueError (via the dataclass); "residual" "base" is refused.
    """
    c_h, c_m, s = int(hsi_bands), int(msi_bands), int(scale)
    if name == "paper":
        t = dict(nf=128, n_blocks=8, head_kernel=3)
        st = dict(nf=64, n_blocks=6, c3d=16, depth=min(c_h, 32), head_kernel=3)
    elif name == "lite":
        t = dict(nf=64, n_blocks=4, head_kernel=3)
        st = dict(nf=32, n_blocks=3, c3d=8, depth=min(c_h, 16), head_kernel=1)
    else:
        raise ValueError(f"unknown preset {name!r}: choose one of {PRESETS}")
    overrides = dict(overrides)
    if overrides.get("residual", "bicubic") not in RESIDUAL_MODES:
        raise ValueError(f"the DODN student's residual must be one of {RESIDUAL_MODES}, got "
                         f"{overrides['residual']!r}")
    teacher = DODNConfig(hsi_bands=c_h, msi_bands=c_m, scale=s, net="teacher", residual="none",
                         kd_width=t["nf"], **t)
    student = DODNConfig(hsi_bands=c_h, msi_bands=c_m, scale=s, net="student", kd_width=t["nf"],
                         **{**st, **overrides})
    return teacher, student


# ------------------------------------------------------------------------------------------ upsampling
def _keys_weights(frac: float, a: float = -0.5) -> list[float]:
    """Keys cubic-convolution weights of the taps -1, 0, 1, 2 (same as fusion.classical._keys_weights)."""
    out = []
    for d in (1 + frac, frac, 1 - frac, 2 - frac):
        if d <= 1:
            w = (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
        elif d < 2:
            w = a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
        else:
            w = 0.0
        out.append(w)
    total = sum(out)
    return [w / total for w in out]


def _cubic_axis(x: torch.Tensor, s: int, dim: int) -> torch.Tensor:
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    xp = torch.cat((x[..., :1], x[..., :1], x, x[..., -1:], x[..., -1:]), -1)
    phases = []
    for r in range(s):
        t = (r + 0.5) / s - 0.5  # LR offset of HR phase r from its parent LR centre (LR/HR pixel grid)
        base = math.floor(t)
        w = _keys_weights(t - base)
        acc = None
        for k in range(4):
            start = 2 + base - 1 + k
            term = w[k] * xp[..., start:start + n]
            acc = term if acc is None else acc + term
        phases.append(acc)
    out = torch.stack(phases, -1).reshape(*x.shape[:-1], n * s)
    return out.movedim(-1, dim)


def bicubic_upsample(x: torch.Tensor, s: int) -> torch.Tensor:
    """Keys (a = -0.5) cubic upsampling of (..., h, w) by the integer s on the LR/HR pixel grid (docs/ARCHITECTURE.md), edges replicated.

    Equal (to float rounding) to :func:`raster.resample.upsample_bicubic`, the project's bicubic baseline.
    """
    return _cubic_axis(_cubic_axis(x, int(s), -1), int(s), -2)


def upsample_residual(lr: torch.Tensor, s: int, mode: str) -> torch.Tensor | None:
    """The global residual image of a student (None for mode "none")."""
    if mode == "bicubic":
        return bicubic_upsample(lr, s)
    if mode == "bilinear":
        return F.interpolate(lr, scale_factor=s, mode="bilinear", align_corners=False)
    return None


# ------------------------------------------------------------------------------------------ teacher
class ResBlock2d(nn.Module):
    """conv3x3 - LReLU - conv3x3 with an identity skip (scaled-Kaiming init, ESRGAN-style)."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.act = lrelu()
        init_scaled_kaiming([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class DODNTeacher(nn.Module):
    """Spectral super-resolution teacher: HR-MSI (B, C_m, H, W) -> (HR-HSI (B, C_h, H, W), F_T (B, nf, H, W))."""

    def __init__(self, cfg: DODNConfig) -> None:
        super().__init__()
        cfg.validate()
        if cfg.net != "teacher":
            raise ValueError("DODNTeacher needs a config with net='teacher'")
        self.cfg = cfg
        nf = cfg.nf
        self.stem = nn.Conv2d(cfg.msi_bands, nf, 3, 1, 1)
        self.act = lrelu()
        self.blocks = nn.Sequential(*(ResBlock2d(nf) for _ in range(cfg.n_blocks)))
        self.body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.head = nn.Conv2d(nf, cfg.hsi_bands, cfg.head_kernel, 1, cfg.head_kernel // 2)

    def forward(self, msi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (HR-HSI estimate, teacher feature F_T)."""
        if msi.dim() != 4 or msi.shape[1] != self.cfg.msi_bands:
            raise ValueError(f"the DODN teacher expects (B, {self.cfg.msi_bands}, H, W) MSI, got "
                             f"{tuple(msi.shape)}")
        x = self.act(self.stem(msi))
        feat = self.act(self.body(self.blocks(x)) + x)
        return self.head(feat), feat


# ------------------------------------------------------------------------------------------ student
def _fold(x: torch.Tensor) -> torch.Tensor:
    """(B, c, D, h, w) -> (B, c * D, h, w): the band axis folded into channels."""
    b, c, d, h, w = x.shape
    return x.reshape(b, c * d, h, w)


class DODB(nn.Module):
    """Dual-branch block: 3D branch (3x3x3 over band, y, x) + 2D branch (3x3 on band-folded features).

    Input/output (B, c3d, depth, h, w); also returns the 2D-branch output (B, nf, h, w).
    """

    def __init__(self, c3d: int, depth: int, nf: int) -> None:
        super().__init__()
        self.conv3a = nn.Conv3d(c3d, c3d, 3, 1, 1)
        self.conv3b = nn.Conv3d(c3d, c3d, 3, 1, 1)
        self.conv2a = nn.Conv2d(c3d * depth, nf, 3, 1, 1)
        self.conv2b = nn.Conv2d(nf, nf, 3, 1, 1)
        self.merge = nn.Conv2d(c3d * depth + nf, c3d * depth, 1)
        self.act = lrelu()
        init_scaled_kaiming([self.conv3a, self.conv3b, self.conv2a, self.conv2b], 1.0)
        init_scaled_kaiming([self.merge], 0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y3 = self.conv3b(self.act(self.conv3a(x)))
        y2 = self.conv2b(self.act(self.conv2a(_fold(x))))
        m = self.merge(torch.cat((_fold(y3), y2), 1))
        return x + m.view_as(x), y2


class DODNStudent(nn.Module):
    """Single-image SR student: LR-HSI (B, C_h, h, w) -> (HR-HSI (B, C_h, sh, sw), F_S (B, nf, sh, sw)).

    Needs no MSI. This is the module that is exported (no KD adapter inside).
    """

    def __init__(self, cfg: DODNConfig) -> None:
        super().__init__()
        cfg.validate()
        if cfg.net != "student":
            raise ValueError("DODNStudent needs a config with net='student'")
        self.cfg = cfg
        c_h, c3d, depth, nf, s = cfg.hsi_bands, cfg.c3d, cfg.depth, cfg.nf, cfg.scale
        self.group = -(-c_h // depth)  # bands per 3D band position
        self.band_pad = self.group * depth - c_h
        self.stem = nn.Conv3d(1, c3d, (self.group, 3, 3), (self.group, 1, 1), (0, 1, 1))
        self.act = lrelu()
        self.blocks = nn.ModuleList(DODB(c3d, depth, nf) for _ in range(cfg.n_blocks))
        self.fusion = nn.Conv2d(cfg.n_blocks * nf + c3d * depth, nf, 1)
        self.body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.up = nn.Conv2d(nf, nf * s * s, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(s)
        self.head = nn.Conv2d(nf, c_h, cfg.head_kernel, 1, cfg.head_kernel // 2)
        if cfg.zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        """F_S: the 2D-branch features after upsampling (B, nf, s*h, s*w)."""
        x = lr.unsqueeze(1)  # (B, 1, C_h, h, w)
        if self.band_pad:
            x = torch.cat((x, x[:, :, -1:].expand(-1, -1, self.band_pad, -1, -1)), 2)
        x = self.act(self.stem(x))  # (B, c3d, depth, h, w)
        outs_2d = []
        for block in self.blocks:
            x, y2 = block(x)
            outs_2d.append(y2)
        f = self.act(self.fusion(torch.cat((*outs_2d, _fold(x)), 1)))
        f = self.body(f)
        return self.act(self.shuffle(self.up(f)))

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (HR-HSI estimate, F_S)."""
        c = self.cfg
        if lr.dim() != 4 or lr.shape[1] != c.hsi_bands:
            raise ValueError(f"the DODN student expects (B, {c.hsi_bands}, h, w) LR-HSI, got {tuple(lr.shape)}")
        feat = self.features(lr)
        out = self.head(feat)
        res = upsample_residual(lr, c.scale, c.residual)
        if res is not None:
            out = out + res
        return out, feat


class DODNStudentKD(nn.Module):
    """Training-time student: the exported :class:`DODNStudent` (``net``) plus the 1x1 KD ``adapter``.

    ``forward(lr) -> (Y_S, adapter(F_S))`` (the adapted features, width ``cfg.kd_width``, are what the
    loss compares with F_T). :meth:`export_module` returns the bare student, without the adapter.
    """

    def __init__(self, cfg: DODNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = DODNStudent(cfg)
        self.adapter = nn.Conv2d(cfg.nf, cfg.kd_width, 1)

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, feat = self.net(lr)
        return y, self.adapter(feat)

    def export_module(self) -> DODNStudent:
        """The inference network (what is saved: no adapter, no teacher)."""
        return self.net


def build_model(cfg: DODNConfig | dict[str, Any], training: bool = False) -> nn.Module:
    """A fresh network for ``cfg``: teacher, student, or (``training`` and a student) the student + KD adapter."""
    if isinstance(cfg, dict):
        cfg = DODNConfig.from_dict(cfg)
    if cfg.net == "teacher":
        return DODNTeacher(cfg)
    return DODNStudentKD(cfg) if training else DODNStudent(cfg)


def build_training_model(cfg: DODNConfig | dict[str, Any]) -> nn.Module:
    """The network the training loop optimises for ``cfg`` (a student gets its KD adapter)."""
    return build_model(cfg, training=True)


# ------------------------------------------------------------------------------------------ complexity
def conv_macs_3d(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Conv2d + Conv3d MACs of one forward (output elements * in/groups * kernel volume)."""
    total = 0

    def hook(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def dodn_complexity(cfg: DODNConfig | dict[str, Any], hr_size: int = 256, device: str = "meta"
                    ) -> dict[str, int]:
    """{"params", "macs"} of the exported network (teacher or student, no adapter) for one HR tile."""
    if isinstance(cfg, dict):
        cfg = DODNConfig.from_dict(cfg)
    s = cfg.scale
    lr_size = max(1, int(hr_size) // s)
    with torch.device(device):
        model = build_model(cfg).eval()
        x = (torch.zeros(1, cfg.msi_bands, lr_size * s, lr_size * s) if cfg.net == "teacher"
             else torch.zeros(1, cfg.hsi_bands, lr_size, lr_size))
    return {"params": sum(p.numel() for p in model.parameters()), "macs": conv_macs_3d(model, x)}


def preset_complexity(preset: str, hsi_bands: int, msi_bands: int, scale: int, hr_size: int = 256
                      ) -> dict[str, dict[str, int]]:
    """{"teacher": {...}, "student": {...}} complexity of a DODN preset."""
    teacher, student = preset_configs(preset, hsi_bands, msi_bands, scale)
    return {"teacher": dodn_complexity(teacher, hr_size), "student": dodn_complexity(student, hr_size)}


__all__ = ["DODB", "DODNConfig", "DODNStudent", "DODNStudentKD", "DODNTeacher", "NETS", "PRESETS",
           "bicubic_upsample", "build_model", "build_training_model", "dodn_complexity", "preset_complexity",
           "preset_configs", "upsample_residual"]

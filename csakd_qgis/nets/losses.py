"""KD joint losses (all on (B, C, H, W) tensors, bands on axis 1).

Teacher: L_T = L1 + 0.1 SAM + 0.1 BEBA.  Student: L_S = L1 + 0.1 SAM + 0.1 BEBA + 0.1 L1(Y_S, Y_T)
+ 0.1 FeatKD(F_S, F_T), teacher outputs detached. Weights and choices live in :class:`LossWeights`.

Feature KD default: ``"mse"`` (mean squared error between F_S and the detached F_T; zero when they
agree). ``"bce"`` reproduces the reference (binary cross-entropy with sigmoid(F_S) used as logits
and sigmoid(F_T) as targets; its minimum is not zero); ``"none"`` switches feature KD off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

FEAT_KD_KINDS = ("mse", "bce", "none")
SAM_KINDS = ("angle", "cosine", "norm_weighted")


@dataclass
class LossWeights:
    """Weights of the loss terms (defaults of the CSAKD paper) and the SAM / feature-KD variants."""

    l1: float = 1.0
    sam: float = 0.1
    beba: float = 0.1
    response_kd: float = 0.1
    feat_kd: float = 0.1
    feat_kd_kind: str = "mse"
    sam_kind: str = "angle"

    def __post_init__(self) -> None:
        if self.feat_kd_kind not in FEAT_KD_KINDS:
            raise ValueError(f"feat_kd_kind must be one of {FEAT_KD_KINDS}, got {self.feat_kd_kind!r}")
        if self.sam_kind not in SAM_KINDS:
            raise ValueError(f"sam_kind must be one of {SAM_KINDS}, got {self.sam_kind!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        return asdict(self)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (real L1, not the reference's SmoothL1)."""
    return (pred - target).abs().mean()


def sam_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "angle", eps: float = 1e-8
             ) -> torch.Tensor:
    """Mean over pixels of the spectral angle (radians) between spectra along the band axis (dim 1).

    ``kind="angle"`` uses the stable form 2 * atan2(|u - v|, |u + v|) of the unit spectra u, v (finite
    gradients at zero angle); ``kind="cosine"`` returns mean(1 - cos); ``kind="norm_weighted"`` averages
    the angle weighted by the target spectrum's norm (robust to dark, noisy spectra). Both are 0 when every predicted
    spectrum is a positive multiple of the true one; all-zero spectra are guarded by ``eps``.
    """
    u = pred / (torch.linalg.vector_norm(pred, dim=1, keepdim=True) + eps)
    v = target / (torch.linalg.vector_norm(target, dim=1, keepdim=True) + eps)
    if kind == "cosine":
        return (1.0 - (u * v).sum(dim=1)).mean()
    if kind not in SAM_KINDS:
        raise ValueError(f"sam kind must be one of {SAM_KINDS}, got {kind!r}")
    num = torch.linalg.vector_norm(u - v, dim=1)
    den = torch.linalg.vector_norm(u + v, dim=1)
    angle = 2.0 * torch.atan2(num, den)
    if kind == "norm_weighted":  # dark spectra (water, shadow) have fragile angles: weight by the target's norm
        w = torch.linalg.vector_norm(target, dim=1).detach()
        return (angle * w).sum() / (w.sum() + eps)
    return angle.mean()


def beba(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Band-energy balance: mean over samples and bands of mean_HW((P - Y)^2) / (mean_HW(Y^2) + eps)."""
    err = ((pred - target) ** 2).mean(dim=(-2, -1))
    energy = (target ** 2).mean(dim=(-2, -1))
    return (err / (energy + eps)).mean()


def response_kd(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """L1 between the student output and the (detached) teacher output."""
    return l1(student_out, teacher_out.detach())


def feat_kd(student_feat: torch.Tensor, teacher_feat: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Feature distillation between F_S and the detached F_T (see module docstring for ``kind``)."""
    ft = teacher_feat.detach()
    if kind == "mse":
        return F.mse_loss(student_feat, ft)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(torch.sigmoid(student_feat), torch.sigmoid(ft))
    if kind == "none":
        return student_feat.sum() * 0.0
    raise ValueError(f"feat_kd kind must be one of {FEAT_KD_KINDS}, got {kind!r}")


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, w: LossWeights
                        ) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + w.sam * SAM + w.beba * BEBA and its parts (as floats, for logging)."""
    parts = {"l1": l1(pred, target), "sam": sam_loss(pred, target, w.sam_kind), "beba": beba(pred, target)}
    total = w.l1 * parts["l1"] + w.sam * parts["sam"] + w.beba * parts["beba"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


def teacher_loss(y_t: torch.Tensor, y: torch.Tensor, w: LossWeights | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """L_T = L1(Y_T, Y) + 0.1 SAM + 0.1 BEBA (weights from ``w``); returns (loss, parts)."""
    w = w or LossWeights()
    total, parts = reconstruction_loss(y_t, y, w)
    parts["total"] = float(total.detach())
    return total, parts


def student_loss(y_s: torch.Tensor, f_s: torch.Tensor, y: torch.Tensor, y_t: torch.Tensor | None,
                 f_t: torch.Tensor | None, w: LossWeights | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """L_S = reconstruction + w.response_kd * L1(Y_S, Y_T) + w.feat_kd * FeatKD(F_S, F_T).

    Teacher tensors are detached here; pass ``y_t``/``f_t`` = None to train without KD.
    """
    w = w or LossWeights()
    total, parts = reconstruction_loss(y_s, y, w)
    if y_t is not None and w.response_kd:
        r = response_kd(y_s, y_t)
        total = total + w.response_kd * r
        parts["response_kd"] = float(r.detach())
    if f_t is not None and w.feat_kd and w.feat_kd_kind != "none":
        fk = feat_kd(f_s, f_t, w.feat_kd_kind)
        total = total + w.feat_kd * fk
        parts["feat_kd"] = float(fk.detach())
    parts["total"] = float(total.detach())
    return total, parts

"""Per-scene learned fusion: a correction of glp+cy learned on the user's own pair, gated so it is never worse.

Networks trained once on a corpus lose to classical fusion on scenes they never saw; learning on the target
pair itself does not. Here the pair is degraded once more by the estimated PSF and scale (LR-HSI -> s x
coarser, MSI -> the LR grid) and glp+cy of that reduced pair is compared with the real LR-HSI: the difference
is what glp+cy misses. A small per-pixel MLP learns it from the MSI bands and glp+cy's own spectral-subspace
coefficients (the HSI's SVD subspace, so any band grid works), on 80 % of the reduced pair; the other 20 %
(a spatially separate strip) chooses the shrinkage ``alpha`` in [0, 1] of the correction after the final
projection (0 = glp+cy exactly when the correction does not help there). At full resolution the correction is
applied per pixel to glp+cy and the result projected onto the LR-HSI again (blurred and decimated it gives
back the LR-HSI), so the learned part can only add detail the LR-HSI cannot see.

Training needs torch (imported inside :func:`learn_scene`); applying a learned correction is numpy only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.consistency import project
from csakd_qgis.fusion.model_based import apply_base, fit_base
from csakd_qgis.fusion.observation import ObservationModel, degrade, msi_to_lr

MIN_REDUCED_LR = 2  # side (px) of the reduced-scale LR-HSI below which nothing is learned (alpha = 0)
MIN_TARGET_PX = 64  # LR-HSI pixels (the training targets) below which nothing is learned
MIN_HOLDOUT_PX = 32  # held-out pixels below which the gate cannot be trusted (alpha = 0; dev: 24 px misled it, 45 did not)


@dataclass(frozen=True)
class SceneConfig:
    """Choices of the per-scene learner (fixed on the development scenes, docs/RESULTS.md)."""

    subspace: int = 12  # SVD components of the LR-HSI the correction lives in
    hidden: int = 64  # width of the MLP's two hidden layers
    steps: int = 2000  # Adam steps (the stop rule: deterministic for a seed)
    batch_px: int = 1024  # pixels per step
    learning_rate: float = 2e-3
    holdout: float = 0.2  # fraction of the reduced pair held out (a strip) for the gate
    shrink: float = 1e-3  # weight of the penalty keeping the correction near zero
    srf_weight: float = 1.0  # weight of the full-resolution term SRF(glp+cy + correction) = MSI (0: off)
    srf_min_r2: float = 0.9  # the full-resolution term is used only when every MSI band's SRF fit explains this
    full_lr: int = 96  # LR px a side of the central window where the full-resolution terms are evaluated
    null_msi: bool = True  # keep the correction out of what the MSI sees too (SRF trusted)
    max_scale_ratio: float = 2.5  # RMS of the correction at full resolution / at reduced scale above which it does
    #                               not carry over (an MSI whose statistics change with scale, e.g. noise): alpha 0
    budget_s: float = 120.0  # wall-clock cap of the training (a safety cap; the steps are the stop rule)
    seed: int = 0
    threads: int | None = None


@dataclass
class SceneModel:
    """A learned correction: the subspace (``mean`` + ``basis``), the MLP's weights and the gate's ``alpha``."""

    mean: np.ndarray  # (C,)
    basis: np.ndarray  # (C, p), orthonormal columns
    weights: list[tuple[np.ndarray, np.ndarray]]  # (W (in, out), b (out,)) per layer; features normalised in W1
    alpha: float
    info: dict[str, Any] = field(default_factory=dict)
    use_msi: bool = False  # the correction is also kept out of what the MSI sees (SRF trusted)

    @classmethod
    def zero(cls, n_bands: int, **info: Any) -> SceneModel:
        """The model that changes nothing (alpha = 0): what a pair with nothing to learn gets."""
        return cls(np.zeros(n_bands, np.float32), np.zeros((n_bands, 0), np.float32), [], 0.0, dict(info))

    def correction(self, base: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """(C, H, W) correction of a base estimate from its MSI (C_m, H, W), alpha applied; zeros if alpha = 0."""
        if self.alpha == 0.0 or not self.weights:
            return np.zeros_like(base, dtype=np.float32)
        c, h, w = base.shape
        coef = np.einsum("cp,chw->phw", self.basis, np.nan_to_num(base) - self.mean[:, None, None], optimize=True)
        feats = np.concatenate([np.nan_to_num(msi).reshape(msi.shape[0], -1), coef.reshape(coef.shape[0], -1)])
        out = mlp_forward(self.weights, feats.T.astype(np.float32))  # (H*W, p)
        return (self.alpha * (self.basis @ out.T)).reshape(c, h, w).astype(np.float32)


def mlp_forward(weights: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """ReLU MLP on rows of ``x`` (N, in) -> (N, out), numpy (the same weights the torch training used)."""
    for i, (w, b) in enumerate(weights):
        x = x @ w + b
        if i < len(weights) - 1:
            np.maximum(x, 0.0, out=x)
    return x


def subspace(lr: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (C,), basis (C, p)): the leading SVD subspace of the LR-HSI's valid pixels."""
    x = lr.reshape(lr.shape[0], -1)
    x = x[:, np.isfinite(x).all(0)].astype(np.float64)
    mean = x.mean(1)
    u = np.linalg.svd(x - mean[:, None], full_matrices=False)[0]
    return mean.astype(np.float32), np.ascontiguousarray(u[:, : min(p, u.shape[1])], np.float32)


def glp_cy(lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel, params: Any = None,
           pad: bool = True) -> np.ndarray:
    """glp+cy of an in-memory pair (GLP with the model's PSF, projected onto the LR-HSI)."""
    params = fit_base("glp", lr, msi, s, obs) if params is None else params
    return project(apply_base("glp", lr, msi, s, obs, params), lr, msi, obs, use_msi=False, pad=pad)


def reduced_pair(lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(LR-HSI, MSI, target) one scale down: both inputs degraded by the estimated PSF and s; target = LR-HSI."""
    h, w = (lr.shape[1] // s) * s, (lr.shape[2] // s) * s
    target = np.asarray(lr[:, :h, :w], np.float32)
    return degrade(np.nan_to_num(target), obs.psf, s), msi_to_lr(np.nan_to_num(msi[:, : h * s, : w * s]), obs.psf, s), target


def _split(h: int, w: int, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (h, w) masks (train, holdout): the holdout is the last ``frac`` of the longer axis."""
    hold = np.zeros((h, w), bool)
    if w >= h:
        hold[:, w - max(1, int(round(w * frac))):] = True
    else:
        hold[h - max(1, int(round(h * frac))):, :] = True
    return ~hold, hold


def _psnr_sam(ref: np.ndarray, x: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean-band PSNR-like score (10 log10 of 1 / MSE over the masked pixels) and mean SAM (degrees)."""
    r, e = ref[:, mask], x[:, mask]
    ok = np.isfinite(r).all(0) & np.isfinite(e).all(0)
    r, e = r[:, ok].astype(np.float64), e[:, ok].astype(np.float64)
    mse = float(np.mean((r - e) ** 2))
    cos = (r * e).sum(0) / np.maximum(np.linalg.norm(r, axis=0) * np.linalg.norm(e, axis=0), 1e-12)
    return -10.0 * np.log10(max(mse, 1e-20)), float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())


def learn_scene(lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel, cfg: SceneConfig = SceneConfig(),
                progress: Callable[[float, str], None] | None = None,
                stop: Callable[[], bool] | None = None) -> SceneModel:
    """Learn the correction of glp+cy on the pair (LR-HSI (C, h, w), MSI (C_m, s*h, s*w)) and gate it.

    ``progress(fraction, message)`` is told the steps and the current hold-out gain; ``stop()`` ends the
    learning at once and gives the zero model (the output is then glp+cy exactly).
    """
    t0 = time.perf_counter()
    c = lr.shape[0]
    lr_r, msi_r, target = reduced_pair(lr, msi, s, obs)
    h, w = target.shape[1:]
    if min(lr_r.shape[1:]) < MIN_REDUCED_LR or h * w < MIN_TARGET_PX:
        return SceneModel.zero(c, reason=f"the pair is too small to learn on ({w} x {h} LR px; the reduced-scale "
                                         f"pair {lr_r.shape[2]} x {lr_r.shape[1]} px)", seconds=0.0)
    base_r = glp_cy(lr_r, msi_r, s, obs)
    mean, basis = subspace(lr, cfg.subspace)
    p = basis.shape[1]
    valid = np.isfinite(target).all(0) & np.isfinite(base_r).all(0) & np.isfinite(msi_r).all(0)
    coef = np.einsum("cp,chw->phw", basis, np.nan_to_num(base_r) - mean[:, None, None])
    feats = np.concatenate([np.nan_to_num(msi_r), coef]).reshape(msi_r.shape[0] + p, -1).T
    resid = np.einsum("cp,chw->phw", basis, np.nan_to_num(target - base_r)).reshape(p, -1).T
    train_m, hold_m = _split(h, w, cfg.holdout)
    tr = np.flatnonzero((train_m & valid).ravel())
    if tr.size < 64 or (hold_m & valid).sum() < MIN_HOLDOUT_PX:
        return SceneModel.zero(c, reason="too few valid pixels to learn on", seconds=time.perf_counter() - t0)
    base_c, msi_c = _central_full(lr, msi, s, obs, cfg.full_lr)
    full = _full_resolution_term(base_c, msi_c, obs, mean, basis, cfg)
    weights, steps_done, stopped = _train_mlp(feats, resid, tr, cfg, progress, stop, full)
    if stopped:
        return SceneModel.zero(c, reason="learning stopped before the gate", steps=steps_done,
                               seconds=time.perf_counter() - t0)
    model = SceneModel(mean, basis, weights, 1.0)
    # ---- gate on the held-out strip, after the final projection (linear: P(b + a q) = P(b) + a (q - D+ D q))
    q = model.correction(base_r, msi_r)
    model.use_msi = bool(cfg.null_msi and _srf_trusted(obs, cfg))
    q_proj = unseen_part(q, obs, model.use_msi)
    e0 = np.nan_to_num(base_r - target)[:, hold_m]
    qh = np.nan_to_num(q_proj)[:, hold_m]
    denom = float(np.sum(qh.astype(np.float64) ** 2))
    alpha = float(np.clip(-np.sum(e0.astype(np.float64) * qh) / denom, 0.0, 1.0)) if denom > 0 else 0.0
    psnr0, sam0 = _psnr_sam(target, base_r, hold_m)
    psnr_a, sam_a = _psnr_sam(target, base_r + alpha * q_proj, hold_m)
    while alpha > 0 and sam_a > sam0 + 1e-6:  # never worse in SAM either: shrink until it is not
        alpha = alpha / 2 if alpha > 0.05 else 0.0
        psnr_a, sam_a = _psnr_sam(target, base_r + alpha * q_proj, hold_m)
    if psnr_a <= psnr0:
        alpha, psnr_a, sam_a = 0.0, psnr0, sam0
    # ---- does it carry over one scale up? the correction's size at full resolution vs at reduced scale
    q_full = model.correction(base_c, msi_c)
    ratio = float(np.sqrt(np.mean(q_full ** 2)) / max(np.sqrt(np.mean(np.nan_to_num(q)[:, valid] ** 2)), 1e-12))
    reason = None
    if alpha > 0 and ratio > cfg.max_scale_ratio:
        alpha, psnr_a, sam_a = 0.0, psnr0, sam0
        reason = (f"the correction is {ratio:.1f}x larger at full resolution than where it was learned (the MSI's "
                  "statistics change with scale), so it does not carry over")
    model.alpha = alpha
    model.info = {"alpha": round(alpha, 4), "holdout_gain_db": round(psnr_a - psnr0, 4),
                  "holdout_sam_deg": [round(sam0, 4), round(sam_a, 4)], "steps": steps_done, "subspace": p,
                  "train_px": int(tr.size), "holdout_px": int((hold_m & valid).sum()),
                  "reduced_shape": [int(h), int(w)], "srf_term": full is not None, "scale_ratio": round(ratio, 3),
                  "msi_null": model.use_msi,
                  **({"reason": reason} if reason else {}),
                  "seconds": round(time.perf_counter() - t0, 2)}
    if progress is not None:
        progress(1.0, f"scene: alpha {alpha:.2f}, hold-out gain {psnr_a - psnr0:+.2f} dB")
    return model


def _central_full(lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel, n_lr: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(glp+cy, MSI) of a central window of at most ``n_lr`` LR px a side, at full resolution."""
    n = min(n_lr, lr.shape[1]), min(n_lr, lr.shape[2])
    r0, c0 = (lr.shape[1] - n[0]) // 2, (lr.shape[2] - n[1]) // 2
    lr_c = lr[:, r0:r0 + n[0], c0:c0 + n[1]]
    msi_c = msi[:, r0 * s:(r0 + n[0]) * s, c0 * s:(c0 + n[1]) * s]
    return glp_cy(lr_c, msi_c, s, obs), msi_c


def _srf_trusted(obs: ObservationModel, cfg: SceneConfig) -> bool:
    """Whether the estimated SRF explains every MSI band well enough to use the MSI at full resolution."""
    r2 = obs.spectral.r2
    return r2 is not None and float(np.min(r2)) >= cfg.srf_min_r2


def _full_resolution_term(base: np.ndarray, msi_c: np.ndarray, obs: ObservationModel, mean: np.ndarray,
                          basis: np.ndarray, cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(features, MSI residual, R E) at full resolution on a central window: the correction c of a pixel must
    bring R (glp+cy + E c) + o to the MSI; None when the SRF fit is not good enough to trust (e.g. RGB cameras)."""
    if cfg.srf_weight <= 0 or not _srf_trusted(obs, cfg):
        return None
    ok = (np.isfinite(base).all(0) & np.isfinite(msi_c).all(0)).ravel()
    coef = np.einsum("cp,chw->phw", basis, np.nan_to_num(base) - mean[:, None, None])
    feats = np.concatenate([np.nan_to_num(msi_c), coef]).reshape(msi_c.shape[0] + basis.shape[1], -1).T[ok]
    resid = (np.nan_to_num(msi_c) - obs.spectral.apply(np.nan_to_num(base))).reshape(msi_c.shape[0], -1).T[ok]
    return feats.astype(np.float32), resid.astype(np.float32), (obs.spectral.R @ basis).astype(np.float32)


def _train_mlp(feats: np.ndarray, resid: np.ndarray, rows: np.ndarray, cfg: SceneConfig,
               progress: Callable[[float, str], None] | None, stop: Callable[[], bool] | None,
               full: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
               ) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, bool]:
    """Fit the MLP features -> residual coefficients (L1 + a small shrink penalty) on ``rows``; returns the numpy
    weights (feature normalisation folded into the first layer), the steps done and whether it was stopped."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CsakdError("The 'scene' method learns with PyTorch, which this Python does not have: install it "
                         "(Plugins > CSAKD > Check / install dependencies, or pip install torch), or choose "
                         "glp+cy.") from exc
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        g = torch.Generator().manual_seed(int(cfg.seed))
        torch.manual_seed(int(cfg.seed))
        x_all = torch.from_numpy(np.ascontiguousarray(feats[rows], np.float32))
        y_all = torch.from_numpy(np.ascontiguousarray(resid[rows], np.float32))
        mu, sd = x_all.mean(0), x_all.std(0).clamp_min(1e-6)
        y_sd = float(y_all.std().clamp_min(1e-8))
        x_all = (x_all - mu) / sd
        y_all = y_all / y_sd
        n_in, p = x_all.shape[1], y_all.shape[1]
        net = torch.nn.Sequential(torch.nn.Linear(n_in, cfg.hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(cfg.hidden, cfg.hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(cfg.hidden, p))
        if full is not None:
            xf = (torch.from_numpy(full[0]) - mu) / sd
            tf_sd = y_sd  # both terms in the same reflectance units
            tf = torch.from_numpy(full[1]) / tf_sd
            a_full = torch.from_numpy(full[2]).T * (y_sd / tf_sd)  # (p, C_m): normalised c -> normalised MSI residual
        with torch.no_grad():  # start at the zero correction (= glp+cy)
            net[-1].weight.zero_()
            net[-1].bias.zero_()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.steps))
        t0, n = time.perf_counter(), x_all.shape[0]
        step = 0
        for step in range(1, cfg.steps + 1):
            if stop is not None and stop():
                return [], step - 1, True
            idx = torch.randint(0, n, (min(cfg.batch_px, n),), generator=g)
            out = net(x_all[idx])
            loss = (out - y_all[idx]).abs().mean() + cfg.shrink * out.pow(2).mean()
            if full is not None:
                jf = torch.randint(0, xf.shape[0], (min(cfg.batch_px, xf.shape[0]),), generator=g)
                loss = loss + cfg.srf_weight * (net(xf[jf]) @ a_full - tf[jf]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None and step % 100 == 0:
                progress(step / cfg.steps, f"scene: learning the correction, step {step}/{cfg.steps}, "
                                           f"L1 {loss.item():.4f}")
            if time.perf_counter() - t0 > cfg.budget_s:
                break
        layers = [m for m in net if isinstance(m, torch.nn.Linear)]
        ws = [(m.weight.detach().numpy().T.astype(np.float32).copy(), m.bias.detach().numpy().astype(np.float32).copy())
              for m in layers]
    finally:
        torch.set_num_threads(threads)
    mu_n, sd_n = mu.numpy().astype(np.float64), sd.numpy().astype(np.float64)
    w1, b1 = ws[0]
    w1n = (w1 / sd_n[:, None]).astype(np.float32)  # fold (x - mu) / sd into the first layer
    b1n = (b1 - (mu_n / sd_n) @ w1).astype(np.float32)
    wl, bl = ws[-1]
    ws = [(w1n, b1n), *ws[1:-1], ((wl * y_sd).astype(np.float32), (bl * y_sd).astype(np.float32))]
    return ws, step, False


def fuse_scene(lr: np.ndarray, msi: np.ndarray, s: int, obs: ObservationModel, cfg: SceneConfig = SceneConfig()
               ) -> tuple[np.ndarray, SceneModel]:
    """The whole-array path (benchmarks, tests): learn on the pair, apply at full resolution, project."""
    model = learn_scene(lr, msi, s, obs, cfg)
    base = glp_cy(lr, msi, s, obs)
    return apply_scene(model, base, lr, msi, obs), model


def unseen_part(q: np.ndarray, obs: ObservationModel, use_msi: bool, pad: bool = True) -> np.ndarray:
    """The part of a correction the LR-HSI cannot see (D q = 0) and, with ``use_msi``, the MSI neither (R q = 0):
    the linear part of the consistency projection (both operators commute, so one pass of each is exact)."""
    s = obs.scale
    zeros = np.zeros((q.shape[0], q.shape[1] // s, q.shape[2] // s), np.float32)
    offset = np.broadcast_to(obs.spectral.offset.astype(np.float32)[:, None, None],
                             (obs.spectral.R.shape[0], q.shape[1], q.shape[2]))
    return project(q, zeros, offset, obs, use_msi=use_msi, pad=pad)


def apply_scene(model: SceneModel, base: np.ndarray, lr: np.ndarray, msi: np.ndarray, obs: ObservationModel,
                pad: bool = True) -> np.ndarray:
    """glp+cy ``base`` plus the part of the gated correction the LR-HSI (and, when trusted, the MSI) cannot see:
    the output still gives back the LR-HSI exactly; ``base`` itself when alpha = 0."""
    if model.alpha == 0.0:
        return base
    return base + unseen_part(model.correction(base, msi[:, : base.shape[1], : base.shape[2]]), obs, model.use_msi,
                              pad)


__all__ = ["MIN_REDUCED_LR", "SceneConfig", "SceneModel", "apply_scene", "fuse_scene", "glp_cy", "learn_scene",
           "mlp_forward", "reduced_pair", "subspace"]

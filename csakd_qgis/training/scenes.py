"""Training data in memory: scenes on one s x s grid, how they are built and split, and random patch batches.

Reference HR-HSI cubes give Wald scenes (:func:`make_wald_scenes`); a real LR-HSI/HR-MSI pair gives a
reduced-scale scene (:func:`reduced_scale_scene`) whose target is the LR-HSI itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import fuse_classical
from csakd_qgis.spectral.degrade import add_awgn, crop_to_multiple, simulate_pair, wald_degrade

MIN_SPLIT_LR = 2  # train and validation strips need at least this many reduced-scale input px across


@dataclass
class Scene:
    """One training/validation scene: target ``hr`` (C_h, sH, sW), ``lr`` (C_h, H, W), ``msi`` (C_m, sH, sW).

    ``base`` (C_h, sH, sW) is the classical fusion estimate (``base_method``) for residual="base" models.
    NaN = nodata.
    """

    name: str
    hr: np.ndarray
    lr: np.ndarray
    msi: np.ndarray
    base: np.ndarray | None = None
    base_method: str | None = None

    def __post_init__(self) -> None:
        self.hr = np.asarray(self.hr, np.float32)
        self.lr = np.asarray(self.lr, np.float32)
        self.msi = np.asarray(self.msi, np.float32)
        h, w = self.lr.shape[-2:]
        hh, ww = self.hr.shape[-2:]
        if hh % h or ww % w or hh // h != ww // w or self.msi.shape[-2:] != self.hr.shape[-2:]:
            raise CsakdError(f"Scene '{self.name}': LR {self.lr.shape}, HR {self.hr.shape} and MSI "
                             f"{self.msi.shape} are not on one grid with an integer scale.")

    @property
    def scale(self) -> int:
        """HR / LR size ratio."""
        return self.hr.shape[-1] // self.lr.shape[-1]


def make_wald_scenes(references: Sequence[tuple[str, np.ndarray]], wavelengths: Sequence[float],
                     fwhm: Sequence[float] | None, sensor: Any, scale: int) -> list[Scene]:
    """Scenes from reference HR-HSI cubes (C_h, H, W) by the Wald protocol (spectral.degrade.simulate_pair).

    Noise is not added here (the sampler adds per-sample AWGN during training only).
    """

    scenes = []
    for name, ref in references:
        ref = crop_to_multiple(np.asarray(ref, np.float32), scale)
        if ref.shape[-1] < scale or ref.shape[-2] < scale:
            raise CsakdError(f"Scene '{name}' ({ref.shape[-2]} x {ref.shape[-1]} px) is smaller than the "
                             f"scale {scale}.")
        lr, msi = simulate_pair(ref, wavelengths, fwhm, sensor, scale)
        scenes.append(Scene(name, ref, lr, msi))
    return scenes


def reduced_scale_scene(name: str, lr: np.ndarray, msi: np.ndarray, scale: int) -> Scene:
    """Real-use training pair from an LR-HSI (C_h, h, w) and its HR-MSI (C_m, s*h, s*w).

    Target = the LR-HSI (cropped to multiples of s); inputs = the LR-HSI and the HR-MSI each Wald-degraded by
    s, so the input MSI lies on the LR-HSI grid and the input HSI on a grid s times coarser.
    """

    s = int(scale)
    h0, w0 = np.shape(lr)[-2:]
    if h0 < s or w0 < s:
        raise CsakdError(f"The LR-HSI ({h0} x {w0} px) is smaller than the scale {s}: too small to train on (it "
                         f"needs at least {s} x {s} px, and more to hold out a validation strip).")
    lr = crop_to_multiple(np.asarray(lr, np.float32), s)
    h, w = lr.shape[-2:]
    msi = np.asarray(msi, np.float32)
    if msi.shape[-2] < h * s or msi.shape[-1] < w * s:
        raise CsakdError(f"The HR-MSI ({msi.shape[-2]} x {msi.shape[-1]} px) does not cover the LR-HSI ({h} x {w} "
                         f"px) at scale {s}.")
    if h < s or w < s:
        raise CsakdError(f"The LR-HSI ({h} x {w} px) is smaller than the scale {s}: too small to train on.")
    msi_lr = wald_degrade(msi[:, : h * s, : w * s], s)
    return Scene(name, lr, wald_degrade(lr, s), msi_lr)


def check_trainable(scene: Scene, lr_shape: Sequence[int]) -> None:
    """CsakdError when a reduced-scale scene of an LR-HSI of ``lr_shape`` is too small to fit its base and hold
    out a validation strip: the pair is small (not cloudy), and the message says how large it must be."""
    s, c_m = scene.scale, scene.msi.shape[0]
    hi, wi = scene.lr.shape[-2:]
    if max(hi, wi) >= 2 * MIN_SPLIT_LR and hi * wi >= c_m + 2:
        return
    need = s * max(2 * MIN_SPLIT_LR, math.ceil(math.sqrt(c_m + 2)))
    raise CsakdError(f"The pair is too small to adapt a model on: its LR-HSI ({lr_shape[-2]} x {lr_shape[-1]} px) "
                     f"degraded once more by the scale {s} gives a training input of {hi} x {wi} px; give an LR-HSI "
                     f"of at least {need} x {need} px (or fuse it with a zoo model or a classical method).")


def attach_bases(scenes: Sequence[Scene], method: str | None) -> None:
    """Set ``scene.base`` to the classical fusion ``method`` of each scene (fitted on its inputs only), or None.

    Call it on whole scenes BEFORE :func:`split_scene`, so both parts share the coefficients of the whole
    scene (fitted on the degraded inputs only: the target is not used).
    """

    for sc in scenes:
        sc.base = None if method is None else np.asarray(fuse_classical(sc.lr, sc.msi, sc.scale, method), np.float32)
        if method is not None:
            sc.base_method = method


def split_scene(scene: Scene, val_fraction: float, name: str | None = None) -> tuple[Scene, Scene]:
    """(train, validation) Scenes: the last ``val_fraction`` of the longer axis is held out.

    The cut falls on the scene's LR (input) grid, so both parts keep the s x s grid convention.
    """

    s = scene.scale
    h, w = scene.lr.shape[-2:]
    axis = -1 if w >= h else -2
    n = w if axis == -1 else h
    n_val = max(MIN_SPLIT_LR, int(round(n * val_fraction)))
    if n - n_val < MIN_SPLIT_LR:
        raise CsakdError(f"The scene '{scene.name}' is too small to hold out a validation strip: its reduced-scale "
                         f"input is {h} x {w} px (needs at least {2 * MIN_SPLIT_LR} px along one side, i.e. a "
                         f"LR-HSI of at least {2 * MIN_SPLIT_LR * s} px at scale {s}).")
    cut = n - n_val

    def part(a: np.ndarray | None, lo: int, hi: int | None, k: int) -> np.ndarray | None:
        if a is None:
            return None
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(lo * k, None if hi is None else hi * k)
        return np.ascontiguousarray(a[tuple(sl)])

    nm = name or scene.name
    method = scene.base_method if scene.base is not None else None
    parts = []
    for label, lo, hi in (("train", 0, cut), ("val", cut, None)):
        parts.append(Scene(f"{nm}:{label}", part(scene.hr, lo, hi, s), part(scene.lr, lo, hi, 1),
                           part(scene.msi, lo, hi, s), part(scene.base, lo, hi, s), method))
    return parts[0], parts[1]


def check_scenes(train_scenes: Sequence[Scene], val_scenes: Sequence[Scene]) -> tuple[int, int, int]:
    """(scale, HSI bands, MSI bands) shared by all scenes; CsakdError when there are none or they differ."""
    if not train_scenes:
        raise CsakdError("No training scenes were given.")
    s = train_scenes[0].scale
    n_h, n_m = train_scenes[0].hr.shape[0], train_scenes[0].msi.shape[0]
    for sc in list(train_scenes) + list(val_scenes):
        if sc.hr.shape[0] != n_h or sc.msi.shape[0] != n_m or sc.scale != s:
            raise CsakdError(f"Scene '{sc.name}' has {sc.hr.shape[0]} HSI / {sc.msi.shape[0]} MSI bands at "
                             f"scale {sc.scale}; the first scene has {n_h} / {n_m} at scale {s}.")
    return s, n_h, n_m


def band_stats(scenes: Sequence[Scene]) -> dict[str, np.ndarray]:
    """Per-band mean and std (floored at 1e-4) of the targets and MSIs: the per_band input normalization."""
    def stats(arrs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        flat = np.concatenate([a.reshape(a.shape[0], -1) for a in arrs], axis=1)
        mean = np.nanmean(flat, axis=1)
        std = np.nanstd(flat, axis=1)
        return mean.astype(np.float32), np.maximum(std, 1e-4).astype(np.float32)

    hm, hs = stats([sc.hr for sc in scenes])
    mm, ms = stats([sc.msi for sc in scenes])
    return {"hsi_mean": hm, "hsi_std": hs, "msi_mean": mm, "msi_std": ms}


# ------------------------------------------------------------------------------------------ sampling
def _augment(arrs: list[np.ndarray | None], k: int, flip_h: bool, flip_v: bool) -> list[np.ndarray | None]:
    out = []
    for a in arrs:
        if a is None:
            out.append(None)
            continue
        if flip_h:
            a = a[..., :, ::-1]
        if flip_v:
            a = a[..., ::-1, :]
        if k:
            a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a))
    return out


class PatchSampler:
    """Random training batches from in-memory scenes.

    Crops of ``patch`` HR pixels (a multiple of s) start on the LR grid (HR offset = s * LR offset); the
    same flip/rot90 is applied to LR, MSI, target and base; AWGN at ``snr_db`` (per band, per sample)
    is added to the LR-HSI only. Crops containing nodata are redrawn (up to 20 times).
    """

    def __init__(self, scenes: Sequence[Scene], patch: int, batch_size: int, snr_db: float | None = None,
                 augment: bool = True, rng: np.random.Generator | None = None) -> None:
        if not scenes:
            raise CsakdError("No training scenes were given.")
        self.scenes = list(scenes)
        self.scale = self.scenes[0].scale
        if any(sc.scale != self.scale for sc in self.scenes):
            raise CsakdError("All training scenes must have the same scale.")
        s = self.scale
        smallest = min(min(sc.lr.shape[-2:]) for sc in self.scenes)
        self.lr_patch = max(1, min(int(patch) // s, smallest))
        self.batch_size, self.snr_db, self.augment = int(batch_size), snr_db, augment
        self.rng = rng if rng is not None else np.random.default_rng(0)
        sizes = np.array([sc.lr.shape[-2] * sc.lr.shape[-1] for sc in self.scenes], np.float64)
        self.weights = sizes / sizes.sum()

    def _crop(self) -> tuple[np.ndarray, ...]:
        s, p = self.scale, self.lr_patch
        for _ in range(20):
            sc = self.scenes[self.rng.choice(len(self.scenes), p=self.weights)]
            h, w = sc.lr.shape[-2:]
            i, j = int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
            lr = sc.lr[:, i:i + p, j:j + p]
            hs = (slice(None), slice(i * s, (i + p) * s), slice(j * s, (j + p) * s))
            hr, msi = sc.hr[hs], sc.msi[hs]
            base = None if sc.base is None else sc.base[hs]
            if np.isfinite(hr).all() and np.isfinite(lr).all() and np.isfinite(msi).all():
                break
        lr, msi, hr = (np.nan_to_num(a, nan=0.0) for a in (lr, msi, hr))
        if base is not None:
            base = np.nan_to_num(base, nan=0.0)
        if self.augment:
            k = int(self.rng.integers(0, 4))
            lr, msi, hr, base = _augment([lr, msi, hr, base], k, bool(self.rng.integers(0, 2)),
                                         bool(self.rng.integers(0, 2)))
        if self.snr_db is not None:
            lr = add_awgn(lr, self.snr_db, self.rng)
        return lr, msi, hr, base

    def sample(self) -> dict[str, np.ndarray]:
        """One batch: {"lr", "msi", "hr"[, "base"]} stacked float32 arrays."""
        crops = [self._crop() for _ in range(self.batch_size)]
        batch = {"lr": np.stack([c[0] for c in crops]), "msi": np.stack([c[1] for c in crops]),
                 "hr": np.stack([c[2] for c in crops])}
        if crops[0][3] is not None:
            batch["base"] = np.stack([c[3] for c in crops])
        return batch

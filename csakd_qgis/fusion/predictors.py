"""Predictors: one interface for classical fusion and trained networks on batches of windows.

``predict(lr (B, C_h, h, w), msi (B, C_m, s*h, s*w)) -> (B, C_h, s*h, s*w)`` float32 reflectance, NaN where
the inputs are nodata (an HR pixel is nodata where any MSI band is, and band b is nodata where the LR
parent pixel of band b is). Attributes: ``name``, ``scale``, ``hsi_bands``, ``msi_bands``, ``device_used``,
``halo_lr`` (LR px of context the tiler reads around each window and crops afterwards) and
``network_seconds`` (time spent inside the model, for benchmarks).

``prepare(lr, msi)`` is called once before the windows with a bounded sample of the scene (LR-HSI and its
HR-MSI): classical methods fit their per-band coefficients there (once per scene, then applied
window by window), networks with ``residual="base"`` fit the classical base the same way.

torch and onnxruntime are imported only by the network runners (:mod:`fusion.runtime`): QGIS imports the plugin at start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.classical import CLASSICAL_METHODS, apply_classical, fit_classical, margin_lr
from csakd_qgis.fusion.consistency import margin_lr as consistency_margin_lr
from csakd_qgis.fusion.consistency import project
from csakd_qgis.fusion.methods import get_method
from csakd_qgis.fusion.model_based import apply_base, base_margin_lr, fit_base, split_method
from csakd_qgis.fusion.multires import multires_observation
from csakd_qgis.fusion.observation import (
    central_sample,
    check_msi_wavelengths,
    parse_psf,
    parse_srf,
)
from csakd_qgis.fusion.runtime import open_runner
from csakd_qgis.fusion.scene import SceneConfig, SceneModel, apply_scene, learn_scene
from csakd_qgis.fusion.select import select_method
from csakd_qgis.raster.resample import repeat_to_hr
from csakd_qgis.spectral.degrade import fill_nan_nearest
from csakd_qgis.zoo.card import (
    apply_normalization,
    base_method_of,
    invert_normalization,
    read_card,
    validate_card,
)
from csakd_qgis.zoo.registry import resolve_model_path


def all_finite(x: np.ndarray) -> bool:
    """True when every value is finite: one summing pass, no temporary (a sum over finite float32 values
    is finite unless it overflows, and then the exact check decides)."""
    x = np.asarray(x)
    if x.size == 0 or x.dtype.kind not in "fc":
        return True
    if np.isfinite(np.add.reduce(x, axis=None)):
        return True
    return bool(np.isfinite(x).all())


def nodata_mask(lr: np.ndarray, msi: np.ndarray, scale: int) -> np.ndarray | None:
    """(B, C_h, H, W) bool, True where the output is nodata (LR parent band value or any MSI band NaN).

    None when both inputs are entirely valid (the common case; saves building the mask).
    """
    s = int(scale)
    if all_finite(lr) and all_finite(msi):
        return None
    lr_bad = ~np.isfinite(lr)
    msi_bad = ~np.isfinite(msi).all(axis=-3, keepdims=True)
    if not lr_bad.any() and not msi_bad.any():
        return None
    bad = repeat_to_hr(lr_bad, s)
    return bad | msi_bad


def apply_mask(out: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Set ``out`` to NaN where ``mask`` (from :func:`nodata_mask`) is True; in place, returns ``out``."""
    if mask is not None:
        out[np.broadcast_to(mask, out.shape)] = np.nan
    return out


def fill_nodata(x: np.ndarray) -> np.ndarray:
    """Copy of a (..., C, h, w) stack with NaN replaced by the nearest valid pixel of the band (0 if none)."""

    if all_finite(x):
        return np.asarray(x, np.float32)
    out = fill_nan_nearest(np.asarray(x, np.float32))
    return np.nan_to_num(out, nan=0.0)


class Predictor:
    """The predictor protocol, with its defaults, and the shape checks of ``predict``.

    What the fusion and the raster job read: ``halo_lr`` (LR px of context per window), ``min_tile`` (HR px:
    the job's tile is raised to it), ``max_batch`` (windows per call at most, 0: no limit), ``needs_sample``
    (whether :meth:`prepare` wants the scene sample), ``messages`` (lines for the log) and ``report`` (a dict
    for the output's tags and the run's result), ``network_seconds`` and ``device_used``.
    """

    name: str = "predictor"
    scale: int = 1
    hsi_bands: int = 0
    msi_bands: int = 0
    device_used: str = "cpu"
    halo_lr: int = 0
    min_tile: int = 0
    max_batch: int = 0
    network_seconds: float = 0.0

    @property
    def messages(self) -> list[str]:
        """Log lines of this predictor (set up, fit, choices); one list per instance."""
        return self.__dict__.setdefault("_messages", [])

    @messages.setter
    def messages(self, value: list[str]) -> None:
        self.__dict__["_messages"] = list(value)

    @property
    def report(self) -> dict[str, Any]:
        """What this predictor estimated or chose, for the output's tags (empty: nothing to report)."""
        return self.__dict__.setdefault("_report", {})

    @report.setter
    def report(self, value: dict[str, Any]) -> None:
        self.__dict__["_report"] = dict(value)

    @property
    def needs_sample(self) -> bool:
        """Whether :meth:`prepare` uses the scene sample (the caller may skip reading it otherwise)."""
        return type(self).prepare is not Predictor.prepare

    def prepare(self, lr: np.ndarray, msi: np.ndarray) -> None:
        """Fit whatever is fitted once per scene on a (C_h, h, w) / (C_m, s*h, s*w) sample."""

    def _check(self, lr: np.ndarray, msi: np.ndarray) -> None:
        s = self.scale
        if lr.ndim != 4 or msi.ndim != 4:
            raise ValueError(f"predict expects (B, C, H, W) arrays, got {lr.shape} and {msi.shape}")
        if lr.shape[1] != self.hsi_bands or msi.shape[1] != self.msi_bands:
            raise CsakdError(f"{self.name} expects {self.hsi_bands} HSI and {self.msi_bands} MSI bands, got "
                             f"{lr.shape[1]} and {msi.shape[1]}.")
        if msi.shape[-2:] != (lr.shape[-2] * s, lr.shape[-1] * s) or lr.shape[0] != msi.shape[0]:
            raise ValueError(f"MSI {msi.shape} is not scale {s} times LR {lr.shape}")

    def predict(self, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """(B, C_h, s*h, s*w) fused reflectance."""
        raise NotImplementedError


class ClassicalPredictor(Predictor):
    """Classical fusion (``bicubic``, ``gsa``, ``glp``): coefficients fitted once per scene, applied per window."""

    def __init__(self, method: str, scale: int, hsi_bands: int, msi_bands: int, params: Any = None) -> None:

        m = str(method).strip().lower()
        if m not in CLASSICAL_METHODS:
            raise CsakdError(f"Unknown classical method '{method}': choose one of {', '.join(CLASSICAL_METHODS)}.")
        self.method = m
        self.name = m
        self.scale, self.hsi_bands, self.msi_bands = int(scale), int(hsi_bands), int(msi_bands)
        self.params = params
        self.device_used = "cpu"
        self.halo_lr = margin_lr(m)
        self.network_seconds = 0.0
        self.messages = []

    @property
    def needs_sample(self) -> bool:
        """Coefficients still to fit (given params or bicubic: nothing fitted on the sample)."""
        return self.params is None

    def prepare(self, lr: np.ndarray, msi: np.ndarray) -> None:
        """Fit the method's coefficients on the scene sample (no-op for bicubic or when given params)."""

        if self.params is None and self.method == "bicubic":
            self.params = fit_classical(lr, msi, self.scale, self.method)
        elif self.params is None:
            t0 = time.perf_counter()
            self.params = fit_classical(lr, msi, self.scale, self.method)
            n = getattr(self.params, "n_fit_pixels", 0)
            self.messages.append(f"{self.method}: coefficients fitted on {n} LR pixels "
                                 f"({lr.shape[1]} x {lr.shape[2]} px sample) in {time.perf_counter() - t0:.2f} s.")

    def predict(self, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """Apply the fitted method to each window of the batch."""

        self._check(lr, msi)
        if self.params is None and self.method != "bicubic":
            raise RuntimeError("ClassicalPredictor.prepare() was not called")
        t0 = time.perf_counter()
        out = np.stack([apply_classical(a, b, self.scale, self.method, self.params) for a, b in zip(lr, msi,
                                                                                                    strict=True)])
        apply_mask(out, nodata_mask(lr, msi, self.scale))
        self.network_seconds += time.perf_counter() - t0
        return out.astype(np.float32, copy=False)


class NetworkPredictor(Predictor):
    """A CSAKD network from a model card, run with PyTorch or ONNX Runtime (:mod:`fusion.runtime`).

    NaN inputs are filled from the nearest valid pixel before the network and the output is NaN where the
    inputs were nodata. ``precision`` fp16/bf16 uses autocast on CUDA (ignored on the CPU, with a message);
    int8 is an ONNX Runtime variant. For ``residual == "base"`` the classical base (card's base method,
    default glp) is fitted once per scene in :meth:`prepare` and computed per window with the same coefficients.
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto", precision: str = "fp32",
                 threads: int | None = None, halo_lr: int | None = None, runtime: str = "auto") -> None:
        self.messages = []
        self.card = read_card(path)  # arch checked before any runtime or weights are loaded
        if self.card.get("arch", "csakd") != "csakd":
            raise CsakdError(f"The model '{path}' is a single-image super-resolution model (arch "
                             f"{self.card.get('arch')!r}): it takes only the hyperspectral image. Use 'csakd "
                             "superresolve' or the Processing algorithm 'Super-resolve hyperspectral image'.")
        self.runner = open_runner(path, self.card, runtime, device, precision, threads, self.messages)
        self.path = str(path)
        self.name = str(self.card.get("name") or Path(str(path)).stem)
        cfg = self.card.get("config", {})
        self.scale = int(self.card.get("scale", cfg.get("scale", 1)))
        self.hsi_bands = int(self.card.get("hsi", {}).get("bands", cfg.get("hsi_bands", 0)))
        self.msi_bands = int(self.card.get("msi", {}).get("bands", cfg.get("msi_bands", 0)))
        self.residual = str(self.card.get("residual", cfg.get("residual", "none")))
        self.device, self.device_used = self.runner.device, self.runner.device_used
        self.base: ClassicalPredictor | None = None
        if self.residual == "base":
            self.base = ClassicalPredictor(base_method_of(self.card), self.scale, self.hsi_bands, self.msi_bands)
        default_halo = self.base.halo_lr if self.base is not None else 2
        self.halo_lr = int(default_halo if halo_lr is None else halo_lr)
        self.network_seconds = 0.0

    def check_inputs(self, hsi_wavelengths: Sequence[float | None] | int | None, msi_band_count: int | None,
                     scale: int | None) -> None:
        """Raise CsakdError if the model card does not fit the data (bands, wavelengths, scale)."""
        validate_card(self.card, hsi_wavelengths, msi_band_count, scale)

    @property
    def needs_sample(self) -> bool:
        """Only a network that corrects a classical base fits anything on the scene sample."""
        return self.base is not None and self.base.needs_sample

    def prepare(self, lr: np.ndarray, msi: np.ndarray) -> None:
        """Fit the classical base on the scene sample when the network corrects one."""
        if self.base is not None:
            self.base.prepare(lr, msi)
            self.messages.extend(self.base.messages)

    def predict(self, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """Run the network on a batch (inputs filled, outputs masked)."""
        self._check(lr, msi)
        mask = nodata_mask(lr, msi, self.scale)
        if mask is None:  # all valid (the common case): no filling, no copies
            lr_f, msi_f = np.asarray(lr, np.float32), np.asarray(msi, np.float32)
        else:
            lr_f = np.stack([fill_nodata(x) for x in lr])
            msi_f = np.stack([fill_nodata(x) for x in msi])
        base_np = None
        if self.base is not None:
            base_np = np.stack([fill_nodata(x) for x in self.base.predict(lr_f, msi_f)])
        t0 = time.perf_counter()
        x_lr, x_msi, x_base = apply_normalization(self.card, lr_f, msi_f, base_np)
        inputs = {"lr": x_lr, "msi": x_msi} | ({} if x_base is None else {"base": x_base})
        out = invert_normalization(self.card, self.runner.run(inputs)).astype(np.float32, copy=False)
        self.network_seconds += time.perf_counter() - t0
        return apply_mask(out, mask)


class ModelBasedPredictor(Predictor):
    """Model-based fusion (``glp+c``, ``gsa+c``, ``glp+cy``, ``cnmf``, ``cnmf+c``, ``auto``, ...): the observation model,
    the method choice (``auto``) and the base parameters are fitted once on the scene sample; each window gets the
    base method and the consistency projection, with the halo the estimated PSF needs."""

    MIN_TILE_LR = 96  # LR px: windows much smaller than the projection's halo would mostly compute context
    MAX_BATCH = 1
    AUTO_SAMPLE_LR = 128  # reduced-scale selection runs on a central window of at most this many LR px a side
    CNMF_SAMPLE_LR = 64  # CNMF endmembers are fitted on a central window of at most this many LR px a side

    def __init__(self, method: str, scale: int, hsi_bands: int, msi_bands: int, psf: str = "auto",
                 srf: str = "auto", sensor: Any = None, wavelengths: Sequence[float] | None = None,
                 fwhm: Sequence[float | None] | None = None, obs: Any = None,
                 msi_wavelengths: Sequence[float | None] | None = None, hr_bands: int = 0) -> None:
        m = str(method).strip().lower()
        if m != "auto":
            split_method(m)  # a clear error for unknown names before any compute
        parse_psf(psf, scale)
        check_msi_wavelengths(msi_wavelengths, wavelengths)
        srf, sensor = parse_srf(srf) if sensor is None else (srf, sensor)
        self.method = m
        self.name = m
        self.scale, self.hsi_bands, self.msi_bands = int(scale), int(hsi_bands), int(msi_bands)
        self.psf, self.srf, self.sensor, self.obs = psf, srf, sensor, obs
        self.wavelengths = None if wavelengths is None else list(wavelengths)
        self.fwhm = None if fwhm is None or any(f is None for f in fwhm) else list(fwhm)
        self.device_used = "cpu"
        self.min_tile = self.MIN_TILE_LR * self.scale
        self.max_batch = self.MAX_BATCH
        self.halo_lr = 0  # set by prepare() from the PSF
        self.hr_bands = int(hr_bands)  # > 0: the MSI is stacked (HR bands, then 20 m bands): PSF on the HR bands
        self.network_seconds = 0.0
        self.messages = []
        self.report = {}
        self._used: tuple[str, str] | None = None
        self._params: Any = None

    @property
    def needs_sample(self) -> bool:
        """The observation model and the base are fitted on the scene sample."""
        return True

    def prepare(self, lr: np.ndarray, msi: np.ndarray) -> None:
        """Estimate the observation model, choose the method (``auto``) and fit the base on the scene sample."""
        t0 = time.perf_counter()
        s = self.scale
        if self.obs is None:
            self.obs = multires_observation(lr, msi, s, self.hr_bands, psf=self.psf, srf=self.srf,
                                            sensor=self.sensor, wavelengths=self.wavelengths, fwhm=self.fwhm)
        self.messages.append(self.obs.message())
        self.messages += list(self.obs.info.get("warnings", []))
        self.report = {"observation": self.obs.summary()}
        method = self.method
        if method == "auto":
            method, why = select_method(*central_sample(lr, msi, s, self.AUTO_SAMPLE_LR), s, self.obs)
            self.report.update(choice=method, **why)
            self.messages.append(f"auto: {method} ({why['reason']}).")
        base, suf = split_method(method)
        obs_b = self.obs if (suf or base == "cnmf") else None
        fit_lr, fit_msi = central_sample(lr, msi, s, self.CNMF_SAMPLE_LR) if base == "cnmf" else (lr, msi)
        self._params = fit_base(base, fit_lr, fit_msi, s, obs_b)
        self._used = (base, suf)
        self.halo_lr = base_margin_lr(base, obs_b) + (consistency_margin_lr(self.obs) if suf else 0)
        self.name = method if self.method != "auto" else f"auto ({method})"
        self.messages.append(f"{method}: fitted on a {lr.shape[1]} x {lr.shape[2]} LR px sample in "
                             f"{time.perf_counter() - t0:.2f} s; halo {self.halo_lr} LR px.")

    def predict(self, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """Base method then (for ``+c`` / ``+cy``) the consistency projection, window by window."""
        self._check(lr, msi)
        if self._used is None:
            raise RuntimeError("ModelBasedPredictor.prepare() was not called")
        base, suf = self._used
        obs_b = self.obs if (suf or base == "cnmf") else None
        t0 = time.perf_counter()
        outs = []
        for a, b in zip(lr, msi, strict=True):
            x = apply_base(base, a, b, self.scale, obs_b, self._params)
            if suf:
                x = project(x, a, b, self.obs, use_msi=suf == "+c", pad=False)
            outs.append(x)
        out = np.stack(outs)
        apply_mask(out, nodata_mask(lr, msi, self.scale))
        self.network_seconds += time.perf_counter() - t0
        return out.astype(np.float32, copy=False)


class ScenePredictor(ModelBasedPredictor):
    """``scene``: glp+cy plus a correction learned on the pair itself (:mod:`fusion.scene`), gated on a held-out
    strip of the reduced-scale pair; per window: glp+cy, the correction, the projection onto the LR-HSI again."""

    def __init__(self, scale: int, hsi_bands: int, msi_bands: int, config: SceneConfig | None = None,
                 progress: Callable[[float, str], None] | None = None, stop: Callable[[], bool] | None = None,
                 **options: Any) -> None:
        super().__init__("glp+cy", scale, hsi_bands, msi_bands, **options)
        self.name = "scene"
        self.config = config or SceneConfig()
        self.progress, self.stop = progress, stop
        self.model: SceneModel | None = None

    def prepare(self, lr: np.ndarray, msi: np.ndarray) -> None:
        """The observation model and glp+cy's parameters, then the correction learned and gated on the sample."""
        super().prepare(lr, msi)
        self.name = "scene"
        t0 = time.perf_counter()
        self.model = learn_scene(lr, msi, self.scale, self.obs, self.config, self.progress, self.stop)
        info = self.model.info
        self.report = {**self.report, "scene": info}
        if self.model.alpha > 0:
            self.halo_lr += consistency_margin_lr(self.obs)  # the second projection's context
            self.messages.append(f"scene: correction learned on the pair in {time.perf_counter() - t0:.1f} s "
                                 f"({info['steps']} steps, subspace {info['subspace']}, {info['train_px']} px); "
                                 f"gate on a held-out strip ({info['holdout_px']} px): alpha {info['alpha']:.2f}, "
                                 f"hold-out gain {info['holdout_gain_db']:+.2f} dB, SAM {info['holdout_sam_deg'][0]:.3f} "
                                 f"-> {info['holdout_sam_deg'][1]:.3f} deg; halo {self.halo_lr} LR px.")
        else:
            why = info.get("reason") or f"no gain on the held-out strip ({info.get('holdout_gain_db', 0):+.3f} dB)"
            self.messages.append(f"scene: alpha 0, the output is glp+cy exactly: {why}.")

    def predict(self, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """glp+cy, then (alpha > 0) the correction and the projection onto the LR-HSI, window by window."""
        base = super().predict(lr, msi)
        if self.model is None or self.model.alpha == 0.0:
            return base
        t0 = time.perf_counter()
        n = self.hsi_bands
        outs = [apply_scene(self.model, x, a, b, self.obs, pad=False) for x, a, b in zip(base, lr, msi, strict=True)]
        out = np.stack(outs)[:, :n]
        apply_mask(out, nodata_mask(lr, msi, self.scale))
        self.network_seconds += time.perf_counter() - t0
        return out.astype(np.float32, copy=False)


def make_predictor(model: str | os.PathLike | Predictor, *, scale: int, hsi_bands: int, msi_bands: int,
                   hsi_wavelengths: Sequence[float | None] | None = None, device: str = "auto",
                   precision: str = "fp32", threads: int | None = None, runtime: str = "auto",
                   model_options: dict[str, Any] | None = None, hr_bands: int = 0,
                   progress: Callable[[float, str], None] | None = None,
                   stop: Callable[[], bool] | None = None) -> Predictor:
    """A predictor for ``model``: a classical method name, a zoo model name, a .safetensors/.json path, or a
    :class:`Predictor` (returned as is). Model-based names (``glp+c``, ``cnmf``, ``auto``...) take
    ``model_options`` (psf, srf, sensor, fwhm, msi_wavelengths) of :class:`ModelBasedPredictor`. Learned models
    are checked against the data (bands, wavelengths, scale) before any compute; a missing model file is a
    CsakdError. ``hr_bands`` > 0: the MSI is stacked (its own ``hr_bands`` bands, then sharpened 20 m bands).
    ``progress`` / ``stop``: for predictors that learn in :meth:`Predictor.prepare` (``scene``: its progress
    bar; ``stop()`` ends the learning and keeps glp+cy). ``model_options["scene_config"]``: a :class:`SceneConfig`.
    """

    if isinstance(model, Predictor) or (hasattr(model, "predict") and hasattr(model, "scale")):
        pred = model  # type: ignore[assignment]
        if int(pred.scale) != int(scale):
            raise CsakdError(f"The predictor works at scale {pred.scale} but the inputs have scale {scale}.")
        return pred  # type: ignore[return-value]
    text = str(model).strip()
    method = get_method(text)
    if method is not None and method.family == "scene":
        opts = dict(model_options or {})
        config = opts.pop("scene_config", None) or SceneConfig(threads=threads)
        return ScenePredictor(scale, hsi_bands, msi_bands, config=config, progress=progress, stop=stop, **opts,
                              wavelengths=hsi_wavelengths, hr_bands=hr_bands)
    if method is not None and method.family == "model-based":
        return ModelBasedPredictor(text, scale, hsi_bands, msi_bands, **(model_options or {}),
                                   wavelengths=hsi_wavelengths, hr_bands=hr_bands)
    if method is not None:
        d = (device or "auto").strip().lower()
        pred = ClassicalPredictor(text.lower(), scale, hsi_bands, msi_bands)
        if d.startswith("cuda"):
            pred.messages.append(f"Classical method '{text.lower()}' runs on the CPU (device '{device}' unused).")
        return pred
    path = resolve_model_path(text, builtin=CLASSICAL_METHODS)
    pred_t = NetworkPredictor(path, device=device, precision=precision, threads=threads, runtime=runtime)
    pred_t.check_inputs(list(hsi_wavelengths) if hsi_wavelengths is not None else int(hsi_bands), msi_bands, scale)
    return pred_t


__all__ = ["ClassicalPredictor", "ModelBasedPredictor", "Predictor", "NetworkPredictor",
           "ScenePredictor",
           "all_finite", "apply_mask", "fill_nodata", "make_predictor",
           "nodata_mask"]

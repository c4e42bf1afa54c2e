"""The two drivers of single-student training: the user's own pair (:func:`adapt`) or reference rasters.

- **Adaptive** (:func:`adapt`): the user's real LR-HSI + HR-MSI pair and no HR-HSI. The pair is put on a
  common grid (:func:`training.adapt_pairs.read_pair`), reduced-scale (Wald) pairs are built from the pair itself
  (input = both degraded by s, target = the LR-HSI) and a spatial strip is held out for validation; the learned
  network is applied at full scale (:func:`fusion.fuse.fuse`) when a fused output is asked for.
- **Reference** (:func:`train_references`): reference HR-HSI rasters -> Wald pairs simulated with the MSI
  sensor's SRFs; a spatial strip of each is held out for validation.

Both train with :func:`training.fit.fit_student` and write the weights and the card
(:func:`zoo.trained_card.adapted_card`) only at the end (both removed if either write fails).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.raster.io import check_output_path
from csakd_qgis.spectral.degrade import check_scale
from csakd_qgis.spectral.srf import load_srf
from csakd_qgis.training.adapt_pairs import read_pair
from csakd_qgis.training.config import FitConfig
from csakd_qgis.training.fit import fit_student
from csakd_qgis.training.results import FitResult, TrainRunResult
from csakd_qgis.training.scenes import (
    Scene,
    attach_bases,
    check_trainable,
    make_wald_scenes,
    reduced_scale_scene,
    split_scene,
)
from csakd_qgis.training.sources.references import read_references
from csakd_qgis.zoo.outputs import check_model_output, save_model_files
from csakd_qgis.zoo.registry import ZooCandidate
from csakd_qgis.zoo.start import choose_start, resolve_init, start_base_method
from csakd_qgis.zoo.trained_card import adapted_card

REDUCED_PROTOCOL = ("reduced-scale Wald (real use): input = LR-HSI and HR-MSI each degraded by s "
                    "(Gaussian blur sigma s/2 + s x s block mean), target = the original LR-HSI; validation on "
                    "a held-out spatial strip")
REFERENCE_PROTOCOL = ("Wald : blur sigma s/2 + s x s block mean; SRF-synthesised MSI; validation on a "
                      "held-out spatial strip of each reference")


def _msi_info(sensor: str | None, n_m: int, names: Sequence[str] | None = None,
              wavelengths: Sequence[float | None] | None = None) -> dict[str, Any]:
    """The card's msi section: from the sensor spec when given (its band count must match), else from the raster."""
    info: dict[str, Any] = {"bands": int(n_m), "sensor": None, "band_names": list(names) if names else None,
                            "wavelengths": list(wavelengths) if wavelengths else None}
    if not sensor:
        return info

    srf = load_srf(sensor)
    if len(srf.band_names) != n_m:
        raise CsakdError(f"The sensor spec '{sensor}' has {len(srf.band_names)} bands ({', '.join(srf.band_names)}) "
                         f"but the multispectral image has {n_m}: list the MSI's bands in order (e.g. "
                         "'S2A:B2,B3,B4,B8') or leave the sensor empty.")
    info.update(sensor=srf.sensor, band_names=list(srf.band_names), wavelengths=[float(c) for c in srf.centroids()])
    return info


def _start(cfg: FitConfig, scenes: Sequence[Scene], hsi_wavelengths: Sequence[float | None],
           msi_info: dict[str, Any], scale: int) -> tuple[ZooCandidate | None, list[str]]:
    """The zoo model ``auto`` starts from (and the lines saying why); ``scenes`` get the base it corrects."""
    zoo, lines = choose_start(cfg.init, hsi_wavelengths, int(msi_info["bands"]), scale,
                              msi_info.get("wavelengths"), msi_info.get("sensor"))
    attach_bases(list(scenes), start_base_method(resolve_init(cfg.init, zoo), cfg.base_method))
    return zoo, lines


def _write(fit: FitResult, model_path: Path, wavelengths: Sequence[float | None],
           fwhm: Sequence[float | None] | None, msi_info: dict[str, Any], hsi_sensor: str | None,
           provenance: dict[str, Any], cancel: Callable[[], bool] | None,
           training_data: list[str] | None = None) -> tuple[Path, Path, str]:
    """Write the fitted model and its card (nothing after a cancel): (card path, weights path, message)."""
    run = {"init": fit.init, "steps": fit.steps, "best_step": fit.best_step, "stopped_by": fit.stopped_by,
           "elapsed_s": fit.elapsed_s, "device": fit.device_used, "start_metrics": fit.start_metrics,
           "best_metrics": fit.best_metrics}
    card = adapted_card(fit.card, model_path.stem, wavelengths, fwhm, msi_info, hsi_sensor, provenance, run)
    if training_data is not None:
        card["training"]["data"] = training_data
    if cancel is not None and cancel():
        raise CancelledError()
    json_path, st_path = save_model_files(model_path, fit.model, card)
    return json_path, st_path, f"Model written: {st_path} (+ card {json_path.name})."


def adapt(hsi: str | os.PathLike, msi: str | os.PathLike, out_model: str | os.PathLike,
          fused: str | os.PathLike | None = None, cfg: FitConfig | None = None, sensor: str | None = None,
          hsi_sensor: str | None = None, progress: Callable[[float, str], None] | None = None,
          cancel: Callable[[], bool] | None = None, fuse_options: dict[str, Any] | None = None) -> TrainRunResult:
    """Scene-adaptive training on the user's pair, then (optionally) fusion at full resolution.

    ``sensor``: optional MSI SRF spec (card + zoo matching; its band count must match the MSI). Progress:
    0-5 % reading, 5-85 % training (or 5-100 % without ``fused``), the rest fusing. The model is written
    before fusing; ``fused`` is removed by the fusion itself on error or cancel.
    """

    cfg = cfg or FitConfig()
    cfg.check()
    t0 = time.perf_counter()
    model_path = check_model_output(out_model, [str(hsi), str(msi)], init=cfg.init)
    if fused:
        check_output_path(fused, [str(hsi), str(msi)], role="fused output")
    rep = _ranged(progress, 0.0, 0.05)
    rep(0.0, "co-registering and reading the pair")
    pair = read_pair(hsi, msi)
    s = pair.scale
    msgs = list(pair.messages)
    msi_info = _msi_info(sensor, pair.msi.shape[0], pair.msi_names, pair.msi_wavelengths)
    scene = reduced_scale_scene(Path(str(hsi)).stem, pair.lr, pair.msi, s)
    check_trainable(scene, pair.lr.shape)
    known_wl = pair.wavelengths if all(w is not None for w in pair.wavelengths) else [None] * len(pair.wavelengths)
    zoo, lines = _start(cfg, [scene], known_wl, msi_info, s)
    msgs += lines
    tr, va = split_scene(scene, cfg.val_fraction)
    t_read = time.perf_counter() - t0
    msgs.append(f"Reduced-scale pairs (scale {s}): input {scene.lr.shape[-2]} x {scene.lr.shape[-1]} px -> target "
                f"{scene.hr.shape[-2]} x {scene.hr.shape[-1]} px; training part {tr.hr.shape[-2]} x {tr.hr.shape[-1]}, "
                f"held-out validation part {va.hr.shape[-2]} x {va.hr.shape[-1]} (LR-HSI px).")
    fit = fit_student([tr], [va], cfg, wavelengths=pair.wavelengths, zoo_choice=zoo,
                      progress=_ranged(progress, 0.05, 0.85 if fused else 1.0), cancel=cancel)
    msgs += fit.messages
    prov = {"mode": "adaptive", "protocol": REDUCED_PROTOCOL, "hsi": str(hsi), "msi": str(msi), "scale": s,
            "lr_window": list(pair.window_lr), "lr_grid": list(pair.grid_lr), "budget_min": cfg.budget_min,
            "max_steps": cfg.steps, "val_fraction": cfg.val_fraction}
    json_path, st_path, line = _write(fit, model_path, pair.wavelengths, pair.fwhm, msi_info, hsi_sensor, prov,
                                      cancel)
    msgs.append(line)
    timings = {"read_s": t_read, "train_s": fit.elapsed_s}
    fused_path = None
    if fused:
        opts = dict(fuse_options or {})
        opts.setdefault("device", cfg.device)
        if cfg.threads:
            opts.setdefault("threads", cfg.threads)
        tf = time.perf_counter()
        try:
            res = fuse(hsi, msi, fused, model=str(st_path), progress=_ranged(progress, 0.85, 1.0), cancel=cancel,
                       **opts)
        except CsakdError as exc:
            raise type(exc)(f"{exc} (the adapted model was saved at '{st_path}')") from None
        timings["fuse_s"] = time.perf_counter() - tf
        msgs += res.messages
        fused_path = res.out_path
    timings["total_s"] = time.perf_counter() - t0
    return TrainRunResult.of_fit(fit, str(st_path), str(json_path), s, timings, msgs, fused_path=fused_path)


def train_references(references: Sequence[str | os.PathLike], sensor: str, scale: int,
                     out_model: str | os.PathLike, cfg: FitConfig | None = None, hsi_sensor: str | None = None,
                     progress: Callable[[float, str], None] | None = None,
                     cancel: Callable[[], bool] | None = None) -> TrainRunResult:
    """Train on Wald pairs simulated from reference HR-HSI rasters (a held-out strip of each validates)."""

    cfg = cfg or FitConfig()
    cfg.check()
    t0 = time.perf_counter()
    if not references:
        raise CsakdError("No training rasters were given.")
    s = check_scale(scale)
    if s < 2:
        raise CsakdError(f"The scale must be an integer >= 2 (got {scale}).")
    model_path = check_model_output(out_model, [str(p) for p in references], init=cfg.init)
    if not sensor or not str(sensor).strip():
        raise CsakdError("The MSI sensor is needed to simulate the multispectral image from the training rasters: "
                         "give e.g. 'S2A:B2,B3,B4,B8'.")
    srf = load_srf(sensor)
    refs, wl0, fw0 = read_references(references, progress=_ranged(progress, 0.0, 0.05))
    msi_info = _msi_info(sensor, len(srf.band_names))
    scenes = make_wald_scenes(refs, wl0, fw0, srf, s)
    zoo, msgs = _start(cfg, scenes, wl0, msi_info, s)
    tr, va = [], []
    for sc in scenes:
        a, b = split_scene(sc, cfg.val_fraction)
        tr.append(a)
        va.append(b)
    t_read = time.perf_counter() - t0
    fit = fit_student(tr, va, cfg, wavelengths=wl0, zoo_choice=zoo, progress=_ranged(progress, 0.05, 1.0),
                      cancel=cancel)
    msgs += fit.messages
    prov = {"mode": "reference", "protocol": REFERENCE_PROTOCOL, "references": [str(p) for p in references],
            "sensor": sensor, "scale": s, "budget_min": cfg.budget_min, "max_steps": cfg.steps,
            "val_fraction": cfg.val_fraction}
    json_path, st_path, line = _write(fit, model_path, wl0, fw0, msi_info, hsi_sensor, prov, cancel,
                                      training_data=[str(p) for p in references])
    msgs.append(line)
    timings = {"read_s": t_read, "train_s": fit.elapsed_s, "total_s": time.perf_counter() - t0}
    return TrainRunResult.of_fit(fit, str(st_path), str(json_path), s, timings, msgs)


def _ranged(progress: Callable[[float, str], None] | None, lo: float, hi: float) -> Callable[[float, str], None]:
    def rep(frac: float, msg: str = "") -> None:
        if progress is not None:
            progress(lo + (hi - lo) * float(min(max(frac, 0.0), 1.0)), msg)

    return rep


__all__ = ["REDUCED_PROTOCOL", "REFERENCE_PROTOCOL", "adapt", "train_references"]

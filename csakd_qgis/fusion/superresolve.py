"""Single-image super-resolution of a hyperspectral raster (DODN-style students) on the tiled engine.

Input: the LR-HSI only (no MSI: the MSI was privileged information in training). Output: a GeoTIFF on the
HSI grid with the pixel size divided by s (same origin, same CRS, s x the rows and columns), float32
reflectance, the HSI's bands in their order with their wavelength / FWHM / bbl / description metadata; bad
bands (bbl = 0) are not super-resolved but kept as all-nodata bands. Output nodata: the HSI's own nodata
value when it has a finite one, else -9999; an output pixel is nodata in band b where its parent HSI pixel is.

The job is the one :func:`fusion.fuse.fuse` runs (:class:`raster.job.TiledRasterJob`): the HR output grid (the
LR grid scaled by s) is cut into windows in column groups, each window's LR pixels (plus ``halo_lr`` of
context on each side, mirrored beyond the raster) go through a predictor whose ``predict`` takes only the LR
batch, and the blended windows stream into the GeoTIFF (memory independent of the raster size; temporary
file renamed into place at the end, removed on error or cancel).

Predictors: :class:`NetworkSRPredictor` (a model card with arch "dodn", role "student") and
:class:`BicubicSRPredictor` (the bicubic baseline; needs ``scale``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.predictors import fill_nodata
from csakd_qgis.fusion.reflectance import require_reflectance
from csakd_qgis.fusion.runtime import open_runner
from csakd_qgis.raster.io import OUTPUT_NODATA, check_has_valid_pixel, check_output_path, read_meta
from csakd_qgis.raster.job import (
    OutputSpec,
    Progress,
    RasterJobResult,
    TiledRasterJob,
    check_int,
    check_options,
    raster_layer,
)
from csakd_qgis.raster.resample import repeat_to_hr, upsample_bicubic
from csakd_qgis.zoo.card import apply_normalization, invert_normalization, read_card, validate_card
from csakd_qgis.zoo.registry import available_models, resolve_model_path

log = logging.getLogger("csakd_qgis.superresolve")

SR_ARCH = "dodn"
HSI_ROLE = "hyperspectral (HSI) input"


# ------------------------------------------------------------------------------------------ predictors
def lr_nodata_mask(lr: np.ndarray, scale: int) -> np.ndarray | None:
    """(B, C, s*h, s*w) bool, True where the LR parent pixel of a band is nodata; None when all is valid."""
    bad = ~np.isfinite(lr)
    if not bad.any():
        return None
    return repeat_to_hr(bad, scale)


class SRPredictor:
    """Interface: ``predict(lr (B, C_h, h, w)) -> (B, C_h, s*h, s*w)`` float32 reflectance, NaN = nodata.

    Attributes: ``name``, ``scale``, ``hsi_bands`` (None = any), ``device_used``, ``halo_lr``,
    ``network_seconds``, ``messages``.
    """

    name = "sr"
    scale = 1
    hsi_bands: int | None = None
    device_used = "cpu"
    halo_lr = 0
    network_seconds = 0.0
    messages: list[str]

    def check_inputs(self, hsi_wavelengths: Sequence[float | None] | int | None) -> None:
        """Raise CsakdError when the predictor cannot take this HSI (band count / wavelengths)."""
        n = hsi_wavelengths if isinstance(hsi_wavelengths, int) else (
            None if hsi_wavelengths is None else len(hsi_wavelengths))
        if self.hsi_bands is not None and n is not None and n != self.hsi_bands:
            raise CsakdError(f"The hyperspectral input has {n} usable bands but {self.name} expects "
                             f"{self.hsi_bands}.")

    def _check(self, lr: np.ndarray) -> None:
        if lr.ndim != 4:
            raise ValueError(f"predict expects a (B, C, h, w) array, got {lr.shape}")
        if self.hsi_bands is not None and lr.shape[1] != self.hsi_bands:
            raise CsakdError(f"{self.name} expects {self.hsi_bands} HSI bands, got {lr.shape[1]}.")

    def predict(self, lr: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """(B, C_h, s*h, s*w) super-resolved reflectance."""
        raise NotImplementedError


class BicubicSRPredictor(SRPredictor):
    """Keys (a = -0.5) bicubic upsampling by ``scale`` (raster.resample.upsample_bicubic): the baseline."""

    def __init__(self, scale: int) -> None:
        self.scale = int(scale)
        if self.scale < 2:
            raise CsakdError(f"The bicubic super-resolution needs a scale >= 2 (got {scale}).")
        self.name, self.hsi_bands, self.device_used = "bicubic", None, "cpu"
        self.halo_lr, self.network_seconds, self.messages = 2, 0.0, []

    def predict(self, lr: np.ndarray) -> np.ndarray:

        self._check(lr)
        t0 = time.perf_counter()
        out = np.stack([upsample_bicubic(x, self.scale) for x in lr]).astype(np.float32, copy=False)
        self.network_seconds += time.perf_counter() - t0
        return out


def receptive_halo_lr(cfg: dict[str, Any]) -> int:
    """LR px of context a DODN student needs on each side for tile interiors to match the whole image."""
    n_blocks = int(cfg.get("n_blocks", 3))
    head = int(cfg.get("head_kernel", 3)) // 2
    s = int(cfg.get("scale", 4))
    # stem 1 + 2 per DODB block + body 1 + upsampler conv 1 + head (HR px -> LR px) ; bicubic residual needs 2
    return max(1 + 2 * n_blocks + 2 + -(-head // s), 2)


class NetworkSRPredictor(SRPredictor):
    """A DODN-style student (model card arch "dodn", role "student") run with PyTorch or ONNX Runtime.

    NaN inputs are filled from the nearest valid pixel before the network; outputs are NaN where the LR
    parent pixel was nodata. ``precision`` fp16/bf16 uses autocast on CUDA (fp32 elsewhere, with a message);
    int8 is the quantised ONNX variant.
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto", precision: str = "fp32",
                 threads: int | None = None, halo_lr: int | None = None, runtime: str = "auto") -> None:
        self.messages = []
        card = read_card(path)  # arch checked before any runtime or weights are loaded
        name = card.get("name") or Path(str(path)).stem
        if card.get("arch") != SR_ARCH:
            raise CsakdError(f"The model '{name}' is a hyperspectral + multispectral fusion model (arch "
                             f"{card.get('arch')!r}): it needs an MSI. Use 'csakd fuse' or the 'Fuse "
                             "hyperspectral + multispectral' algorithm, or choose a super-resolution (arch "
                             f"'{SR_ARCH}') student.")
        if card.get("role") != "student" or card.get("config", {}).get("net") != "student":
            raise CsakdError(f"The model '{name}' is a DODN teacher (it maps the multispectral image to a "
                             "hyperspectral one); super-resolution needs the student model.")
        self.card = card
        self.runner = open_runner(path, card, runtime, device, precision, threads, self.messages)
        self.path, self.name = str(path), str(name)
        self.scale = int(card["scale"])
        self.hsi_bands = int(card["hsi"]["bands"])
        self.device, self.device_used = self.runner.device, self.runner.device_used
        self.halo_lr = int(receptive_halo_lr(card["config"]) if halo_lr is None else halo_lr)
        self.network_seconds = 0.0

    def check_inputs(self, hsi_wavelengths: Sequence[float | None] | int | Any | None,
                     scale: int | None = None) -> None:
        """Raise CsakdError if the card does not fit the HSI (band count, band centres, optional scale)."""
        validate_card(self.card, hsi_wavelengths, None, scale)

    def predict(self, lr: np.ndarray) -> np.ndarray:
        """Run the student on a batch of LR windows (inputs filled, outputs masked)."""
        self._check(lr)
        mask = lr_nodata_mask(lr, self.scale)
        x, _, _ = apply_normalization(self.card, np.stack([fill_nodata(a) for a in lr]), None)
        t0 = time.perf_counter()
        out = invert_normalization(self.card, self.runner.run({"lr": x})).astype(np.float32, copy=False)
        self.network_seconds += time.perf_counter() - t0
        if mask is not None:
            out[mask] = np.nan
        return out


def make_sr_predictor(model: str | os.PathLike | SRPredictor, *, hsi_wavelengths: Sequence[float | None] | int,
                      scale: int | None = None, device: str = "auto", precision: str = "fp32",
                      threads: int | None = None, runtime: str = "auto") -> SRPredictor:
    """A super-resolution predictor: "bicubic" (needs ``scale``), a zoo SR model name, a .safetensors/.json
    path, or an :class:`SRPredictor` (returned as is). Learned models are checked against the HSI (band
    count and centres; ``scale`` when given) before any compute.
    """

    if isinstance(model, SRPredictor) or (hasattr(model, "predict") and hasattr(model, "halo_lr")):
        pred = model
        if scale is not None and int(pred.scale) != int(scale):
            raise CsakdError(f"The predictor works at scale {pred.scale} but scale {scale} was requested.")
        pred.check_inputs(hsi_wavelengths)
        return pred  # type: ignore[return-value]
    text = str(model).strip()
    if text.lower() == "bicubic":
        if scale is None:
            raise CsakdError("The bicubic super-resolution needs a scale (e.g. --scale 4); learned models "
                             "bring their own.")
        return BicubicSRPredictor(int(scale))
    path_like = (os.sep in text or "/" in text or text.lower().endswith((".json", ".safetensors"))
                 or Path(text).expanduser().exists())
    try:
        card_path = resolve_model_path(text, builtin=("bicubic",))
    except CsakdError:
        if path_like:
            raise
        zoo = available_models(SR_ARCH)
        raise CsakdError(f"Unknown super-resolution model '{text}': not 'bicubic', not a zoo model "
                         f"({', '.join(zoo) if zoo else 'none installed'}) and not a model file path "
                         "(.safetensors with its .json card beside it).") from None
    pred_t = NetworkSRPredictor(card_path, device=device, precision=precision, threads=threads,
                                runtime=runtime)
    pred_t.check_inputs(hsi_wavelengths, scale)
    return pred_t


# ------------------------------------------------------------------------------------------ the job
@dataclass
class SuperresolveResult(RasterJobResult):
    """What :func:`superresolve` did (the job's result)."""


def _reflectance_check(sample: np.ndarray) -> str | None:
    v = sample[np.isfinite(sample)]
    if v.size == 0:
        return None
    med = float(np.median(np.abs(v)))
    if med > 2.0:
        return (f"The HSI values (median {med:.4g}) do not look like reflectance in [0, 1]: a scale factor is "
                "probably missing (e.g. EnMAP L2A needs 1/10000; set it with gdal_edit.py -scale). Networks "
                "expect reflectance.")
    return None


def superresolve(hsi: str | os.PathLike, out: str | os.PathLike, model: Any = "bicubic", *, device: str = "auto",
                 tile: int = 256, overlap: int = 32, batch: int = 4, scale: int | None = None,
                 creation_options: dict[str, str] | None = None,
                 progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
                 threads: int | None = None, precision: str = "fp32", edge: str = "shift",
                 runtime: str = "auto", part: tuple[int, int] | None = None) -> SuperresolveResult:
    """Super-resolve ``hsi`` by the model's scale into ``out`` (GeoTIFF on the HSI grid, pixel size / s).

    ``model``: a DODN-style SR student (zoo name or .safetensors/.json path), "bicubic" (needs ``scale``) or
    an :class:`SRPredictor`. ``scale``: optional check for learned models (must equal the card's).
    ``tile``/``overlap`` in output (HR) pixels, rounded up to multiples of the scale. ``progress(fraction,
    message)`` per batch; ``cancel()`` per batch (CancelledError, nothing left at ``out``). ``part`` = (k, n):
    write only the k-th of n column-group ranges (a block file of :mod:`distributed.blocks`).
    """
    import rasterio
    from affine import Affine

    t_start = time.perf_counter()
    out_path = check_output_path(out, [str(hsi)], role="super-resolved output")
    opts = check_options(tile, overlap, batch, threads, edge, creation_options=creation_options, part=part)
    if scale is not None:
        scale = check_int("scale", scale, 2)
    prog = Progress(progress, cancel)
    prog.report(0.0, "reading the HSI header")
    meta = read_meta(hsi, HSI_ROLE)
    check_has_valid_pixel(hsi, HSI_ROLE)
    if meta.crs is None:
        log.debug("HSI without CRS: output without CRS too")
    good = meta.good_bands()
    if not good:
        raise CsakdError(f"The {HSI_ROLE} '{hsi}' has no usable band (all flagged bad, bbl = 0).")
    predictor = make_sr_predictor(model, hsi_wavelengths=[meta.wavelengths[i] for i in good], scale=scale,
                                  device=device, precision=precision, threads=opts.threads, runtime=runtime)
    s = int(predictor.scale)
    messages: list[str] = list(getattr(predictor, "messages", []))
    prog.check_cancel()
    nodata = meta.nodata if meta.nodata is not None and np.isfinite(meta.nodata) else OUTPUT_NODATA
    output = OutputSpec(meta.width * s, meta.height * s, meta.crs, meta.transform * Affine.scale(1.0 / s, 1.0 / s),
                        meta.count, good, meta.wavelengths, meta.fwhm, meta.bbl, meta.descriptions, nodata)
    job = TiledRasterJob(out_path, output, s, opts, prog)
    job.timings["setup_s"] = time.perf_counter() - t_start
    with rasterio.open(str(hsi)) as src:
        layer = raster_layer(src, meta, good)
        h, w = min(meta.height, 128), min(meta.width, 128)
        sample = layer.read(meta.height // 2 - h // 2, meta.width // 2 - w // 2, h, w)
        require_reflectance(predictor, {"hyperspectral (HSI) input": (hsi, sample)})
        note = _reflectance_check(sample)
        if note:
            messages.append(note)
        with job:
            messages += job.plan.messages
            job.tags["CSAKD_SUPERRESOLUTION"] = json.dumps({
                "hsi": os.path.basename(str(hsi)), "model": predictor.name, "scale": s,
                "device": predictor.device_used, "super_resolved_bands": len(good), "tile": job.plan.tile,
                "overlap": job.plan.overlap})
            job.run([layer], predictor, (0.02, 0.99), f"super-resolving {job.plan.n_tiles} tiles")
    return job.finish(SuperresolveResult, predictor, t_start, messages)


__all__ = ["BicubicSRPredictor", "SRPredictor", "SuperresolveResult", "NetworkSRPredictor", "lr_nodata_mask",
           "make_sr_predictor", "receptive_halo_lr", "superresolve"]

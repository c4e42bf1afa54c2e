"""Single-image super-resolution of a hyperspectral raster (DODN-style students) on the tiled engine.

Input: the LR-HSI only (no MSI: the MSI was privileged information in training). Output: a GeoTIFF on the
HSI grid with the pixel size divided by s (same origin, same CRS, s x the rows and columns), float32
reflectance, the HSI's bands in their order with their wavelength / FWHM / bbl / description metadata; bad
bands (bbl = 0) are not super-resolved but kept as all-nodata bands. Output nodata: the HSI's own nodata
value when it has a finite one, else -9999; an output pixel is nodata in band b where its parent HSI pixel is.

The engine is the one :func:`fusion.fuse.fuse` uses (an additive extension, no second engine): the HR output
grid is planned with :func:`tiling.plan_tiles`, each window's LR pixels (plus ``halo_lr`` of context on each
side, read boundless) go through a predictor whose ``predict`` takes only the LR batch, and the windows are
blended by :class:`tiling.BlendWriter` into a :class:`io.GeoTiffWriter` (temporary file renamed into place at
the end; removed on error or cancel).

Predictors: :class:`NetworkSRPredictor` (a model card with arch "dodn", role "student") and
:class:`BicubicSRPredictor` (the bicubic baseline; needs ``scale``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.fusion.fuse import _check_int
from csakd_qgis.fusion.predictors import fill_nodata
from csakd_qgis.fusion.runtime import open_runner
from csakd_qgis.raster.io import (
    OUTPUT_NODATA,
    GeoTiffWriter,
    check_output_path,
    read_meta,
    read_window_raw,
    to_reflectance,
)
from csakd_qgis.raster.resample import upsample_bicubic
from csakd_qgis.raster.tiling import BlendWriter, pad_reflect, plan_tiles, run_tiles
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
    return np.repeat(np.repeat(bad, scale, axis=-2), scale, axis=-1)


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
class SuperresolveResult:
    """What :func:`superresolve` did."""

    out_path: str
    device_used: str
    n_tiles: int
    elapsed_s: float
    scale: int
    bands: int
    width: int = 0
    height: int = 0
    model: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.out_path}: {self.width} x {self.height} px, {self.bands} bands, scale {self.scale}, "
                f"model {self.model}, device {self.device_used}, {self.n_tiles} tiles, {self.elapsed_s:.1f} s")


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


def superresolve(hsi: str | os.PathLike, out: str | os.PathLike, model: Any = "bicubic", device: str = "auto",
                 tile: int = 256, overlap: int = 32, batch: int = 4, scale: int | None = None,
                 creation_options: dict[str, str] | None = None,
                 progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
                 threads: int | None = None, precision: str = "fp32", edge: str = "shift",
                 runtime: str = "auto") -> SuperresolveResult:
    """Super-resolve ``hsi`` by the model's scale into ``out`` (GeoTIFF on the HSI grid, pixel size / s).

    ``model``: a DODN-style SR student (zoo name or .safetensors/.json path), "bicubic" (needs ``scale``) or
    an :class:`SRPredictor`. ``scale``: optional check for learned models (must equal the card's).
    ``tile``/``overlap`` in output (HR) pixels, rounded up to multiples of the scale. ``progress(fraction,
    message)`` per batch; ``cancel()`` per batch (CancelledError, nothing left at ``out``).
    """
    import rasterio
    from affine import Affine
    from rasterio.windows import Window


    t_start = time.perf_counter()
    out_path = check_output_path(out, [str(hsi)], role="super-resolved output")
    tile = _check_int("tile", tile, 1)
    overlap = _check_int("overlap", overlap, 0)
    batch = _check_int("batch", batch, 1)
    if threads is not None:
        threads = _check_int("threads", threads, 1)
    if scale is not None:
        scale = _check_int("scale", scale, 2)

    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(float(min(max(frac, 0.0), 1.0)), msg)

    report(0.0, "reading the HSI header")
    meta = read_meta(hsi, HSI_ROLE)
    if meta.crs is None:
        log.debug("HSI without CRS: output without CRS too")
    good = meta.good_bands()
    if not good:
        raise CsakdError(f"The {HSI_ROLE} '{hsi}' has no usable band (all flagged bad, bbl = 0).")
    predictor = make_sr_predictor(model, hsi_wavelengths=[meta.wavelengths[i] for i in good], scale=scale,
                                  device=device, precision=precision, threads=threads, runtime=runtime)
    s = int(predictor.scale)
    messages: list[str] = list(getattr(predictor, "messages", []))
    hr_h, hr_w = meta.height * s, meta.width * s
    plan = plan_tiles(hr_h, hr_w, s, tile, overlap, edge=edge)
    messages += plan.messages
    if cancel is not None and cancel():
        raise CancelledError()
    n_out = meta.count
    good_1 = [i + 1 for i in good]
    bad_1 = [i + 1 for i in range(n_out) if i not in set(good)]
    halo = int(getattr(predictor, "halo_lr", 0))
    hs = halo * s
    nodata = meta.nodata if meta.nodata is not None and np.isfinite(meta.nodata) else OUTPUT_NODATA
    hr_transform = meta.transform * Affine.scale(1.0 / s, 1.0 / s)
    timings = {"setup_s": time.perf_counter() - t_start, "read_s": 0.0, "predict_s": 0.0, "blend_write_s": 0.0}
    tags = {"CSAKD_SUPERRESOLUTION": json.dumps({
        "hsi": os.path.basename(str(hsi)), "model": predictor.name, "scale": s, "device": predictor.device_used,
        "super_resolved_bands": len(good), "tile": plan.tile, "overlap": plan.overlap})}

    with rasterio.open(str(hsi)) as src:
        c0 = meta.width // 2 - min(meta.width, 128) // 2
        r0 = meta.height // 2 - min(meta.height, 128) // 2
        sample = to_reflectance(read_window_raw(src, Window(c0, r0, min(meta.width, 128), min(meta.height, 128)),
                                                good_1), meta, good)
        note = _reflectance_check(sample)
        if note:
            messages.append(note)
        del sample

        def task(tiles):
            ta = time.perf_counter()
            lrs = []
            for t in tiles:
                win = Window(t.col // s - halo, t.row // s - halo, t.width // s + 2 * halo,
                             t.height // s + 2 * halo)
                lr = to_reflectance(read_window_raw(src, win, good_1), meta, good)
                if t.pad_bottom or t.pad_right:
                    lr = pad_reflect(lr, t.pad_bottom // s, t.pad_right // s)
                lrs.append(lr)
            tb = time.perf_counter()
            pred = predictor.predict(np.stack(lrs))
            timings["read_s"] += tb - ta
            timings["predict_s"] += time.perf_counter() - tb
            return [p[:, hs:hs + t.height, hs:hs + t.width] for p, t in zip(pred, tiles, strict=True)]

        report(0.02, f"super-resolving {plan.n_tiles} tiles")
        with GeoTiffWriter(out_path, hr_w, hr_h, n_out, meta.crs, hr_transform, meta.wavelengths, meta.fwhm,
                           nodata=nodata, creation_options=creation_options, tags=tags, bbl=meta.bbl,
                           descriptions=meta.descriptions) as wr:

            def sink(block: np.ndarray, row0: int) -> None:
                tw = time.perf_counter()
                rows = block.shape[1]
                win = Window(0, row0, hr_w, rows)
                if bad_1:
                    wr.write(block, window=win, indexes=good_1)
                    empty = np.full((1, rows, hr_w), np.nan, np.float32)
                    for b in bad_1:
                        wr.write(empty, window=win, indexes=[b])
                else:
                    wr.write(block, window=win)
                timings["blend_write_s"] += time.perf_counter() - tw

            blender = BlendWriter(plan, len(good), sink, block_rows=wr.block_shape[0], batch=batch)
            tb = time.perf_counter()
            run_tiles(plan, task, blender, batch=batch, progress=progress, cancel=cancel,
                      progress_range=(0.02, 0.99))
            timings["tiles_s"] = time.perf_counter() - tb
            timings["buffer_mb"] = blender.peak_buffer_bytes / 2 ** 20
    timings["network_s"] = float(getattr(predictor, "network_seconds", 0.0))
    if bad_1:
        messages.append(f"{len(bad_1)} bad band(s) (bbl = 0) kept as nodata so band numbers match the HSI.")
    result = SuperresolveResult(out_path=str(out_path), device_used=predictor.device_used, n_tiles=plan.n_tiles,
                                elapsed_s=time.perf_counter() - t_start, scale=s, bands=n_out, width=hr_w,
                                height=hr_h, model=predictor.name, timings=timings, messages=messages)
    messages.append(result.summary())
    report(1.0, "done")
    log.debug(result.summary())
    return result


__all__ = ["BicubicSRPredictor", "SRPredictor", "SuperresolveResult", "NetworkSRPredictor", "lr_nodata_mask",
           "make_sr_predictor", "receptive_halo_lr", "superresolve"]

"""How the provider's rasters look in QGIS: display bands by wavelength, a 2-98 % stretch, nodata transparent.

A 218-band GeoTIFF would otherwise be drawn from bands 1/2/3 (three blue bands). The style is computed once
after the engine wrote the raster, saved beside it as ``<name>.qml`` (and the layer metadata as ``<name>.qmd``),
which QGIS loads whenever the file is opened, and applied by a Processing post-processor when the algorithm
loads the output into the project.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import threading
from collections.abc import Sequence

import numpy as np
from qgis.core import (
    Qgis,
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsSingleBandGrayRenderer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtXml import QDomDocument

from csakd_qgis.algorithms.qgis_enums import ADVANCED
from csakd_qgis.quality.report import TRUE_COLOUR_NM, rgb_bands
from csakd_qgis.raster.guard import style_sidecars
from csakd_qgis.raster.io import read_meta, write_files_atomic
from csakd_qgis.version import __version__

DISPLAY_BANDS, DISPLAY_WAVELENGTHS = "DISPLAY_BANDS", "DISPLAY_WAVELENGTHS"
TRUE_COLOUR, FALSE_COLOUR, CUSTOM = "true_colour", "false_colour", "custom"
PRESETS: dict[str, tuple[float, ...]] = {TRUE_COLOUR: TRUE_COLOUR_NM, FALSE_COLOUR: (860.0, 650.0, 550.0)}
CUT = (0.02, 0.98)  # cumulative-count cut of the stretch
SAMPLE_PIXELS = 250_000  # pixels per band read (at reduced resolution) to compute the stretch

# stretch limits stored as fixed values (not recomputed per band on reload), estimated from a sample; the enums
# moved to Qgis.RasterRange* in newer QGIS
_FIXED_LIMITS = (Qgis.RasterRangeLimit.NotSet if hasattr(Qgis, "RasterRangeLimit")
                 else QgsRasterMinMaxOrigin.Limits.None_)
_ESTIMATED = (Qgis.RasterRangeAccuracy.Estimated if hasattr(Qgis, "RasterRangeAccuracy")
              else QgsRasterMinMaxOrigin.StatAccuracy.Estimated)
_DT = Qgis.DataType
_NUMPY_TYPES = {_DT.Byte: np.uint8, _DT.UInt16: np.uint16, _DT.Int16: np.int16, _DT.UInt32: np.uint32,
                _DT.Int32: np.int32, _DT.Float32: np.float32, _DT.Float64: np.float64}


def _tr(text: str) -> str:
    return QCoreApplication.translate("csakd", text)


# ------------------------------------------------------------------------------------------ parameters
def display_parameters() -> list[QgsProcessingParameterDefinition]:
    """The advanced DISPLAY_BANDS choice and DISPLAY_WAVELENGTHS (defaults keep old models and calls valid)."""
    choice = QgsProcessingParameterEnum(
        DISPLAY_BANDS, _tr("Display bands when loaded (true_colour 640/550/460 nm, false_colour NIR/red/green "
                           "860/650/550 nm, custom = DISPLAY_WAVELENGTHS)"),
        options=[TRUE_COLOUR, FALSE_COLOUR, CUSTOM], defaultValue=TRUE_COLOUR, usesStaticStrings=True)
    custom = QgsProcessingParameterString(
        DISPLAY_WAVELENGTHS, _tr("Custom display wavelengths in nm: red,green,blue (one value = grey)"),
        defaultValue="", optional=True)
    for p in (choice, custom):
        p.setFlags(p.flags() | ADVANCED)
    return [choice, custom]


def display_help() -> str:
    """The help paragraph on how outputs look when loaded and how to change it."""
    return _tr(
        "\n\nDisplay: each output raster is styled when loaded, and whenever the file is opened later, from the "
        ".qml/.qmd files written beside it: true colour from the bands nearest 640/550/460 nm (grey for a 1-band "
        "raster), one 2-98 % stretch, nodata transparent; the layer abstract says what made it. Advanced "
        "DISPLAY_BANDS: false_colour (NIR/red/green, 860/650/550 nm) or custom with DISPLAY_WAVELENGTHS (e.g. "
        "860,650,550; one value gives grey).")


def parse_wavelengths(text: str) -> tuple[float, ...]:
    """'860,650,550' (or one value for grey) as display wavelengths in nm; a clear error otherwise."""
    items = [t for t in re.split(r"[\s,;/]+", (text or "").strip()) if t]
    try:
        values = tuple(float(t) for t in items)
    except ValueError:
        values = ()
    if len(values) not in (1, 3) or not all(np.isfinite(v) and v > 0 for v in values):
        raise QgsProcessingException(
            f"DISPLAY_WAVELENGTHS '{text}' is not 3 wavelengths in nm (red,green,blue, e.g. 860,650,550) or one "
            "wavelength for a grey image.")
    return values


def display_targets(choice: str, custom: str) -> tuple[float, ...]:
    """Display wavelengths (nm) for a DISPLAY_BANDS choice; 'custom' reads DISPLAY_WAVELENGTHS."""
    if choice == CUSTOM:
        if not (custom or "").strip():
            raise QgsProcessingException("DISPLAY_BANDS is 'custom' but DISPLAY_WAVELENGTHS is empty: give e.g. "
                                         "860,650,550 (nm, red,green,blue) or one wavelength for grey.")
        return parse_wavelengths(custom)
    if choice not in PRESETS:
        raise QgsProcessingException(f"DISPLAY_BANDS '{choice}' is not available: choose one of "
                                     f"{', '.join([*PRESETS, CUSTOM])}.")
    return PRESETS[choice]


# ------------------------------------------------------------------------------------------ the style
def sidecar_paths(raster: str) -> tuple[str, str]:
    """(style .qml, metadata .qmd) paths written beside a raster file (:func:`raster.guard.style_sidecars`)."""
    return style_sidecars(raster)


def display_bands(raster: str, targets: Sequence[float]) -> list[int]:
    """1-based bands nearest the target wavelengths among the good bands; one band for 1-band rasters."""
    meta = read_meta(raster, role="output raster")
    if meta.count < 3:
        targets = targets[:1]
    return [i + 1 for i in rgb_bands(meta.wavelengths, meta.count, targets, good=meta.good_bands())]


def _sample(layer: QgsRasterLayer, band: int) -> np.ndarray:
    """Valid values of one band read at reduced resolution (about SAMPLE_PIXELS), nodata and NaN dropped."""
    prov = layer.dataProvider()
    w, h = layer.width(), layer.height()
    f = min(1.0, float(np.sqrt(SAMPLE_PIXELS / max(1, w * h))))
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    block = prov.block(band, prov.extent(), sw, sh)
    dtype = _NUMPY_TYPES.get(block.dataType())
    if dtype is None or block.isEmpty():
        return np.empty(0, np.float64)
    values = np.frombuffer(bytes(block.data()), dtype=dtype, count=sw * sh).astype(np.float64)
    keep = np.isfinite(values)
    if prov.sourceHasNoDataValue(band) and prov.useSourceNoDataValue(band):
        keep &= values != prov.sourceNoDataValue(band)
    return values[keep]


def _enhancement(layer: QgsRasterLayer, band: int, lo: float, hi: float) -> QgsContrastEnhancement:
    ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum, True)
    ce.setMinimumValue(lo)
    ce.setMaximumValue(hi if hi > lo else lo + 1e-6)
    return ce


def apply_style(layer: QgsRasterLayer, bands: Sequence[int]) -> tuple[float, float]:
    """Give the layer an RGB (3 bands) or grey (1 band) renderer with one 2-98 % cut; returns (min, max).

    The cut is computed over the display bands together on a subsample, so the channels keep their relative
    brightness (per-band cuts would shift the hues of a true-colour image). Nodata stays transparent.
    """
    values = np.concatenate([_sample(layer, b) for b in bands])
    if values.size:
        lo, hi = (float(v) for v in np.quantile(values, CUT))
    else:  # an all-nodata raster: any range draws nothing
        lo, hi = 0.0, 1.0
    prov = layer.dataProvider()
    for b in bands:
        prov.setUseSourceNoDataValue(b, True)
    if len(bands) == 3:
        renderer = QgsMultiBandColorRenderer(prov, *bands)
        renderer.setRedContrastEnhancement(_enhancement(layer, bands[0], lo, hi))
        renderer.setGreenContrastEnhancement(_enhancement(layer, bands[1], lo, hi))
        renderer.setBlueContrastEnhancement(_enhancement(layer, bands[2], lo, hi))
    else:
        renderer = QgsSingleBandGrayRenderer(prov, bands[0])
        renderer.setContrastEnhancement(_enhancement(layer, bands[0], lo, hi))
    origin = renderer.minMaxOrigin()
    origin.setLimits(_FIXED_LIMITS)
    origin.setCumulativeCutLower(CUT[0])
    origin.setCumulativeCutUpper(CUT[1])
    origin.setStatAccuracy(_ESTIMATED)
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    return lo, hi


def provenance(algorithm: str, inputs: Sequence[str], facts: dict[str, object]) -> str:
    """The layer abstract: which algorithm made the raster from which inputs, when, and how (model, scale, ...)."""
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = " and ".join(os.path.basename(str(p)) for p in inputs if p)
    details = "; ".join(f"{k}: {v}" for k, v in facts.items() if v not in (None, ""))
    return (f"Made by {algorithm} (csakd_qgis {__version__}) on {when}" + (f" from {names}" if names else "")
            + (f". {details}." if details else "."))


def shift_text(dx: float, dy: float, corrected: bool) -> str:
    """The estimated HSI shift as the abstract states it, e.g. 'dx +0.012, dy -0.004 LR px (not corrected)'."""
    return f"dx {dx:+.3f}, dy {dy:+.3f} LR px ({'corrected' if corrected else 'not corrected'})"


def remove_sidecars(raster: str) -> None:
    """Delete the .qml/.qmd written beside a raster (a failed run leaves no style for a file it did not make)."""
    for p in sidecar_paths(raster):
        with contextlib.suppress(OSError):
            os.remove(p)


def write_sidecars(raster: str, targets: Sequence[float], abstract: str) -> list[int]:
    """Style the raster and write ``.qml`` + ``.qmd`` beside it, each atomically; returns the display bands.

    On any failure both sidecars are removed (stale ones would not match the new raster) and the error raised.
    """
    qml, qmd = sidecar_paths(raster)
    layer = None
    try:
        layer = QgsRasterLayer(raster, os.path.basename(raster), "gdal")
        if not layer.isValid():
            raise QgsProcessingException(f"The output '{raster}' could not be opened to compute its display style.")
        bands = display_bands(raster, targets)
        apply_style(layer, bands)
        metadata = layer.metadata()
        metadata.setAbstract(abstract)
        layer.setMetadata(metadata)
        style, metadata_doc = QDomDocument(), QDomDocument()
        error = layer.exportNamedStyle(style)
        if error:
            raise QgsProcessingException(f"The display style of '{raster}' could not be written: {error}")
        layer.exportNamedMetadata(metadata_doc, "")
        write_files_atomic([(qml, "display style", style.toString().encode("utf-8")),
                            (qmd, "layer metadata", metadata_doc.toString().encode("utf-8"))])
    except BaseException:
        remove_sidecars(raster)
        raise
    finally:
        layer = None  # a traceback kept by the caller must not keep a QGIS layer alive past QGIS's exit
    return bands


# ------------------------------------------------------------------------------------------ loading
class SidecarStyler(QgsProcessingLayerPostProcessorInterface):
    """Loads the raster's .qml/.qmd into the layer Processing adds to the project (it skips default styles)."""

    def __init__(self, raster: str) -> None:
        super().__init__()
        self.raster = raster

    def postProcessLayer(self, layer, context: QgsProcessingContext,  # noqa: N802 (QGIS API name)
                         feedback: QgsProcessingFeedback) -> None:
        """Runs in the main thread once the layer is in the project."""
        if not isinstance(layer, QgsRasterLayer):
            return
        qml, qmd = sidecar_paths(self.raster)
        if os.path.exists(qml):
            message, ok = layer.loadNamedStyle(qml)
            if not ok and feedback is not None:
                feedback.pushWarning(f"The display style '{qml}' could not be loaded: {message}")
        if os.path.exists(qmd):
            layer.loadNamedMetadata(qmd)
        layer.triggerRepaint()


# QGIS keeps only a C++ pointer to a post-processor: the Python object must outlive the run (one per path,
# reused, never freed while a context may still call it).
_STYLERS: dict[str, SidecarStyler] = {}
_STYLERS_LOCK = threading.Lock()


def load_with_style(context: QgsProcessingContext, raster: str) -> None:
    """When Processing will load ``raster`` into a project, have the sidecar style applied to it."""
    if not context.willLoadLayerOnCompletion(raster):
        return
    with _STYLERS_LOCK:
        styler = _STYLERS.setdefault(raster, SidecarStyler(raster))
    context.layerToLoadOnCompletionDetails(raster).setPostProcessor(styler)

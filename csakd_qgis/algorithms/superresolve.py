"""csakd:superresolve — single-image hyperspectral super-resolution (DODN-style student; no MSI needed)."""

from __future__ import annotations

import functools

from qgis.core import QgsProcessingParameterNumber

from csakd_qgis.algorithms.fusion_base import FILE_CHOICE, PRODUCT_HELP, ModelFusionBase
from csakd_qgis.algorithms.qgis_enums import ADVANCED, INTEGER
from csakd_qgis.algorithms.styling import display_help
from csakd_qgis.fusion.superresolve import superresolve
from csakd_qgis.zoo.registry import available_models

BICUBIC = "bicubic"


def model_choices() -> list[str]:
    """Zoo super-resolution models first (the default is the first), then bicubic, then 'file'."""

    return [*available_models("dodn"), BICUBIC, FILE_CHOICE]


class SuperresolveAlgorithm(ModelFusionBase):
    """LR-HSI in, HR-HSI out (pixel size / s) through the tiled engine (fusion.superresolve.superresolve)."""

    GROUP, GROUP_ID = "Single-image super-resolution", "superresolution"
    NEEDS_MSI = False
    SCALE = "SCALE"

    def __init__(self) -> None:
        super().__init__()
        self._scale: int | None = None

    def name(self) -> str:
        return "superresolve"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Super-resolve hyperspectral image (single image, learned)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Super-resolves a hyperspectral image (HSI, e.g. EnMAP 30 m) on its own: no multispectral image "
            "is needed. The model is a DODN-style student: during training a spectral super-resolution teacher "
            "(multispectral -> hyperspectral) passed on spatial knowledge, so the multispectral image was only "
            "privileged training information (our reconstruction of DODN from its abstract).\n\n"
            + PRODUCT_HELP +
            "Output: a GeoTIFF on the HSI grid with the pixel size divided by the model's scale s (same origin "
            "and CRS, s times the rows and columns), float32 reflectance, the HSI's bands (bad bands kept as "
            "nodata), wavelengths, FWHM and band names, and the HSI's nodata value (else -9999). The HSI must "
            "be reflectance in [0, 1] (scale factors in the file are applied).\n\n"
            "MODEL: a zoo super-resolution model (e.g. enmap_x4_sr = EnMAP 218 bands, 4x), 'bicubic' (the "
            "baseline, at SCALE), or 'file' to use MODEL_FILE (a .safetensors file with its .json model card "
            "beside it). The card is checked against the HSI (band count and band centres) before any work.\n\n"
            "DEVICE: 'auto' uses a CUDA GPU when PyTorch sees one, else the CPU. Advanced: TILE/OVERLAP (output "
            "pixels), BATCH (tiles per forward pass), SCALE (bicubic only), CREATION_OPTIONS (GDAL), RUNTIME "
            "(auto = PyTorch when installed, else ONNX Runtime; torch; onnx), PRECISION (int8 = quantised ONNX). "
            "Learned models need ONNX Runtime or PyTorch in QGIS's Python (Plugins > CSAKD > Check / install "
            "dependencies).") + display_help()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_inputs()
        self.add_model_parameters(model_choices())
        scale = QgsProcessingParameterNumber(self.SCALE, self.tr("Scale factor (bicubic only)"),
                                             INTEGER, 4, minValue=2, maxValue=16)
        scale.setFlags(scale.flags() | ADVANCED)
        self.addParameter(scale)
        self.add_run_options(learned=True)
        out = self.parameterDefinition(self.OUTPUT)
        if out is not None:
            out.setDescription(self.tr("Super-resolved hyperspectral image"))

    def core_function(self):
        """fusion.superresolve.superresolve (with the SCALE parameter for bicubic)."""

        return functools.partial(superresolve, scale=self._scale) if self._scale else superresolve

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        model = self.selected_model(parameters, context)
        device = self.parameterAsEnumString(parameters, self.DEVICE, context)
        self._scale = self.parameterAsInt(parameters, self.SCALE, context) if model == BICUBIC else None
        feedback.pushInfo(f"Model: {model}; requested device: {device}")
        return self.run_fusion(parameters, context, feedback, model=model, device=device)

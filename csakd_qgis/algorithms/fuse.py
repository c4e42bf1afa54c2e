"""csakd:fuse — learned (or classical) fusion of LR-HSI + HR-MSI with a zoo model or a model file."""

from __future__ import annotations

from csakd_qgis.algorithms.fusion_base import FILE_CHOICE, PRODUCT_HELP, ModelFusionBase
from csakd_qgis.algorithms.styling import display_help
from csakd_qgis.fusion.methods import method_names
from csakd_qgis.zoo.registry import available_models


def model_choices() -> list[str]:
    """Zoo models first (the default is the first), then the classical methods, then 'file'."""

    return [*available_models(), *method_names(), FILE_CHOICE]


class FuseAlgorithm(ModelFusionBase):
    """The main job: a knowledge-distilled CSAKD student (or any model card) through the tiled engine."""

    def name(self) -> str:
        return "fuse"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Fuse hyperspectral + multispectral (learned model)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Fuses a low-resolution hyperspectral image (HSI, e.g. EnMAP 30 m) with a high-resolution "
            "multispectral image (MSI, e.g. Sentinel-2 10 m) into a hyperspectral GeoTIFF on the MSI grid "
            "with a trained network (a knowledge-distilled CSAKD student from the model zoo, or a model "
            "file you trained with 'csakd train') or a classical method.\n\n"
            + PRODUCT_HELP +
            "MODEL: a zoo model (its name says the sensors and scale, e.g. enmap_s2-4band_x3 = EnMAP + "
            "Sentinel-2 B2,B3,B4,B8 at 3x), a model-based method (auto, glp+c, glp+cy, gsa+c, cnmf, cnmf+c: see "
            "'Fuse hyperspectral + multispectral (classical)'; PSF and SRF set their observation model), a "
            "classical method (glp, gsa, bicubic), or 'file' to use "
            "MODEL_FILE (a .safetensors file with its .json model card beside it). The model's card is "
            "checked against the inputs: HSI band count and wavelengths, MSI band count and scale.\n\n"
            "Grids: the HSI pixel size should be an integer multiple of the MSI pixel size (else it is rounded "
            "and the HSI resampled, as the log says); an HSI in another CRS "
            "is reprojected automatically; the MSI must be in a projected CRS (metres), not longitude/latitude. "
            "The output keeps the HSI's bands and wavelength/FWHM metadata (float32 reflectance, nodata -9999).\n\n"
            "DEVICE: 'auto' uses a CUDA GPU when PyTorch sees one, else the CPU; 'cuda' stops with a clear "
            "message when PyTorch sees no GPU. Classical methods always run on the CPU. The device actually "
            "used is returned as DEVICE_USED ('cpu' or 'cuda') and logged with the GPU name or the number of "
            "CPU threads. The estimated sub-pixel HSI shift is returned as SHIFT_X/SHIFT_Y (HSI pixels) and "
            "removed when SHIFT_CORRECT is set.\n\n"
            "MSI bands at 20 m (optional): e.g. Sentinel-2 B5, B6, B7, B8A, B11, B12 at 20 m beside an MSI of B2, B3, "
            "B4, B8 at 10 m (same CRS, pixel size an integer multiple of the MSI's, pixel edges on the MSI's, "
            "covering the HSI). They are sharpened to the MSI grid (detail from the MSI bands, consistent with the 20 m bands) and "
            "fused as more MSI bands; on held-apart scenes this raised the SWIR bands' PSNR and lowered "
            "SAM (docs/RESULTS.md). Learned models take only the MSI bands they were trained on: with "
            "MSI20 choose a classical or model-based method. With a sensor SRF (e.g. S2A:B2,B3,B4,B8) the 20 m bands' responses are appended.\n\n"
            "Advanced: TILE/OVERLAP (output pixels; larger overlap = smoother seams), BATCH (tiles per "
            "forward pass), CREATION_OPTIONS (GDAL GeoTIFF options), RUNTIME (auto = PyTorch when it is "
            "installed, else ONNX Runtime, which the zoo models ship for; torch; onnx) and PRECISION (int8 = "
            "the quantised ONNX model). Learned models need ONNX Runtime or PyTorch in QGIS's Python: the menu "
            "Plugins > CSAKD > Check / install dependencies shows what is there and installs ONNX Runtime."
        ) + display_help()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_inputs()
        self.add_model_parameters(model_choices())
        self.add_run_options(learned=True)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        model = self.selected_model(parameters, context)
        device = self.enum_string(parameters, self.DEVICE, context)
        model_file = self.parameterAsFile(parameters, self.MODEL_FILE, context)
        if model_file and model != model_file:
            feedback.pushWarning(f"MODEL_FILE '{model_file}' is ignored because MODEL is '{model}' "
                                 "(choose MODEL 'file' to use it).")
        feedback.pushInfo(f"Model: {model}; requested device: {device}")
        return self.run_fusion(parameters, context, feedback, model=model, device=device)

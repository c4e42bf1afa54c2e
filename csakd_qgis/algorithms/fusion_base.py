"""Parameters and the run step shared by the fusion algorithms (classical, learned, single-image)."""

from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from csakd_qgis.algorithms import styling
from csakd_qgis.algorithms.base import CsakdAlgorithm, RasterLayerParameter
from csakd_qgis.algorithms.qgis_enums import ADVANCED, INTEGER
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.fuse import fuse
from csakd_qgis.fusion.multires import uses_msi20
from csakd_qgis.fusion.runtime import RUNTIME_CHOICES
from csakd_qgis.nets.device import PRECISIONS
from csakd_qgis.products.inputs import product_inputs
from csakd_qgis.raster.io import OUTPUT_DTYPES, parse_creation_options

DEVICES = ["auto", "cpu", "cuda"]
RUNTIMES = list(RUNTIME_CHOICES)
PRECISION_CHOICES = list(PRECISIONS)
FILE_CHOICE = "file"
PRODUCT_FILTER = ("Products (*.xml *.XML *.he5 *.nc *.zip *_MTL.txt);;All files (*)")
PRODUCT_HELP = (
    "Inputs as delivered: instead of a raster layer, HSI_PRODUCT / MSI_PRODUCT take a product (its folder, zip or "
    "main metadata file): EnMAP L2A and DESIS L2A (METADATA.XML), PRISMA L2D (.he5; the same file as MSI gives "
    "its 5 m PAN), EMIT L2A (.nc), Sentinel-2 L2A (.SAFE or MTD_MSIL2A.xml: the 10 m bands, and the 20 m bands "
    "for classical and model-based methods), Landsat 8/9 C2 L2 (folder or _MTL.txt). Band centres, FWHM, "
    "reflectance scale/offset and nodata come from the product; cloud, shadow, haze and cirrus pixels of its "
    "quality layers become nodata in the output.\n\n")


class FusionBase(CsakdAlgorithm):
    """HSI + MSI in, fused GeoTIFF out, through ``fusion.fuse.fuse``."""

    GROUP, GROUP_ID = "Fusion", "fusion"
    HSI, MSI, MSI20, OUTPUT = "HSI", "MSI", "MSI20", "OUTPUT"
    HSI_PRODUCT, MSI_PRODUCT = "HSI_PRODUCT", "MSI_PRODUCT"
    TILE, OVERLAP, BATCH, DEVICE, SHIFT_CORRECT, CREATION_OPTIONS = (
        "TILE", "OVERLAP", "BATCH", "DEVICE", "SHIFT_CORRECT", "CREATION_OPTIONS")
    RUNTIME, PRECISION = "RUNTIME", "PRECISION"
    PSF, SRF, DTYPE = "PSF", "SRF", "DTYPE"
    NEEDS_MSI = True

    def add_inputs(self) -> None:
        """The HSI (and MSI) inputs: each a raster layer or a delivered product (its metadata file, .he5, .nc, zip)."""
        self.addParameter(RasterLayerParameter(
            self.HSI, self.tr("Low-resolution hyperspectral image (HSI)"), optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.HSI_PRODUCT, self.tr("... or an HSI product (EnMAP/DESIS METADATA.XML, PRISMA .he5, EMIT .nc, zip)"),
            optional=True, fileFilter=PRODUCT_FILTER))
        if self.NEEDS_MSI:
            self.addParameter(RasterLayerParameter(
                self.MSI, self.tr("High-resolution multispectral image (MSI)"), optional=True))
            self.addParameter(QgsProcessingParameterFile(
                self.MSI_PRODUCT, self.tr("... or an MSI product (Sentinel-2 MTD_MSIL2A.xml, Landsat MTL, PRISMA .he5 "
                                          "for its PAN, zip)"), optional=True, fileFilter=PRODUCT_FILTER))
            self.addParameter(RasterLayerParameter(
                self.MSI20, self.tr("MSI bands at 20 m (optional)"), optional=True))

    def input_path(self, parameters, context, layer: str, product: str, role: str) -> str:
        """The path of the ``role`` input: its product (file or folder), else its raster layer."""
        prod = self.parameterAsFile(parameters, product, context) if self.parameterDefinition(product) else ""
        value = parameters.get(layer)
        given = value not in (None, "")
        if prod and given:
            raise QgsProcessingException(f"The {role} is given twice, as a raster layer ({layer}) and as a product "
                                         f"({product}): keep one of them.")
        if prod:
            return prod
        if not given:
            raise QgsProcessingException(f"The {role} is missing: choose a raster layer ({layer}) or a product "
                                         f"file ({product}).")
        return self.layer_path(self, parameters, layer, context, role)

    def add_run_options(self, learned: bool) -> None:
        """Device (learned models only), advanced tiling/creation options, the output and numeric outputs."""
        if learned:
            self.addParameter(QgsProcessingParameterEnum(
                self.DEVICE, self.tr("Device"), options=DEVICES, defaultValue="auto", usesStaticStrings=True))
        advanced = [
            QgsProcessingParameterNumber(self.TILE, self.tr("Tile size (output pixels)"),
                                         INTEGER, 256 if learned else 512,
                                         minValue=16),
            QgsProcessingParameterNumber(self.OVERLAP, self.tr("Tile overlap (output pixels)"),
                                         INTEGER, 32, minValue=0),
        ]
        if learned:
            advanced.append(QgsProcessingParameterNumber(
                self.BATCH, self.tr("Tiles per batch"), INTEGER, 4, minValue=1))
            advanced.append(QgsProcessingParameterEnum(
                self.RUNTIME, self.tr("Network runtime (auto: PyTorch when installed, else ONNX Runtime)"),
                options=RUNTIMES, defaultValue="auto", usesStaticStrings=True))
            advanced.append(QgsProcessingParameterEnum(
                self.PRECISION, self.tr("Network precision (fp16/bf16 on CUDA; int8 = quantised ONNX model)"),
                options=PRECISION_CHOICES, defaultValue="fp32", usesStaticStrings=True))
        if self.NEEDS_MSI:
            advanced.append(QgsProcessingParameterBoolean(
                self.SHIFT_CORRECT, self.tr("Correct the estimated sub-pixel HSI shift"), defaultValue=False))
            advanced.append(QgsProcessingParameterString(
                self.PSF, self.tr("PSF of the HSI for model-based methods: auto, wald or gaussian:SIGMA"),
                defaultValue="auto", optional=True))
            advanced.append(QgsProcessingParameterString(
                self.SRF, self.tr("MSI spectral response for model-based methods: auto, auto:SENSOR, SENSOR "
                                  "(e.g. S2A:B2,B3,B4,B8) or an SRF CSV file"), defaultValue="auto", optional=True))
            advanced.append(QgsProcessingParameterEnum(
                self.DTYPE, self.tr("Output data type (int16/uint16: reflectance x 10000 with a scale of 1e-4, "
                                    "half the bytes)"), options=list(OUTPUT_DTYPES), defaultValue="float32",
                usesStaticStrings=True))
        advanced.append(QgsProcessingParameterString(
            self.CREATION_OPTIONS, self.tr("GDAL creation options (e.g. COMPRESS=LZW)"), defaultValue="",
            optional=True))
        for p in advanced:
            p.setFlags(p.flags() | ADVANCED)
            self.addParameter(p)
        self.add_display_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Fused hyperspectral image"), defaultValue=None))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", self.tr("Device used")))
        self.addOutput(QgsProcessingOutputNumber("ELAPSED_S", self.tr("Elapsed time (s)")))
        self.addOutput(QgsProcessingOutputNumber("N_TILES", self.tr("Number of tiles")))
        if self.NEEDS_MSI:
            self.addOutput(QgsProcessingOutputNumber("SHIFT_X", self.tr("Estimated HSI shift x (HSI pixels)")))
            self.addOutput(QgsProcessingOutputNumber("SHIFT_Y", self.tr("Estimated HSI shift y (HSI pixels)")))
            self.addOutput(QgsProcessingOutputNumber("PSF_SIGMA", self.tr(
                "PSF Gaussian sigma used by a model-based method (MSI pixels; 0 otherwise)")))
            self.addOutput(QgsProcessingOutputString("OBSERVATION", self.tr(
                "Observation model of a model-based method (JSON: PSF, shift, SRF gains/offsets, auto's choice)")))
            self.addOutput(QgsProcessingOutputNumber("SCENE_ALPHA", self.tr(
                "scene method: shrinkage of the learned correction chosen on the held-out strip (0 = glp+cy)")))
            self.addOutput(QgsProcessingOutputNumber("SCENE_GAIN_DB", self.tr(
                "scene method: PSNR gain over glp+cy on the held-out strip of the reduced-scale pair (dB)")))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        inputs = [str(parameters.get(name) or "") for name in (self.HSI, self.HSI_PRODUCT, self.MSI, self.MSI_PRODUCT,
                                                              self.MSI20, "MODEL_FILE")]
        for layer, product, role in self.input_roles():
            if not parameters.get(layer) and not parameters.get(product):
                return False, f"The {role} is missing: choose a raster layer ({layer}) or a product file ({product})."
            if parameters.get(layer) and parameters.get(product):
                return False, (f"The {role} is given twice, as a raster layer ({layer}) and as a product "
                               f"({product}): keep one of them.")
        ok, msg = self.check_output(out, inputs)
        if not ok:
            return ok, msg

        try:
            parse_creation_options(self.parameterAsString(parameters, self.CREATION_OPTIONS, context))
        except CsakdError as exc:
            return False, str(exc)
        return True, ""

    def input_roles(self) -> list[tuple[str, str, str]]:
        """(layer parameter, product parameter, role) of each image input."""
        roles = [(self.HSI, self.HSI_PRODUCT, "hyperspectral image")]
        if self.NEEDS_MSI:
            roles.append((self.MSI, self.MSI_PRODUCT, "multispectral image"))
        return roles

    def run_fusion(self, parameters, context, feedback, model, device: str = "cpu") -> dict:
        """Read the common parameters, run the tiled fusion, log what happened, return the outputs."""

        hsi = self.input_path(parameters, context, self.HSI, self.HSI_PRODUCT, "hyperspectral image")
        msi = (self.input_path(parameters, context, self.MSI, self.MSI_PRODUCT, "multispectral image")
               if self.NEEDS_MSI else None)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        ok, msg = self.check_output(out, [hsi, msi or ""])
        if not ok:
            raise QgsProcessingException(msg)
        kwargs = {
            "tile": self.parameterAsInt(parameters, self.TILE, context),
            "overlap": self.parameterAsInt(parameters, self.OVERLAP, context),
            "creation_options": parse_creation_options(
                self.parameterAsString(parameters, self.CREATION_OPTIONS, context)),
            "device": device,
        }
        if self.parameterDefinition(self.BATCH) is not None:
            kwargs["batch"] = self.parameterAsInt(parameters, self.BATCH, context)
        if self.parameterDefinition(self.RUNTIME) is not None:
            kwargs["runtime"] = self.enum_string(parameters, self.RUNTIME, context)
            kwargs["precision"] = self.enum_string(parameters, self.PRECISION, context)
        if self.NEEDS_MSI:
            kwargs["shift_correct"] = self.parameterAsBool(parameters, self.SHIFT_CORRECT, context)
            kwargs["model_options"] = {
                "psf": self.parameterAsString(parameters, self.PSF, context) or "auto",
                "srf": self.parameterAsString(parameters, self.SRF, context) or "auto"}
            kwargs["dtype"] = self.enum_string(parameters, self.DTYPE, context)
            if parameters.get(self.MSI20):
                kwargs["msi20"] = self.layer_path(self, parameters, self.MSI20, context, "MSI bands at 20 m")
        progress, cancel = self.progress_bridge(feedback)
        inputs = {"hsi": hsi, **({"msi": msi} if self.NEEDS_MSI else {}),
                  **({"msi20": kwargs.pop("msi20")} if "msi20" in kwargs else {})}
        core = self.core_function()

        def job():
            with product_inputs(inputs, out, takes_msi20=self.NEEDS_MSI and uses_msi20(model),
                                log=feedback.pushInfo) as (paths, notes):
                for line in notes:
                    feedback.pushInfo(line)
                return core(paths["hsi"], *([paths["msi"]] if self.NEEDS_MSI else []), out, model=model,
                            progress=progress, cancel=cancel,
                            **({"msi20": paths["msi20"]} if paths.get("msi20") else {}), **kwargs)

        with self.removed_on_failure([out]):
            result = self.run_core(feedback, job)
            for line in result.messages:
                feedback.pushInfo(line)
            feedback.pushInfo(f"Device used: {result.device_used}")
            self.style_outputs(parameters, context, feedback, {out: self.abstract(result, [hsi, msi])})
        # the output is the bare torch device ('cpu', 'cuda', 'cuda:1') so models can test it; the log has details
        device_used = str(result.device_used).split(" (", 1)[0].strip()
        outputs = {self.OUTPUT: out, "DEVICE_USED": device_used, "ELAPSED_S": result.elapsed_s,
                   "N_TILES": result.n_tiles}
        if self.NEEDS_MSI:
            obs = result.observation.get("observation", {})
            outputs.update({"SHIFT_X": result.shift_x, "SHIFT_Y": result.shift_y,
                            "PSF_SIGMA": float(obs.get("sigma_hr_px", 0.0)),
                            "OBSERVATION": json.dumps(result.observation) if result.observation else ""})
            scene = result.observation.get("scene", {})
            outputs.update({"SCENE_ALPHA": float(scene.get("alpha", 0.0)),
                            "SCENE_GAIN_DB": float(scene.get("holdout_gain_db", 0.0))})
        return outputs

    def abstract(self, result, inputs: list[str | None]) -> str:
        """The output layer's abstract: model, scale, device, shift and time of this run."""
        facts = {"model": result.model, "scale": result.scale, "device": result.device_used,
                 "size": f"{result.width} x {result.height} px, {result.bands} bands"}
        if self.NEEDS_MSI:
            facts["HSI shift"] = styling.shift_text(result.shift_x, result.shift_y, result.shift_corrected)
        facts["time"] = f"{result.elapsed_s:.1f} s"
        return styling.provenance(self.id(), [p for p in inputs if p], facts)

    def core_function(self):
        """The core entry point this algorithm runs."""

        return fuse


class ModelFusionBase(FusionBase):
    """A fusion algorithm with a MODEL choice (names + 'file') and a MODEL_FILE (.safetensors) parameter."""

    MODEL, MODEL_FILE = "MODEL", "MODEL_FILE"

    def add_model_parameters(self, choices: list[str]) -> None:
        """MODEL (the first choice is the default) and the optional MODEL_FILE."""
        self.addParameter(QgsProcessingParameterEnum(self.MODEL, self.tr("Model"), options=choices,
                                                     defaultValue=choices[0], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL_FILE, self.tr("Model file (.safetensors, when MODEL is 'file')"),
            extension="safetensors", optional=True))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        try:
            self.selected_model(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def selected_model(self, parameters, context) -> str:
        """The chosen model name, or the MODEL_FILE path when MODEL is 'file' (or only a file was given)."""
        choice = self.enum_string(parameters, self.MODEL, context)
        path = self.parameterAsFile(parameters, self.MODEL_FILE, context)
        if choice == FILE_CHOICE or (path and parameters.get(self.MODEL) is None):
            if not path:
                raise QgsProcessingException("MODEL is 'file' but no MODEL_FILE was given: choose a .safetensors "
                                             "model file (with its .json card beside it).")
            return path
        return choice

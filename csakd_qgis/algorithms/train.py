"""csakd:train — train or adapt a fusion model: reference rasters (Wald pairs) or the user's own HSI + MSI pair."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from csakd_qgis.algorithms.base import CsakdAlgorithm, RasterLayerParameter
from csakd_qgis.algorithms.fusion_base import DEVICES
from csakd_qgis.algorithms.qgis_enums import ADVANCED, DOUBLE, INTEGER, TYPE_RASTER
from csakd_qgis.algorithms.styling import provenance
from csakd_qgis.errors import CsakdError
from csakd_qgis.quality.metrics import finite_psnr
from csakd_qgis.spectral.srf import load_srf
from csakd_qgis.training.adapt import adapt, train_references
from csakd_qgis.training.config import FitConfig
from csakd_qgis.zoo.outputs import check_model_output
from csakd_qgis.zoo.registry import zoo_students

PRESETS = ["lite", "paper"]


def init_choices() -> list[str]:
    """'auto' (closest zoo model, else scratch), 'scratch', then the zoo's fusion students (teachers and
    single-image SR models cannot be fine-tuned as a fusion student)."""
    return ["auto", "scratch", *zoo_students()]


class TrainAlgorithm(CsakdAlgorithm):
    """Training: time-bounded fine-tuning with progress, cancel and a model card (training.adapt)."""

    GROUP, GROUP_ID = "Training", "training"
    REFERENCES, HSI, MSI, SENSOR, SCALE, PRESET, INIT, INIT_FILE = (
        "REFERENCES", "HSI", "MSI", "SENSOR", "SCALE", "PRESET", "INIT", "INIT_FILE")
    STEPS, BUDGET, DEVICE, MODEL, FUSED = "STEPS", "BUDGET", "DEVICE", "MODEL", "FUSED"
    BATCH_SIZE, PATCH, LEARNING_RATE, VAL_FRACTION, SEED = "BATCH_SIZE", "PATCH", "LEARNING_RATE", "VAL_FRACTION", "SEED"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Train / adapt a fusion model")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Trains a CSAKD fusion network and writes it as a .safetensors file with a .json model card beside "
            "it, ready for 'Fuse hyperspectral + multispectral (learned model)'. Two modes, chosen by the inputs "
            "you give:\n\n"
            "Adaptive mode (HSI + MSI): your own low-resolution hyperspectral image and high-resolution "
            "multispectral image of the same place, with no high-resolution hyperspectral reference. The pair is "
            "co-registered, then both images are degraded by the scale factor (Wald protocol: Gaussian blur + "
            "block mean) and the network learns to rebuild the original HSI from them. A spatial strip of that "
            "reduced-scale pair is held out to validate. Give FUSED to fuse the full-resolution pair with the "
            "adapted model at the end. The scale comes from the pixel sizes (SCALE is not used).\n\n"
            "Reference mode (REFERENCES): one or more high-resolution hyperspectral rasters with band "
            "wavelengths. Training pairs are simulated from them at SCALE with the SENSOR's spectral responses; a "
            "strip of each raster is held out to validate.\n\n"
            "INIT: 'auto' fine-tunes the closest model of the zoo (same scale, band counts and band centres; "
            "nearest MSI bands) and trains from scratch when none fits; 'scratch' starts a new PRESET network that "
            "corrects a classical GLP fusion (so training starts at GLP quality); or a zoo model by name, or "
            "INIT_FILE (a .safetensors model).\n\n"
            "Training stops at BUDGET minutes or after STEPS steps (0 = no limit; set at least one) and keeps "
            "the weights that scored best on the validation strip (PSNR minus SAM), so the model is never worse "
            "there than its starting point. The validation PSNR (dB) and SAM (degrees) of that model are returned "
            "as VAL_PSNR and VAL_SAM, the starting point's as START_PSNR and START_SAM.\n\n"
            "SENSOR: 'S2A:B2,B3,B4,B8' (Sentinel-2A bands), 'L8', a CSV file of spectral responses or "
            "'gaussian:490/65,560/35'; needed in reference mode, recorded in the card in adaptive mode (it must list "
            "as many bands as the MSI; empty = take the band names from the MSI).\n\n"
            "DEVICE: 'auto' uses a CUDA GPU when PyTorch sees one, else the CPU; the device used is returned as "
            "DEVICE_USED and logged with the timings. Cancelling stops at the next step and writes no model file.\n\n"
            "MODEL must end in .safetensors. The card records where the model came from (source model and its "
            "checksum, data, budget, steps, device, validation before and after).")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.REFERENCES, self.tr("Training rasters: reference high-resolution HSI (reference mode)"),
            TYPE_RASTER, optional=True))
        self.addParameter(RasterLayerParameter(
            self.HSI, self.tr("Low-resolution hyperspectral image (adaptive mode)"), optional=True))
        self.addParameter(RasterLayerParameter(
            self.MSI, self.tr("High-resolution multispectral image (adaptive mode)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.SENSOR, self.tr("MSI sensor and bands (spectral responses)"), defaultValue="S2A:B2,B3,B4,B8",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.SCALE, self.tr("Scale factor (reference mode)"), INTEGER, 3,
            minValue=2, maxValue=16))
        self.addParameter(QgsProcessingParameterEnum(
            self.PRESET, self.tr("Network size for a new network"), options=PRESETS, defaultValue="lite",
            usesStaticStrings=True))
        choices = init_choices()
        self.addParameter(QgsProcessingParameterEnum(
            self.INIT, self.tr("Fine-tune from"), options=choices, defaultValue="auto", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.STEPS, self.tr("Maximum training steps (0 = until the time budget)"),
            INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.BUDGET, self.tr("Time budget (minutes, 0 = no limit)"), DOUBLE, 5.0,
            minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, self.tr("Device"), options=DEVICES, defaultValue="auto", usesStaticStrings=True))
        advanced = [
            QgsProcessingParameterFile(self.INIT_FILE, self.tr("Fine-tune from a model file (.safetensors)"),
                                       extension="safetensors", optional=True),
            QgsProcessingParameterNumber(self.BATCH_SIZE, self.tr("Batch size"),
                                         INTEGER, 8, minValue=1),
            QgsProcessingParameterNumber(self.PATCH, self.tr("Patch size (target pixels)"),
                                         INTEGER, 12, minValue=4),
            QgsProcessingParameterNumber(self.LEARNING_RATE, self.tr("Learning rate"),
                                         DOUBLE, 2e-4, minValue=1e-7, maxValue=1.0),
            QgsProcessingParameterNumber(self.VAL_FRACTION, self.tr("Held-out validation fraction"),
                                         DOUBLE, 0.2, minValue=0.05, maxValue=0.5),
            QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"), INTEGER,
                                         0, minValue=0),
        ]
        for p in advanced:
            p.setFlags(p.flags() | ADVANCED)
            self.addParameter(p)
        self.add_display_parameters()
        self.addParameter(QgsProcessingParameterFileDestination(
            self.MODEL, self.tr("Output model (.safetensors)"), fileFilter="CSAKD model (*.safetensors)"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.FUSED, self.tr("Fused hyperspectral image (adaptive mode, optional)"), optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("VAL_PSNR", self.tr("Validation PSNR (dB)")))
        self.addOutput(QgsProcessingOutputNumber("VAL_SAM", self.tr("Validation SAM (degrees)")))
        self.addOutput(QgsProcessingOutputNumber("START_PSNR", self.tr("Validation PSNR of the starting point (dB)")))
        self.addOutput(QgsProcessingOutputNumber("START_SAM", self.tr("Validation SAM of the starting point (deg)")))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", self.tr("Device used")))
        self.addOutput(QgsProcessingOutputString("INIT_USED", self.tr("Starting point (zoo model or scratch)")))
        self.addOutput(QgsProcessingOutputNumber("STEPS_DONE", self.tr("Training steps done")))
        self.addOutput(QgsProcessingOutputNumber("ELAPSED_S", self.tr("Elapsed time (s)")))
        self.addOutput(QgsProcessingOutputString("CARD", self.tr("Model card (.json)")))

    # ---- parameter checks (before any compute)
    def _mode(self, parameters, context) -> str:
        refs = self.parameterAsLayerList(parameters, self.REFERENCES, context)
        has_refs = bool(refs) or bool(parameters.get(self.REFERENCES))
        has_hsi, has_msi = bool(parameters.get(self.HSI)), bool(parameters.get(self.MSI))
        if has_refs and (has_hsi or has_msi):
            raise QgsProcessingException("Give either training rasters (REFERENCES, reference mode) or an HSI + MSI "
                                         "pair (adaptive mode), not both.")
        if has_refs:
            return "reference"
        if has_hsi and has_msi:
            return "adapt"
        if has_hsi or has_msi:
            raise QgsProcessingException("Adaptive mode needs both the low-resolution hyperspectral image (HSI) and "
                                         "the high-resolution multispectral image (MSI).")
        raise QgsProcessingException("No training data: give training rasters (REFERENCES) or an HSI + MSI pair.")

    def _outputs(self, parameters, context) -> tuple[str, str]:
        model = self.parameterAsFileOutput(parameters, self.MODEL, context)
        fused = ""
        if parameters.get(self.FUSED):
            fused = self.parameterAsOutputLayer(parameters, self.FUSED, context) or ""
        return model, fused

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg

        try:
            mode = self._mode(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        model, fused = self._outputs(parameters, context)
        inputs = [str(parameters.get(k) or "") for k in (self.HSI, self.MSI)]
        if not model.lower().endswith(".safetensors"):
            return False, (f"The output model '{model}' must end in .safetensors (the .json model card is written "
                           "beside it).")
        init = (self.parameterAsFile(parameters, self.INIT_FILE, context)
                or self.parameterAsEnumString(parameters, self.INIT, context))
        try:
            check_model_output(model, inputs, init=init)
        except CsakdError as exc:
            return False, str(exc)
        if fused:
            if mode != "adapt":
                return False, "FUSED is only produced in adaptive mode (HSI + MSI): leave it empty."
            ok, msg = self.check_output(fused, inputs, role="fused output")
            if not ok:
                return ok, msg
        sensor = (self.parameterAsString(parameters, self.SENSOR, context) or "").strip()
        if mode == "reference" and not sensor:
            return False, "SENSOR is needed in reference mode to simulate the MSI: give e.g. S2A:B2,B3,B4,B8."
        if sensor:
            try:
                load_srf(sensor)
            except CsakdError as exc:
                return False, f"SENSOR '{sensor}': {exc}"
        if (self.parameterAsDouble(parameters, self.BUDGET, context) <= 0
                and self.parameterAsInt(parameters, self.STEPS, context) <= 0):
            return False, "Set a time budget (BUDGET minutes) or a number of steps (STEPS): both are 0."
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        import os


        mode = self._mode(parameters, context)
        model, fused = self._outputs(parameters, context)
        init = self.parameterAsEnumString(parameters, self.INIT, context) or "auto"
        init_file = self.parameterAsFile(parameters, self.INIT_FILE, context)
        if init_file:
            init = init_file
        device = self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto"
        sensor = (self.parameterAsString(parameters, self.SENSOR, context) or "").strip()
        cfg = FitConfig(budget_min=self.parameterAsDouble(parameters, self.BUDGET, context),
                        steps=self.parameterAsInt(parameters, self.STEPS, context),
                        preset=self.parameterAsEnumString(parameters, self.PRESET, context) or "lite",
                        init=init, device=device,
                        batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                        patch=self.parameterAsInt(parameters, self.PATCH, context),
                        lr=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
                        val_fraction=self.parameterAsDouble(parameters, self.VAL_FRACTION, context),
                        seed=self.parameterAsInt(parameters, self.SEED, context))
        feedback.pushInfo(f"Mode: {mode}; start: {init}; requested device: {device}; budget {cfg.budget_min:g} min, "
                          f"max steps {cfg.steps or 'unlimited'}")
        progress, cancel = self.progress_bridge(feedback)
        stem = os.path.splitext(model)[0]
        created = [model, stem + ".json"] + ([fused] if fused else [])
        with self.removed_on_failure(created):
            if mode == "adapt":
                hsi = self.layer_path(self, parameters, self.HSI, context, "hyperspectral image")
                msi = self.layer_path(self, parameters, self.MSI, context, "multispectral image")
                res = self.run_core(feedback, adapt, hsi, msi, model, fused or None, cfg, sensor=sensor or None,
                                    progress=progress, cancel=cancel)
                if fused and res.fused_path:
                    facts = {"model": os.path.basename(res.model_path), "scale": res.scale,
                             "device": res.device_used, "training steps": res.steps,
                             "time": f"{res.timings.get('total_s', 0.0):.1f} s"}
                    self.style_outputs(parameters, context, feedback,
                                       {res.fused_path: provenance(self.id(), [hsi, msi], facts)})
            else:
                refs = [lyr.source().split("|")[0] for lyr in
                        self.parameterAsLayerList(parameters, self.REFERENCES, context)]
                missing = [r for r in refs if not os.path.exists(r)]
                if not refs or missing:
                    raise QgsProcessingException(f"The training rasters must be local files: {missing or refs}.")
                res = self.run_core(feedback, train_references, refs, sensor,
                                    self.parameterAsInt(parameters, self.SCALE, context), model, cfg,
                                    progress=progress, cancel=cancel)
        for line in res.messages:
            feedback.pushInfo(line)
        feedback.pushInfo(f"Device used: {res.device_used}")
        feedback.pushInfo("Timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()))
        feedback.pushInfo(f"Validation PSNR {res.val_psnr:.2f} dB, SAM {res.val_sam:.3f} deg (start "
                          f"{res.start_metrics['psnr']:.2f} dB, {res.start_metrics['sam']:.3f} deg)")
        outputs = {self.MODEL: res.model_path, "VAL_PSNR": res.val_psnr, "VAL_SAM": res.val_sam,
                   "START_PSNR": finite_psnr(res.start_metrics), "START_SAM": float(res.start_metrics["sam"]),
                   "DEVICE_USED": str(res.device_used).split(" (", 1)[0], "INIT_USED": res.init,
                   "STEPS_DONE": res.steps, "ELAPSED_S": res.timings.get("total_s", 0.0), "CARD": res.card_path}
        if fused:
            outputs[self.FUSED] = res.fused_path
        return outputs

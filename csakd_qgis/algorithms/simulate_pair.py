"""csakd:simulate_pair — Wald-protocol LR-HSI + HR-MSI pair from a high-resolution HSI."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from csakd_qgis.algorithms.base import CsakdAlgorithm, RasterLayerParameter
from csakd_qgis.algorithms.qgis_enums import DOUBLE, INTEGER
from csakd_qgis.algorithms.styling import display_help, provenance
from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.guard import check_sidecars
from csakd_qgis.raster.simulate import simulate_rasters


class SimulatePairAlgorithm(CsakdAlgorithm):
    """Preparation: turns a reference HR-HSI into a training/evaluation pair with a real sensor's SRF."""

    GROUP, GROUP_ID = "Preparation", "preparation"
    HSI, SENSOR, SCALE, SNR, OUT_LR, OUT_MSI = "HSI", "SENSOR", "SCALE", "SNR", "OUTPUT_LR", "OUTPUT_MSI"
    OUT_MSI20 = "OUTPUT_MSI20"

    def name(self) -> str:
        return "simulate_pair"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Simulate LR-HSI + HR-MSI pair (Wald protocol)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "From a high-resolution hyperspectral image (the reference), simulates the inputs of a fusion: "
            "the low-resolution HSI (Gaussian blur with sigma = scale/2 pixels, then scale x scale block mean; "
            "same origin, pixel size x scale) and the multispectral image of a real sensor (the HSI integrated "
            "through the sensor's spectral response functions).\n\n"
            "SENSOR: 'S2A:B2,B3,B4,B8' (Sentinel-2A bands), 'S2B', 'L8', 'L9', 'RE' (RapidEye), a CSV file of "
            "spectral responses (wavelength column, one column per band), or 'gaussian:490/65,560/35' "
            "(centre/FWHM in nm). Bad bands (bbl = 0) are dropped. SNR (dB, 0 = none) adds white noise.\n\n"
            "Optional: the Sentinel-2A 20 m bands (B5, B6, B7, B8A, B11, B12) at twice the MSI pixel size "
            "(Gaussian MTF-like blur, sigma = 1 MSI pixel, then 2 x 2 mean; the reference is cropped to a "
            "multiple of 2 and of the scale), for the fusion algorithms' 'MSI bands at 20 m' input.") + display_help()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(RasterLayerParameter(self.HSI, self.tr("Reference high-resolution HSI")))
        self.addParameter(QgsProcessingParameterString(self.SENSOR, self.tr("MSI sensor and bands"),
                                                       defaultValue="S2A:B2,B3,B4,B8"))
        self.addParameter(QgsProcessingParameterNumber(self.SCALE, self.tr("Scale factor"),
                                                       INTEGER, 4, minValue=2,
                                                       maxValue=16))
        self.addParameter(QgsProcessingParameterNumber(self.SNR, self.tr("Noise SNR in dB (0 = no noise)"),
                                                       DOUBLE, 0.0, minValue=0.0))
        self.add_display_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUT_LR, self.tr("Simulated LR-HSI")))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUT_MSI, self.tr("Simulated HR-MSI")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUT_MSI20, self.tr("Simulated MSI bands at 20 m (optional)"), optional=True, createByDefault=False))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        src = str(parameters.get(self.HSI) or "")
        outs = [self.parameterAsOutputLayer(parameters, name, context) for name in
                (self.OUT_LR, self.OUT_MSI) + ((self.OUT_MSI20,) if parameters.get(self.OUT_MSI20) else ())]
        for out in outs:
            ok, msg = self.check_output(out, [src])
            if not ok:
                return ok, msg
        try:  # two outputs must not share a style sidecar either
            check_sidecars([o for o in outs if o.lower().endswith((".tif", ".tiff"))], [src])
        except CsakdError as exc:
            return False, str(exc)
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802

        hsi = self.layer_path(self, parameters, self.HSI, context, "reference hyperspectral image")
        out_lr = self.parameterAsOutputLayer(parameters, self.OUT_LR, context)
        out_msi = self.parameterAsOutputLayer(parameters, self.OUT_MSI, context)
        out20 = self.parameterAsOutputLayer(parameters, self.OUT_MSI20, context) if parameters.get(self.OUT_MSI20) \
            else None
        snr = self.parameterAsDouble(parameters, self.SNR, context)
        sensor = self.parameterAsString(parameters, self.SENSOR, context).strip()
        if not sensor:
            raise QgsProcessingException("SENSOR is empty: give e.g. S2A:B2,B3,B4,B8.")
        with self.removed_on_failure([out_lr, out_msi] + ([out20] if out20 else [])):
            info = self.run_core(feedback, simulate_rasters, hsi, sensor,
                                 self.parameterAsInt(parameters, self.SCALE, context), out_lr, out_msi,
                                 snr_db=snr if snr > 0 else None, out_msi20=out20 or None)
            feedback.pushInfo(str(info))
            facts = {"sensor": f"{info['sensor']} {', '.join(info['msi_bands'])}", "scale": info["scale"],
                     "SNR": f"{info['snr_db']:g} dB" if info.get("snr_db") else "no noise"}
            self.style_outputs(parameters, context, feedback, {
                out_lr: provenance(self.id(), [hsi], {"output": "simulated low-resolution HSI", **facts}),
                out_msi: provenance(self.id(), [hsi], {"output": "simulated multispectral image", **facts}),
                **({out20: provenance(self.id(), [hsi], {"output": "simulated 20 m multispectral bands", **facts})}
                   if out20 else {})})
        return {self.OUT_LR: out_lr, self.OUT_MSI: out_msi, **({self.OUT_MSI20: out20} if out20 else {})}

"""csakd:coregister — the HSI resampled/snapped onto the LR grid aligned to the MSI, with its shift."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterRasterDestination,
)

from csakd_qgis.algorithms.base import CsakdAlgorithm, RasterLayerParameter
from csakd_qgis.algorithms.styling import display_help, provenance, shift_text
from csakd_qgis.raster.coreg import coregister


class CoregisterAlgorithm(CsakdAlgorithm):
    """Preparation step: makes an HSI that pairs exactly with the MSI (integer scale, common grid)."""

    GROUP, GROUP_ID = "Preparation", "preparation"
    HSI, MSI, SHIFT_CORRECT, OUTPUT = "HSI", "MSI", "SHIFT_CORRECT", "OUTPUT"

    def name(self) -> str:
        return "coregister"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Co-register hyperspectral to multispectral grid")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Resamples the hyperspectral image (HSI) onto a grid aligned with the multispectral image (MSI): "
            "same CRS, an integer multiple of the MSI pixel size (the nearest integer ratio), pixel corners on "
            "MSI pixel corners, cropped to the common footprint. The sub-pixel shift between the HSI and the "
            "MSI (degraded to the HSI resolution) is estimated by phase correlation and returned as SHIFT_X / "
            "SHIFT_Y in HSI pixels (positive = HSI content lies east / south of the MSI); with SHIFT_CORRECT "
            "it is also removed. All bands and their wavelength/FWHM metadata are kept.") + display_help()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(RasterLayerParameter(self.HSI, self.tr("Hyperspectral image (HSI)")))
        self.addParameter(RasterLayerParameter(self.MSI, self.tr("Multispectral image (MSI)")))
        self.addParameter(QgsProcessingParameterBoolean(self.SHIFT_CORRECT, self.tr("Remove the estimated shift"),
                                                        defaultValue=True))
        self.add_display_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Co-registered HSI")))
        for name, label in (("SHIFT_X", "Estimated shift x (HSI pixels)"), ("SHIFT_Y", "Estimated shift y (HSI pixels)"),
                            ("SCALE", "Integer scale HSI/MSI")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(label)))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        return self.check_output(out, [str(parameters.get(self.HSI) or ""), str(parameters.get(self.MSI) or "")])

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802

        hsi = self.layer_path(self, parameters, self.HSI, context, "hyperspectral image")
        msi = self.layer_path(self, parameters, self.MSI, context, "multispectral image")
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        progress, cancel = self.progress_bridge(feedback)
        with self.removed_on_failure([out]):
            res = self.run_core(feedback, coregister, hsi, msi, out,
                                shift_correct=self.parameterAsBool(parameters, self.SHIFT_CORRECT, context),
                                progress=progress, cancel=cancel)
            for line in res.messages:
                feedback.pushInfo(line)
            facts = {"scale": res.scale, "HSI shift": shift_text(res.shift_x, res.shift_y, res.shift_corrected),
                     "size": f"{res.width} x {res.height} px, {res.bands} bands"}
            self.style_outputs(parameters, context, feedback, {out: provenance(self.id(), [hsi, msi], facts)})
        return {self.OUTPUT: out, "SHIFT_X": res.shift_x, "SHIFT_Y": res.shift_y, "SCALE": res.scale}

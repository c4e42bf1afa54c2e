"""csakd:evaluate — quality of a fused HSI against a reference: metrics (model outputs) + HTML report."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from csakd_qgis.algorithms.base import CsakdAlgorithm, RasterLayerParameter
from csakd_qgis.errors import CsakdError
from csakd_qgis.quality.report import evaluate_rasters
from csakd_qgis.raster.io import check_writable_folder

METRICS = ("psnr", "sam", "ergas", "rmse", "ssim")


class EvaluateAlgorithm(CsakdAlgorithm):
    """Quality metrics on reflectance, next to the bicubic baseline, with a self-contained HTML report."""

    GROUP, GROUP_ID = "Quality", "quality"
    FUSED, REFERENCE, LR, SCALE, JSON, REPORT = "FUSED", "REFERENCE", "LR", "SCALE", "JSON", "REPORT"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Evaluate fused image against a reference")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Compares a fused high-resolution HSI with a reference HSI on the same grid (e.g. from 'Simulate "
            "LR-HSI + HR-MSI pair') and reports PSNR (dB, per band with peak = band maximum, averaged), SAM "
            "(degrees), ERGAS, RMSE (reflectance) and SSIM, for the fused image and for bicubic upsampling of "
            "the LR-HSI (from LR if given, else the reference degraded by SCALE). Bad and nodata bands and "
            "pixels are excluded. Outputs: the numbers (usable in models), a JSON file and an HTML report with "
            "per-band PSNR, SAM and error maps, RGB quick-looks and spectra.")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(RasterLayerParameter(self.FUSED, self.tr("Fused HSI")))
        self.addParameter(RasterLayerParameter(self.REFERENCE, self.tr("Reference HSI")))
        self.addParameter(RasterLayerParameter(self.LR, self.tr("LR-HSI (for the bicubic baseline)"),
                                                            optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.SCALE, self.tr("Scale factor"),
                                                       QgsProcessingParameterNumber.Integer, 4, minValue=2))
        self.addParameter(QgsProcessingParameterFileDestination(self.JSON, self.tr("Metrics JSON"),
                                                                "JSON files (*.json)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.REPORT, self.tr("HTML report"),
                                                                "HTML files (*.html)"))
        for m in METRICS:
            self.addOutput(QgsProcessingOutputNumber(m.upper(), m.upper()))
            self.addOutput(QgsProcessingOutputNumber(f"BICUBIC_{m.upper()}", f"bicubic {m.upper()}"))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        report = self.parameterAsFileOutput(parameters, self.REPORT, context)
        if report and not report.lower().endswith((".html", ".htm")):
            return False, f"The HTML report '{report}' must end in .html."
        js = self.parameterAsFileOutput(parameters, self.JSON, context)
        if js and not js.lower().endswith(".json"):
            return False, f"The metrics file '{js}' must end in .json."
        for path, role in ((report, "HTML report"), (js, "metrics JSON")):
            if path:
                try:
                    check_writable_folder(Path(path).resolve(), role)
                except CsakdError as exc:
                    return False, str(exc)
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802

        fused = self.layer_path(self, parameters, self.FUSED, context, "fused image")
        ref = self.layer_path(self, parameters, self.REFERENCE, context, "reference image")
        lr = None
        if parameters.get(self.LR):
            lr = self.layer_path(self, parameters, self.LR, context, "LR-HSI")
        js = self.parameterAsFileOutput(parameters, self.JSON, context) or None
        report = self.parameterAsFileOutput(parameters, self.REPORT, context)
        with self.removed_on_failure([js, report]):
            res = self.run_core(feedback, evaluate_rasters, ref, fused,
                                self.parameterAsInt(parameters, self.SCALE, context), json_path=js,
                                report_path=report, lr_path=lr)
        out = {self.REPORT: report}
        if js:
            out[self.JSON] = js
        bic = res.get("bicubic", {}) or {}
        for m in METRICS:
            out[m.upper()] = _num(res.get(m))
            out[f"BICUBIC_{m.upper()}"] = _num(bic.get(m))
            feedback.pushInfo(f"{m.upper()}: fused {out[m.upper()]:.4f}, bicubic {out[f'BICUBIC_{m.upper()}']:.4f}")
        return out


def _num(value) -> float:
    """Metric value as a float ('inf' strings from strict JSON back to inf; missing = NaN)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")

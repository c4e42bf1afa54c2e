"""csakd:evaluate — quality of a fused HSI against a reference, or without one from its two inputs: metrics
(model outputs) + HTML report."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from csakd_qgis.algorithms.base import CsakdAlgorithm, RasterLayerParameter
from csakd_qgis.algorithms.qgis_enums import INTEGER
from csakd_qgis.errors import CsakdError
from csakd_qgis.fusion.noref import evaluate_noref_rasters, noref_evaluation
from csakd_qgis.quality.report import evaluate_rasters
from csakd_qgis.raster.io import check_writable_folder

METRICS = ("psnr", "sam", "ergas", "rmse", "ssim")
# no-reference outputs: (output name, description, path in the result)
NOREF_OUTPUTS = (("D_LAMBDA", "D_lambda (spectral distortion, 1 - Q(degraded output, LR-HSI))", ("d_lambda",)),
                 ("D_S", "D_s (QNR spatial distortion)", ("d_s",)),
                 ("HQNR", "HQNR = (1 - D_lambda)(1 - D_s)", ("hqnr",)),
                 ("SPECTRAL_PSNR", "spectral consistency PSNR (dB)", ("spectral", "psnr")),
                 ("SPECTRAL_SAM", "spectral consistency SAM (deg)", ("spectral", "sam")),
                 ("SPECTRAL_ERGAS", "spectral consistency ERGAS", ("spectral", "ergas")),
                 ("SPECTRAL_RESIDUAL", "spectral residual ||D X - Y|| / ||Y||", ("spectral", "rel_rmse")),
                 ("SPATIAL_PSNR", "spatial consistency PSNR (dB)", ("spatial", "psnr")),
                 ("SPATIAL_SAM", "spatial consistency SAM (deg)", ("spatial", "sam")),
                 ("SPATIAL_RESIDUAL", "spatial residual ||SRF(X) - M|| / ||M||", ("spatial", "rel_rmse")),
                 ("REDUCED_PSNR", "reduced-resolution PSNR (dB)", ("reduced_resolution", "psnr")),
                 ("REDUCED_SAM", "reduced-resolution SAM (deg)", ("reduced_resolution", "sam")),
                 ("REDUCED_ERGAS", "reduced-resolution ERGAS", ("reduced_resolution", "ergas")))


class EvaluateAlgorithm(CsakdAlgorithm):
    """Quality metrics on reflectance, next to the bicubic baseline, with a self-contained HTML report."""

    GROUP, GROUP_ID = "Quality", "quality"
    FUSED, REFERENCE, LR, SCALE, JSON, REPORT = "FUSED", "REFERENCE", "LR", "SCALE", "JSON", "REPORT"
    MSI, METHOD = "MSI", "METHOD"

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
            "per-band PSNR, SAM and error maps, RGB quick-looks and spectra.\n\n"
            "Without a reference (leave Reference HSI empty, give the LR-HSI and HR-MSI the image was fused from): "
            "the observation model (PSF, shift, SRF) is estimated from the pair and the fused image is checked "
            "against its own inputs on a central sample: spectral consistency (the output degraded by the PSF vs "
            "the LR-HSI: SPECTRAL_PSNR, SAM, ERGAS, residual), spatial consistency (the SRF applied to the output "
            "vs the MSI: SPATIAL_PSNR, residual), D_LAMBDA, D_S and HQNR (1 is ideal), and the reduced-"
            "resolution score REDUCED_PSNR / SAM / ERGAS (the pair degraded by the scale, fused with the same "
            "method, compared with the LR-HSI). The scale is then the HSI/MSI pixel-size ratio (SCALE is not "
            "used); the method is read from the fused raster's tags unless given. With a reference and the MSI, "
            "both evaluations are made.")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(RasterLayerParameter(self.FUSED, self.tr("Fused HSI")))
        self.addParameter(RasterLayerParameter(
            self.REFERENCE, self.tr("Reference HSI (empty: evaluation without a reference)"), optional=True))
        self.addParameter(RasterLayerParameter(
            self.LR, self.tr("LR-HSI (for the bicubic baseline; the fusion's HSI input without a reference)"),
            optional=True))
        self.addParameter(RasterLayerParameter(
            self.MSI, self.tr("HR-MSI the image was fused with (evaluation without a reference)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.METHOD, self.tr("Fusion method for the reduced-resolution check (empty: from the fused raster)"),
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.SCALE, self.tr("Scale factor"),
                                                       INTEGER, 4, minValue=2))
        self.addParameter(QgsProcessingParameterFileDestination(self.JSON, self.tr("Metrics JSON"),
                                                                "JSON files (*.json)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.REPORT, self.tr("HTML report"),
                                                                "HTML files (*.html)"))
        for m in METRICS:
            self.addOutput(QgsProcessingOutputNumber(m.upper(), m.upper()))
            self.addOutput(QgsProcessingOutputNumber(f"BICUBIC_{m.upper()}", f"bicubic {m.upper()}"))
        for name, desc, _ in NOREF_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(desc)))

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
        has_ref, has_lr, has_msi = (bool(parameters.get(k)) for k in (self.REFERENCE, self.LR, self.MSI))
        if not has_ref and not (has_lr and has_msi):
            return False, ("Give the Reference HSI, or (evaluation without a reference) the LR-HSI and the HR-MSI "
                           "the image was fused from.")
        if has_msi and not has_lr:
            return False, "The HR-MSI needs the LR-HSI it was fused with (evaluation without a reference)."
        for path, role in ((report, "HTML report"), (js, "metrics JSON")):
            if path:
                try:
                    check_writable_folder(Path(path).resolve(), role)
                except CsakdError as exc:
                    return False, str(exc)
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802

        fused = self.layer_path(self, parameters, self.FUSED, context, "fused image")
        ref = None
        if parameters.get(self.REFERENCE):
            ref = self.layer_path(self, parameters, self.REFERENCE, context, "reference image")
        lr = msi = None
        if parameters.get(self.LR):
            lr = self.layer_path(self, parameters, self.LR, context, "LR-HSI")
        if parameters.get(self.MSI):
            msi = self.layer_path(self, parameters, self.MSI, context, "HR-MSI")
        method = (self.parameterAsString(parameters, self.METHOD, context) or "").strip() or None
        js = self.parameterAsFileOutput(parameters, self.JSON, context) or None
        report = self.parameterAsFileOutput(parameters, self.REPORT, context)
        with self.removed_on_failure([js, report]):
            if ref is None:
                res = self.run_core(feedback, evaluate_noref_rasters, fused, lr, msi, method=method, json_path=js,
                                    report_path=report)
                noref = res
            else:
                extra = None
                if msi is not None:
                    extra = self.run_core(feedback, noref_evaluation, fused, lr, msi,
                                          scale=self.parameterAsInt(parameters, self.SCALE, context), method=method,
                                          maps=bool(report))
                res = self.run_core(feedback, evaluate_rasters, ref, fused,
                                    self.parameterAsInt(parameters, self.SCALE, context), json_path=js,
                                    report_path=report, lr_path=lr, no_reference=extra)
                noref = extra[0] if extra is not None else {}
        out = {self.REPORT: report}
        if js:
            out[self.JSON] = js
        if ref is None:
            out.update({k: float("nan") for m in METRICS for k in (m.upper(), f"BICUBIC_{m.upper()}")})
        else:
            bic = res.get("bicubic", {}) or {}
            for m in METRICS:
                out[m.upper()] = _num(res.get(m))
                out[f"BICUBIC_{m.upper()}"] = _num(bic.get(m))
                feedback.pushInfo(f"{m.upper()}: fused {out[m.upper()]:.4f}, bicubic "
                                  f"{out[f'BICUBIC_{m.upper()}']:.4f}")
        for name, _, path in NOREF_OUTPUTS:
            v = noref
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            out[name] = _num(v)
        if noref:
            feedback.pushInfo(f"Without reference: D_lambda {out['D_LAMBDA']:.4f}, D_s {out['D_S']:.4f}, HQNR "
                              f"{out['HQNR']:.4f}; spectral residual {out['SPECTRAL_RESIDUAL']:.4f}, spatial "
                              f"residual {out['SPATIAL_RESIDUAL']:.4f}; reduced-resolution PSNR "
                              f"{out['REDUCED_PSNR']:.2f} dB")
            skipped = (noref.get("reduced_resolution") or {}).get("skipped")
            if skipped:
                feedback.pushInfo(f"Reduced-resolution check skipped: {skipped}")
        return out


def _num(value) -> float:
    """Metric value as a float ('inf' strings from strict JSON back to inf; missing = NaN)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")

"""csakd:fuse_batch — fuse every pair of a jobs table (CSV/JSON), in QGIS's process or on a Dask cluster."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from csakd_qgis.algorithms.base import CsakdAlgorithm
from csakd_qgis.algorithms.qgis_enums import ADVANCED, INTEGER
from csakd_qgis.distributed.batch import PAIR_OPTIONS, run_batch


class FuseBatchAlgorithm(CsakdAlgorithm):
    """Many scenes: one fusion per table row, each with its own log, summarised in a JSON/CSV table."""

    GROUP, GROUP_ID = "Fusion", "fusion"
    JOBS, MODEL, WORKERS, SCHEDULER, RETRIES, RESUME, SUMMARY = (
        "JOBS", "MODEL", "WORKERS", "SCHEDULER", "RETRIES", "RESUME", "SUMMARY")

    def name(self) -> str:
        return "fuse_batch"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Fuse many pairs (jobs table, optionally on a Dask cluster)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Fuses every pair listed in a jobs table: a CSV file with the columns hsi,msi,out (file paths; "
            "relative paths are relative to the table's folder) and optional per-row columns "
            f"{', '.join(PAIR_OPTIONS)} and reference (an HR reference HSI whose PSNR/SAM/ERGAS/RMSE/SSIM go "
            "into the summary), or a JSON list of such objects.\n\n"
            "Each pair runs as one task with its own log file; a pair that fails (e.g. an unreadable input) "
            "fails alone and the others finish. With RESUME, outputs that already exist and are complete are "
            "skipped, so an interrupted batch can simply be run again. SUMMARY is a JSON file (a CSV table "
            "and a _logs folder are written beside it) with each pair's status, time, device, error and "
            "metrics.\n\n"
            "WORKERS > 1 runs the pairs on a local Dask cluster of that many processes; SCHEDULER (e.g. "
            "tcp://head:8786) runs them on an existing Dask cluster whose workers see the same file paths. "
            "Both need the Python package dask[distributed]. MODEL is used for rows without a model column.")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(self.JOBS, self.tr("Jobs table (CSV or JSON)"),
                                                     fileFilter="Jobs tables (*.csv *.json)"))
        self.addParameter(QgsProcessingParameterString(self.MODEL, self.tr("Model for rows without one"),
                                                       defaultValue="glp"))
        self.addParameter(QgsProcessingParameterNumber(self.WORKERS, self.tr("Dask worker processes (1: none)"),
                                                       INTEGER, 1, minValue=1))
        self.addParameter(QgsProcessingParameterBoolean(self.RESUME, self.tr("Skip pairs whose output is complete"),
                                                        defaultValue=True))
        advanced = [QgsProcessingParameterString(self.SCHEDULER, self.tr("Dask scheduler address"), optional=True),
                    QgsProcessingParameterNumber(self.RETRIES, self.tr("Retries of a failed task"),
                                                 INTEGER, 1, minValue=0)]
        for p in advanced:
            p.setFlags(p.flags() | ADVANCED)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFileDestination(self.SUMMARY, self.tr("Summary (JSON)"),
                                                                "JSON files (*.json)"))
        self.addOutput(QgsProcessingOutputFile("SUMMARY_CSV", self.tr("Summary table (CSV)")))
        for name, label in (("DONE", "Pairs fused"), ("FAILED", "Pairs failed"), ("SKIPPED", "Pairs skipped")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(label)))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        summary = self.parameterAsFileOutput(parameters, self.SUMMARY, context)
        if summary and not summary.lower().endswith(".json"):
            return False, f"The summary '{summary}' must end in .json."
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        progress, cancel = self.progress_bridge(feedback)
        res = self.run_core(
            feedback, run_batch, self.parameterAsFile(parameters, self.JOBS, context),
            scheduler=self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None,
            workers=self.parameterAsInt(parameters, self.WORKERS, context),
            retries=self.parameterAsInt(parameters, self.RETRIES, context),
            resume=self.parameterAsBool(parameters, self.RESUME, context),
            summary=self.parameterAsFileOutput(parameters, self.SUMMARY, context),
            model=self.parameterAsString(parameters, self.MODEL, context).strip() or "glp",
            progress=progress, cancel=cancel)
        for line in res.messages[:-1]:
            feedback.pushWarning(line)
        feedback.pushInfo(res.summary())
        return {self.SUMMARY: res.summary_json, "SUMMARY_CSV": res.summary_csv, "DONE": res.count("done"),
                "FAILED": res.count("failed"), "SKIPPED": res.count("skipped")}

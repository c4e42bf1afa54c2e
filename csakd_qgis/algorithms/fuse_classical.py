"""csakd:fuse_classical — bicubic / GSA / GLP fusion of LR-HSI + HR-MSI on the HR-MSI grid (no training)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import CsakdAlgorithm

METHODS = ["glp", "gsa", "bicubic"]


class FuseClassicalAlgorithm(CsakdAlgorithm):
    """Classical fusion baselines through the same tiled raster engine as the learned models."""

    GROUP, GROUP_ID = "Fusion", "fusion"
    HSI, MSI, METHOD, TILE, OVERLAP, CREATION_OPTIONS, OUTPUT = (
        "HSI", "MSI", "METHOD", "TILE", "OVERLAP", "CREATION_OPTIONS", "OUTPUT")

    def name(self) -> str:
        return "fuse_classical"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Fuse hyperspectral + multispectral (classical)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Fuses a low-resolution hyperspectral image (HSI: EnMAP, PRISMA, AVIRIS, ...) with a "
            "high-resolution multispectral image (MSI: Sentinel-2, PlanetScope, aerial) of the same place "
            "into a hyperspectral GeoTIFF on the MSI grid, without any trained model.\n\n"
            "Methods: 'glp' (generalised Laplacian pyramid detail injection with a per-band intensity "
            "regressed from the MSI; usually best), 'gsa' (Gram-Schmidt adaptive), 'bicubic' (upsampling "
            "of the HSI only, ignores the MSI; the reference baseline).\n\n"
            "The HSI pixel size must be an integer multiple (2, 3, 4, ...) of the MSI pixel size; rasters in "
            "different projected CRSs are reprojected automatically. The output keeps the HSI's bands, "
            "wavelength and FWHM metadata, in reflectance (float32), nodata -9999.\n\n"
            "Advanced: TILE and OVERLAP (in MSI pixels) bound memory use; CREATION_OPTIONS are GDAL "
            "GeoTIFF options such as COMPRESS=LZW.")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.HSI, self.tr("Low-resolution hyperspectral image (HSI)")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.MSI, self.tr("High-resolution multispectral image (MSI)")))
        method = QgsProcessingParameterEnum(self.METHOD, self.tr("Fusion method"), options=METHODS,
                                            defaultValue="glp", usesStaticStrings=True)
        self.addParameter(method)
        advanced = [
            QgsProcessingParameterNumber(self.TILE, self.tr("Tile size (MSI pixels)"),
                                         QgsProcessingParameterNumber.Integer, 512, minValue=32),
            QgsProcessingParameterNumber(self.OVERLAP, self.tr("Tile overlap (MSI pixels)"),
                                         QgsProcessingParameterNumber.Integer, 32, minValue=0),
            QgsProcessingParameterString(self.CREATION_OPTIONS,
                                         self.tr("GDAL creation options (e.g. COMPRESS=LZW)"),
                                         defaultValue="", optional=True),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Fused hyperspectral image"), defaultValue=None))
        self.addOutput(QgsProcessingOutputNumber("ELAPSED_S", self.tr("Elapsed time (s)")))
        self.addOutput(QgsProcessingOutputNumber("SHIFT_X", self.tr("Estimated HSI shift x (HSI pixels)")))
        self.addOutput(QgsProcessingOutputNumber("SHIFT_Y", self.tr("Estimated HSI shift y (HSI pixels)")))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        inputs = [str(parameters.get(self.HSI) or ""), str(parameters.get(self.MSI) or "")]
        return self.check_output(out, inputs)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.fuse import fuse
        from ..core.io import parse_creation_options

        hsi = self.layer_path(self, parameters, self.HSI, context, "hyperspectral image")
        msi = self.layer_path(self, parameters, self.MSI, context, "multispectral image")
        method = self.parameterAsEnumString(parameters, self.METHOD, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        ok, msg = self.check_output(out, [hsi, msi])
        if not ok:
            from qgis.core import QgsProcessingException

            raise QgsProcessingException(msg)
        progress, cancel = self.progress_bridge(feedback)
        result = self.run_core(
            feedback, fuse, hsi, msi, out, model=method, device="cpu",
            tile=self.parameterAsInt(parameters, self.TILE, context),
            overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            creation_options=parse_creation_options(
                self.parameterAsString(parameters, self.CREATION_OPTIONS, context)),
            progress=progress, cancel=cancel)
        for line in result.messages:
            feedback.pushInfo(line)
        feedback.pushInfo(f"Method {method}, scale {result.scale}, {result.n_tiles} tiles, "
                          f"{result.elapsed_s:.2f} s, estimated HSI shift ({result.shift_x:+.3f}, "
                          f"{result.shift_y:+.3f}) HSI px")
        return {self.OUTPUT: out, "ELAPSED_S": result.elapsed_s, "SHIFT_X": result.shift_x,
                "SHIFT_Y": result.shift_y}

"""csakd:fuse_classical — bicubic / GSA / GLP fusion of LR-HSI + HR-MSI on the HR-MSI grid (no training)."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterEnum

from csakd_qgis.algorithms.fusion_base import FusionBase
from csakd_qgis.algorithms.styling import display_help

METHODS = ["glp", "gsa", "bicubic"]


class FuseClassicalAlgorithm(FusionBase):
    """Classical fusion baselines through the same tiled raster engine as the learned models."""

    METHOD = "METHOD"

    def name(self) -> str:
        return "fuse_classical"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Fuse hyperspectral + multispectral (classical)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "Fuses a low-resolution hyperspectral image (HSI: EnMAP, PRISMA, AVIRIS, ...) with a "
            "high-resolution multispectral image (MSI: Sentinel-2, PlanetScope, aerial) of the same place "
            "into a hyperspectral GeoTIFF on the MSI grid, without any trained model.\n\n"
            "METHOD: 'glp' (generalised Laplacian pyramid detail injection with a per-band intensity "
            "regressed from the MSI; usually best), 'gsa' (Gram-Schmidt adaptive), 'bicubic' (upsampling "
            "of the HSI only, ignores the MSI; the reference baseline).\n\n"
            "The HSI pixel size should be an integer multiple (2, 3, 4, ...) of the MSI pixel size (a "
            "non-integer ratio is rounded and the HSI resampled, as the log says); an HSI in "
            "another CRS is reprojected to the MSI's automatically, but the MSI must be in a projected CRS "
            "(metres: reproject a longitude/latitude MSI to its UTM zone first). The output keeps the HSI's bands, "
            "wavelength and FWHM metadata, in reflectance (float32), nodata -9999. The estimated sub-pixel "
            "shift of the HSI against the MSI is reported (SHIFT_X, SHIFT_Y) and removed with SHIFT_CORRECT.\n\n"
            "Advanced: TILE and OVERLAP (in MSI pixels) bound memory use; CREATION_OPTIONS are GDAL "
            "GeoTIFF options such as COMPRESS=LZW.") + display_help()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_inputs()
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, self.tr("Fusion method"), options=METHODS,
                                                     defaultValue="glp", usesStaticStrings=True))
        self.add_run_options(learned=False)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        method = self.enum_string(parameters, self.METHOD, context)
        return self.run_fusion(parameters, context, feedback, model=method, device="cpu")

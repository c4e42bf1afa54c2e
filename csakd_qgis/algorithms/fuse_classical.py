"""csakd:fuse_classical — classical and model-based fusion of LR-HSI + HR-MSI on the HR-MSI grid (no training)."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterEnum

from csakd_qgis.algorithms.fusion_base import PRODUCT_HELP, FusionBase
from csakd_qgis.algorithms.styling import display_help
from csakd_qgis.fusion.methods import DEFAULT_METHOD
from csakd_qgis.fusion.methods import METHODS as FUSION_METHODS

# no learning here: the per-scene learner is a MODEL of csakd:fuse
METHODS = [m.name for m in FUSION_METHODS if m.family != "scene"]


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
            + PRODUCT_HELP +
            "METHOD (default 'glp+cy': best on our held-apart scenes and confirmed on nine scenes never used for any "
            "choice, +0.7 dB over GLP on both; see docs/RESULTS.md): "
            "model-based methods first estimate the observation model from the pair "
            "itself: the HSI's blur (Gaussian PSF width and centre, i.e. also the sub-pixel shift) and how each "
            "MSI band sees the HSI bands (a non-negative smooth spectral response with gain and offset); both "
            "are reported in the log and the OBSERVATION / PSF_SIGMA outputs, and can be set with PSF and SRF. "
            "'glp+c' = GLP with the estimated blur, then a consistency projection (the output blurred and "
            "decimated gives back the HSI, the spectral response applied to it gives back the MSI); assumes "
            "the MSI is a linear view of the HSI; about 3x GLP's time. 'glp+cy' = the same, consistent with the "
            "HSI only (for an MSI from another kind of camera, e.g. RGB). 'gsa+c' = GSA + projection. 'cnmf' = "
            "coupled non-negative unmixing (20 endmembers; slower, about 5-10x GLP), 'cnmf+c' with the "
            "projection. 'auto' picks among glp, glp+c and glp+cy by fusing the pair degraded once more "
            "(reduced scale) and comparing with the HSI; small scenes get glp+c (glp+cy when the MSI is not a "
            "linear view of the HSI); the choice is logged. Classical: 'glp' (generalised Laplacian pyramid "
            "detail injection with a per-band intensity regressed from the MSI, assumes the Wald blur sigma = "
            "scale/2), 'gsa' (Gram-Schmidt adaptive), 'bicubic' (upsampling of the HSI only, ignores the MSI; "
            "the reference baseline).\n\n"
            "The HSI pixel size should be an integer multiple (2, 3, 4, ...) of the MSI pixel size (a "
            "non-integer ratio is rounded and the HSI resampled, as the log says); an HSI in "
            "another CRS is reprojected to the MSI's automatically, but the MSI must be in a projected CRS "
            "(metres: reproject a longitude/latitude MSI to its UTM zone first). The output keeps the HSI's bands, "
            "wavelength and FWHM metadata, in reflectance (float32), nodata -9999. The estimated sub-pixel "
            "shift of the HSI against the MSI is reported (SHIFT_X, SHIFT_Y) and removed with SHIFT_CORRECT.\n\n"
            "MSI bands at 20 m (optional): e.g. Sentinel-2 B5, B6, B7, B8A, B11, B12 at 20 m beside an MSI of B2, B3, "
            "B4, B8 at 10 m (same CRS, pixel size an integer multiple of the MSI's, pixel edges on the MSI's, "
            "covering the HSI). They are sharpened to the MSI grid (detail from the MSI bands, consistent with the 20 m bands) and "
            "fused as more MSI bands; on held-apart scenes this raised the SWIR bands' PSNR and lowered "
            "SAM (docs/RESULTS.md). With a sensor SRF (e.g. S2A:B2,B3,B4,B8) the 20 m bands' responses are appended.\n\n"
            "Advanced: PSF ('auto' = estimated, 'wald' = Gaussian sigma scale/2, 'gaussian:SIGMA' in MSI pixels) "
            "and SRF ('auto' = estimated, 'auto:S2A:B2,B3,B4,B8' = estimated within that sensor's bands, "
            "'S2A:B2,B3,B4,B8' or a CSV file = published response with fitted gain/offset) for the model-based "
            "methods; TILE and OVERLAP (in MSI pixels) bound memory use; CREATION_OPTIONS are GDAL "
            "GeoTIFF options such as COMPRESS=LZW.") + display_help()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.add_inputs()
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, self.tr("Fusion method"), options=METHODS,
                                                     defaultValue=DEFAULT_METHOD, usesStaticStrings=True))
        self.add_run_options(learned=False)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        method = self.enum_string(parameters, self.METHOD, context)
        return self.run_fusion(parameters, context, feedback, model=method, device="cpu")

"""Processing provider "CSAKD hyperspectral fusion" (id ``csakd``)."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from csakd_qgis.algorithms import all_algorithms
from csakd_qgis.version import __version__


class CsakdProvider(QgsProcessingProvider):
    """Lists the algorithms; each algorithm module stays thin over ``csakd_qgis.core``."""

    ID = "csakd"

    def id(self) -> str:  # noqa: A003 (QGIS API name)
        return self.ID

    def name(self) -> str:
        return "CSAKD hyperspectral fusion"

    def longName(self) -> str:  # noqa: N802
        return f"CSAKD hyperspectral fusion {__version__}"

    def icon(self) -> QIcon:
        return QIcon(os.path.join(os.path.dirname(__file__), "icon.png"))

    def versionInfo(self) -> str:  # noqa: N802
        return __version__

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        """Every raster output is a tiled GeoTIFF (the dialogs offer only .tif)."""
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        """Temporary outputs are GeoTIFFs too."""
        return "tif"

    def loadAlgorithms(self) -> None:  # noqa: N802

        for alg in all_algorithms():
            self.addAlgorithm(alg)

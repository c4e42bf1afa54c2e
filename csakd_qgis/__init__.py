"""csakd_qgis: hyperspectral / multispectral fusion for QGIS Processing and the command line.

QGIS calls :func:`classFactory`; nothing heavy (torch, GDAL) is imported at plugin load.
"""

from csakd_qgis.version import __version__

__all__ = ["__version__", "classFactory"]


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Entry point QGIS calls to create the plugin instance."""
    from csakd_qgis.plugin import CsakdPlugin

    return CsakdPlugin(iface)

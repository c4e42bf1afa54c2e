"""csakd_qgis: hyperspectral / multispectral fusion for QGIS Processing and the command line.

QGIS calls :func:`classFactory`; nothing heavy (torch, GDAL) is imported at plugin load.
"""

__version__ = "0.3.0"


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Entry point QGIS calls to create the plugin instance."""
    from csakd_qgis.plugin import CsakdPlugin

    return CsakdPlugin(iface)

"""QGIS plugin object: registers the Processing provider (headless and in the desktop)."""

from __future__ import annotations

from qgis.core import QgsApplication

from csakd_qgis.provider import CsakdProvider


class CsakdPlugin:
    """Keeps a Python reference to the provider so its algorithms are not garbage-collected."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the provider; QGIS calls this for qgis_process and at desktop start."""
        if self.provider is not None:
            return

        registry = QgsApplication.processingRegistry()
        if registry.providerById(CsakdProvider.ID) is not None:
            return  # already registered (e.g. by another load of this plugin)
        provider = CsakdProvider()
        if registry.addProvider(provider):
            self.provider = provider
        # addProvider returns False (and deletes the object) on a duplicate id: keep no dangling ref.

    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Desktop start: make sure the provider is registered."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider when the plugin is disabled or reloaded."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

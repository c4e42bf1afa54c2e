"""The spectrum of a QGIS raster layer at a map point: the point into the layer's CRS, the one pixel read
through the layer's data provider, then :func:`raster.profiles.spectrum` (no canvas needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsPointXY,
    QgsProviderRegistry,
    QgsRaster,
    QgsRasterLayer,
)

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.profiles import BandInfo, Profile, band_info, fusion_info, spectrum

# the identify format enum moved to Qgis.RasterIdentifyFormat in newer QGIS
_VALUE = Qgis.RasterIdentifyFormat.Value if hasattr(Qgis, "RasterIdentifyFormat") else QgsRaster.IdentifyFormat.IdentifyFormatValue
OUTSIDE = "outside the layer"
NO_WAVELENGTHS = ("no band wavelengths (GDAL band metadata 'wavelength', an ENVI 'wavelength = {...}' list or "
                  "'(... nm)' in the band names): not drawn")


@dataclass
class Reading:
    """What one layer gave at a point: a profile, or a one-line reason why there is none."""

    layer: str
    profile: Profile | None = None
    reason: str = ""
    pixel: tuple[int, int] | None = None


def _path(layer: QgsRasterLayer) -> str:
    """The file behind a GDAL layer's source ("" for other providers)."""
    if layer.providerType() != "gdal":
        return ""
    return QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()


class LayerBands:
    """Band descriptions of layers, read once per layer file and version (the file's header, not its pixels)."""

    def __init__(self) -> None:
        self._cache: dict[tuple, BandInfo | str] = {}

    def get(self, layer: QgsRasterLayer) -> BandInfo | str:
        """The layer's :class:`BandInfo`, or why it has none (not a file GDAL reads, no wavelengths)."""
        path = _path(layer)
        try:
            stamp = os.stat(path).st_mtime_ns if path else 0
        except OSError:
            stamp = 0
        key = (layer.providerType(), layer.source(), stamp)
        if key not in self._cache:
            self._cache[key] = self._read(layer, path)
        return self._cache[key]

    @staticmethod
    def _read(layer: QgsRasterLayer, path: str) -> BandInfo | str:
        if not path:
            return f"a '{layer.providerType()}' layer, not a raster file: {NO_WAVELENGTHS}"
        try:
            info = band_info(path)
        except CsakdError as exc:
            return f"its file could not be read for band metadata ({exc})"
        if info.count != layer.bandCount():
            return f"the file has {info.count} bands, the layer {layer.bandCount()}: not drawn"
        return info if info.has_wavelengths else NO_WAVELENGTHS

    def fusion_line(self, layer: QgsRasterLayer) -> str:
        """The "fusion info" line of a raster the provider wrote ("" for others)."""
        info = self.get(layer)
        tags = dict(info.tags) if isinstance(info, BandInfo) else {}
        return fusion_info(tags, layer.metadata().abstract())


def read_spectrum(layer: QgsRasterLayer, point: QgsPointXY, crs: QgsCoordinateReferenceSystem,
                  context: QgsCoordinateTransformContext, bands: LayerBands) -> Reading:
    """The spectrum of ``layer`` at ``point`` (in ``crs``), read through its data provider, or why there is none."""
    name = layer.name()
    try:
        p = QgsPointXY(point)
        if crs.isValid() and layer.crs().isValid() and crs != layer.crs():
            p = QgsCoordinateTransform(crs, layer.crs(), context).transform(point)
    except QgsCsException:
        return Reading(name, reason="the point has no position in the layer's CRS (outside its area of use)")
    if not layer.extent().contains(p):
        return Reading(name, reason=OUTSIDE)
    info = bands.get(layer)
    if isinstance(info, str):
        return Reading(name, reason=info)
    pixel = info.pixel(p.x(), p.y())
    if pixel is None:
        return Reading(name, reason=OUTSIDE)
    result = layer.dataProvider().identify(p, _VALUE)
    if not result.isValid():
        return Reading(name, reason=f"the pixel could not be read ({result.error().summary()})", pixel=pixel)
    values = result.results()  # the GDAL provider applies each band's scale/offset and gives None for nodata
    wl, refl = spectrum([values.get(b + 1) for b in range(info.count)], info, scaled=True)
    if not np.isfinite(refl).any():
        return Reading(name, reason=f"no data at pixel (row {pixel[0]}, col {pixel[1]}) (nodata in every band)",
                       pixel=pixel)
    return Reading(name, Profile(name, point.x(), point.y(), wl, refl, info.as_points), pixel=pixel)


__all__ = ["LayerBands", "NO_WAVELENGTHS", "OUTSIDE", "Reading", "read_spectrum"]

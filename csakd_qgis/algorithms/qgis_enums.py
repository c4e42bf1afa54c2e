"""The QGIS enum values the algorithms use, fully scoped and resolved for the running QGIS.

QGIS 3.36 moved these enums into ``Qgis`` (``Qgis.ProcessingParameterFlag`` ...); QGIS 3.22-3.34 have them in
their classes. Resolving once here keeps every algorithm free of unscoped (Qt5-only) enum access.
"""

from __future__ import annotations

from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterDefinition, QgsProcessingParameterNumber

_FLAG = getattr(Qgis, "ProcessingParameterFlag", None)
_NUMBER = getattr(Qgis, "ProcessingNumberParameterType", None)
_SOURCE = getattr(Qgis, "ProcessingSourceType", None)

ADVANCED = _FLAG.Advanced if _FLAG is not None else QgsProcessingParameterDefinition.Flag.FlagAdvanced
INTEGER = _NUMBER.Integer if _NUMBER is not None else QgsProcessingParameterNumber.Type.Integer
DOUBLE = _NUMBER.Double if _NUMBER is not None else QgsProcessingParameterNumber.Type.Double
TYPE_RASTER = _SOURCE.Raster if _SOURCE is not None else QgsProcessing.SourceType.TypeRaster

__all__ = ["ADVANCED", "DOUBLE", "INTEGER", "TYPE_RASTER"]

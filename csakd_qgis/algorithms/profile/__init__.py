"""Desktop QGIS widgets of the plugin (QGIS layer): the spectral profile panel and its map tool."""

"""The plugin version (the one source besides metadata.txt; a leaf module every layer may import)."""

__version__ = "0.3.0"

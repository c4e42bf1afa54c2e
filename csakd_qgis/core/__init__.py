"""Core engine: raster I/O, co-registration, tiling, inference, simulation, metrics, training.

Nothing in here imports QGIS; torch is imported lazily inside the functions that need it.
"""

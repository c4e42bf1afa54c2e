"""Scale-out on Dask (dask.distributed): many pairs as one task each (batch), one raster as block tasks (blocks)."""

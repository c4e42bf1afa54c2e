"""Readers for delivered sensor products (EnMAP, PRISMA, EMIT, DESIS, Sentinel-2, Landsat): see ``registry``."""

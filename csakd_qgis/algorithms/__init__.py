"""Processing algorithms of the ``csakd`` provider (one module per algorithm)."""

from __future__ import annotations


def all_algorithms() -> list:
    """Fresh instances of every algorithm the provider offers."""
    from .fuse_classical import FuseClassicalAlgorithm

    return [FuseClassicalAlgorithm()]

"""Processing algorithms of the ``csakd`` provider (one module per algorithm)."""

from __future__ import annotations


def all_algorithms() -> list:
    """Fresh instances of every algorithm the provider offers."""
    from .coregister import CoregisterAlgorithm
    from .evaluate import EvaluateAlgorithm
    from .fuse import FuseAlgorithm
    from .fuse_classical import FuseClassicalAlgorithm
    from .simulate_pair import SimulatePairAlgorithm
    from .superresolve import SuperresolveAlgorithm
    from .train import TrainAlgorithm

    return [FuseClassicalAlgorithm(), FuseAlgorithm(), CoregisterAlgorithm(), SimulatePairAlgorithm(),
            EvaluateAlgorithm(), SuperresolveAlgorithm(), TrainAlgorithm()]

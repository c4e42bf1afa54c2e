"""Processing algorithms of the ``csakd`` provider (one module per algorithm); ``profile/`` holds the desktop
spectral profile panel (QGIS layer too)."""

from __future__ import annotations

from csakd_qgis.algorithms.coregister import CoregisterAlgorithm
from csakd_qgis.algorithms.evaluate import EvaluateAlgorithm
from csakd_qgis.algorithms.fuse import FuseAlgorithm
from csakd_qgis.algorithms.fuse_batch import FuseBatchAlgorithm
from csakd_qgis.algorithms.fuse_classical import FuseClassicalAlgorithm
from csakd_qgis.algorithms.simulate_pair import SimulatePairAlgorithm
from csakd_qgis.algorithms.superresolve import SuperresolveAlgorithm
from csakd_qgis.algorithms.train import TrainAlgorithm


def all_algorithms() -> list:
    """Fresh instances of every algorithm the provider offers."""

    return [FuseClassicalAlgorithm(), FuseAlgorithm(), CoregisterAlgorithm(), SimulatePairAlgorithm(),
            EvaluateAlgorithm(), SuperresolveAlgorithm(), TrainAlgorithm(), FuseBatchAlgorithm()]

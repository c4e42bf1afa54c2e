"""A 2-worker LocalCluster (processes, one thread each) shared by the distributed tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cluster():
    """An executor on a LocalCluster of 2 worker processes (skipped when Dask is not installed)."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install -e '.[test]')")
    from csakd_qgis.distributed.cluster import executor

    with executor(workers=2) as ex:
        assert ex.workers == 2
        yield ex

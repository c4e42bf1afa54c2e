"""``python -m csakd_qgis.cli``: the same entry point as the ``csakd`` command.

Guarded by ``__main__``: Dask's LocalCluster starts its workers with "spawn" (always on Windows), and a spawned
worker that imported this module must not run the command again.
"""

import sys

from csakd_qgis.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m csakd_qgis.cli``: the same entry point as the ``csakd`` command."""

import sys

from csakd_qgis.cli import main

sys.exit(main())

"""Every QGIS call listed in docs/PLATFORMS.md exists in the running QGIS (3.22 here), so the list stays true."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

pytestmark = pytest.mark.qgis


def test_every_listed_qgis_api_exists_here():
    import qgis.core
    import qgis.gui

    rows = re.findall(r"^\| `(Qgs[\w.]+|QgisInterface[\w.]*)` \|", (ROOT / "docs" / "PLATFORMS.md").read_text(
        encoding="utf-8"), re.M)
    assert len(rows) > 50
    missing = []
    for dotted in rows:
        first, *rest = dotted.split(".")
        obj = getattr(qgis.core, first, None) or getattr(qgis.gui, first, None)
        for part in rest:
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(dotted)
    assert missing == []

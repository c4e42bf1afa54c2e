"""Tick values of the plain QPainter plot (used when QGIS's Python has no matplotlib)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis


def test_nice_ticks_are_round_and_cover_the_range():
    from csakd_qgis.algorithms.profile.profile_plot import nice_ticks

    assert nice_ticks(418.2, 2440.0) == [500, 1000, 1500, 2000]
    assert nice_ticks(0.0, 0.84) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert nice_ticks(0.03, 0.031) == pytest.approx([0.03, 0.0302, 0.0304, 0.0306, 0.0308, 0.031])
    assert nice_ticks(1.0, 1.0) == [1.0]

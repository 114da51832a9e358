"""Angle differences: signed (a − b the short way round) and absolute."""

from __future__ import annotations

import pytest

from pipeline.geo.angles import abs_angle_diff_deg, signed_angle_diff_deg


@pytest.mark.parametrize(("a", "b", "d"), [(10, 350, 20), (350, 10, -20), (180, 0, 180), (0, 180, 180), (90, 90, 0)])
def test_signed_angle_diff(a: float, b: float, d: float) -> None:
    assert signed_angle_diff_deg(a, b) == pytest.approx(d)


@pytest.mark.parametrize(("a", "b", "d"), [(10, 350, 20), (350, 10, 20), (180, 0, 180), (-90, 630, 0), (359.5, 0.5, 1)])
def test_abs_angle_diff(a: float, b: float, d: float) -> None:
    assert abs_angle_diff_deg(a, b) == pytest.approx(d)

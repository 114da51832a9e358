"""Differences of azimuths and bearings (degrees, clockwise from north): the one home of angle arithmetic."""

from __future__ import annotations


def signed_angle_diff_deg(a_deg: float, b_deg: float) -> float:
    """Signed smallest difference a − b in degrees, in (−180, 180]: positive when ``a`` lies clockwise of ``b``."""
    d = (a_deg - b_deg + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


def abs_angle_diff_deg(a_deg: float, b_deg: float) -> float:
    """Smallest absolute difference of two azimuths in degrees, in [0, 180]."""
    return abs(signed_angle_diff_deg(a_deg, b_deg))

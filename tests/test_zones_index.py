"""ZoneIndex: local metres, STRtree queries, signed distances, probability that an uncertain point is inside."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.zones.index import N_SAMPLES, UNIT_SAMPLES_EN, ZoneIndex, reach_m, sample_points_en
from tests.zones_helpers import LAT0, LON0, make_zone, square


@pytest.fixture(scope="module")
def index() -> ZoneIndex:
    zones = [
        make_zone("mine", [square(1000, 0, 100)]),  # 200 m square, 900..1100 east
        make_zone("lic", [square(-1000, 0, 100)], kind="licensed_area", buffer_m=50),
        make_zone("holed", [square(0, 2000, 200), square(0, 2000, 50)]),  # a 100 m hole in the middle
    ]
    return ZoneIndex(zones, LAT0, LON0)


def test_samples_are_a_standard_normal() -> None:
    assert UNIT_SAMPLES_EN.shape == (N_SAMPLES, 2)
    np.testing.assert_allclose(UNIT_SAMPLES_EN.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.cov(UNIT_SAMPLES_EN.T, bias=True), np.eye(2), atol=1e-12)
    # the fraction within the 90 % radius (sqrt(chi2_2(0.9)) = 2.146) is about 90 %
    inside = np.hypot(UNIT_SAMPLES_EN[:, 0], UNIT_SAMPLES_EN[:, 1]) <= math.sqrt(-2 * math.log(0.1))
    assert abs(inside.mean() - 0.9) < 0.02


def test_sample_points_carry_the_covariance() -> None:
    cov = (400.0, 120.0, 120.0, 100.0)
    pts = sample_points_en((10.0, -5.0), cov)
    np.testing.assert_allclose(pts.mean(axis=0), [10.0, -5.0], atol=1e-9)
    np.testing.assert_allclose(np.cov(pts.T, bias=True), np.reshape(cov, (2, 2)), rtol=1e-9)
    # a degenerate (rank-1) covariance works too: all points on a line
    line = sample_points_en((0.0, 0.0), (100.0, 0.0, 0.0, 0.0))
    assert np.all(line[:, 1] == 0.0) and line[:, 0].std() == pytest.approx(10.0)


def test_polygons_are_in_local_metres(index: ZoneIndex) -> None:
    minx, miny, maxx, maxy = index.polygons_en[0].bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((900, -100, 1100, 100), abs=0.01)
    assert index.polygons_en[0].area == pytest.approx(200 * 200, rel=1e-5)
    assert index.to_local_m(LAT0, LON0) == pytest.approx((0.0, 0.0), abs=1e-6)


@pytest.mark.parametrize(
    ("east", "north", "radius", "expected"),
    [
        (1000, 0, 0, ["mine"]),
        (1150, 0, 0, []),
        (1150, 0, 60, ["mine"]),  # 50 m from the edge, within 60
        (-1000, 0, 0, ["lic"]),
        (-1130, 0, 0, ["lic"]),  # outside the licence, inside its 50 m buffer
        (-1160, 0, 0, []),
        (0, 2000, 0, []),  # in the hole: the STRtree predicate sees the hole
        (0, 2100, 0, ["holed"]),
        (0, 0, 5000, ["mine", "lic", "holed"]),
    ],
)
def test_query(index: ZoneIndex, east: float, north: float, radius: float, expected: list[str]) -> None:
    assert [index.zones[i].id for i in index.query(east, north, radius)] == expected


@pytest.mark.parametrize(
    ("east", "north", "distance"),
    [(1000, 0, 100.0), (1090, 0, 10.0), (1100, 50, 0.0), (1120, 0, -20.0), (1150, 150, -50 * math.sqrt(2))],
)
def test_signed_distance(index: ZoneIndex, east: float, north: float, distance: float) -> None:
    assert index.signed_distance_m(0, east, north) == pytest.approx(distance, abs=0.01)


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize("d_sigma", [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
def test_probability_near_a_straight_edge_matches_the_normal_cdf(index: ZoneIndex, d_sigma: float) -> None:
    """Across the east edge (x = 1100) of a large square, P(inside) = Φ(d/σ) for a point d inside."""
    sigma = 10.0
    p = index.probability_inside(0, (1100 - d_sigma * sigma, 0.0), (sigma**2, 0.0, 0.0, sigma**2))
    assert p == pytest.approx(_phi(d_sigma), abs=0.03)


def test_probability_uses_the_ellipse_orientation(index: ZoneIndex) -> None:
    """10 m inside the east edge: an ellipse long east-west straddles the edge, one long north-south does not."""
    across = index.probability_inside(0, (1090.0, 0.0), (30.0**2, 0.0, 0.0, 3.0**2))
    along = index.probability_inside(0, (1090.0, 0.0), (3.0**2, 0.0, 0.0, 30.0**2))
    assert across == pytest.approx(_phi(10 / 30), abs=0.03)
    assert along > 0.99


@pytest.mark.parametrize(
    ("mean", "expected"),
    [((1000.0, 0.0), 1.0), ((1100.1, 0.0), 0.0), ((1099.9, 0.0), 1.0), ((5000.0, 0.0), 0.0)],
)
def test_probability_without_uncertainty_is_zero_or_one(
    index: ZoneIndex, mean: tuple[float, float], expected: float
) -> None:
    assert index.probability_inside(0, mean, (0.0, 0.0, 0.0, 0.0)) == expected


def test_probability_is_deterministic(index: ZoneIndex) -> None:
    args = ((1095.0, 3.0), (150.0, 40.0, 40.0, 90.0))
    assert index.probability_inside(0, *args) == index.probability_inside(0, *args)


def test_probability_respects_holes(index: ZoneIndex) -> None:
    assert index.probability_inside(2, (0.0, 2000.0), (25.0, 0.0, 0.0, 25.0)) == 0.0
    assert index.probability_inside(2, (0.0, 2125.0), (25.0, 0.0, 0.0, 25.0)) == 1.0


@pytest.mark.parametrize(
    ("east", "expected"),
    [(-1000.0, 0.0), (-1125.0, 1.0), (-1200.0, 0.0), (-1100.0, 0.5), (-1150.0, 0.5)],
)
def test_probability_in_buffer_band(index: ZoneIndex, east: float, expected: float) -> None:
    """Licence 200 m wide (edge at −1100), buffer 50 m (to −1150); σ = 5 m."""
    assert index.probability_in_buffer(1, (east, 0.0), (25.0, 0.0, 0.0, 25.0)) == pytest.approx(expected, abs=0.04)


def test_reach_covers_every_sample() -> None:
    cov = (900.0, 0.0, 0.0, 100.0)
    pts = sample_points_en((0.0, 0.0), cov)
    assert np.hypot(pts[:, 0], pts[:, 1]).max() <= reach_m(cov) + 1e-9
    assert reach_m(cov) == pytest.approx(30.0 * np.hypot(UNIT_SAMPLES_EN[:, 0], UNIT_SAMPLES_EN[:, 1]).max())

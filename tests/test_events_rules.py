"""Rule tables: each zone kind with inside/outside/buffer/schedule/permit cases, probability near the boundary,
fire anywhere in view, and sightings without a ground fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.config import ZonesConfig
from pipeline.events.rules import RuleEngine
from tests.zones_helpers import LAT0, LON0, make_zone, square

# Local metres around the tower (0, 0):
#   mine: closed_mine 200 m square centred 1000 m east;  site: illegal_site 1000 m north
#   lic: licensed_area 1000 m west with a 50 m buffer;    fire: fire_watch 1000 m south
#   night: closed_mine watched 20:00-06:00 only, 2000 m east; permit: closed_mine silenced 1-3 June, 3000 m east
#   burn: fire_watch silenced by a permit (controlled burning), 3000 m south
ZONES = [
    make_zone("mine", [square(1000, 0, 100)], kind="closed_mine"),
    make_zone("site", [square(0, 1000, 100)], kind="illegal_site"),
    make_zone("lic", [square(-1000, 0, 100)], kind="licensed_area", buffer_m=50),
    make_zone("fire", [square(0, -1000, 100)], kind="fire_watch"),
    make_zone("night", [square(2000, 0, 100)], schedule=["20:00-06:00"]),
    make_zone("permit", [square(3000, 0, 100)], permits=[{"from": "2026-06-01", "to": "2026-06-03"}]),
    make_zone("burn", [square(0, -3000, 100)], kind="fire_watch", permits=[{"from": "2026-06-01", "to": "2026-06-03"}]),
]


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC).timestamp()


NOON = local("2026-05-20T12:00")
SMALL = (4.0, 0.0, 0.0, 4.0)  # σ = 2 m


def engine(**cfg: Any) -> RuleEngine:
    return RuleEngine(ZONES, LAT0, LON0, ZonesConfig.model_validate(cfg))


CASES: list[tuple[str, str, tuple[float, float], float, dict[str, Any], list[tuple[str, str | None]]]] = [
    # (case, class, position, time, config, expected [(rule, zone)])
    ("excavator in closed mine", "excavator", (1000, 0), NOON, {}, [("closed_mine", "mine")]),
    ("truck in closed mine", "truck", (950, 50), NOON, {}, [("closed_mine", "mine")]),
    ("person in closed mine (not a default class)", "person", (1000, 0), NOON, {}, []),
    ("excavator just outside closed mine", "excavator", (1120, 0), NOON, {}, []),
    ("excavator in illegal site", "excavator", (0, 1000), NOON, {}, [("illegal_site", "site")]),
    ("excavator outside illegal site", "excavator", (0, 1300), NOON, {}, []),
    ("excavator inside licence: allowed", "excavator", (-1000, 0), NOON, {}, []),
    ("excavator 20 m beyond licence", "excavator", (-1120, 0), NOON, {}, [("beyond_boundary", "lic")]),
    ("truck 45 m beyond licence", "truck", (-1000, 145), NOON, {}, [("beyond_boundary", "lic")]),
    ("excavator beyond the buffer", "excavator", (-1200, 0), NOON, {}, []),
    ("fire in fire_watch", "fire", (0, -1000), NOON, {}, [("fire_watch", "fire")]),
    ("smoke in fire_watch", "smoke", (50, -950), NOON, {}, [("fire_watch", "fire")]),
    ("excavator in fire_watch", "excavator", (0, -1000), NOON, {}, []),
    ("fire in open ground", "fire", (500, 500), NOON, {}, [("fire_in_view", None)]),
    ("fire in open ground, fire_anywhere off", "fire", (500, 500), NOON, {"fire_anywhere": False}, []),
    ("fire in closed mine", "fire", (1000, 0), NOON, {}, [("fire_in_view", None)]),
    ("night zone at noon", "excavator", (2000, 0), NOON, {}, []),
    ("night zone at 22:00", "excavator", (2000, 0), local("2026-05-20T22:00"), {}, [("closed_mine", "night")]),
    ("night zone at 05:30", "excavator", (2000, 0), local("2026-05-21T05:30"), {}, [("closed_mine", "night")]),
    ("night zone, schedule in UTC", "excavator", (2000, 0), local("2026-05-20T22:00"), {"tz": "UTC"}, []),
    ("permit zone before permit", "excavator", (3000, 0), local("2026-05-31T23:00"), {}, [("closed_mine", "permit")]),
    ("permit zone during permit", "excavator", (3000, 0), local("2026-06-02T10:00"), {}, []),
    ("permit zone after permit", "excavator", (3000, 0), local("2026-06-04T00:10"), {}, [("closed_mine", "permit")]),
    ("fire in silenced fire_watch: no fire_in_view", "fire", (0, -3000), local("2026-06-02T10:00"), {}, []),
    ("fire in fire_watch after permit", "fire", (0, -3000), local("2026-06-05T10:00"), {}, [("fire_watch", "burn")]),
]


@pytest.mark.parametrize(("case", "cls", "pos", "t", "cfg", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule_table(
    case: str,
    cls: str,
    pos: tuple[float, float],
    t: float,
    cfg: dict[str, Any],
    expected: list[tuple[str, str | None]],
) -> None:
    hits = engine(**cfg).evaluate(cls, pos, SMALL, None, t)
    assert [h.key for h in hits] == expected
    for hit in hits:
        if hit.zone is not None:
            assert hit.probability == pytest.approx(1.0, abs=0.01)
            assert hit.distance_to_boundary_m is not None


def test_distance_to_boundary_is_signed() -> None:
    [inside] = engine().evaluate("excavator", (1080, 0), SMALL, None, NOON)
    assert inside.distance_to_boundary_m == pytest.approx(20.0, abs=0.01)
    [beyond] = engine().evaluate("excavator", (-1120, 0), SMALL, None, NOON)
    assert beyond.distance_to_boundary_m == pytest.approx(-20.0, abs=0.01)


@pytest.mark.parametrize(
    ("inside_m", "threshold", "fires"),
    [
        (5.0, 0.5, True),  # P = Φ(0.5) ≈ 0.69
        (5.0, 0.8, False),
        (-5.0, 0.5, False),  # P ≈ 0.31
        (-5.0, 0.25, True),
        (25.0, 0.95, True),  # P = Φ(2.5) ≈ 0.994
        (0.0, 0.45, True),  # on the edge: P ≈ 0.5
        (0.0, 0.55, False),
    ],
)
def test_probability_near_the_boundary(inside_m: float, threshold: float, fires: bool) -> None:
    """σ = 10 m; the east edge of the closed mine is at x = 1100."""
    cov = (100.0, 0.0, 0.0, 100.0)
    hits = engine(probability_threshold=threshold).evaluate("excavator", (1100 - inside_m, 0.0), cov, None, NOON)
    assert bool(hits) is fires
    if hits:
        expected = 0.5 * (1 + __import__("math").erf(inside_m / 10 / 2**0.5))
        assert hits[0].probability == pytest.approx(expected, abs=0.03)


def test_min_probability_overrides_threshold() -> None:
    cov = (100.0, 0.0, 0.0, 100.0)
    assert engine().evaluate("excavator", (1105, 0), cov, None, NOON) == []
    [hit] = engine().evaluate("excavator", (1105, 0), cov, None, NOON, min_probability=0.2)
    assert 0.2 <= (hit.probability or 0) < 0.5


def test_large_ellipse_far_from_zone_centre_still_finds_it() -> None:
    """The candidate search reaches as far as the ellipse: a point 150 m outside with σ = 300 m."""
    cov = (300.0**2, 0.0, 0.0, 300.0**2)
    [hit] = engine().evaluate("excavator", (1250, 0), cov, None, NOON, min_probability=0.01)
    assert hit.zone is not None and hit.zone.id == "mine" and 0.01 <= (hit.probability or 0) < 0.2


@pytest.mark.parametrize(
    ("cls", "bearing", "cfg", "expected"),
    [
        ("smoke", 180.0, {}, [("fire_in_view", None)]),
        ("fire", 45.0, {}, [("fire_in_view", None)]),
        ("smoke", 180.0, {"fire_anywhere": False}, [("fire_watch", "fire")]),  # nearest along the line of sight
        ("smoke", 181.0, {"fire_anywhere": False}, [("fire_watch", "fire")]),
        ("smoke", 90.0, {"fire_anywhere": False}, []),
        ("smoke", 180.0, {"fire_anywhere": False, "sky_smoke_range_m": 800}, []),  # zone beyond the range
        ("excavator", 90.0, {}, []),  # cannot be placed without a fix
    ],
)
def test_without_ground_fix(cls: str, bearing: float, cfg: dict[str, Any], expected: list[Any]) -> None:
    hits = engine(**cfg).evaluate(cls, None, None, bearing, NOON)
    assert [h.key for h in hits] == expected
    assert all(h.probability is None for h in hits)


def test_without_fix_skips_silenced_fire_watch() -> None:
    """Straight south: 'fire' at 1 km is nearest; during the burn permit the line still hits 'fire' only."""
    hits = engine(fire_anywhere=False).evaluate("smoke", None, None, 180.0, local("2026-06-02T10:00"))
    assert [h.key for h in hits] == [("fire_watch", "fire")]
    far = RuleEngine(ZONES[6:], LAT0, LON0, ZonesConfig.model_validate({"fire_anywhere": False}))
    assert far.evaluate("smoke", None, None, 180.0, local("2026-06-02T10:00")) == []
    assert [h.key for h in far.evaluate("smoke", None, None, 180.0, NOON)] == [("fire_watch", "burn")]


# For every kind: where and what triggers it (the licence's buffer band for licensed_area).
TRIGGER = {
    "closed_mine": ("excavator", (0.0, 0.0)),
    "illegal_site": ("truck", (0.0, 0.0)),
    "licensed_area": ("excavator", (120.0, 0.0)),
    "fire_watch": ("smoke", (0.0, 0.0)),
}


@pytest.mark.parametrize("kind", sorted(TRIGGER))
@pytest.mark.parametrize(
    ("props", "when", "fires"),
    [
        ({}, "2026-06-02T12:00", True),
        ({"schedule": ["08:00-18:00"]}, "2026-06-02T12:00", True),
        ({"schedule": ["08:00-18:00"]}, "2026-06-02T19:00", False),
        ({"schedule": ["22:00-02:00"]}, "2026-06-03T01:00", True),
        ({"permits": [{"from": "2026-06-01", "to": "2026-06-02"}]}, "2026-06-02T23:59", False),
        ({"permits": [{"from": "2026-06-01", "to": "2026-06-02"}]}, "2026-06-03T00:00", True),
        (
            {"schedule": ["08:00-18:00"], "permits": [{"from": "2026-06-02", "to": "2026-06-02"}]},
            "2026-06-02T12:00",
            False,
        ),
    ],
)
def test_schedule_and_permits_for_every_kind(kind: str, props: dict[str, Any], when: str, fires: bool) -> None:
    extra = {"buffer_m": 50} if kind == "licensed_area" else {}
    zone = make_zone("z", [square(0, 0, 100)], kind=kind, **extra, **props)
    rules = RuleEngine([zone], LAT0, LON0, ZonesConfig.model_validate({"fire_anywhere": False}))
    cls, pos = TRIGGER[kind]
    hits = rules.evaluate(cls, pos, SMALL, None, local(when))
    assert [h.key for h in hits] == ([(zone.rule, "z")] if fires else [])
    # outside the zone (and beyond any buffer) nothing fires, whatever the time
    assert rules.evaluate(cls, (400.0, 0.0), SMALL, None, local(when)) == []


@pytest.mark.parametrize(
    ("inside_m", "expected"),
    [
        (5.0, [("fire_watch", "fire")]),  # P ≈ 0.69: the zone's fire
        (-2.0, [("fire_watch", "fire"), ("fire_in_view", None)]),  # P ≈ 0.42: not sure enough for the zone
        (-50.0, [("fire_in_view", None)]),
    ],
)
def test_fire_near_a_fire_watch_boundary_is_never_lost(inside_m: float, expected: list[Any]) -> None:
    """σ = 10 m; the fire_watch zone's south edge is at y = −1100. Hits down to the hysteresis level are returned
    (the event manager keeps an open fire_watch event with them); fire_in_view comes unless the zone is sure."""
    cov = (100.0, 0.0, 0.0, 100.0)
    hits = engine().evaluate("fire", (0.0, -1100.0 + inside_m), cov, None, NOON, min_probability=0.35)
    assert [h.key for h in hits] == expected

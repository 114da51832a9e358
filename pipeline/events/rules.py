"""The geofence rules of illegal mining: which zone a located sighting violates, and how sure we are.

Per zone kind (docs/ZONES.md):

- ``closed_mine`` / ``illegal_site``: a triggering class (default excavator, truck) inside is a violation;
- ``licensed_area``: inside is allowed; outside but within ``buffer_m`` is ``beyond_boundary`` (超层越界);
- ``fire_watch``: fire or smoke inside;
- ``fire_in_view`` (no zone): fire or smoke anywhere else in view, when ``zones.fire_anywhere`` is on.

A zone outside its ``schedule`` windows or covered by a ``permit`` raises nothing (and a fire inside a
silenced fire_watch zone raises no ``fire_in_view`` either: the permit covers that place). ``fire_in_view``
is returned unless a fire_watch zone holds the fire with probability ≥ ``probability_threshold``; the event
manager drops it for a track that continues an open fire_watch event (no fire is lost at a boundary, none
is alerted twice).

The decision uses the location's uncertainty: the probability that the point lies in the zone (or in a
licensed area's buffer band) is integrated from the fix's covariance (:mod:`pipeline.zones.index`).
:meth:`RuleEngine.evaluate` returns every hit at or above ``min_probability``; the event manager compares
it with ``probability_threshold`` (new events) or the threshold minus the hysteresis (open events).

Without a ground fix (the box's bottom lies above the horizon: a smoke plume against the sky): fire and
smoke raise ``fire_in_view`` when ``fire_anywhere`` is on; otherwise they are tied to the nearest
``fire_watch`` zone that the line of sight (the box's bearing) crosses within ``sky_smoke_range_m``, with
no probability (``None``). Other classes without a fix raise nothing: they cannot be placed in a zone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from pipeline.config import ZonesConfig
from pipeline.types import RuleName
from pipeline.zones.index import ZoneIndex, reach_m, sample_points_en
from pipeline.zones.model import Zone

FIRE_CLASSES: tuple[str, ...] = ("fire", "smoke")
FIRE_IN_VIEW: RuleName = "fire_in_view"


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule a sighting meets. ``zone`` is None for ``fire_in_view``."""

    rule: RuleName
    zone: Zone | None
    probability: float | None  # that the object is in the zone (buffer band for beyond_boundary)
    distance_to_boundary_m: float | None  # of the mean position: >0 inside the zone, <0 outside

    @property
    def key(self) -> tuple[str, str | None]:
        return self.rule, self.zone.id if self.zone is not None else None


class RuleEngine:
    """Zones of one camera (local metres around it) and the rules above."""

    def __init__(self, zones: Sequence[Zone], origin_lat: float, origin_lon: float, cfg: ZonesConfig) -> None:
        self.cfg = cfg
        self.index = ZoneIndex(zones, origin_lat, origin_lon)

    @property
    def zones(self) -> list[Zone]:
        return self.index.zones

    def evaluate(
        self,
        class_name: str,
        mean_en_m: tuple[float, float] | None,
        cov_en_m2: Sequence[float] | None,
        bearing_deg: float | None,
        t_utc_s: float,
        min_probability: float | None = None,
    ) -> list[RuleHit]:
        """Rules met by a sighting of ``class_name`` at ``mean_en_m`` (local metres; None: no ground fix)."""
        low = self.cfg.probability_threshold if min_probability is None else min_probability
        if mean_en_m is None:
            return self._without_fix(class_name, bearing_deg, t_utc_s)
        cov = tuple(cov_en_m2) if cov_en_m2 is not None else (0.0, 0.0, 0.0, 0.0)
        hits: list[RuleHit] = []
        fire_covered = False
        pts: NDArray[np.float64] | None = None  # the fix's sample points, made once, only when needed
        for i in self.index.query(mean_en_m[0], mean_en_m[1], reach_m(cov)):
            zone = self.index.zones[i]
            if not zone.triggers(class_name) or (zone.kind == "licensed_area" and zone.buffer_m <= 0):
                continue
            if pts is None:
                pts = sample_points_en(mean_en_m, cov)
            if zone.kind == "licensed_area":
                p = self.index.fraction_in_buffer(i, pts)
            else:
                p = self.index.fraction_inside(i, pts)
            if p < low or p <= 0.0:
                continue
            if zone.kind == "fire_watch" and p >= self.cfg.probability_threshold:
                fire_covered = True  # silenced or not, this place is the zone's business
            if not zone.watched_at(t_utc_s, self.cfg.tz):
                continue
            distance = self.index.signed_distance_m(i, mean_en_m[0], mean_en_m[1])
            hits.append(RuleHit(zone.rule, zone, p, distance))
        if class_name in FIRE_CLASSES and self.cfg.fire_anywhere and not fire_covered:
            hits.append(RuleHit(FIRE_IN_VIEW, None, None, None))
        return hits

    def _without_fix(self, class_name: str, bearing_deg: float | None, t_utc_s: float) -> list[RuleHit]:
        if class_name not in FIRE_CLASSES:
            return []
        if self.cfg.fire_anywhere:
            return [RuleHit(FIRE_IN_VIEW, None, None, None)]
        if bearing_deg is None or self.cfg.sky_smoke_range_m <= 0:
            return []
        zone = self.zone_on_bearing(bearing_deg, class_name, t_utc_s)
        return [] if zone is None else [RuleHit(zone.rule, zone, None, None)]

    def zone_on_bearing(self, bearing_deg: float, class_name: str, t_utc_s: float) -> Zone | None:
        """The nearest watched fire_watch zone for ``class_name`` that the line of sight crosses."""
        rad = math.radians(bearing_deg)
        far = self.cfg.sky_smoke_range_m
        ray = shapely.LineString([(0.0, 0.0), (far * math.sin(rad), far * math.cos(rad))])
        best: tuple[float, Zone] | None = None
        for i in sorted(int(k) for k in self.index.tree.query(ray, predicate="intersects")):
            zone = self.index.zones[i]
            if zone.kind != "fire_watch" or not zone.triggers(class_name) or not zone.watched_at(t_utc_s, self.cfg.tz):
                continue
            polygon = self.index.polygons_en[i]
            if not polygon.intersects(ray):
                continue
            distance = float(shapely.Point(0.0, 0.0).distance(polygon.intersection(ray)))
            if best is None or distance < best[0]:
                best = (distance, zone)
        return None if best is None else best[1]

"""Zones for tests, built in code in local metres around a tower near Kelan (not read from anyone's files)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.geo.coords import LocalFrame
from pipeline.zones.model import Zone, parse_feature_collection

LAT0, LON0 = 38.70, 111.60
FRAME = LocalFrame(LAT0, LON0)


def ring_lonlat(corners_en: list[tuple[float, float]]) -> list[list[float]]:
    east = np.array([c[0] for c in corners_en] + [corners_en[0][0]])
    north = np.array([c[1] for c in corners_en] + [corners_en[0][1]])
    lat, lon = FRAME.to_wgs84(east, north)
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def square(e0: float, n0: float, half: float) -> list[tuple[float, float]]:
    return [(e0 - half, n0 - half), (e0 + half, n0 - half), (e0 + half, n0 + half), (e0 - half, n0 + half)]


def make_zone(zone_id: str, rings_en: list[list[tuple[float, float]]], **props: Any) -> Zone:
    props = {"id": zone_id, "name": zone_id, "kind": "closed_mine", **props}
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "Polygon", "coordinates": [ring_lonlat(r) for r in rings_en]},
            }
        ],
    }
    return parse_feature_collection(doc, "test")[0]

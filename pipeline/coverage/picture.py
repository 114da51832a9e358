"""The coverage map: zones coloured by verdict, towers and their view sectors, the ground no tower sees,
and (with siting) the candidate sites, picked ones numbered. Drawn on :mod:`pipeline.zones.preview`'s canvas."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import shapely
import shapely.affinity
from numpy.typing import NDArray

from pipeline.config import CameraConfig
from pipeline.coverage.analysis import ZoneCoverage
from pipeline.coverage.siting import Candidate, Siting
from pipeline.geo.coords import LocalFrame
from pipeline.zones.preview import (
    MapCanvas,
    _ascii,
    _label,
    _north_arrow,
    _poly_px,
    _scale_bar,
    view_wedge,
    zone_local,
)
from pipeline.zones.validate import camera_poses

#: BGR colour of each verdict.
VERDICT_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "watched": (60, 170, 40),
    "too small": (0, 160, 255),
    "occluded": (40, 40, 220),
    "not in any preset": (150, 150, 150),
}
HIDDEN_BGR = (60, 60, 60)
PICKED_BGR = (200, 90, 0)


def verdict_colour(verdict: str) -> tuple[int, int, int]:
    return VERDICT_COLOURS_BGR.get(verdict.split(" (")[0], VERDICT_COLOURS_BGR["not in any preset"])


def _bounds(points_en: list[tuple[float, float]], geoms: list[shapely.Geometry]) -> tuple[float, float, float, float]:
    items = [shapely.Point(e, n).buffer(100.0) for e, n in points_en] + geoms
    minx, miny, maxx, maxy = shapely.GeometryCollection(items).bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def draw_coverage_map(
    coverage: Sequence[ZoneCoverage],
    cameras: Sequence[CameraConfig],
    sector_m: float,
    candidates: Sequence[Candidate] = (),
    siting: Siting | None = None,
    size_px: int = 1200,
) -> NDArray[np.uint8]:
    """A north-up PNG-ready image (BGR)."""
    towers = [(c.lat, c.lon) for c in cameras] + [(c.lat, c.lon) for c in candidates]
    if not towers:
        towers = [(zc.zone.polygon.centroid.y, zc.zone.polygon.centroid.x) for zc in coverage] or [(0.0, 0.0)]
    origin = LocalFrame(float(np.mean([t[0] for t in towers])), float(np.mean([t[1] for t in towers])))
    zones_local = [zone_local(zc.zone, origin) for zc in coverage]
    tower_en = [origin.to_local_m(lat, lon) for lat, lon in towers]
    canvas = MapCanvas(origin, _bounds(tower_en, zones_local), size_px)
    image = np.full((size_px, size_px, 3), 255, np.uint8)
    for cam in cameras:
        e, n = origin.to_local_m(cam.lat, cam.lon)
        for pose in camera_poses(cam):
            wedge = shapely.affinity.translate(view_wedge(pose.pan_deg, pose.hfov_deg / 2, 0.0, sector_m), e, n)
            cv2.fillPoly(image, _poly_px(canvas, wedge), (225, 225, 225))
            cv2.polylines(image, _poly_px(canvas, wedge), True, (170, 170, 170), 1, cv2.LINE_AA)
    fill = image.copy()
    for zc, local in zip(coverage, zones_local, strict=True):
        cv2.fillPoly(fill, _poly_px(canvas, local), verdict_colour(zc.verdict))
    image = np.asarray(cv2.addWeighted(fill, 0.45, image, 0.55, 0.0), dtype=np.uint8)
    for zc, local in zip(coverage, zones_local, strict=True):
        cv2.polylines(image, _poly_px(canvas, local), True, verdict_colour(zc.verdict), 2, cv2.LINE_AA)
        hidden = ~zc.visible_any
        if hidden.any():  # the ground of the zone no tower has in line of sight
            he, hn = origin.to_local_m(zc.samples.lat[hidden], zc.samples.lon[hidden])
            for x, y in np.round(canvas.px(np.asarray(he), np.asarray(hn))).astype(int):
                cv2.circle(image, (int(x), int(y)), 2, HIDDEN_BGR, -1)
        c = local.representative_point()
        px = canvas.px(np.array(c.x), np.array(c.y))
        _label(image, _ascii(zc.zone.id), (int(px[0]), int(px[1])), verdict_colour(zc.verdict))
    picked = {p.candidate.id: i + 1 for i, p in enumerate(siting.picks)} if siting else {}
    for cand in candidates:
        e, n = origin.to_local_m(cand.lat, cand.lon)
        x, y = canvas.px(np.array(e), np.array(n))
        tri = np.array([[x, y - 10], [x - 9, y + 7], [x + 9, y + 7]], np.int32).reshape(-1, 1, 2)
        if cand.id in picked:
            cv2.fillPoly(image, [tri], PICKED_BGR)
            _label(image, f"#{picked[cand.id]} {_ascii(cand.id)}", (int(x), int(y) + 26), PICKED_BGR)
        else:
            cv2.polylines(image, [tri], True, (120, 120, 120), 1, cv2.LINE_AA)
    for cam in cameras:
        e, n = origin.to_local_m(cam.lat, cam.lon)
        x, y = canvas.px(np.array(e), np.array(n))
        tri = np.array([[x, y - 12], [x - 10, y + 8], [x + 10, y + 8]], np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(image, [tri], (0, 0, 0))
        _label(image, _ascii(cam.id), (int(x), int(y) + 30), (255, 255, 255))
    _legend(image, bool(candidates))
    _scale_bar(image, canvas)
    _north_arrow(image)
    return image


def _legend(image: NDArray[np.uint8], with_sites: bool) -> None:
    items = [(k, v) for k, v in VERDICT_COLOURS_BGR.items()] + [("hidden from every tower", HIDDEN_BGR)]
    if with_sites:
        items.append(("picked site", PICKED_BGR))
    for i, (text, colour) in enumerate(items):
        y = 24 + 22 * i
        cv2.rectangle(image, (12, y - 12), (30, y + 4), colour, -1)
        cv2.putText(image, text, (38, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)

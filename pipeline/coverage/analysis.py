"""Is a zone really watched? Terrain occlusion by ray casting, pixels on target, verdicts, zoom per preset.

For every zone × camera × patrol preset:

* the zone is sampled on a grid (:func:`sample_zone`; each point stands for its share of the zone's area);
* each point is **visible** from the tower when a point ``coverage.above_ground_m`` above the ground there is
  in line of sight: the straight ray to it (:meth:`CameraModel.vectors_to`, Earth curvature and refraction as
  for geolocation) meets the ground (:meth:`CameraModel.intersect`, the DEM ray march) only beyond it;
* it is **in view** of a preset when it projects inside the frame (:meth:`CameraModel.project_local`) within
  ``terrain.max_range_m``;
* the **pixel height** of an object of height H is f·H/d (f = focal length in pixels of the preset's hfov on
  ``coverage.image_wh_px``, d = slant distance), taken at the far end of the zone's watched part (the 90th
  percentile of d over the points in view and visible), for each class the zone alerts on;
* the verdict: ``not in view`` (nothing of it in the frame), ``occluded`` (less than
  ``coverage.min_visible_share`` of the part in the frame is visible), ``too small (zoom to hfov ≤ X°)``
  (some class below its floor; X the widest hfov that lifts every class to its floor), else ``watched``.

A zone's verdict is its best row's (watched > too small > occluded); ``not in any preset`` when no preset
has any of it in view. :func:`preset_zoom` gives, per preset, the widest hfov that keeps all its zones'
targets above the floor, and how many presets a tour needs at that zoom to cover each zone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from pipeline.config import CameraConfig, CoverageConfig
from pipeline.coverage.floor import SizeFloor
from pipeline.geo.camera import CameraModel, focal_px, vfov_deg
from pipeline.geo.coords import LocalFrame
from pipeline.types import Pose
from pipeline.zones.model import Zone
from pipeline.zones.validate import camera_poses

F64 = NDArray[np.float64]
#: at most this many sample points per zone (the grid step grows for bigger zones).
MAX_POINTS = 2000
#: at least about this many sample points per zone (the grid step shrinks for small zones, down to 1 m).
MIN_POINTS = 64
#: the slant-distance percentile of a zone's watched part at which pixel heights are judged (its far end).
FAR_PERCENTILE = 90.0
#: machines and plumes, for the table's two pixel columns.
MACHINE_CLASS = "excavator"
PLUME_CLASS = "smoke"
VERDICT_RANK = {"watched": 3, "too small": 2, "occluded": 1, "not in view": 0}


@dataclass
class ZoneSamples:
    """Grid points of one zone (WGS84) and the area each stands for (m²)."""

    zone: Zone
    lat: F64
    lon: F64
    weight_m2: F64

    @property
    def area_m2(self) -> float:
        return float(self.weight_m2.sum())


def sample_zone(zone: Zone, step_m: float, max_points: int = MAX_POINTS) -> ZoneSamples:
    """A square grid over the zone (cell centres inside it), in an equidistant frame centred on the zone."""
    c = zone.polygon.centroid
    frame = LocalFrame(float(c.y), float(c.x))

    def to_m(xy: F64) -> F64:
        e, n = frame.to_local_m(xy[:, 1], xy[:, 0])
        return np.stack([e, n], axis=1)

    local = shapely.transform(zone.polygon, to_m)
    area = float(local.area)
    step = max(min(step_m, math.sqrt(area / MIN_POINTS)), math.sqrt(area / max_points), 1.0)
    minx, miny, maxx, maxy = local.bounds
    gx, gy = np.meshgrid(np.arange(minx + step / 2, maxx, step), np.arange(miny + step / 2, maxy, step))
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    inside = shapely.contains_xy(local, pts[:, 0], pts[:, 1]) if len(pts) else np.zeros(0, bool)
    pts = pts[inside]
    if not len(pts):
        p = local.representative_point()
        pts = np.array([[p.x, p.y]])
    lat, lon = frame.to_wgs84(pts[:, 0], pts[:, 1])
    weight = np.full(len(pts), area / len(pts))
    return ZoneSamples(zone, np.asarray(lat, np.float64), np.asarray(lon, np.float64), weight)


@dataclass
class TowerLook:
    """What one tower sees of a set of points: local position, distances, bearing, line of sight."""

    east_m: F64
    north_m: F64
    ground_m: F64
    slant_m: F64  # straight-line distance camera → point
    range_m: F64  # horizontal (surface) distance from the tower
    bearing_deg: F64
    elevation_deg: F64  # of the line of sight (negative looks down)
    in_range: NDArray[np.bool_]
    visible: NDArray[np.bool_]  # in range and in line of sight


def look(model: CameraModel, lat: F64, lon: F64, above_ground_m: float) -> TowerLook:
    """Line of sight from ``model``'s camera to points ``above_ground_m`` over the ground at (lat, lon)."""
    east, north = model.frame.to_local_m(np.asarray(lat, np.float64), np.asarray(lon, np.float64))
    ground = model.ground_height_m(east, north)
    known = np.isfinite(ground)
    z = np.where(known, ground, model.ground_elevation_m) + above_ground_m
    v = model.vectors_to(east, north, z).reshape(-1, 3)
    slant = np.linalg.norm(v, axis=1)
    rng_m = np.hypot(east, north)
    in_range = known & (rng_m <= model.terrain.max_range_m) & (slant > 0)
    visible = np.zeros(len(v), bool)
    idx = np.flatnonzero(in_range)
    if idx.size:
        dirs = v[idx] / slant[idx, None]
        t_hit, _ = model.intersect(dirs)
        # no hit (rising ray, beyond range, off the DEM) or the first hit lies behind the point: seen
        visible[idx] = np.isnan(t_hit) | (t_hit >= slant[idx] * (1.0 - 1e-9))
    elev = np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))
    bearing = np.degrees(np.arctan2(east, north)) % 360.0
    return TowerLook(east, north, ground, slant, rng_m, bearing, elev, in_range, visible)


def in_frame(model: CameraModel, pose: Pose, image_wh: tuple[int, int], tl: TowerLook) -> NDArray[np.bool_]:
    """Which points project inside the frame of ``pose`` (and lie within range)."""
    z = np.where(np.isfinite(tl.ground_m), tl.ground_m, model.ground_elevation_m)
    xy = model.project_local(pose, image_wh, tl.east_m, tl.north_m, z).reshape(-1, 2)
    w, h = image_wh
    ok = np.isfinite(xy).all(axis=1) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return np.asarray(ok & tl.in_range)


def pixel_height(hfov_deg: float, width_px: int, height_m: float, distance_m: float) -> float:
    """Pixels an object ``height_m`` tall spans at ``distance_m`` (pinhole, square pixels, small angle)."""
    return focal_px(hfov_deg, width_px) * height_m / max(distance_m, 1e-6)


def hfov_for_pixels(width_px: int, height_m: float, distance_m: float, floor_px: float) -> float:
    """The widest hfov (degrees) at which an object ``height_m`` tall at ``distance_m`` spans ``floor_px``."""
    focal = floor_px * distance_m / height_m
    return math.degrees(2.0 * math.atan((width_px / 2.0) / focal))


def object_heights(cov: CoverageConfig) -> dict[str, float]:
    """Class → object height (m), keyed by plain strings (zones name their classes as strings)."""
    return {str(k): float(v) for k, v in cov.object_height_m.items()}


def required_hfov_deg(zone: Zone, cov: CoverageConfig, floor: SizeFloor, distance_m: float) -> float:
    """The widest hfov at which every class the zone alerts on reaches its floor at ``distance_m``."""
    w = cov.image_wh_px[0]
    heights = object_heights(cov)
    return min(hfov_for_pixels(w, heights[c], distance_m, floor.of(c)) for c in zone.classes)


@dataclass
class Row:
    """One zone seen by one camera at one preset."""

    zone_id: str
    camera: str
    preset: str | None
    hfov_deg: float
    range_m: float  # horizontal, to the far end (p90) of the part in view (or of the zone)
    distance_m: float  # slant, the same point
    bearing_deg: float  # to the centre of the part in view (or of the zone)
    in_view_share: float  # of the zone's area, in this frame and range
    visible_share: float  # of the part in view, in line of sight
    watched_share: float  # of the zone's area, in view and visible
    px: dict[str, float]  # pixel height of each of the zone's classes at distance_m
    machine_px: float
    plume_px: float
    required_hfov_deg: float
    verdict: str  # watched | too small | occluded | not in view
    watched: NDArray[np.bool_] = field(repr=False, default_factory=lambda: np.zeros(0, bool))

    @property
    def verdict_text(self) -> str:
        if self.verdict == "too small":
            return f"too small (zoom to hfov ≤ {self.required_hfov_deg:.1f}°)"
        return self.verdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone_id,
            "camera": self.camera,
            "preset": self.preset,
            "hfov_deg": round(self.hfov_deg, 2),
            "range_m": round(self.range_m, 1),
            "distance_m": round(self.distance_m, 1),
            "bearing_deg": round(self.bearing_deg, 2),
            "in_view_share": round(self.in_view_share, 4),
            "visible_share": round(self.visible_share, 4),
            "watched_share": round(self.watched_share, 4),
            "px": {k: round(v, 1) for k, v in self.px.items()},
            "machine_3m_px": round(self.machine_px, 1),
            "plume_20m_px": round(self.plume_px, 1),
            "required_hfov_deg": round(self.required_hfov_deg, 2),
            "verdict": self.verdict_text,
        }


def _circular_mean_deg(deg: F64) -> float:
    r = np.radians(deg)
    return float(np.degrees(math.atan2(float(np.sin(r).mean()), float(np.cos(r).mean()))) % 360.0)


def zone_row(
    samples: ZoneSamples,
    model: CameraModel,
    tl: TowerLook,
    pose: Pose,
    cov: CoverageConfig,
    floor: SizeFloor,
) -> Row:
    """The row of one zone × camera × preset (see the module's docstring for each figure)."""
    zone = samples.zone
    wh = cov.image_wh_px
    view = in_frame(model, pose, wh, tl)
    seen = view & tl.visible
    area = samples.area_m2
    in_view_share = float(samples.weight_m2[view].sum() / area) if area > 0 else 0.0
    visible_share = float(samples.weight_m2[seen].sum() / samples.weight_m2[view].sum()) if view.any() else 0.0
    part = seen if seen.any() else (view if view.any() else np.ones(len(view), bool))
    distance = float(np.percentile(tl.slant_m[part], FAR_PERCENTILE))
    range_m = float(np.percentile(tl.range_m[part], FAR_PERCENTILE))
    bearing = _circular_mean_deg(tl.bearing_deg[part])
    heights = object_heights(cov)
    w = wh[0]
    px = {c: pixel_height(pose.hfov_deg, w, heights[c], distance) for c in zone.classes}
    need = required_hfov_deg(zone, cov, floor, distance)
    if not view.any():
        verdict = "not in view"
    elif visible_share < cov.min_visible_share:
        verdict = "occluded"
    elif any(px[c] < floor.of(c) for c in zone.classes):
        verdict = "too small"
    else:
        verdict = "watched"
    return Row(
        zone.id,
        model.camera_id,
        pose.preset,
        pose.hfov_deg,
        range_m,
        distance,
        bearing,
        in_view_share,
        visible_share,
        float(samples.weight_m2[seen].sum() / area) if area > 0 else 0.0,
        px,
        pixel_height(pose.hfov_deg, w, heights[MACHINE_CLASS], distance),
        pixel_height(pose.hfov_deg, w, heights[PLUME_CLASS], distance),
        need,
        verdict,
        watched=seen if verdict == "watched" else np.zeros(len(seen), bool),
    )


@dataclass
class ZoneCoverage:
    """A zone's rows and its verdict over all cameras and presets."""

    samples: ZoneSamples
    rows: list[Row]
    visible_any: NDArray[np.bool_]  # points in line of sight of some camera (in range)

    @property
    def zone(self) -> Zone:
        return self.samples.zone

    @property
    def best(self) -> Row | None:
        ranked = [r for r in self.rows if r.verdict != "not in view"]
        if not ranked:
            return None
        return max(ranked, key=lambda r: (VERDICT_RANK[r.verdict], r.watched_share, r.required_hfov_deg))

    @property
    def verdict(self) -> str:
        best = self.best
        return "not in any preset" if best is None else best.verdict_text

    @property
    def watched_mask(self) -> NDArray[np.bool_]:
        mask = np.zeros(len(self.samples.lat), bool)
        for r in self.rows:
            if r.verdict == "watched":
                mask |= r.watched
        return mask

    @property
    def watched_share(self) -> float:
        w = self.samples.weight_m2
        return float(w[self.watched_mask].sum() / w.sum()) if w.sum() > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "zone": self.zone.id,
            "name": self.zone.name,
            "kind": self.zone.kind,
            "classes": list(self.zone.classes),
            "area_m2": round(self.samples.area_m2, 1),
            "verdict": self.verdict,
            "best": None if best is None else {"camera": best.camera, "preset": best.preset},
            "watched_share": round(self.watched_share, 4),
            "rows": [r.as_dict() for r in self.rows],
        }


def cover_zones(
    zones: Sequence[Zone],
    cameras: Sequence[CameraConfig],
    models: dict[str, CameraModel],
    cov: CoverageConfig,
    floor: SizeFloor,
) -> list[ZoneCoverage]:
    """Every zone × camera × preset (see the module's docstring)."""
    out = []
    for zone in zones:
        samples = sample_zone(zone, cov.sample_step_m)
        rows: list[Row] = []
        visible_any = np.zeros(len(samples.lat), bool)
        for cam in cameras:
            model = models[cam.id]
            tl = look(model, samples.lat, samples.lon, cov.above_ground_m)
            visible_any |= tl.visible
            for pose in camera_poses(cam):
                rows.append(zone_row(samples, model, tl, pose, cov, floor))
        out.append(ZoneCoverage(samples, rows, visible_any))
    return out


@dataclass
class PresetZoom:
    """Zoom advice for one preset: the widest hfov that keeps its zones' targets above the floor."""

    camera: str
    preset: str | None
    hfov_deg: float  # as configured
    suggested_hfov_deg: float | None  # None: no zone in view that its terrain lets it watch
    zones: list[str]
    presets_needed: dict[str, int]  # zone → presets a tour needs at the suggested zoom to cover its visible part

    @property
    def too_wide(self) -> bool:
        return self.suggested_hfov_deg is not None and self.hfov_deg > self.suggested_hfov_deg + 1e-9

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "preset": self.preset,
            "hfov_deg": round(self.hfov_deg, 2),
            "suggested_hfov_deg": None if self.suggested_hfov_deg is None else round(self.suggested_hfov_deg, 2),
            "zones": self.zones,
            "presets_needed": self.presets_needed,
        }


def presets_needed(
    model: CameraModel, samples: ZoneSamples, hfov_deg: float, image_wh: tuple[int, int], above_ground_m: float
) -> int:
    """How many frames of ``hfov_deg`` a tour needs to span the zone's visible part (azimuth × elevation)."""
    tl = look(model, samples.lat, samples.lon, above_ground_m)
    part = tl.visible if tl.visible.any() else tl.in_range
    if not part.any():
        return 0
    centre = _circular_mean_deg(tl.bearing_deg[part])
    rel = (tl.bearing_deg[part] - centre + 180.0) % 360.0 - 180.0
    az_span = float(rel.max() - rel.min())
    el_span = float(tl.elevation_deg[part].max() - tl.elevation_deg[part].min())
    across = max(1, math.ceil(az_span / hfov_deg - 1e-9))
    down = max(1, math.ceil(el_span / vfov_deg(hfov_deg, image_wh) - 1e-9))
    return across * down


def preset_zoom(
    coverage: Sequence[ZoneCoverage], cameras: Sequence[CameraConfig], models: dict[str, CameraModel],
    cov: CoverageConfig,
) -> list[PresetZoom]:
    """Per camera and preset: the widest hfov keeping every zone it sees (unoccluded) above the floor."""
    out = []
    for cam in cameras:
        for pose in camera_poses(cam):
            rows = [
                (zc, r)
                for zc in coverage
                for r in zc.rows
                if r.camera == cam.id and r.preset == pose.preset and r.verdict in ("watched", "too small")
            ]
            if not rows:
                out.append(PresetZoom(cam.id, pose.preset, pose.hfov_deg, None, [], {}))
                continue
            hfov = min(r.required_hfov_deg for _, r in rows)
            needed = {
                zc.zone.id: presets_needed(models[cam.id], zc.samples, hfov, cov.image_wh_px, cov.above_ground_m)
                for zc, _ in rows
            }
            out.append(PresetZoom(cam.id, pose.preset, pose.hfov_deg, hfov, [zc.zone.id for zc, _ in rows], needed))
    return out

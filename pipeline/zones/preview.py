"""Pictures of zones: projected into a camera's frame, or on a map with the towers and their view sectors.

:func:`draw_zones_on_frame` clips each zone to the ground the camera can see (in front of it, within
``max_range_m``), densifies its outline, projects it with :meth:`CameraModel.project` and fills it with the
zone kind's colour at ``fill_alpha`` over the frame, outlined and labelled with the zone id.
:func:`draw_map` draws zones, towers and each pose's view sector (pan ± hfov/2 out to the range) in
east/north metres around the towers, north up, with a scale bar.

Labels use OpenCV's Hershey font, which has no Chinese glyphs: they show the zone id (ASCII by
convention) and kind, not the name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import shapely
import shapely.affinity
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from pipeline.config import CameraConfig
from pipeline.errors import UserError
from pipeline.geo.coords import LocalFrame
from pipeline.redact import redact_url
from pipeline.types import Pose
from pipeline.zones.model import Zone
from pipeline.zones.validate import DEFAULT_MAX_RANGE_M, camera_poses

#: BGR colour of each zone kind.
KIND_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "closed_mine": (40, 40, 230),
    "illegal_site": (0, 140, 255),
    "licensed_area": (60, 190, 40),
    "fire_watch": (200, 60, 200),
}
OTHER_COLOUR_BGR = (200, 200, 200)
#: opacity of zone fills. Too low: small far zones vanish; too high: the frame under them is hidden.
DEFAULT_FILL_ALPHA = 0.35
#: points closer than this to the tower are left out of the frame outline (the mast's foot).
NEAR_M = 5.0
#: a zone outline is densified to this step before projection (straight ground lines bend on a DEM).
DENSIFY_M = 10.0
#: half-width of the ground wedge clipped in front of the camera: hfov/2 plus this (degrees).
WEDGE_MARGIN_DEG = 20.0
_PX_LIMIT = 30_000  # projected coordinates are clamped to this, OpenCV's int drawing needs finite values
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colour_of(kind: str) -> tuple[int, int, int]:
    return KIND_COLOURS_BGR.get(kind, OTHER_COLOUR_BGR)


def _parts(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom] if not geom.is_empty else []
    if isinstance(geom, MultiPolygon):
        return [g for g in geom.geoms if not g.is_empty]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]


def zone_local(zone: Zone, frame: LocalFrame) -> BaseGeometry:
    """The zone in east/north metres of ``frame``."""

    def fwd(lonlat: NDArray[np.float64]) -> NDArray[np.float64]:
        east, north = frame.to_local_m(lonlat[:, 1], lonlat[:, 0])
        return np.stack([east, north], axis=1)

    return shapely.transform(zone.polygon, fwd)


def view_wedge(pan_deg: float, half_deg: float, near_m: float, far_m: float, steps: int = 64) -> Polygon:
    """The ground sector in east/north metres: azimuths pan ± half, from near to far."""
    az = np.radians(np.linspace(pan_deg - half_deg, pan_deg + half_deg, steps))
    far = np.stack([far_m * np.sin(az), far_m * np.cos(az)], axis=1)
    near = np.stack([near_m * np.sin(az[::-1]), near_m * np.cos(az[::-1])], axis=1)
    return Polygon(np.concatenate([far, near]))


def _label(image: NDArray[np.uint8], text: str, xy: tuple[int, int], colour: tuple[int, int, int]) -> None:
    scale = max(0.45, image.shape[1] / 2200)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    x = int(min(max(xy[0] - tw // 2, 2), image.shape[1] - tw - 2))
    y = int(min(max(xy[1], th + 4), image.shape[0] - base - 2))
    cv2.rectangle(image, (x - 3, y - th - 4), (x + tw + 3, y + base + 2), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), _FONT, scale, colour, thick, cv2.LINE_AA)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def project_zone(
    model: Any,
    cam: CameraConfig,
    pose: Pose,
    image_wh: tuple[int, int],
    zone: Zone,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
) -> list[NDArray[np.float64]]:
    """Pixel outlines (each (N, 2)) of the part of ``zone`` the camera can see, exterior rings and holes."""
    frame = LocalFrame(cam.lat, cam.lon)
    wedge = view_wedge(pose.pan_deg, min(89.0, pose.hfov_deg / 2 + WEDGE_MARGIN_DEG), NEAR_M, max_range_m)
    visible = zone_local(zone, frame).intersection(wedge)
    rings: list[NDArray[np.float64]] = []
    for part in _parts(visible):
        for ring in [part.exterior, *part.interiors]:
            dense = shapely.get_coordinates(shapely.segmentize(ring, DENSIFY_M))
            lat, lon = frame.to_wgs84(dense[:, 0], dense[:, 1])
            xy = np.asarray(model.project(pose, image_wh, lat, lon), dtype=np.float64)
            xy = xy[np.isfinite(xy).all(axis=1)]
            if len(xy) >= 3:
                rings.append(np.clip(xy, -_PX_LIMIT, _PX_LIMIT))
    return rings


def draw_zones_on_frame(
    image_bgr: NDArray[np.uint8],
    model: Any,
    cam: CameraConfig,
    pose: Pose,
    zones: Sequence[Zone],
    max_range_m: float = DEFAULT_MAX_RANGE_M,
    fill_alpha: float = DEFAULT_FILL_ALPHA,
) -> tuple[NDArray[np.uint8], list[str]]:
    """A copy of the frame with every visible zone filled, outlined and labelled; and the ids drawn."""
    h, w = image_bgr.shape[:2]
    out = image_bgr.copy()
    fill = image_bgr.copy()
    drawn: list[tuple[Zone, list[NDArray[np.int32]]]] = []
    for zone in zones:
        rings = project_zone(model, cam, pose, (w, h), zone, max_range_m)
        if not rings:
            continue
        pts = [np.round(r).astype(np.int32).reshape(-1, 1, 2) for r in rings]
        cv2.fillPoly(fill, pts, colour_of(zone.kind), lineType=cv2.LINE_8)
        drawn.append((zone, pts))
    if drawn:
        out = np.asarray(cv2.addWeighted(fill, fill_alpha, image_bgr, 1.0 - fill_alpha, 0.0), dtype=np.uint8)
    thick = max(2, w // 640)
    for zone, pts in drawn:
        cv2.polylines(out, pts, True, colour_of(zone.kind), thick, cv2.LINE_AA)
    for zone, pts in drawn:
        allpts = np.concatenate(pts).reshape(-1, 2)
        inside = allpts[(allpts[:, 0] >= 0) & (allpts[:, 0] < w) & (allpts[:, 1] >= 0) & (allpts[:, 1] < h)]
        anchor = (inside if len(inside) else np.clip(allpts, 0, [w - 1, h - 1])).mean(axis=0)
        _label(out, _ascii(f"{zone.id} ({zone.kind})"), (int(anchor[0]), int(anchor[1])), colour_of(zone.kind))
    caption = f"{cam.id}" + (f" preset {pose.preset}" if pose.preset else "")
    caption += f"  pan {pose.pan_deg:.1f} tilt {pose.tilt_deg:.1f} hfov {pose.hfov_deg:.1f}"
    _label(out, _ascii(caption), (w // 2, 30), (255, 255, 255))
    return out, [z.id for z, _ in drawn]


# --------------------------------------------------------------------------------------------- map


class MapCanvas:
    """East/north metres around an origin → pixels of a north-up image."""

    def __init__(self, origin: LocalFrame, bounds_m: tuple[float, float, float, float], size_px: int,
                 margin_px: int = 40) -> None:
        minx, miny, maxx, maxy = bounds_m
        span = max(maxx - minx, maxy - miny, 1.0)
        self.origin = origin
        self.scale = (size_px - 2 * margin_px) / span  # px per metre
        self.size = size_px
        self.cx = (minx + maxx) / 2
        self.cy = (miny + maxy) / 2

    def px(self, east_m: NDArray[np.float64], north_m: NDArray[np.float64]) -> NDArray[np.float64]:
        x = self.size / 2 + (east_m - self.cx) * self.scale
        y = self.size / 2 - (north_m - self.cy) * self.scale
        return np.stack([x, y], axis=-1)

    def lonlat_px(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.float64]:
        east, north = self.origin.to_local_m(np.asarray(lat, float), np.asarray(lon, float))
        return self.px(east, north)


def _poly_px(canvas: MapCanvas, geom: BaseGeometry) -> list[NDArray[np.int32]]:
    out = []
    for part in _parts(geom):
        for ring in [part.exterior, *part.interiors]:
            xy = shapely.get_coordinates(ring)
            out.append(np.round(canvas.px(xy[:, 0], xy[:, 1])).astype(np.int32).reshape(-1, 1, 2))
    return out


def map_bounds(
    zones: Sequence[Zone], cameras: Sequence[CameraConfig], origin: LocalFrame, max_range_m: float
) -> tuple[float, float, float, float]:
    geoms: list[BaseGeometry] = [zone_local(z, origin) for z in zones]
    for cam in cameras:
        e, n = origin.to_local_m(cam.lat, cam.lon)
        geoms.append(shapely.Point(e, n).buffer(50.0))
        for pose in camera_poses(cam):
            wedge = view_wedge(pose.pan_deg, pose.hfov_deg / 2, 0.0, max_range_m)
            geoms.append(shapely.affinity.translate(wedge, e, n))
    if not geoms:
        raise UserError("preview --map", None, "at least one zone or camera", "none")
    minx, miny, maxx, maxy = shapely.GeometryCollection(geoms).bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def draw_map(
    zones: Sequence[Zone],
    cameras: Sequence[CameraConfig],
    max_range_m: float = DEFAULT_MAX_RANGE_M,
    size_px: int = 1200,
    fill_alpha: float = DEFAULT_FILL_ALPHA,
) -> tuple[NDArray[np.uint8], MapCanvas]:
    """A north-up map: view sectors (grey), zones (kind colours), towers (black triangles), scale bar."""
    points = [(c.lat, c.lon) for c in cameras] or [
        (z.polygon.centroid.y, z.polygon.centroid.x) for z in zones
    ]
    if not points:
        raise UserError("preview --map", None, "at least one zone or camera", "none")
    origin = LocalFrame(float(np.mean([p[0] for p in points])), float(np.mean([p[1] for p in points])))
    canvas = MapCanvas(origin, map_bounds(zones, cameras, origin, max_range_m), size_px)
    image = np.full((size_px, size_px, 3), 255, np.uint8)
    sectors = image.copy()
    for cam in cameras:
        e, n = origin.to_local_m(cam.lat, cam.lon)
        for pose in camera_poses(cam):
            wedge = shapely.affinity.translate(view_wedge(pose.pan_deg, pose.hfov_deg / 2, 0.0, max_range_m), e, n)
            cv2.fillPoly(sectors, _poly_px(canvas, wedge), (215, 215, 215))
            cv2.polylines(sectors, _poly_px(canvas, wedge), True, (150, 150, 150), 1, cv2.LINE_AA)
    image = sectors
    fill = image.copy()
    for zone in zones:
        cv2.fillPoly(fill, _poly_px(canvas, zone_local(zone, origin)), colour_of(zone.kind))
    image = np.asarray(cv2.addWeighted(fill, fill_alpha, image, 1.0 - fill_alpha, 0.0), dtype=np.uint8)
    for zone in zones:
        cv2.polylines(image, _poly_px(canvas, zone_local(zone, origin)), True, colour_of(zone.kind), 2, cv2.LINE_AA)
    for zone in zones:
        c = zone_local(zone, origin).representative_point()
        px = canvas.px(np.array(c.x), np.array(c.y))
        _label(image, _ascii(zone.id), (int(px[0]), int(px[1])), colour_of(zone.kind))
    for cam in cameras:
        e, n = origin.to_local_m(cam.lat, cam.lon)
        x, y = canvas.px(np.array(e), np.array(n))
        tri = np.array([[x, y - 12], [x - 10, y + 8], [x + 10, y + 8]], np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(image, [tri], (0, 0, 0))
        _label(image, _ascii(cam.id), (int(x), int(y) + 30), (255, 255, 255))
    _scale_bar(image, canvas)
    _north_arrow(image)
    return image, canvas


def _scale_bar(image: NDArray[np.uint8], canvas: MapCanvas) -> None:
    target_m = (canvas.size * 0.25) / canvas.scale
    nice = 10 ** math.floor(math.log10(target_m))
    for mult in (5, 2, 1):
        if mult * nice <= target_m:
            nice *= mult
            break
    length_px = int(round(nice * canvas.scale))
    x0, y0 = 30, canvas.size - 30
    cv2.rectangle(image, (x0, y0 - 6), (x0 + length_px, y0), (0, 0, 0), -1)
    text = f"{nice / 1000:g} km" if nice >= 1000 else f"{nice:g} m"
    cv2.putText(image, text, (x0, y0 - 12), _FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)


def _north_arrow(image: NDArray[np.uint8]) -> None:
    x, y = image.shape[1] - 40, 70
    cv2.arrowedLine(image, (x, y), (x, y - 40), (0, 0, 0), 2, cv2.LINE_AA, tipLength=0.3)
    cv2.putText(image, "N", (x - 7, y + 22), _FONT, 0.7, (0, 0, 0), 2, cv2.LINE_AA)


# --------------------------------------------------------------------------------------------- frames

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def read_frame(path: Path, at_s: float = 0.0) -> NDArray[np.uint8]:
    """A still image, or the frame of a video at ``at_s`` seconds."""
    if not path.is_file():
        raise UserError(str(path), None, "an existing image or video file", "no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(str(path), None, "an image OpenCV can read", "unreadable")
        return np.asarray(image, dtype=np.uint8)
    return grab_frame(str(path), at_s, str(path))


def grab_frame(source: str, at_s: float = 0.0, label: str | None = None, timeout_s: float = 10.0) -> NDArray[np.uint8]:
    """One decoded frame from a video file or an RTSP stream (PyAV): the first at or after ``at_s``."""
    from pipeline.sources.video import decoded_frames, to_bgr

    label = label or redact_url(source)
    frames = decoded_frames(source, timeout_s, label)
    try:
        for frame in frames:
            t = float(frame.time) if frame.time is not None else 0.0
            if t + 1e-6 >= at_s:
                return to_bgr(frame)
    finally:
        frames.close()
    raise UserError(label, None, f"a frame at or after {at_s:g} s", "none (too short)")


def write_png(path: Path, image: NDArray[np.uint8]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise UserError(str(path), None, "a PNG OpenCV can encode", "encoding failed")
    path.write_bytes(data.tobytes())

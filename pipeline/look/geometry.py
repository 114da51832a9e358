"""Where a look points: centre a box with the camera model's own rays, and zoom so it is ``target_px`` tall."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pipeline.geo.camera import CameraModel
from pipeline.types import Pose


def look_pose(model: CameraModel, pose: Pose, image_wh: tuple[int, int], xyxy: Sequence[float],
              target_px: float, min_hfov_deg: float, preset: str | None = None) -> Pose:
    """The pose that puts the centre of box ``xyxy`` (seen at ``pose``) in the middle of the picture and
    makes the box about ``target_px`` tall, never narrower than ``min_hfov_deg`` nor wider than ``pose``.

    Pan and tilt are the azimuth and elevation of the ray through the box centre (so the same
    :meth:`CameraModel.rays` that locates fixes aims the look); the field of view comes from the angle the
    box spans between its top and bottom edges."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx = (x1 + x2) / 2.0
    dirs = model.rays(pose, image_wh, np.array([[cx, (y1 + y2) / 2.0], [cx, y1], [cx, y2]]))
    centre = dirs[0]
    pan = math.degrees(math.atan2(float(centre[0]), float(centre[1]))) % 360.0
    tilt = math.degrees(math.asin(max(-1.0, min(1.0, float(centre[2])))))
    span = math.acos(max(-1.0, min(1.0, float(np.dot(dirs[1], dirs[2])))))
    w = image_wh[0]
    hfov = pose.hfov_deg
    if span > 0:
        focal = target_px / (2.0 * math.tan(span / 2.0))  # pixels, so that the span covers target_px
        hfov = math.degrees(2.0 * math.atan((w / 2.0) / focal))
    hfov = min(max(hfov, min_hfov_deg), pose.hfov_deg)
    return Pose(pan, tilt, hfov, pose.roll_deg, preset)


def zoom_for_hfov(table: Sequence[tuple[float, float]], hfov_deg: float) -> float:
    """The PTZ zoom value giving ``hfov_deg``, from (zoom, hfov_deg) calibration pairs (the inverse of
    :func:`pipeline.geo.camera.hfov_for_zoom`: linear in focal length, clamped at the table's ends)."""
    if not table:
        raise ValueError("empty zoom -> hfov table")
    pairs = sorted(table, key=lambda p: 1.0 / math.tan(math.radians(p[1]) / 2.0))
    focal = np.array([1.0 / math.tan(math.radians(h) / 2.0) for _, h in pairs])
    zooms = np.array([z for z, _ in pairs])
    return float(np.interp(1.0 / math.tan(math.radians(hfov_deg) / 2.0), focal, zooms))

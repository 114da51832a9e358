"""Full-resolution tiles only where a key zone can be seen.

The zones are known on the ground (WGS84 polygons) and the camera's pose is known, so each zone's outline
is projected into the view (:meth:`pipeline.geo.camera.CameraModel.project_local`, over the terrain) and
rasterised into a coarse mask; a tile is run only if the mask, grown by a margin (pose error, and the
height of an object standing on the zone's far edge), touches it. Everything else of the frame is seen
only by the low-resolution pass of the whole frame.

A zone wholly behind the camera is out of view. A zone partly behind it (the tower stands in or next to
it) cannot be outlined by projection: then every tile is run (the safe side). Masks are cached per camera and pose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

#: the mask is rasterised at 1/MASK_SCALE of the frame (cheap; the margin absorbs the rounding)
MASK_SCALE = 8
#: outline points are inserted every this many metres along each zone edge (terrain follows)
DENSIFY_M = 20.0


def _densify(east: NDArray[np.float64], north: NDArray[np.float64], step_m: float) -> tuple[NDArray[np.float64],
                                                                                               NDArray[np.float64]]:
    xs: list[NDArray[np.float64]] = []
    ys: list[NDArray[np.float64]] = []
    for k in range(len(east) - 1):
        length = float(np.hypot(east[k + 1] - east[k], north[k + 1] - north[k]))
        n = max(1, int(np.ceil(length / step_m)))
        t = np.arange(n, dtype=np.float64) / n
        xs.append(east[k] + t * (east[k + 1] - east[k]))
        ys.append(north[k] + t * (north[k + 1] - north[k]))
    xs.append(east[-1:])
    ys.append(north[-1:])
    return np.concatenate(xs), np.concatenate(ys)


def zone_mask(model: Any, pose: Any, image_wh: tuple[int, int], zones: Sequence[Any], margin_px: int,
              scale: int = MASK_SCALE) -> NDArray[np.bool_]:
    """(H/scale, W/scale) mask of the view where a zone (grown by ``margin_px``) lies; all True when a zone
    cannot be outlined (partly behind the camera)."""
    w, h = image_wh
    mh, mw = (h + scale - 1) // scale, (w + scale - 1) // scale
    mask = np.zeros((mh, mw), np.uint8)
    for zone in zones:
        for ring in zone.outline_lonlat():
            lon, lat = np.asarray(ring, np.float64).T
            east, north = model.frame.to_local_m(lat, lon)
            east, north = _densify(np.asarray(east, np.float64), np.asarray(north, np.float64), DENSIFY_M)
            z = model.ground_height_m(east, north)
            xy = model.project_local(pose, image_wh, east, north, z)
            finite = np.isfinite(xy).all(axis=1)
            if not finite.any():
                continue  # wholly behind the camera (a half-space holds the whole ring): not in view
            if not finite.all():
                return np.ones((mh, mw), bool)  # partly behind the camera: run everything
            pts = np.round(xy / scale).astype(np.int32)
            # clip far-off points (a huge zone seen from close by) so fillPoly stays exact enough
            pts = np.clip(pts, -4 * max(mw, mh), 5 * max(mw, mh))
            cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1)
    if margin_px > 0 and mask.any():
        k = 2 * int(np.ceil(margin_px / scale)) + 1
        mask = np.asarray(cv2.dilate(mask, np.ones((k, k), np.uint8)), np.uint8)
    return mask.astype(bool)


def tiles_in_mask(tiles_xyxy: NDArray[np.int32], mask: NDArray[np.bool_], scale: int = MASK_SCALE) -> NDArray[np.bool_]:
    """Per tile: does it overlap the mask?"""
    out = np.zeros(len(tiles_xyxy), bool)
    for k, (x1, y1, x2, y2) in enumerate(tiles_xyxy):
        sub = mask[y1 // scale: (y2 + scale - 1) // scale, x1 // scale: (x2 + scale - 1) // scale]
        out[k] = bool(sub.any())
    return out


class ZoneTiler:
    """Which tiles of a camera's frames to run, from the zones and the frame's pose (cached per pose)."""

    def __init__(self, model: Any, zones: Sequence[Any], margin_px: int) -> None:
        self.model = model
        self.zones = list(zones)
        self.margin_px = margin_px
        self._cache: dict[tuple[Any, ...], NDArray[np.bool_]] = {}

    def active(self, pose: Any, image_wh: tuple[int, int], tiles_xyxy: NDArray[np.int32]) -> NDArray[np.bool_]:
        key = (round(pose.pan_deg, 2), round(pose.tilt_deg, 2), round(pose.hfov_deg, 3), round(pose.roll_deg, 2),
               image_wh, tiles_xyxy.tobytes())
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 256:
                self._cache.clear()
            mask = zone_mask(self.model, pose, image_wh, self.zones, self.margin_px)
            hit = tiles_in_mask(tiles_xyxy, mask)
            self._cache[key] = hit
        return hit

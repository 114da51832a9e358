"""The default inference path of a batch of frames: what the daemon's workers run, and what
``minewatch eval images --config`` runs, from one piece of code.

Per camera: the whole frame at the network's input size, plus, when the camera has ``tiling``, full-
resolution tiles (all of them, or with ``tiling.zones_only`` only those where a key zone lies in the view,
:mod:`pipeline.detect.zonetiles`). All crops of a batch go to the detector in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.config import CameraConfig, TilingConfig
from pipeline.detect.tiling import TileSelector, detect_frames
from pipeline.detect.zonetiles import ZoneTiler
from pipeline.types import Detections, Frame


class InferencePath:
    """Runs a batch of frames as configured per camera (see the module docstring)."""

    def __init__(self, cameras: Sequence[CameraConfig], iou_threshold: float, models: Mapping[str, Any],
                 zones: Sequence[Any]) -> None:
        """``models``: camera id → :class:`pipeline.geo.camera.CameraModel` (the analyzer's), for zone tiles."""
        self.tilings: dict[str, TilingConfig] = {
            cam.id: cam.tiling for cam in cameras if cam.enabled and cam.tiling is not None}
        self.iou_threshold = iou_threshold
        self.models = dict(models)
        self.tilers: dict[str, ZoneTiler] = {}
        self.set_zones(zones)

    def set_zones(self, zones: Sequence[Any]) -> None:
        """New zones (SIGHUP): the tile choice follows them."""
        self.tilers = {cam_id: ZoneTiler(self.models[cam_id], zones, t.zone_margin_px)
                       for cam_id, t in self.tilings.items() if t.zones_only and cam_id in self.models}

    def selector(self, frame: Frame) -> TileSelector | None:
        tiler = self.tilers.get(frame.camera_id)
        if tiler is None:
            return None
        pose, wh = frame.pose, frame.wh

        def choose(grid: NDArray[np.int32]) -> NDArray[np.bool_]:
            return tiler.active(pose, wh, grid)

        return choose

    def run(self, detector: Any, frames: Sequence[Frame], score_floor: float | None = None) -> list[Detections]:
        tilings = [self.tilings.get(f.camera_id) for f in frames]
        if any(t is not None for t in tilings):
            images = [f.image_bgr for f in frames]  # tiles are cut from the full image
            select = [self.selector(f) for f in frames]
            return detect_frames(detector, images, tilings, self.iou_threshold, select)
        # each picture is scaled to the network input straight from YUV, here on the worker
        out: list[Detections] = detector.detect_frames(list(frames), score_floor=score_floor)
        return out

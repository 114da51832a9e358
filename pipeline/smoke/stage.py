"""What the :class:`~pipeline.analyzer.Analyzer` runs per camera: the smoke watcher and its own tracker.

The watcher's plumes are already confirmed over real time (``smoke.confirm_*``), so their tracker confirms
at the first sighting (1 of 1): the detector's N-of-M frames (``alerts.confirm_hits``) would add minutes
where frames come a minute apart. Track ids come from the camera's main tracker (one id space per camera),
so the event lifecycle can tell its tracks apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.config import Config, DetectorConfig, PoseSigma
from pipeline.smoke.watcher import SMOKE_ID, SmokeWatcher, plumes_to_detections
from pipeline.track import PresetTrackers, Track
from pipeline.types import Detections, Frame


def crop_around(image_bgr: NDArray[np.uint8], xyxy: tuple[float, float, float, float],
                context: float = 3.0, min_px: int = 96) -> NDArray[np.uint8]:
    """A square crop of ``image_bgr`` centred on the box, ``context`` times its longer side (at least
    ``min_px``), clipped to the image: what the network sees of a plume and its surroundings."""
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = xyxy
    side = max(min_px, context * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    return np.ascontiguousarray(image_bgr[b:max(d, b + 1), a:max(c, a + 1)])


class NetworkCheck:
    """The detector network's best smoke score on a crop around a plume (a session of its own, made on
    first use)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self._detector: Any = None

    def __call__(self, image_bgr: NDArray[np.uint8], xyxy: tuple[float, float, float, float]) -> float:
        if self._detector is None:
            from pipeline.detect.onnx_detector import OnnxDetector

            self._detector = OnnxDetector(self.cfg, intra_op_threads=1, announce=False)
        dets: Detections = self._detector.detect([crop_around(image_bgr, xyxy)], score_floor=0.01)[0]
        smoke = dets.score[dets.class_id == SMOKE_ID]
        return float(smoke.max()) if len(smoke) else 0.0


class SmokeStage:
    def __init__(self, config: Config, main: PresetTrackers) -> None:
        check = NetworkCheck(config.detector) if config.smoke.network_min_score > 0 else None
        self.watcher = SmokeWatcher(config.smoke, check)
        self.trackers = PresetTrackers(config.zones.track, 1, 1, ids=main.ids)

    def base_sigma(self, wh: tuple[int, int], sigma: PoseSigma) -> PoseSigma:
        """The camera's pose σ with the base's pixel σ at least one tile of the smoke grid (in pixels of the
        frame): a plume's base is found to a tile, and its foot may hide behind the terrain in front."""
        small_w = self.watcher.small_wh(wh)[0]
        tile_px = self.watcher.cfg.tile_px * wh[0] / max(1, small_w)
        return sigma.model_copy(update={"pixel_px": min(100.0, max(sigma.pixel_px, tile_px))})

    def update(self, frame: Frame) -> tuple[Detections, list[Track]]:
        """One frame → the confirmed plumes (class ``smoke``, bottom = base) and their tracks."""
        dets = plumes_to_detections(self.watcher.observe(frame))
        return dets, self.trackers.update(frame.pose.preset, dets, frame.t_capture)

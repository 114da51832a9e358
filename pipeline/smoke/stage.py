"""What the :class:`~pipeline.analyzer.Analyzer` runs per camera: the smoke watcher and its own tracker.

The watcher's plumes are already confirmed over real time (``smoke.confirm_*``), so their tracker confirms
at the first sighting (1 of 1): the detector's N-of-M frames (``alerts.confirm_hits``) would add minutes
where frames come a minute apart. Track ids come from the camera's main tracker (one id space per camera),
so the event lifecycle can tell its tracks apart.
"""

from __future__ import annotations

from pipeline.config import Config, PoseSigma
from pipeline.smoke.watcher import SmokeWatcher, plumes_to_detections
from pipeline.track import PresetTrackers, Track
from pipeline.types import Detections, Frame


class SmokeStage:
    def __init__(self, config: Config, main: PresetTrackers) -> None:
        self.watcher = SmokeWatcher(config.smoke)
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

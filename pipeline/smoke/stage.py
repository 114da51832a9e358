"""What the :class:`~pipeline.analyzer.Analyzer` runs per camera: the smoke watcher and its own tracker.

The watcher's plumes are already confirmed over real time (``smoke.confirm_*``), so their tracker confirms
at the first sighting (1 of 1): the detector's N-of-M frames (``alerts.confirm_hits``) would add minutes
where frames come a minute apart. Track ids come from the camera's main tracker (one id space per camera),
so the event lifecycle can tell its tracks apart.
"""

from __future__ import annotations

from pipeline.config import Config
from pipeline.smoke.watcher import SmokeWatcher, plumes_to_detections
from pipeline.track import PresetTrackers, Track
from pipeline.types import Detections, Frame


class SmokeStage:
    def __init__(self, config: Config, main: PresetTrackers) -> None:
        self.watcher = SmokeWatcher(config.smoke)
        self.trackers = PresetTrackers(config.zones.track, 1, 1, ids=main.ids)

    def update(self, frame: Frame) -> tuple[Detections, list[Track]]:
        """One frame → the confirmed plumes (class ``smoke``, bottom = base) and their tracks."""
        dets = plumes_to_detections(self.watcher.observe(frame))
        return dets, self.trackers.update(frame.pose.preset, dets, frame.t_capture)

"""The per-frame chain after detection: tracks → ground fixes → rule hits → event lifecycle.

One :class:`Analyzer` serves all cameras of a box and is driven from ONE thread (the daemon's analysis
loop, or the offline evaluation): per-camera state (tracker, zone hysteresis, open events) lives in a
:class:`CameraState` and is never touched from anywhere else, so no locks are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.config import CameraConfig, Config, PoseSigma
from pipeline.events.lifecycle import EventManager
from pipeline.geo.camera import CameraModel
from pipeline.geo.fusion import FusionBuffer, View, chi2_2d_quantile
from pipeline.geo.terrain import Terrain
from pipeline.logs import get_logger
from pipeline.smoke.stage import SmokeStage
from pipeline.track import PresetTrackers, per_track
from pipeline.types import AlertEvent, Detections, Frame, GroundFix
from pipeline.zones.model import Zone


@dataclass
class CameraState:
    camera: CameraConfig
    model: CameraModel
    trackers: PresetTrackers  # one tracker per preset
    events: EventManager
    smoke: SmokeStage | None = None  # tower smoke from the view's own history (pipeline/smoke/)
    frames: int = 0
    detections: int = 0


class Analyzer:
    """Turns (frame, detections) into alert events, per camera, with the daemon's exact code path."""

    def __init__(self, config: Config, zones: Sequence[Zone], terrain: Terrain | None = None) -> None:
        self.config = config
        # one ground model for all cameras (reads the DEM once); config.terrain unless the caller gives one
        self.terrain: Terrain = terrain if terrain is not None else Terrain.from_config(config.terrain)
        self.zones: list[Zone] = list(zones)
        self._log = get_logger("analyzer")
        fusion = config.fusion
        enabled = sum(1 for c in config.cameras if c.enabled)
        #: sightings of all cameras, to fuse two towers' bearings into one smaller ellipse
        self.fusion = (FusionBuffer(window_s=fusion.window_s, min_crossing_deg=fusion.min_crossing_deg,
                                    gate_chi2=chi2_2d_quantile(fusion.gate_quantile))
                       if fusion.enabled and enabled > 1 else None)
        self.cameras: dict[str, CameraState] = {}
        for cam in config.cameras:
            if cam.enabled:
                self.cameras[cam.id] = self._camera_state(cam)

    def _camera_state(self, cam: CameraConfig) -> CameraState:
        model = CameraModel.from_config(cam, self.terrain)
        alerts = self.config.alerts
        trackers = PresetTrackers(self.config.zones.track, alerts.confirm_hits, alerts.confirm_window)
        events = EventManager(cam, self.zones, alerts, self.config.zones)
        smoke = SmokeStage(self.config, trackers) if self.config.smoke.enabled else None
        return CameraState(cam, model, trackers, events, smoke)

    def reload_zones(self, zones: Sequence[Zone]) -> None:
        """New zones and rules for every camera (SIGHUP). Open events end under the old zones' ids."""
        self.zones = list(zones)
        for state in self.cameras.values():
            state.events.set_zones(self.zones)

    def locate(self, frame: Frame, dets: Detections, sigma: PoseSigma | None = None) -> list[GroundFix | None]:
        """Ground fixes of the boxes' bottom centres (``sigma``: the camera's pose_sigma unless given)."""
        state = self.cameras[frame.camera_id]
        if len(dets) == 0:
            return []
        fixes = state.model.locate(frame.pose, frame.wh, dets.bottom_centre_xy(), sigma or state.camera.pose_sigma)
        if self.fusion is None:
            return fixes
        view = View(frame.pose.pan_deg, frame.pose.hfov_deg)
        names = dets.class_names()
        return [None if fix is None else
                self.fusion.add_and_fuse(frame.camera_id, names[i], frame.t_capture, fix, view=view,
                                         key=(names[i], round(fix.bearing_deg * 2)))  # latest per ½° of bearing
                for i, fix in enumerate(fixes)]

    def process(self, frame: Frame, dets: Detections) -> list[AlertEvent]:
        """One analysed frame of one camera → the events it causes (new/update/end)."""
        state = self.cameras[frame.camera_id]
        state.frames += 1
        state.detections += len(dets)
        t = frame.t_capture
        tracks = state.trackers.update(frame.pose.preset, dets, t)
        fixes = per_track(tracks, self.locate(frame, dets))
        if state.smoke is not None:
            plumes, plume_tracks = state.smoke.update(frame)
            tracks = tracks + plume_tracks
            # ground point: the plume's base, known to about a tile of the smoke grid (a wider ellipse)
            sigma = state.smoke.base_sigma(frame.wh, state.camera.pose_sigma)
            fixes += per_track(plume_tracks, self.locate(frame, plumes, sigma))
        hits = state.events.sightings(frame, tracks, fixes, t)
        events = state.events.update(frame, hits, t)
        for event in events:
            self._add_zone_outline(state, frame, event)
        return events

    def tick(self, now_s: float) -> list[AlertEvent]:
        """Events that end by time alone: unseen for ``zones.max_unseen_s`` whatever the camera did.

        (``end_after_s`` counts only time in which a frame could see the site, so it is checked in
        :meth:`process`; a camera that is offline keeps its events open until ``max_unseen_s``.)"""
        ended: list[AlertEvent] = []
        for state in self.cameras.values():
            ended.extend(state.events.tick(now_s))
        return ended

    def finish(self, now_s: float, reason: str = "footage_ended") -> list[AlertEvent]:
        """End every open event (the end of recorded footage; ``stopped`` on a clean stop)."""
        ended: list[AlertEvent] = []
        for state in self.cameras.values():
            ended.extend(state.events.close_all(now_s, reason))
        return ended

    def restore(self, events: Sequence[AlertEvent]) -> list[AlertEvent]:
        """Open again the events the last run left open; returns the ``end`` of those that cannot continue
        (camera or zone gone). The others end as usual when their camera looks and does not see them."""
        from pipeline.events.persist import ended

        out: list[AlertEvent] = []
        for event in events:
            state = self.cameras.get(event.camera_id)
            if state is None:
                out.append(ended(event, "camera_removed"))
                continue
            end = state.events.restore(event)
            if end is not None:
                out.append(end)
        return out

    def _add_zone_outline(self, state: CameraState, frame: Frame, event: AlertEvent) -> None:
        """Project the event's zone into its snapshot frame, for the overlay."""
        if event.zone is None or event.frame is None or event.zone_outline_xy is not None:
            return
        zone = next((z for z in self.zones if z.id == event.zone.id), None)
        if zone is None:
            return
        outlines = []
        for ring in zone.outline_lonlat():
            lon, lat = np.asarray(ring, dtype=np.float64).T
            xy = state.model.project(frame.pose, frame.wh, lat, lon)
            if np.isfinite(xy).all():
                outlines.append(xy.astype(np.float32))
        if outlines:
            event.zone_outline_xy = outlines

"""Look closer: pick an uncertain candidate in a zone, send the patrol for one zoomed look, judge it.

Runs on the daemon's analysis thread, once per analysed frame of a patrolling camera (after the analyzer,
before the frame's events are sent):

* at a tour preset, a detection of a class a zone triggers is a *candidate* when it scores between
  ``look_score`` and its class's alert threshold (or, with ``small_box_px``, above the threshold but in a
  box lower than that) and its ground fix lies in such a zone (the rule engine's own test);
* no look while an alert of this camera is open, within ``cooldown_s`` of a look at the same place, or
  beyond ``max_per_tour`` looks in this tour (the controller refuses);
* the look's pose centres the candidate and zooms so that it becomes ``target_box_px`` tall
  (:func:`pipeline.look.geometry.look_pose`); frames at the look carry the preset name ``~look`` and go
  through the normal analysis (their own tracker, the same rules and confirmation);
* the look is *confirmed* when one of its frames opens (or updates) an alert of the candidate's class: that
  alert carries ``extra["look"]`` (look id, the wide preset, score, box and field of view, the look's field
  of view; sent in the MQTT message) and the wide picture (``extra["look_wide_bgr"]``, which the sink takes
  out), and its snapshot shows the zoomed view beside the wide one; it is *rejected* after ``frames`` look frames
  (at least ``alerts.confirm_hits``) without one. Either way the controller returns to its tour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.config import CameraConfig, LookConfig
from pipeline.geo.camera import CameraModel
from pipeline.logs import get_logger
from pipeline.look.geometry import look_pose, zoom_for_hfov
from pipeline.sources.patrol import LOOK_PRESET, LookRequest, PatrolController
from pipeline.types import AlertEvent, Detections, Frame


@dataclass
class Candidate:
    index: int  # into the frame's detections
    class_name: str
    score: float
    xyxy: tuple[float, float, float, float]
    zone_id: str
    site_en_m: tuple[float, float] | None
    bearing_deg: float


@dataclass
class ActiveLook:
    look_id: int
    candidate: Candidate
    wide_frame: Frame
    wide_bgr: Any
    frames: int = 0


def _bearing_diff(a: float, b: float) -> float:
    d = (a - b) % 360.0
    return min(d, 360.0 - d)


class LookCloser:
    """One patrolling camera's look-closer decisions (see the module docstring)."""

    def __init__(self, cam: CameraConfig, cfg: LookConfig, pointing: PatrolController, model: CameraModel,
                 threshold_of: Callable[[str], float], confirm_hits: int = 1) -> None:
        self.cam = cam
        self.cfg = cfg
        self.pointing = pointing
        self.model = model
        self.threshold_of = threshold_of
        self.frames_needed = max(cfg.frames, confirm_hits)
        # never tighter than the lens: the narrowest field of view of its zoom table, when it has one
        self.min_hfov_deg = max([cfg.min_hfov_deg] + ([min(h for _, h in cam.zoom_hfov)] if cam.zoom_hfov else []))
        self.log = get_logger("look", cam.id)
        self.active: ActiveLook | None = None
        self._next_id = 1
        self._recent: list[tuple[float, tuple[float, float] | None, float]] = []  # (t, site, bearing)
        for key in ("candidates", "skipped_cooldown", "skipped_alert_open"):
            pointing.look_counts.setdefault(key, 0)

    # ------------------------------------------------------------------------------------------------
    def observe(self, frame: Frame, dets: Detections, emitted: Sequence[AlertEvent], open_alerts: int,
                rules: Any) -> None:
        """One analysed frame: ``dets`` with the low scores kept, ``emitted`` the events the analyzer made of
        it (this may add the wide view to them), ``open_alerts`` this camera's open events, ``rules`` its
        rule engine (``evaluate`` and ``index.to_local_m``)."""
        if frame.pose.preset == LOOK_PRESET:
            self._judge(frame, emitted)
            return
        if self.active is not None:
            if self.pointing.active_look == self.active.look_id:
                return  # frames of the tour preset still in flight after the look began
            self.active = None  # it ended without our decision (timed out, move failed)
        cands = self.candidates(frame, dets, rules)
        if not cands:
            return
        counts = self.pointing.look_counts
        counts["candidates"] += 1
        if open_alerts > 0:
            counts["skipped_alert_open"] += 1
            return
        t = frame.t_capture
        self._recent = [r for r in self._recent if t - r[0] < self.cfg.cooldown_s]
        fresh = [c for c in cands if not self._cooling(c)]
        if not fresh:
            counts["skipped_cooldown"] += 1
            return
        best = max(fresh, key=lambda c: c.score)
        self._request(frame, best)

    def candidates(self, frame: Frame, dets: Detections, rules: Any) -> list[Candidate]:
        """Detections worth a look: uncertain (or small) and located in a zone their class triggers."""
        if len(dets) == 0:
            return []
        names = dets.class_names()
        heights = dets.xyxy[:, 3] - dets.xyxy[:, 1]
        keep = []
        for i, name in enumerate(names):
            score, threshold = float(dets.score[i]), self.threshold_of(name)
            low = self.cfg.look_score <= score < threshold
            small = score >= threshold and float(heights[i]) < self.cfg.small_box_px
            if low or small:
                keep.append(i)
        if not keep:
            return []
        sub = dets.subset(np.array(keep, dtype=np.intp))
        fixes = self.model.locate(frame.pose, frame.wh, sub.bottom_centre_xy(), self.cam.pose_sigma)
        out: list[Candidate] = []
        for j, i in enumerate(keep):
            fix = fixes[j]
            if fix is None:
                continue
            site = rules.index.to_local_m(fix.lat, fix.lon)
            site_en = (float(site[0]), float(site[1]))
            hits = rules.evaluate(names[i], site_en, fix.cov_en_m2, fix.bearing_deg, frame.t_capture)
            zone = next((h.zone for h in hits if h.zone is not None), None)
            if zone is None:
                continue
            x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
            out.append(Candidate(i, names[i], float(dets.score[i]), (x1, y1, x2, y2), zone.id, site_en,
                                 fix.bearing_deg))
        return out

    # ------------------------------------------------------------------------------------------------
    def _cooling(self, c: Candidate) -> bool:
        for _, site, bearing in self._recent:
            if site is not None and c.site_en_m is not None:
                if math.dist(site, c.site_en_m) <= self.cfg.cooldown_radius_m:
                    return True
            elif _bearing_diff(bearing, c.bearing_deg) <= self.cfg.cooldown_deg:
                return True
        return False

    def _request(self, frame: Frame, c: Candidate) -> None:
        pose = look_pose(self.model, frame.pose, frame.wh, c.xyxy, self.cfg.target_box_px, self.min_hfov_deg,
                         LOOK_PRESET)
        zoom = zoom_for_hfov(self.cam.zoom_hfov, pose.hfov_deg) if self.cam.zoom_hfov else None
        look_id = self._next_id
        height_px = c.xyxy[3] - c.xyxy[1]
        reason = (f"{c.class_name} {c.score:.2f}, {height_px:.0f} px at preset {frame.pose.preset}, zone {c.zone_id}")
        req = LookRequest(look_id, pose.pan_deg, pose.tilt_deg, pose.hfov_deg, zoom, self.cfg.settle_s,
                          self.cfg.max_dwell_s, reason)
        why = self.pointing.request_look(req)
        if why is not None:
            self.log.debug("look at %s not taken: %s", reason, why)
            return
        self._next_id += 1
        self._recent.append((frame.t_capture, c.site_en_m, c.bearing_deg))
        self.active = ActiveLook(look_id, c, frame, frame.image_bgr.copy())
        self.log.info("look %d asked: %s -> hfov %.2f° (from %.2f°)", look_id, reason, pose.hfov_deg,
                      frame.pose.hfov_deg)

    def _judge(self, frame: Frame, emitted: Sequence[AlertEvent]) -> None:
        look = self.active
        if look is None or self.pointing.active_look != look.look_id:
            return
        look.frames += 1
        for event in emitted:
            if event.type in ("new", "update") and event.class_name == look.candidate.class_name \
                    and event.preset == LOOK_PRESET:
                event.extra["look_wide_bgr"] = look.wide_bgr  # for the snapshot only (the sink takes it out)
                event.extra["look"] = {"look_id": look.look_id, "wide_preset": look.wide_frame.pose.preset,
                                       "wide_score": round(look.candidate.score, 3),
                                       "wide_xyxy": [round(v, 1) for v in look.candidate.xyxy],
                                       "wide_hfov_deg": round(look.wide_frame.pose.hfov_deg, 3),
                                       "look_hfov_deg": round(frame.pose.hfov_deg, 3)}
                self.pointing.end_look(look.look_id, "confirmed")
                self.log.info("look %d confirmed: alert %s (%s %.2f) after %d frame(s)", look.look_id,
                              event.alert_id, event.class_name, event.score, look.frames)
                self.active = None
                return
        if look.frames >= self.frames_needed:
            self.pointing.end_look(look.look_id, "rejected")
            self.log.info("look %d rejected: no alert in %d frame(s) (%s %.2f in zone %s at the wide view)",
                          look.look_id, look.frames, look.candidate.class_name, look.candidate.score,
                          look.candidate.zone_id)
            self.active = None

"""Alert events of one camera: ``new`` when a confirmed track has met a rule for the zone's dwell time,
``update`` while it lasts, ``end`` when it is gone.

One event per site: (rule, zone, class) and a place. A sighting continues an open event when it comes from
one of the event's tracks, or lies within ``revisit_match_m`` (plus both 90 % ellipses) of the event's
position (within ``revisit_match_deg`` of its bearing when there is no ground fix). So a parked excavator
seen again on the next patrol cycle (a new track of the same preset, or of another preset) continues its
event, and a flickering detection neither ends it nor raises a second one.

Ending counts only time in which the camera could see the site: the current frame has the event's preset,
or (another preset) the site's bearing and elevation angle fall inside the frame's field of view. A patrol
that looks elsewhere for minutes does not end the event; ``max_unseen_s`` ends it after a long absence
whatever the camera did (:meth:`EventManager.tick`).

The caller (:class:`~pipeline.analyzer.Analyzer`) runs the camera's per-preset trackers and locates the
detections; :meth:`EventManager.sightings` turns the tracks and their fixes into rule hits, and
:meth:`EventManager.update` runs the events' lifecycle on them.

``alert_id`` is made once per event: ``<camera>-<UTC yyyymmddTHHMMSSZ of the first sighting>-<6 hex>``.
``AlertEvent.zone_outline_xy`` is left for the caller (it projects the zone with the camera model).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pipeline.config import AlertsConfig, CameraConfig, ZonesConfig
from pipeline.events.rules import RuleEngine, RuleHit
from pipeline.geo.angles import abs_angle_diff_deg
from pipeline.geo.camera import box_bearing_deg, in_vertical_view
from pipeline.logs import get_logger
from pipeline.track import Track
from pipeline.types import AlertEvent, EventType, Frame, GroundFix, RuleName
from pipeline.zones.model import Zone, zone_to_ref


def make_alert_id(camera_id: str, t_utc_s: float) -> str:
    stamp = datetime.fromtimestamp(t_utc_s, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{camera_id}-{stamp}-{secrets.token_hex(3)}"


@dataclass
class Sighting:
    """One confirmed track meeting one rule in one frame."""

    track: Track
    hit: RuleHit
    fix: GroundFix | None  # smoothed position, the fix's ellipse
    site_en_m: tuple[float, float] | None
    bearing_deg: float
    image_wh: tuple[int, int]  # of the frame it was seen in


@dataclass
class OpenEvent:
    alert_id: str
    class_name: str
    rule: RuleName
    zone: Zone | None
    t_first: float
    t_last: float
    score: float
    xyxy: tuple[float, float, float, float]
    preset: str | None
    track_id: int
    bearing_deg: float
    image_wh: tuple[int, int]  # of the frame xyxy was seen in
    fix: GroundFix | None = None
    site_en_m: tuple[float, float] | None = None
    probability: float | None = None
    distance_to_boundary_m: float | None = None
    track_ids: set[int] = field(default_factory=set)
    unseen_visible_s: float = 0.0
    last_emit_t: float = 0.0
    last_emit_score: float = 0.0
    last_emit_en_m: tuple[float, float] | None = None
    messages: int = 0
    restored: bool = False  # open when the daemon last stopped without ending it (pipeline/events/persist.py)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return self.rule, self.zone.id if self.zone is not None else None, self.class_name


@dataclass
class _Pending:
    """A (track, rule, zone) that has met the rule but not yet for the zone's dwell time.

    Like an event, it is forgotten only after ``end_after_s`` in which its preset looked without seeing it
    meet the rule: dwell time runs on while a patrol looks elsewhere.
    """

    t_first: float
    t_last: float
    preset: str | None
    unseen_s: float = 0.0


class EventManager:
    """Turns one camera's tracks (and their ground fixes) into rule hits, and those into alert events.

    Lives on the one analysis thread; holds the rules of the camera's zones (in local metres around the
    tower) and its open events. The caller runs the camera's trackers.
    """

    def __init__(
        self,
        camera: CameraConfig,
        zones: Sequence[Zone],
        alerts_cfg: AlertsConfig | None = None,
        rules_cfg: ZonesConfig | None = None,
        sees: Callable[[Frame, GroundFix], bool] | None = None,
    ) -> None:
        self.camera = camera
        self.alerts_cfg = alerts_cfg or AlertsConfig.model_validate({})
        self.cfg = rules_cfg or ZonesConfig.model_validate({})
        self.rules = RuleEngine(zones, camera.lat, camera.lon, self.cfg)
        self.events: list[OpenEvent] = []
        self._pending: dict[tuple[int, str, str | None], _Pending] = {}
        self._last_t: float | None = None
        self._log = get_logger("events", camera.id)
        # A gap between analysed frames longer than this is not counted as "looked but did not see" time:
        # the camera stalled or the box was busy, it did not look.
        self.max_frame_gap_s = max(3.0 / camera.analysis_fps, 1.0)
        #: Optional exact view test for a located site in another preset's frame (e.g. the camera model's
        #: ``project`` landing inside the image); None uses bearing and elevation angle against the pose's fov.
        self.sees = sees

    # ------------------------------------------------------------------------------------------- public

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """New zones (reload). Open events keep running and end as usual; their zone ids stay."""
        self.rules = RuleEngine(zones, self.camera.lat, self.camera.lon, self.cfg)
        self._pending.clear()

    def sightings(
        self,
        frame: Frame,
        tracks: Sequence[Track],
        fixes: Sequence[GroundFix | None],
        now_s: float | None = None,
    ) -> list[list[Sighting]]:
        """The rule hits of one frame's tracks: per track seen in this frame, its sightings (zone hits first,
        ``fire_in_view`` last). ``fixes`` align with ``tracks`` (:func:`pipeline.track.per_track`)."""
        t = frame.t_capture if now_s is None else now_s
        return [
            self._sightings(frame, track, fixes[i] if i < len(fixes) else None, t)
            for i, track in enumerate(tracks)
            if track.seen
        ]

    def update(
        self, frame: Frame, sightings: Sequence[Sequence[Sighting]], now_s: float | None = None
    ) -> list[AlertEvent]:
        """One analysed frame's sightings (:meth:`sightings`) → the events they cause (the lifecycle)."""
        t = frame.t_capture if now_s is None else now_s
        dt = 0.0 if self._last_t is None else min(max(t - self._last_t, 0.0), self.max_frame_gap_s)
        self._last_t = t

        out: list[AlertEvent] = []
        best: dict[int, Sighting] = {}  # id(event) → best sighting this frame
        for track_sightings in sightings:
            in_fire_watch = False
            for sighting in track_sightings:  # zone hits first, fire_in_view last
                track = sighting.track
                if sighting.hit.zone is None and in_fire_watch:
                    continue  # the fire is a fire_watch event's already (its probability dipped): not twice
                # only confirmed tracks touch events: a one-frame false detection near a site neither keeps
                # its event alive nor opens one (unconfirmed tracks still start their dwell time)
                event = self._match(sighting) if track.confirmed else None
                if event is not None:
                    in_fire_watch = in_fire_watch or event.rule == "fire_watch"
                    prev = best.get(id(event))
                    if prev is None or sighting.track.score > prev.track.score:
                        best[id(event)] = sighting
                    continue
                if not self._ready(sighting, t):
                    continue
                event = self._open(sighting, t)
                in_fire_watch = in_fire_watch or event.rule == "fire_watch"
                out.append(self._message("new", event, frame, t))
                best.pop(id(event), None)
        for event in self.events:
            seen = best.get(id(event))
            if seen is not None:
                if self._sight(event, seen, t):
                    out.append(self._message("update", event, frame, t))
            elif event.messages and event.t_last < t and self._can_see(event, frame):
                event.unseen_visible_s += dt
        out.extend(self._end_due(t))
        self._forget_pending(frame, t, dt)
        return out

    def tick(self, now_s: float) -> list[AlertEvent]:
        """Events that end by time alone: nothing seen for ``max_unseen_s``, whatever the camera did."""
        return self._end_due(now_s)

    def close_all(self, now_s: float, reason: str = "footage_ended") -> list[AlertEvent]:
        """End every open event (the end of recorded footage, a clean stop: ``extra.end_reason``)."""
        ended = [self._message("end", event, None, now_s, reason) for event in self.events]
        self.events = []
        return ended

    def restore(self, event: AlertEvent) -> AlertEvent | None:
        """Open again an event the last run left open (:mod:`pipeline.events.persist`); a sighting of its site
        continues it under its ``alert_id``. Returns its ``end`` instead when its zone is gone."""
        zone = None
        if event.zone is not None:
            zone = next((z for z in self.rules.index.zones if z.id == event.zone.id), None)
            if zone is None:
                from pipeline.events.persist import ended

                return ended(event, "zone_removed")
        site = None if event.fix is None else self.rules.index.to_local_m(event.fix.lat, event.fix.lon)
        bearing = event.fix.bearing_deg if event.fix is not None else (event.bearing_deg or 0.0)
        self.events.append(OpenEvent(
            alert_id=event.alert_id, class_name=event.class_name, rule=event.rule, zone=zone,
            t_first=event.t_first, t_last=event.t_last, score=event.score, xyxy=event.xyxy, preset=event.preset,
            track_id=event.track_id or 0, bearing_deg=bearing, fix=event.fix, site_en_m=site,
            probability=event.probability_in_zone,
            distance_to_boundary_m=event.zone.distance_to_boundary_m if event.zone is not None else None,
            image_wh=event.image_wh or (1920, 1080), last_emit_t=event.t_last, last_emit_score=event.score,
            last_emit_en_m=site, messages=1, restored=True))
        self._log.info("open again after a restart: %s %s %s in zone %s (last seen %s)", event.alert_id,
                       event.class_name, event.rule, event.zone.id if event.zone else "-",
                       datetime.fromtimestamp(event.t_last, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return None

    # ------------------------------------------------------------------------------------------- steps

    def _sightings(self, frame: Frame, track: Track, fix: GroundFix | None, t: float) -> list[Sighting]:
        site: tuple[float, float] | None = None
        cov: tuple[float, float, float, float] | None = None
        if fix is not None:
            east, north = self.rules.index.to_local_m(fix.lat, fix.lon)
            site = track.observe_ground(east, north, self.cfg.track.ground_smoothing)
            lat, lon = self.rules.index.frame.to_wgs84(site[0], site[1])
            fix = replace(fix, lat=float(lat), lon=float(lon))
            cov = fix.cov_en_m2
            bearing = fix.bearing_deg
        else:
            bearing = box_bearing_deg(frame.pose, frame.wh, (float(track.xyxy[0]) + float(track.xyxy[2])) / 2)
        low = max(self.cfg.probability_threshold - self.cfg.probability_hysteresis, 1e-9)
        hits = self.rules.evaluate(track.class_name, site, cov, bearing, t, min_probability=low)
        return [Sighting(track, hit, fix, site, bearing, frame.wh) for hit in hits]

    def _match(self, s: Sighting) -> OpenEvent | None:
        """The open event this sighting continues, if any (its own track first, then the nearest site)."""
        key = (s.hit.rule, s.hit.zone.id if s.hit.zone is not None else None, s.track.class_name)
        best: tuple[float, OpenEvent] | None = None
        for event in self.events:
            if event.key != key:
                continue
            if s.track.track_id in event.track_ids:
                return event
            gap = self._site_gap(event, s)
            if gap is not None and (best is None or gap < best[0]):
                best = (gap, event)
        return None if best is None else best[1]

    def _site_gap(self, event: OpenEvent, s: Sighting) -> float | None:
        """How far inside the matching distance the sighting lies (≤ 0: a match, more negative is nearer;
        None: no match). Ground distance when both have a fix, else bearing difference."""
        if event.site_en_m is not None and s.site_en_m is not None:
            slack = self.cfg.revisit_match_m
            slack += event.fix.semi_major_m if event.fix is not None else 0.0
            slack += s.fix.semi_major_m if s.fix is not None else 0.0
            gap = math.dist(event.site_en_m, s.site_en_m) - slack
        else:  # one of them has no ground fix (smoke above the horizon): compare bearings
            gap = abs_angle_diff_deg(event.bearing_deg, s.bearing_deg) - self.cfg.revisit_match_deg
        return gap if gap <= 0 else None

    def _ready(self, s: Sighting, t: float) -> bool:
        """Confirmed, sure enough, and in the zone for its dwell time."""
        if s.hit.probability is not None and s.hit.probability < self.cfg.probability_threshold:
            return False
        key = (s.track.track_id, *s.hit.key)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(t, t, s.track.preset)
        pending.t_last = t
        pending.unseen_s = 0.0
        dwell = s.hit.zone.min_dwell_s if s.hit.zone is not None else 0.0
        return s.track.confirmed and t - pending.t_first >= dwell

    def _open(self, s: Sighting, t: float) -> OpenEvent:
        track = s.track
        x1, y1, x2, y2 = (float(v) for v in track.xyxy)
        event = OpenEvent(
            alert_id=make_alert_id(self.camera.id, t),
            class_name=track.class_name,
            rule=s.hit.rule,
            zone=s.hit.zone,
            t_first=t,
            t_last=t,
            score=track.best_score,
            xyxy=(x1, y1, x2, y2),
            preset=track.preset,
            track_id=track.track_id,
            bearing_deg=s.bearing_deg,
            image_wh=s.image_wh,
            fix=s.fix,
            site_en_m=s.site_en_m,
            probability=s.hit.probability,
            distance_to_boundary_m=s.hit.distance_to_boundary_m,
            track_ids={track.track_id},
            last_emit_t=t,
            last_emit_score=track.best_score,
            last_emit_en_m=s.site_en_m,
        )
        self.events.append(event)
        for key in [k for k in self._pending if k[0] == track.track_id and k[1:] == s.hit.key]:
            del self._pending[key]
        self._log.info(
            "new %s: %s %s in zone %s (track %d, p=%s)",
            event.alert_id,
            event.class_name,
            event.rule,
            event.zone.id if event.zone else "-",
            track.track_id,
            "-" if event.probability is None else f"{event.probability:.2f}",
        )
        return event

    def _sight(self, event: OpenEvent, s: Sighting, t: float) -> bool:
        """Record a sighting of an open event; True when an ``update`` message is due."""
        track = s.track
        new_this_frame = event.t_first == t and event.messages <= 1
        event.t_last = t
        event.unseen_visible_s = 0.0
        event.track_ids.add(track.track_id)
        event.track_id = track.track_id
        event.preset = track.preset
        event.score = max(event.score, track.best_score)
        event.xyxy = tuple(float(v) for v in track.xyxy)  # type: ignore[assignment]
        event.bearing_deg = s.bearing_deg
        event.image_wh = s.image_wh
        if s.fix is not None:
            event.fix = s.fix
            event.site_en_m = s.site_en_m
        event.probability = s.hit.probability
        event.distance_to_boundary_m = s.hit.distance_to_boundary_m
        if new_this_frame:
            return False
        if t - event.last_emit_t >= self.alerts_cfg.update_interval_s:
            return True
        if event.score - event.last_emit_score >= self.cfg.update_score_delta > 0:
            return True
        if event.site_en_m is not None and event.last_emit_en_m is not None:
            moved = math.dist(event.site_en_m, event.last_emit_en_m)
            ellipse = event.fix.semi_major_m if event.fix is not None else 0.0
            if moved >= max(self.cfg.update_move_m, ellipse) and self.cfg.update_move_m > 0:
                return True
        return False

    def _can_see(self, event: OpenEvent, frame: Frame) -> bool:
        """Could this frame have shown the event's site? (Only then does "unseen" time count.)"""
        pose = frame.pose
        if pose.preset == event.preset:
            return True
        if abs_angle_diff_deg(event.bearing_deg, pose.pan_deg) > pose.hfov_deg / 2.0:
            return False
        fix = event.fix
        if fix is None or fix.range_m <= 0:
            return True
        if self.sees is not None:
            return self.sees(frame, fix)
        eye_m = self.camera.ground_elevation_m + self.camera.mast_height_m
        return in_vertical_view(pose, frame.wh, eye_m, fix.elevation_m, fix.range_m)

    def _end_due(self, t: float) -> list[AlertEvent]:
        ended: list[AlertEvent] = []
        keep: list[OpenEvent] = []
        for event in self.events:
            unseen = event.unseen_visible_s >= self.alerts_cfg.end_after_s
            if unseen or t - event.t_last >= self.cfg.max_unseen_s:
                reason = "restart_unseen" if event.restored and not event.track_ids else \
                    "unseen" if unseen else "max_unseen"
                ended.append(self._message("end", event, None, t, reason))
                self._log.info(
                    "end %s: unseen for %.1f s in view (%.0f s in all)",
                    event.alert_id,
                    event.unseen_visible_s,
                    t - event.t_last,
                )
            else:
                keep.append(event)
        self.events = keep
        return ended

    def _forget_pending(self, frame: Frame, t: float, dt: float) -> None:
        stale: list[tuple[int, str, str | None]] = []
        for key, pending in self._pending.items():
            if pending.t_last < t and pending.preset == frame.pose.preset:
                pending.unseen_s += dt
            if pending.unseen_s >= self.alerts_cfg.end_after_s or t - pending.t_last >= self.cfg.max_unseen_s:
                stale.append(key)
        for key in stale:
            del self._pending[key]

    def _message(self, kind: EventType, event: OpenEvent, frame: Frame | None, t: float,
                 reason: str | None = None) -> AlertEvent:
        """``reason``: an ``end``'s ``extra.end_reason``; ``bearing_deg`` lets the outbox keep what a restart
        needs to continue the event (pipeline/events/persist.py)."""
        event.messages += 1
        if kind != "end":
            event.last_emit_t = event.t_last
            event.last_emit_score = event.score
            event.last_emit_en_m = event.site_en_m
        zone = zone_to_ref(event.zone, event.distance_to_boundary_m) if event.zone is not None else None
        cameras = event.fix.cameras if event.fix is not None and event.fix.cameras else (self.camera.id,)
        return AlertEvent(
            type=kind,
            alert_id=event.alert_id,
            camera_id=self.camera.id,
            class_name=event.class_name,
            rule=event.rule,
            score=event.score,
            xyxy=event.xyxy,
            t_first=event.t_first,
            t_last=event.t_last,
            zone=zone,
            fix=event.fix,
            probability_in_zone=event.probability,
            track_id=event.track_id,
            preset=event.preset,
            cameras=cameras,
            frame=frame,
            image_wh=event.image_wh,
            t_event=t,
            bearing_deg=event.bearing_deg,
            extra={"end_reason": reason} if reason else {},
        )

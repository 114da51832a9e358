"""Alert metrics: labelled events against the alert events the pipeline raised.

Definitions (also in docs/EVALUATION.md):

* **labelled event** — on one clip (camera) and for one class, a run of labelled frames that hold at least
  one box of that class, where two consecutive such frames are at most ``gap_s`` apart (default 1 s: a
  frame or two the labeller skipped, or the object hidden for a moment, does not split the event). It
  starts at its first labelled frame and ends at its last.
* **alert** — one ``alert_id`` of the pipeline: raised by its ``new`` message, active until its ``end``
  message (or the end of the clip).
* an alert is **true** when its ``new`` message comes from a frame inside a labelled event of its class,
  or up to ``grace_s`` after its end, and its box in that frame overlaps a labelled box of its class with
  IoU ≥ ``match_iou`` (the nearest labelled frame of the event when the frame itself has none). Any other
  alert is a **false alert**.
* a labelled event is **caught** when a true alert of its class is active at any time from its start to
  ``grace_s`` after its end. **Time to alert** is the time from its first labelled frame to the ``new``
  message of the earliest such alert (0 when an alert was already active when the event began).
  More than one true alert on one event: the extra ones are counted as **duplicates** (not false).
* **false alerts per camera-hour** — false alerts divided by the hours of footage evaluated.
* **location error** — for a true alert message that carries a ground fix, the distance on the WGS84
  ellipsoid from the fix to the labelled position (``lat``/``lon`` of the matched labelled box).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.boxes import iou_matrix
from pipeline.eval.labels import ClipLabels
from pipeline.types import CLASSES


@dataclass(frozen=True, slots=True)
class LabelledEvent:
    clip: str
    class_id: int
    first_index: int
    last_index: int
    t_start_s: float  # media time of the first labelled frame, seconds from the clip's start
    t_end_s: float
    n_frames: int  # labelled frames with the class

    @property
    def duration_s(self) -> float:
        return self.t_end_s - self.t_start_s


@dataclass(slots=True)
class AlertRecord:
    """What the evaluation keeps of one alert_id."""

    clip: str
    alert_id: str
    class_id: int
    t_new_s: float  # media time of the frame whose analysis produced the `new` message
    index_new: int  # frame index of that frame
    xyxy_new: tuple[float, float, float, float]
    image_wh: tuple[int, int]
    t_end_s: float | None = None  # media time of the `end` message; None: open at the clip's end
    fixes: list[tuple[int, float, float, tuple[float, float, float, float]]] = field(default_factory=list)
    # (frame index, lat, lon, xyxy) of every message with a ground fix


@dataclass(slots=True)
class ClipResult:
    """The per-clip material the alert metrics need."""

    clip: str
    fps: float
    duration_s: float
    labels: ClipLabels
    alerts: list[AlertRecord]


@dataclass(slots=True)
class ClassAlertMetrics:
    name: str
    n_events: int
    n_caught: int
    n_alerts: int
    n_true_alerts: int
    n_false_alerts: int
    n_duplicates: int
    time_to_alert_s: list[float]
    location_error_m: list[float]

    @property
    def recall(self) -> float | None:
        return self.n_caught / self.n_events if self.n_events else None

    def as_dict(self, hours: float) -> dict[str, object]:
        tta = np.asarray(self.time_to_alert_s, np.float64)
        loc = np.asarray(self.location_error_m, np.float64)
        return {
            "name": self.name,
            "n_events": self.n_events,
            "n_caught": self.n_caught,
            "event_recall": self.recall,
            "n_alerts": self.n_alerts,
            "n_true_alerts": self.n_true_alerts,
            "n_false_alerts": self.n_false_alerts,
            "n_duplicate_alerts": self.n_duplicates,
            "false_alerts_per_camera_hour": self.n_false_alerts / hours if hours > 0 else None,
            "time_to_alert_s": {
                "mean": float(tta.mean()) if tta.size else None,
                "median": float(np.median(tta)) if tta.size else None,
                "p90": float(np.percentile(tta, 90)) if tta.size else None,
                "max": float(tta.max()) if tta.size else None,
                "values": [float(v) for v in tta],
            },
            "location_error_m": {
                "n": int(loc.size),
                "mean": float(loc.mean()) if loc.size else None,
                "median": float(np.median(loc)) if loc.size else None,
                "p90": float(np.percentile(loc, 90)) if loc.size else None,
            },
        }


def labelled_events(clip: str, labels: ClipLabels, fps: float, gap_s: float = 1.0) -> list[LabelledEvent]:
    """Runs of labelled frames per class (see the module docstring)."""
    max_step = max(1, int(np.floor(gap_s * fps + 1e-9)))
    events: list[LabelledEvent] = []
    for class_id in range(len(CLASSES)):
        indices = sorted(i for i, fl in labels.frames.items() if np.any(fl.class_id == class_id))
        if not indices:
            continue
        start = prev = indices[0]
        count = 1
        for i in [*indices[1:], None]:
            if i is not None and i - prev <= max_step:
                prev = i
                count += 1
                continue
            events.append(LabelledEvent(clip, class_id, start, prev, start / fps, prev / fps, count))
            if i is not None:
                start = prev = i
                count = 1
    return events


def _nearest_labelled(event: LabelledEvent, labels: ClipLabels, index: int) -> int:
    """The labelled frame of ``event`` nearest to ``index`` (ties: the earlier one)."""
    candidates = [
        i for i in range(event.first_index, event.last_index + 1)
        if i in labels.frames and np.any(labels.frames[i].class_id == event.class_id)
    ]
    return min(candidates, key=lambda i: (abs(i - index), i))


def _box_match(
    labels: ClipLabels, event: LabelledEvent, index: int, xyxy: Sequence[float], image_wh: tuple[int, int],
    match_iou: float,
) -> tuple[bool, int | None]:
    """Does ``xyxy`` in frame ``index`` overlap a labelled box of the event's class? → (ok, box index)."""
    frame_index = _nearest_labelled(event, labels, index)
    fl = labels.frames[frame_index]
    keep = np.flatnonzero(fl.class_id == event.class_id)
    ious = iou_matrix([xyxy], fl.xyxy_px(image_wh)[keep])[0]
    if ious.size == 0 or float(ious.max()) < match_iou:
        return False, None
    return True, int(keep[int(np.argmax(ious))])


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from pyproj import Geod

    _, _, dist = Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)
    return float(dist)


@dataclass(slots=True)
class AlertMatching:
    per_class: dict[str, ClassAlertMetrics]
    events: list[tuple[LabelledEvent, AlertRecord | None, float | None]]  # event, first true alert, tta
    false_alerts: list[AlertRecord]
    hours: float


def evaluate_alerts(
    clips: Sequence[ClipResult], gap_s: float = 1.0, grace_s: float = 2.0, match_iou: float = 0.1
) -> AlertMatching:
    """Match alerts to labelled events over all clips (definitions in the module docstring)."""
    per_class: dict[str, ClassAlertMetrics] = {
        name: ClassAlertMetrics(name, 0, 0, 0, 0, 0, 0, [], []) for name in CLASSES
    }
    out_events: list[tuple[LabelledEvent, AlertRecord | None, float | None]] = []
    false_alerts: list[AlertRecord] = []
    hours = sum(c.duration_s for c in clips) / 3600.0
    for clip in clips:
        events = labelled_events(clip.clip, clip.labels, clip.fps, gap_s)
        true_of: dict[str, LabelledEvent] = {}
        for alert in clip.alerts:
            name = CLASSES[alert.class_id]
            per_class[name].n_alerts += 1
            home = next(
                (
                    e for e in events
                    if e.class_id == alert.class_id and e.t_start_s <= alert.t_new_s <= e.t_end_s + grace_s
                ),
                None,
            )
            ok = home is not None and _box_match(
                clip.labels, home, alert.index_new, alert.xyxy_new, alert.image_wh, match_iou
            )[0]
            if ok and home is not None:
                true_of[alert.alert_id] = home
                per_class[name].n_true_alerts += 1
            else:
                per_class[name].n_false_alerts += 1
                false_alerts.append(alert)
        for event in events:
            name = CLASSES[event.class_id]
            metrics = per_class[name]
            metrics.n_events += 1
            active = [
                a for a in clip.alerts
                if a.alert_id in true_of
                and a.class_id == event.class_id
                and a.t_new_s <= event.t_end_s + grace_s
                and (a.t_end_s is None or a.t_end_s >= event.t_start_s)
            ]
            homed = [a for a in active if true_of[a.alert_id] is event]
            metrics.n_duplicates += max(0, len(homed) - 1)
            if not active:
                out_events.append((event, None, None))
                continue
            first = min(active, key=lambda a: a.t_new_s)
            tta = max(0.0, first.t_new_s - event.t_start_s)
            metrics.n_caught += 1
            metrics.time_to_alert_s.append(tta)
            out_events.append((event, first, tta))
            for alert in homed:
                for index, lat, lon, xyxy in alert.fixes:
                    if not event.first_index - clip.fps * grace_s <= index <= event.last_index + clip.fps * grace_s:
                        continue
                    ok, box = _box_match(clip.labels, event, index, xyxy, alert.image_wh, match_iou)
                    if not ok or box is None:
                        continue
                    gt = clip.labels.frames[_nearest_labelled(event, clip.labels, index)].latlon[box]
                    if np.all(np.isfinite(gt)):
                        metrics.location_error_m.append(_distance_m(lat, lon, float(gt[0]), float(gt[1])))
    return AlertMatching(per_class, out_events, false_alerts, hours)

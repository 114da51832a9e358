"""Open events across restarts: what the outbox keeps of each event that has a ``new`` but no ``end``.

Every ``new``/``update`` message commits the event's state (this module's JSON) in the same transaction
as the message (``open_events`` in the outbox); its ``end`` deletes it. After the daemon died (SIGKILL,
power cut), the next start reads them back: each one is open again under its ``alert_id`` (a sighting
of the same site continues it with ``update``, seq continuing), and ends as any event does when the
camera looks and does not see it (``end_after_s``), or at once when it was last seen more than
``zones.max_unseen_s`` ago, or its camera is gone. A clean stop ends every open event
(``extra.end_reason: stopped``). docs/MQTT.md and docs/RELIABILITY.md describe it for consumers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any, get_args

from pipeline.types import AlertEvent, GroundFix, RuleName, ZoneRef

#: ``extra.end_reason`` of an ``end`` message: why the event ended
END_REASONS = ("unseen", "max_unseen", "stopped", "footage_ended", "camera_removed", "zone_removed",
               "restart_unseen")


def event_state(event: AlertEvent) -> str:
    """The state of an open event as JSON, from its latest ``new``/``update`` message."""
    state: dict[str, Any] = {
        "camera_id": event.camera_id, "class_name": event.class_name, "rule": event.rule, "score": event.score,
        "xyxy": list(event.xyxy), "t_first": event.t_first, "t_last": event.t_last,
        "zone": None if event.zone is None else asdict(event.zone),
        "fix": None if event.fix is None else asdict(event.fix),
        "probability_in_zone": event.probability_in_zone, "track_id": event.track_id, "preset": event.preset,
        "cameras": list(event.cameras),
        "bearing_deg": event.bearing_deg,
        "image_wh": list(event.image_wh) if event.image_wh else (list(event.frame.wh) if event.frame else None),
    }
    return json.dumps(state, ensure_ascii=False, allow_nan=False)


def _fix(data: dict[str, Any] | None) -> GroundFix | None:
    if data is None:
        return None
    data = dict(data)
    data["cov_en_m2"] = tuple(data.get("cov_en_m2") or (0.0, 0.0, 0.0, 0.0))
    data["cameras"] = tuple(data.get("cameras") or ())
    return GroundFix(**data)


def state_event(alert_id: str, text: str) -> AlertEvent:
    """An ``update``-shaped :class:`AlertEvent` from a stored state (raises ValueError/KeyError/TypeError
    on a damaged one)."""
    data = json.loads(text)
    rule = data["rule"]
    if rule not in get_args(RuleName):
        raise ValueError(f"unknown rule {rule!r}")
    zone = data.get("zone")
    x1, y1, x2, y2 = (float(v) for v in data["xyxy"])
    event = AlertEvent(
        type="update", alert_id=alert_id, camera_id=str(data["camera_id"]), class_name=str(data["class_name"]),
        rule=rule, score=float(data["score"]), xyxy=(x1, y1, x2, y2),
        t_first=float(data["t_first"]), t_last=float(data["t_last"]),
        zone=None if zone is None else ZoneRef(**zone), fix=_fix(data.get("fix")),
        probability_in_zone=data.get("probability_in_zone"), track_id=data.get("track_id"),
        preset=data.get("preset"), cameras=tuple(data.get("cameras") or ()),
        bearing_deg=None if data.get("bearing_deg") is None else float(data["bearing_deg"]),
        image_wh=None if not data.get("image_wh") else (int(data["image_wh"][0]), int(data["image_wh"][1])),
    )
    return event


def ended(event: AlertEvent, reason: str) -> AlertEvent:
    """``event`` as its ``end`` message, with ``extra.end_reason``."""
    return replace(event, type="end", frame=None, t_event=None, extra={"end_reason": reason})

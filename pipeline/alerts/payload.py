"""MQTT topics and the JSON payloads of minewatch (``docs/MQTT.md`` and ``docs/schemas/`` are the contract)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from pipeline.config import CameraConfig, MqttConfig
from pipeline.geo.coords import wgs84_to_gcj02
from pipeline.redact import redact
from pipeline.types import AlertEvent

EVENT_SCHEMA = "minewatch.event/1"
STATUS_SCHEMA = "minewatch.status/1"


# -- topics ------------------------------------------------------------------------------------------
def base_topic(mqtt: MqttConfig) -> str:
    return f"{mqtt.topic_prefix}/{mqtt.box_id}"


def availability_topic(mqtt: MqttConfig) -> str:
    return f"{base_topic(mqtt)}/available"


def events_topic(mqtt: MqttConfig) -> str:
    return f"{base_topic(mqtt)}/events"


def snapshot_topic(mqtt: MqttConfig, alert_id: str) -> str:
    return f"{base_topic(mqtt)}/snapshots/{alert_id}"


def status_topic(mqtt: MqttConfig, camera_id: str) -> str:
    return f"{base_topic(mqtt)}/cameras/{camera_id}/status"


# -- values ------------------------------------------------------------------------------------------
def iso8601z(t_s: float) -> str:
    """UTC unix seconds → ``2026-11-29T08:41:52.123Z`` (milliseconds)."""
    whole = math.floor(t_s)
    millis = int(round((t_s - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _num(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _json_safe(value: object) -> Any:
    """Plain JSON values only (``extra`` may hold anything); others become None."""
    if isinstance(value, str):
        return redact(value)  # an alert never carries a credential (a source URL put in `extra`, say)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        return _json_safe(value.item())
    return None




@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """A snapshot JPEG on disk, as named in the event message."""

    topic: str
    file: str
    nbytes: int
    sha256: str


def build_event(
    event: AlertEvent,
    seq: int,
    *,
    camera: CameraConfig,
    box_id: str,
    snapshot: SnapshotRef | None,
    image_wh: tuple[int, int] | None,
    t_event_s: float,
) -> dict[str, Any]:
    """The event message (``docs/schemas/event.schema.json``)."""
    pose = event.frame.pose if event.frame is not None else None
    zone: dict[str, Any] | None = None
    if event.zone is not None:
        zone = {
            "id": event.zone.id,
            "name": event.zone.name,
            "kind": event.zone.kind,
            "township": event.zone.township,
            "responsible": {"name": event.zone.responsible.get("name", ""),
                            "phone": event.zone.responsible.get("phone", "")},
            "distance_to_boundary_m": _num(event.zone.distance_to_boundary_m, 1),
        }
    location: dict[str, Any] | None = None
    if event.fix is not None:
        fix = event.fix
        glat, glon = wgs84_to_gcj02(float(fix.lat), float(fix.lon))
        location = {
            "lat": round(fix.lat, 7),
            "lon": round(fix.lon, 7),
            "lat_gcj02": round(glat, 7),
            "lon_gcj02": round(glon, 7),
            "elevation_m": _num(fix.elevation_m, 1),
            "range_m": _num(fix.range_m, 1),
            "bearing_deg": _num(fix.bearing_deg, 2),
            "ellipse_90": {
                "semi_major_m": _num(fix.semi_major_m, 1),
                "semi_minor_m": _num(fix.semi_minor_m, 1),
                "orientation_deg": _num(fix.orientation_deg, 1),
            },
            "probability_in_zone": _num(event.probability_in_zone, 3),
            "cameras": list(event.cameras or fix.cameras or (event.camera_id,)),
            "occlusion_possible": bool(fix.occlusion_possible),
        }
    extra = {k: _json_safe(v) for k, v in event.extra.items()}
    message: dict[str, Any] = {
        "schema": EVENT_SCHEMA,
        "type": event.type,
        "alert_id": event.alert_id,
        "seq": seq,
        "box_id": box_id,
        "camera": {
            "id": camera.id,
            "name": camera.name or camera.id,
            "lat": camera.lat,
            "lon": camera.lon,
            "preset": event.preset if event.preset is not None else (pose.preset if pose else None),
            "pan_deg": round(pose.pan_deg if pose else camera.pan_deg, 2),
            "tilt_deg": round(pose.tilt_deg if pose else camera.tilt_deg, 2),
            "hfov_deg": round(pose.hfov_deg if pose else camera.hfov_deg, 2),
        },
        "class": event.class_name,
        "rule": event.rule,
        "score": round(float(event.score), 3),
        "xyxy": [round(float(v), 1) for v in event.xyxy],
        "image_wh": list(image_wh) if image_wh else None,
        "zone": zone,
        "location": location,
        "track_id": event.track_id,
        "t_first": iso8601z(event.t_first),
        "t_last": iso8601z(event.t_last),
        "t_event": iso8601z(t_event_s),
        "snapshot": None if snapshot is None else {
            "topic": snapshot.topic, "file": snapshot.file, "bytes": snapshot.nbytes, "sha256": snapshot.sha256,
        },
    }
    if extra:
        message["extra"] = extra
    return message


def encode(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (Chinese names stay readable)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def build_status(status: str, detail: dict[str, Any], t_s: float | None = None) -> dict[str, Any]:
    """Per-camera status (``docs/schemas/status.schema.json``): status, time, then the source's counters."""
    message: dict[str, Any] = {"schema": STATUS_SCHEMA, "status": status,
                               "t": iso8601z(time.time() if t_s is None else t_s)}
    for key, value in detail.items():
        if key not in message:
            message[str(key)] = _json_safe(value)
    return message

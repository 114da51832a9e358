"""Event and status payloads: the contract of docs/MQTT.md, checked against docs/schemas with jsonschema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipeline.alerts.payload import (
    SnapshotRef,
    availability_topic,
    build_event,
    build_status,
    encode,
    events_topic,
    iso8601z,
    snapshot_topic,
    status_topic,
)
from pipeline.config import CameraConfig, MqttConfig
from tests.mqtt_helpers import make_event, make_frame

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
CAMERA = CameraConfig.model_validate({"id": "cam1", "name": "北塔", "source": "x.mp4", "lat": 38.7, "lon": 111.6,
                                      "pan_deg": 30, "tilt_deg": -5, "hfov_deg": 60})


def load(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


@pytest.mark.parametrize(("t_s", "expected"), [
    (0.0, "1970-01-01T00:00:00.000Z"),
    (1_790_000_000.25, "2026-09-21T14:13:20.250Z"),
    (1_790_000_000.9996, "2026-09-21T14:13:21.000Z"),  # rounding carries into the seconds
])
def test_iso8601z(t_s: float, expected: str) -> None:
    assert iso8601z(t_s) == expected


def test_topics() -> None:
    cfg = MqttConfig.model_validate({"topic_prefix": "mw/prov", "box_id": "edge-7"})
    assert availability_topic(cfg) == "mw/prov/edge-7/available"
    assert events_topic(cfg) == "mw/prov/edge-7/events"
    assert snapshot_topic(cfg, "a1") == "mw/prov/edge-7/snapshots/a1"
    assert status_topic(cfg, "cam1") == "mw/prov/edge-7/cameras/cam1/status"


def test_full_event_matches_schema_and_contract() -> None:
    frame = make_frame((640, 360))
    event = make_event("cam1-7-abc", "update", frame=frame, zone_outline_xy=[[1, 2]], note="kept", t_event=5.0,
                       source="rtsp://admin:cam-pw-9@10.0.0.5/s")
    snap = SnapshotRef("minewatch/edge-1/snapshots/cam1-7-abc", "/var/s/a.jpg", 1234, "ab" * 32)
    msg = build_event(event, 3, camera=CAMERA, box_id="edge-1", snapshot=snap, image_wh=frame.wh, t_event_s=5.0)
    jsonschema.validate(msg, load("event"))
    assert (msg["schema"], msg["type"], msg["alert_id"], msg["seq"]) == ("minewatch.event/1", "update", "cam1-7-abc", 3)
    assert msg["camera"] == {"id": "cam1", "name": "北塔", "lat": 38.7, "lon": 111.6, "preset": "p1",
                             "pan_deg": 31.5, "tilt_deg": -4.0, "hfov_deg": 58.0}  # the frame's pose, not the config's
    assert msg["image_wh"] == [640, 360] and msg["xyxy"] == [100.0, 120.0, 180.0, 200.0]
    assert msg["zone"]["responsible"] == {"name": "王工", "phone": "13800000000"}
    loc = msg["location"]
    # GCJ-02 is offset from WGS84 by a few hundred metres near Kelan (about 0.0004° N, 0.006° E)
    assert 0.0002 < loc["lat_gcj02"] - loc["lat"] < 0.001 and 0.004 < loc["lon_gcj02"] - loc["lon"] < 0.008
    assert loc["ellipse_90"] == {"semi_major_m": 30.0, "semi_minor_m": 8.0, "orientation_deg": 40.0}
    assert loc["probability_in_zone"] == 0.93 and loc["cameras"] == ["cam1"]
    assert msg["t_first"] == "2026-09-21T14:13:20.000Z" and msg["t_event"] == "1970-01-01T00:00:05.000Z"
    assert msg["snapshot"] == {"topic": snap.topic, "file": snap.file, "bytes": 1234, "sha256": "ab" * 32}
    # the outline is for the snapshot only; credentials never travel in an alert
    assert msg["extra"] == {"note": "kept", "source": "rtsp://admin:***@10.0.0.5/s"}
    body = encode(msg)
    assert "王工".encode() in body and json.loads(body) == msg


def test_minimal_event_without_zone_fix_frame_matches_schema() -> None:
    event = make_event("a", "end", with_fix=False)
    event.zone = None
    msg = build_event(event, 9, camera=CAMERA, box_id="b", snapshot=None, image_wh=None, t_event_s=0.0)
    jsonschema.validate(msg, load("event"))
    assert msg["zone"] is None and msg["location"] is None and msg["snapshot"] is None
    assert msg["camera"]["pan_deg"] == 30.0  # no frame: the configured pose


@pytest.mark.parametrize(("mutate", "error"), [
    (lambda m: m.pop("alert_id"), "alert_id"),
    (lambda m: m.update(type="start"), "start"),
    (lambda m: m.update(seq=0), "0"),
    (lambda m: m.update(t_event="2026-01-01 10:00:00"), "does not match"),
    (lambda m: m.update(xyxy=[1, 2, 3]), "too short"),
    (lambda m: m.update(surprise=1), "surprise"),
])
def test_schema_rejects_broken_events(mutate: Callable[[dict[str, Any]], object], error: str) -> None:
    msg = build_event(make_event("a"), 1, camera=CAMERA, box_id="b", snapshot=None, image_wh=(4, 3), t_event_s=0.0)
    mutate(msg)
    with pytest.raises(jsonschema.ValidationError, match=error):
        jsonschema.validate(msg, load("event"))


@pytest.mark.parametrize(("status", "ok"), [("online", True), ("view_mismatch", True), ("moving", True),
                                            ("broken", False)])
def test_status_schema(status: str, ok: bool) -> None:
    msg = build_status(status, {"frames": 10, "last_error": None, "fps": 2.5}, t_s=0.0)
    assert msg["t"] == "1970-01-01T00:00:00.000Z" and msg["frames"] == 10
    if ok:
        jsonschema.validate(msg, load("status"))
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(msg, load("status"))


@pytest.mark.parametrize(("payload", "ok"), [("online", True), ("offline", True), ("gone", False)])
def test_availability_schema(payload: str, ok: bool) -> None:
    if ok:
        jsonschema.validate(payload, load("availability"))
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(payload, load("availability"))

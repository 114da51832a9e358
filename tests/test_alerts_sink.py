"""AlertSink: an AlertEvent becomes a snapshot file plus committed outbox rows, with a stable alert_id and seq."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from pipeline.alerts import AlertSink, Outbox
from tests.conftest import free_port
from tests.mqtt_helpers import make_config, make_event, make_frame


def test_submit_commits_snapshot_then_event(tmp_path: Path) -> None:
    config = make_config(tmp_path, free_port())
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    outline = np.array([[10.0, 10.0], [300.0, 10.0], [300.0, 230.0], [10.0, 230.0]])
    assert sink.submit(make_event("cam1-1", frame=make_frame(), zone_outline_xy=[outline])) == "cam1-1"
    rows = outbox.pending(10)
    assert [(r.kind, r.type, r.seq) for r in rows] == [("snapshot", "new", 1), ("event", "new", 1)]
    snap_row, event_row = rows
    assert snap_row.topic == "minewatch/edge-t/snapshots/cam1-1" and event_row.topic == "minewatch/edge-t/events"
    payload = json.loads(event_row.payload or b"")
    data = Path(payload["snapshot"]["file"]).read_bytes()
    assert payload["snapshot"]["sha256"] == hashlib.sha256(data).hexdigest() == hashlib.sha256(
        Path(str(snap_row.file)).read_bytes()).hexdigest()
    assert Path(payload["snapshot"]["file"]).is_relative_to(config.alerts.snapshot_dir)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    assert img.shape == (240, 320, 3)
    assert img[10, 150, 1] > 150 and img[10, 150, 2] > 200  # the amber zone outline is in the snapshot
    assert outbox.referenced_files() == {payload["snapshot"]["file"]}
    outbox.close()


def test_seq_counts_messages_of_one_event_and_survives_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path, free_port())
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    sink.submit(make_event("a", "new", frame=make_frame()))
    sink.submit(make_event("a", "update"))  # no frame: no snapshot, image size remembered
    outbox.close()
    outbox = Outbox(config.alerts.outbox_path)  # the daemon restarted
    sink = AlertSink(config, outbox)
    sink.submit(make_event("a", "end"))
    sink.submit(make_event("b", "new"))
    events = [json.loads(r.payload or b"") for r in outbox.pending(20) if r.kind == "event"]
    assert [(e["alert_id"], e["type"], e["seq"]) for e in events] == [
        ("a", "new", 1), ("a", "update", 2), ("a", "end", 3), ("b", "new", 1)]
    assert events[1]["image_wh"] == [320, 240] and events[1]["snapshot"] is None
    outbox.close()


def test_unwritable_snapshot_folder_still_commits_the_alert(tmp_path: Path) -> None:
    config = make_config(tmp_path, free_port())
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the snapshot folder should be")
    object.__setattr__(config.alerts, "snapshot_dir", blocker)
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    sink.submit(make_event("a", frame=make_frame()))
    rows = outbox.pending(5)
    assert [r.kind for r in rows] == ["event"] and json.loads(rows[0].payload or b"")["snapshot"] is None
    outbox.close()


def test_snapshot_and_t_event_keep_the_analysis_clock(tmp_path: Path) -> None:
    """Recorded footage from 28 May: the snapshot is filed under that day and t_event is the frame's time, not
    the clock of the box that replays it; an ``end`` after a restart still knows its frame size."""
    t_frame = 1_780_000_000.0  # 2026-05-28T20:26:40Z
    config = make_config(tmp_path, free_port())
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    frame = dataclasses.replace(make_frame(), t_capture=t_frame)
    sink.submit(make_event("a", "new", frame=frame, t0=t_frame - 2.0, t_event=t_frame))
    outbox.close()
    outbox = Outbox(config.alerts.outbox_path)  # restarted: the sink remembers no frame size
    sink = AlertSink(config, outbox)
    sink.submit(make_event("a", "end", t0=t_frame - 2.0, t_event=t_frame + 60.0, image_wh=(320, 240)))
    before = time.time()
    sink.submit(make_event("b", "new"))  # made by hand, no analysis time: the sink's own clock
    events = {(e["alert_id"], e["type"]): e for e in
              (json.loads(r.payload or b"") for r in outbox.pending(20) if r.kind == "event")}
    new, end = events["a", "new"], events["a", "end"]
    assert new["t_event"] == "2026-05-28T20:26:40.000Z" and Path(new["snapshot"]["file"]).parent.name == "20260528"
    assert end["t_event"] == "2026-05-28T20:27:40.000Z" and end["image_wh"] == [320, 240]
    t_b = datetime.strptime(events["b", "new"]["t_event"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert before - 0.01 <= t_b <= time.time() + 0.01
    outbox.close()

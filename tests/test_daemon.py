"""End to end: the real daemon on the sample clip → real inference → a real Mosquitto → a subscriber."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from shapely.geometry import Point, shape

from tests.conftest import Broker, free_port
from tests.daemon_helpers import ROOT, Subscriber, run_daemon, sample_clip, write_config


def test_sample_clip_raises_a_real_alert_that_reaches_the_broker(tmp_path: Path, broker: Broker) -> None:
    clip = sample_clip(tmp_path)
    config = write_config(tmp_path, broker.port, source=clip, realtime=False)
    sub = Subscriber(broker.port)
    proc = run_daemon(config)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert sub.wait_for(lambda: any(e["type"] == "new" for e in sub.events()), 15), out
    new = [e for e in sub.events() if e["type"] == "new"]
    event = new[0]
    for key in ("alert_id", "camera", "class", "score", "xyxy", "zone", "location", "t_first", "snapshot"):
        assert key in event, key
    assert event["camera"]["id"] == "kelan-t1"
    # the ground point is inside the sample's illegal-site zone
    zone_file = ROOT / "zones" / f"{event['zone']['id']}.geojson"
    polygon = shape(json.loads(zone_file.read_text())["features"][0]["geometry"])
    loc = event["location"]
    assert polygon.contains(Point(loc["lon"], loc["lat"])), loc
    assert 20 < loc["range_m"] < 300 and 45 < loc["bearing_deg"] < 135
    # the snapshot arrives on its own topic and is a decodable JPEG
    snap_topic = event["snapshot"]["topic"]
    assert sub.wait_for(lambda: sub.by_topic(snap_topic), 10)
    jpeg = sub.by_topic(snap_topic)[0][1]
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape[:2] == (720, 1280)
    # every event ended at the end of the footage, and nothing waits in the outbox
    assert sub.wait_for(lambda: {e["alert_id"] for e in sub.events() if e["type"] == "end"}
                        >= {e["alert_id"] for e in new}, 10)
    with sqlite3.connect(tmp_path / "var" / "outbox.sqlite") as db:
        assert db.execute("select count(*) from messages").fetchone()[0] == 0
    sub.close()


def test_alerts_wait_in_the_outbox_while_no_broker_runs(tmp_path: Path) -> None:
    clip = sample_clip(tmp_path)
    port = free_port()
    config = write_config(tmp_path, port, source=clip, realtime=False)
    proc = run_daemon(config)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "ALERT new" in out
    # a broker comes up later: the next start delivers what waited, with the same alert ids
    pending_ids = set()
    for line in out.splitlines():
        if "ALERT new" in line:
            pending_ids.add(line.split("ALERT new ")[1].split()[0])
    broker = Broker(tmp_path / "broker", port=port).start()
    try:
        sub = Subscriber(port)
        proc2 = run_daemon(config)  # the same footage again: old alerts drain first
        out2, _ = proc2.communicate(timeout=240)
        assert proc2.returncode == 0, out2
        assert sub.wait_for(lambda: pending_ids <= {e["alert_id"] for e in sub.events()}, 20), out2
        sub.close()
    finally:
        broker.stop()


@pytest.mark.parametrize("bad_zone", [
    '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": "x"}, "geometry": null}]}',
    "not json at all",
])
def test_health_metrics_and_sighup(tmp_path: Path, broker: Broker, bad_zone: str) -> None:
    clip = sample_clip(tmp_path)
    http_port = free_port()
    config = write_config(tmp_path, broker.port, source=clip, realtime=True, loop=True, http_port=http_port)
    proc = run_daemon(config, "--forever")
    try:
        health = _get_json(f"http://127.0.0.1:{http_port}/health", 60)
        assert "kelan-t1" in health["cameras"]
        assert health["detector"]["provider"] == "CPUExecutionProvider"
        time.sleep(3)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        assert "minewatch_inference_seconds_count" in metrics
        assert 'minewatch_camera_online{camera="kelan-t1"}' in metrics
        assert "minewatch_outbox_depth" in metrics
        assert health["detector"]["workers"] >= 1 and health["detector"]["batch_max"] == 1  # auto on a CPU
        # capture of the frame behind an alert → the broker's PUBACK of its message
        count = _metric(http_port, "minewatch_alert_latency_seconds_count", 30)
        total = _metric(http_port, "minewatch_alert_latency_seconds_sum", 0)
        assert count >= 1 and 0.0 < total / count < 10.0, (count, total)
        # a good new zone is taken on SIGHUP; a bad one is refused and the old zones stay
        zones = tmp_path / "zones"
        extra = zones / "kelan-illegal-site-01.geojson"
        copy = json.loads(extra.read_text())
        copy["features"][0]["properties"]["id"] = "kelan-illegal-site-02"
        (zones / "kelan-illegal-site-02.geojson").write_text(json.dumps(copy))
        proc.send_signal(signal.SIGHUP)
        assert _wait_zones(http_port, 3)
        (zones / "broken.geojson").write_text(bad_zone)
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert _get_json(f"http://127.0.0.1:{http_port}/health", 5)["zones"] == 3
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "zones not reloaded, the old ones stay in force" in out
    assert "broken.geojson" in out
    assert "Traceback" not in out


def _get_json(url: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return json.loads(urllib.request.urlopen(url, timeout=5).read())
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                return json.loads(exc.read())
            raise
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _metric(http_port: int, name: str, wait_s: float) -> float:
    """A metric's value; waits up to ``wait_s`` for it to become positive."""
    deadline = time.monotonic() + wait_s
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")]
        value = values[0] if values else 0.0
        if value > 0 or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _wait_zones(http_port: int, n: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _get_json(f"http://127.0.0.1:{http_port}/health", 5)["zones"] == n:
            return True
        time.sleep(0.3)
    return False


@pytest.mark.parametrize(("change", "needle"), [
    (("models/minewatch-starter.onnx", "models/missing.onnx"), "detector.model_path: expected an existing ONNX"),
    (("tower-sample.mp4", "no-such-clip.mp4"), "source: expected an rtsp:// URL or an existing video file"),
])
def test_run_with_a_missing_file_is_one_line_exit_2(tmp_path: Path, change: tuple[str, str], needle: str) -> None:
    config = write_config(tmp_path, free_port(), source=sample_clip(tmp_path))
    config.write_text(config.read_text().replace(*change))
    proc = run_daemon(config)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert needle in out
    assert "Traceback" not in out


def test_daemon_harvests_alert_frames_as_yolo_labels(tmp_path: Path) -> None:
    """harvest.on_alert: the frame of each new alert is saved with its boxes, in the layout `train` reads."""
    extra = "harvest:\n  enabled: true\n  dir: var/harvest\n  on_alert: true\n  low_score: true\n"
    config = write_config(tmp_path, free_port(), source=sample_clip(tmp_path), extra=extra)
    config.write_text(config.read_text().replace("mqtt:\n", "mqtt:\n  enabled: false\n", 1))
    proc = run_daemon(config)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    images = sorted((tmp_path / "var" / "harvest" / "images").rglob("*.jpg"))
    assert images, out
    labels = [p for p in (tmp_path / "var" / "harvest" / "labels").rglob("*.txt")]
    assert labels
    rows = [line.split() for p in labels for line in p.read_text().splitlines() if line.strip()]
    assert rows and all(len(r) == 5 and 0 <= float(r[1]) <= 1 for r in rows)

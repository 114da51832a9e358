"""Helpers for tests that run the real daemon as a subprocess on the bundled sample."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]


def sample_clip(tmp_root: Path) -> Path:
    """The bundled sample clip (made by scripts/make_sample.py at setup), made now if it is missing."""
    clip = ROOT / "data" / "sample" / "tower-sample.mp4"
    if clip.is_file():
        return clip
    out = tmp_root / "sample"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sample.py"), "--out", str(out)], check=True)
    return out / "tower-sample.mp4"


def write_config(tmp: Path, port: int, *, source: Path, realtime: bool = False, loop: bool = False,
                 http_port: int | None = None, extra: str = "") -> Path:
    """A copy of the shipped sample config pointing at a test broker, with its own var/ and zones/."""
    zones = tmp / "zones"
    if not zones.exists():
        shutil.copytree(ROOT / "zones", zones)
    text = f"""
cameras:
  - id: kelan-t1
    name: Kelan tower 1 (test)
    source: {source}
    realtime: {str(realtime).lower()}
    loop: {str(loop).lower()}
    lat: 38.70000
    lon: 111.60000
    ground_elevation_m: 1450
    mast_height_m: 25
    pan_deg: 90
    tilt_deg: -8
    hfov_deg: 60
    analysis_fps: 2
detector:
  model_path: {ROOT / "models" / "minewatch-starter.onnx"}
  providers: [CPUExecutionProvider]
  score_threshold:
    default: 0.4
mqtt:
  host: 127.0.0.1
  port: {port}
  box_id: test-box
alerts:
  snapshot_dir: var/snapshots
  outbox_path: var/outbox.sqlite
  confirm_hits: 3
  confirm_window: 5
  end_after_s: 20
zones:
  dir: zones
ops:
  http_port: {"null" if http_port is None else http_port}
{extra}"""
    path = tmp / "cameras.yaml"
    path.write_text(text)
    return path


class Subscriber:
    """A persistent-session MQTT 5 subscriber that records every message."""

    def __init__(self, port: int, topic: str = "minewatch/#", client_id: str = "test-sub") -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list[tuple[str, bytes]] = []
        self.received_at: list[float] = []  # wall-clock arrival of each message, parallel to .messages
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.topic = topic

        def on_connect(client: paho.Client, *_: Any) -> None:
            client.subscribe(self.topic, qos=1)
            self.connected.set()

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload)))
                self.received_at.append(time.time())

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("subscriber did not connect")

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t.endswith("/events")]

    def by_topic(self, suffix: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p in self.messages if suffix in t]

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return bool(predicate())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_daemon(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--config", str(config), *args],
                            cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=full_env)

"""Helpers for the alert tests: configs, synthetic alert events, a recording subscriber, a TCP proxy that
can hold or cut a connection, and a publisher process (``python -m tests.mqtt_publisher``)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pipeline.config import Config, load_config
from pipeline.types import AlertEvent, EventType, Frame, GroundFix, Pose, ZoneRef

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp: Path, port: int, *, mqtt_extra: dict[str, Any] | None = None,
                 alerts_extra: dict[str, Any] | None = None) -> Path:
    """A cameras.yaml for alert tests (one camera; short reconnect delays)."""
    data: dict[str, Any] = {
        "cameras": [{"id": "cam1", "name": "Tower 1 north", "source": "rtsp://cam.invalid/stream",
                     "lat": 38.70, "lon": 111.60, "pan_deg": 30.0, "tilt_deg": -5.0, "hfov_deg": 60.0}],
        "mqtt": {"host": "127.0.0.1", "port": port, "box_id": "edge-t", "reconnect_min_s": 0.2,
                 "reconnect_max_s": 1.0, "client_id": f"mw-test-{uuid.uuid4().hex[:8]}", **(mqtt_extra or {})},
        "alerts": {"snapshot_dir": str(tmp / "snapshots"), "outbox_path": str(tmp / "outbox.sqlite"),
                   **(alerts_extra or {})},
    }
    path = tmp / "cameras.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def make_config(tmp: Path, port: int, **kwargs: Any) -> Config:
    return load_config(write_config(tmp, port, **kwargs))


def make_frame(wh: tuple[int, int] = (320, 240), seed: int = 0, noise: bool = False) -> Frame:
    """A synthetic frame; ``noise`` makes a JPEG that does not compress (big snapshots)."""
    w, h = wh
    rng = np.random.default_rng(seed)
    if noise:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        img = np.full((h, w, 3), 90, np.uint8)
        img[h // 2:, :] = (40, 110, 60)  # ground
    return Frame("cam1", seed, time.time(), img, Pose(31.5, -4.0, 58.0, preset="p1"))


def make_event(alert_id: str, type_: EventType = "new", *, frame: Frame | None = None, with_fix: bool = True,
               t0: float = 1_790_000_000.0, zone_outline_xy: Any = None, t_event: float | None = None,
               image_wh: tuple[int, int] | None = None, **extra: Any) -> AlertEvent:
    zone = ZoneRef("z-closed-1", "关闭矿区 1", "closed_mine", "城关镇", {"name": "王工", "phone": "13800000000"}, 12.5)
    fix = GroundFix(38.7123, 111.6234, 1420.0, 850.0, 42.0, 30.0, 8.0, 40.0, cameras=("cam1",)) if with_fix else None
    return AlertEvent(type=type_, alert_id=alert_id, camera_id="cam1", class_name="excavator", rule="closed_mine",
                      score=0.87, xyxy=(100.0, 120.0, 180.0, 200.0), t_first=t0, t_last=t0 + 5.0, zone=zone, fix=fix,
                      probability_in_zone=0.93, track_id=7, preset="p1", cameras=("cam1",), frame=frame,
                      extra=dict(extra), zone_outline_xy=zone_outline_xy, t_event=t_event, image_wh=image_wh)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    t: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Records every message on ``topic``. ``persistent`` uses an MQTT 5 session that outlives disconnects."""

    def __init__(self, port: int, topic: str = "#", *, persistent: bool = True, tls_ca: Path | None = None,
                 username: str | None = None, password: str | None = None,
                 tls_cert: tuple[Path, Path] | None = None) -> None:
        self.topic = topic
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:10]}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca), certfile=str(tls_cert[0]) if tls_cert else None,
                                keyfile=str(tls_cert[1]) if tls_cert else None)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, 30, clean_start=not persistent, properties=props)
        self.client.loop_start()
        assert self.connected.wait(10), "subscriber could not connect"

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)
            self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.snapshot() if m.topic.endswith("/events")]

    def wait(self, predicate: Callable[[Subscriber], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class TcpProxy:
    """Loopback TCP proxy in front of the broker.

    ``hold_downstream``: while set, nothing from the broker reaches the client (no PUBACK arrives).
    ``cut_after(n)``: forward ``n`` more client→broker bytes, then close both sockets (a link cut mid-publish).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = int(self.listener.getsockname()[1])
        self.hold_downstream = threading.Event()
        self._cut_after: int | None = None
        self.cuts = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n_bytes: int) -> None:
        with self._lock:
            self._cut_after = n_bytes

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                watch = [client] if self.hold_downstream.is_set() else [client, upstream]
                ready, _, _ = select.select(watch, [], [], 0.05)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    with self._lock:
                        cut = self._cut_after
                        if cut is not None and len(data) >= cut:
                            self._cut_after = None
                            self.cuts += 1
                        elif cut is not None:
                            self._cut_after = cut - len(data)
                    if cut is not None and len(data) >= cut:
                        upstream.sendall(data[:cut])
                        return
                    upstream.sendall(data)
                if upstream in ready:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()


class Publisher:
    """``python -m tests.mqtt_publisher``: AlertSink + Relay in their own process, as the daemon uses them."""

    def __init__(self, config_path: Path, *, count: int, prefix: str, wait_go: bool = False,
                 log_path: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "tests.mqtt_publisher", str(config_path), "--count", str(count),
               "--prefix", prefix] + (["--wait-go"] if wait_go else [])
        self.log_path = log_path
        stderr = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout_s: float = 20.0) -> str:
        """The next stdout line starting with ``prefix``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"publisher (rc={self.proc.poll()}) printed no {prefix!r} within {timeout_s} s")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(10)

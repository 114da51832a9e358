"""The MQTT relay: outbox rows → broker at QoS 1; a row is deleted only after its PUBACK.

One thread owns the paho-mqtt 2.x client (``CallbackAPIVersion.VERSION2``): it connects, runs paho's
network loop, hands at most ``inflight_window`` outbox rows to paho (mapping paho's message ids to row
ids), deletes rows whose PUBACK arrived, and reconnects with a capped exponential backoff
(``reconnect_min_s`` doubling up to ``reconnect_max_s``, ±20 % jitter).

* After a dropped connection paho re-sends the messages it holds (same message id, DUP flag); rows not
  yet handed over follow. After a restart every row in the outbox is sent again, with the same
  ``alert_id`` and ``seq`` (they are in the committed payload). QoS 1 is at least once: consumers
  de-duplicate by ``(alert_id, seq)`` (docs/MQTT.md).
* MQTT 5 by default (3.1.1 with ``mqtt.protocol: "3.1.1"``), clean start: the publisher needs no broker
  session, the outbox is its state.
* Availability: last will ``offline`` (retained, QoS 1) on ``<prefix>/<box>/available``; ``online``
  (retained) on every connect; ``offline`` published on a clean stop.
* ``publish_status(camera, status, detail)``: retained per camera; the latest of each camera is published
  again on every connect.
* A broker that refuses us (bad credentials, not authorised) or cannot be reached gives ONE log line naming
  the broker (``mqtt[s]://user@host:port``, never the password) per distinct error, not a traceback; the
  next success says how many attempts failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from pipeline.alerts.outbox import Outbox, OutboxRow
from pipeline.alerts.payload import availability_topic, build_status, encode, status_topic
from pipeline.config import MqttConfig
from pipeline.errors import UserError
from pipeline.logs import get_logger
from pipeline.redact import redact

log = get_logger("mqtt")

_LOOP_TIMEOUT_S = 0.05
_REFUSED_RETRY_S = 30.0  # a message the broker refused (PUBACK reason ≥ 0x80) is tried again after this


def broker_name(cfg: MqttConfig) -> str:
    """``mqtts://user@host:port``: what log lines call the broker (no password, ever)."""
    scheme = "mqtts" if cfg.tls is not None else "mqtt"
    user = f"{cfg.username}@" if cfg.username else ""
    return f"{scheme}://{user}{cfg.host}:{cfg.port}"


def _capture_time(payload: bytes) -> float | None:
    """``t_last`` of an event message (the capture time of its latest frame), as UTC seconds."""
    try:
        text = json.loads(payload)["t_last"]
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError):
        return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text if len(text) < 200 else text[:199] + "…")


class Relay:
    """Publishes outbox rows and camera status; ``start()`` / ``stop()``; ``wake()`` after a commit."""

    def __init__(self, cfg: MqttConfig, outbox: Outbox, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.clock = clock
        self.broker = broker_name(cfg)
        password = cfg.password()  # UserError when its env var or file is missing; registered for redaction
        self._password_source = (f"${cfg.password_env}" if cfg.password_env
                                 else str(cfg.password_file) if cfg.password_file else "no password")
        self.v5 = cfg.protocol == "5"
        client_id = cfg.client_id or f"minewatch-{cfg.box_id}"
        if self.v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=MQTTProtocolVersion.MQTTv5)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=MQTTProtocolVersion.MQTTv311, clean_session=True)
        self.client.connect_timeout = cfg.connect_timeout_s
        if cfg.username:
            self.client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            tls = cfg.tls
            for name, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
                if path is not None and not Path(path).is_file():
                    raise UserError(str(path), f"mqtt.tls.{name}", "an existing PEM file", "no such file")
            try:
                self.client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                                    certfile=str(tls.cert_file) if tls.cert_file else None,
                                    keyfile=str(tls.key_file) if tls.key_file else None,
                                    cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise UserError(str(tls.ca_file or tls.cert_file), "mqtt.tls", "valid PEM certificates and key",
                                _short(exc)) from None
            self.client.tls_insecure_set(tls.insecure)
        self.available_topic = availability_topic(cfg)
        self.client.will_set(self.available_topic, b"offline", qos=1, retain=True)
        self.window = cfg.inflight_window
        self.client.max_inflight_messages_set(self.window + 64)  # room for availability and status messages
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

        self._inflight: dict[int, int] = {}  # paho mid → outbox row id
        self._captured_at: dict[int, float] = {}  # paho mid → capture time (UTC s) of the frame behind an alert
        #: called with (seconds from the capture of the frame that caused an alert to the broker's PUBACK of
        #: its new/update message), on paho's thread; the daemon feeds a histogram with it
        self.on_ack_latency: Callable[[float], None] | None = None
        self._acked: list[int] = []
        self._refused: dict[int, float] = {}  # row id → clock() when it may be tried again
        self._status: dict[str, bytes] = {}
        self._status_dirty: set[str] = set()
        self._status_lock = threading.Lock()
        self._need_feed = True
        self._fed_version = -1
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors_in_row = 0
        self._last_error: str | None = None
        self._down_since: float | None = None
        self.stats: dict[str, int] = {"published": 0, "acked": 0, "refused": 0, "connects": 0,
                                      "connect_failures": 0, "disconnects": 0}

    # -- public API -----------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def last_error(self) -> str | None:
        """The latest connection error (one line, broker named), None once connected."""
        return self._last_error

    def start(self) -> None:
        if self._thread is not None:
            return
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s,
                                  clean_start=True if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                  properties=props)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt-relay", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Stop; with ``drain_timeout_s`` > 0, first wait that long for pending rows to be acknowledged."""
        if self._thread is None:
            return
        if drain_timeout_s > 0 and self.connected:
            self.wait_drained(drain_timeout_s)
        self._stop.set()
        self._thread.join(10.0)
        self._thread = None

    def wake(self) -> None:
        """New rows were committed: look at the outbox now rather than at the next poll."""
        self._need_feed = True

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_drained(self, timeout_s: float) -> bool:
        """True once the outbox is empty (every row acknowledged), False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.pending_count() == 0 and not self._acked:
                return True
            time.sleep(0.05)
        return self.outbox.pending_count() == 0

    def publish_status(self, camera_id: str, status: str, detail: dict[str, Any] | None = None) -> None:
        """Retained per-camera status; kept and re-published on every connect (thread-safe)."""
        payload = encode(build_status(status, detail or {}))
        with self._status_lock:
            self._status[camera_id] = payload
            self._status_dirty.add(camera_id)

    # -- paho callbacks (relay thread) ----------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                    _props: Any) -> None:
        if reason.is_failure:
            self._error(f"MQTT broker {self.broker} refused the connection: {reason.getName()} (check"
                        f" mqtt.username and the password from {self._password_source})")
            return
        self.stats["connects"] += 1
        if self._errors_in_row:
            down = f" after {self._errors_in_row} failed attempt(s)"
            if self._down_since is not None:
                down += f", {self.clock() - self._down_since:.1f} s without a broker"
            log.info("connected to MQTT broker %s%s; %d message(s) waiting in the outbox", self.broker, down,
                     self.outbox.pending_count())
        else:
            log.info("connected to MQTT broker %s (%s)", self.broker, "MQTT 5" if self.v5 else "MQTT 3.1.1")
        self._errors_in_row = 0
        self._last_error = None
        self._down_since = None
        client.publish(self.available_topic, b"online", qos=1, retain=True)
        with self._status_lock:
            self._status_dirty = set(self._status)
        self._connected.set()
        self._need_feed = True

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                       _props: Any) -> None:
        if self._connected.is_set():
            self.stats["disconnects"] += 1
            self._down_since = self.clock()
            if not self._stop.is_set():
                log.warning("lost MQTT broker %s (%s): %d message(s) in flight will be re-sent after reconnecting",
                            self.broker, reason.getName() if hasattr(reason, "getName") else reason,
                            len(self._inflight))
        self._connected.clear()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any) -> None:
        row_id = self._inflight.pop(mid, None)
        captured = self._captured_at.pop(mid, None)
        self._need_feed = True
        if row_id is None:
            return  # availability or status
        if captured is not None and not reason.is_failure and self.on_ack_latency is not None:
            self.on_ack_latency(time.time() - captured)
        if reason.is_failure:
            self.stats["refused"] += 1
            log.warning("MQTT broker %s refused message %d (%s): kept in the outbox, tried again in %.0f s",
                        self.broker, row_id, reason.getName(), _REFUSED_RETRY_S)
            self._refused[row_id] = self.clock() + _REFUSED_RETRY_S
            return
        self.stats["acked"] += 1
        self._acked.append(row_id)

    # -- the thread ----------------------------------------------------------------------------------
    def _error(self, message: str, level: int = logging.ERROR) -> None:
        """One log line per distinct error; repeats are counted, not logged."""
        self.stats["connect_failures"] += 1
        self._errors_in_row += 1
        if self._down_since is None:
            self._down_since = self.clock()
        if message != self._last_error:
            log.log(level, "%s", message)
        self._last_error = message

    def _run(self) -> None:
        delay = self.cfg.reconnect_min_s
        while not self._stop.is_set():
            try:
                self.client.reconnect()
            except (OSError, ssl.SSLError, ValueError) as exc:
                if self.cfg.required:
                    self._error(f"MQTT broker {self.broker} unreachable: {_short(exc)} (retrying, at most every"
                                f" {self.cfg.reconnect_max_s:g} s)")
                else:  # mqtt.required false: running without a broker is expected
                    self._error(f"no broker at {self.broker} ({_short(exc)}): alerts wait in the outbox (retrying,"
                                f" at most every {self.cfg.reconnect_max_s:g} s)", logging.INFO)
            else:
                try:
                    self._serve()
                except sqlite3.Error as exc:  # disk full, I/O error: rows stay, try again after the backoff
                    self._connected.clear()
                    log.error("outbox error while relaying to %s (%s): retrying", self.broker, _short(exc))
                except Exception:  # a bug: say where, keep the relay alive
                    self._connected.clear()
                    log.exception("unexpected error in the MQTT relay; reconnecting")
                if self._stop.is_set():
                    break
                if self.stats["connects"] and self._errors_in_row == 0:
                    delay = self.cfg.reconnect_min_s  # we were connected: start the backoff again
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2.0, self.cfg.reconnect_max_s)
        self._flush_acks()

    def _serve(self) -> None:
        """Run the network loop of one connection until it drops or we stop."""
        connects, failures = self.stats["connects"], self.stats["connect_failures"]
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        try:
            while True:
                rc = self.client.loop(_LOOP_TIMEOUT_S)
                self._flush_acks()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if self._stop.is_set():
                    self._goodbye()
                    return
                if self._connected.is_set():
                    self._publish_statuses()
                    self._feed()
        except (OSError, ssl.SSLError) as exc:
            if self.stats["connects"] > connects:
                log.warning("MQTT connection to %s failed: %s", self.broker, _short(exc))
            else:  # e.g. TLS: the broker wants a client certificate
                self._error(f"MQTT broker {self.broker} dropped the connection during login: {_short(exc)}")
            return
        finally:
            self._connected.clear()
        if self.stats["connects"] == connects and self.stats["connect_failures"] == failures:
            log.debug("connection closed during login: %s", mqtt.error_string(rc))
            self._error(f"MQTT broker {self.broker} closed the connection during login (does it want a TLS"
                        " client certificate (mqtt.tls.cert_file), or another protocol (mqtt.protocol)?)")

    def _goodbye(self) -> None:
        """Clean stop: say ``offline`` (the will is not sent on a clean disconnect), then disconnect."""
        if self._connected.is_set():
            info = self.client.publish(self.available_topic, b"offline", qos=1, retain=True)
            deadline = time.monotonic() + 1.0
            while not info.is_published() and time.monotonic() < deadline:
                if self.client.loop(_LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            self._flush_acks()
        self.client.disconnect()
        self._connected.clear()

    def _flush_acks(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            self.outbox.delete(acked)

    def _publish_statuses(self) -> None:
        with self._status_lock:
            dirty, self._status_dirty = self._status_dirty, set()
            items = [(cid, self._status[cid]) for cid in dirty]
        for camera_id, payload in items:
            self.client.publish(status_topic(self.cfg, camera_id), payload, qos=1, retain=True)

    def _feed(self) -> None:
        """Hand the oldest rows not yet with paho to it, up to the in-flight window."""
        room = self.window - len(self._inflight)
        version = self.outbox.version
        now = self.clock()
        retry_due = any(t <= now for t in self._refused.values())
        if room <= 0 or not (self._need_feed or version != self._fed_version or retry_due):
            return
        self._need_feed = False
        self._fed_version = version
        if retry_due:
            self._refused = {r: t for r, t in self._refused.items() if t > now}
        exclude = set(self._inflight.values()) | set(self._refused)
        for row in self.outbox.pending(room, exclude):
            self._publish_row(row)

    def _publish_row(self, row: OutboxRow) -> None:
        payload: bytes | None = row.payload
        props: Properties | None = None
        if self.v5:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("alert_id", row.alert_id), ("seq", str(row.seq)), ("type", row.type)]
            props.ContentType = "image/jpeg" if row.kind == "snapshot" else "application/json"
        if row.kind == "snapshot":
            try:
                payload = Path(str(row.file)).read_bytes()
            except OSError as exc:
                log.warning("snapshot %s of alert %s is gone (%s): its message is dropped, the event still goes",
                            row.file, row.alert_id, _short(exc))
                self.outbox.delete([row.id], counter="snapshot_missing")
                return
        info = self.client.publish(row.topic, payload, qos=self.cfg.qos, retain=False, properties=props)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("paho did not take message %d (%s); tried again later", row.id, mqtt.error_string(info.rc))
            self._refused[row.id] = self.clock() + 1.0
            return
        self._inflight[info.mid] = row.id
        if row.kind == "event" and row.type in ("new", "update") and payload:
            captured = _capture_time(payload)
            if captured is not None:
                self._captured_at[info.mid] = captured
        self.stats["published"] += 1
        if row.attempts:
            log.debug("re-sending outbox row %d (alert %s seq %d)", row.id, row.alert_id, row.seq)


# -- ``python -m pipeline.alerts.relay``: deliver what waits in the outbox ------------------------------
def cli_main(argv: list[str]) -> int:
    """``minewatch alerts`` / ``python -m pipeline.alerts.relay``: outbox status, or drain it to the broker."""
    from pipeline.config import load_config
    from pipeline.logs import setup_logging

    parser = argparse.ArgumentParser(prog="minewatch alerts", description=cli_main.__doc__)
    parser.add_argument("action", choices=["status", "drain"], help="status: print the outbox counters;"
                        " drain: connect and deliver every waiting message, then exit")
    parser.add_argument("--config", default="cameras.yaml", help="config file (default: cameras.yaml)")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="drain: give up after this long")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    config = load_config(args.config)
    outbox = Outbox(config.alerts.outbox_path)
    try:
        if args.action == "status":
            for key, value in outbox.stats().items():
                print(f"{key:<18} {value}")
            return 0
        relay = Relay(config.mqtt, outbox)
        relay.start()
        try:
            if not relay.wait_connected(min(args.timeout_s, config.mqtt.connect_timeout_s + 1.0)):
                print(f"minewatch alerts: {relay.last_error or f'no answer from MQTT broker {relay.broker}'}",
                      file=sys.stderr)
                return 2 if relay.last_error and "refused" in relay.last_error else 1
            drained = relay.wait_drained(args.timeout_s)
        finally:
            relay.stop()
        left = outbox.pending_count()
        print(f"{'drained' if drained else 'timed out'}: {left} message(s) left in the outbox")
        return 0 if drained else 1
    finally:
        outbox.close()


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))

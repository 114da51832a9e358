"""MQTT side of the console: shared subscription, persistent session, store-then-acknowledge.

Topics (see docs/MQTT.md), for each followed box (``+`` = all):
- ``$share/<group>/<prefix>/<box>/events`` and ``$share/<group>/<prefix>/<box>/snapshots/+``, QoS 1: the
  broker hands each message to ONE console of the group; consoles of one group must share the register
  (database_url), since an event and its snapshot may reach different consoles.
- ``<prefix>/<box>/cameras/+/status`` and ``<prefix>/<box>/available``, plain (retained messages are never
  sent on shared subscriptions).

The session is persistent (``clean_start=False`` with ``SessionExpiryInterval`` > 0): while a console is
down the broker queues its share of QoS 1 messages. Messages are acknowledged by hand (paho's
``manual_ack``) only after the register has committed them, so a console that dies between receipt and
commit gets the message again; de-duplication by (alert_id, seq) makes that harmless.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pipeline.alerts.broker_probe import QueueProbe, probe_queue_limit
from pipeline.console.config import ConsoleMqttConfig
from pipeline.console.db import now_iso
from pipeline.console.store import EventRecord, Store
from pipeline.errors import UserError
from pipeline.logs import get_logger

log = get_logger("console.ingest")

#: the broker's queue check waits this long after connecting (the console's own backlog flows first) ...
QUEUE_CHECK_DELAY_S = 10.0
#: ... and its result, kept in the register, is trusted this long (consoles sharing it probe once a day, not at
#: every start: each probe message is a save of the broker's file on a broker that saves on every change)
QUEUE_CHECK_MAX_AGE_S = 24 * 3600.0

#: how long a message whose commit fails is retried before it is left unacknowledged (the broker then
#: redelivers it when this console reconnects).
STORE_RETRY_S = 30.0


@dataclass
class IngestStats:
    events: int = 0
    duplicates: int = 0
    snapshots: int = 0
    statuses: int = 0
    invalid: int = 0
    unacked: int = 0
    connects: int = 0
    alert_ids: list[str] = field(default_factory=list)  # new alerts this instance stored, in order


class EventError(ValueError):
    """A message the console refuses (not JSON, not what the published schema allows, too large, on a topic it
    does not expect, or naming another box than its topic). It is quarantined, acknowledged and logged."""

    def __init__(self, message: str, alert_id: str | None = None) -> None:
        super().__init__(message)
        self.alert_id = alert_id


#: the published contract (docs/MQTT.md); the console validates every message against it
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
EVENT_SCHEMA = "minewatch.event/1"
#: box and camera ids, as cameras.yaml allows them (topic levels)
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: alert ids, as docs/schemas/event.schema.json allows them (the snapshot topic's last level)
ALERT_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
#: largest camera status message (a status and a few counters: well under 1 KiB)
MAX_STATUS_BYTES = 16 * 1024
AVAILABILITY = ("online", "offline")


@functools.cache
def schema_validator(name: str) -> Draft202012Validator:
    """The validator of docs/schemas/<name> (read once)."""
    path = SCHEMA_DIR / name
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(str(path), None, "the published JSON Schema (docs/schemas/ of the checkout)", exc) from None
    return Draft202012Validator(schema)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:24]} is out of range")
    return value


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json(raw: bytes) -> Any:
    """Standard JSON only: NaN, Infinity and numbers that overflow to them are refused (:class:`EventError`)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_not_json_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError, as is a 5000-digit int
        raise EventError(f"not JSON: {_printable(str(exc), 120)}") from None


def schema_problem(validator: Draft202012Validator, doc: Any) -> str | None:
    """One line naming the first field that breaks the schema, or None."""
    err = best_match(validator.iter_errors(doc))
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [k for k in err.validator_value if k not in err.instance]
        if missing:
            return f"{where + '.' if where else ''}{missing[0]}: missing"
    return f"{where or 'message'}: {_printable(err.message, 160)}"


def parse_event(raw: bytes, topic_box: str | None = None, topic: str = "") -> EventRecord:
    """Decode an event message and validate it against docs/schemas/event.schema.json; with ``topic_box``, the
    payload's ``box_id`` must be the topic's. Raises :class:`EventError`."""
    event = decode_json(raw)
    if not isinstance(event, dict):
        raise EventError(f"expected a JSON object, found {type(event).__name__}")
    alert_id = event.get("alert_id") if isinstance(event.get("alert_id"), str) else None
    if event.get("schema") != EVENT_SCHEMA:
        raise EventError(
            f"schema: expected {EVENT_SCHEMA}, found {_printable(repr(event.get('schema')), 60)}", alert_id
        )
    problem = schema_problem(schema_validator("event.schema.json"), event)
    if problem:
        raise EventError(problem, alert_id)
    if topic_box is not None and event["box_id"] != topic_box:
        raise EventError(f"box_id: expected {topic_box} (the topic's box), found {event['box_id']}", alert_id)
    return to_record(event, topic)


def parse_status(raw: bytes) -> tuple[str, str]:
    """(status, t) of a camera status message (docs/schemas/status.schema.json). Raises :class:`EventError`."""
    if len(raw) > MAX_STATUS_BYTES:
        raise EventError(f"status of {len(raw)} bytes: expected at most {MAX_STATUS_BYTES}")
    data = decode_json(raw)
    problem = schema_problem(schema_validator("status.schema.json"), data)
    if problem:
        raise EventError(problem)
    return str(data["status"]), str(data["t"])


def to_record(event: dict[str, Any], topic: str = "") -> EventRecord:
    """The register's view of a validated event message."""
    now = now_iso()
    zone = event.get("zone") or {}
    loc = event.get("location") or {}
    cam = event.get("camera") or {}
    return EventRecord(
        alert_id=str(event["alert_id"]),
        seq=int(event["seq"]),
        event_type=str(event["type"]),
        box_id=str(event["box_id"]),
        camera_id=str(cam.get("id")),
        camera_name=str(cam.get("name") or ""),
        class_name=str(event["class"]),
        rule=str(event.get("rule") or ""),
        score=_float(event.get("score")),
        township=_str(zone.get("township")),
        zone_kind=_str(zone.get("kind")),
        zone_id=_str(zone.get("id")),
        zone_name=_str(zone.get("name")),
        lat=_float(loc.get("lat")),
        lon=_float(loc.get("lon")),
        t_first=str(event.get("t_first") or event.get("t_event") or now),
        t_last=str(event.get("t_last") or event.get("t_event") or now),
        tower_lat=_float(cam.get("lat")),
        tower_lon=_float(cam.get("lon")),
        tower_pan_deg=_float(cam.get("pan_deg")),
        tower_hfov_deg=_float(cam.get("hfov_deg")),
        payload=event,
        topic=topic,
    )


def _printable(text: str, limit: int = 200) -> str:
    """``text`` for one log line: control characters (a newline that would forge a line) escaped, bounded."""
    out = "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text[:limit]
    )
    return out + ("…" if len(text) > limit else "")


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def topic_filters(cfg: ConsoleMqttConfig) -> list[tuple[str, bool]]:
    """(filter, shared) pairs this console subscribes to."""
    out: list[tuple[str, bool]] = []
    share = f"$share/{cfg.share_group}/" if cfg.share_group else ""
    for box in cfg.box_ids:
        base = f"{cfg.topic_prefix}/{box}"
        out.append((f"{share}{base}/events", bool(share)))
        out.append((f"{share}{base}/snapshots/+", bool(share)))
        out.append((f"{base}/cameras/+/status", False))
        out.append((f"{base}/available", False))
    return out


def split_topic(prefix: str, topic: str) -> tuple[str, list[str]] | None:
    """``minewatch/edge-1/snapshots/a1`` → ("edge-1", ["snapshots", "a1"]); None when not under the prefix."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) < 2 or not parts[0]:
        return None
    return parts[0], parts[1:]


class Ingestor:
    """Receives events, snapshots and camera statuses and stores them. ``start()`` / ``stop()``."""

    def __init__(self, cfg: ConsoleMqttConfig, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.stats = IngestStats()
        schema_validator("event.schema.json")  # a missing schema file is a one-line error at the start
        schema_validator("status.schema.json")
        self.connected = threading.Event()
        #: set once the broker acknowledged every subscription of the current connection (SUBACK): from
        #: then on nothing published is missed
        self.subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._lock = threading.Lock()
        #: the broker's queue check (None until it ran): a broker that drops bursts is said on the page
        self.queue_probe: QueueProbe | None = None
        self.queue_check_delay_s = QUEUE_CHECK_DELAY_S
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.effective_client_id(),
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self._client.reconnect_delay_set(1, cfg.reconnect_max_s)
        if cfg.username:
            self._client.username_pw_set(cfg.username, cfg.password())
        if cfg.tls is not None:
            self._client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            self._client.tls_insecure_set(cfg.tls.insecure)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def status(self) -> dict[str, object]:
        """For the page: is the broker link up, and what has come in since the start."""
        s = self.stats
        return {
            "mqtt_connected": self.connected.is_set(),
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "client_id": self.cfg.effective_client_id(),
            "events": s.events,
            "duplicates": s.duplicates,
            "snapshots": s.snapshots,
            "invalid": s.invalid,
            "unacked": s.unacked,
            "connects": s.connects,
            "broker_queue": None
            if self.queue_probe is None
            else {"status": self.queue_probe.status, "detail": self.queue_probe.detail},
        }

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        self._client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        log.info("connecting to %s:%s as %s", self.cfg.host, self.cfg.port, self.cfg.effective_client_id())
        if self.cfg.check_queue:
            threading.Thread(target=self._check_queue, name="broker-queue-check", daemon=True).start()

    def _check_queue(self) -> None:
        """Once, when the broker is reachable: does it keep a burst for a console that is away or slow?"""
        if not self.connected.wait(120):
            return
        key = f"broker_queue:{self.cfg.host}:{self.cfg.port}"
        try:
            cached = json.loads(self.store.setting(key) or "{}")
        except ValueError:
            cached = {}
        if cached and time.time() - float(cached.get("t_s", 0)) < QUEUE_CHECK_MAX_AGE_S:
            probe = QueueProbe(
                str(cached["status"]), int(cached["published"]), int(cached["received"]), str(cached["detail"])
            )
        else:
            time.sleep(self.queue_check_delay_s)
            try:
                probe = probe_queue_limit(self.cfg, self.cfg.topic_prefix)
            except Exception as exc:  # a check must not take the console down (a password file gone, say)
                probe = QueueProbe("unknown", 0, 0, f"could not check the broker's queue: {_printable(str(exc))}")
            if probe.status != "unknown":
                self.store.set_setting(key, json.dumps({**dataclasses.asdict(probe), "t_s": time.time()}))
        self.queue_probe = probe
        if probe.status == "warn":
            log.warning("broker: %s", probe.detail)
        else:
            log.info("broker: %s", probe.detail)

    def stop(self) -> None:
        # A plain DISCONNECT keeps the session (its expiry interval stays): the broker queues for us.
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    # ---- paho callbacks (paho's network thread) --------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.stats.connects += 1
        log.info("connected (session present: %s)", getattr(flags, "session_present", "?"))
        self.subscribed.clear()
        with self._lock:
            for topic, _shared in topic_filters(self.cfg):
                _rc, mid = client.subscribe(topic, qos=1)
                if mid is not None:
                    self._pending_subs.add(mid)
        self.connected.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        failed = [r for r in (reasons or []) if getattr(r, "is_failure", False)]
        if failed:
            log.error("broker refused a subscription: %s", ", ".join(str(r) for r in failed))
            return
        with self._lock:
            self._pending_subs.discard(mid)
            done = not self._pending_subs
        if done:
            self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if reason is not None and getattr(reason, "is_failure", False):
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._handle_with_retry(msg):
            client.ack(msg.mid, msg.qos)
        else:
            self.stats.unacked += 1

    def _handle_with_retry(self, msg: mqtt.MQTTMessage) -> bool:
        deadline = time.monotonic() + STORE_RETRY_S
        delay = 0.2
        while True:
            try:
                self.handle(msg.topic, bytes(msg.payload))
                return True
            except Exception as exc:  # the register is down or locked: retry, then leave it unacknowledged
                if time.monotonic() > deadline:
                    log.error("could not store %s (%s); left unacknowledged for redelivery", msg.topic, exc)
                    return False
                log.warning("storing %s failed (%s); retrying", msg.topic, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def handle(self, topic: str, payload: bytes) -> None:
        """Store one message, or quarantine it when it is refused (it never becomes valid: acknowledged too)."""
        try:
            self._store(topic, payload)
        except EventError as exc:
            split = split_topic(self.cfg.topic_prefix, topic)
            box_id = split[0] if split and ID_RE.match(split[0]) else None
            first = self.store.quarantine(topic, box_id, exc.alert_id, str(exc), payload)
            with self._lock:
                self.stats.invalid += 1
            log.warning(
                "quarantined %d bytes on %s: %s%s",
                len(payload),
                _printable(topic, 160),
                _printable(str(exc)),
                "" if first else " (seen before)",
            )

    def _store(self, topic: str, payload: bytes) -> None:
        split = split_topic(self.cfg.topic_prefix, topic)
        if split is None:
            raise EventError("unexpected topic")
        box_id, rest = split
        if not ID_RE.match(box_id):
            raise EventError(f"box id in the topic: expected {ID_RE.pattern}")
        if rest == ["events"]:
            limit = self.cfg.max_event_kib * 1024
            if len(payload) > limit:
                raise EventError(f"event of {len(payload)} bytes: expected at most {limit} (mqtt.max_event_kib)")
            event = parse_event(payload, topic_box=box_id, topic=topic)
            result = self.store.ingest_event(event)
            with self._lock:
                if result.duplicate:
                    self.stats.duplicates += 1
                else:
                    self.stats.events += 1
                    if result.new_alert:
                        self.stats.alert_ids.append(result.alert_id)
            if result.kept_out is not None:
                log.log(
                    logging.WARNING if result.kept_out else logging.INFO,
                    "%s %s seq %s from %s: the case is no longer open, nothing changed%s",
                    event.event_type,
                    result.alert_id,
                    event.seq,
                    box_id,
                    f" (quarantined: it would change {', '.join(result.kept_out)})" if result.kept_out else "",
                )
            elif not result.duplicate:
                log.info("%s %s seq %s from %s", event.event_type, result.alert_id, event.seq, box_id)
        elif len(rest) == 2 and rest[0] == "snapshots":
            alert_id = rest[1]
            if not ALERT_ID_RE.match(alert_id):
                raise EventError(f"alert id in the topic: expected {ALERT_ID_RE.pattern}")
            limit = self.cfg.max_snapshot_kib * 1024
            if len(payload) > limit:
                raise EventError(
                    f"snapshot of {len(payload)} bytes: expected at most {limit} (mqtt.max_snapshot_kib)", alert_id
                )
            if not payload.startswith(b"\xff\xd8"):
                raise EventError("snapshot: expected a JPEG (FF D8 first)", alert_id)
            if self.store.ingest_snapshot(alert_id, bytes(payload)):
                with self._lock:
                    self.stats.snapshots += 1
        elif rest == ["available"]:
            state = payload.decode("utf-8", "replace").strip()
            if state not in AVAILABILITY:
                raise EventError(f"available: expected {' | '.join(AVAILABILITY)}, found {_printable(state, 20)!r}")
            self.store.set_box_available(box_id, state)
            with self._lock:
                self.stats.statuses += 1
            log.info("box %s is %s", box_id, state)
        elif len(rest) == 3 and rest[0] == "cameras" and rest[2] == "status":
            if not ID_RE.match(rest[1]):
                raise EventError(f"camera id in the topic: expected {ID_RE.pattern}")
            status, t = parse_status(payload)
            self.store.set_camera_status(box_id, rest[1], status, t)
            with self._lock:
                self.stats.statuses += 1
        else:
            raise EventError("unexpected topic")

"""Streaming path for meter readings: HTTP POST and/or an MQTT topic, validated row by row before storing.

- ``POST /readings`` with ``application/json`` (a list of ``{meter_id, t, kwh}`` objects, or
  ``{"rows": [...]}``) or ``text/csv`` (the readings CSV, header included). Answer: 200 with
  ``{"accepted": n, "rejected": [{"row": i, "error": "…"}]}`` when at least one row was stored (or none
  was sent); 422 when every row was refused (a sender must not retry those); 400 when the body is not
  JSON/CSV at all; 413 above ``MAX_BODY_BYTES``. Rows are numbered from 1 in the order sent (CSV: the
  file's line number). ``GET /health`` gives the counters.
- MQTT: the same JSON on a topic, QoS 1; the message is acknowledged only after its valid rows are
  committed (a crash in between makes the broker send it again; the store keeps one row per meter and
  instant, so a repeat changes nothing). Refused rows are logged, one line each, and counted.

Storage: SQLite (WAL, ``synchronous=FULL``), one row per (meter, UTC instant); a later row for the same
instant replaces the earlier, as in a file. ``minewatch power check --db FILE`` reads it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline.errors import UserError
from pipeline.logs import get_logger, setup_logging
from pipeline.power.io import Meter, Reading, RowError, parse_reading, read_meters
from pipeline.sqlite_store import open_durable_sqlite

log = get_logger("power.stream")
MAX_BODY_BYTES = 16 * 2**20
MAX_ROWS_PER_MESSAGE = 100_000
SESSION_EXPIRY_S = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    meter_id TEXT NOT NULL, t_utc_s INTEGER NOT NULL, kwh REAL NOT NULL, received_s REAL NOT NULL,
    source TEXT NOT NULL, PRIMARY KEY (meter_id, t_utc_s)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class ReadingStore:
    """Thread-safe SQLite store of validated readings."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = open_durable_sqlite(self.path, _SCHEMA, "--db")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, readings: Sequence[Reading], rejected: int, source: str) -> None:
        now = time.time()
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(
                    "INSERT OR REPLACE INTO readings (meter_id, t_utc_s, kwh, received_s, source) VALUES (?,?,?,?,?)",
                    [(r.meter_id, r.t_utc_s, r.kwh, now, source) for r in readings],
                )
                for name, value in (("accepted", len(readings)), ("rejected", rejected)):
                    c.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                              (name, value, value))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def all_readings(self) -> list[Reading]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT meter_id, t_utc_s, kwh FROM readings ORDER BY meter_id, t_utc_s").fetchall()
        return [Reading(m, int(t), float(k), 0) for m, t, k in rows]

    def counters(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT name, value FROM counters").fetchall()
        out = {"accepted": 0, "rejected": 0}
        out.update({str(n): int(v) for n, v in rows})
        return out


class BodyError(ValueError):
    """The whole body is unusable (not JSON / CSV of readings)."""


def rows_from_body(body: bytes, content_type: str) -> list[tuple[int, Mapping[str, object]]]:
    """(row number, fields) from a JSON or CSV body; raises :class:`BodyError`."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8") from None
    if "csv" in content_type:
        reader = csv.reader(io.StringIO(text))
        header = [h.strip().lower() for h in next(reader, [])]
        if not {"meter_id", "t", "kwh"} <= set(header):
            raise BodyError("the CSV needs a header with meter_id,t,kwh")
        return [(reader.line_num, dict(zip(header, cells, strict=False))) for cells in reader if cells]
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"the body is not JSON ({exc.msg} at {exc.pos})") from None
    if isinstance(data, dict) and "rows" in data:
        data = data["rows"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise BodyError("expected a list of {meter_id, t, kwh} objects")
    if len(data) > MAX_ROWS_PER_MESSAGE:
        raise BodyError(f"at most {MAX_ROWS_PER_MESSAGE} rows in one message")
    return [(i, row if isinstance(row, dict) else {"__not_object__": row}) for i, row in enumerate(data, start=1)]


def validate(rows: Sequence[tuple[int, Mapping[str, object]]], meters: Mapping[str, Meter]
             ) -> tuple[list[Reading], list[dict[str, object]]]:
    good: list[Reading] = []
    bad: list[dict[str, object]] = []
    for n, fields in rows:
        try:
            if "__not_object__" in fields:
                raise RowError("row", "an object {meter_id, t, kwh}", fields["__not_object__"])
            good.append(parse_reading(fields, meters, n))
        except RowError as exc:
            bad.append({"row": n, "error": str(exc)})
    return good, bad


class Receiver:
    """Validates and stores rows from HTTP and MQTT; counts what it refused."""

    def __init__(self, meters: Mapping[str, Meter], store: ReadingStore) -> None:
        self.meters, self.store = meters, store
        self.stats: Counter[str] = Counter()

    def take(self, body: bytes, content_type: str, source: str) -> tuple[int, dict[str, object]]:
        """(HTTP status, answer) for one body."""
        try:
            rows = rows_from_body(body, content_type)
        except BodyError as exc:
            self.stats["bad_bodies"] += 1
            log.warning("power readings from %s refused: %s", source, exc)
            return 400, {"error": str(exc)}
        good, bad = validate(rows, self.meters)
        for b in bad[:20]:
            log.warning("power reading from %s, row %s refused: %s", source, b["row"], b["error"])
        if good or not bad:
            self.store.add(good, len(bad), source)
        self.stats["accepted"] += len(good)
        self.stats["rejected"] += len(bad)
        status = 422 if bad and not good else 200
        return status, {"accepted": len(good), "rejected": bad}


def make_http_server(receiver: Receiver, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "minewatch-power"

        def _answer(self, status: int, payload: dict[str, object]) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/health":
                self._answer(404, {"error": "GET /health or POST /readings"})
                return
            self._answer(200, {"stored": receiver.store.counters(), "since_start": dict(receiver.stats)})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/readings":
                self._answer(404, {"error": "POST /readings"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "-1")
            except ValueError:
                length = -1
            if length < 0:
                self._answer(411, {"error": "a Content-Length header is needed"})
                return
            if length > MAX_BODY_BYTES:
                self._answer(413, {"error": f"at most {MAX_BODY_BYTES} bytes in one request"})
                self.close_connection = True
                return
            body = self.rfile.read(length)
            status, answer = receiver.take(body, self.headers.get("Content-Type", "application/json"),
                                           f"http:{self.client_address[0]}")
            self._answer(status, answer)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("http %s " + format, self.client_address[0], *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


class MqttReceiver:
    """Subscribes to the readings topic (QoS 1); acknowledges a message after its rows are committed."""

    def __init__(self, receiver: Receiver, host: str, port: int, topic: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt

        self.receiver, self.topic = receiver, topic
        self.subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                   manual_ack=True)
        self._client.reconnect_delay_set(1, 10)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self.subscribed.set()
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def start(self) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S  # the broker queues readings while we are down
        self._client.connect_async(self._host, self._port, keepalive=30, clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self.receiver.take(msg.payload, "application/json", f"mqtt:{msg.topic}")
        except sqlite3.Error as exc:  # not stored: leave it unacknowledged, the broker sends it again
            log.error("power readings on %s not stored (%s): left for the broker to send again", msg.topic, exc)
            return
        client.ack(msg.mid, msg.qos)


def serve_main(args: argparse.Namespace) -> int:
    setup_logging("INFO")
    if not args.http and not args.mqtt_host:
        raise UserError("minewatch power serve", "--http / --mqtt-host", "at least one of them", "neither")
    meters, bad = read_meters(args.meters)
    for b in bad:
        log.warning("%s", b.line())
    store = ReadingStore(args.db)
    receiver = Receiver(meters, store)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = None
    if args.http:
        host, _, port = args.http.rpartition(":")
        try:
            server = make_http_server(receiver, host or "127.0.0.1", int(port))
        except (ValueError, OSError) as exc:
            raise UserError("minewatch power serve", "--http", "HOST:PORT that can be listened on", exc) from None
        threading.Thread(target=server.serve_forever, name="power-http", daemon=True).start()
        log.info("power readings: POST http://%s/readings", args.http)
    mq = None
    if args.mqtt_host:
        import socket

        mq = MqttReceiver(receiver, args.mqtt_host, args.mqtt_port, args.mqtt_topic,
                          f"minewatch-power-{socket.gethostname()}")
        mq.start()
        log.info("power readings: MQTT %s:%s %s", args.mqtt_host, args.mqtt_port, args.mqtt_topic)
    stop.wait()
    if server is not None:
        server.shutdown()
    if mq is not None:
        mq.stop()
    store.close()
    return 0

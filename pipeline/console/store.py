"""The case register: alerts, snapshots, case steps, operators — durable, through a thin DB-API layer.

SQLite (WAL, ``synchronous=FULL``) is the default and what the tests run. The same SQL runs on PostgreSQL
(``postgresql://`` URL, psycopg 3 from the ``postgres`` extra): only the placeholders (``?`` → ``%s``) and
three column types differ. Every write is one transaction; every change of a case is a row of ``case_log``
with its author, and a row of ``changes`` (the feed the live page follows, shared by every console that
shares the database).

Case steps (the county's enforcement mechanism), in order: 发现 discovered → 制止 stopped → 报告 reported →
移送 transferred → 查处 investigated → 整改 rectified. ``discovered`` is recorded when the alert arrives;
an operator records each further step in order; ``rectified`` closes the case. A case can also be
dismissed (false alarm) and reopened, each with its author and reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

STEPS: tuple[str, ...] = ("discovered", "stopped", "reported", "transferred", "investigated", "rectified")
STEP_LABELS_ZH: dict[str, str] = {
    "discovered": "发现",
    "stopped": "制止",
    "reported": "报告",
    "transferred": "移送",
    "investigated": "查处",
    "rectified": "整改",
}
STATUSES: tuple[str, ...] = ("open", "closed", "dismissed")


class CaseError(Exception):
    """A case change that does not fit the case's state (wrong next step, closed case, unknown alert).

    ``conflict`` is True when the case moved on meanwhile (another operator was first)."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


@dataclass(frozen=True)
class IngestResult:
    alert_id: str
    duplicate: bool  # this (alert_id, seq) was stored before: nothing changed
    new_alert: bool  # the first message of this alert_id


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    box_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    class TEXT NOT NULL,
    rule TEXT NOT NULL,
    score REAL,
    township TEXT,
    zone_kind TEXT,
    zone_id TEXT,
    zone_name TEXT,
    lat REAL,
    lon REAL,
    t_first TEXT NOT NULL,
    t_last TEXT NOT NULL,
    event_type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL,
    case_step TEXT NOT NULL,
    case_status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (case_status, t_last);
CREATE TABLE IF NOT EXISTS messages (
    alert_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (alert_id, seq)
);
CREATE TABLE IF NOT EXISTS snapshots (
    alert_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    jpeg {blob} NOT NULL,
    bytes INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    arrival INTEGER NOT NULL,
    PRIMARY KEY (alert_id, sha256)
);
CREATE TABLE IF NOT EXISTS case_log (
    id {serial},
    alert_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL,
    t_done TEXT NOT NULL,
    author TEXT NOT NULL,
    t_recorded TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS case_log_alert ON case_log (alert_id, id);
CREATE TABLE IF NOT EXISTS operators (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id {serial},
    alert_id TEXT,
    kind TEXT NOT NULL,
    t TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS towers (
    box_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    name TEXT NOT NULL,
    lat REAL,
    lon REAL,
    pan_deg REAL,
    hfov_deg REAL,
    status TEXT,
    status_t TEXT,
    PRIMARY KEY (box_id, camera_id)
);
CREATE TABLE IF NOT EXISTS boxes (
    box_id TEXT PRIMARY KEY,
    available TEXT NOT NULL,
    t TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

#: bumped on any incompatible change of the tables above (a register of another version is refused)
SCHEMA_VERSION = 1

_DIALECT_TYPES = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgres": {"serial": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}


#: idle connections kept for reuse. Too low: web requests (each on its own thread) open connections
#: again and again (milliseconds each on PostgreSQL); too high: idle connections held on the server.
POOL_IDLE_MAX = 8


class Database:
    """A small pool of connections to SQLite (file) or PostgreSQL (psycopg 3); ``?`` placeholders.

    A transaction takes a connection from the pool and gives it back after COMMIT/ROLLBACK; a connection
    that fails to roll back (the server went away) is closed instead of reused."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self.path = Path(url.removeprefix("sqlite:///"))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError("console", "database_url", "a writable folder for the SQLite file", exc) from None
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgres"
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise UserError(
                    "console",
                    "database_url",
                    "psycopg installed for PostgreSQL (pip install -e '.[postgres]')",
                    "no module psycopg",
                ) from None
        else:
            raise UserError("console", "database_url", "sqlite:///… or postgresql://…", url.split(":")[0])

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise UserError("console", "database_url", "an SQLite file that can be opened", exc) from None
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(self.url, row_factory=dict_row, autocommit=True)

    def _acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _release(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < POOL_IDLE_MAX:
                self._idle.append(conn)
                return
        conn.close()

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[_Cursor]:
        """A transaction; SQLite takes the write lock up front (``BEGIN IMMEDIATE``) so it never deadlocks."""
        conn = self._acquire()
        try:
            conn.execute("BEGIN IMMEDIATE" if write and self.dialect == "sqlite" else "BEGIN")
            cur = _Cursor(self, conn.cursor())
        except BaseException:
            _close_quietly(conn)
            raise
        try:
            yield cur
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except Exception:
                _close_quietly(conn)
            else:
                self._release(conn)
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            _close_quietly(conn)
            raise
        self._release(conn)

    def create_schema(self) -> None:
        """Create the tables (idempotent) and check that an existing register has this code's schema."""
        ddl = _SCHEMA.format(**_DIALECT_TYPES[self.dialect])
        with self.tx() as cur:
            for statement in ddl.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(
                "INSERT INTO settings (key, value) VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            row = cur.one("SELECT value FROM settings WHERE key = 'schema_version'")
        found = row["value"] if row else None
        if found != str(SCHEMA_VERSION):
            raise UserError(
                "console", "database_url", f"a register of schema version {SCHEMA_VERSION}", f"version {found}"
            )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing to give back
        conn.close()


class _Cursor:
    def __init__(self, db: Database, cur: Any) -> None:
        self._db = db
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(self._db.q(sql), tuple(params))
        return int(self._cur.rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        self._cur.execute(self._db.q(sql), tuple(params))
        row = self._cur.fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cur.execute(self._db.q(sql), tuple(params))
        return [dict(r) for r in self._cur.fetchall()]


class EventError(ValueError):
    """An event message that is not a minewatch event (bad JSON, missing alert_id/seq)."""


def parse_event(raw: bytes) -> dict[str, Any]:
    """Decode an event message and check the fields the register needs; raises :class:`EventError`."""
    try:
        event = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EventError(f"expected a JSON object, found {type(event).__name__}")
    schema = str(event.get("schema", ""))
    if not schema.startswith("minewatch.event/"):
        raise EventError(f"expected schema minewatch.event/…, found {schema!r}")
    for key, kind in (("alert_id", str), ("seq", int), ("box_id", str), ("type", str), ("class", str)):
        if not isinstance(event.get(key), kind) or isinstance(event.get(key), bool):
            raise EventError(f"field {key}: expected {kind.__name__}, found {event.get(key)!r}")
    if not isinstance(event.get("camera"), dict) or not isinstance(event["camera"].get("id"), str):
        raise EventError("field camera.id: expected a string")
    return event


class Store:
    """The register. Thread-safe: each transaction takes its own pooled connection."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)
        self.db.create_schema()

    # ---- ingest ---------------------------------------------------------------------------------------
    def ingest_event(self, event: dict[str, Any]) -> IngestResult:
        """Store one event message (already parsed); de-duplicates by (alert_id, seq).

        A newer seq replaces the alert's latest state (type, times, location, payload); an older one arriving
        late is recorded as seen and changes nothing; the case fields are never touched by events."""
        alert_id = str(event["alert_id"])
        seq = int(event["seq"])
        now = now_iso()
        zone = event.get("zone") or {}
        loc = event.get("location") or {}
        cam = event.get("camera") or {}
        t_first = str(event.get("t_first") or event.get("t_event") or now)
        t_last = str(event.get("t_last") or event.get("t_event") or now)
        fields = {
            "box_id": str(event["box_id"]),
            "camera_id": str(cam.get("id")),
            "class": str(event["class"]),
            "rule": str(event.get("rule") or ""),
            "score": _float(event.get("score")),
            "township": _str(zone.get("township")),
            "zone_kind": _str(zone.get("kind")),
            "zone_id": _str(zone.get("id")),
            "zone_name": _str(zone.get("name")),
            "lat": _float(loc.get("lat")),
            "lon": _float(loc.get("lon")),
            "t_first": t_first,
            "t_last": t_last,
            "event_type": str(event["type"]),
            "seq": seq,
            "payload": json.dumps(event, ensure_ascii=False, sort_keys=True),
        }
        with self.db.tx() as cur:
            if (
                cur.execute(
                    "INSERT INTO messages (alert_id, seq, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (alert_id, seq, now),
                )
                == 0
            ):
                return IngestResult(alert_id, duplicate=True, new_alert=False)
            cols = list(fields)
            inserted = cur.execute(
                f"INSERT INTO alerts (alert_id, {', '.join(cols)}, received_at, case_step, case_status, updated_at)"
                f" VALUES (?, {', '.join('?' for _ in cols)}, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (alert_id, *fields.values(), now, "discovered", "open", now),
            )
            if inserted:
                camera = f"{fields['box_id']}/{fields['camera_id']}"
                if cam.get("name"):
                    camera += f" ({cam['name']})"
                cur.execute(
                    "INSERT INTO case_log (alert_id, action, actor, note, t_done, author, t_recorded)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        alert_id,
                        "discovered",
                        camera,
                        f"{fields['class']} · {fields['rule']}",
                        t_first,
                        "minewatch",
                        now,
                    ),
                )
            else:
                sets = ", ".join(f"{c} = ?" for c in cols if c != "t_first")
                values = [v for c, v in fields.items() if c != "t_first"]
                cur.execute(
                    f"UPDATE alerts SET {sets}, updated_at = ? WHERE alert_id = ? AND seq < ?",
                    (*values, now, alert_id, seq),
                )
                # the earliest t_first wins, whichever message carried it
                cur.execute(
                    "UPDATE alerts SET t_first = ? WHERE alert_id = ? AND t_first > ?", (t_first, alert_id, t_first)
                )
            self._tower(cur, str(event["box_id"]), cam)
            cur.execute(
                "INSERT INTO changes (alert_id, kind, t) VALUES (?, ?, ?)",
                (alert_id, "alert" if inserted else "update", now),
            )
        return IngestResult(alert_id, duplicate=False, new_alert=bool(inserted))

    def _tower(self, cur: _Cursor, box_id: str, cam: dict[str, Any]) -> None:
        if cam.get("lat") is None or cam.get("lon") is None:
            return
        cur.execute(
            "INSERT INTO towers (box_id, camera_id, name, lat, lon, pan_deg, hfov_deg) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (box_id, camera_id) DO UPDATE SET name = excluded.name, lat = excluded.lat,"
            " lon = excluded.lon, pan_deg = excluded.pan_deg, hfov_deg = excluded.hfov_deg",
            (
                box_id,
                str(cam["id"]),
                str(cam.get("name") or ""),
                _float(cam.get("lat")),
                _float(cam.get("lon")),
                _float(cam.get("pan_deg")),
                _float(cam.get("hfov_deg")),
            ),
        )

    def ingest_snapshot(self, alert_id: str, jpeg: bytes) -> bool:
        """Store a snapshot (it may arrive before or after its event; an alert's updates may bring new ones:
        every distinct JPEG is kept). False when this very JPEG was stored before."""
        now = now_iso()
        with self.db.tx() as cur:
            n = cur.execute(
                "INSERT INTO snapshots (alert_id, sha256, jpeg, bytes, received_at, arrival) VALUES (?, ?, ?, ?, ?,"
                " (SELECT COALESCE(MAX(arrival), 0) + 1 FROM snapshots WHERE alert_id = ?)) ON CONFLICT DO NOTHING",
                (alert_id, hashlib.sha256(jpeg).hexdigest(), jpeg, len(jpeg), now, alert_id),
            )
            if n:
                cur.execute("INSERT INTO changes (alert_id, kind, t) VALUES (?, ?, ?)", (alert_id, "snapshot", now))
        return bool(n)

    def set_camera_status(self, box_id: str, camera_id: str, status: str, t: str) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "INSERT INTO towers (box_id, camera_id, name, status, status_t) VALUES (?, ?, '', ?, ?)"
                " ON CONFLICT (box_id, camera_id) DO UPDATE SET status = excluded.status, status_t = excluded.status_t",
                (box_id, camera_id, status, t),
            )
            cur.execute("INSERT INTO changes (alert_id, kind, t) VALUES (NULL, 'tower', ?)", (now_iso(),))

    def set_box_available(self, box_id: str, available: str) -> None:
        """The box's retained ``available`` message (online / offline, the latter also its last will)."""
        now = now_iso()
        with self.db.tx() as cur:
            cur.execute(
                "INSERT INTO boxes (box_id, available, t) VALUES (?, ?, ?)"
                " ON CONFLICT (box_id) DO UPDATE SET available = excluded.available, t = excluded.t",
                (box_id, available, now),
            )
            cur.execute("INSERT INTO changes (alert_id, kind, t) VALUES (NULL, 'box', ?)", (now,))

    def boxes(self) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as cur:
            return cur.all("SELECT * FROM boxes ORDER BY box_id")

    # ---- cases ----------------------------------------------------------------------------------------
    def record_step(
        self, alert_id: str, step: str, author: str, actor: str = "", note: str = "", t_done: str | None = None
    ) -> None:
        """Record the next enforcement step of an open case. Steps go in order; ``rectified`` closes it."""
        if step not in STEPS or step == "discovered":
            raise CaseError(f"unknown step {step!r}: expected one of {', '.join(STEPS[1:])}")
        previous = STEPS[STEPS.index(step) - 1]
        now = now_iso()
        with self.db.tx() as cur:
            row = cur.one("SELECT case_step, case_status FROM alerts WHERE alert_id = ?", (alert_id,))
            if row is None:
                raise CaseError(f"no alert {alert_id!r}")
            status = "closed" if step == "rectified" else "open"
            n = cur.execute(
                "UPDATE alerts SET case_step = ?, case_status = ?, updated_at = ?"
                " WHERE alert_id = ? AND case_step = ? AND case_status = 'open'",
                (step, status, now, alert_id, previous),
            )
            if n == 0:
                if row["case_status"] != "open":
                    raise CaseError(f"case {alert_id} is {row['case_status']}: reopen it first", conflict=True)
                raise CaseError(
                    f"case {alert_id} is at {row['case_step']}; the next step is "
                    f"{_next_step(row['case_step']) or 'none'}, not {step}",
                    conflict=True,
                )
            self._log(cur, alert_id, step, actor, note, t_done or now, author, now)

    def dismiss(self, alert_id: str, author: str, note: str) -> None:
        """Close an open case as a false alarm (the reason is required)."""
        self._set_status(alert_id, "dismissed", ("open",), author, note, "dismissed")

    def reopen(self, alert_id: str, author: str, note: str) -> None:
        """Open a dismissed or closed case again (reason required). A closed case goes back before 整改
        rectified (the site was not put right), so that rectification is recorded again; the log keeps both."""
        self._set_status(alert_id, "open", ("closed", "dismissed"), author, note, "reopened")

    def _set_status(
        self, alert_id: str, status: str, from_statuses: tuple[str, ...], author: str, note: str, action: str
    ) -> None:
        if not note.strip():
            raise CaseError(f"{action}: a reason is required")
        now = now_iso()
        marks = ", ".join("?" for _ in from_statuses)
        with self.db.tx() as cur:
            row = cur.one("SELECT case_status FROM alerts WHERE alert_id = ?", (alert_id,))
            if row is None:
                raise CaseError(f"no alert {alert_id!r}")
            n = cur.execute(
                "UPDATE alerts SET case_status = ?, updated_at = ?,"
                " case_step = CASE WHEN case_step = 'rectified' THEN 'investigated' ELSE case_step END"
                f" WHERE alert_id = ? AND case_status IN ({marks})",
                (status, now, alert_id, *from_statuses),
            )
            if n == 0:
                raise CaseError(f"case {alert_id} is {row['case_status']}: cannot be {action}", conflict=True)
            self._log(cur, alert_id, action, "", note, now, author, now)

    def add_note(self, alert_id: str, author: str, note: str) -> None:
        if not note.strip():
            raise CaseError("note: text is required")
        now = now_iso()
        with self.db.tx() as cur:
            if cur.one("SELECT alert_id FROM alerts WHERE alert_id = ?", (alert_id,)) is None:
                raise CaseError(f"no alert {alert_id!r}")
            cur.execute("UPDATE alerts SET updated_at = ? WHERE alert_id = ?", (now, alert_id))
            self._log(cur, alert_id, "note", "", note, now, author, now)

    def _log(
        self, cur: _Cursor, alert_id: str, action: str, actor: str, note: str, t_done: str, author: str, now: str
    ) -> None:
        cur.execute(
            "INSERT INTO case_log (alert_id, action, actor, note, t_done, author, t_recorded)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alert_id, action, actor[:200], note[:4000], t_done, author, now),
        )
        cur.execute("INSERT INTO changes (alert_id, kind, t) VALUES (?, 'case', ?)", (alert_id, now))

    # ---- reads ----------------------------------------------------------------------------------------
    def list_alerts(
        self,
        township: str | None = None,
        zone_kind: str | None = None,
        class_name: str | None = None,
        status: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        for col, value in (
            ("township", township),
            ("zone_kind", zone_kind),
            ("class", class_name),
            ("case_status", status),
        ):
            if value:
                where.append(f"{col} = ?")
                params.append(value)
        sql = (
            "SELECT a.alert_id, a.box_id, a.camera_id, a.class, a.rule, a.score, a.township, a.zone_kind,"
            " a.zone_id, a.zone_name, a.lat, a.lon, a.t_first, a.t_last, a.event_type, a.seq, a.case_step,"
            " a.case_status, a.updated_at, a.payload,"
            " (SELECT COUNT(*) FROM snapshots s WHERE s.alert_id = a.alert_id) AS snapshot_count"
            " FROM alerts a"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.t_last DESC, a.alert_id LIMIT ?"
        with self.db.tx(write=False) as cur:
            rows = cur.all(sql, (*params, int(limit)))
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,))
            if row is None:
                return None
            row["payload"] = json.loads(row["payload"])
            snaps = cur.all(
                "SELECT sha256, bytes, received_at FROM snapshots WHERE alert_id = ? ORDER BY arrival",
                (alert_id,),
            )
            row["snapshots"] = snaps
            current = _current_snapshot(row["payload"], snaps)
            row["snapshot_sha256"] = current["sha256"] if current else None
            row["snapshot_bytes"] = current["bytes"] if current else None
            row["log"] = cur.all("SELECT * FROM case_log WHERE alert_id = ? ORDER BY id", (alert_id,))
            count = cur.one("SELECT COUNT(*) AS n FROM messages WHERE alert_id = ?", (alert_id,))
            row["messages"] = int(count["n"]) if count else 0
        return row

    def snapshot(self, alert_id: str, sha256: str | None = None) -> bytes | None:
        """The JPEG with this SHA-256, or the alert's current one: the one its latest event announced, else the
        latest received."""
        with self.db.tx(write=False) as cur:
            if sha256 is None:
                alert = cur.one("SELECT payload FROM alerts WHERE alert_id = ?", (alert_id,))
                snaps = cur.all(
                    "SELECT sha256, bytes, received_at FROM snapshots WHERE alert_id = ? ORDER BY arrival",
                    (alert_id,),
                )
                current = _current_snapshot(json.loads(alert["payload"]) if alert else {}, snaps)
                if current is None:
                    return None
                sha256 = str(current["sha256"])
            row = cur.one("SELECT jpeg FROM snapshots WHERE alert_id = ? AND sha256 = ?", (alert_id, sha256))
        return None if row is None else bytes(row["jpeg"])

    def case_logs(self) -> dict[str, list[dict[str, Any]]]:
        with self.db.tx(write=False) as cur:
            rows = cur.all("SELECT * FROM case_log ORDER BY alert_id, id")
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["alert_id"], []).append(r)
        return out

    def towers(self) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as cur:
            return cur.all("SELECT * FROM towers ORDER BY box_id, camera_id")

    def facets(self) -> dict[str, list[str]]:
        """Distinct townships, zone kinds and classes in the register (the filters' choices)."""
        out: dict[str, list[str]] = {}
        with self.db.tx(write=False) as cur:
            for key, col in (("township", "township"), ("zone_kind", "zone_kind"), ("class", "class")):
                rows = cur.all(f"SELECT DISTINCT {col} AS v FROM alerts WHERE {col} IS NOT NULL ORDER BY v")
                out[key] = [str(r["v"]) for r in rows if r["v"]]
        return out

    def latest_change(self) -> int:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT MAX(id) AS m FROM changes")
        return int(row["m"] or 0) if row else 0

    def counts(self) -> dict[str, int]:
        with self.db.tx(write=False) as cur:
            return {
                "alerts": int(cur.one("SELECT COUNT(*) AS n FROM alerts")["n"]),  # type: ignore[index]
                "messages": int(cur.one("SELECT COUNT(*) AS n FROM messages")["n"]),  # type: ignore[index]
                "snapshots": int(cur.one("SELECT COUNT(*) AS n FROM snapshots")["n"]),  # type: ignore[index]
            }

    # ---- operators and settings -------------------------------------------------------------------------
    def add_operator(self, username: str, password_hash: str, display_name: str) -> None:
        with self.db.tx() as cur:
            n = cur.execute(
                "INSERT INTO operators (username, password_hash, display_name, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (username, password_hash, display_name, now_iso()),
            )
        if n == 0:
            raise CaseError(f"operator {username!r} exists already")

    def set_password_hash(self, username: str, password_hash: str) -> bool:
        with self.db.tx() as cur:
            return (
                cur.execute("UPDATE operators SET password_hash = ? WHERE username = ?", (password_hash, username)) > 0
            )

    def operator(self, username: str) -> dict[str, Any] | None:
        with self.db.tx(write=False) as cur:
            return cur.one("SELECT * FROM operators WHERE username = ?", (username,))

    def operators(self) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as cur:
            return cur.all("SELECT username, display_name, created_at FROM operators ORDER BY username")

    def secret(self, key: str) -> str:
        """A random secret kept in the register (shared by every console on the same database)."""
        with self.db.tx() as cur:
            cur.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, secrets.token_hex(32))
            )
            row = cur.one("SELECT value FROM settings WHERE key = ?", (key,))
        assert row is not None
        return str(row["value"])

    def close(self) -> None:
        self.db.close()


def _current_snapshot(payload: dict[str, Any], snaps: list[dict[str, Any]]) -> dict[str, Any] | None:
    want = (payload.get("snapshot") or {}).get("sha256")
    for snap in snaps:
        if snap["sha256"] == want:
            return snap
    return snaps[-1] if snaps else None


def _next_step(step: str) -> str | None:
    i = STEPS.index(step) if step in STEPS else -1
    return STEPS[i + 1] if 0 <= i < len(STEPS) - 1 else None


def next_step(step: str) -> str | None:
    """The step after ``step`` (None after ``rectified``)."""
    return _next_step(step)


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)

"""The case register: alerts, snapshots, towers and boxes, with the case workflow and the operators beside them.

The tables and the SQLite/PostgreSQL layer are in db.py; the wire format (JSON, the published schema) is
parsed by ingest.py into an :class:`EventRecord`; the enforcement steps are cases.py's :class:`CaseWorkflow`
(``store.cases``); the login accounts operators.py's :class:`Operators` (``store.operators``). Every change
of an alert is a row of ``changes`` (the feed the live page follows, shared by every console that shares
the database).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from pipeline.console.cases import CaseLogEntry, CaseWorkflow
from pipeline.console.db import Cursor, Database, now_iso
from pipeline.console.operators import LoginThrottle, Operators, Sessions


@dataclass(frozen=True)
class EventRecord:
    """What the register keeps of one event message (built from the wire by ``ingest.parse_event``)."""

    alert_id: str
    seq: int
    event_type: str  # new | update | end
    box_id: str
    camera_id: str
    camera_name: str
    class_name: str
    rule: str
    score: float | None
    township: str | None
    zone_kind: str | None
    zone_id: str | None
    zone_name: str | None
    lat: float | None  # WGS84 fix of the object, None without a location
    lon: float | None
    t_first: str
    t_last: str
    tower_lat: float | None  # the camera's tower, WGS84 (None: the event did not say)
    tower_lon: float | None
    tower_pan_deg: float | None
    tower_hfov_deg: float | None
    payload: dict[str, Any]  # the whole message, kept as JSON
    topic: str = ""  # where it came from (named in the quarantine when it is kept out of a closed case)

    def alert_columns(self) -> dict[str, Any]:
        """The ``alerts`` columns an event sets (the case columns are the operators')."""
        return {
            "box_id": self.box_id,
            "camera_id": self.camera_id,
            "class": self.class_name,
            "rule": self.rule,
            "score": self.score,
            "township": self.township,
            "zone_kind": self.zone_kind,
            "zone_id": self.zone_id,
            "zone_name": self.zone_name,
            "lat": self.lat,
            "lon": self.lon,
            "t_first": self.t_first,
            "t_last": self.t_last,
            "event_type": self.event_type,
            "seq": self.seq,
            "payload": json.dumps(self.payload, ensure_ascii=False, sort_keys=True),
        }


#: the alerts columns that make a case what it is: a message that would change them on a case that is no
#: longer open is quarantined (an operator reopens the case to take it in)
CASE_COLUMNS: tuple[str, ...] = (
    "box_id",
    "camera_id",
    "class",
    "rule",
    "township",
    "zone_kind",
    "zone_id",
    "zone_name",
    "lat",
    "lon",
)
#: quarantined messages kept (the oldest go first); each keeps at most QUARANTINE_HEAD_BYTES of its payload
QUARANTINE_MAX_ROWS = 10_000
QUARANTINE_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class IngestResult:
    alert_id: str
    duplicate: bool  # this (alert_id, seq) was stored before: nothing changed
    new_alert: bool  # the first message of this alert_id
    #: the case was closed or dismissed: nothing changed; the columns the message would have changed (when
    #: any, the message is in the quarantine)
    kept_out: tuple[str, ...] | None = None


# The rows the register hands out (keys are the column names; ``class`` is why these use the call syntax).
_AlertColumns = TypedDict(
    "_AlertColumns",
    {
        "alert_id": str,
        "box_id": str,
        "camera_id": str,
        "class": str,
        "rule": str,
        "score": float | None,
        "township": str | None,
        "zone_kind": str | None,
        "zone_id": str | None,
        "zone_name": str | None,
        "lat": float | None,
        "lon": float | None,
        "t_first": str,
        "t_last": str,
        "event_type": str,
        "seq": int,
        "case_step": str,
        "case_status": str,
        "updated_at": str,
        "payload": dict[str, Any],  # the latest event message
    },
)


class AlertListRow(_AlertColumns):
    """One alert of :meth:`Store.list_alerts`."""

    received_at: str  # when this console's register first stored it
    snapshot_count: int


class SnapshotInfo(TypedDict):
    sha256: str
    bytes: int
    received_at: str


class AlertDetail(_AlertColumns):
    """One alert with its snapshots, case log and message count (:meth:`Store.get_alert`)."""

    received_at: str
    snapshots: list[SnapshotInfo]  # in order of arrival
    snapshot_sha256: str | None  # the current one: announced by the latest event, else the latest received
    snapshot_bytes: int | None
    log: list[CaseLogEntry]
    messages: int  # distinct (alert_id, seq) received


class TowerRow(TypedDict):
    box_id: str
    camera_id: str
    name: str
    lat: float | None
    lon: float | None
    pan_deg: float | None
    hfov_deg: float | None
    status: str | None
    status_t: str | None


class QuarantineRow(TypedDict):
    """A message the console refused (invalid, too large, or changing a closed case), for operators to see."""

    id: int
    topic: str
    box_id: str | None
    alert_id: str | None
    reason: str
    bytes: int  # the whole payload's size
    received_at: str  # first time
    last_at: str  # latest time (the same message again on the same topic counts in ``times``)
    times: int


class BoxRow(TypedDict):
    box_id: str
    available: str  # online | offline (the last will) | what the box said
    t: str


class Store:
    """The register. Thread-safe: each transaction takes its own pooled connection."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)
        self.db.create_schema()
        self.cases = CaseWorkflow(self.db)
        self.operators = Operators(self.db)
        self.sessions = Sessions(self.db)
        self.logins = LoginThrottle(self.db)

    # ---- ingest ---------------------------------------------------------------------------------------
    def ingest_event(self, event: EventRecord) -> IngestResult:
        """Store one event message; de-duplicates by (alert_id, seq).

        A newer seq replaces the alert's latest state (type, times, location, payload); an older one arriving
        late is recorded as seen and changes nothing; the case fields are never touched by events."""
        alert_id = event.alert_id
        seq = event.seq
        now = now_iso()
        fields = event.alert_columns()
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
            kept_out = self._closed_case(cur, event, fields, now)
            if kept_out is not None:
                return IngestResult(alert_id, duplicate=False, new_alert=False, kept_out=kept_out)
            inserted = cur.execute(
                f"INSERT INTO alerts (alert_id, {', '.join(cols)}, received_at, case_step, case_status, updated_at)"
                f" VALUES (?, {', '.join('?' for _ in cols)}, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (alert_id, *fields.values(), now, "discovered", "open", now),
            )
            if inserted:
                camera = f"{event.box_id}/{event.camera_id}"
                if event.camera_name:
                    camera += f" ({event.camera_name})"
                cur.execute(
                    "INSERT INTO case_log (alert_id, action, actor, note, t_done, author, t_recorded)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        alert_id,
                        "discovered",
                        camera,
                        f"{event.class_name} · {event.rule}",
                        event.t_first,
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
                    "UPDATE alerts SET t_first = ? WHERE alert_id = ? AND t_first > ?",
                    (event.t_first, alert_id, event.t_first),
                )
            self._tower(cur, event)
            cur.execute(
                "INSERT INTO changes (alert_id, kind, t) VALUES (?, ?, ?)",
                (alert_id, "alert" if inserted else "update", now),
            )
        return IngestResult(alert_id, duplicate=False, new_alert=bool(inserted))

    def _closed_case(self, cur: Cursor, event: EventRecord, fields: dict[str, Any], now: str) -> tuple[str, ...] | None:
        """None when the alert is new or its case open; else the case columns the message would change (then
        it is quarantined, so that an operator sees it)."""
        row = cur.one(
            f"SELECT case_status, {', '.join(CASE_COLUMNS)} FROM alerts WHERE alert_id = ?", (event.alert_id,)
        )
        if row is None or row["case_status"] == "open":
            return None
        changed = tuple(c for c in CASE_COLUMNS if row[c] != fields[c])
        if changed:
            raw = json.dumps(event.payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
            reason = f"case {event.alert_id} is {row['case_status']}: the message would change {', '.join(changed)}"
            self._quarantine(cur, event.topic, event.box_id, event.alert_id, reason, raw, now)
        return changed

    def quarantine(self, topic: str, box_id: str | None, alert_id: str | None, reason: str, payload: bytes) -> bool:
        """Keep a refused message for operators to see; False when the same message on the same topic was
        quarantined before (it is counted again)."""
        with self.db.tx() as cur:
            return self._quarantine(cur, topic, box_id, alert_id, reason, payload, now_iso())

    def _quarantine(
        self,
        cur: Cursor,
        topic: str,
        box_id: str | None,
        alert_id: str | None,
        reason: str,
        payload: bytes,
        now: str,
    ) -> bool:
        key = hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()
        n = cur.execute("UPDATE quarantine SET times = times + 1, last_at = ? WHERE key = ?", (now, key))
        if n == 0:
            cur.execute(
                "INSERT INTO quarantine (key, topic, box_id, alert_id, reason, bytes, head, received_at, last_at,"
                " times) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    key,
                    topic[:400],
                    None if box_id is None else box_id[:64],
                    None if alert_id is None else alert_id[:128],
                    reason[:1000],
                    len(payload),
                    payload[:QUARANTINE_HEAD_BYTES],
                    now,
                    now,
                ),
            )
            cur.execute(
                "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?", (QUARANTINE_MAX_ROWS,)
            )
        cur.execute("INSERT INTO changes (alert_id, kind, t) VALUES (NULL, 'quarantine', ?)", (now,))
        return n == 0

    def quarantined(self, limit: int = 200) -> list[QuarantineRow]:
        """The latest refused messages, newest first (without their payloads: :meth:`quarantined_head`)."""
        with self.db.tx(write=False) as cur:
            return cur.rows(
                QuarantineRow,
                "SELECT id, topic, box_id, alert_id, reason, bytes, received_at, last_at, times FROM quarantine"
                " ORDER BY last_at DESC, id DESC LIMIT ?",
                (int(limit),),
            )

    def quarantined_head(self, row_id: int) -> bytes | None:
        """The first bytes (at most QUARANTINE_HEAD_BYTES) of a quarantined message."""
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT head FROM quarantine WHERE id = ?", (row_id,))
        return None if row is None else bytes(row["head"])

    def _tower(self, cur: Cursor, event: EventRecord) -> None:
        if event.tower_lat is None or event.tower_lon is None:
            return
        cur.execute(
            "INSERT INTO towers (box_id, camera_id, name, lat, lon, pan_deg, hfov_deg) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (box_id, camera_id) DO UPDATE SET name = excluded.name, lat = excluded.lat,"
            " lon = excluded.lon, pan_deg = excluded.pan_deg, hfov_deg = excluded.hfov_deg",
            (
                event.box_id,
                event.camera_id,
                event.camera_name,
                event.tower_lat,
                event.tower_lon,
                event.tower_pan_deg,
                event.tower_hfov_deg,
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

    # ---- reads ----------------------------------------------------------------------------------------
    @staticmethod
    def _where(
        township: str | None, zone_kind: str | None, class_name: str | None, status: str | None
    ) -> tuple[str, list[str]]:
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
        return (" WHERE " + " AND ".join(where) if where else ""), params

    def count_alerts(
        self,
        township: str | None = None,
        zone_kind: str | None = None,
        class_name: str | None = None,
        status: str | None = None,
    ) -> int:
        """How many alerts :meth:`list_alerts` would list without a limit."""
        where, params = self._where(township, zone_kind, class_name, status)
        with self.db.tx(write=False) as cur:
            return cur.count(f"SELECT COUNT(*) AS n FROM alerts{where}", params)

    def list_alerts(
        self,
        township: str | None = None,
        zone_kind: str | None = None,
        class_name: str | None = None,
        status: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[AlertListRow]:
        """Newest activity first; ``limit`` rows from ``offset``."""
        where, params = self._where(township, zone_kind, class_name, status)
        sql = (
            "SELECT a.alert_id, a.box_id, a.camera_id, a.class, a.rule, a.score, a.township, a.zone_kind,"
            " a.zone_id, a.zone_name, a.lat, a.lon, a.t_first, a.t_last, a.event_type, a.seq, a.case_step,"
            " a.case_status, a.updated_at, a.payload, a.received_at,"
            " (SELECT COUNT(*) FROM snapshots s WHERE s.alert_id = a.alert_id) AS snapshot_count"
            " FROM alerts a"
        )
        sql += where + " ORDER BY a.t_last DESC, a.alert_id LIMIT ? OFFSET ?"
        with self.db.tx(write=False) as cur:
            rows = cur.all(sql, (*params, int(limit), int(offset)))
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return cast(list[AlertListRow], rows)

    def get_alert(self, alert_id: str) -> AlertDetail | None:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,))
            if row is None:
                return None
            row["payload"] = json.loads(row["payload"])
            snaps = self._snapshots(cur, alert_id)
            row["snapshots"] = snaps
            current = _current_snapshot(row["payload"], snaps)
            row["snapshot_sha256"] = current["sha256"] if current else None
            row["snapshot_bytes"] = current["bytes"] if current else None
            row["log"] = cur.rows(CaseLogEntry, "SELECT * FROM case_log WHERE alert_id = ? ORDER BY id", (alert_id,))
            row["messages"] = cur.count("SELECT COUNT(*) AS n FROM messages WHERE alert_id = ?", (alert_id,))
        return cast(AlertDetail, row)

    @staticmethod
    def _snapshots(cur: Cursor, alert_id: str) -> list[SnapshotInfo]:
        return cur.rows(
            SnapshotInfo,
            "SELECT sha256, bytes, received_at FROM snapshots WHERE alert_id = ? ORDER BY arrival",
            (alert_id,),
        )

    def snapshot(self, alert_id: str, sha256: str | None = None) -> bytes | None:
        """The JPEG with this SHA-256, or the alert's current one: the one its latest event announced, else the
        latest received."""
        with self.db.tx(write=False) as cur:
            if sha256 is None:
                alert = cur.one("SELECT payload FROM alerts WHERE alert_id = ?", (alert_id,))
                current = _current_snapshot(
                    json.loads(alert["payload"]) if alert else {}, self._snapshots(cur, alert_id)
                )
                if current is None:
                    return None
                sha256 = str(current["sha256"])
            row = cur.one("SELECT jpeg FROM snapshots WHERE alert_id = ? AND sha256 = ?", (alert_id, sha256))
        return None if row is None else bytes(row["jpeg"])

    def towers(self) -> list[TowerRow]:
        with self.db.tx(write=False) as cur:
            return cur.rows(TowerRow, "SELECT * FROM towers ORDER BY box_id, camera_id")

    def boxes(self) -> list[BoxRow]:
        with self.db.tx(write=False) as cur:
            return cur.rows(BoxRow, "SELECT * FROM boxes ORDER BY box_id")

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
                "alerts": cur.count("SELECT COUNT(*) AS n FROM alerts"),
                "messages": cur.count("SELECT COUNT(*) AS n FROM messages"),
                "snapshots": cur.count("SELECT COUNT(*) AS n FROM snapshots"),
            }

    # ---- settings -------------------------------------------------------------------------------------
    def secret(self, key: str) -> str:
        """A random secret kept in the register (shared by every console on the same database)."""
        with self.db.tx() as cur:
            cur.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, secrets.token_hex(32))
            )
            row = cur.one("SELECT value FROM settings WHERE key = ?", (key,))
        if row is None:  # inserted or present just above, in the same transaction
            raise RuntimeError(f"setting {key} vanished")
        return str(row["value"])

    def setting(self, key: str) -> str | None:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_setting(self, key: str, value: str) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        self.db.close()


def _current_snapshot(payload: dict[str, Any], snaps: list[SnapshotInfo]) -> SnapshotInfo | None:
    want = (payload.get("snapshot") or {}).get("sha256")
    for snap in snaps:
        if snap["sha256"] == want:
            return snap
    return snaps[-1] if snaps else None

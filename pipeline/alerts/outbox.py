"""The durable outbox: the only place where alerts wait until the broker has acknowledged them.

SQLite in WAL mode with ``synchronous=FULL``: an alert's event message and its snapshot message (the
snapshot as a file path; the JPEG is already on disk and fsynced) are committed in one transaction
before anything is published. The relay deletes a row only after the broker's PUBACK for it.

Bounded size, with an explicit policy when full (every drop is counted in the ``counters`` table,
survives restarts, and is logged as a WARNING at most once a minute with the running totals):

1. the oldest ``update`` messages go first (their snapshot rows before their event rows);
2. then the snapshot messages of the oldest ``new``/``end`` events (the event JSON stays);
3. an incoming ``update`` that still does not fit is dropped itself;
4. only when nothing but ``new``/``end`` event JSON is left do the oldest of those go (logged as an
   ERROR: this is the one case where an alert is lost, and only a cap reached during a very long outage
   brings it — about 1.5 kB per event row, so 100 000 rows hold months of alerts).

A file SQLite cannot read (not a database, a malformed image, a failed ``quick_check``) is moved aside
to ``<name>.corrupt-<UTC time>`` (with its ``-wal``/``-shm``), one ERROR line says so, and a new outbox
is started: the daemon keeps delivering new alerts. Every valid row that can still be read from the moved
file (:mod:`pipeline.alerts.salvage`, ``.dump``-style) is copied into the new outbox and sent again, with
its alert id and seq; one more line counts what was salvaged and what was lost.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.logs import get_logger

log = get_logger("alerts.outbox")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'snapshot')),
    type TEXT NOT NULL CHECK (type IN ('new', 'update', 'end')),
    topic TEXT NOT NULL,
    payload BLOB,
    file TEXT,
    nbytes INTEGER NOT NULL,
    created_s REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_type ON messages (type, id);
CREATE TABLE IF NOT EXISTS seqs (alert_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, updated_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS open_events (alert_id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, state TEXT NOT NULL,
                                        updated_s REAL NOT NULL);
"""
#: counters kept in the outbox (cumulative over the file's life)
COUNTERS = ("committed", "acked", "dropped_update", "dropped_snapshot", "dropped_event", "snapshot_missing",
            "moved_aside", "salvaged")
_DROP_LOG_INTERVAL_S = 60.0
_SEQ_KEEP_S = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message to commit: an event (JSON ``payload``) or a snapshot (``file`` on disk)."""

    kind: str  # "event" | "snapshot"
    topic: str
    payload: bytes | None = None  # event JSON
    file: str | None = None  # snapshot: the JPEG; event: the snapshot it references (kept from pruning)
    nbytes: int = 0  # bytes this message costs (JSON length or JPEG size)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A committed message waiting for its PUBACK."""

    id: int
    alert_id: str
    seq: int
    kind: str
    type: str
    topic: str
    payload: bytes | None
    file: str | None
    nbytes: int
    created_s: float
    attempts: int


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Corrupt or foreign file (move it aside) vs. an environment problem (permissions, full disk: tell the user)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or name.startswith(("SQLITE_CORRUPT_", "SQLITE_NOTADB_")):
        return True
    return type(exc) is sqlite3.DatabaseError  # plain DatabaseError: "malformed", "not a database", our checks


class Outbox:
    """SQLite outbox shared by the alert sink (adds), the relay (reads, deletes) and retention (reads).

    Thread-safe: one connection behind a lock; every method is one short transaction.
    """

    def __init__(self, path: str | Path, *, max_messages: int = 100_000, max_bytes: int = 1024 * 2**20) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._version = 0  # bumped on every add: the relay looks for new rows only when it changed
        self._last_drop_log = 0.0
        self._drops_since_log: dict[str, int] = {}
        self.moved_aside_to: Path | None = None
        self.salvaged = 0  # rows recovered from a moved-aside file at opening
        self._conn = self._open()

    # -- opening, corruption ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(str(self.path), "alerts.outbox_path", "a folder that can be created", exc) from None
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            self._check_and_init(conn)
            return conn
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if not _is_corruption(exc):
                raise UserError(str(self.path), "alerts.outbox_path", "a writable SQLite file", exc) from None
            reason = " ".join(str(exc).split())  # quick_check's report spans lines
        aside = self._move_aside()
        log.error("outbox %s is unreadable (%s): moved aside to %s, started a new outbox; its readable rows"
                  " are salvaged and sent again", self.path, reason, aside.name)
        conn = self._connect()
        self._check_and_init(conn)
        self._bump(conn, "moved_aside", 1)
        self._resend_salvaged(conn, aside)
        return conn

    def _resend_salvaged(self, conn: sqlite3.Connection, aside: Path) -> None:
        """Copy the valid rows that can still be read from the moved-aside file into the new outbox, in
        their order and with their alert ids and seqs (consumers drop what they already had by seq)."""
        from pipeline.alerts.salvage import salvage

        found = salvage(aside)
        self.salvaged = len(found.rows)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in found.rows:
                conn.execute(
                    "INSERT INTO messages (alert_id, seq, kind, type, topic, payload, file, nbytes, created_s,"
                    " attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row.alert_id, row.seq, row.kind, row.type, row.topic, row.payload, row.file, row.nbytes,
                     row.created_s, row.attempts))
            for alert_id, seq in found.seqs.items():
                conn.execute("INSERT INTO seqs (alert_id, last_seq, updated_s) VALUES (?, ?, ?) ON CONFLICT"
                             " (alert_id) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                             (alert_id, seq, time.time()))
            self._bump(conn, "salvaged", len(found.rows))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if found.rows:
            lost = f"; {found.skipped_ids} id(s) on damaged pages and {found.invalid_rows} damaged row(s) lost" \
                if found.skipped_ids or found.invalid_rows else ""
            log.warning("outbox: salvaged %d message(s) of %d alert(s) from %s, sent again%s", len(found.rows),
                        found.alerts, aside.name, lost)
        else:
            why = found.error or (f"{found.invalid_rows} damaged row(s)" if found.invalid_rows else "no rows")
            log.error("outbox: nothing could be salvaged from %s (%s): its pending alerts are lost", aside.name, why)

    def _check_and_init(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            raise sqlite3.DatabaseError("quick_check: " + "; ".join(str(r[0]) for r in rows[:3]))
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this minewatch ({SCHEMA_VERSION})")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("DELETE FROM seqs WHERE updated_s < ?", (time.time() - _SEQ_KEEP_S,))

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        self.moved_aside_to = aside
        return aside

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def set_limits(self, max_messages: int, max_bytes: int) -> None:
        with self._lock:
            self.max_messages, self.max_bytes = max_messages, max_bytes

    # -- writing ------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def last_seq(self, alert_id: str) -> int:
        """Highest ``seq`` committed for ``alert_id`` (0 when none), so a restart continues the sequence."""
        with self._lock:
            row = self._conn.execute("SELECT last_seq FROM seqs WHERE alert_id = ?", (alert_id,)).fetchone()
        return int(row[0]) if row else 0

    def add(self, alert_id: str, seq: int, type_: str, messages: Sequence[Message],
            open_state: tuple[str, str] | None = None) -> list[int]:
        """Commit the messages of one event message (snapshot first, then event) in one transaction.

        ``open_state`` (camera id, state JSON) is kept for a ``new``/``update`` until the event's ``end``
        (pipeline/events/persist.py): a restart continues the events the last run left open.
        Returns the row ids committed; fewer than given (or none) when the size policy dropped some.
        """
        if type_ not in ("new", "update", "end"):
            raise ValueError(f"type must be new, update or end, not {type_!r}")
        now = time.time()
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                keep = self._make_room(conn, type_, list(messages))
                ids: list[int] = []
                for msg in keep:
                    cur = conn.execute(
                        "INSERT INTO messages (alert_id, seq, kind, type, topic, payload, file, nbytes, created_s)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (alert_id, seq, msg.kind, type_, msg.topic, msg.payload, msg.file, msg.nbytes, now))
                    ids.append(int(cur.lastrowid or 0))
                if type_ == "end":
                    conn.execute("DELETE FROM seqs WHERE alert_id = ?", (alert_id,))
                    conn.execute("DELETE FROM open_events WHERE alert_id = ?", (alert_id,))
                else:
                    if open_state is not None:
                        conn.execute("INSERT INTO open_events (alert_id, camera_id, state, updated_s) VALUES"
                                     " (?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state,"
                                     " updated_s = excluded.updated_s", (alert_id, open_state[0], open_state[1], now))
                    conn.execute("INSERT INTO seqs (alert_id, last_seq, updated_s) VALUES (?, ?, ?) ON CONFLICT"
                                 " (alert_id) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq),"
                                 " updated_s = excluded.updated_s", (alert_id, seq, now))
                self._bump(conn, "committed", len(ids))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._version += 1
        self._log_drops()
        return ids

    def _make_room(self, conn: sqlite3.Connection, type_: str, messages: list[Message]) -> list[Message]:
        """Apply the size policy (module docstring) so that ``messages`` fit; returns those that will."""
        count, total = conn.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM messages").fetchone()
        count, total = int(count), int(total)
        keep = list(messages)
        while keep and any(m.nbytes > self.max_bytes for m in keep):  # one message alone beyond the cap
            big = next(m for m in keep if m.nbytes > self.max_bytes)
            keep.remove(big)
            self._count_drop(conn, "dropped_snapshot" if big.kind == "snapshot" else f"dropped_{_tier(type_)}")

        def fits() -> bool:
            return (count + len(keep) <= self.max_messages
                    and total + sum(m.nbytes for m in keep) <= self.max_bytes)

        tiers = (
            ("dropped_update", "type = 'update'"),
            ("dropped_snapshot", "kind = 'snapshot'"),
        )
        for counter, where in tiers:
            while not fits():
                row = conn.execute(f"SELECT id, nbytes FROM messages WHERE {where} ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    break
                conn.execute("DELETE FROM messages WHERE id = ?", (row[0],))
                count, total = count - 1, total - int(row[1])
                self._count_drop(conn, counter)
        while not fits() and any(m.kind == "snapshot" for m in keep):  # the incoming snapshot next
            keep.remove(next(m for m in keep if m.kind == "snapshot"))
            self._count_drop(conn, "dropped_snapshot")
        if not fits() and type_ == "update":
            for _ in keep:
                self._count_drop(conn, "dropped_update")
            return []
        while not fits():
            row = conn.execute("SELECT id, nbytes FROM messages ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            conn.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            count, total = count - 1, total - int(row[1])
            self._count_drop(conn, "dropped_event")
        return keep

    def _count_drop(self, conn: sqlite3.Connection, counter: str) -> None:
        self._bump(conn, counter, 1)
        self._drops_since_log[counter] = self._drops_since_log.get(counter, 0) + 1

    def _log_drops(self) -> None:
        if not self._drops_since_log:
            return
        now = time.monotonic()
        if now - self._last_drop_log < _DROP_LOG_INTERVAL_S and "dropped_event" not in self._drops_since_log:
            return
        drops, self._drops_since_log = self._drops_since_log, {}
        self._last_drop_log = now
        what = ", ".join(f"{k}={v}" for k, v in sorted(drops.items()))
        level = log.error if "dropped_event" in drops else log.warning
        level("outbox full (%d messages / %.1f MB max): dropped %s since the last report (totals in"
              " `minewatch alerts status`)", self.max_messages, self.max_bytes / 2**20, what)

    @staticmethod
    def _bump(conn: sqlite3.Connection, name: str, n: int) -> None:
        if n:
            conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name)"
                         " DO UPDATE SET value = value + excluded.value", (name, n))

    # -- reading, acknowledging ---------------------------------------------------------------------
    def pending(self, limit: int, exclude: Iterable[int] = ()) -> list[OutboxRow]:
        """The oldest ``limit`` rows not in ``exclude`` (those already handed to the MQTT client)."""
        skip = list(exclude)
        with self._lock:
            sql = ("SELECT id, alert_id, seq, kind, type, topic, payload, file, nbytes, created_s, attempts"
                   " FROM messages")
            if skip:
                sql += f" WHERE id NOT IN ({','.join('?' * len(skip))})"
            rows = self._conn.execute(sql + " ORDER BY id LIMIT ?", (*skip, limit)).fetchall()
        return [OutboxRow(*r) for r in rows]

    def delete(self, row_ids: Iterable[int], counter: str = "acked") -> int:
        """Remove rows (after their PUBACK); returns how many were still there."""
        ids = list(row_ids)
        if not ids:
            return 0
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = 0
                for i in range(0, len(ids), 500):
                    chunk = ids[i:i + 500]
                    cur = conn.execute(f"DELETE FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                    gone += cur.rowcount
                self._bump(conn, counter, gone)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return gone

    def note_attempt(self, row_id: int) -> None:
        with self._lock:
            self._conn.execute("UPDATE messages SET attempts = attempts + 1 WHERE id = ?", (row_id,))

    def pending_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def open_events(self) -> list[tuple[str, str]]:
        """(alert_id, state JSON) of the events with a ``new`` and no ``end`` yet, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT alert_id, state FROM open_events ORDER BY updated_s").fetchall()
        return [(str(a), str(s)) for a, s in rows]

    def forget_open_event(self, alert_id: str) -> None:
        """Drop a stored open event that cannot be read back (damaged state)."""
        with self._lock:
            self._conn.execute("DELETE FROM open_events WHERE alert_id = ?", (alert_id,))

    def referenced_files(self) -> set[str]:
        """Snapshot files that unsent rows still need (retention never deletes these)."""
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT file FROM messages WHERE file IS NOT NULL").fetchall()
        return {str(r[0]) for r in rows}

    def stats(self) -> dict[str, int]:
        """Cumulative counters, plus ``pending`` messages and ``pending_bytes`` now."""
        with self._lock:
            out = {name: 0 for name in COUNTERS}
            out.update({str(k): int(v) for k, v in self._conn.execute("SELECT name, value FROM counters")})
            count, total = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM messages").fetchone()
        out["pending"], out["pending_bytes"] = int(count), int(total)
        return out


def _tier(type_: str) -> str:
    return "update" if type_ == "update" else "event"

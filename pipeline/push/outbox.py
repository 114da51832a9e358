"""The push outbox: every push waits here (SQLite, WAL, ``synchronous=FULL``) until its endpoint accepted it.

- A push has a **stable id** (``case_id``, event, level, target): enqueuing it again is a no-op, also after
  it was delivered (the ``sent`` table remembers delivered ids for ``sent_keep_days``), so a restart that
  re-reads the register sends nothing twice.
- A row is deleted only in the transaction that records it as sent, after the endpoint's 2xx (and, for the
  robots, ``errcode`` 0). A crash between the 2xx and that commit sends it once more: at-least-once; a
  JSON receiver de-duplicates by the ``id`` in the body and the ``Idempotency-Key`` header.
- ``cases`` keeps the escalation state (level reached, when, acknowledged) across restarts.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.sqlite_store import open_durable_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pushes (
    push_id TEXT PRIMARY KEY, target_id TEXT NOT NULL, case_id TEXT NOT NULL, event TEXT NOT NULL,
    level INTEGER NOT NULL, body TEXT NOT NULL, created_s REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_s REAL NOT NULL, last_error TEXT
);
CREATE INDEX IF NOT EXISTS pushes_next ON pushes (next_s);
CREATE TABLE IF NOT EXISTS sent (push_id TEXT PRIMARY KEY, target_id TEXT NOT NULL, case_id TEXT NOT NULL,
    sent_s REAL NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT NOT NULL, route INTEGER NOT NULL, notice TEXT NOT NULL, created_s REAL NOT NULL,
    level INTEGER NOT NULL, level_s REAL NOT NULL, acked_s REAL, acked_by TEXT, PRIMARY KEY (case_id, route)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class PushRow:
    push_id: str
    target_id: str
    case_id: str
    event: str
    level: int
    body: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class CaseRow:
    case_id: str
    route: int
    notice: dict[str, Any]
    level: int
    level_s: float


class PushOutbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = open_durable_sqlite(self.path, _SCHEMA, "outbox_path")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _bump(self, name: str, n: int = 1) -> None:
        self._conn.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                           (name, n, n))

    # -- pushes -------------------------------------------------------------------------------------------
    def enqueue(self, push_id: str, target_id: str, case_id: str, event: str, level: int, body: dict[str, Any],
                now: float) -> bool:
        """True when new; False when this id waits already or was delivered before."""
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                if c.execute("SELECT 1 FROM sent WHERE push_id = ?", (push_id,)).fetchone():
                    c.execute("COMMIT")
                    return False
                cur = c.execute(
                    "INSERT OR IGNORE INTO pushes (push_id, target_id, case_id, event, level, body, created_s, next_s)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (push_id, target_id, case_id, event, level, json.dumps(body, ensure_ascii=False), now, now))
                if cur.rowcount:
                    self._bump("enqueued")
                c.execute("COMMIT")
                return bool(cur.rowcount)
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def due(self, now: float, limit: int = 50) -> list[PushRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT push_id, target_id, case_id, event, level, body, attempts FROM pushes WHERE next_s <= ?"
                " ORDER BY next_s, created_s LIMIT ?", (now, limit)).fetchall()
        return [PushRow(r[0], r[1], r[2], r[3], int(r[4]), json.loads(r[5]), int(r[6])) for r in rows]

    def next_due_s(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT MIN(next_s) FROM pushes").fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sent(self, row: PushRow, now: float) -> None:
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("DELETE FROM pushes WHERE push_id = ?", (row.push_id,))
                c.execute("INSERT OR REPLACE INTO sent VALUES (?,?,?,?,?)",
                          (row.push_id, row.target_id, row.case_id, now, row.attempts + 1))
                self._bump("sent")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def mark_failed(self, row: PushRow, next_s: float, error: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE pushes SET attempts = attempts + 1, next_s = ?, last_error = ? WHERE push_id = ?",
                (next_s, error[:300], row.push_id))
            self._bump("failed_attempts")

    def prune_sent(self, before_s: float) -> int:
        with self._lock:
            return self._conn.execute("DELETE FROM sent WHERE sent_s < ?", (before_s,)).rowcount

    def status(self) -> dict[str, Any]:
        with self._lock:
            c = self._conn
            waiting = c.execute("SELECT target_id, COUNT(*), MAX(attempts), MIN(created_s) FROM pushes"
                                " GROUP BY target_id").fetchall()
            counters = dict(c.execute("SELECT name, value FROM counters").fetchall())
            errors = c.execute("SELECT target_id, last_error FROM pushes WHERE last_error IS NOT NULL"
                               " ORDER BY next_s DESC LIMIT 5").fetchall()
            open_cases = c.execute("SELECT COUNT(*) FROM cases WHERE acked_s IS NULL").fetchone()[0]
        return {"waiting": {t: {"pushes": n, "max_attempts": a, "oldest_s": o} for t, n, a, o in waiting},
                "counters": counters, "last_errors": [{"target": t, "error": e} for t, e in errors],
                "unacknowledged_cases": open_cases}

    # -- escalation state ---------------------------------------------------------------------------------
    def open_case(self, case_id: str, route: int, notice: dict[str, Any], now: float) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO cases (case_id, route, notice, created_s, level, level_s) VALUES (?,?,?,?,0,?)",
                (case_id, route, json.dumps(notice, ensure_ascii=False), now, now))
            return bool(cur.rowcount)

    def unacked(self) -> list[CaseRow]:
        with self._lock:
            rows = self._conn.execute("SELECT case_id, route, notice, level, level_s FROM cases"
                                      " WHERE acked_s IS NULL").fetchall()
        return [CaseRow(r[0], int(r[1]), json.loads(r[2]), int(r[3]), float(r[4])) for r in rows]

    def set_level(self, case_id: str, route: int, level: int, now: float) -> None:
        with self._lock:
            self._conn.execute("UPDATE cases SET level = ?, level_s = ? WHERE case_id = ? AND route = ?",
                               (level, now, case_id, route))

    def case_notice(self, case_id: str) -> dict[str, Any] | None:
        """The notice last pushed for this case (any route), None when it was never pushed."""
        with self._lock:
            row = self._conn.execute("SELECT notice FROM cases WHERE case_id = ? LIMIT 1", (case_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_notice(self, case_id: str, route: int, notice: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("UPDATE cases SET notice = ? WHERE case_id = ? AND route = ?",
                               (json.dumps(notice, ensure_ascii=False), case_id, route))

    def ack(self, case_id: str, by: str, now: float) -> bool:
        with self._lock:
            cur = self._conn.execute("UPDATE cases SET acked_s = ?, acked_by = ? WHERE case_id = ? AND acked_s IS NULL",
                                     (now, by, case_id))
            return bool(cur.rowcount)

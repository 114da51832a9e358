"""Row salvage from a damaged outbox file (one that was moved aside because SQLite cannot trust it).

``sqlite3 FILE .recover`` rescued nothing from such files on sqlite3 3.40, but most of their rows sit on
pages that are intact: like ``.dump``, read the ``messages`` table in rowid order, and when a damaged
page stops the scan, step over the ids it holds and scan on (a scan that starts beyond them seeks
through other pages). Every row is checked before it is kept (known kind and type, a topic, event JSON
that parses and names this alert where it names one); the rest is counted as lost. Nothing is written to
the damaged file: it is opened read-only.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.alerts.outbox import OutboxRow

_COLUMNS = "id, alert_id, seq, kind, type, topic, payload, file, nbytes, created_s, attempts"
#: how far past the last readable id to look for more rows when the table's own counter is unreadable
_PROBE_AHEAD = 100_000


@dataclass
class Salvage:
    rows: list[OutboxRow] = field(default_factory=list)  # readable, valid rows in their original order
    seqs: dict[str, int] = field(default_factory=dict)  # alert_id -> last seq committed (restarts continue)
    skipped_ids: int = 0  # ids stepped over on damaged pages (rows, or gaps left by acknowledged rows)
    invalid_rows: int = 0  # rows read but not valid (damaged contents)
    error: str | None = None  # why nothing at all could be read

    @property
    def alerts(self) -> int:
        return len({r.alert_id for r in self.rows})


def _valid(row: OutboxRow) -> bool:
    if row.kind not in ("event", "snapshot") or row.type not in ("new", "update", "end"):
        return False
    if not isinstance(row.alert_id, str) or not row.alert_id or not isinstance(row.topic, str) or not row.topic:
        return False
    if not isinstance(row.seq, int) or row.seq < 0:
        return False
    if row.kind == "snapshot":
        return isinstance(row.file, str) and bool(row.file)
    if not isinstance(row.payload, bytes):
        return False
    try:
        body = json.loads(row.payload)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(body, dict) and body.get("alert_id", row.alert_id) == row.alert_id


def _open_read_only(path: Path) -> sqlite3.Connection:
    # immutable: no locks, no -shm, no WAL replay that could write; the WAL moved aside with it is
    # folded in first where SQLite can (a plain read-only open), else the main file alone is read
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError:
        return sqlite3.connect(f"file:{path}?immutable=1", uri=True)


def salvage(path: Path) -> Salvage:
    """The valid rows (and seqs) that can still be read from a damaged outbox file."""
    out = Salvage()
    try:
        conn = _open_read_only(path)
    except sqlite3.Error as exc:
        out.error = str(exc)
        return out
    try:
        _read_messages(conn, out)
        _read_seqs(conn, out)
    finally:
        conn.close()
    return out


def _max_id(conn: sqlite3.Connection, last: int) -> int:
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        if row is not None and int(row[0]) > last:
            return int(row[0])
    except sqlite3.DatabaseError:
        pass
    return last + _PROBE_AHEAD


def _keep(out: Salvage, raw: tuple[object, ...]) -> None:
    try:
        row = OutboxRow(*raw)  # type: ignore[arg-type]
    except TypeError:
        out.invalid_rows += 1
        return
    if _valid(row):
        out.rows.append(row)
    else:
        out.invalid_rows += 1


def _read_messages(conn: sqlite3.Connection, out: Salvage) -> None:
    last = 0
    end: int | None = None
    failures = 0
    while True:
        try:
            for raw in conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE id > ? ORDER BY id", (last,)):
                last = int(raw[0])
                failures = 0
                _keep(out, raw)
            return
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc) or "not a database" in str(exc):
                out.error = str(exc)
                return
            if out.error is None and not out.rows:
                out.error = str(exc)
        # a damaged page stopped the scan past `last`: step over its ids (a scan that starts beyond them
        # seeks through other pages), one at a time at first, then faster over a long damaged stretch
        if end is None:
            end = _max_id(conn, last)
        failures += 1
        step = 1 if failures <= 1000 else failures // 1000
        out.skipped_ids += step
        last += step
        if last >= end:
            return


def _read_seqs(conn: sqlite3.Connection, out: Salvage) -> None:
    try:
        for alert_id, last_seq in conn.execute("SELECT alert_id, last_seq FROM seqs"):
            if isinstance(alert_id, str) and isinstance(last_seq, int):
                out.seqs[alert_id] = last_seq
    except sqlite3.DatabaseError:
        pass  # seqs only continue sequences; the rows' own seqs are kept below
    for row in out.rows:
        if row.type != "end":
            out.seqs[row.alert_id] = max(out.seqs.get(row.alert_id, 0), row.seq)

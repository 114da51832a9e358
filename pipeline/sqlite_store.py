"""One way to open a durable SQLite store (the power readings, the push outbox): WAL, synchronous FULL,
usable from several threads behind the caller's lock, its schema applied; a file that cannot be opened is
a :class:`UserError` naming the setting that chose it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.errors import UserError


def open_durable_sqlite(path: Path, schema_sql: str, field: str) -> sqlite3.Connection:
    """Open (creating folder and tables) the SQLite file at ``path`` in autocommit mode; ``field`` names the
    option or setting the path came from, for the one-line error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(schema_sql)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise UserError(str(path), field, "a writable SQLite file", exc) from None
    return conn

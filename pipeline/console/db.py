"""The register's database: a thin DB-API layer over SQLite (default) or PostgreSQL, and its tables.

SQLite (WAL, ``synchronous=FULL``) is the default and what the tests run. The same SQL runs on PostgreSQL
(``postgresql://`` URL, psycopg 3 from the ``postgres`` extra): only the placeholders (``?`` → ``%s``) and
three column types differ. Every write is one transaction (:meth:`Database.tx`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from pipeline.errors import UserError

#: a typed row (a TypedDict of the columns a query selects)
RowT = TypeVar("RowT")


def now_iso() -> str:
    """UTC now as ``2026-11-29T08:00:00.000Z`` (the register's time format)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


SCHEMA = """
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
CREATE TABLE IF NOT EXISTS sessions (
    sid_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username);
CREATE TABLE IF NOT EXISTS login_failures (
    id {serial},
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    t TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_t ON login_failures (t);
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
CREATE TABLE IF NOT EXISTS quarantine (
    id {serial},
    key TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    box_id TEXT,
    alert_id TEXT,
    reason TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    head {blob} NOT NULL,
    received_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    times INTEGER NOT NULL
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
    def tx(self, write: bool = True) -> Iterator[Cursor]:
        """A transaction; SQLite takes the write lock up front (``BEGIN IMMEDIATE``) so it never deadlocks."""
        conn = self._acquire()
        try:
            conn.execute("BEGIN IMMEDIATE" if write and self.dialect == "sqlite" else "BEGIN")
            cur = Cursor(self, conn.cursor())
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
        ddl = SCHEMA.format(**_DIALECT_TYPES[self.dialect])
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


class Cursor:
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

    def rows(self, row_type: type[RowT], sql: str, params: Sequence[Any] = ()) -> list[RowT]:
        """:meth:`all` as ``row_type`` (a TypedDict naming the columns ``sql`` selects)."""
        return cast(list[RowT], self.all(sql, params))

    def row(self, row_type: type[RowT], sql: str, params: Sequence[Any] = ()) -> RowT | None:
        """:meth:`one` as ``row_type``."""
        return cast(RowT | None, self.one(sql, params))

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The first column of a ``SELECT COUNT(*) AS n …``."""
        found = self.one(sql, params)
        return int(found["n"]) if found else 0

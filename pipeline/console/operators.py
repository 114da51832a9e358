"""The operators table: who may log in to the console (argon2 hashes only, see auth.py); their sessions, kept
on the server so that logging out ends them; and the count of failed logins that throttles guessing."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from pipeline.console.cases import CaseError
from pipeline.console.db import Database, now_iso


class OperatorSummary(TypedDict):
    username: str
    display_name: str
    created_at: str


class OperatorRow(OperatorSummary):
    password_hash: str  # argon2id; never shown or logged


class Operators:
    """Reads and writes of ``operators``. Hashing and checks of names and passwords are auth.py's."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, username: str, password_hash: str, display_name: str) -> None:
        """Raises :class:`CaseError` when the user name is taken."""
        with self.db.tx() as cur:
            n = cur.execute(
                "INSERT INTO operators (username, password_hash, display_name, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (username, password_hash, display_name, now_iso()),
            )
        if n == 0:
            raise CaseError(f"operator {username!r} exists already")

    def set_password_hash(self, username: str, password_hash: str) -> bool:
        """False when there is no such operator."""
        with self.db.tx() as cur:
            return (
                cur.execute("UPDATE operators SET password_hash = ? WHERE username = ?", (password_hash, username)) > 0
            )

    def get(self, username: str) -> OperatorRow | None:
        with self.db.tx(write=False) as cur:
            return cur.row(OperatorRow, "SELECT * FROM operators WHERE username = ?", (username,))

    def all(self) -> list[OperatorSummary]:
        with self.db.tx(write=False) as cur:
            return cur.rows(
                OperatorSummary, "SELECT username, display_name, created_at FROM operators ORDER BY username"
            )


class LoginSession(TypedDict):
    username: str
    csrf: str  # the token every change (POST) of this session must carry
    expires_at: str


def _sid_key(sid: str) -> str:
    """Sessions are stored by the SHA-256 of their id: a copy of the register holds no usable cookie."""
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Sessions:
    """Logins kept on the server: logging out (or a new password) ends them, whatever the browser still holds."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, username: str, lifetime_h: float) -> tuple[str, str]:
        """A new session: (its id for the cookie, its CSRF token)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = datetime.now(UTC)
        with self.db.tx() as cur:
            cur.execute("DELETE FROM sessions WHERE expires_at < ?", (_iso(now),))
            cur.execute(
                "INSERT INTO sessions (sid_sha256, username, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (_sid_key(sid), username, csrf, _iso(now), _iso(now + timedelta(hours=lifetime_h))),
            )
        return sid, csrf

    def get(self, sid: str) -> LoginSession | None:
        """The live session with this id, or None (unknown, ended or expired)."""
        with self.db.tx(write=False) as cur:
            return cur.row(
                LoginSession,
                "SELECT username, csrf, expires_at FROM sessions WHERE sid_sha256 = ? AND expires_at > ?",
                (_sid_key(sid), now_iso()),
            )

    def end(self, sid: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM sessions WHERE sid_sha256 = ?", (_sid_key(sid),))

    def end_all(self, username: str) -> int:
        """End every session of an operator (after a password change); how many there were."""
        with self.db.tx() as cur:
            return cur.execute("DELETE FROM sessions WHERE username = ?", (username,))


#: failed logins are counted over this window
LOGIN_WINDOW_S = 15 * 60
#: failures from one address for one user name before that pair is refused for the rest of the window
FAILURES_PER_USER_AND_IP = 5
#: failures from one address (any user names) before it is refused: guessing many names
FAILURES_PER_IP = 20
#: failures for one user name (any addresses) before it is locked: guessing from many addresses. An attacker
#: can lock an operator out this way for LOGIN_WINDOW_S; the log names the addresses.
FAILURES_PER_USER = 30


class LoginThrottle:
    """Counts failed logins in the register (shared by every console on it) and says when to refuse one
    before its password is even hashed (argon2 is slow on purpose: unthrottled guesses load the CPUs)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def refused(self, username: str, ip: str) -> str | None:
        """Why a login attempt is refused now (too many failures), or None."""
        since = _iso(datetime.now(UTC) - timedelta(seconds=LOGIN_WINDOW_S))
        with self.db.tx(write=False) as cur:
            pair = cur.count(
                "SELECT COUNT(*) AS n FROM login_failures WHERE username = ? AND ip = ? AND t > ?",
                (username, ip, since),
            )
            by_ip = cur.count("SELECT COUNT(*) AS n FROM login_failures WHERE ip = ? AND t > ?", (ip, since))
            by_user = cur.count(
                "SELECT COUNT(*) AS n FROM login_failures WHERE username = ? AND t > ?", (username, since)
            )
        if pair >= FAILURES_PER_USER_AND_IP:
            return f"{pair} failed logins for this user from this address"
        if by_ip >= FAILURES_PER_IP:
            return f"{by_ip} failed logins from this address"
        if by_user >= FAILURES_PER_USER:
            return f"{by_user} failed logins for this user"
        return None

    def failed(self, username: str, ip: str) -> None:
        now = datetime.now(UTC)
        with self.db.tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE t < ?", (_iso(now - timedelta(days=1)),))
            cur.execute(
                "INSERT INTO login_failures (username, ip, t) VALUES (?, ?, ?)", (username[:64], ip[:64], _iso(now))
            )

    def succeeded(self, username: str, ip: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE username = ? AND ip = ?", (username, ip))

"""Operators' passwords: argon2id hashes (argon2-cffi), never stored or logged in clear."""

from __future__ import annotations

import re
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipeline.console.cases import CaseError
from pipeline.console.store import Store

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_CHARS = 8
_hasher = PasswordHasher()
#: argon2 verifications running at once in this process. Each takes a core for tens of milliseconds and
#: 64 MiB on purpose; parallel guesses would load every core (the console shares its machine with the broker).
_VERIFYING = threading.BoundedSemaphore(1)
#: how long a login waits for its turn before it is refused as busy
VERIFY_WAIT_S = 10.0


class LoginBusy(Exception):
    """Too many logins at once: try again."""


#: verified against when the user does not exist, so that a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash("minewatch-no-such-operator")


def check_new_password(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"at least {MIN_PASSWORD_CHARS} characters"
    if password.strip() != password:
        return "no leading or trailing spaces"
    return None


def add_operator(store: Store, username: str, password: str, display_name: str = "") -> None:
    """Create an operator; raises ValueError for a bad name/password, CaseError when the name is taken."""
    if not USERNAME_RE.match(username):
        raise ValueError("username: letters, digits, '_', '.', '@', '-' (1–64)")
    problem = check_new_password(password)
    if problem:
        raise ValueError(f"password: {problem}")
    store.operators.add(username, _hasher.hash(password), display_name.strip() or username)


def set_password(store: Store, username: str, password: str) -> None:
    problem = check_new_password(password)
    if problem:
        raise ValueError(f"password: {problem}")
    if not store.operators.set_password_hash(username, _hasher.hash(password)):
        raise CaseError(f"no operator {username!r}")
    store.sessions.end_all(username)  # a new password logs every browser of this operator out


def verify(store: Store, username: str, password: str) -> dict[str, str] | None:
    """The operator (username, display_name) when the password matches, else None."""
    row = store.operators.get(username) if USERNAME_RE.match(username) else None
    if not _VERIFYING.acquire(timeout=VERIFY_WAIT_S):
        raise LoginBusy("too many logins at once")
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    finally:
        _VERIFYING.release()
    if row is None:
        return None
    if _hasher.check_needs_rehash(row["password_hash"]):
        store.operators.set_password_hash(username, _hasher.hash(password))
    return {"username": str(row["username"]), "display_name": str(row["display_name"])}

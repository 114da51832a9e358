"""Operators' passwords: argon2id hashes (argon2-cffi), never stored or logged in clear."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipeline.console.cases import CaseError
from pipeline.console.store import Store

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_CHARS = 8
_hasher = PasswordHasher()
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


def verify(store: Store, username: str, password: str) -> dict[str, str] | None:
    """The operator (username, display_name) when the password matches, else None."""
    row = store.operators.get(username) if USERNAME_RE.match(username) else None
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row["password_hash"]):
        store.operators.set_password_hash(username, _hasher.hash(password))
    return {"username": str(row["username"]), "display_name": str(row["display_name"])}

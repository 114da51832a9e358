"""The operators table: who may log in to the console (argon2 hashes only, see auth.py)."""

from __future__ import annotations

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

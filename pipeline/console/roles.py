"""Roles, checked on every write, and the audit log of every write (issue 18 item 5).

| role | may |
|---|---|
| ``viewer`` | read |
| ``operator`` | + case steps and notes, acknowledge and merge cases, add power anomalies and tip-offs |
| ``supervisor`` | + dismiss and reopen, rewards, the reporters' identities |
| ``admin`` | + roles of the operators |

An operator without a role row is an ``operator`` (registers from before roles keep working); ``minewatch
console role --config console.yaml NAME ROLE`` or ``POST /api/operators/<name>/role`` (admin) sets one.
The check is one ``before_request`` hook over a table of (method, path pattern, least role): a write that
no rule names needs ``admin`` (refused by default), so a new route cannot slip through unchecked. Every
write that reaches a route — allowed or refused — is a row of ``audit_log`` (time, user, role, method,
path, HTTP status), readable by supervisors at ``GET /api/audit``.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.wrappers import Response as WResponse

from pipeline.console.db import Database, now_iso
from pipeline.logs import get_logger

log = get_logger("console.roles")
ROLES = ("viewer", "operator", "supervisor", "admin")
DEFAULT_ROLE = "operator"
SCHEMA = """
CREATE TABLE IF NOT EXISTS operator_roles (username TEXT PRIMARY KEY, role TEXT NOT NULL, set_by TEXT NOT NULL,
    set_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (t TEXT NOT NULL, username TEXT NOT NULL, role TEXT NOT NULL,
    method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS audit_log_t ON audit_log (t)
"""
#: (method, path pattern, least role); reads not listed need ``viewer``, writes not listed need ``admin``
RULES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (m, re.compile(p), r) for m, p, r in (
        ("POST", r"^/api/alerts/[^/]+/steps$", "operator"),
        ("POST", r"^/api/alerts/[^/]+/note$", "operator"),
        ("POST", r"^/api/alerts/[^/]+/(dismiss|reopen)$", "supervisor"),
        ("POST", r"^/api/clues/(power|tipoff)$", "operator"),
        ("POST", r"^/intake$", "operator"),
        ("POST", r"^/api/cases/[^/]+/(ack|merge)$", "operator"),
        ("POST", r"^/api/cases/[^/]+/(dismiss|reopen)$", "supervisor"),
        ("POST", r"^/api/tipoffs/[^/]+/reward$", "supervisor"),
        ("GET", r"^/api/tipoffs/[^/]+/reporter$", "supervisor"),
        ("GET", r"^/api/audit$", "supervisor"),
        ("POST", r"^/api/operators/[^/]+/role$", "admin"),
        ("POST", r"^/logout$", "viewer"),
    ))


def least_role(method: str, path: str) -> str:
    for m, pattern, role in RULES:
        if m == method and pattern.match(path):
            return role
    return "viewer" if method in ("GET", "HEAD", "OPTIONS") else "admin"


def allowed(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


class Roles:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.tx() as cur:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)

    def get(self, username: str) -> str:
        with self.db.tx(write=False) as cur:
            row = cur.one("SELECT role FROM operator_roles WHERE username = ?", (username,))
        return str(row["role"]) if row else DEFAULT_ROLE

    def set(self, username: str, role: str, by: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}, found {role!r}")
        with self.db.tx() as cur:
            cur.execute("INSERT INTO operator_roles (username, role, set_by, set_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (username) DO UPDATE SET role = excluded.role, set_by = excluded.set_by,"
                        " set_at = excluded.set_at", (username, role, by, now_iso()))

    def audit(self, username: str, role: str, method: str, path: str, status: int) -> None:
        with self.db.tx() as cur:
            cur.execute("INSERT INTO audit_log (t, username, role, method, path, status) VALUES (?, ?, ?, ?, ?, ?)",
                        (now_iso(), username, role, method, path[:300], status))

    def audit_rows(self, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as cur:
            return cur.all("SELECT * FROM audit_log ORDER BY t DESC LIMIT ?", (limit,))


def register_role_checks(app: Flask, roles: Roles, operator_exists: Any) -> None:
    """The hook (after the login check, which sets ``g.user``), the audit of writes, and the role API."""

    @app.before_request
    def _check_role() -> WResponse | None:
        u = getattr(g, "user", None)
        if u is None:  # public path, or the login check already refused
            return None
        role = roles.get(u["username"])
        g.role = role
        needed = least_role(request.method, request.path)
        if not allowed(role, needed):
            log.warning("%s (%s) refused: %s %s needs %s", u["username"], role, request.method, request.path, needed)
            resp = jsonify(error=f"your role {role} may not do this (needs {needed})")
            resp.status_code = 403
            return resp
        return None

    @app.after_request
    def _audit(resp: WResponse) -> WResponse:
        u = getattr(g, "user", None)
        if u is not None and request.method not in ("GET", "HEAD", "OPTIONS") or (
                u is not None and least_role(request.method, request.path) != "viewer"):
            roles.audit(u["username"], getattr(g, "role", "?"), request.method, request.path, resp.status_code)
        return resp

    @app.post("/api/operators/<username>/role")
    def api_set_role(username: str) -> WResponse:
        body = request.get_json(silent=True) or {}
        if not operator_exists(username):
            resp = jsonify(error="no such operator")
            resp.status_code = 404
            return resp
        try:
            roles.set(username, str(body.get("role", "")), g.user["username"])
        except ValueError as exc:
            resp = jsonify(error=str(exc))
            resp.status_code = 400
            return resp
        log.info("%s set the role of %s to %s", g.user["username"], username, body.get("role"))
        return jsonify(ok=True)

    @app.get("/api/audit")
    def api_audit() -> WResponse:
        return jsonify(audit=roles.audit_rows())

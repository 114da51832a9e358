"""Roles on every write of the console (viewer, operator, supervisor, admin), the audit log, rewards and the
reporter's identity (supervisors only), through the console's HTTP API."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from test_console_store import ingest, make_event
from test_console_web import login

from pipeline.cli import main
from pipeline.console import auth
from pipeline.console.config import ConsoleConfig
from pipeline.console.roles import ROLES, RULES, Roles, least_role
from pipeline.console.store import Store
from pipeline.console.web import create_app

TIP = {"description": "半夜有人在老矿洞口用电钻", "channel": "110", "township": "东沟乡", "address": "东沟村北山",
       "t": "2026-11-29T23:40:00+08:00", "contact": "王五 13700002222"}


@pytest.fixture(scope="module")
def role_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roles") / "r.sqlite"
    store = Store(f"sqlite:///{path}")
    roles = Roles(store.db)
    for role in ROLES:
        auth.add_operator(store, role, f"{role}-password", role)
        roles.set(role, role, "test")
    store.close()
    return path


@pytest.fixture
def app_for(tmp_path: Path, role_db: Path) -> Any:
    db = tmp_path / "r.sqlite"
    shutil.copyfile(role_db, db)
    store = Store(f"sqlite:///{db}")
    ingest(store, make_event("a1"))
    ingest(store, make_event("a2", t="2026-11-29T09:00:00.000Z"))
    app = create_app(ConsoleConfig.model_validate({"database_url": f"sqlite:///{db}"}), store)

    def client(role: str) -> tuple[FlaskClient, str]:
        c = app.test_client()
        return c, login(c, role, f"{role}-password")

    client.store = store  # type: ignore[attr-defined]
    return client


def _post(c: FlaskClient, csrf: str, path: str, body: Any = None) -> Any:
    return c.post(path, data=json.dumps(body or {}), headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})


def _setup_case(app_for: Any) -> tuple[str, str, str]:
    """(case id, another case id, tip-off clue id), made by an admin."""
    c, csrf = app_for("admin")
    tip = _post(c, csrf, "/api/clues/tipoff", TIP).json
    far = _post(c, csrf, "/api/clues/tipoff", {**TIP, "township": "西岭镇", "address": "西岭",
                                               "t": "2026-10-01T10:00:00+08:00"}).json
    return tip["case_id"], far["case_id"], tip["clue_id"]


#: (path template, body, least role)
WRITES = [
    ("/api/alerts/a1/steps", {"step": "stopped", "actor": "张三", "note": "到场"}, "operator"),
    ("/api/alerts/a1/note", {"note": "看过"}, "operator"),
    ("/api/alerts/a2/dismiss", {"note": "误报"}, "supervisor"),
    ("/api/clues/tipoff", {**TIP, "t": "2026-11-30T01:00:00+08:00"}, "operator"),
    ("/api/clues/power", [], "operator"),
    ("/api/cases/{case}/ack", {}, "operator"),
    ("/api/cases/{far}/merge", {"into": "{case}"}, "operator"),
    ("/api/cases/{case}/dismiss", {}, "supervisor"),
    ("/api/tipoffs/{tip}/reward", {"evaluation": "valid", "amount_yuan": 500, "paid": False}, "supervisor"),
    ("/api/operators/viewer/role", {"role": "viewer"}, "admin"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("template", "body", "needed"), WRITES)
def test_every_write_checks_the_role(app_for: Any, role: str, template: str, body: Any, needed: str) -> None:
    case, far, tip = _setup_case(app_for)
    fill = {"case": case, "far": far, "tip": tip}
    path = template.format(**fill)
    body = json.loads(json.dumps(body).replace("{case}", case))
    c, csrf = app_for(role)
    resp = _post(c, csrf, path, body)
    if ROLES.index(role) < ROLES.index(needed):
        assert resp.status_code == 403 and f"needs {needed}" in resp.json["error"]
    else:
        assert resp.status_code in (200, 422), (role, path, resp.json)
    audit = app_for("supervisor")[0].get("/api/audit").json["audit"]
    mine = [a for a in audit if a["username"] == role and a["path"] == path]
    assert mine and mine[0]["role"] == role and mine[0]["status"] == resp.status_code


@pytest.mark.parametrize("role", ROLES)
def test_reporter_identity_only_for_supervisors(app_for: Any, role: str) -> None:
    _, _, tip = _setup_case(app_for)
    c, csrf = app_for(role)
    resp = c.get(f"/api/tipoffs/{tip}/reporter")
    if role in ("viewer", "operator"):
        assert resp.status_code == 403 and "13700002222" not in resp.get_data(as_text=True)
        assert c.get("/api/audit").status_code == 403
    else:
        assert resp.status_code == 200 and resp.json["contact"] == "王五 13700002222"
        assert resp.json["channel"] == "110" and resp.json["reward"] is None
    assert c.get("/api/cases").status_code == 200  # everyone reads


def test_reward_then_merge_then_unknown_write_refused(app_for: Any) -> None:
    case, far, tip = _setup_case(app_for)
    c, csrf = app_for("supervisor")
    assert _post(c, csrf, f"/api/tipoffs/{tip}/reward", {"evaluation": "maybe"}).status_code == 400
    assert _post(c, csrf, f"/api/tipoffs/{tip}/reward",
                 {"evaluation": "valid", "amount_yuan": 2000, "paid": True, "note": "县局奖励"}).status_code == 200
    reward = c.get(f"/api/tipoffs/{tip}/reporter").json["reward"]
    assert reward["amount_yuan"] == 2000 and reward["paid"] == 1 and reward["decided_by"] == "supervisor"
    assert _post(c, csrf, f"/api/cases/{far}/merge", {"into": case}).status_code == 200
    assert _post(c, csrf, f"/api/cases/{far}/merge", {"into": case}).status_code == 409  # merged already
    merged = c.get(f"/api/cases/{case}").json
    assert len(merged["clue_list"]) == 2
    assert least_role("POST", "/api/some/new/write") == "admin" and least_role("GET", "/api/alerts") == "viewer"
    assert all(rule[2] in ROLES for rule in RULES)


def test_role_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-pw\n"))
    assert main(["console", "adduser", "--database-url", url, "carol"]) == 0
    assert main(["console", "role", "--database-url", url, "carol", "supervisor"]) == 0
    assert main(["console", "users", "--database-url", url]) == 0
    assert "supervisor" in capsys.readouterr().out
    assert main(["console", "role", "--database-url", url, "nobody", "admin"]) == 2
    assert "an existing operator" in capsys.readouterr().err

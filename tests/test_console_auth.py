"""Logins as an attacker on the control room's LAN would try them: a kept cookie after logout, guessing, a
cross-site login form, an open redirect, markup in a display name, and case steps with nonsense in them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from test_console_store import ingest, make_event
from test_console_web import login, operators_db, post_login, setup  # noqa: F401 (fixtures)

from pipeline.console import auth, operators
from pipeline.console.config import ConsoleConfig
from pipeline.console.store import Store
from pipeline.console.web import create_app

COOKIE = "minewatch_console"


def test_logout_ends_the_session_on_the_server(setup: tuple[Store, FlaskClient]) -> None:  # noqa: F811
    _, client = setup
    token = login(client, "alice", "alice-password")
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    thief = client.application.test_client()  # a copy of the cookie, taken before the logout
    thief.set_cookie(COOKIE, cookie.value)
    assert thief.get("/api/alerts").status_code == 200
    client.post("/logout", data={"csrf": token})
    assert client.get("/api/alerts").status_code == 401
    assert thief.get("/api/alerts").status_code == 401
    step = thief.post("/api/alerts/a1/steps", json={"step": "stopped", "actor": "x"}, headers={"X-CSRF-Token": token})
    assert step.status_code == 401


def test_a_new_password_ends_every_session_of_that_operator(setup: tuple[Store, FlaskClient]) -> None:  # noqa: F811
    store, client = setup
    login(client, "alice", "alice-password")
    auth.set_password(store, "alice", "a-brand-new-password")
    assert client.get("/api/alerts").status_code == 401


def test_guessing_is_throttled_before_the_password_is_hashed(
    setup: tuple[Store, FlaskClient],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, client = setup
    lan = {"REMOTE_ADDR": "10.0.0.66"}
    for _ in range(operators.FAILURES_PER_USER_AND_IP):
        assert post_login(client, "alice", "guess-guess", **lan).status_code == 200
    refused = post_login(client, "alice", "alice-password", **lan)  # even the right password, from there
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many failed logins" in refused.get_data(as_text=True)
    assert client.get("/api/alerts").status_code == 401
    # alice at her own desk is not locked out by someone else's guesses (below the per-user limit)
    other = client.application.test_client()
    assert post_login(other, "alice", "alice-password", REMOTE_ADDR="10.0.0.7").status_code == 302
    # many user names from one address; one user name from many addresses
    monkeypatch.setattr(operators, "FAILURES_PER_IP", 3)
    monkeypatch.setattr(operators, "FAILURES_PER_USER", 4)
    for name in ("carol", "dave", "erin"):
        post_login(client, name, "guess-guess", REMOTE_ADDR="10.0.0.99")
    assert post_login(client, "bob", "bob-password1", REMOTE_ADDR="10.0.0.99").status_code == 429
    for i in range(4):
        post_login(client, "bob", "guess-guess", REMOTE_ADDR=f"10.0.1.{i}")
    assert post_login(client, "bob", "bob-password1", REMOTE_ADDR="10.0.2.1").status_code == 429


def test_a_login_form_from_another_site_is_refused(setup: tuple[Store, FlaskClient]) -> None:  # noqa: F811
    _, client = setup
    # what a cross-site form sends: the attacker's credentials, no token of this browser's login page
    resp = client.post("/login", data={"username": "bob", "password": "bob-password1"})
    assert resp.status_code == 400
    assert client.get("/api/alerts").status_code == 401
    other = client.application.test_client()
    token = login(other, "alice", "alice-password")  # a token of another browser does not do either
    resp = client.post("/login", data={"username": "bob", "password": "bob-password1", "csrf": token})
    assert resp.status_code == 400 and client.get("/api/alerts").status_code == 401


@pytest.mark.parametrize(
    ("next_", "location"),
    [
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%0A%2Fevil.example", "/"),
        ("//evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("%2Fnotice%3Fclosed%3D1", "/notice?closed=1"),
    ],
)
def test_login_redirects_only_to_this_site(
    setup: tuple[Store, FlaskClient],  # noqa: F811
    next_: str,
    location: str,
) -> None:
    _, client = setup
    resp = post_login(client, "alice", "alice-password", next_=next_)
    assert resp.status_code == 302 and resp.headers["Location"] == location


def test_markup_in_a_display_name_stays_text(tmp_path: Path, operators_db: Path) -> None:  # noqa: F811
    db = tmp_path / "r.sqlite"
    shutil.copyfile(operators_db, db)
    store = Store(f"sqlite:///{db}")
    name = '</script><script>alert("x")</script><!-- & "'
    auth.add_operator(store, "mallory", "mallory-password", name)
    client = create_app(ConsoleConfig.model_validate({"database_url": f"sqlite:///{db}"}), store).test_client()
    login(client, "mallory", "mallory-password")
    page = client.get("/").get_data(as_text=True)
    block = page.split('<script id="page-data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block)["user"]["display_name"] == name
    assert "<script>alert" not in page


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"step": "stopped", "actor": ""}, "actor"),
        ({"step": "stopped", "actor": "   "}, "actor"),
        ({"step": "stopped", "actor": "李四", "t_done": "1970-01-01T00:00:00Z"}, "t_done"),
        ({"step": "stopped", "actor": "李四", "t_done": "2099-01-01T00:00:00Z"}, "t_done"),
        ({"step": "stopped", "actor": "李四", "t_done": "2026-11-29T06:00:00Z"}, "t_done"),  # 2 h before the alert
    ],
)
def test_case_steps_need_an_actor_and_a_time_that_can_be_true(
    setup: tuple[Store, FlaskClient],  # noqa: F811
    body: dict[str, str],
    error: str,
) -> None:
    store, client = setup
    token = login(client, "alice", "alice-password")
    resp = client.post("/api/alerts/a1/steps", json=body, headers={"X-CSRF-Token": token})
    assert resp.status_code == 400 and error in resp.get_json()["error"]
    a = store.get_alert("a1")
    assert a is not None and a["case_step"] == "discovered"
    ok = client.post(
        "/api/alerts/a1/steps",
        json={"step": "stopped", "actor": "李四", "t_done": "2026-11-29T08:30:00Z"},
        headers={"X-CSRF-Token": token},
    )
    assert ok.status_code == 200


def test_store_refuses_an_empty_actor(tmp_path: Path) -> None:
    from pipeline.console.cases import CaseError

    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    ingest(store, make_event())
    with pytest.raises(CaseError, match="actor"):
        store.cases.record_step("a1", "stopped", author="op1", actor="")

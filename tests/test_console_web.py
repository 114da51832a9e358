"""The console's web app through Flask's test client: login, refusals, CSRF, case API, exports."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from flask.testing import FlaskClient
from test_console_store import ingest, make_event

from pipeline.console import auth
from pipeline.console.config import ConsoleConfig
from pipeline.console.store import Store
from pipeline.console.web import create_app


@pytest.fixture(scope="module")
def operators_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A register with two operators (argon2 hashing is slow on purpose: done once per module)."""
    path = tmp_path_factory.mktemp("operators") / "r.sqlite"
    store = Store(f"sqlite:///{path}")
    auth.add_operator(store, "alice", "alice-password", "张三")
    auth.add_operator(store, "bob", "bob-password1", "李四")
    store.close()
    return path


@pytest.fixture
def setup(tmp_path: Path, operators_db: Path) -> tuple[Store, FlaskClient]:
    db = tmp_path / "r.sqlite"
    shutil.copyfile(operators_db, db)
    store = Store(f"sqlite:///{db}")
    ingest(store, make_event("a1"))
    store.ingest_snapshot("a1", b"\xff\xd8jpeg")
    config = ConsoleConfig.model_validate(
        {"database_url": f"sqlite:///{db}", "privacy": {"notice": "mask", "csv": "hide"}}
    )
    app = create_app(config, store)
    return store, app.test_client()


def login_form_token(client: FlaskClient) -> str:
    page = client.get("/login").get_data(as_text=True)
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def post_login(client: FlaskClient, user: str, password: str, next_: str | None = None, **environ: str) -> Any:
    data = {"username": user, "password": password, "csrf": login_form_token(client)}
    path = "/login" + ("?next=" + next_ if next_ is not None else "")
    return client.post(path, data=data, environ_base=dict(environ))


def login(client: FlaskClient, user: str, password: str) -> str:
    resp = post_login(client, user, password)
    assert resp.status_code == 302, resp.data
    page = client.get("/").get_data(as_text=True)
    marker = '"csrf": "'
    return page[page.index(marker) + len(marker) :].split('"', 1)[0]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/alerts", 401),
        ("GET", "/api/alerts/a1", 401),
        ("GET", "/api/map", 401),
        ("GET", "/api/health", 401),
        ("GET", "/api/stream", 401),
        ("GET", "/snapshots/a1.jpg", 401),
        ("GET", "/export/cases.csv", 401),
        ("POST", "/api/alerts/a1/steps", 401),
        ("GET", "/", 302),
        ("GET", "/notice", 302),
        ("GET", "/healthz", 200),
        ("GET", "/login", 200),
    ],
)
def test_unauthenticated_requests_are_refused(
    setup: tuple[Store, FlaskClient], method: str, path: str, status: int
) -> None:
    _, client = setup
    resp = client.open(path, method=method, json={"step": "stopped"} if method == "POST" else None)
    assert resp.status_code == status
    if status == 302:
        assert resp.headers["Location"].startswith("/login")


def test_security_headers(setup: tuple[Store, FlaskClient]) -> None:
    _, client = setup
    resp = client.get("/login")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_wrong_password_is_refused(setup: tuple[Store, FlaskClient]) -> None:
    _, client = setup
    resp = post_login(client, "alice", "nope-nope")
    assert resp.status_code == 200 and "wrong user name or password" in resp.get_data(as_text=True)
    assert client.get("/api/alerts").status_code == 401


def test_changes_need_the_csrf_token(setup: tuple[Store, FlaskClient]) -> None:
    store, client = setup
    login(client, "alice", "alice-password")
    resp = client.post("/api/alerts/a1/steps", json={"step": "stopped"})
    assert resp.status_code == 403
    a = store.get_alert("a1")
    assert a is not None and a["case_step"] == "discovered"


def test_steps_by_two_operators_are_recorded_with_their_authors(
    setup: tuple[Store, FlaskClient], tmp_path: Path
) -> None:
    store, alice = setup
    token_a = login(alice, "alice", "alice-password")
    bob = alice.application.test_client()
    token_b = login(bob, "bob", "bob-password1")
    ok = alice.post(
        "/api/alerts/a1/steps",
        json={"step": "stopped", "actor": "王五", "note": "停工"},
        headers={"X-CSRF-Token": token_a},
    )
    assert ok.status_code == 200
    # bob's page was stale: he also tries to record "stopped" → conflict, nothing changes
    stale = bob.post(
        "/api/alerts/a1/steps", json={"step": "stopped", "actor": "赵六"}, headers={"X-CSRF-Token": token_b}
    )
    assert stale.status_code == 409 and "next step is reported" in stale.get_json()["error"]
    ok = bob.post(
        "/api/alerts/a1/steps",
        json={"step": "reported", "actor": "赵六", "t_done": "2026-11-29T18:00:00+08:00"},
        headers={"X-CSRF-Token": token_b},
    )
    assert ok.status_code == 200
    detail = alice.get("/api/alerts/a1").get_json()
    assert [(e["action"], e["author"]) for e in detail["log"]] == [
        ("discovered", "minewatch"),
        ("stopped", "alice"),
        ("reported", "bob"),
    ]
    assert detail["log"][2]["t_done"] == "2026-11-29T10:00:00.000Z"
    assert detail["next_step"] == "transferred"
    bad = bob.post(
        "/api/alerts/a1/steps",
        json={"step": "transferred", "actor": "赵六", "t_done": "yesterday"},
        headers={"X-CSRF-Token": token_b},
    )
    assert bad.status_code == 400 and "ISO 8601" in bad.get_json()["error"]


def test_list_detail_snapshot_map_and_filters(setup: tuple[Store, FlaskClient]) -> None:
    store, client = setup
    login(client, "alice", "alice-password")
    ingest(store, make_event("b1", cls="fire", township="西沟乡"))
    alerts = client.get("/api/alerts?status=open").get_json()
    assert {a["alert_id"] for a in alerts["alerts"]} == {"a1", "b1"}
    assert alerts["facets"]["township"] == ["东沟乡", "西沟乡"]
    only = client.get("/api/alerts?township=西沟乡&class=fire").get_json()["alerts"]
    assert [a["alert_id"] for a in only] == ["b1"] and only[0]["ellipse_90"]["semi_major_m"] == 40.0
    assert client.get("/api/alerts?limit=x").status_code == 400
    assert len(client.get("/api/alerts?limit=1").get_json()["alerts"]) == 1
    snap = client.get("/snapshots/a1.jpg")
    assert snap.status_code == 200 and snap.mimetype == "image/jpeg" and snap.data == b"\xff\xd8jpeg"
    assert client.get("/snapshots/b1.jpg").status_code == 404
    towers = client.get("/api/map").get_json()["towers"]
    assert [(t["camera_id"], t["pan_deg"]) for t in towers] == [("cam1", 90.0)]


def test_map_boxes_and_gcj02_tiles(setup: tuple[Store, FlaskClient], tmp_path: Path) -> None:
    from pipeline.geo.coords import wgs84_to_gcj02

    store, client = setup
    store.set_box_available("edge-1", "online")
    login(client, "alice", "alice-password")
    data = client.get("/api/map").get_json()
    assert data["boxes"] == [{"box_id": "edge-1", "available": "online", "t": data["boxes"][0]["t"]}]
    wgs = client.get("/api/alerts").get_json()["alerts"][0]
    assert (wgs["lat"], wgs["lon"]) == (38.701, 111.605)
    # AMap-style tiles: everything drawn on the map moves to GCJ-02 (a few hundred metres)
    zone_file = tmp_path / "z.geojson"
    ring = [[111.60, 38.70], [111.61, 38.70], [111.61, 38.71], [111.60, 38.70]]
    feature = {
        "type": "Feature",
        "properties": {"id": "z", "kind": "closed_mine"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    zone_file.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    config = ConsoleConfig.model_validate(
        {
            "database_url": store.db.url,
            "boxes": [{"id": "edge-1", "zones": [str(zone_file)]}],
            "web": {"tile_layer": {"url": "http://tiles.invalid/{z}/{x}/{y}.png", "datum": "gcj02"}},
        }
    )
    gcj = create_app(config, store).test_client()
    login(gcj, "alice", "alice-password")
    moved = gcj.get("/api/alerts").get_json()["alerts"][0]
    assert (moved["lat"], moved["lon"]) == pytest.approx(wgs84_to_gcj02(38.701, 111.605))
    assert abs(moved["lon"] - 111.605) > 0.003  # hundreds of metres, not a rounding
    mapped = gcj.get("/api/map").get_json()
    lon0, lat0 = mapped["zones"]["features"][0]["geometry"]["coordinates"][0][0]
    assert (lat0, lon0) == pytest.approx(wgs84_to_gcj02(38.70, 111.60))
    assert (mapped["towers"][0]["lat"], mapped["towers"][0]["lon"]) == pytest.approx(wgs84_to_gcj02(38.70, 111.60))
    assert gcj.get("/api/map?zones=0").get_json()["zones"]["features"] == []


def test_csv_and_notice_respect_privacy(setup: tuple[Store, FlaskClient]) -> None:
    store, client = setup
    login(client, "alice", "alice-password")
    store.cases.record_step("a1", "stopped", author="alice", actor="李四")  # reviewed: on the notice
    text = client.get("/export/cases.csv").get_data(as_text=True)
    assert "a1" in text and "张三丰" not in text and "13812345678" not in text  # csv: hide
    notice = client.get("/notice").get_data(as_text=True)
    assert "a1" in notice and "张**" in notice and "138****5678" in notice and "张三丰" not in notice


def test_logout_ends_the_session(setup: tuple[Store, FlaskClient]) -> None:
    _, client = setup
    token = login(client, "alice", "alice-password")
    assert client.get("/api/alerts").status_code == 200
    assert client.post("/logout").status_code == 403  # without the token
    client.post("/logout", data={"csrf": token})
    assert client.get("/api/alerts").status_code == 401


def test_health_follows_the_broker_link(setup: tuple[Store, FlaskClient], broker: Broker) -> None:
    """The page's MQTT indicator: a real Mosquitto, killed under the console."""
    from pipeline.console.config import ConsoleMqttConfig
    from pipeline.console.ingest import Ingestor

    store, _ = setup
    cfg = ConsoleMqttConfig(host="127.0.0.1", port=broker.port, client_id="health-test", reconnect_max_s=1)
    ingestor = Ingestor(cfg, store)
    config = ConsoleConfig.model_validate({"database_url": store.db.url})
    client = create_app(config, store, ingestor.status).test_client()
    login(client, "alice", "alice-password")
    ingestor.start()
    try:
        wait_until(lambda: client.get("/api/health").get_json()["mqtt_connected"] is True)
        broker.kill()
        wait_until(lambda: client.get("/api/health").get_json()["mqtt_connected"] is False)
        broker.start()
        wait_until(lambda: client.get("/api/health").get_json()["mqtt_connected"] is True)
        assert client.get("/api/health").get_json()["connects"] == 2
    finally:
        ingestor.stop()


def wait_until(cond: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)

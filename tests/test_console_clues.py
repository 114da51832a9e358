"""Clues fused into cases through the console's HTTP API: a power anomaly and an excavator alert in the
same zone within the window form one case at the top of the list; far or late clues stay apart; power
anomalies and tip-offs are validated before storing; the reporter's contact never leaves the register."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from test_console_store import ingest, make_event
from test_console_web import login

from pipeline.console import auth
from pipeline.console.clues import priority
from pipeline.console.config import ConsoleConfig
from pipeline.console.store import Store
from pipeline.console.web import create_app

ZONE = {"type": "Feature", "properties": {"id": "z1", "name": "老煤矿", "kind": "closed_mine", "township": "东沟乡"},
        "geometry": {"type": "Polygon", "coordinates": [[[111.60, 38.70], [111.61, 38.70], [111.61, 38.71],
                                                         [111.60, 38.71], [111.60, 38.70]]]}}


@pytest.fixture(scope="module")
def operators_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clue-ops") / "r.sqlite"
    store = Store(f"sqlite:///{path}")
    auth.add_operator(store, "alice", "alice-password", "张三")
    store.close()
    return path


@pytest.fixture
def client(tmp_path: Path, operators_db: Path) -> tuple[Store, FlaskClient, str]:
    db = tmp_path / "r.sqlite"
    shutil.copyfile(operators_db, db)
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "z1.geojson").write_text(json.dumps(ZONE, ensure_ascii=False), encoding="utf-8")
    store = Store(f"sqlite:///{db}")
    config = ConsoleConfig.model_validate({
        "database_url": f"sqlite:///{db}",
        "boxes": [{"id": "edge-1", "zones": [str(tmp_path / "zones")], "towers": []}],
        "fusion": {"link_distance_m": 1500, "link_window_h": 48}})
    c = create_app(config, store).test_client()
    csrf = login(c, "alice", "alice-password")
    return store, c, csrf


def _anomaly(**kw: Any) -> dict[str, Any]:
    a = {"meter_id": "M7", "zone_id": "z1", "t_start": "2026-11-29T01:00:00+08:00",
         "t_end": "2026-11-29T05:00:00+08:00", "kind": "night_or_holiday_use", "kwh_excess": 612.3, "score": 14.2}
    a.update(kw)
    return a


def _post(c: FlaskClient, csrf: str, path: str, body: Any, lines: bool = False) -> Any:
    data = "\n".join(json.dumps(x, ensure_ascii=False) for x in body) if lines else json.dumps(body)
    return c.post(path, data=data, headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})


def test_power_and_excavator_in_one_zone_make_the_top_case(client: tuple[Store, FlaskClient, str]) -> None:
    store, c, csrf = client
    ingest(store, make_event("a-far", t="2026-11-29T03:00:00.000Z", cls="person", kind="illegal_site",
                             zone={"id": "z9", "name": "远处", "kind": "illegal_site", "township": "西岭镇",
                                   "responsible": {"name": "赵", "phone": "13800000001"},
                                   "distance_to_boundary_m": -1.0},
                             location={**make_event()["location"], "lat": 38.9, "lon": 111.9}))
    resp = _post(c, csrf, "/api/clues/power", [_anomaly()], lines=True)  # JSON lines, as power check writes
    assert resp.status_code == 200 and resp.json["added"] == 1
    ingest(store, make_event("a-exc", t="2026-11-29T02:30:00.000Z"))  # excavator, zone z1, the next morning
    cases = c.get("/api/cases").json["cases"]
    assert len(cases) == 2
    top = cases[0]
    assert top["priority"] == 100 and top["clues"] == {"camera": 1, "power": 1} and top["zone_id"] == "z1"
    assert top["township"] == "东沟乡" and cases[1]["priority"] < 100
    detail = c.get(f"/api/cases/{top['case_id']}").json
    assert [x["kind"] for x in detail["clue_list"]] == ["power", "camera"]
    # the same anomaly again: nothing new
    again = _post(c, csrf, "/api/clues/power", {"anomalies": [_anomaly()]})
    assert again.json["added"] == 0 and again.json["duplicates"] == 1 and again.json["cases"] == [top["case_id"]]
    # an anomaly of the same meter a week later opens its own case
    later = _post(c, csrf, "/api/clues/power", [_anomaly(t_start="2026-12-06T01:00:00+08:00",
                                                         t_end="2026-12-06T03:00:00+08:00")])
    assert later.json["cases"] != [top["case_id"]]
    assert len(c.get("/api/cases").json["cases"]) == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [({"kind": "theft"}, "kind"), ({"t_start": "yesterday"}, "t_start"), ({"kwh_excess": -1}, "kwh_excess"),
     ({"kwh_excess": "a lot"}, "kwh_excess"), ({"meter_id": None}, "meter_id"), ({"lat": 95, "lon": 1}, "lat")],
)
def test_power_anomalies_are_validated(client: tuple[Store, FlaskClient, str], change: dict[str, Any],
                                       field: str) -> None:
    _, c, csrf = client
    resp = _post(c, csrf, "/api/clues/power", [_anomaly(**change)])
    assert resp.status_code == 422 and resp.json["rejected"][0]["error"].startswith(field)
    assert c.get("/api/cases").json["cases"] == []


def test_tipoff_joins_the_case_and_keeps_the_reporter_private(client: tuple[Store, FlaskClient, str]) -> None:
    store, c, csrf = client
    ingest(store, make_event("a-exc", t="2026-11-29T02:30:00.000Z"))
    tip = {"description": "夜里有挖掘机在老煤矿挖煤，声音很大", "channel": "12345", "township": "东沟乡",
           "lat": 38.7052, "lon": 111.6061, "t": "2026-11-29T23:40:00+08:00", "contact": "李四 13900001111"}
    resp = _post(c, csrf, "/api/clues/tipoff", tip)
    assert resp.status_code == 200
    receipt, case_id = resp.json["receipt"], resp.json["case_id"]
    case = c.get(f"/api/cases/{case_id}").json
    assert {x["kind"] for x in case["clue_list"]} == {"camera", "tipoff"}
    assert "13900001111" not in json.dumps(case, ensure_ascii=False)
    assert "13900001111" not in json.dumps(c.get("/api/cases").json, ensure_ascii=False)
    assert c.get(f"/api/receipts/{receipt.lower()}").json["status"] == "open"
    assert c.get("/api/receipts/NOSUCHCODE").status_code == 404
    for bad, field in (({"channel": "twitter"}, "channel"), ({"lat": None, "lon": None}, "place"),
                       ({"lat": 38.7, "lon": None}, "lat/lon"), ({"description": ""}, "description")):
        r = _post(c, csrf, "/api/clues/tipoff", {**tip, **bad})
        assert r.status_code == 400 and r.json["error"].startswith(field), r.json


def test_writes_need_login_and_csrf(client: tuple[Store, FlaskClient, str]) -> None:
    _, c, _ = client
    assert _post(c, "wrong", "/api/clues/power", [_anomaly()]).status_code == 403
    c.post("/logout", headers={"X-CSRF-Token": "x"})
    fresh = c.application.test_client()
    assert fresh.get("/api/cases").status_code == 401
    assert _post(fresh, "x", "/api/clues/tipoff", {}).status_code == 401


@pytest.mark.parametrize(
    ("clues", "expected"),
    [([("power", {"kind": "use_at_closed_site"}, None), ("camera", {"class": "excavator"}, None)], 100),
     ([("power", {"kind": "night_or_holiday_use"}, "closed_mine"), ("camera", {"class": "truck"}, "closed_mine")],
      100),
     ([("power", {"kind": "night_or_holiday_use"}, "licensed_area"), ("camera", {"class": "excavator"},
                                                                      "licensed_area")], 65),
     ([("camera", {"class": "excavator"}, "closed_mine")], 60),
     ([("camera", {"class": "person"}, "closed_mine"), ("tipoff", {}, "closed_mine")], 45),
     ([("power", {"kind": "step_change"}, None)], 35)],
)
def test_priority_table(clues: list[tuple[str, dict[str, Any], str | None]], expected: int) -> None:
    rows = [{"kind": k, "detail": d, "zone_kind": z} for k, d, z in clues]
    assert priority(rows)[0] == expected


def test_fused_cases_are_pushed_updated_escalated_and_stop_when_acknowledged(
        client: tuple[Store, FlaskClient, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_push import Clock, Robot

    from pipeline.console.casepush import CasePushBridge
    from pipeline.console.clues import ClueRegister, FusionConfig
    from pipeline.console.clues_web import zone_index
    from pipeline.push.config import load_push_config
    from pipeline.push.pusher import Pusher
    from tests.conftest import free_port

    store, c, csrf = client
    robot = Robot(free_port()).start()
    base = f"http://127.0.0.1:{robot.port}"
    (tmp_path / "push.yaml").write_text(json.dumps({
        "targets": [{"id": "grid", "format": "json", "url": f"{base}/json/grid"},
                    {"id": "county", "format": "wecom", "url": f"{base}/wecom/county"},
                    {"id": "city", "format": "wecom", "url": f"{base}/wecom/city"}],
        "routes": [{"townships": ["东沟乡"], "zone_kinds": ["closed_mine"],
                    "levels": [{"targets": ["grid"]}, {"after_minutes": 30, "targets": ["county"]},
                               {"after_minutes": 60, "targets": ["city"]}]}],
        "outbox_path": "push.sqlite", "console_url": "https://mw.example/"}, ensure_ascii=False))
    clock = Clock()
    pusher = Pusher(load_push_config(tmp_path / "push.yaml"), tmp_path, clock=clock)
    bridge = CasePushBridge(ClueRegister(store.db, FusionConfig()), pusher, "https://mw.example/",
                            zone_index([ZONE]))
    try:
        assert _post(c, csrf, "/api/clues/power", [_anomaly()]).json["added"] == 1
        assert bridge.step() == 1  # new case (priority 40) to the grid member
        ingest(store, make_event("a-exc", t="2026-11-29T02:30:00.000Z"))
        clock.t += 60
        assert bridge.step() == 1  # now power + excavator at a closed mine: an update at priority 100
        clock.t += 60
        assert bridge.step() == 0
        clock.t += 31 * 60
        bridge.step()  # not acknowledged for 30 minutes: the county is told
        case_id = c.get("/api/cases").json["cases"][0]["case_id"]
        assert _post(c, csrf, f"/api/cases/{case_id}/ack", {}).status_code == 200
        assert _post(c, csrf, f"/api/cases/{case_id}/ack", {}).status_code == 409
        clock.t += 3 * 3600
        assert bridge.step() == 0  # acknowledged: the city is never bothered
        bridge.step()
    finally:
        pusher.close()
        robot.stop()
    grid = robot.deliveries("/json/grid")
    assert [(b["type"], b["case"]["priority"]) for b in grid] == [("new", 40), ("update", 100)]
    assert grid[1]["case"]["snapshot_url"] == "https://mw.example/snapshots/a-exc.jpg"
    assert grid[1]["case"]["responsible_phone"] == "13812345678"
    county = robot.deliveries("/wecom/county")
    assert len(county) == 1 and "第 1 级" in county[0]["markdown"]["content"]
    assert "100" in county[0]["markdown"]["content"]
    assert robot.deliveries("/wecom/city") == [] and len(robot.raw) == 3

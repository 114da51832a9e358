"""Statistics through the console's HTTP API: counts by township/zone/class/channel/month, repeat sites,
hours before each case step, false-alert share per camera; the CSV and the page."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from test_console_store import ingest, make_event
from test_console_web import login

from pipeline.console import auth
from pipeline.console.config import ConsoleConfig
from pipeline.console.roles import Roles
from pipeline.console.store import Store
from pipeline.console.web import create_app


@pytest.fixture(scope="module")
def viewer_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stats") / "r.sqlite"
    store = Store(f"sqlite:///{path}")
    auth.add_operator(store, "vic", "viewer-password", "")
    Roles(store.db).set("vic", "viewer", "test")
    store.close()
    return path


def test_statistics_api_csv_and_page(tmp_path: Path, viewer_db: Path) -> None:
    db = tmp_path / "r.sqlite"
    shutil.copyfile(viewer_db, db)
    store = Store(f"sqlite:///{db}")
    ingest(store, make_event("a1", t="2026-10-03T08:00:00.000Z"))
    ingest(store, make_event("a2", t="2026-11-05T08:00:00.000Z", cls="truck"))
    ingest(store, make_event("a3", t="2026-11-06T08:00:00.000Z", cls="person", township="西岭镇"))
    store.cases.dismiss("a3", "sup", "a shepherd")
    store.cases.record_step("a1", "stopped", "op", actor="张三", t_done="2026-10-03T14:00:00.000Z")
    store.cases.record_step("a1", "reported", "op", actor="张三", t_done="2026-10-04T08:00:00.000Z")
    app = create_app(ConsoleConfig.model_validate({"database_url": f"sqlite:///{db}"}), store)
    c = app.test_client()
    csrf = login(c, "vic", "viewer-password")
    # a viewer may not add a tip-off, but reads the statistics
    tip = {"description": "有人挖", "channel": "12345", "township": "东沟乡", "address": "北山"}
    assert c.post("/api/clues/tipoff", data=json.dumps(tip), headers={"X-CSRF-Token": csrf,
                  "Content-Type": "application/json"}).status_code == 403
    stats = c.get("/api/stats").json
    assert {(r["township"], r["month"], r["n"]) for r in stats["alerts_by_township_month"]} == {
        ("东沟乡", "2026-10", 1), ("东沟乡", "2026-11", 1), ("西岭镇", "2026-11", 1)}
    assert {r["class"]: r["n"] for r in stats["alerts_by_class"]} == {"excavator": 1, "truck": 1, "person": 1}
    assert stats["false_share_by_camera"] == [{"camera": "edge-1/cam1", "alerts": 3, "dismissed": 1,
                                               "false_share": 0.333}]
    steps = {r["step"]: r for r in stats["hours_before_step"]}
    assert steps["stopped"]["median_h"] == 6.0 and steps["reported"]["median_h"] == 18.0
    assert sorted((r["kind"], r["month"], r["n"]) for r in stats["clues_by_kind_month"]) == [
        ("camera", "2026-10", 1), ("camera", "2026-11", 2)]
    assert stats["repeat_sites"] == [{"zone_id": "z1", "cases": 2}]  # a1 (October) and a2/a3 (November)
    text = c.get("/export/stats.csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {"table": "alerts_by_class", "row": "0", "field": "n", "value": "1"} in rows
    page = c.get("/stats").get_data(as_text=True)
    assert "统计" in page and "false share by camera" in page and "edge-1/cam1" in page
    store.close()

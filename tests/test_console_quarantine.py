"""Hostile and broken messages through a real Mosquitto: validated against the published schema, quarantined
(visible to operators), acknowledged, one log line each; closed cases stay as the operators left them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from test_console_ingest import JPEG, make_ingestor, publish, publisher, wait_for
from test_console_store import make_event

from pipeline.console import auth
from pipeline.console.config import ConsoleConfig
from pipeline.console.ingest import Ingestor
from pipeline.console.web import create_app

TOPIC = "minewatch/edge-1/events"


def strict_json(text: str) -> Any:
    """JSON as a browser's JSON.parse reads it: NaN / Infinity are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def with_(path: str, value: Any, alert_id: str) -> bytes:
    """An otherwise valid event with one field replaced (``a.b.c`` path)."""
    event = make_event(alert_id)
    *head, last = path.split(".")
    node = event
    for key in head:
        node = node[key]
    node[last] = value
    return json.dumps(event, ensure_ascii=False).encode()  # allow_nan: writes NaN / Infinity as they come


BAD_EVENTS: list[tuple[str, bytes, str]] = [
    ("lat_infinity", with_("location.lat", float("inf"), "bad-lat"), "Infinity is not a JSON number"),
    ("score_nan", with_("score", float("nan"), "bad-score"), "NaN is not a JSON number"),
    ("lon_1e400", with_("location.lon", 1.5, "bad-lon").replace(b'"lon": 1.5', b'"lon": 1e400'), "out of range"),
    ("ellipse_axis_text", with_("location.ellipse_90.semi_major_m", "40 m", "bad-ellipse"), "location"),
    ("zone_as_text", with_("zone", "老煤矿", "bad-zone"), "zone"),
    ("responsible_as_text", with_("zone.responsible", "张三丰 13812345678", "bad-resp"), "zone"),
    ("seq_2_70", with_("seq", 2**70, "bad-seq"), "seq"),
    ("lat_out_of_range", with_("location.lat", 91.0, "bad-range"), "location"),
    ("unknown_class", with_("class", "tractor", "bad-class"), "class"),
    ("box_of_another_topic", with_("box_id", "edge-2", "bad-box"), "box_id: expected edge-1"),
    ("huge_zone_name", with_("zone.name", "x" * 2_000_000, "bad-size"), "expected at most 65536"),
    ("long_zone_name", with_("zone.name", "矿" * 300, "bad-name"), "zone.name"),
    ("newline_in_id", with_("alert_id", "a1\nINFO forged line", "x"), "alert_id"),
    ("slash_in_id", with_("alert_id", "a/b", "x"), "alert_id"),
    ("empty_id", with_("alert_id", "", "x"), "alert_id"),
    ("not_json", b"{broken", "not JSON"),
]


@pytest.fixture
def ingestor(tmp_path: Path, broker: Broker) -> Iterator[Ingestor]:
    ing = make_ingestor(tmp_path, broker, "q", share_group=None)
    try:
        yield ing
    finally:
        ing.stop()


@pytest.mark.parametrize(("name", "payload", "reason"), BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
def test_a_broken_event_is_quarantined_acknowledged_and_logged_once(
    ingestor: Ingestor,
    broker: Broker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    payload: bytes,
    reason: str,
) -> None:
    pub = publisher(broker.port)
    try:
        with caplog.at_level(logging.INFO, logger="minewatch.console.ingest"):
            publish(pub, TOPIC, payload)
            publish(pub, TOPIC, json.dumps(make_event("good-1")).encode())  # the next one still gets in
            wait_for(lambda: ingestor.stats.invalid >= 1 and ingestor.stats.events >= 1)
        (row,) = ingestor.store.quarantined()
        assert reason in row["reason"] and row["topic"] == TOPIC and row["bytes"] == len(payload)
        assert ingestor.store.quarantined_head(row["id"]) == payload[: 64 * 1024]
        assert [a["alert_id"] for a in ingestor.store.list_alerts()] == ["good-1"]
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(lines) == 1 and "quarantined" in lines[0] and "\n" not in lines[0] and len(lines[0]) < 500
        # acknowledged: the same session reconnecting gets nothing again
        ingestor.stop()
        again = Ingestor(ingestor.cfg, ingestor.store)
        again.start()
        assert again.subscribed.wait(10)
        publish(pub, TOPIC, json.dumps(make_event("good-2")).encode())
        wait_for(lambda: again.stats.events >= 1)
        time.sleep(0.3)
        assert again.stats.invalid == 0
        again.stop()
    finally:
        pub.loop_stop()


@pytest.fixture
def client_factory(tmp_path: Path) -> Callable[[Ingestor], Any]:
    def make(ing: Ingestor) -> Any:
        url = ing.store.db.url
        auth.add_operator(ing.store, "alice", "alice-password", "张三")
        app = create_app(ConsoleConfig.model_validate({"database_url": url}), ing.store)
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        data = {"username": "alice", "password": "alice-password"}
        if 'name="csrf"' in page:
            data["csrf"] = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post("/login", data=data).status_code == 302
        return client

    return make


def test_after_every_broken_event_the_pages_still_work(
    ingestor: Ingestor, broker: Broker, client_factory: Callable[[Ingestor], Any]
) -> None:
    pub = publisher(broker.port)
    try:
        for _, payload, _ in BAD_EVENTS:
            publish(pub, TOPIC, payload)
        publish(pub, TOPIC, json.dumps(make_event("good-1")).encode())
        wait_for(lambda: ingestor.stats.events >= 1 and ingestor.stats.invalid >= len(BAD_EVENTS), 30)
    finally:
        pub.loop_stop()
    client = client_factory(ingestor)
    alerts = client.get("/api/alerts")
    assert alerts.status_code == 200
    assert [a["alert_id"] for a in strict_json(alerts.get_data(as_text=True))["alerts"]] == ["good-1"]
    assert client.get("/api/alerts/good-1").status_code == 200
    assert client.get("/export/cases.csv").status_code == 200
    assert client.get("/notice").status_code == 200
    quarantine = client.get("/api/quarantine")
    assert quarantine.status_code == 200
    rows = strict_json(quarantine.get_data(as_text=True))["quarantine"]
    assert len(rows) == len(BAD_EVENTS) and all(r["reason"] for r in rows)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("minewatch/edge-1/snapshots/a1", b"\xff\xd8" + b"x" * (4096 * 1024), "expected at most"),
        ("minewatch/edge-1/snapshots/a1", b"not a jpeg", "expected a JPEG"),
        ("minewatch/edge-1/snapshots/a b", JPEG, "alert id in the topic"),
        ("minewatch/edge-1/snapshots/.hidden", JPEG, "alert id in the topic"),
        ("minewatch/edge 1/events", json.dumps(make_event("a1")).encode(), "box id in the topic"),
        ("minewatch/edge-1/cameras/cam1/status", b'{"status": "online"}', "schema: missing"),
        (
            "minewatch/edge-1/cameras/cam1/status",
            b'{"schema": "minewatch.status/1", "status": 1, "t": "2026-11-29T08:00:00Z"}',
            "status",
        ),
        ("minewatch/edge-1/available", b"maybe", "expected online | offline"),
        ("minewatch/edge-1/other", b"{}", "unexpected topic"),
    ],
)
def test_snapshots_statuses_and_topics_are_bounded_and_checked(
    ingestor: Ingestor, broker: Broker, topic: str, payload: bytes, reason: str
) -> None:
    if topic.endswith("/other"):
        ingestor._client.subscribe("minewatch/edge-1/other", qos=1)  # only to see that it is refused
        time.sleep(0.3)
    pub = publisher(broker.port)
    try:
        publish(pub, topic, payload)
        wait_for(lambda: ingestor.stats.invalid >= 1)
    finally:
        pub.loop_stop()
    (row,) = ingestor.store.quarantined()
    assert reason in row["reason"], row["reason"]
    assert ingestor.store.counts() == {"alerts": 0, "messages": 0, "snapshots": 0}
    assert ingestor.store.towers() == [] and ingestor.store.boxes() == []


def test_a_closed_case_is_not_rewritten_by_a_later_update(ingestor: Ingestor, broker: Broker) -> None:
    pub = publisher(broker.port)
    store = ingestor.store
    try:
        publish(pub, TOPIC, json.dumps(make_event("c1", seq=1)).encode())
        wait_for(lambda: ingestor.stats.events >= 1)
        for step in ("stopped", "reported", "transferred", "investigated", "rectified"):
            store.cases.record_step("c1", step, author="alice", actor="李四")
        before = store.get_alert("c1")
        assert before is not None and before["case_status"] == "closed"
        moved = make_event("c1", seq=2, type_="update", cls="truck", township="西沟乡", kind="illegal_site")
        moved["location"].update(lat=38.9, lon=111.9)
        publish(pub, TOPIC, json.dumps(moved).encode())
        publish(pub, TOPIC, json.dumps(make_event("c1", seq=3, type_="end")).encode())  # changes nothing that matters
        wait_for(lambda: ingestor.stats.events >= 3)
        after = store.get_alert("c1")
        assert after is not None
        for key in ("class", "rule", "township", "zone_kind", "lat", "lon", "seq", "event_type", "payload", "log"):
            assert after[key] == before[key], key  # type: ignore[literal-required]
        (row,) = store.quarantined()
        assert row["alert_id"] == "c1" and "closed" in row["reason"] and "class" in row["reason"]
        # an operator reopens the case: later messages apply again
        store.cases.reopen("c1", "alice", "dug again")
        publish(pub, TOPIC, json.dumps(make_event("c1", seq=4, type_="update", cls="truck")).encode())
        wait_for(lambda: ingestor.stats.events >= 4)
        reopened = store.get_alert("c1")
        assert reopened is not None and (reopened["class"], reopened["seq"]) == ("truck", 4)
    finally:
        pub.loop_stop()


def test_a_register_written_before_validation_still_gives_standard_json(
    tmp_path: Path, client_factory: Callable[[Ingestor], Any], broker: Broker
) -> None:
    """A row stored by an older console (no validation) with Infinity / NaN: the API answers standard JSON."""
    from dataclasses import replace

    from pipeline.console.ingest import parse_event

    ing = make_ingestor(tmp_path, broker, "old", share_group=None)
    try:
        record = parse_event(json.dumps(make_event("old-inf")).encode())
        payload = {**record.payload, "score": float("nan")}
        payload["location"] = {**payload["location"], "lat": float("inf")}
        ing.store.ingest_event(replace(record, lat=float("inf"), score=float("nan"), payload=payload))
        client = client_factory(ing)
        for path in ("/api/alerts", "/api/alerts/old-inf"):
            resp = client.get(path)
            assert resp.status_code == 200, path
            strict_json(resp.get_data(as_text=True))  # raises on NaN / Infinity
        (alert,) = strict_json(client.get("/api/alerts").get_data(as_text=True))["alerts"]
        assert alert["lat"] is None
    finally:
        ing.stop()

"""The console's register: ingest and de-duplication, case-step transitions, exports, config and auth."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

from pipeline.console import auth
from pipeline.console.cases import STEPS, CaseError
from pipeline.console.config import ConsoleMqttConfig, load_console_config
from pipeline.console.export import cases_csv, mask_name, mask_phone, notice_rows
from pipeline.console.ingest import EventError, parse_event, split_topic, topic_filters
from pipeline.console.mapdata import load_zone_features, merge_towers
from pipeline.console.store import IngestResult, Store
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def make_event(
    alert_id: str = "a1",
    seq: int = 1,
    type_: str = "new",
    box_id: str = "edge-1",
    cls: str = "excavator",
    township: str = "东沟乡",
    kind: str = "closed_mine",
    t: str = "2026-11-29T08:00:00.000Z",
    **extra: Any,
) -> dict[str, Any]:
    """An event message as docs/MQTT.md describes it."""
    event: dict[str, Any] = {
        "schema": "minewatch.event/1",
        "type": type_,
        "alert_id": alert_id,
        "seq": seq,
        "box_id": box_id,
        "camera": {
            "id": "cam1",
            "name": "东山塔",
            "lat": 38.70,
            "lon": 111.60,
            "preset": None,
            "pan_deg": 90.0,
            "tilt_deg": -5.0,
            "hfov_deg": 60.0,
        },
        "class": cls,
        "rule": kind if kind in ("closed_mine", "illegal_site", "fire_watch") else "beyond_boundary",
        "score": 0.87,
        "xyxy": [100, 200, 180, 260],
        "image_wh": [1920, 1080],
        "zone": {
            "id": "z1",
            "name": "老煤矿 old pit",
            "kind": kind,
            "township": township,
            "responsible": {"name": "张三丰", "phone": "13812345678"},
            "distance_to_boundary_m": -12.0,
        },
        "location": {
            "lat": 38.701,
            "lon": 111.605,
            "lat_gcj02": 38.702,
            "lon_gcj02": 111.611,
            "elevation_m": 1400.0,
            "range_m": 450.0,
            "bearing_deg": 75.0,
            "ellipse_90": {"semi_major_m": 40.0, "semi_minor_m": 12.0, "orientation_deg": 75.0},
            "probability_in_zone": 0.93,
            "cameras": ["cam1"],
        },
        "t_first": t,
        "t_last": t,
        "t_event": t,
        "snapshot": {
            "topic": f"minewatch/{box_id}/snapshots/{alert_id}",
            "file": f"{alert_id}.jpg",
            "bytes": 4,
            "sha256": "0" * 64,
        },
    }
    event.update(extra)
    return event


def ingest(store: Store, event: dict[str, Any]) -> IngestResult:
    """Store an event message as the console's MQTT side does: from its JSON bytes."""
    return store.ingest_event(parse_event(json.dumps(event).encode()))


def test_test_events_follow_the_published_schema() -> None:
    """The events these tests feed the console are what docs/schemas/event.schema.json allows."""
    import jsonschema

    schema = json.loads((ROOT / "docs" / "schemas" / "event.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(make_event(), schema)
    jsonschema.validate(make_event(zone=None, location=None, snapshot=None, rule="fire_in_view", cls="fire"), schema)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server (Debian's postgresql package) on a free loopback port."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[dev]' installs it)")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        pytest.skip("no PostgreSQL server here (bash scripts/setup.sh --dev installs Debian's postgresql)")
    bins = Path(found[-1]).parent
    workdir = Path(tempfile.mkdtemp(prefix="mw-console-pg-"))  # not under pytest's 0700 root-owned folder
    as_postgres: dict[str, str] = {}
    if os.geteuid() == 0:  # initdb refuses root
        os.chmod(workdir, 0o755)
        shutil.chown(workdir, "postgres", "postgres")
        as_postgres = {"user": "postgres", "group": "postgres"}
    subprocess.run(
        [
            str(bins / "initdb"),
            "-D",
            str(workdir / "data"),
            "-U",
            "mw",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        **as_postgres,  # type: ignore[call-overload]
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            str(bins / "postgres"),
            "-D",
            str(workdir / "data"),
            "-p",
            str(port),
            "-k",
            str(workdir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **as_postgres,  # type: ignore[call-overload]
    )
    url = f"postgresql://mw@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: does not wait for open sessions
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The register on SQLite, and the same on PostgreSQL (a fresh schema per test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'register.sqlite'}"
    else:
        import psycopg

        base = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{base}?options=-csearch_path%3D{schema}"
    s = Store(url)
    yield s
    s.close()


# ---- ingest and de-duplication ------------------------------------------------------------------------
def test_new_alert_is_stored_with_discovered_step(store: Store) -> None:
    r = ingest(store, make_event())
    assert (r.duplicate, r.new_alert) == (False, True)
    a = store.get_alert("a1")
    assert a is not None
    assert (a["case_step"], a["case_status"], a["township"], a["zone_kind"]) == (
        "discovered",
        "open",
        "东沟乡",
        "closed_mine",
    )
    assert [e["action"] for e in a["log"]] == ["discovered"]
    assert a["log"][0]["author"] == "minewatch" and "edge-1/cam1" in a["log"][0]["actor"]


def test_same_alert_and_seq_twice_is_a_duplicate(store: Store) -> None:
    ingest(store, make_event())
    r = ingest(store, make_event())
    assert r.duplicate
    assert store.counts() == {"alerts": 1, "messages": 1, "snapshots": 0}


def test_newer_seq_updates_older_late_seq_does_not(store: Store) -> None:
    ingest(store, make_event(seq=1))
    ingest(store, make_event(seq=3, type_="end", t="2026-11-29T08:05:00.000Z", t_first="2026-11-29T08:00:00.000Z"))
    late = ingest(
        store, make_event(seq=2, type_="update", t="2026-11-29T08:02:00.000Z", t_first="2026-11-29T08:00:00.000Z")
    )
    assert not late.duplicate and not late.new_alert
    a = store.get_alert("a1")
    assert a is not None
    assert (a["seq"], a["event_type"], a["t_last"], a["messages"]) == (3, "end", "2026-11-29T08:05:00.000Z", 3)


def test_update_arriving_before_new_creates_the_alert_once(store: Store) -> None:
    # with a shared subscription, seq 2 may reach a console before seq 1
    assert ingest(store, make_event(seq=2, type_="update")).new_alert
    assert not ingest(store, make_event(seq=1)).new_alert
    a = store.get_alert("a1")
    assert a is not None and a["seq"] == 2 and len(a["log"]) == 1


def test_snapshot_before_event_and_duplicate_snapshot(store: Store) -> None:
    assert store.ingest_snapshot("a1", b"\xff\xd8jpeg")
    assert not store.ingest_snapshot("a1", b"\xff\xd8jpeg")
    ingest(store, make_event())
    assert store.snapshot("a1") == b"\xff\xd8jpeg"
    assert store.list_alerts()[0]["snapshot_count"] == 1


def test_every_distinct_snapshot_is_kept_the_announced_one_is_current(store: Store) -> None:
    first, second = b"\xff\xd8first", b"\xff\xd8second"
    ingest(store, make_event(seq=1))
    store.ingest_snapshot("a1", first)
    store.ingest_snapshot("a1", second)
    assert store.snapshot("a1") == second  # the event names neither: the latest received
    announced = {"topic": "t", "file": "f", "bytes": len(first), "sha256": hashlib.sha256(first).hexdigest()}
    ingest(store, make_event(seq=2, type_="update", snapshot=announced))
    assert store.snapshot("a1") == first
    assert store.snapshot("a1", hashlib.sha256(second).hexdigest()) == second
    a = store.get_alert("a1")
    assert a is not None and len(a["snapshots"]) == 2 and a["snapshot_sha256"] == announced["sha256"]


def test_register_of_another_schema_version_is_refused(store: Store) -> None:
    with store.db.tx() as cur:
        cur.execute("UPDATE settings SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(UserError, match="expected a register of schema version 1, found version 99"):
        Store(store.db.url)


def test_towers_boxes_and_secret(store: Store) -> None:
    store.set_camera_status("edge-1", "cam1", "stalled", "2026-11-29T08:00:00Z")
    ingest(store, make_event())  # the event's camera block fills in the tower's pose
    store.set_camera_status("edge-1", "cam1", "online", "2026-11-29T08:01:00Z")
    store.set_box_available("edge-1", "offline")
    store.set_box_available("edge-1", "online")
    (tower,) = store.towers()
    assert (tower["status"], tower["lat"], tower["pan_deg"], tower["name"]) == ("online", 38.70, 90.0, "东山塔")
    assert [(b["box_id"], b["available"]) for b in store.boxes()] == [("edge-1", "online")]
    secret = store.secret("k")
    assert len(secret) == 64 and store.secret("k") == secret != store.secret("other")


def test_change_feed_grows_on_every_change(store: Store) -> None:
    c0 = store.latest_change()
    ingest(store, make_event())
    c1 = store.latest_change()
    store.cases.record_step("a1", "stopped", author="op1", actor="李四")
    assert c0 < c1 < store.latest_change()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["b", "a"]),
        ({"township": "东沟乡"}, ["a"]),
        ({"zone_kind": "illegal_site"}, ["b"]),
        ({"class_name": "fire"}, ["b"]),
        ({"status": "open"}, ["b", "a"]),
        ({"status": "closed"}, []),
    ],
)
def test_filters(store: Store, filters: dict[str, Any], expected: list[str]) -> None:
    ingest(store, make_event("a", t="2026-11-29T08:00:00.000Z"))
    ingest(store, make_event("b", cls="fire", township="西沟乡", kind="illegal_site", t="2026-11-29T09:00:00.000Z"))
    assert [a["alert_id"] for a in store.list_alerts(**filters)] == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"schema": "other/1"}).encode(), "schema"),
        (json.dumps({**make_event(), "seq": "1"}).encode(), "seq"),
        (json.dumps({**make_event(), "seq": True}).encode(), "seq"),
        (json.dumps({**make_event(), "alert_id": None}).encode(), "alert_id"),
        (json.dumps({**make_event(), "camera": {}}).encode(), "camera.id"),
    ],
)
def test_parse_event_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_event(raw)


def test_event_without_zone_or_location_is_stored(store: Store) -> None:
    ingest(store, make_event(zone=None, location=None, rule="fire_in_view", cls="fire"))
    a = store.get_alert("a1")
    assert a is not None and a["lat"] is None and a["township"] is None


# ---- case steps ---------------------------------------------------------------------------------------
def test_case_goes_through_every_step_in_order(store: Store) -> None:
    ingest(store, make_event())
    for step in STEPS[1:]:
        store.cases.record_step("a1", step, author="op1", actor=f"actor-{step}", note=f"did {step}")
    a = store.get_alert("a1")
    assert a is not None
    assert (a["case_step"], a["case_status"]) == ("rectified", "closed")
    assert [e["action"] for e in a["log"]] == list(STEPS)
    assert all(e["author"] == "op1" for e in a["log"][1:])


@pytest.mark.parametrize(
    ("done", "step", "error"),
    [
        ([], "reported", "next step is stopped"),  # skipping a step
        ([], "discovered", "unknown step"),
        ([], "finished", "unknown step"),
        (["stopped"], "stopped", "next step is reported"),  # the same step twice (another operator was first)
        (list(STEPS[1:]), "stopped", "closed"),  # a closed case
    ],
)
def test_step_transitions_refused(store: Store, done: list[str], step: str, error: str) -> None:
    ingest(store, make_event())
    for s in done:
        store.cases.record_step("a1", s, author="op1", actor="李四")
    with pytest.raises(CaseError, match=error):
        store.cases.record_step("a1", step, author="op2")


def test_step_on_unknown_alert(store: Store) -> None:
    with pytest.raises(CaseError, match="no alert"):
        store.cases.record_step("nope", "stopped", author="op1")


def test_dismiss_reopen_needs_reason_and_keeps_the_log(store: Store) -> None:
    ingest(store, make_event())
    with pytest.raises(CaseError, match="reason"):
        store.cases.dismiss("a1", "op1", " ")
    store.cases.dismiss("a1", "op1", "a tractor in a field")
    with pytest.raises(CaseError, match="next step|dismissed"):
        store.cases.record_step("a1", "stopped", author="op1")
    with pytest.raises(CaseError, match="cannot be dismissed"):
        store.cases.dismiss("a1", "op2", "again")
    store.cases.reopen("a1", "op2", "it was an excavator after all")
    store.cases.record_step("a1", "stopped", author="op2", actor="李四")
    a = store.get_alert("a1")
    assert a is not None
    assert [(e["action"], e["author"]) for e in a["log"]] == [
        ("discovered", "minewatch"),
        ("dismissed", "op1"),
        ("reopened", "op2"),
        ("stopped", "op2"),
    ]


def test_reopened_closed_case_is_rectified_again(store: Store) -> None:
    ingest(store, make_event())
    for step in STEPS[1:]:
        store.cases.record_step("a1", step, author="op1", actor="李四")
    store.cases.reopen("a1", "op2", "the pit was dug again")
    a = store.get_alert("a1")
    assert a is not None and (a["case_status"], a["case_step"]) == ("open", "investigated")
    store.cases.record_step("a1", "rectified", author="op2", actor="李四", note="refilled, checked on site")
    a = store.get_alert("a1")
    assert a is not None and (a["case_status"], a["case_step"]) == ("closed", "rectified")
    assert [e["action"] for e in a["log"]][-3:] == ["rectified", "reopened", "rectified"]
    row = next(csv.DictReader(io.StringIO(cases_csv(store, "show").lstrip("\ufeff"))))
    assert row["rectified_note"] == "refilled, checked on site" and "reopened" in row["dismissed_or_reopened"]


def test_events_never_touch_the_case(store: Store) -> None:
    ingest(store, make_event(seq=1))
    store.cases.record_step("a1", "stopped", author="op1", actor="李四")
    ingest(store, make_event(seq=2, type_="end"))
    a = store.get_alert("a1")
    assert a is not None and (a["case_step"], a["event_type"]) == ("stopped", "end")


# ---- exports ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "name", "phone"),
    [("show", "张三丰", "13812345678"), ("mask", "张**", "138****5678"), ("hide", "", "")],
)
def test_csv_export_personal_data(store: Store, mode: str, name: str, phone: str) -> None:
    ingest(store, make_event())
    store.cases.record_step(
        "a1", "stopped", author="op1", actor="李四", note="machine stopped", t_done="2026-11-29T08:10:00.000Z"
    )
    text = cases_csv(store, mode)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == 1
    r = rows[0]
    assert (r["alert_id"], r["case_step"], r["stopped_note"], r["stopped_author"]) == (
        "a1",
        "stopped",
        "machine stopped",
        "op1",
    )
    assert r["stopped_t_done_utc"] == "2026-11-29T08:10:00.000Z"
    assert (r["responsible_name"], r["responsible_phone"]) == (name, phone)
    assert r["stopped_actor"] == {"show": "李四", "mask": "李*", "hide": ""}[mode]


def test_csv_defuses_formulas(store: Store) -> None:
    ingest(store, make_event(zone={**make_event()["zone"], "name": '=HYPERLINK("http://x")'}))
    store.cases.record_step("a1", "stopped", author="op1", actor="+86 138", note="@SUM(A1)")
    row = next(csv.DictReader(io.StringIO(cases_csv(store, "show").lstrip("\ufeff"))))
    assert row["zone_name"].startswith("'=") and row["stopped_actor"] == "'+86 138"
    assert row["stopped_note"] == "'@SUM(A1)" and row["lat"] == "38.701"


def test_notice_leaves_out_dismissed_cases(store: Store) -> None:
    ingest(store, make_event("a"))
    ingest(store, make_event("b"))
    store.cases.record_step("a", "stopped", author="op1", actor="李四")
    store.cases.dismiss("b", "op1", "false alarm")
    rows = notice_rows(store, "mask")
    assert [r["alert_id"] for r in rows] == ["a"]
    assert rows[0]["responsible"] == "张** 138****5678"
    assert rows[0]["t_first"] == "2026-11-29 16:00"  # 08:00Z in Beijing time
    assert notice_rows(store, "mask", include_open=False) == []


@pytest.mark.parametrize(("value", "masked"), [("张三", "张*"), ("Li", "L*"), ("王", "王*"), ("", "")])
def test_mask_name(value: str, masked: str) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"), [("13812345678", "138****5678"), ("0351-1234567", "035*****4567"), ("110", "***")]
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


# ---- operators ----------------------------------------------------------------------------------------
def test_operator_password_is_hashed_and_verified(store: Store) -> None:
    auth.add_operator(store, "alice", "correct horse", "张三")
    row = store.operators.get("alice")
    assert (
        row is not None and "correct horse" not in row["password_hash"] and row["password_hash"].startswith("$argon2")
    )
    assert auth.verify(store, "alice", "correct horse") == {"username": "alice", "display_name": "张三"}
    assert auth.verify(store, "alice", "wrong password") is None
    assert auth.verify(store, "bob", "correct horse") is None


@pytest.mark.parametrize(
    ("username", "password", "error"),
    [
        ("alice", "short", "at least 8"),
        ("bad name", "long enough", "username"),
        (" pad", "long enough", "username"),
        ("alice", " spaces around ", "spaces"),
    ],
)
def test_operator_refused(store: Store, username: str, password: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        auth.add_operator(store, username, password)


def test_operator_name_taken(store: Store) -> None:
    auth.add_operator(store, "alice", "correct horse")
    with pytest.raises(CaseError, match="exists"):
        auth.add_operator(store, "alice", "another one!")


# ---- config, topics, map data -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mqtt: {port: 0}\n", "mqtt.port: expected"),
        ("web: {colour: red}\n", "web.colour: expected only known fields"),
        ("database_url: mysql://x/y\n", "database_url must start with sqlite"),
        ("mqtt: {share_group: 'a/b'}\n", "mqtt.share_group: expected"),
        ("mqtt: {box_ids: ['a/b']}\n", "box id 'a/b'"),
        ("privacy: {notice: blur}\n", "privacy.notice: expected"),
        ("boxes: [{id: b1}, {id: b1}]\n", "duplicate box id"),
        ("database_url: postgresql://mw:secret@db/minewatch\n", "must not hold a password"),
        ("timezone: Mars/Olympus\n", "not an IANA time zone"),
        ("- a list\n", "expected a mapping"),
        ("mqtt: [\n", "valid YAML"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "console.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_console_config(path)
    text_ = str(info.value)
    assert text_.startswith(str(path)) and message in text_ and "\n" not in text_


def test_example_config_loads_with_its_zones_and_towers() -> None:
    config = load_console_config(ROOT / "console.yaml")
    assert config.database_url == f"sqlite:///{ROOT / 'var' / 'console.sqlite'}"
    features = load_zone_features(config.boxes[0].zones, config.boxes[0].id)
    assert features and all(f["properties"]["box_id"] == "kelan-edge-1" for f in features)


@pytest.mark.parametrize(
    ("geojson", "message"),
    [
        (
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"kind": "closed_mine"},'
            ' "geometry": {"type": "Point", "coordinates": [1, 2]}}]}',
            "features[0].geometry: expected a Polygon",
        ),
        (
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"kind": "mine"},'
            ' "geometry": {"type": "Polygon", "coordinates": []}}]}',
            "features[0].properties.kind",
        ),
        ("{", "readable GeoJSON"),
    ],
)
def test_bad_zone_file(tmp_path: Path, geojson: str, message: str) -> None:
    path = tmp_path / "z.geojson"
    path.write_text(geojson)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_zone_features([path], "b1")


def test_topic_filters_shared_and_plain() -> None:
    cfg = ConsoleMqttConfig(topic_prefix="mw/county", box_ids=["b1", "b2"], share_group="g")
    assert topic_filters(cfg) == [
        ("$share/g/mw/county/b1/events", True),
        ("$share/g/mw/county/b1/snapshots/+", True),
        ("mw/county/b1/cameras/+/status", False),
        ("mw/county/b1/available", False),
        ("$share/g/mw/county/b2/events", True),
        ("$share/g/mw/county/b2/snapshots/+", True),
        ("mw/county/b2/cameras/+/status", False),
        ("mw/county/b2/available", False),
    ]
    assert topic_filters(ConsoleMqttConfig(share_group=None))[0] == ("minewatch/+/events", False)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("mw/county/b1/events", ("b1", ["events"])),
        ("mw/county/b1/snapshots/a1", ("b1", ["snapshots", "a1"])),
        ("other/b1/events", None),
        ("mw/county/", None),
    ],
)
def test_split_topic(topic: str, expected: tuple[str, list[str]] | None) -> None:
    assert split_topic("mw/county", topic) == expected


def test_merge_towers_config_then_seen() -> None:
    configured = [
        {"box_id": "b", "camera_id": "c1", "name": "东山", "lat": 1.0, "lon": 2.0, "pan_deg": 0.0, "hfov_deg": 60.0}
    ]
    seen: list[dict[str, Any]] = [
        {
            "box_id": "b",
            "camera_id": "c1",
            "name": "",
            "lat": None,
            "lon": None,
            "pan_deg": None,
            "hfov_deg": None,
            "status": "offline",
            "status_t": "t",
        },
        {
            "box_id": "b",
            "camera_id": "c2",
            "name": "西山",
            "lat": 3.0,
            "lon": 4.0,
            "pan_deg": 90.0,
            "hfov_deg": 30.0,
            "status": None,
            "status_t": None,
        },
    ]
    towers = merge_towers(configured, seen)
    assert [(t["camera_id"], t["name"], t.get("status")) for t in towers] == [
        ("c1", "东山", "offline"),
        ("c2", "西山", None),
    ]


def test_postgres_connection_killed_by_the_server_is_replaced(postgres_url: str) -> None:
    """A pooled connection the server dropped (restart, failover) fails one transaction, then is replaced."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        store = Store(f"{postgres_url}?options=-csearch_path%3D{schema}&application_name={schema}")
        ingest(store, make_event("a1"))  # leaves an idle pooled connection
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (schema,))
    with pytest.raises(psycopg.OperationalError):
        store.list_alerts()
    assert [a["alert_id"] for a in store.list_alerts()] == ["a1"]
    store.close()


def test_quarantine_sessions_logins_and_paging_on_both_databases(store: Store) -> None:
    """The tables issue 17 added (quarantine, sessions, login failures) and list paging, on SQLite and PostgreSQL."""
    from pipeline.console import operators

    assert store.quarantine("minewatch/edge-1/events", "edge-1", None, "not JSON", b"{broken")
    assert not store.quarantine("minewatch/edge-1/events", "edge-1", None, "not JSON", b"{broken")  # counted again
    (row,) = store.quarantined()
    assert (row["times"], row["bytes"], store.quarantined_head(row["id"])) == (2, 7, b"{broken")
    sid, csrf = store.sessions.start("alice", 1.0)
    live = store.sessions.get(sid)
    assert live is not None and (live["username"], live["csrf"]) == ("alice", csrf)
    store.sessions.end(sid)
    assert store.sessions.get(sid) is None
    for _ in range(operators.FAILURES_PER_USER_AND_IP):
        assert store.logins.refused("alice", "10.0.0.1") is None
        store.logins.failed("alice", "10.0.0.1")
    assert store.logins.refused("alice", "10.0.0.1") and store.logins.refused("alice", "10.0.0.2") is None
    store.logins.succeeded("alice", "10.0.0.1")
    assert store.logins.refused("alice", "10.0.0.1") is None
    for i in range(5):
        ingest(store, make_event(f"p{i}", t=f"2026-11-29T08:0{i}:00.000Z"))
    assert store.count_alerts() == 5 and store.count_alerts(status="closed") == 0
    assert [a["alert_id"] for a in store.list_alerts(limit=2, offset=2)] == ["p2", "p1"]
    store.set_setting("k", "1")
    store.set_setting("k", "2")
    assert store.setting("k") == "2" and store.setting("nope") is None

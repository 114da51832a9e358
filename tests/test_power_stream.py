"""Streaming path of power readings: HTTP POST (JSON and CSV) and MQTT through a real Mosquitto; every row
is validated before it is stored; ``power check --db`` reads what was stored."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from pipeline.cli import main
from pipeline.power.io import read_meters
from pipeline.power.stream import MqttReceiver, ReadingStore, Receiver, make_http_server
from tests.conftest import Broker

METERS = "meter_id,name,lat,lon,zone_id,kind\nm1,厂,38.7,111.6,z1,enterprise\nm2,矿,38.7,111.6,z2,closed_mine\n"
TZ8 = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    (tmp_path / "m.csv").write_text(METERS)
    meters, _ = read_meters(tmp_path / "m.csv")
    store = ReadingStore(tmp_path / "power.sqlite")
    yield Receiver(meters, store)
    store.close()


@pytest.fixture
def http_url(receiver: Receiver) -> Iterator[str]:
    server = make_http_server(receiver, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes, ctype: str = "application/json") -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url + "/readings", data=body, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_json_rows_validated_before_storing(receiver: Receiver, http_url: str) -> None:
    rows = [{"meter_id": "m1", "t": "2026-01-05T08:00:00+08:00", "kwh": 3.5},
            {"meter_id": "m1", "t": "2026-01-05T09:00:00+08:00", "kwh": "-1"},
            {"meter_id": "mX", "t": "2026-01-05T09:00:00+08:00", "kwh": 1},
            {"meter_id": "m1", "t": "2026-01-05 09:00", "kwh": 1},
            {"meter_id": "m1", "t": "2026-01-05T01:00:00Z", "kwh": True},
            "not an object",
            {"meter_id": "m2", "t": "2026-01-05T01:00:00Z", "kwh": 0.25}]
    status, answer = _post(http_url, json.dumps({"rows": rows}).encode())
    assert status == 200 and answer["accepted"] == 2
    assert [(r["row"], r["error"].split(":")[0]) for r in answer["rejected"]] == [  # type: ignore[union-attr]
        (2, "kwh"), (3, "meter_id"), (4, "t"), (5, "kwh"), (6, "row")]
    stored = receiver.store.all_readings()
    assert [(r.meter_id, r.kwh) for r in stored] == [("m1", 3.5), ("m2", 0.25)]
    assert receiver.store.counters() == {"accepted": 2, "rejected": 5}
    # the same row again (a sender's retry) replaces, never doubles
    assert _post(http_url, json.dumps(rows[0]).encode())[0] == 200
    assert len(receiver.store.all_readings()) == 2


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [(b"{not json", "application/json", 400), (b"\xff\xfe", "application/json", 400),
     (b"42", "application/json", 400), (b"a,b\n1,2\n", "text/csv", 400),
     (b'[{"meter_id": "m1", "t": "x", "kwh": 1}]', "application/json", 422)],
)
def test_http_refuses_unusable_bodies(receiver: Receiver, http_url: str, body: bytes, ctype: str,
                                      status: int) -> None:
    assert _post(http_url, body, ctype)[0] == status
    assert receiver.store.all_readings() == []


def test_http_csv_then_power_check_from_the_db(receiver: Receiver, http_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    t0 = dt.datetime(2026, 1, 5, tzinfo=TZ8)
    lines = ["meter_id,t,kwh"] + [f"m2,{(t0 + dt.timedelta(hours=h)).isoformat()},{60.0 if 30 <= h < 34 else 0.2}"
                                 for h in range(24 * 14)] + ["m2,bad,1"]
    status, answer = _post(http_url, "\n".join(lines).encode(), "text/csv")
    assert status == 200 and answer["accepted"] == 24 * 14
    assert answer["rejected"] == [{"row": 24 * 14 + 2, "error": answer["rejected"][0]["error"]}]  # type: ignore[index]
    assert main(["power", "check", "--meters", str(tmp_path / "m.csv"), "--db", str(tmp_path / "power.sqlite"),
                 "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["meter_id"], d["kind"], d["t_start"]) for d in found] == [
        ("m2", "use_at_closed_site", "2026-01-06T06:00:00+08:00")]


def test_mqtt_rows_stored_after_validation(receiver: Receiver, broker: Broker) -> None:
    mq = MqttReceiver(receiver, "127.0.0.1", broker.port, "minewatch/power/readings", "power-test")
    mq.start()
    try:
        assert mq.subscribed.wait(10)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        good = {"meter_id": "m1", "t": "2026-01-05T08:00:00+08:00", "kwh": 2.0}
        pub.publish("minewatch/power/readings", json.dumps([good, {"meter_id": "m1", "t": "x", "kwh": 1}]),
                    qos=1).wait_for_publish(10)
        pub.publish("minewatch/power/readings", b"garbage", qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and receiver.stats["bad_bodies"] < 1:
            time.sleep(0.05)
        pub.loop_stop()
        pub.disconnect()
    finally:
        mq.stop()
    assert [(r.meter_id, r.kwh) for r in receiver.store.all_readings()] == [("m1", 2.0)]
    assert receiver.stats["rejected"] == 1 and receiver.stats["bad_bodies"] == 1

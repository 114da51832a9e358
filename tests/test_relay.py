"""The MQTT relay against a real Mosquitto: delivery, PUBACK-driven deletion, availability, status."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from pipeline.alerts import AlertSink, Outbox, Relay, broker_name
from pipeline.config import MqttConfig, load_config
from tests.conftest import Broker, free_port
from tests.mqtt_helpers import (
    ROOT,
    Publisher,
    Subscriber,
    TcpProxy,
    make_config,
    make_event,
    make_frame,
    write_config,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def schema(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_alerts_and_snapshots_arrive_and_leave_the_outbox(broker: Broker, tmp_path: Path, protocol: str) -> None:
    config = make_config(tmp_path, broker.port, mqtt_extra={"protocol": protocol})
    sub = Subscriber(broker.port, "minewatch/edge-t/#")
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    relay = Relay(config.mqtt, outbox)
    try:
        relay.start()
        assert relay.wait_connected(5)
        for i in range(5):
            sink.submit(make_event(f"r-{i}", frame=make_frame(seed=i)))
        relay.wake()
        assert relay.wait_drained(10), outbox.stats()
        assert sub.wait(lambda s: len(s.events()) == 5, 5)
        events = sub.events()
        assert sorted(e["alert_id"] for e in events) == [f"r-{i}" for i in range(5)]
        snaps = {m.topic: m.payload for m in sub.snapshot() if "/snapshots/" in m.topic}
        for event in events:
            jsonschema.validate(event, schema("event"))
            ref = event["snapshot"]
            assert ref["topic"] == f"minewatch/edge-t/snapshots/{event['alert_id']}"
            assert hashlib.sha256(snaps[ref["topic"]]).hexdigest() == ref["sha256"]
            assert len(snaps[ref["topic"]]) == ref["bytes"]
        assert outbox.stats()["acked"] == 10  # 5 events + 5 snapshots, each deleted after its PUBACK
        avail = [m for m in sub.snapshot() if m.topic.endswith("/available")]
        assert avail and avail[-1].payload == b"online"
    finally:
        relay.stop()
        sub.close()
        outbox.close()


def test_rows_stay_in_the_outbox_while_no_broker_answers(tmp_path: Path) -> None:
    config = make_config(tmp_path, free_port())  # nothing listens there
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    relay = Relay(config.mqtt, outbox)
    try:
        relay.start()
        sink.submit(make_event("n-1", frame=make_frame()))
        assert not relay.wait_connected(1.0)
        assert outbox.pending_count() == 2
        assert relay.last_error is not None and f"127.0.0.1:{config.mqtt.port}" in relay.last_error
    finally:
        relay.stop()
        outbox.close()


def test_status_is_retained_per_camera_and_availability_goes_offline(broker: Broker, tmp_path: Path) -> None:
    config = make_config(tmp_path, broker.port)
    outbox = Outbox(config.alerts.outbox_path)
    relay = Relay(config.mqtt, outbox)
    relay.publish_status("cam1", "stalled", {"frames": 12, "drops": 3})  # before connecting: kept, sent on connect
    relay.start()
    assert relay.wait_connected(5)
    relay.publish_status("cam2", "online", {"fps": 2.0})
    first = Subscriber(broker.port, "minewatch/edge-t/#")
    try:
        assert first.wait(lambda s: sum("/status" in m.topic for m in s.snapshot()) == 2, 5)
    finally:
        first.close()
    relay.stop()
    late = Subscriber(broker.port, "minewatch/edge-t/#", persistent=False)  # joins later: sees retained values
    try:
        assert late.wait(lambda s: len(s.snapshot()) >= 3, 5)
        by_topic = {m.topic: m for m in late.snapshot()}
        status = by_topic["minewatch/edge-t/cameras/cam1/status"]
        assert status.retain
        body = status.json()
        jsonschema.validate(body, schema("status"))
        assert (body["status"], body["frames"], body["drops"]) == ("stalled", 12, 3)
        jsonschema.validate(by_topic["minewatch/edge-t/cameras/cam2/status"].json(), schema("status"))
        avail = by_topic["minewatch/edge-t/available"]
        assert avail.retain and avail.payload == b"offline"  # a clean stop says offline itself
        jsonschema.validate(avail.payload.decode(), schema("availability"))
    finally:
        late.close()
        outbox.close()


def test_last_will_says_offline_when_the_publisher_dies(broker: Broker, tmp_path: Path) -> None:
    path = write_config(tmp_path, broker.port, mqtt_extra={"keepalive_s": 5})
    pub = Publisher(path, count=0, prefix="w", log_path=tmp_path / "pub.log")
    sub = Subscriber(broker.port, "minewatch/edge-t/available", persistent=False)
    try:
        pub.expect("READY connected=True")
        assert sub.wait(lambda s: any(m.payload == b"online" for m in s.snapshot()), 5)
        pub.kill()  # SIGKILL: no goodbye, the broker sends the will
        assert sub.wait(lambda s: s.snapshot()[-1].payload == b"offline", 5)
    finally:
        sub.close()
        if pub.proc.poll() is None:
            pub.kill()


@pytest.mark.parametrize(("fields", "expected"), [
    ({"host": "b.example", "port": 1883}, "mqtt://b.example:1883"),
    ({"host": "b.example", "port": 8883, "tls": {}}, "mqtts://b.example:8883"),
    ({"host": "b.example", "username": "edge", "password_env": "X"}, "mqtt://edge@b.example:1883"),
])
def test_broker_name_never_has_a_password(fields: dict[str, object], expected: str) -> None:
    assert broker_name(MqttConfig.model_validate(fields)) == expected


def test_missing_password_variable_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import UserError

    monkeypatch.delenv("MW_TEST_NO_SUCH_VAR", raising=False)
    cfg = MqttConfig.model_validate({"username": "u", "password_env": "MW_TEST_NO_SUCH_VAR"})
    outbox = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(UserError, match="MW_TEST_NO_SUCH_VAR"):
        Relay(cfg, outbox)
    outbox.close()


def test_unreachable_broker_is_one_log_line_without_traceback(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, free_port())
    outbox = Outbox(config.alerts.outbox_path)
    relay = Relay(config.mqtt, outbox)
    with caplog.at_level(logging.INFO, logger="minewatch"):
        relay.start()
        assert not relay.wait_connected(1.5)  # several attempts (0.2 s doubling to 1 s)
        relay.stop()
    outbox.close()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert relay.stats["connect_failures"] >= 2
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert f"mqtt://127.0.0.1:{config.mqtt.port}" in errors[0].getMessage()
    assert errors[0].exc_info is None and "\n" not in errors[0].getMessage()


def test_no_broker_is_one_info_line_when_the_broker_is_not_required(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """mqtt.required false (the sample): running without a broker is normal, said once at INFO, no ERROR."""
    config = make_config(tmp_path, free_port(), mqtt_extra={"required": False})
    outbox = Outbox(config.alerts.outbox_path)
    relay = Relay(config.mqtt, outbox)
    with caplog.at_level(logging.INFO, logger="minewatch"):
        relay.start()
        assert not relay.wait_connected(1.5)
        relay.stop()
    outbox.close()
    assert relay.stats["connect_failures"] >= 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    lines = [r.getMessage() for r in caplog.records if "no broker" in r.getMessage()]
    assert len(lines) == 1 and "alerts wait in the outbox" in lines[0], lines


def test_cli_status_and_drain(broker: Broker, tmp_path: Path) -> None:
    path = write_config(tmp_path, broker.port)
    config = load_config(path)
    outbox = Outbox(config.alerts.outbox_path)
    AlertSink(config, outbox).submit(make_event("cli-1", frame=make_frame()))
    outbox.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", "alerts", *args, "--config", str(path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    status = cli("status")
    assert status.returncode == 0 and "pending            2" in status.stdout, status.stdout
    sub = Subscriber(broker.port, "minewatch/edge-t/events", persistent=False)
    try:
        drain = cli("drain", "--timeout-s", "10")
        assert drain.returncode == 0 and "drained: 0 message(s) left" in drain.stdout, drain.stderr
        assert sub.wait(lambda s: [e["alert_id"] for e in s.events()] == ["cli-1"], 5)
    finally:
        sub.close()
    assert "acked              2" in cli("status").stdout


def test_inflight_window_bounds_unacknowledged_messages(broker: Broker, tmp_path: Path) -> None:
    proxy = TcpProxy(broker.port)
    config = make_config(tmp_path, proxy.port, mqtt_extra={"inflight_window": 3})
    sub = Subscriber(broker.port, "minewatch/edge-t/events", persistent=False)
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    relay = Relay(config.mqtt, outbox)
    try:
        relay.start()
        assert relay.wait_connected(5)
        time.sleep(0.3)  # `online` acknowledged
        proxy.hold_downstream.set()  # no PUBACK comes back
        for i in range(6):
            sink.submit(make_event(f"w-{i}"))  # no frame: one event message each
        relay.wake()
        assert sub.wait(lambda s: len(s.events()) == 3, 5)
        time.sleep(1.0)
        assert [e["alert_id"] for e in sub.events()] == ["w-0", "w-1", "w-2"]  # the window holds the rest back
        assert outbox.pending_count() == 6
        proxy.hold_downstream.clear()  # PUBACKs flow: the window moves on
        assert relay.wait_drained(10)
        assert sub.wait(lambda s: {e["alert_id"] for e in s.events()} == {f"w-{i}" for i in range(6)}, 5)
    finally:
        relay.stop()
        sub.close()
        proxy.close()
        outbox.close()

"""The console's MQTT side against a real Mosquitto: shared subscription, persistent session, de-duplication."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker
from test_console_store import make_event, postgres_url  # noqa: F401 (a fixture)

from pipeline.console.config import ConsoleMqttConfig
from pipeline.console.ingest import Ingestor
from pipeline.console.store import Store

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 100 + b"\xff\xd9"
TLS_PASSWORD = "console-Tr0ub4dor&3"  # test secret


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish(client: mqtt.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    info = client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(5)
    assert info.is_published()


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def make_ingestor(tmp_path: Path, broker: Broker, name: str, share_group: str | None = "g") -> Ingestor:
    cfg = ConsoleMqttConfig(
        host="127.0.0.1",
        port=broker.port,
        client_id=f"console-{name}",
        share_group=share_group,
        reconnect_max_s=1,
        session_expiry_s=300,
        check_queue=False,  # tests/test_broker_queue.py checks it
    )
    store = Store(f"sqlite:///{tmp_path / name / 'register.sqlite'}")
    ing = Ingestor(cfg, store)
    ing.start()
    assert ing.connected.wait(10)
    assert ing.subscribed.wait(10)  # SUBACK: from now on nothing published is missed
    return ing


def test_two_consoles_share_a_subscription_each_alert_exactly_once(tmp_path: Path, broker: Broker) -> None:
    a = make_ingestor(tmp_path, broker, "a")
    b = make_ingestor(tmp_path, broker, "b")
    time.sleep(0.3)  # subscriptions in place
    pub = publisher(broker.port)
    n = 40
    try:
        for i in range(n):
            publish(
                pub,
                f"minewatch/edge-{i % 3}/events",
                json.dumps(make_event(f"al-{i}", box_id=f"edge-{i % 3}")).encode(),
            )
        wait_for(lambda: a.stats.events + b.stats.events >= n)
        time.sleep(0.5)  # nothing more arrives
        ids_a, ids_b = set(a.stats.alert_ids), set(b.stats.alert_ids)
        assert ids_a.isdisjoint(ids_b)
        assert ids_a | ids_b == {f"al-{i}" for i in range(n)}
        assert a.stats.events + b.stats.events == n
        assert ids_a and ids_b, "the broker should spread the load over both consoles"
        assert a.store.counts()["alerts"] + b.store.counts()["alerts"] == n
    finally:
        pub.loop_stop()
        a.stop()
        b.stop()


def test_events_snapshots_and_statuses_are_stored_duplicates_dropped(tmp_path: Path, broker: Broker) -> None:
    ing = make_ingestor(tmp_path, broker, "one", share_group=None)
    pub = publisher(broker.port)
    try:
        event = json.dumps(make_event("x1")).encode()
        publish(pub, "minewatch/edge-1/events", event)
        publish(pub, "minewatch/edge-1/events", event)  # QoS 1 redelivery looks like this
        publish(pub, "minewatch/edge-1/snapshots/x1", JPEG)
        publish(
            pub,
            "minewatch/edge-1/cameras/cam1/status",
            b'{"schema": "minewatch.status/1", "status": "offline", "t": "2026-11-29T08:00:00Z"}',
            retain=True,
        )
        publish(pub, "minewatch/edge-1/available", b"offline", retain=True)
        publish(pub, "minewatch/edge-1/events", b"{broken")
        publish(pub, "minewatch/edge-1/snapshots/x2", b"not a jpeg")
        wait_for(
            lambda: (
                ing.stats.invalid >= 2
                and ing.stats.statuses >= 2
                and ing.stats.snapshots >= 1
                and ing.stats.duplicates >= 1
            )
        )
        assert (ing.stats.events, ing.stats.duplicates) == (1, 1)
        assert ing.store.snapshot("x1") == JPEG
        towers = {t["camera_id"]: t for t in ing.store.towers()}
        assert towers["cam1"]["status"] == "offline" and towers["cam1"]["lat"] == pytest.approx(38.70)
        assert [(b["box_id"], b["available"]) for b in ing.store.boxes()] == [("edge-1", "offline")]
    finally:
        pub.loop_stop()
        ing.stop()


def test_persistent_session_gets_what_was_published_while_it_was_down(tmp_path: Path, broker: Broker) -> None:
    ing = make_ingestor(tmp_path, broker, "p")
    time.sleep(0.3)
    ing.stop()  # a plain disconnect: the broker keeps the session and queues QoS 1 messages
    pub = publisher(broker.port)
    try:
        for i in range(5):
            publish(pub, "minewatch/edge-1/events", json.dumps(make_event(f"q-{i}")).encode())
        store = ing.store
        again = Ingestor(ing.cfg, store)  # same client id, same register
        again.start()
        wait_for(lambda: again.stats.events >= 5)
        assert again.stats.alert_ids == [f"q-{i}" for i in range(5)]
        again.stop()
    finally:
        pub.loop_stop()


@pytest.mark.parametrize("register", ["sqlite", "postgres"])
def test_edge_box_outbox_and_relay_to_two_consoles_sharing_one_register(
    tmp_path: Path, broker: Broker, register: str, request: pytest.FixtureRequest
) -> None:
    """The edge box's real AlertSink → Outbox → Relay publish; two consoles of one group share a register
    (one SQLite file, or PostgreSQL as in a county deployment)."""
    import cv2
    import numpy as np

    from pipeline.alerts import AlertSink, Outbox
    from pipeline.alerts.relay import Relay
    from tests.mqtt_helpers import make_config, make_frame
    from tests.mqtt_helpers import make_event as edge_event

    url = f"sqlite:///{tmp_path / 'shared-register.sqlite'}"
    if register == "postgres":
        import psycopg

        base = request.getfixturevalue("postgres_url")
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS edge_to_console CASCADE")
            conn.execute("CREATE SCHEMA edge_to_console")
        url = f"{base}?options=-csearch_path%3Dedge_to_console"
    consoles: list[Ingestor] = []
    (tmp_path / "edge").mkdir()
    config = make_config(tmp_path / "edge", broker.port)
    outbox = Outbox(config.alerts.outbox_path)
    relay = Relay(config.mqtt, outbox)
    try:
        for name in ("c1", "c2"):
            cfg = ConsoleMqttConfig(
                host="127.0.0.1",
                port=broker.port,
                client_id=f"console-{name}",
                share_group="room",
                reconnect_max_s=1,
                session_expiry_s=300,
                check_queue=False,
            )
            ing = Ingestor(cfg, Store(url))
            consoles.append(ing)
            ing.start()
            assert ing.connected.wait(10)
        time.sleep(0.3)
        sink = AlertSink(config, outbox)
        relay.start()
        ids = [f"cam1-{i}" for i in range(6)]
        for i, alert_id in enumerate(ids):
            sink.submit(edge_event(alert_id, "new", frame=make_frame(seed=i)))
            sink.submit(edge_event(alert_id, "update"))
        assert relay.wait_drained(20)
        store = consoles[0].store
        wait_for(lambda: store.counts() == {"alerts": 6, "messages": 12, "snapshots": 6})
        assert sum(c.stats.events for c in consoles) == 12 and sum(c.stats.duplicates for c in consoles) == 0
        for alert_id in ids:
            a = store.get_alert(alert_id)
            assert a is not None and (a["seq"], a["event_type"], a["zone_kind"]) == (2, "update", "closed_mine")
            jpeg = store.snapshot(alert_id)
            assert jpeg is not None and hashlib.sha256(jpeg).hexdigest() == a["snapshot_sha256"]
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape == (240, 320, 3)
    finally:
        relay.stop()
        outbox.close()
        for c in consoles:
            c.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto with TLS (a test CA, server certificate for IP 127.0.0.1) and a password file."""
    if not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        pytest.fail("needs openssl and mosquitto_passwd: run `bash scripts/setup.sh --dev`")
    pki = tmp_path / "pki"
    pki.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=console test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (pki / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
        "-extfile",
        "ext.cnf",
    )
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "edge", TLS_PASSWORD], check=True, capture_output=True
    )
    extra = (
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        f"password_file {pki / 'passwd'}\nallow_anonymous false\n"
    )
    b = Broker(tmp_path / "tls-broker", extra_conf=extra).start()
    yield b
    b.stop()


def test_tls_and_password_from_env_and_never_logged(
    tls_broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The console against Mosquitto with TLS (test CA) and a password file: a wrong password is refused and
    logged without the secret; the right one (from an environment variable) receives."""
    pki = tmp_path / "pki"
    monkeypatch.setenv("MW_CONSOLE_PW", "not-the-password")

    def config() -> ConsoleMqttConfig:
        return ConsoleMqttConfig.model_validate(
            {
                "host": "127.0.0.1",
                "port": tls_broker.port,
                "client_id": "console-tls",
                "reconnect_max_s": 1,
                "username": "edge",
                "password_env": "MW_CONSOLE_PW",
                "tls": {"ca_file": str(pki / "ca.crt")},
            }
        )

    with caplog.at_level(logging.DEBUG):
        wrong = Ingestor(config(), Store(f"sqlite:///{tmp_path / 'r.sqlite'}"))
        wrong.start()
        time.sleep(1.5)
        assert not wrong.connected.is_set()
        wrong.stop()
        monkeypatch.setenv("MW_CONSOLE_PW", TLS_PASSWORD)
        ing = Ingestor(config(), Store(f"sqlite:///{tmp_path / 'r.sqlite'}"))
        ing.start()
        try:
            assert ing.connected.wait(10)
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-pub", protocol=mqtt.MQTTv5)
            pub.tls_set(ca_certs=str(pki / "ca.crt"))
            pub.username_pw_set("edge", TLS_PASSWORD)
            pub.connect("127.0.0.1", tls_broker.port)
            pub.loop_start()
            time.sleep(0.3)
            publish(pub, "minewatch/edge-1/events", json.dumps(make_event("tls-1")).encode())
            wait_for(lambda: ing.stats.events == 1)
            pub.loop_stop()
        finally:
            ing.stop()
    assert any("refused" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert TLS_PASSWORD not in record.getMessage() and "not-the-password" not in record.getMessage()

"""The fault suite: alerts survive a killed broker, a killed publisher, a cut link, a corrupt outbox; TLS and
passwords work and never leak. Each test starts its own Mosquitto on loopback.

The figures of these runs (sent, delivered, duplicates, drain time) are printed as ``FIGURES …`` lines
(``pytest tests/test_faults.py -s``) and reported in docs/RELIABILITY.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.alerts import AlertSink, Outbox, Relay
from pipeline.config import Config
from tests.conftest import ROOT, Broker
from tests.mqtt_helpers import Publisher, Subscriber, TcpProxy, make_config, make_event, make_frame, write_config

pytestmark = pytest.mark.slow


def pending_rows(outbox_path: Path) -> int:
    """Rows in another process's outbox (read-only; WAL lets us read while it writes)."""
    with sqlite3.connect(f"file:{outbox_path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


def wait_until(predicate: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def figures(name: str, **values: object) -> None:
    print(f"\nFIGURES {name} " + json.dumps(values))


# -- broker killed mid-stream ----------------------------------------------------------------------------
@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto set up as docs/RELIABILITY.md recommends: it saves its queues after every change, so a message
    it has acknowledged (PUBACK: the edge box forgets it) survives its own SIGKILL. With the default timed
    autosave, messages acknowledged less than ~2 s before the kill and not yet passed on are lost by the
    broker, not by minewatch (docs/RELIABILITY.md, "What the broker must do")."""
    b = Broker(tmp_path / "broker", extra_conf="autosave_on_changes true\n").start()
    yield b
    b.stop()


def test_broker_sigkill_mid_stream_loses_no_alert(durable_broker: Broker, tmp_path: Path) -> None:
    broker = durable_broker
    n_alerts, down_s = 250, 10.0
    config = make_config(tmp_path, broker.port)
    sub = Subscriber(broker.port, "minewatch/edge-t/#", persistent=True)
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    relay = Relay(config.mqtt, outbox)
    relay.start()
    assert relay.wait_connected(5)
    submitted: list[str] = []

    def stream() -> None:  # 250 alerts with snapshots, about 40 per second on this machine
        for i in range(n_alerts):
            submitted.append(sink.submit(make_event(f"k-{i:04d}", frame=make_frame(seed=i))))
            relay.wake()
            time.sleep(0.01)

    producer = threading.Thread(target=stream)
    try:
        producer.start()
        assert wait_until(lambda: len(sub.events()) >= 40, 20)
        broker.kill()  # SIGKILL, mid-stream
        t_kill = time.monotonic()
        delivered_before_kill = len({e["alert_id"] for e in sub.events()})
        producer.join(30)  # the stream goes on while the broker is down
        assert len(submitted) == n_alerts
        assert time.monotonic() - t_kill < down_s, "the stream should end while the broker is still down"
        time.sleep(down_s - (time.monotonic() - t_kill))
        pending_at_restart = outbox.pending_count()
        assert pending_at_restart > 0  # alerts did wait in the outbox
        broker.start()
        t_up = time.monotonic()
        assert wait_until(lambda: outbox.pending_count() == 0, 30), outbox.stats()
        drain_s = time.monotonic() - t_up
        arrived = sub.wait(lambda s: len({e["alert_id"] for e in s.events()}) == n_alerts, 15)
        missing = sorted(set(submitted) - {e["alert_id"] for e in sub.events()})
        assert arrived, f"{len(missing)} alert(s) never arrived: {missing[:10]}, {delivered_before_kill=}"
        events = sub.events()
        ids = Counter((e["alert_id"], e["seq"]) for e in events)
        assert set(a for a, _ in ids) == set(submitted)  # every alert_id arrived
        snapshots = {m.topic.rsplit("/", 1)[1] for m in sub.snapshot() if "/snapshots/" in m.topic}
        assert snapshots == set(submitted)  # and every snapshot
        stats = outbox.stats()
        assert stats["pending"] == 0 and stats["dropped_update"] + stats["dropped_event"] == 0
        figures("broker_kill", alerts_sent=n_alerts, alerts_delivered=len({a for a, _ in ids}),
                event_messages_received=len(events), duplicates=sum(c - 1 for c in ids.values()),
                delivered_before_kill=delivered_before_kill, broker_down_s=round(t_up - t_kill, 1),
                pending_at_restart=pending_at_restart, drain_s_after_restart=round(drain_s, 2),
                relay_disconnects=relay.stats["disconnects"], relay_connect_failures=relay.stats["connect_failures"])
    finally:
        producer.join(30)
        relay.stop()
        sub.close()
        outbox.close()


# -- publisher killed after commit, before PUBACK -----------------------------------------------------------
def test_publisher_sigkill_before_puback_redelivers_same_alert(broker: Broker, tmp_path: Path) -> None:
    proxy = TcpProxy(broker.port)
    path = write_config(tmp_path, proxy.port)
    outbox_path = tmp_path / "outbox.sqlite"
    sub = Subscriber(broker.port, "minewatch/edge-t/events", persistent=False)
    first = Publisher(path, count=3, prefix="pk", wait_go=True, log_path=tmp_path / "pub1.log")
    try:
        first.expect("READY connected=True")
        proxy.hold_downstream.set()  # from now on no PUBACK reaches the publisher
        first.go()
        first.expect("SUBMITTED 3")
        assert sub.wait(lambda s: len(s.events()) == 3, 10)  # the broker has them, the publisher does not know
        assert pending_rows(outbox_path) == 6  # 3 events + 3 snapshots still committed, unacknowledged
        first.kill()  # SIGKILL between commit and PUBACK
        assert pending_rows(outbox_path) == 6
        proxy.hold_downstream.clear()
        second = Publisher(path, count=0, prefix="unused", log_path=tmp_path / "pub2.log")
        try:
            assert "pending=6" in second.expect("READY")
            assert wait_until(lambda: pending_rows(outbox_path) == 0, 15)
            assert sub.wait(lambda s: len(s.events()) == 6, 5)
        finally:
            second.terminate()
        received = [m.payload for m in sub.snapshot() if m.topic.endswith("/events")]
        counts = Counter(received)
        assert len(counts) == 3 and set(counts.values()) == {2}  # each sent twice, byte-identical
        assert sorted({json.loads(p)["alert_id"] for p in counts}) == ["pk-0000", "pk-0001", "pk-0002"]
        figures("publisher_kill", alerts_sent=3, alerts_delivered=3, duplicates=3,
                redelivered_same_alert_id_and_seq=True)
    finally:
        if first.proc.poll() is None:
            first.kill()
        sub.close()
        proxy.close()


# -- the link is cut in the middle of a publish ---------------------------------------------------------------
def test_link_cut_mid_publish_is_resent_and_acknowledged(broker: Broker, tmp_path: Path) -> None:
    proxy = TcpProxy(broker.port)
    config = make_config(tmp_path, proxy.port, alerts_extra={"snapshot_jpeg_quality": 95})
    sub = Subscriber(broker.port, "minewatch/edge-t/#", persistent=False)
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    relay = Relay(config.mqtt, outbox)
    try:
        relay.start()
        assert relay.wait_connected(5)
        time.sleep(0.2)  # let the `online` message through before arming the cut
        proxy.cut_after(20_000)  # the next 20 kB pass, then the socket is cut: inside the snapshot's PUBLISH
        sink.submit(make_event("cut-1", frame=make_frame((640, 480), noise=True)))
        relay.wake()
        assert wait_until(lambda: outbox.pending_count() == 0, 15), outbox.stats()
        assert proxy.cuts == 1 and proxy.connections >= 2 and relay.stats["disconnects"] >= 1
        assert sub.wait(lambda s: len(s.events()) >= 1, 5)
        event = sub.events()[0]
        snaps = [m.payload for m in sub.snapshot() if m.topic.endswith("/snapshots/cut-1")]
        assert event["snapshot"]["bytes"] > 100_000  # the cut really fell inside it
        assert snaps and hashlib.sha256(snaps[-1]).hexdigest() == event["snapshot"]["sha256"]
        figures("link_cut", snapshot_bytes=event["snapshot"]["bytes"], cut_after_bytes=20_000,
                connections=proxy.connections, snapshot_copies_received=len(snaps))
    finally:
        relay.stop()
        sub.close()
        proxy.close()
        outbox.close()


# -- corrupt outbox ---------------------------------------------------------------------------------------
def test_corrupt_outbox_starts_says_so_once_and_keeps_delivering(broker: Broker, tmp_path: Path) -> None:
    path = write_config(tmp_path, broker.port)
    outbox_path = tmp_path / "outbox.sqlite"
    outbox_path.write_bytes(b"\x00garbage, not SQLite\x00" * 500)
    sub = Subscriber(broker.port, "minewatch/edge-t/events", persistent=False)
    log_path = tmp_path / "pub.log"
    pub = Publisher(path, count=2, prefix="cx", log_path=log_path)
    try:
        pub.expect("READY connected=True")
        pub.expect("SUBMITTED 2")
        assert sub.wait(lambda s: len(s.events()) == 2, 10)
        assert wait_until(lambda: pending_rows(outbox_path) == 0, 10)
    finally:
        pub.terminate()
        sub.close()
    lines = [line for line in log_path.read_text().splitlines() if "outbox" in line and "moved aside" in line]
    assert len(lines) == 1 and "ERROR" in lines[0] and str(outbox_path) in lines[0]
    assert "Traceback" not in log_path.read_text()
    assert list(tmp_path.glob("outbox.sqlite.corrupt-*"))


# -- TLS and passwords -----------------------------------------------------------------------------------
PASSWORD = "Tr0ub4dor-&-3-edge"  # noqa: S105 (test secret)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN=minewatch test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    return folder / f"{name}.crt", folder / f"{name}.key"


def make_cert(pki: Path, name: str, cn: str, ext: str) -> None:
    """A key and a certificate signed by ``pki/ca.crt``."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=pki)
    (pki / f"{name}.cnf").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.cnf", cwd=pki)


@pytest.fixture
def tls_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Broker]:
    """Mosquitto with TLS (test CA, SAN IP:127.0.0.1) and a password file; ``mutual`` (indirect param) also
    requires a client certificate."""
    mutual = bool(getattr(request, "param", False))
    if not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        pytest.fail("needs openssl and mosquitto_passwd: run `bash scripts/setup.sh --dev`")
    pki = tmp_path / "pki"
    make_ca(pki, "ca")
    make_cert(pki, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=serverAuth\n")
    make_cert(pki, "client", "edge-t", "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "edge", PASSWORD], check=True,
                   capture_output=True)
    (pki / "passwd").chmod(0o600)
    extra = (f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
             f"password_file {pki / 'passwd'}\nallow_anonymous false\n")
    if mutual:
        extra += "require_certificate true\n"
    b = Broker(tmp_path / "broker", extra_conf=extra).start()
    yield b
    b.stop()


def tls_config(tmp_path: Path, broker: Broker, password: str, monkeypatch: pytest.MonkeyPatch,
               ca: Path | None = None, client_cert: bool = False) -> Config:
    monkeypatch.setenv("MW_TEST_MQTT_PASSWORD", password)
    pki = tmp_path / "pki"
    tls: dict[str, str] = {"ca_file": str(ca or pki / "ca.crt")}
    if client_cert:
        tls.update(cert_file=str(pki / "client.crt"), key_file=str(pki / "client.key"))
    return make_config(tmp_path, broker.port, mqtt_extra={
        "username": "edge", "password_env": "MW_TEST_MQTT_PASSWORD", "tls": tls})


def no_secret_in(records: list[logging.LogRecord], secret: str) -> None:
    assert records
    for record in records:
        assert secret not in record.getMessage() and secret not in str(record.exc_text or "")


@pytest.mark.parametrize("tls_broker", [False, True], ids=["server-tls", "mutual-tls"], indirect=True)
def test_tls_with_username_and_password_delivers(tls_broker: Broker, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture,
                                                 request: pytest.FixtureRequest) -> None:
    mutual = "mutual" in request.node.name
    config = tls_config(tmp_path, tls_broker, PASSWORD, monkeypatch, client_cert=mutual)
    pki = tmp_path / "pki"
    sub = Subscriber(tls_broker.port, "minewatch/edge-t/events", persistent=False, tls_ca=pki / "ca.crt",
                     username="edge", password=PASSWORD,
                     tls_cert=(pki / "client.crt", pki / "client.key") if mutual else None)
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    with caplog.at_level(logging.DEBUG):
        relay = Relay(config.mqtt, outbox)
        relay.start()
        try:
            assert relay.wait_connected(10), relay.last_error
            sink.submit(make_event("tls-1", frame=make_frame()))
            relay.wake()
            assert relay.wait_drained(10)
            assert sub.wait(lambda s: [e["alert_id"] for e in s.events()] == ["tls-1"], 5)
        finally:
            relay.stop()
            sub.close()
            outbox.close()
    assert any(f"mqtts://edge@127.0.0.1:{tls_broker.port}" in r.getMessage() for r in caplog.records)
    no_secret_in(caplog.records, PASSWORD)


@pytest.mark.parametrize(("tls_broker", "fault", "says"), [
    (False, "wrong-password", "refused the connection: Not authorized (check mqtt.username and the password from"
                              " $MW_TEST_MQTT_PASSWORD)"),
    (False, "unknown-ca", "certificate verify failed"),
    (True, "no-client-cert", "during login"),
], indirect=["tls_broker"])
def test_refused_connection_is_one_line_naming_the_broker(tls_broker: Broker, tmp_path: Path, fault: str,
                                                          says: str, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    ca = make_ca(tmp_path / "other", "rogue")[0] if fault == "unknown-ca" else None
    secret = "not-" + PASSWORD if fault == "wrong-password" else PASSWORD
    config = tls_config(tmp_path, tls_broker, secret, monkeypatch, ca)
    outbox = Outbox(config.alerts.outbox_path)
    with caplog.at_level(logging.DEBUG):
        relay = Relay(config.mqtt, outbox)
        relay.start()
        assert not relay.wait_connected(2.0)  # several attempts with 0.2…1 s backoff
        relay.stop()
    outbox.close()
    assert relay.stats["connect_failures"] >= 2
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(bad) == 1, [r.getMessage() for r in bad]  # one line, however many attempts
    line = bad[0].getMessage()
    assert f"mqtts://edge@127.0.0.1:{tls_broker.port}" in line and "\n" not in line and bad[0].exc_info is None
    assert says in line
    no_secret_in(caplog.records, secret)


def test_cli_wrong_password_exits_2_with_one_line(tls_broker: Broker, tmp_path: Path) -> None:
    pw_file = tmp_path / "mqtt.pw"
    pw_file.write_text("wrong-" + PASSWORD + "\n")
    path = write_config(tmp_path, tls_broker.port, mqtt_extra={
        "username": "edge", "password_file": str(pw_file), "tls": {"ca_file": str(tmp_path / "pki" / "ca.crt")},
        "connect_timeout_s": 2})
    proc = subprocess.run([sys.executable, "-m", "pipeline.alerts", "drain", "--config", str(path),
                           "--timeout-s", "3", "--log-level", "CRITICAL"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"mqtts://edge@127.0.0.1:{tls_broker.port}" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr + proc.stdout  # (wrong-… contains it)


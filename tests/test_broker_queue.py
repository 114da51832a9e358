"""A burst of alerts to a console that is away, through a real Mosquitto: the default per-client queue drops
most of it (after acknowledging it to the publisher); the shipped configuration keeps it; doctor and the
console notice which one they talk to."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from conftest import Broker

from pipeline.alerts.broker_probe import probe_queue_limit
from pipeline.config import MqttConfig
from pipeline.console.config import ConsoleMqttConfig
from pipeline.console.ingest import Ingestor
from pipeline.console.store import Store
from pipeline.doctor import check_broker_queue

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "scripts" / "mosquitto" / "minewatch.conf"


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Broker:
    b = Broker(tmp_path / "shipped", extra_conf=SHIPPED.read_text(encoding="utf-8")).start()
    yield b  # type: ignore[misc]
    b.stop()


def test_a_burst_of_2000_is_kept_only_with_the_shipped_config(broker: Broker, shipped_broker: Broker) -> None:
    default = probe_queue_limit(MqttConfig(host="127.0.0.1", port=broker.port), "minewatch", count=2000)
    shipped = probe_queue_limit(MqttConfig(host="127.0.0.1", port=shipped_broker.port), "minewatch", count=2000)
    assert (default.published, shipped.published) == (2000, 2000)  # every one acknowledged to the publisher
    assert default.status == "warn" and default.received < 1100, default  # Mosquitto's default: 1000 (+ in flight)
    assert shipped.status == "ok" and shipped.received == 2000, shipped


def test_doctor_warns_about_the_default_queue(broker: Broker, shipped_broker: Broker) -> None:
    warn = check_broker_queue(MqttConfig(host="127.0.0.1", port=broker.port))
    assert warn.status == "warn" and "max_queued_messages" in warn.detail and "minewatch.conf" in warn.fix
    ok = check_broker_queue(MqttConfig(host="127.0.0.1", port=shipped_broker.port))
    assert ok.status == "ok", ok


def test_the_console_warns_about_the_default_queue(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = ConsoleMqttConfig(host="127.0.0.1", port=broker.port, client_id="queue-check", reconnect_max_s=1)
    ing = Ingestor(cfg, Store(f"sqlite:///{tmp_path / 'r.sqlite'}"))
    ing.queue_check_delay_s = 0
    with caplog.at_level(logging.INFO, logger="minewatch.console.ingest"):
        ing.start()
        try:
            deadline = time.monotonic() + 60
            while ing.queue_probe is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            ing.stop()
    status = ing.status()["broker_queue"]
    assert isinstance(status, dict) and status["status"] == "warn", status
    assert any(r.levelno == logging.WARNING and "max_queued_messages" in r.getMessage() for r in caplog.records)
    # the result is kept in the register: the next start (or another console on it) does not probe again
    again = Ingestor(cfg, ing.store)
    again.connected.set()
    again._check_queue()
    assert again.queue_probe == ing.queue_probe

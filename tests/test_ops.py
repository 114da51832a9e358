"""/health and /metrics over real HTTP on a free loopback port, read from real (unstarted) sources."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pipeline.config import CameraConfig
from pipeline.ops import OpsServer, PipelineCollector
from pipeline.sources import make_source
from tests.conftest import free_port


def _snapshot(cameras: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"cameras": cameras, "events": {}, "outbox_depth": 0, "broker_connected": False, "frames": 0}


def _serve(snapshot: Any) -> OpsServer:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(snapshot))
    return OpsServer("127.0.0.1", free_port(), lambda: {"healthy": True}, registry).start()


def test_metrics_answer_while_a_camera_has_not_delivered_a_frame(tmp_path: Path) -> None:
    """A camera with no frame yet reports ``lag_s: None``: /metrics leaves that sample out instead of failing."""
    cam = CameraConfig.model_validate({"id": "c1", "source": str(tmp_path / "later.mp4"), "lat": 38.7, "lon": 111.6})
    source = make_source(cam)  # never started: no frame, no lag
    assert source.health()["lag_s"] is None
    server = _serve(lambda: _snapshot({"c1": source.health()}))
    try:
        reply = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        text = reply.read().decode()
    finally:
        server.stop()
    assert reply.status == 200
    assert 'minewatch_camera_frames_in_total{camera="c1"} 0.0' in text
    assert 'minewatch_camera_lag_s{camera="c1"}' not in text
    assert 'minewatch_camera_online{camera="c1"} 0.0' in text


def test_a_failing_reader_answers_500_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    server = _serve(broken)
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    finally:
        server.stop()
    assert err.value.code == 500
    lines = [r.getMessage() for r in caplog.records if r.name == "minewatch.ops" and r.levelname == "ERROR"]
    assert lines == ["/metrics failed: RuntimeError: boom"]


def test_an_unreadable_outbox_is_nan_and_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The outbox closed under a scrape (shutdown): its depth is unknown, not -1 and not silent."""
    from pipeline.alerts import Outbox
    from pipeline.daemon import outbox_depth

    outbox = Outbox(tmp_path / "outbox.sqlite")
    reported: set[str] = set()
    assert outbox_depth(outbox, reported) == 0
    outbox.close()
    assert outbox_depth(outbox, reported) is None and outbox_depth(outbox, reported) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "minewatch.daemon" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("outbox depth unknown: ProgrammingError"), warnings
    server = _serve(lambda: {**_snapshot({}), "outbox_depth": None})
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.stop()
    assert "minewatch_outbox_depth NaN" in text

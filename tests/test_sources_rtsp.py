"""The RTSP reader against a real gst-rtsp-server on a free loopback port (tests/rtsp_fixture.py)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import CameraConfig
from pipeline.sources import RtspSource, Source, make_source
from pipeline.types import Frame
from tests.conftest import free_port
from tests.rtsp_fixture import (  # noqa: F401  (fixtures)
    FAST,
    RtspServer,
    Statuses,
    garble_clip,
    make_clip,
    rtsp_clip_fixture,
    rtsp_server_fixture,
    wait_until,
)


def camera(url: str, **kw: Any) -> CameraConfig:
    reader = {**FAST, **kw.pop("reader", {})}
    return CameraConfig.model_validate({"id": "cam1", "source": url, "lat": 38.7, "lon": 111.6, "pan_deg": 45.0,
                                        "tilt_deg": -5.0, "hfov_deg": 50.0, "reader": reader, **kw})


def drain(source: Source, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = source.slot.get(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def test_frames_carry_camera_pose_and_stream_times(rtsp_server: RtspServer) -> None:
    src = make_source(camera(rtsp_server.url, analysis_fps=5.0, reader={"decode_mode": "all"}))
    assert isinstance(src, RtspSource)
    src.start()
    try:
        assert wait_until(lambda: src.status == "online", 10)
        frames = drain(src, 2.5)
    finally:
        src.stop()
    assert len(frames) >= 8
    for f in frames:
        assert f.camera_id == "cam1"
        assert f.image_bgr.shape == (240, 320, 3) and f.image_bgr.dtype == np.uint8
        assert float(f.image_bgr.std()) > 20  # a real picture, never a synthetic black frame
        assert (f.pose.pan_deg, f.pose.tilt_deg, f.pose.hfov_deg, f.pose.preset) == (45.0, -5.0, 50.0, None)
        assert f.t_capture <= f.t_received + 1e-6
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    # 25 fps stream taken at 5 fps: 0.2 s apart on the stream's own clock (pts), skipped frames counted
    gaps = np.diff([f.t_capture for f in frames[1:]])
    assert np.median(gaps) == pytest.approx(0.2, abs=0.005), gaps
    assert np.mean(np.abs(gaps - 0.2) < 0.021) >= 0.75, gaps  # (the anchor may move once, on a busy CPU)
    health = src.health()
    assert health["frames_skipped_total"] >= 3 * len(frames)
    assert health["frames_analysed_total"] == len(frames)


def test_server_restart_goes_offline_then_online(rtsp_server: RtspServer) -> None:
    statuses = Statuses()
    src = make_source(camera(rtsp_server.url), statuses)
    src.start()
    try:
        assert wait_until(lambda: statuses.seen("online"), 10)
        killed = time.monotonic()
        rtsp_server.kill()
        assert wait_until(lambda: statuses.seen("offline", after=killed), 4), statuses.names()
        time.sleep(1.5)  # the camera stays away for a while; the reader keeps trying
        rtsp_server.start()
        restarted = time.monotonic()  # the server is back (listening)
        assert wait_until(lambda: statuses.seen("online", after=restarted), 8), statuses.names()
        back = statuses.first("online", after=restarted)
        assert back is not None and back - restarted < 6
        n = src.health()["frames_in_total"]
        assert wait_until(lambda: src.health()["frames_in_total"] > n + 10, 3)
        assert src.running
        assert src.health()["reconnects_total"] >= 1
    finally:
        src.stop()


def test_frozen_server_fires_watchdog_and_reconnects(rtsp_server: RtspServer) -> None:
    statuses = Statuses()
    src = make_source(camera(rtsp_server.url), statuses)
    src.start()
    try:
        assert wait_until(lambda: statuses.seen("online"), 10)
        frozen = time.monotonic()
        rtsp_server.freeze()  # SIGSTOP: the TCP connection stays open, no byte arrives
        assert wait_until(lambda: statuses.seen("stalled", after=frozen), 4), statuses.names()
        stalled_at = statuses.first("stalled", after=frozen)
        assert stalled_at is not None and stalled_at - frozen < 1.0 + 2.0  # stall_s + slack
        time.sleep(1.0)
        thawed = time.monotonic()
        rtsp_server.thaw()
        assert wait_until(lambda: statuses.seen("online", after=thawed), 8), statuses.names()
        health = src.health()
        assert health["stalls_total"] >= 1 and health["reconnects_total"] >= 1
        assert src.running
    finally:
        src.stop()


def _truncated(tmp_path: Path) -> Path:
    clip = make_clip(tmp_path / "full.mp4", seconds=4.0)
    data = clip.read_bytes()
    out = tmp_path / "truncated.mp4"
    out.write_bytes(data[: len(data) // 2])  # faststart: moov first, the media data cut mid-frame
    return out


def _garbled(tmp_path: Path) -> Path:
    clip = make_clip(tmp_path / "full.mp4", seconds=20.0)
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(1)
    start = len(data) // 10  # garbage over a stretch of media data (a few frames' worth)
    data[start:start + 60_000] = rng.integers(0, 256, 60_000, dtype=np.uint8).tobytes()
    out = tmp_path / "garbled.mp4"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("make_bad", [_truncated, _garbled], ids=["truncated", "garbled"])
def test_corrupt_or_truncated_stream_recovers(tmp_path: Path, make_bad: Any) -> None:
    server = RtspServer(make_bad(tmp_path)).start()
    statuses = Statuses()
    src = make_source(camera(server.url, analysis_fps=5.0), statuses)
    src.start()
    try:
        assert wait_until(lambda: statuses.seen("online"), 10)
        # the reader survives whatever the bad stream does and frames keep flowing (reconnecting if need be)
        counts = []
        for _ in range(3):
            time.sleep(1.5)
            counts.append(src.health()["frames_in_total"])
        assert src.running
        assert counts[-1] > counts[0], counts
        if make_bad is _truncated:  # 2 s of stream, then its end: offline, reconnect, online again
            assert statuses.names().count("online") >= 2, statuses.names()
            assert src.health()["reconnects_total"] >= 1
        else:  # the garbage was really seen: corrupt packets skipped and/or a stall that forced a reconnect
            health = src.health()
            assert health["decode_errors_total"] + health["stalls_total"] >= 1, health
    finally:
        src.stop()
        server.kill()


def test_bit_errors_over_rtsp_degrade_the_camera_and_are_never_analysed(tmp_path: Path) -> None:
    """2 kB of garbage every 150 kB of an H.264 file served over RTSP: the reader stayed `online` with
    ``decode_errors_total 0`` and handed on smeared frames. Now it counts them and says ``degraded``."""
    clip = make_clip(tmp_path / "clean.mp4", seconds=30.0, width=640, height=360)
    server = RtspServer(garble_clip(clip, tmp_path / "garbled.mp4")).start()
    statuses = Statuses()
    src = make_source(camera(server.url, analysis_fps=25.0, reader={"decode_mode": "all"}), statuses)
    src.start()
    try:
        assert wait_until(lambda: statuses.seen("degraded"), 20), statuses.names()
        frames = drain(src, 1.0)
        health = src.health()
    finally:
        src.stop()
        server.kill()
    assert health["status"] == "degraded"
    assert health["frames_concealed_total"] >= 1
    assert health["frames_analysed_total"] + health["frames_concealed_total"] <= health["frames_in_total"]
    assert all(float(f.image_bgr.std()) > 20 for f in frames)


def test_garbage_speaking_server_then_real_one(rtsp_clip: Path) -> None:
    port = free_port()
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)

    def garbage() -> None:
        rng = np.random.default_rng(2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n" + rng.bytes(2000))
                except OSError:
                    pass

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    statuses = Statuses()
    src = make_source(camera(f"rtsp://127.0.0.1:{port}/cam"), statuses)
    src.start()
    server = RtspServer(rtsp_clip, port=port)
    try:
        assert wait_until(lambda: src.health()["reconnects_total"] >= 2, 8)
        assert statuses.names() and set(statuses.names()) <= {"offline"}
        assert src.running and src.slot.get(0) is None  # nothing invented while there is no picture
        stop.set()
        thread.join(2)
        listener.close()
        server.start()
        assert wait_until(lambda: statuses.seen("online"), 8), statuses.names()
    finally:
        src.stop()
        server.kill()
        stop.set()


def test_credentials_never_reach_logs_or_status(caplog: pytest.LogCaptureFixture) -> None:
    statuses = Statuses()
    url = f"rtsp://admin:s3cretPW@127.0.0.1:{free_port()}/cam"  # nothing listens there
    src = make_source(camera(url), statuses)
    caplog.set_level(logging.DEBUG)
    src.start()
    try:
        assert wait_until(lambda: src.health()["reconnects_total"] >= 1, 6)
    finally:
        src.stop()
    assert statuses.seen("offline")
    text = caplog.text + repr(statuses.events) + repr(src.health())
    assert "s3cretPW" not in text
    assert "admin:***@127.0.0.1" in src.health()["source"]


@pytest.mark.parametrize(
    ("mode", "analysis_fps", "expect"),
    [("keyframes", 1.0, "keyframes"), ("auto", 1.0, "keyframes"), ("auto", 5.0, "all"), ("all", 1.0, "all")],
)
def test_decode_mode(rtsp_server: RtspServer, mode: str, analysis_fps: float, expect: str) -> None:
    src = make_source(camera(rtsp_server.url, analysis_fps=analysis_fps,
                             reader={"decode_mode": mode, "stall_s": 3.0}))
    src.start()
    try:
        assert wait_until(lambda: src.health()["decode"] == expect and src.health()["frames_in_total"] > 0, 6)
        before = src.health()["frames_in_total"]
        frames = drain(src, 2.0)
        decoded = src.health()["frames_in_total"] - before
    finally:
        src.stop()
    assert frames, "no frame analysed"
    if expect == "keyframes":
        assert decoded <= 4  # key frames only: one a second (25 fps stream), not ~50
    else:
        assert decoded >= 30

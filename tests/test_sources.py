"""Building blocks of the sources: latest-frame slot, counters, frame gate, decode policy, stream clock,
and the recorded-file source (clips encoded in-test with PyAV)."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import CameraConfig
from pipeline.sources import FileSource, LatestFrameSlot, Source, make_source
from pipeline.sources.base import DecodePolicy, FrameGate, StreamClock
from pipeline.sources.slot import HourCounter
from pipeline.types import Frame, Pose
from tests.rtsp_fixture import garble_clip, make_clip, wait_until


def frame(seq: int, camera_id: str = "c") -> Frame:
    return Frame(camera_id, seq, time.time(), np.zeros((4, 4, 3), np.uint8), Pose(0, 0, 60))


# -- LatestFrameSlot --------------------------------------------------------------------------------
def test_live_slot_overwrites_and_counts_drops() -> None:
    slot = LatestFrameSlot("c")
    assert slot.put(frame(1)) is True
    assert slot.put(frame(2)) is False  # overwrote frame 1, never waited
    assert slot.put(frame(3)) is False
    got = slot.get(0)
    assert got is not None and got.seq == 3
    assert slot.get(0.01) is None
    assert (slot.drops.total, slot.takes.total, slot.puts.total) == (2, 1, 3)


def test_file_slot_waits_for_the_frame_to_be_taken() -> None:
    slot = LatestFrameSlot("c", wait_when_full=True)
    slot.put(frame(1))
    done = threading.Event()

    def producer() -> None:
        slot.put(frame(2))
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.3)  # blocked: frame 1 not taken yet
    first = slot.get(1)
    assert first is not None and first.seq == 1
    assert done.wait(2)
    second = slot.get(1)
    assert second is not None and second.seq == 2
    assert slot.drops.total == 0


def test_closing_a_waiting_slot_releases_the_producer() -> None:
    slot = LatestFrameSlot("c", wait_when_full=True)
    slot.put(frame(1))
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(slot.put(frame(2))), daemon=True)
    thread.start()
    time.sleep(0.1)
    slot.close()
    thread.join(2)
    assert result == [False]


def test_hour_counter_forgets_after_an_hour() -> None:
    now = [1000.0]
    counter = HourCounter(clock=lambda: now[0])
    counter.add(3)
    now[0] += 1800
    counter.add(2)
    assert (counter.total, counter.last_hour()) == (5, 5)
    now[0] += 1900  # the first 3 are now older than an hour
    assert (counter.total, counter.last_hour()) == (5, 2)
    now[0] += 7200
    assert counter.last_hour() == 0


# -- FrameGate ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stream_fps", "analysis_fps", "seconds", "expected"),
    [(25, 5, 4, 20), (25, 1, 4, 4), (25, 25, 2, 50), (25, 60, 1, 25), (30, 2, 5, 10), (25, 0.5, 8, 4)],
)
def test_frame_gate_takes_frames_at_the_analysis_rate(
    stream_fps: float, analysis_fps: float, seconds: float, expected: int
) -> None:
    gate = FrameGate(analysis_fps)
    taken = sum(gate.due(i / stream_fps) for i in range(int(seconds * stream_fps)))
    assert taken == expected


def test_frame_gate_restarts_after_a_time_jump() -> None:
    gate = FrameGate(1.0)
    assert gate.due(0.0) and not gate.due(0.5)
    assert gate.due(100.0)  # reconnection / new file: take at once
    assert gate.due(5.0)  # backwards jump: take at once too


# -- DecodePolicy ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "stream_fps", "gop_s", "analysis_fps", "stall_s", "keyframes"),
    [
        ("auto", 25, 1.0, 1.0, 5.0, True),  # key frames each second, analysed at 1 fps
        ("auto", 25, 1.0, 0.2, 5.0, True),
        ("auto", 25, 2.0, 1.0, 5.0, False),  # key frames too rare for 1 fps
        ("auto", 25, 1.0, 10.0, 5.0, False),  # analysis close to the stream rate
        ("auto", 25, 4.0, 0.2, 5.0, False),  # the watchdog would fire between key frames
        ("all", 25, 1.0, 1.0, 5.0, False),
        ("keyframes", 25, 4.0, 5.0, 5.0, True),
    ],
)
def test_decode_policy(mode: str, stream_fps: float, gop_s: float, analysis_fps: float, stall_s: float,
                       keyframes: bool) -> None:
    policy = DecodePolicy(mode, analysis_fps, stall_s)
    gop = round(gop_s * stream_fps)
    for i in range(int(stream_fps * gop_s * 4)):
        policy.observe(i / stream_fps, i % gop == 0)
    assert policy.keyframes_only is keyframes
    assert policy.gop_s == pytest.approx(gop_s)


def test_decode_policy_switches_back_when_key_frames_get_rare() -> None:
    policy = DecodePolicy("auto", 1.0, 10.0)
    t = 0.0
    for i in range(100):
        policy.observe(t, i % 25 == 0)
        t += 0.04
    assert policy.keyframes_only
    for i in range(500):  # the camera now sends a key frame every 4 s
        policy.observe(t, i % 100 == 0)
        t += 0.04
    assert not policy.keyframes_only


# -- StreamClock ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([(None, 100.0)], [100.0]),  # no timestamp: arrival time
        ([(0.0, 100.0), (0.04, 100.5), (0.08, 100.5)], [100.0, 100.04, 100.08]),  # burst keeps stream spacing
        ([(0.0, 100.0), (10.0, 100.2)], [100.0, 100.2]),  # pts jump forward: never later than arrival
        ([(0.0, 100.0), (0.04, 103.0)], [100.0, 103.0]),  # arrived 3 s late (> skew): re-pinned
        ([(0.0, 100.5), (0.04, 100.1), (0.08, 100.2)], [100.5, 100.1, 100.14]),  # a less-delayed frame
        ([(5.0, 100.0), (4.0, 99.5)], [100.0, 99.0]),
    ],
)
def test_stream_clock(samples: list[tuple[float | None, float]], expected: list[float]) -> None:
    clock = StreamClock(max_skew_s=2.0)
    got = [clock.capture_time(pts, arrival) for pts, arrival in samples]
    assert got == pytest.approx(expected)


# -- FileSource -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip4s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("file") / "clip.mp4", seconds=4.0)


def file_camera(path: Path, **kw: object) -> CameraConfig:
    return CameraConfig.model_validate({"id": "f1", "source": str(path), "lat": 38.7, "lon": 111.6, **kw})


def take_all(src: Source, timeout_s: float = 20.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        f = src.slot.get(0.1)
        if f is not None:
            frames.append(f)
        elif src.finished:
            break
    return frames


def test_file_as_fast_as_possible_loses_no_due_frame(clip4s: Path) -> None:
    src = make_source(file_camera(clip4s, realtime=False, analysis_fps=5.0))
    assert isinstance(src, FileSource)
    src.start()
    frames: list[Frame] = []
    while not src.finished or src.slot.full:
        f = src.slot.get(0.2)
        if f is not None:
            frames.append(f)
            time.sleep(0.01)  # a slow consumer: the reader must wait, not drop
    src.stop()
    assert len(frames) == 20  # 4 s at 5 fps
    assert src.slot.drops.total == 0
    assert np.allclose(np.diff([f.t_capture for f in frames]), 0.2, atol=1e-3)
    assert src.health()["frames_in_total"] == 100 and src.health()["frames_skipped_total"] == 80
    assert src.status == "finished"


def test_realtime_file_is_paced_and_drops_when_nobody_takes(clip4s: Path) -> None:
    src = make_source(file_camera(clip4s, realtime=True, analysis_fps=10.0))
    src.start()
    assert wait_until(lambda: src.health()["frames_in_total"] > 0, 5)
    first = src.health()["frames_in_total"]
    time.sleep(1.0)
    decoded = src.health()["frames_in_total"] - first
    src.stop()
    assert 15 <= decoded <= 35  # about one second of a 25 fps file, not the whole file at once
    assert src.slot.drops.total >= 5  # nobody took: overwritten and counted, the reader never waited


def test_looping_file_keeps_going_with_increasing_times(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "short.mp4", seconds=1.0)
    src = make_source(file_camera(clip, realtime=False, loop=True, analysis_fps=5.0))
    src.start()
    frames = [f for f in (src.slot.get(2) for _ in range(15)) if f is not None]
    src.stop()
    assert len(frames) == 15 and not src.finished
    times = [f.t_capture for f in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert np.allclose(np.diff(times), 0.2, atol=0.05)


def _audio_only(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "nope.mp4", "cannot open"),
        (lambda d: (d / "junk.mp4").write_bytes(b"not a video at all" * 100) and d / "junk.mp4", "cannot open"),
        (lambda d: _audio_only(d / "sound.wav"), "no video track"),
    ],
    ids=["missing", "garbage", "audio-only"],
)
def test_unreadable_file_reports_offline_and_finishes(tmp_path: Path, make: Any, reason: str) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    src = make_source(file_camera(make(tmp_path)), lambda c, s, d: seen.append((s, d)))
    src.start()
    assert wait_until(lambda: src.finished, 5)
    src.stop()
    assert [s for s, _ in seen] == ["offline"]
    assert reason in seen[0][1]["reason"]
    assert src.slot.get(0) is None


def test_keyframes_only_file(clip4s: Path) -> None:
    src = make_source(file_camera(clip4s, realtime=False, analysis_fps=1.0, reader={"decode_mode": "keyframes"}))
    src.start()
    frames = take_all(src)
    src.stop()
    assert len(frames) == 4
    assert src.health()["frames_in_total"] == 4  # one key frame a second, nothing else decoded


@pytest.fixture(scope="module")
def garbled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """A 12 s 640x360 clip with 2 kB of garbage every 150 kB, and the frames of the clean original."""
    import av

    folder = tmp_path_factory.mktemp("garbled")
    clip = make_clip(folder / "clean.mp4", seconds=12.0, width=640, height=360)
    with av.open(str(clip)) as container:
        clean = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return garble_clip(clip, folder / "garbled.mp4"), clean


def test_concealed_frames_are_counted_never_analysed_and_the_camera_is_degraded(
        garbled: tuple[Path, list[np.ndarray]]) -> None:
    """A corrupt H.264 stream: FFmpeg conceals the damage and the smeared frames (until the next key frame)
    looked like machines to the detector. None of them may reach the analysis."""
    clip, clean = garbled
    seen: list[tuple[str, dict[str, Any]]] = []
    src = make_source(file_camera(clip, realtime=False, analysis_fps=25.0, reader={"decode_mode": "all"}),
                      lambda c, s, d: seen.append((s, d)))
    src.start()
    frames = take_all(src, timeout_s=60.0)
    src.stop()
    health = src.health()
    assert health["frames_in_total"] == len(clean)
    assert health["frames_concealed_total"] >= 25  # at least one whole group of pictures was damaged
    assert len(frames) + health["frames_concealed_total"] == len(clean)
    t0 = frames[0].t_capture  # frame 0 lies before the first garbage
    for frame in frames:
        index = round((frame.t_capture - t0) * 25)
        damage = float(np.abs(frame.image_bgr.astype(np.int16) - clean[index].astype(np.int16)).mean())
        assert damage < 1.0, (index, damage)  # every analysed frame is as clean as the original
    statuses = [s for s, _ in seen]
    assert "degraded" in statuses, statuses
    degraded = dict(seen)["degraded"]
    assert degraded["frames_concealed_total"] >= 1 and "not analysed" in degraded["reason"]


def test_a_clean_clip_conceals_nothing(clip4s: Path) -> None:
    src = make_source(file_camera(clip4s, realtime=False, analysis_fps=25.0, reader={"decode_mode": "all"}))
    src.start()
    frames = take_all(src)
    src.stop()
    assert len(frames) == 100 and src.health()["frames_concealed_total"] == 0

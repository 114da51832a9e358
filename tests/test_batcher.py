"""Batcher: batches bounded by size and wait, fair across cameras, results routed by camera."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest

from pipeline.detect.batcher import Batcher, route
from pipeline.sources import LatestFrameSlot
from pipeline.types import Frame, Pose


def frame(camera_id: str, seq: int = 1) -> Frame:
    return Frame(camera_id, seq, time.time(), np.zeros((2, 2, 3), np.uint8), Pose(0, 0, 60))


def slots(*ids: str) -> dict[str, LatestFrameSlot]:
    return {cid: LatestFrameSlot(cid) for cid in ids}


@pytest.mark.parametrize(
    ("cameras", "batch_max", "rounds", "expected_per_camera"),
    [(3, 2, 3, 2), (4, 1, 8, 2), (5, 3, 5, 3), (2, 4, 3, 3)],
)
def test_every_camera_is_served_in_turn(cameras: int, batch_max: int, rounds: int,
                                        expected_per_camera: int) -> None:
    ids = [f"c{i}" for i in range(cameras)]
    s = slots(*ids)
    batcher = Batcher(s, batch_max=batch_max, wait_s=0.0)
    served: Counter[str] = Counter()
    stop = threading.Event()
    for r in range(rounds):
        for cid in ids:  # every camera always has a fresh frame waiting
            s[cid].put(frame(cid, r))
        batch = batcher.next_batch(stop)
        assert 1 <= len(batch) <= batch_max
        assert len({f.camera_id for f in batch}) == len(batch)  # at most one frame per camera
        served.update(f.camera_id for f in batch)
    assert set(served.values()) == {expected_per_camera}, served


def test_waits_for_more_cameras_within_the_wait() -> None:
    s = slots("a", "b")
    batcher = Batcher(s, batch_max=4, wait_s=2.0)
    s["a"].put(frame("a"))
    threading.Timer(0.2, lambda: s["b"].put(frame("b"))).start()
    batch = batcher.next_batch(threading.Event())
    assert sorted(f.camera_id for f in batch) == ["a", "b"]


def test_a_full_batch_does_not_wait() -> None:
    s = slots("a", "b")
    batcher = Batcher(s, batch_max=2, wait_s=30.0)
    s["a"].put(frame("a"))
    s["b"].put(frame("b"))
    started = time.monotonic()
    batch = batcher.next_batch(threading.Event())
    assert len(batch) == 2 and time.monotonic() - started < 5.0  # well before wait_s


def test_idle_and_stop_return_empty() -> None:
    s = slots("a")
    batcher = Batcher(s, batch_max=2, wait_s=0.1, idle_timeout_s=0.2)
    assert batcher.next_batch(threading.Event()) == []
    stop = threading.Event()
    stop.set()
    s["a"].put(frame("a"))
    assert batcher.next_batch(stop) == []


def test_the_wait_is_bounded_when_other_cameras_stay_silent() -> None:
    s = slots("a", "b", "c")
    batcher = Batcher(s, batch_max=3, wait_s=0.3)
    s["a"].put(frame("a"))
    batch = batcher.next_batch(threading.Event())
    assert [f.camera_id for f in batch] == ["a"]


def test_route_sends_results_back_to_their_camera() -> None:
    frames = [frame("a", 1), frame("b", 1), frame("a", 2)]
    routed = route(frames, ["ra1", "rb1", "ra2"])
    assert {k: [(f.seq, r) for f, r in v] for k, v in routed.items()} == {"a": [(1, "ra1"), (2, "ra2")],
                                                                          "b": [(1, "rb1")]}
    with pytest.raises(ValueError, match="2 frames but 1 results"):
        route(frames[:2], ["x"])


def test_a_put_wakes_the_batcher_and_a_put_while_awake_skips_the_event() -> None:
    slots = {c: LatestFrameSlot(c) for c in ("a", "b")}
    batcher = Batcher(slots, batch_max=2, wait_s=0.0)
    batcher._wake.clear()
    calls: list[int] = []
    real_set = batcher._wake.set

    def counting_set() -> None:
        calls.append(1)
        real_set()

    batcher._wake.set = counting_set  # type: ignore[method-assign]
    slots["a"].put(Frame("a", 1, time.time(), np.zeros((2, 2, 3), np.uint8), Pose(0, 0, 60)))
    assert batcher._wake.is_set() and len(calls) == 1
    slots["b"].put(Frame("b", 1, time.time(), np.zeros((2, 2, 3), np.uint8), Pose(0, 0, 60)))
    assert len(calls) == 1  # already awake: no second set
    assert [f.camera_id for f in batcher.next_batch(threading.Event())] == ["a", "b"]

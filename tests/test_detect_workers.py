"""Inference workers: batches run in parallel, results come back in formation order, errors and
back-pressure behave, and the pool knows when every taken frame has been handed on."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipeline.detect.batcher import Batcher
from pipeline.detect.workers import BatchResult, InferencePool, RunBatch
from pipeline.sources import LatestFrameSlot
from pipeline.types import Detections, Frame, Pose


def frame(camera_id: str, seq: int) -> Frame:
    return Frame(camera_id, seq, time.time(), np.zeros((2, 2, 3), np.uint8), Pose(0, 0, 60))


def empty(batch: list[Frame]) -> list[Detections]:
    return [Detections() for _ in batch]


def feed(slot: LatestFrameSlot, camera_id: str, n: int, stop: threading.Event) -> threading.Thread:
    """A file-like camera: ``n`` frames, each waiting until the previous one was taken."""

    def run() -> None:
        for k in range(n):
            slot.put(frame(camera_id, k), stop)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def collect(pool: InferencePool, until: int, timeout_s: float = 20.0) -> list[BatchResult]:
    out: list[BatchResult] = []
    deadline = time.monotonic() + timeout_s
    frames = 0
    while frames < until and time.monotonic() < deadline:
        r = pool.next_result(0.2)
        if r is not None:
            out.append(r)
            frames += len(r.frames)
    return out


def run_files(
    runs: list[RunBatch], cameras: tuple[str, ...], frames_each: int
) -> tuple[InferencePool, list[BatchResult]]:
    """File-like cameras (each frame waits for the previous one to be taken) through a pool with one
    worker per run, batches of 1, until every frame came back; the pool is stopped before it returns."""
    stop = threading.Event()
    slots = {c: LatestFrameSlot(c, wait_when_full=True) for c in cameras}
    pool = InferencePool(Batcher(slots, batch_max=1, wait_s=0.0), runs, stop)
    feeders = [feed(slots[c], c, frames_each, stop) for c in slots]
    pool.start()
    results = collect(pool, frames_each * len(cameras))
    stop.set()
    pool.join(2.0)
    for t in feeders:
        t.join(2.0)
    return pool, results


def test_results_come_in_formation_order_although_workers_finish_out_of_order() -> None:
    def slow_on_even(batch: list[Frame]) -> list[Detections]:
        time.sleep(0.15 if batch[0].seq % 2 == 0 else 0.0)  # the later batch often finishes first
        return empty(batch)

    pool, results = run_files([slow_on_even, slow_on_even], ("a", "b"), 12)
    assert [r.seq for r in results] == list(range(len(results)))
    assert {r.worker for r in results} == {0, 1}  # both workers took batches
    for cam in ("a", "b"):  # every frame of every camera, in capture order
        assert [f.seq for r in results for f in r.frames if f.camera_id == cam] == list(range(12))
    assert pool.drained()


def test_workers_run_batches_at_the_same_time() -> None:
    both_in = threading.Barrier(2, timeout=5.0)  # breaks unless two runs are inside at once

    def meet(batch: list[Frame]) -> list[Detections]:
        both_in.wait()
        return empty(batch)

    _, results = run_files([meet, meet], ("a", "b"), 3)
    assert all(r.error is None for r in results), [r.error for r in results]
    assert sum(len(r.frames) for r in results) == 6


def test_an_inference_error_comes_back_with_its_frames_and_the_numbering_goes_on() -> None:
    def fail_on_two(batch: list[Frame]) -> list[Detections]:
        if batch[0].seq == 2:
            raise RuntimeError("onnxruntime says no")
        return empty(batch)

    def wrong_count(batch: list[Frame]) -> list[Detections]:
        return [] if batch[0].seq == 4 else fail_on_two(batch)

    _, results = run_files([wrong_count], ("a",), 6)
    assert [r.seq for r in results] == list(range(6))
    errors = {r.frames[0].seq: str(r.error) for r in results if r.error is not None}
    assert errors == {2: "onnxruntime says no", 4: "0 results for 1 frames"}
    assert all(len(r.dets) == len(r.frames) for r in results if r.error is None)


def test_no_batch_is_formed_while_max_pending_wait_and_live_cameras_keep_the_latest() -> None:
    stop = threading.Event()
    slot = LatestFrameSlot("live")  # a live camera: never waits, replaces and counts
    batcher = Batcher({"live": slot}, batch_max=1, wait_s=0.0)
    pool = InferencePool(batcher, [empty, empty], stop, max_pending=2)
    pool.start()
    for k in range(40):
        slot.put(frame("live", k))
        time.sleep(0.005)
    time.sleep(0.2)
    assert batcher.batches == 2  # nobody took results: the workers stopped forming batches
    assert slot.drops.total >= 30  # the camera went on; older frames were replaced, counted
    assert not pool.drained()  # two batches' frames are waiting for the analysis
    first = pool.next_result(1.0)
    later = pool.next_result(1.0)
    latest = pool.next_result(1.0)  # room again: the latest frame was taken
    assert first is not None and later is not None and latest is not None
    assert first.frames[0].seq < later.frames[0].seq < 39
    assert latest.frames[0].seq == 39
    stop.set()
    pool.join(2.0)
    assert pool.drained()


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        InferencePool(Batcher({}, 1, 0.0), [], threading.Event())


def test_longest_run_shows_a_hung_inference_call() -> None:
    stop = threading.Event()
    slot = LatestFrameSlot("a", wait_when_full=True)
    batcher = Batcher({"a": slot}, batch_max=1, wait_s=0.0)
    release = threading.Event()

    def hangs(batch: list[Frame]) -> list[Detections]:
        release.wait(10)
        return empty(batch)

    pool = InferencePool(batcher, [hangs], stop)
    assert pool.longest_run_s() == 0.0
    feeder = feed(slot, "a", 1, stop)
    pool.start()
    time.sleep(0.5)
    assert 0.3 < pool.longest_run_s() < 5.0  # inside the run, and counting
    release.set()
    assert pool.next_result(5.0) is not None
    assert pool.longest_run_s() == 0.0
    stop.set()
    pool.join(2.0)
    feeder.join(2.0)

"""Frames of all cameras → batches for the detector, bounded by a size and a wait, fair across cameras.

Each camera hands frames on through its :class:`~pipeline.sources.slot.LatestFrameSlot` (at most one
frame waits per camera), so one batch holds at most one frame per camera. ``next_batch`` waits for the
first frame, then up to ``wait_s`` more for others to fill the batch (never past ``batch_max``). When
more cameras have frames than fit, the scan starts after the camera served last, so every camera is
served in turn (round robin) and none starves. Frames carry their ``camera_id``: the caller routes each
result back to the camera's own state (see :func:`route`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import TypeVar

from pipeline.sources.slot import LatestFrameSlot
from pipeline.types import Frame

T = TypeVar("T")


class Batcher:
    def __init__(self, slots: Mapping[str, LatestFrameSlot], batch_max: int, wait_s: float,
                 idle_timeout_s: float = 0.5) -> None:
        """``idle_timeout_s``: with no frame at all, ``next_batch`` returns ``[]`` after this long, so the
        caller can do periodic work (event ends, watchdog pings) and notice finished files."""
        if batch_max < 1:
            raise ValueError("batch_max must be ≥ 1")
        self.slots = dict(slots)
        self.order = list(self.slots)
        self.batch_max = batch_max
        self.wait_s = wait_s
        self.idle_timeout_s = idle_timeout_s
        self._start = 0  # index in ``order`` where the next scan begins
        self._wake = threading.Event()
        for slot in self.slots.values():
            slot.add_listener(self._poke)
        self.batches = 0
        self.frames = 0
        #: held while frames are taken from the slots; ``taken`` counts them. Hold it to see the slots and
        #: the count as one state (a frame is never out of its slot without being counted).
        self.lock = threading.Lock()
        self.taken = 0

    def _poke(self) -> None:
        """A slot got a frame (on its reader's thread, after the put). While the detector is busy the event
        stays set across many puts; setting it again would take its lock and notify for nothing, 100 times a
        second with four 25 fps cameras. Skipping is safe: a set seen here was cleared, if at all, before
        a scan that finds this frame (the frame is in its slot before the listeners run)."""
        if not self._wake.is_set():
            self._wake.set()

    def _scan(self, batch: list[Frame], taken: set[str]) -> None:
        n = len(self.order)
        with self.lock:
            first = self._start
            for k in range(n):
                if len(batch) >= self.batch_max:
                    return
                cid = self.order[(first + k) % n]
                if cid in taken:
                    continue
                frame = self.slots[cid].take()
                if frame is not None:
                    batch.append(frame)
                    taken.add(cid)
                    self.taken += 1
                    self._start = (first + k + 1) % n  # the next scan begins after the camera served last

    def next_batch(self, stop: threading.Event) -> list[Frame]:
        """Up to ``batch_max`` frames (at most one per camera); ``[]`` when stopped or idle for a while.

        One caller at a time (the inference pool forms batches under its own lock)."""
        batch: list[Frame] = []
        taken: set[str] = set()
        idle_deadline = time.monotonic() + self.idle_timeout_s
        while not batch:
            if stop.is_set():
                return []
            self._wake.clear()
            self._scan(batch, taken)
            if batch:
                break
            remaining = idle_deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._wake.wait(min(remaining, 0.1))
        fill_deadline = time.monotonic() + self.wait_s
        while len(batch) < self.batch_max and len(taken) < len(self.order) and not stop.is_set():
            remaining = fill_deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            self._scan(batch, taken)
            if len(batch) >= self.batch_max or len(taken) >= len(self.order):
                break
            self._wake.wait(remaining)
        self.batches += 1
        self.frames += len(batch)
        return batch


def route(frames: Sequence[Frame], results: Sequence[T]) -> dict[str, list[tuple[Frame, T]]]:
    """Pair each frame with its result and group them by camera (in the batch's order)."""
    if len(frames) != len(results):
        raise ValueError(f"{len(frames)} frames but {len(results)} results")
    out: dict[str, list[tuple[Frame, T]]] = {}
    for frame, result in zip(frames, results, strict=True):
        out.setdefault(frame.camera_id, []).append((frame, result))
    return out

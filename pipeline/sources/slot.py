"""The hand-off between a camera's reader thread and the analysis: one frame, the latest.

A live camera must never wait for the detector: :meth:`LatestFrameSlot.put` overwrites a frame the
analysis has not taken yet and counts it as dropped. A recorded file read "as fast as possible"
(evaluation) must not lose frames, so its slot is made with ``wait_when_full=True``: ``put`` then waits
until the analysis has taken the previous frame (or the source is stopped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pipeline.types import Frame


class HourCounter:
    """A counter with its total and its sum over the last hour (one-minute buckets, O(1) memory)."""

    BUCKET_S = 60.0
    BUCKETS = 60

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.total = 0
        self._counts = [0] * self.BUCKETS
        self._stamp = [-1] * self.BUCKETS  # which minute each bucket holds
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        minute = int(self._clock() // self.BUCKET_S)
        i = minute % self.BUCKETS
        with self._lock:
            if self._stamp[i] != minute:
                self._stamp[i], self._counts[i] = minute, 0
            self._counts[i] += n
            self.total += n

    def last_hour(self) -> int:
        minute = int(self._clock() // self.BUCKET_S)
        with self._lock:
            return sum(c for c, s in zip(self._counts, self._stamp, strict=True) if minute - s < self.BUCKETS)


class RateMeter:
    """Events per second over a sliding window (for ``fps_in`` / ``fps_analysed``)."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._times: list[float] = []
        self._lock = threading.Lock()

    def tick(self) -> None:
        now = self._clock()
        with self._lock:
            self._times.append(now)
            if len(self._times) > 4096 or self._times[0] < now - 2 * self.window_s:
                self._times = [t for t in self._times if t >= now - self.window_s]

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            recent = [t for t in self._times if t >= now - self.window_s]
        return len(recent) / self.window_s


class LatestFrameSlot:
    """Holds at most one frame. ``put`` never blocks unless ``wait_when_full`` (non-realtime files).

    Listeners (``add_listener``) are called after every ``put``; the :class:`~pipeline.detect.batcher.Batcher`
    uses one to wake up when any camera has a frame.
    """

    def __init__(self, camera_id: str, wait_when_full: bool = False) -> None:
        self.camera_id = camera_id
        self.wait_when_full = wait_when_full
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        self.puts = HourCounter()
        self.drops = HourCounter()  # frames overwritten before the analysis took them
        self.takes = HourCounter()
        self.take_rate = RateMeter()
        self.last_lag_s: float | None = None  # age of the last frame taken (wall clock − capture time)

    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def put(self, frame: Frame, stop: threading.Event | None = None) -> bool:
        """Hand a frame on. Returns False when it overwrote one (live) or the slot was closed/stopped (files)."""
        fresh = True
        with self._cond:
            if self.wait_when_full:
                while self._frame is not None and not self._closed and not (stop is not None and stop.is_set()):
                    self._cond.wait(0.1)
                if self._closed or (stop is not None and stop.is_set()):
                    return False
            elif self._frame is not None:
                self.drops.add()
                fresh = False
            self._frame = frame
            self.puts.add()
            self._cond.notify_all()
        for callback in self._listeners:
            callback()
        return fresh

    def take(self) -> Frame | None:
        """The waiting frame, or None at once."""
        with self._cond:
            frame, self._frame = self._frame, None
            if frame is not None:
                self._cond.notify_all()
        if frame is not None:
            self._taken(frame)
        return frame

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """Wait up to ``timeout_s`` (None: for ever) for a frame and take it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._frame is None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
        if frame is not None:
            self._taken(frame)
        return frame

    def _taken(self, frame: Frame) -> None:
        self.takes.add()
        self.take_rate.tick()
        self.last_lag_s = max(0.0, time.time() - frame.t_capture)

    def close(self) -> None:
        """Wake every waiter: a waiting ``put`` returns False, a waiting ``get`` returns what is there."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def full(self) -> bool:
        return self._frame is not None

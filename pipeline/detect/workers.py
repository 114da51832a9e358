"""Inference workers: several detector sessions taking batches in turn, results handed on in batch order.

Each worker forms its next batch from the cameras' latest-frame slots (one worker at a time, so batches
are numbered in the order they were formed), runs it on its own session, and files the result under the
batch's number. The analysis thread takes results strictly in that order (:meth:`InferencePool.next_result`),
so every camera's frames reach its tracker and zone state in capture order, on one thread, however the
workers' runs overlap. A batch whose inference raised comes back with ``error`` set and its frames, so the
numbering never has a gap.

Back-pressure: no worker forms a new batch while ``max_pending`` batches are running or waiting for the
analysis; the cameras never wait (their slots keep only the latest frame and count what they replace).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.config import DetectorConfig
from pipeline.detect.batcher import Batcher
from pipeline.logs import get_logger
from pipeline.types import Detections, Frame

log = get_logger("detect")

if TYPE_CHECKING:
    from pipeline.detect.onnx_detector import OnnxDetector

RunBatch = Callable[[list[Frame]], list[Detections]]


@dataclass(slots=True)
class BatchResult:
    seq: int  # 0, 1, 2, … in the order batches were formed
    frames: list[Frame]
    dets: list[Detections]  # one per frame; empty when ``error`` is set
    inference_s: float  # wall time of the worker's run (BGR conversion, letterbox, session.run, decoding)
    worker: int
    error: Exception | None = None


class InferencePool:
    """``len(runs)`` worker threads over one :class:`Batcher`; see the module docstring."""

    def __init__(self, batcher: Batcher, runs: Sequence[RunBatch], stop: threading.Event,
                 max_pending: int | None = None) -> None:
        if not runs:
            raise ValueError("at least one worker")
        self.batcher = batcher
        self.runs = list(runs)
        self.stop_event = stop
        self.max_pending = max_pending or 2 * len(self.runs)
        self._form_lock = threading.Lock()  # one worker forms a batch at a time: numbering = formation order
        self._cond = threading.Condition()
        self._next_seq = 0  # next batch number to hand out (under _form_lock)
        self._next_out = 0  # next batch number the analysis takes (under _cond)
        self._running = 0
        self._done: dict[int, BatchResult] = {}
        self._run_started: dict[int, float] = {}  # worker → monotonic start of the run it is in
        self._threads: list[threading.Thread] = []
        #: frames handed to the analysis (compare with ``batcher.taken`` under ``batcher.lock``: equal means
        #: no frame is in a batch being formed, run or waiting)
        self.frames_out = 0

    @property
    def workers(self) -> int:
        return len(self.runs)

    def start(self) -> None:
        for k, run in enumerate(self.runs):
            t = threading.Thread(target=self._work, args=(k, run), name=f"infer-{k}", daemon=True)
            t.start()
            self._threads.append(t)

    def join(self, timeout_s: float) -> None:
        """Wait for the workers to finish their batch once ``stop`` is set (each at most ``timeout_s``)."""
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout_s)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _may_form(self) -> bool:
        return self._running + len(self._done) < self.max_pending

    def _work(self, k: int, run: RunBatch) -> None:
        while not self.stop_event.is_set():
            with self._form_lock:
                with self._cond:
                    while not self._may_form() and not self.stop_event.is_set():
                        self._cond.wait(0.1)
                try:
                    batch = self.batcher.next_batch(self.stop_event)
                except Exception:  # a bug in batching must not kill the worker silently
                    log.exception("forming a batch failed")
                    time.sleep(0.1)
                    continue
                if not batch:
                    continue
                seq = self._next_seq
                self._next_seq += 1
                with self._cond:
                    self._running += 1
                    self._run_started[k] = time.monotonic()
            t0 = time.perf_counter()
            error: Exception | None = None
            dets: list[Detections] = []
            try:
                dets = run(batch)
                if len(dets) != len(batch):
                    raise RuntimeError(f"{len(dets)} results for {len(batch)} frames")
            except Exception as exc:  # handed to the analysis thread, which decides (it re-raises)
                error, dets = exc, []
            result = BatchResult(seq, batch, dets, time.perf_counter() - t0, k, error)
            with self._cond:
                self._running -= 1
                self._run_started.pop(k, None)
                self._done[seq] = result
                self._cond.notify_all()

    def next_result(self, timeout_s: float) -> BatchResult | None:
        """The next batch's result in formation order, or None after ``timeout_s`` without it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._next_out not in self._done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            result = self._done.pop(self._next_out)
            self._next_out += 1
            self.frames_out += len(result.frames)
            self._cond.notify_all()
            return result

    def longest_run_s(self) -> float:
        """How long the longest batch now being run has been running (0 when no worker is running one): a
        hung inference call shows here (the daemon stops its systemd watchdog pings on it)."""
        with self._cond:
            starts = list(self._run_started.values())
        return time.monotonic() - min(starts) if starts else 0.0

    def drained(self) -> bool:
        """No frame is in a batch being formed, run, or waiting for the analysis (call with no result
        in hand; hold ``batcher.lock`` to judge it together with the slots)."""
        return self.batcher.taken == self.frames_out


# ------------------------------------------------------------------------------- how many workers, with what


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(cfg: DetectorConfig, on_gpu: bool, cores: int) -> tuple[int, int]:
    """(workers, onnxruntime threads per worker) for ``detector.workers`` / ``intra_op_threads`` (0 = auto).

    On the CPU, one single-threaded session per core (at most 4) beats one session spread over the
    cores: small YOLO operators do not split well, and a thread preempted by a camera reader holds up its
    partners at every operator barrier (2 cores, merged starter model at 320 px: 24.8 frames/s with two
    1-thread sessions, 19.9 with one 2-thread session; docs/BENCHMARKS.md). On a GPU two workers let one
    prepare and decode its batch on the CPU while the other's runs on the device.
    """
    cpu_workers = max(1, min(cores, 4))
    workers = cfg.workers or (2 if on_gpu else cpu_workers)
    threads = cfg.intra_op_threads or max(1, cores // (cfg.workers or cpu_workers))
    return workers, threads


def make_detectors(cfg: DetectorConfig, cores: int | None = None) -> list[OnnxDetector]:
    """One detector per inference worker (see :func:`plan_workers`); the first one validates the model."""
    cores = cores or usable_cores()
    _, threads = plan_workers(cfg, False, cores)
    from pipeline.detect.onnx_detector import OnnxDetector

    first = OnnxDetector(cfg, intra_op_threads=threads)
    workers, _ = plan_workers(cfg, first.provider != "CPUExecutionProvider", cores)
    detectors = [first] + [OnnxDetector(cfg, intra_op_threads=threads, announce=False) for _ in range(workers - 1)]
    log.info("%d inference worker(s), %d onnxruntime thread(s) each", workers, threads)
    return detectors

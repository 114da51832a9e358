"""What every camera source shares: the reader thread, status, counters, and the way a decoded frame is
judged (patrol pose → analysis rate → BGR → view check → slot).

A decoded frame reaches the analysis only when
1. the camera is dwelling at a preset and the frame was captured after the dwell began (not while
   moving or settling) — it then carries that preset's pose;
2. it is due at the camera's ``analysis_fps`` (the others are skipped *before* the costly BGR conversion,
   which waits until the detector takes the frame: see :class:`~pipeline.types.Frame`);
3. the view matches the preset's reference image, where one is configured (else the preset is held);
4. the decoder did not have to conceal damaged data in it, nor in a frame it was predicted from since the
   last key frame (a corrupt stream smears moving blocks that a detector takes for machines): such frames
   are counted (``frames_concealed_total``) and the camera reports ``degraded``.
"""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import av.error
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from pipeline.config import CameraConfig, ReaderConfig
from pipeline.logs import get_logger
from pipeline.redact import redact
from pipeline.sources.patrol import Pointing
from pipeline.sources.slot import HourCounter, LatestFrameSlot, RateMeter
from pipeline.sources.view_check import ViewGuard
from pipeline.types import Frame

StatusCallback = Callable[[str, str, dict[str, Any]], None]

#: Status strings a source reports through ``on_status`` (``degraded``: frames flow, but the decoder had to
#: conceal damaged data lately; those frames are not analysed).
STATUSES = ("online", "degraded", "offline", "stalled", "view_mismatch", "moving")


class FrameGate:
    """Takes frames at ``fps`` on the stream's own clock; every other frame is skipped.

    Works on capture times, so a burst of late frames is thinned the same way as a steady stream, and a
    time jump (file loop, reconnection) restarts the schedule instead of taking or skipping a long run.
    """

    def __init__(self, fps: float) -> None:
        self.period_s = 1.0 / fps
        self._next_t: float | None = None

    def due(self, t_s: float) -> bool:
        nxt = self._next_t
        if nxt is None or t_s < nxt - 10 * self.period_s or t_s > nxt + 10 * self.period_s:
            self._next_t = t_s + self.period_s
            return True
        # 1 ms tolerance: a 25 fps stream sampled at 5 fps takes every 5th frame despite pts rounding
        if t_s >= nxt - 1e-3:
            self._next_t = max(nxt + self.period_s, t_s + 0.5 * self.period_s)
            return True
        return False

    def reset(self) -> None:
        self._next_t = None


class DecodePolicy:
    """All frames or key frames only (``skip_frame="NONKEY"``), fixed or chosen from what the stream shows.

    ``auto`` watches the key-frame interval of the demuxed packets (they are all received anyway) and
    decodes key frames only while key frames come at least as often as the analysis asks and the stream
    runs at ≥ 4× the analysis rate; it switches back when the interval grows (the camera was reconfigured).
    """

    RATIO = 4.0  # stream fps / analysis fps from which key-frame-only decoding pays
    SLACK = 1.25  # a key-frame interval up to 1.25 analysis periods still counts as "often enough"

    def __init__(self, mode: str, analysis_fps: float, stall_s: float) -> None:
        self.mode = mode
        self.analysis_fps = analysis_fps
        self.stall_s = stall_s
        self.keyframes_only = mode == "keyframes"
        self._last_key_t: float | None = None
        self._intervals: deque[float] = deque(maxlen=5)
        self._gop_s: float | None = None
        self._packets_t: deque[float] = deque(maxlen=50)

    def reset(self) -> None:
        self._last_key_t = None
        self._intervals.clear()
        self._gop_s = None
        self._packets_t.clear()
        self.keyframes_only = self.mode == "keyframes"

    @property
    def gop_s(self) -> float | None:
        return self._gop_s

    def _add_interval(self, dt_s: float) -> None:
        self._intervals.append(dt_s)  # the median is taken here, once per key frame, not per packet
        self._gop_s = statistics.median(self._intervals) if len(self._intervals) >= 2 else None

    @property
    def stream_fps(self) -> float | None:
        ts = self._packets_t
        if len(ts) < 10 or ts[-1] <= ts[0]:
            return None
        return (len(ts) - 1) / (ts[-1] - ts[0])

    def observe(self, t_s: float | None, is_key: bool) -> bool:
        """Record one packet; returns True when the decision changed."""
        if t_s is None:
            return False
        self._packets_t.append(t_s)
        if is_key:
            if self._last_key_t is not None and t_s > self._last_key_t:
                self._add_interval(t_s - self._last_key_t)
            self._last_key_t = t_s
        if self.mode != "auto":
            return False
        gop, fps = self.gop_s, self.stream_fps
        if gop is None or fps is None:
            return False
        want = (
            gop <= self.SLACK / self.analysis_fps
            and fps >= self.RATIO * self.analysis_fps
            and gop < self.stall_s / 2
        )
        if want != self.keyframes_only:
            self.keyframes_only = want
            return True
        return False


class StreamClock:
    """Capture times from the stream's timestamps, anchored to this box's clock.

    The spacing of frames comes from the stream (so a burst after a network hiccup keeps its true
    timing); the absolute time is pinned so that the least-delayed frame seen so far arrived the moment
    it was captured (the anchor only moves earlier, as less-delayed frames turn up), and re-pinned when
    a frame arrives more than ``max_skew_s`` later than its timestamp says (a pts jump, a camera clock
    reset, a link that fell far behind). A frame without a timestamp (often the first) gets its arrival
    time. The result is never later than the arrival; it is early by at most the link's least latency.
    """

    def __init__(self, max_skew_s: float) -> None:
        self.max_skew_s = max_skew_s
        self._anchor: float | None = None
        self.repins = 0

    def reset(self) -> None:
        self._anchor = None

    def capture_time(self, pts_s: float | None, arrival_s: float) -> float:
        if pts_s is None:
            return arrival_s
        if self._anchor is None or self._anchor + pts_s > arrival_s:
            self._anchor = arrival_s - pts_s
        elif arrival_s - (self._anchor + pts_s) > self.max_skew_s:
            self.repins += 1
            self._anchor = arrival_s - pts_s
        return self._anchor + pts_s


class Source:
    """A camera source: one reader thread, a :class:`LatestFrameSlot`, status and counters.

    Subclasses implement :meth:`_run` (the reader loop) and call :meth:`_offer` for every decoded frame.
    """

    def __init__(
        self,
        cam: CameraConfig,
        pointing: Pointing,
        on_status: StatusCallback | None = None,
        view_guard: ViewGuard | None = None,
        wait_when_full: bool = False,
    ) -> None:
        self.cam = cam
        self.camera_id = cam.id
        self.cfg: ReaderConfig = cam.reader
        self.pointing = pointing
        self.view_guard = view_guard
        self.slot = LatestFrameSlot(cam.id, wait_when_full=wait_when_full)
        self._ended = False  # a non-looping file reached its end (see ``finished``)
        self.log: logging.Logger = get_logger("sources", cam.id)
        self._on_status = on_status
        self._status_lock = threading.Lock()
        self.status: str | None = None
        self.status_detail: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._gate = FrameGate(cam.analysis_fps)
        self.policy = DecodePolicy(self.cfg.decode_mode, cam.analysis_fps, self.cfg.stall_s)
        self.clock = StreamClock(self.cfg.max_clock_skew_s)
        self._tb_stream: VideoStream | None = None  # the stream whose time base _tb_s is (see _seconds)
        self._tb_s: float | None = None
        # counters
        self.frames_in = HourCounter()
        self.skipped = HourCounter()  # decoded but not due at analysis_fps
        self.not_pointed = HourCounter()  # decoded while moving/settling
        self.held = HourCounter()  # due, but the view does not match its reference
        self.reconnects = HourCounter()
        self.stalls = HourCounter()
        self.decode_errors = HourCounter()
        self.concealed = HourCounter()  # frames the decoder concealed, or predicted from one (not analysed)
        self._tainted = False  # damage seen since the last key frame: every frame until the next is suspect
        self._last_concealed_mono: float | None = None
        self.fps_in = RateMeter()
        self.fps_handed = RateMeter()
        self.last_frame_mono: float | None = None
        self.started_mono = time.monotonic()
        if view_guard is not None:
            view_guard.on_change = self._view_changed
        pointing.set_status_callback(self._pointing_status)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.slot.reopen()
        self.pointing.start()
        self._thread = threading.Thread(target=self._thread_main, name=f"source-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the reader; waits up to ``timeout_s`` (default: the read timeout + 2 s) for its thread."""
        self._stop.set()
        self.slot.close()
        self.pointing.stop()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.cfg.stall_s + 2.0)
            if self._thread.is_alive():
                self.log.warning("reader thread did not stop in time (blocked in a network read)")
            self._thread = None

    @property
    def finished(self) -> bool:
        """A non-looping file reached its end *and* its last frame was taken (nothing is left behind)."""
        return self._ended and not self.slot.full

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _thread_main(self) -> None:
        try:
            self._run()
        except Exception:  # the reader must never take the process down; log and end this source
            self.log.exception("reader failed")
            if not self.cam.is_rtsp:
                self._ended = True  # a file that cannot be read further counts as ended (evaluation goes on)
            self._set_status("offline", reason="reader failed")

    def _run(self) -> None:
        raise NotImplementedError

    # -- status ---------------------------------------------------------------------------------------
    def _emit(self, status: str, detail: dict[str, Any]) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(self.camera_id, status, detail)
        except Exception:  # a broken callback must not stop the reader
            self.log.exception("status callback failed")

    def _set_status(self, status: str, **detail: Any) -> None:
        """Stream status (online/offline/stalled/finished); reported only when it changes."""
        with self._status_lock:
            if status == self.status:
                return
            self.status, self.status_detail = status, dict(detail)
        level = logging.INFO if status in ("online", "finished") or detail.get("reason") == "stopped" \
            else logging.WARNING
        self.log.log(level, "status %s %s", status, redact(str(detail)) if detail else "")
        if status == "finished":
            self._emit("offline", {"reason": "end of file", **detail})
        else:
            self._emit(status, {**detail, **self._counters_brief()})

    def _pointing_status(self, status: str, detail: dict[str, Any]) -> None:
        """Patrol moves (``moving``) and arrivals (``online`` while the stream is online)."""
        if status == "online" and self.status != "online":
            return
        self._emit(status, detail)

    def _view_changed(self, preset: str | None, matches: bool, detail: dict[str, Any]) -> None:
        if matches:
            self.log.info("view at preset %s matches its reference again %s", preset, detail)
            if self.status == "online":
                self._emit("online", {"preset": preset, "view": "ok", **detail})
        else:
            self.log.warning("view at preset %s does not match its reference %s: analysis held", preset, detail)
            self._emit("view_mismatch", {"preset": preset, **detail})

    def _counters_brief(self) -> dict[str, Any]:
        return {
            "reconnects_last_hour": self.reconnects.last_hour(),
            "stalls_last_hour": self.stalls.last_hour(),
        }

    # -- frames ---------------------------------------------------------------------------------------
    def _offer(self, vframe: VideoFrame, t_capture: float, t_received: float) -> bool:
        """Judge one decoded frame; True when it was handed to the slot."""
        self.frames_in.add()
        self.fps_in.tick()
        now = time.monotonic()
        self.last_frame_mono = now
        if self._concealed(vframe):
            self.concealed.add()
            self._last_concealed_mono = now
            if self.status != "degraded":
                self._set_status("degraded", reason="the decoder conceals damaged data: those frames are not"
                                 " analysed", frames_concealed_total=self.concealed.total,
                                 decode_errors_total=self.decode_errors.total)
            return False
        if self.status != "online" and not (
                self.status == "degraded" and self._last_concealed_mono is not None
                and now - self._last_concealed_mono < self.cfg.degraded_clear_s):
            self._set_status("online", decode="keyframes" if self.policy.keyframes_only else "all")
        aim = self.pointing.pose_at(t_capture)
        if aim is None:
            self.not_pointed.add()
            return False
        pose, visit = aim
        if not self._gate.due(t_capture):
            self.skipped.add()
            return False
        # handed on unconverted: the BGR conversion happens once the detector takes the frame, so frames
        # replaced in the slot first (the detector is busy) never cost one
        frame = Frame(self.camera_id, self._seq + 1, t_capture, vframe, pose, t_received=t_received)
        if self.view_guard is not None and not self.view_guard.allows(
                pose.preset, visit, frame.image_bgr, time.monotonic()):
            self.held.add()
            return False
        self._seq += 1
        self.fps_handed.tick()
        return self.slot.put(frame, self._stop)

    def _concealed(self, vframe: VideoFrame) -> bool:
        """True for a frame the decoder flagged as concealed/corrupt, and for every frame after one (or after
        an undecodable packet) until the next clean key frame: they are predicted from damaged pictures."""
        if vframe.is_corrupt:
            self._tainted = True
        elif vframe.key_frame:
            self._tainted = False
        return self._tainted

    def _decode(self, stream: VideoStream, packet: av.Packet) -> list[VideoFrame]:
        """Decode one packet; a corrupt packet is counted and skipped, never fatal (the frames after it are
        suspect until the next key frame)."""
        try:
            return list(stream.codec_context.decode(packet))
        except av.error.InvalidDataError as exc:
            self.decode_errors.add()
            self._tainted = True
            if self.decode_errors.total <= 3 or self.decode_errors.total % 100 == 0:
                self.log.warning("corrupt data skipped (%d so far): %s", self.decode_errors.total, exc)
            return []

    def _configure_decoder(self, stream: VideoStream) -> None:
        ctx = stream.codec_context
        keyframes = self.cfg.decode_mode == "keyframes"
        # frame threading delays output by one frame per thread: harmless at full rate, but with key
        # frames only it would hold each key frame back by several key-frame intervals; and FFmpeg's slice
        # threads do not flag concealed frames, so key frames only decode on one thread
        ctx.thread_count = 1 if keyframes else self.cfg.decode_threads
        ctx.thread_type = "SLICE" if keyframes else "AUTO"
        self._tainted = False  # a new decoder: nothing to inherit
        self._apply_policy(stream)

    def _apply_policy(self, stream: VideoStream) -> None:
        stream.codec_context.skip_frame = "NONKEY" if self.policy.keyframes_only else "DEFAULT"

    def _seconds(self, stream: VideoStream, pts: int | None) -> float | None:
        """A timestamp of ``stream`` (a packet's or a decoded frame's: same time base) in seconds. The time
        base is read once per stream: PyAV builds a ``Fraction`` on every access and multiplying by it costs
        ~5 µs, twice per frame on every reader thread, holding the GIL."""
        if stream is not self._tb_stream:
            self._tb_stream = stream
            self._tb_s = None if stream.time_base is None else float(stream.time_base)
        return None if pts is None or self._tb_s is None else pts * self._tb_s

    def _observe_packet(self, stream: VideoStream, packet: av.Packet) -> None:
        t = self._seconds(stream, packet.pts)
        if self.policy.observe(t, packet.is_keyframe):
            self._apply_policy(stream)
            self.log.info(
                "decoding %s (key frames every %.2f s, stream %.1f fps, analysis %.2f fps)",
                "key frames only" if self.policy.keyframes_only else "all frames",
                self.policy.gop_s or 0.0, self.policy.stream_fps or 0.0, self.cam.analysis_fps,
            )

    def _backoff_wait(self, attempt: int) -> bool:
        """Capped exponential backoff with ±20 % jitter; False when stopped meanwhile."""
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * (2.0 ** min(attempt, 30)))
        delay *= random.uniform(0.8, 1.2)
        return not self._stop.wait(delay)

    # -- health ---------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        age = None if self.last_frame_mono is None else round(time.monotonic() - self.last_frame_mono, 3)
        lag = self.slot.last_lag_s
        out: dict[str, Any] = {
            "status": self.status or "starting",
            "source": self.cam.source_redacted,
            "decode": "keyframes" if self.policy.keyframes_only else "all",
            "gop_s": None if self.policy.gop_s is None else round(self.policy.gop_s, 3),
            "last_frame_age_s": age,
            "fps_in": round(self.fps_in.rate(), 2),
            "fps_handed": round(self.fps_handed.rate(), 2),
            "fps_analysed": round(self.slot.take_rate.rate(), 2),
            "lag_s": None if lag is None else round(lag, 3),
            "frames_in_total": self.frames_in.total,
            "frames_analysed_total": self.slot.takes.total,
            "frames_dropped_total": self.slot.drops.total,
            "frames_skipped_total": self.skipped.total,
            "frames_moving_total": self.not_pointed.total,
            "frames_held_total": self.held.total,
            "reconnects_total": self.reconnects.total,
            "stalls_total": self.stalls.total,
            "decode_errors_total": self.decode_errors.total,
            "frames_concealed_total": self.concealed.total,
            "frames_concealed_last_hour": self.concealed.last_hour(),
            "reconnects_last_hour": self.reconnects.last_hour(),
            "stalls_last_hour": self.stalls.last_hour(),
            "skipped_last_hour": self.skipped.last_hour() + self.not_pointed.last_hour() + self.held.last_hour(),
            "dropped_last_hour": self.slot.drops.last_hour(),
            "finished": self.finished,
        }
        out.update(self.pointing.health())
        if self.view_guard is not None:
            out.update(self.view_guard.health())
        return out


def open_container(url: str, options: dict[str, str], timeout: tuple[float, float] | None) -> InputContainer:
    container = av.open(url, mode="r", options=options, timeout=timeout)
    assert isinstance(container, InputContainer)
    return container

"""A recorded video file as a camera (PyAV).

``realtime: true`` paces frames at the file's own rate, like a live camera: its slot overwrites and
counts drops. ``realtime: false`` reads as fast as the analysis takes frames (evaluation): its slot
*waits* until the previous frame was taken, so no due frame is lost. ``loop: true`` starts again at the
end; otherwise ``finished`` becomes True. Capture times are the moment of opening plus the frame's
timestamp in the file (plus the length of earlier loops).
"""

from __future__ import annotations

import time

import av
import av.error

from pipeline.config import CameraConfig
from pipeline.redact import redact
from pipeline.sources.base import Source, StatusCallback, open_container
from pipeline.sources.patrol import Pointing
from pipeline.sources.view_check import ViewGuard


class FileSource(Source):
    def __init__(self, cam: CameraConfig, pointing: Pointing, on_status: StatusCallback | None = None,
                 view_guard: ViewGuard | None = None) -> None:
        super().__init__(cam, pointing, on_status, view_guard, wait_when_full=not cam.realtime)
        self.loops = 0

    def _run(self) -> None:
        try:
            container = open_container(self.cam.source, {}, None)
        except (av.error.FFmpegError, OSError) as exc:
            self._ended = True
            self._set_status("offline", reason=redact(f"cannot open: {exc}"))
            return
        try:
            if not container.streams.video:
                self._ended = True
                self._set_status("offline", reason="the file has no video track")
                return
            self._play(container)
        finally:
            container.close()

    def _play(self, container: av.container.InputContainer) -> None:
        stream = container.streams.video[0]
        self._configure_decoder(stream)
        t0_wall = time.time()
        t0_mono = time.monotonic()
        offset_s = 0.0  # file time of earlier loops
        last_t = 0.0
        start_s = float(stream.start_time * stream.time_base) if stream.start_time is not None and \
            stream.time_base is not None else 0.0
        while not self._stop.is_set():
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                self._observe_packet(stream, packet)
                for vframe in self._decode(stream, packet):
                    if vframe.pts is None or vframe.time_base is None:
                        t_file = last_t + (1.0 / float(stream.average_rate or 25))
                    else:
                        t_file = float(vframe.pts * vframe.time_base) - start_s
                    last_t = t_file
                    t_s = offset_s + t_file
                    if self.cam.realtime:
                        delay = t0_mono + t_s - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            return
                    self._offer(vframe, t0_wall + t_s, time.time())
            for vframe in self._flush(stream):  # frames the threaded decoder held back: their own timestamps
                if vframe.pts is not None and vframe.time_base is not None:
                    last_t = float(vframe.pts * vframe.time_base) - start_s
                else:
                    last_t += 1.0 / float(stream.average_rate or 25)
                self._offer(vframe, t0_wall + offset_s + last_t, time.time())
            if not self.cam.loop:
                self._ended = True
                self._set_status("finished", frames=self.frames_in.total)
                return
            self.loops += 1
            offset_s += last_t + 1.0 / float(stream.average_rate or 25)
            container.seek(0)
            stream.codec_context.flush_buffers()
            self._gate.reset()

    def _flush(self, stream: av.video.stream.VideoStream) -> list[av.VideoFrame]:
        try:
            return list(stream.codec_context.decode(None))
        except (av.error.FFmpegError, EOFError):
            return []

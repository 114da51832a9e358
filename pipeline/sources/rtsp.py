"""A hardened RTSP reader (PyAV over TCP).

One thread per camera: open (``open_timeout_s``) → demux → decode → judge each frame (see
:mod:`pipeline.sources.base`). Every read has a timeout of ``stall_s`` (FFmpeg's interrupt callback, plus
the RTSP socket timeout), and the loop also checks that *decoded frames* keep coming (a stream of
undecodable packets counts as stalled too). On a stall, an end of stream or any error the reader closes
the connection, reports ``stalled`` or ``offline``, and reconnects after a capped exponential backoff
(``backoff_initial_s`` doubling up to ``backoff_max_s``, ±20 % jitter; reset once frames flow again).
No frame is ever invented: while the camera is away, the slot simply stays empty.
The URL's credentials never reach a log line or an error: everything printed goes through ``redact``.
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


class StreamStalled(Exception):
    pass


class RtspSource(Source):
    def __init__(self, cam: CameraConfig, pointing: Pointing, on_status: StatusCallback | None = None,
                 view_guard: ViewGuard | None = None) -> None:
        super().__init__(cam, pointing, on_status, view_guard, wait_when_full=False)
        self.connects = 0
        self._conn_frames = 0  # frames decoded on the current connection

    def _options(self) -> dict[str, str]:
        return {
            "rtsp_transport": "tcp",
            # socket I/O timeout, microseconds (FFmpeg's rtsp `timeout`): a silent server is noticed
            "timeout": str(int(self.cfg.stall_s * 1e6)),
            "analyzeduration": "500000",
            "probesize": "1000000",
            "fflags": "nobuffer",
            "max_delay": "500000",
        }

    def _run(self) -> None:
        attempt = 0
        url = self.cam.source
        while not self._stop.is_set():
            if self.connects:
                self.reconnects.add()
            self.connects += 1
            try:
                container = open_container(url, self._options(), (self.cfg.open_timeout_s, self.cfg.stall_s))
            except Exception as exc:  # refused, unreachable, 401, 404, timeout, garbage: all "offline"
                self._set_status("offline", reason=redact(f"{type(exc).__name__}: {exc}"))
                if not self._backoff_wait(attempt):
                    return
                attempt += 1
                continue
            self._conn_frames = 0
            try:
                self._read(container)
                self._set_status("offline", reason="stopped" if self._stop.is_set() else "end of stream")
            except StreamStalled as exc:
                self.stalls.add()
                self._set_status("stalled", reason=str(exc))
            except av.error.ExitError:  # FFmpeg's read timeout fired: connection open, nothing arrives
                self.stalls.add()
                self._set_status("stalled", reason=f"no data for {self.cfg.stall_s:g} s")
            except Exception as exc:  # reset, EOF mid-packet, decoder trouble: reconnect
                self._set_status("offline", reason=redact(f"{type(exc).__name__}: {exc}"))
            finally:
                try:
                    container.close()
                except Exception:
                    self.log.debug("close failed", exc_info=True)
            delivered = self._conn_frames
            self.log.debug("connection %d ended after %d frames (status %s)", self.connects, delivered, self.status)
            if self._stop.is_set():
                return
            attempt = 0 if delivered else attempt + 1
            if not self._backoff_wait(attempt):
                return

    def _read(self, container: av.container.InputContainer) -> None:
        """Read until the stream ends or stalls (raises StreamStalled); counts ``_conn_frames``."""
        if not container.streams.video:
            raise ValueError("the stream has no video track")
        stream = container.streams.video[0]
        self._configure_decoder(stream)
        self.policy.reset()
        self._apply_policy(stream)
        self.clock.reset()
        self._gate.reset()
        opened = time.monotonic()
        last_frame = opened
        for packet in container.demux(stream):
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now - last_frame > self.cfg.stall_s:
                raise StreamStalled(f"no decodable frame for {now - last_frame:.1f} s")
            if packet.size == 0:
                continue
            self._observe_packet(stream, packet)
            for vframe in self._decode(stream, packet):
                arrival = time.time()
                pts_s = self._seconds(stream, vframe.pts)
                self._conn_frames += 1
                last_frame = time.monotonic()
                self._offer(vframe, self.clock.capture_time(pts_s, arrival), arrival)

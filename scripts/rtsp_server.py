#!/usr/bin/python3
"""A small RTSP server for tests and demos (Debian's gst-rtsp-server, driven from the system Python).

Run it with the system interpreter, which has ``gi`` (the project's venv does not):

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --file clip.mp4      # rtsp://127.0.0.1:8554/cam
    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --pattern            # live videotestsrc + x264enc
    producer | /usr/bin/python3 scripts/rtsp_server.py --port 8554 --stdin-raw --width 320 --height 180 --fps 5

``--stdin-raw`` serves live frames another process renders (the virtual tower, tests/virtual_tower.py): raw
BGR frames of exactly width×height×3 bytes each, read from stdin and pushed into an ``appsrc`` (timestamped
as they arrive, so the producer sets the pace); one shared pipeline for every client, and frames that come
while no client watches are dropped.

It prints ``ready rtsp://127.0.0.1:PORT/MOUNT`` on stdout once it listens, and runs until SIGTERM/SIGINT.
Looping a file inside gst-rtsp-server is unreliable: serve a long file instead (see docs/INGESTION.md).
``config-interval=-1`` is set on ``h264parse`` only (also on ``rtph264pay`` FFmpeg decodes every IDR twice).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(args: argparse.Namespace) -> str:
    if args.stdin_raw:
        return (
            "( appsrc name=src is-live=true format=time do-timestamp=true max-buffers=4 "
            f"caps=video/x-raw,format=BGR,width={args.width},height={args.height},framerate={args.fps}/1 "
            f"! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast "
            f"key-int-max={args.gop} ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
        )
    if args.file:
        demux = "matroskademux" if args.file.endswith((".mkv", ".webm")) else "qtdemux"
        return (
            f'( filesrc location="{args.file}" ! {demux} ! h264parse config-interval=-1 '
            "! rtph264pay name=pay0 pt=96 )"
        )
    return (
        f"( videotestsrc is-live=true pattern={args.pattern_name} "
        f"! video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.gop} "
        "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    )


class StdinFeeder:
    """Reads raw frames from stdin and pushes each into the appsrc of the media being served (if any)."""

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self.lock = threading.Lock()
        self.appsrc = None

    def on_media(self, _factory, media) -> None:  # noqa: ANN001 (GObject callback)
        src = media.get_element().get_child_by_name("src")
        with contextlib.suppress(TypeError):  # downstream: drop the oldest when full (GStreamer 1.20+)
            src.set_property("leaky-type", 2)
        with self.lock:
            self.appsrc = src
        media.connect("unprepared", self.on_unprepared)

    def on_unprepared(self, _media) -> None:  # noqa: ANN001
        with self.lock:
            self.appsrc = None

    def run(self) -> None:
        stream = sys.stdin.buffer
        while True:
            data = stream.read(self.frame_bytes)
            if len(data) < self.frame_bytes:  # the producer went away: stop serving
                os.kill(os.getpid(), signal.SIGTERM)
                return
            with self.lock:
                src = self.appsrc
            if src is not None:
                src.emit("push-buffer", Gst.Buffer.new_wrapped(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on (127.0.0.1).")
    parser.add_argument("--mount", default="/cam", help="Mount point (default /cam).")
    parser.add_argument("--file", help="An H.264 MP4/MKV file to serve (from its start, for every client).")
    parser.add_argument("--pattern", action="store_true", help="Serve a live videotestsrc pattern instead.")
    parser.add_argument("--stdin-raw", action="store_true",
                        help="Serve raw BGR frames (width x height) read from stdin, live (see above).")
    parser.add_argument("--pattern-name", default="ball", help="videotestsrc pattern (default ball).")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=25, help="Key frame interval of the live pattern, frames.")
    parser.add_argument("--shared", action="store_true", help="One pipeline for all clients.")
    args = parser.parse_args(argv)
    if sum((bool(args.file), args.pattern, args.stdin_raw)) != 1:
        parser.error("give exactly one of --file, --pattern or --stdin-raw")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(args.shared or args.stdin_raw)
    if args.stdin_raw:
        feeder = StdinFeeder(args.width * args.height * 3)
        factory.connect("media-configure", feeder.on_media)
        threading.Thread(target=feeder.run, daemon=True).start()
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"error: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""A small RTSP server for tests and demos (Debian's gst-rtsp-server, driven from the system Python).

Run it with the system interpreter, which has ``gi`` (the project's venv does not):

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --file clip.mp4      # rtsp://127.0.0.1:8554/cam
    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --pattern            # live videotestsrc + x264enc

It prints ``ready rtsp://127.0.0.1:PORT/MOUNT`` on stdout once it listens, and runs until SIGTERM/SIGINT.
Looping a file inside gst-rtsp-server is unreliable: serve a long file instead (see docs/INGESTION.md).
``config-interval=-1`` is set on ``h264parse`` only (also on ``rtph264pay`` FFmpeg decodes every IDR twice).
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(args: argparse.Namespace) -> str:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on (127.0.0.1).")
    parser.add_argument("--mount", default="/cam", help="Mount point (default /cam).")
    parser.add_argument("--file", help="An H.264 MP4/MKV file to serve (from its start, for every client).")
    parser.add_argument("--pattern", action="store_true", help="Serve a live videotestsrc pattern instead.")
    parser.add_argument("--pattern-name", default="ball", help="videotestsrc pattern (default ball).")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=25, help="Key frame interval of the live pattern, frames.")
    parser.add_argument("--shared", action="store_true", help="One pipeline for all clients.")
    args = parser.parse_args(argv)
    if bool(args.file) == bool(args.pattern):
        parser.error("give exactly one of --file or --pattern")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(args.shared)
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

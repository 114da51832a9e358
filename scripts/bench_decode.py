#!/usr/bin/env python
"""CPU cost of one camera: a 1080p25 H.264 stream analysed at 1 fps, all frames vs key frames only.

Encodes a test clip with PyAV (libx264, a textured scene with moving objects, key frame every ``--gop``
frames), then reads it with minewatch's own :class:`~pipeline.sources.FileSource` as fast as possible
(``realtime: false``) while a consumer thread takes every analysed frame, and measures the process's CPU
time. CPU seconds per second of video = the share of one core that one live camera costs; its inverse
is how many such cameras one core sustains (decoding and BGR conversion; no detector).
With ``--rtsp S`` the live path is measured too: the clip served over RTSP on loopback and read
by :class:`~pipeline.sources.RtspSource` in real time (receiving, depacketising, reader threads).
Results and the command go to docs/BENCHMARKS.md (## Decoding).

    nice -n 10 .venv/bin/python scripts/bench_decode.py --seconds 30 --rtsp 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import CameraConfig  # noqa: E402
from pipeline.sources import make_source  # noqa: E402


def make_clip(path: Path, seconds: float, fps: int, width: int, height: int, gop: int) -> None:
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    base = np.kron(blocks, np.ones((16, 16, 1), np.uint8))[:height, :width].copy()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                          "bf": "0", "b": "4M"}  # a camera-like 4 Mbit/s main stream, no B-frames
        for i in range(int(seconds * fps)):
            image = base.copy()
            for k in range(6):  # moving "vehicles" and a little sensor noise
                x = (i * (4 + k) + 300 * k) % (width - 200)
                y = 100 + 150 * k
                image[y:y + 80, x:x + 200] = (40 * k, 255 - 30 * k, 128)
            image = image + rng.integers(0, 6, image.shape, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def measure(clip: Path, mode: str, analysis_fps: float, threads: int) -> dict[str, float]:
    cam = CameraConfig.model_validate({
        "id": "bench", "source": str(clip), "lat": 0, "lon": 0, "realtime": False, "analysis_fps": analysis_fps,
        "reader": {"decode_mode": mode, "decode_threads": threads}})
    src = make_source(cam)
    taken = 0

    def consume() -> None:
        nonlocal taken
        while not (src.finished and not src.slot.full):
            if src.slot.get(0.05) is not None:
                taken += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    consumer = threading.Thread(target=consume)
    src.start()
    consumer.start()
    consumer.join()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    health = src.health()
    src.stop()
    return {"cpu_s": cpu, "wall_s": wall, "decoded": float(health["frames_in_total"]), "analysed": float(taken)}


def measure_rtsp(clip: Path, mode: str, analysis_fps: float, threads: int, seconds: float) -> dict[str, float]:
    """Live path: the clip served by scripts/rtsp_server.py (gst-rtsp-server), read by RtspSource in real
    time for ``seconds``; CPU of this process only (the server's is not counted)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    script = Path(__file__).with_name("rtsp_server.py")
    server = subprocess.Popen(["/usr/bin/python3", str(script), "--port", str(port), "--file", str(clip)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        if not server.stdout.readline().startswith(b"ready"):
            raise RuntimeError("rtsp_server.py did not start")
        cam = CameraConfig.model_validate({
            "id": "bench", "source": f"rtsp://127.0.0.1:{port}/cam", "lat": 0, "lon": 0,
            "analysis_fps": analysis_fps, "reader": {"decode_mode": mode, "decode_threads": threads}})
        src = make_source(cam)
        src.start()
        deadline = time.monotonic() + 15
        while src.status != "online" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # let auto mode settle and the first burst pass
        taken = 0
        src.slot.take()  # count only frames handed on during the measurement
        cpu0, wall0, in0 = time.process_time(), time.perf_counter(), src.health()["frames_in_total"]
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if src.slot.get(0.05) is not None:
                taken += 1
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        decoded = src.health()["frames_in_total"] - in0
        src.stop()
    finally:
        server.kill()
        server.wait(5)
    return {"cpu_s": cpu, "wall_s": wall, "decoded": float(decoded), "analysed": float(taken)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test clip")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--gop", type=int, default=25, help="key frame interval, frames")
    parser.add_argument("--analysis-fps", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="decode_threads")
    parser.add_argument("--repeat", type=int, default=2, help="runs per mode; the cheapest counts")
    parser.add_argument("--clip", type=Path, help="use this clip instead of encoding one")
    parser.add_argument("--rtsp", type=float, default=0.0, metavar="SECONDS",
                        help="also measure the live path for this long per mode: the clip served over RTSP by"
                             " scripts/rtsp_server.py (needs /usr/bin/python3 with gi), read in real time")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or Path(tmp) / "bench.mp4"
        if args.clip is None:
            t0 = time.perf_counter()
            make_clip(clip, args.seconds, args.fps, width, height, args.gop)
            print(f"encoded {args.seconds:g} s of {args.size}@{args.fps} (GOP {args.gop}) in "
                  f"{time.perf_counter() - t0:.1f} s, {clip.stat().st_size * 8 / args.seconds / 1e6:.1f} Mbit/s",
                  file=sys.stderr)
        with av.open(str(clip)) as probe:
            stream = probe.streams.video[0]
            duration = float(stream.frames) / float(stream.average_rate or args.fps)
        print("| decoding | analysed fps | CPU per camera (% of a core) | cameras per core | frames decoded |"
              " frames analysed |\n|---|---|---|---|---|---|")
        for mode in ("all", "keyframes"):
            runs = [measure(clip, mode, args.analysis_fps, args.threads) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["cpu_s"])
            share = best["cpu_s"] / duration
            print(f"| {mode} (file) | {args.analysis_fps:g} | {100 * share:.1f} % | {1 / share:.0f} | "
                  f"{best['decoded']:.0f} | {best['analysed']:.0f} |")
        if args.rtsp > 0:
            for mode in ("all", "keyframes"):
                r = measure_rtsp(clip, mode, args.analysis_fps, args.threads, min(args.rtsp, duration - 4))
                share = r["cpu_s"] / r["wall_s"]
                print(f"| {mode} (RTSP, live) | {args.analysis_fps:g} | {100 * share:.1f} % | {1 / share:.0f} | "
                      f"{r['decoded']:.0f} | {r['analysed']:.0f} |")
    print(f"\n(clip {duration:.0f} s {args.size}@{args.fps}, GOP {args.gop}, decode_threads {args.threads}; "
          f"cpu {os.cpu_count()} cores; niceness {os.nice(0)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

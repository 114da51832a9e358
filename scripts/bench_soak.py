"""Scale and soak: how many 1080p cameras at 1 analysed fps one machine sustains, and whether memory grows.

Serves N live 1080p25 H.264 streams (key frame every second) from gst-rtsp-server on loopback, runs the real
daemon (``minewatch run``, a subprocess) on them at ``analysis_fps: 1``, and samples its resident memory and
``/metrics`` (frame lag, analysed fps, drops) every ``--sample-s`` seconds.

    # scale: 4, 8 and 12 cameras, 90 s each
    .venv/bin/python scripts/bench_soak.py --cameras 4 8 12 --seconds 90
    # soak: 4 cameras for an hour, memory growth after a 5-minute warm-up
    .venv/bin/python scripts/bench_soak.py --cameras 4 --seconds 3600 --warmup 300

The stream is one 20 s clip remuxed (not re-encoded) into a file long enough for the run, so the server
costs little CPU. Not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def make_long_clip(path: Path, seconds: float) -> None:
    """A 20 s 1080p25 clip of the sample scene, copied end to end (packets re-timed) to ``seconds``."""
    import av
    import cv2
    from make_sample import compose_frames, find_asset, write_clip

    base = path.with_name("base.mp4")
    scene = cv2.imread(str(find_asset("bus.jpg", ROOT / "data" / "sample" / "assets")))
    assert scene is not None
    write_clip(compose_frames(np.asarray(scene, np.uint8), 20 * 25, (1920, 1080)), base, 25, gop=25)  # 1 s GOP
    with av.open(str(base)) as src:
        packets = [p for p in src.demux(video=0) if p.dts is not None and p.pts is not None]
        stream_in = src.streams.video[0]
        pts = [int(p.pts or 0) for p in packets]
        span = pts[-1] + (pts[1] - pts[0] if len(pts) > 1 else 1)
        with av.open(str(path), "w") as dst:
            stream_out = dst.add_stream_from_template(stream_in)
            repeats = int(seconds / 20) + 1
            for r in range(repeats):
                for p in packets:
                    if r:
                        p.pts = int(p.pts or 0) + span
                        p.dts = int(p.dts or 0) + span
                    p.stream = stream_out
                    dst.mux(p)


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


def run(n: int, seconds: float, warmup: float, sample_s: float, clip: Path, work: Path) -> dict[str, Any]:
    from tests.conftest import free_port

    servers, urls = [], []
    for _ in range(n):
        port = free_port()
        proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "scripts" / "rtsp_server.py"), "--port", str(port),
                                 "--file", str(clip)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None and "ready" in proc.stdout.readline()
        servers.append(proc)
        urls.append(f"rtsp://127.0.0.1:{port}/cam")
    http_port = free_port()
    cams = "\n".join(
        f"  - {{id: cam{i}, source: '{u}', lat: 38.7, lon: {111.6 + 0.01 * i}, ground_elevation_m: 1450,"
        f" mast_height_m: 25, pan_deg: 90, tilt_deg: -8, hfov_deg: 60, analysis_fps: 1}}"
        for i, u in enumerate(urls))
    cfg = work / f"soak-{n}.yaml"
    cfg.write_text(f"cameras:\n{cams}\ndetector: {{model_path: {ROOT / 'models' / 'minewatch-starter.onnx'},"
                   f" providers: [CPUExecutionProvider]}}\nmqtt: {{enabled: false}}\n"
                   f"alerts: {{snapshot_dir: {work / 'snaps'}, outbox_path: {work / f'outbox-{n}.sqlite'},"
                   f" print_alerts: false}}\nzones: {{dir: {ROOT / 'zones'}}}\nops: {{http_port: {http_port}}}\n")
    daemon = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--config", str(cfg), "--forever",
                               "--log-level", "WARNING"], cwd=ROOT,
                              stderr=open(work / f"daemon-{n}.log", "w"))  # noqa: SIM115 (lives as long as the run)
    samples: list[dict[str, float]] = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < warmup + seconds:
            time.sleep(sample_s)
            try:
                m = scrape(http_port)
            except OSError:
                continue
            samples.append({"t_s": time.monotonic() - t0, "rss_mb": rss_mb(daemon.pid), "cpu_s": cpu_s(daemon.pid),
                            "frames": m.get("minewatch_frames_analysed_total", 0.0),
                            "lag_sum": m.get("minewatch_frame_lag_seconds_sum", 0.0),
                            "lag_count": m.get("minewatch_frame_lag_seconds_count", 0.0),
                            "dropped": sum(v for k, v in m.items() if k.startswith("minewatch_camera_frames_dropped"))})
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        for s in servers:
            s.send_signal(signal.SIGTERM)
    steady = [s for s in samples if s["t_s"] >= warmup]
    if len(steady) < 2:
        return {"cameras": n, "error": "too few samples"}
    a, b = steady[0], steady[-1]
    span = b["t_s"] - a["t_s"]
    half = len(steady) // 2

    def mean_lag(x: dict[str, float], y: dict[str, float]) -> float:
        return (y["lag_sum"] - x["lag_sum"]) / max(y["lag_count"] - x["lag_count"], 1)

    fps = (b["frames"] - a["frames"]) / span
    lag_first, lag_second = mean_lag(a, steady[half]), mean_lag(steady[half], b)
    return {
        "cameras": n,
        "seconds": round(span),
        # sustained: every camera analysed at (within 5 % of) its 1 fps, and the lag not growing
        "sustained": bool(fps >= 0.95 * n and lag_second <= lag_first + 0.5),
        "analysed_fps_total": round(fps, 2),
        "dropped_per_s": round((b["dropped"] - a["dropped"]) / span, 2),
        "cpu_cores": round((b["cpu_s"] - a["cpu_s"]) / span, 3),
        "cpu_per_camera_pct": round(100 * (b["cpu_s"] - a["cpu_s"]) / span / n, 1),
        "mean_lag_first_half_s": round(lag_first, 3),
        "mean_lag_second_half_s": round(lag_second, 3),
        "rss_start_mb": round(a["rss_mb"], 1),
        "rss_end_mb": round(b["rss_mb"], 1),
        "rss_max_mb": round(max(s["rss_mb"] for s in steady), 1),
        "rss_growth_pct": round(100 * (b["rss_mb"] - a["rss_mb"]) / a["rss_mb"], 2),
        "rss_per_camera_mb": round(b["rss_mb"] / n, 1),
        "rss_slope_mb_per_h": round(float(np.polyfit([s["t_s"] for s in steady], [s["rss_mb"] for s in steady], 1)[0])
                                    * 3600, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--cameras", type=int, nargs="+", default=[4])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mw-soak-"))
    print(f"work folder: {work}", file=sys.stderr)
    clip = work / "cam1080p25.mp4"
    make_long_clip(clip, args.warmup + args.seconds + 60)
    results = []
    for n in args.cameras:
        result = run(n, args.seconds, args.warmup, args.sample_s, clip, work)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

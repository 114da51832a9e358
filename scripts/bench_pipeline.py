"""Benchmark the whole pipeline against its limit and against what a user would write instead.

Serves N live 720p25 H.264 streams from a real RTSP server on loopback (gst-rtsp-server, a pre-encoded
file so that the server costs little CPU), then, each in its own process, one after the other:

* ``bare``: onnxruntime ``session.run`` alone on letterboxed frames of the same clip, same model, batch
  size and input shape as minewatch feeds it, onnxruntime's default threading — the limit as the issue
  defines it;
* ``bare_best``: the same with one single-threaded session per core (at most 4), each looping on its own
  thread — the most the model alone does on this machine (minewatch's workers run this way);
* ``minewatch``: the daemon (sources, batcher, detector, tracking, geolocation, zones, alerts, outbox, relay
  to a local Mosquitto) on the N live streams, every camera asking for more frames than the detector can
  take, so that it runs flat out;
* ``ultralytics``: ``YOLO(model).predict(source=<N streams>, stream=True)`` on the same streams.

It reports analysed frames/s, CPU (process time / wall time, in cores), how old each analysed frame is
(since it was read off the stream), and for minewatch the time from a frame's capture to the arrival of the
alert it caused at a subscriber (the broker forwards a QoS 1 message when it acknowledges it).

    .venv/bin/python scripts/bench_pipeline.py --model models/minewatch-starter.onnx --streams 4 --seconds 60

Results go to stdout as Markdown and to ``--out`` as JSON. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def thread_cpu_s() -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of this process, by native id (Linux ``/proc``; empty elsewhere)."""
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / hz)
    return out


def cpu_by_thread(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                  wall_s: float) -> dict[str, float]:
    """Cores used per thread group between two :func:`thread_cpu_s` snapshots. Python threads go by their
    name (digits dropped, so four camera readers add up to one line); native threads (onnxruntime's pool,
    FFmpeg's codec threads) by their OS name."""
    import re

    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    groups: dict[str, float] = {}
    for tid, (comm, cpu) in after.items():
        used = cpu - before.get(tid, (comm, 0.0))[1]
        label = re.sub(r"(cam)?\d+", "", names.get(tid, f"native:{comm}")).strip("-_ ") or "?"
        groups[label] = groups.get(label, 0.0) + used / wall_s
    return {k: round(v, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v >= 0.005}


class StageClock:
    """CPU seconds (``time.thread_time``: the calling thread's own CPU, which other processes on the machine
    do not add to) spent inside wrapped callables, by stage name. Nested stages each count their own
    total (``worker`` includes ``session.run``)."""

    def __init__(self) -> None:
        self.cpu_s: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                self.cpu_s[name] = self.cpu_s.get(name, 0.0) + time.thread_time() - t0
                self.calls[name] = self.calls.get(name, 0) + 1
        return timed

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        return dict(self.cpu_s), dict(self.calls)


def instrument(daemon: Any, clock: StageClock) -> None:
    """Wrap the stages of the running pipeline with :class:`StageClock` (benchmark only)."""
    import pipeline.detect.onnx_detector as od
    from pipeline.sources.base import Source
    from pipeline.types import Frame

    for name in ("place", "to_blob", "blob_into", "decode_yolo"):  # whichever the detector uses
        if hasattr(od, name):
            setattr(od, name, clock.wrap(name, getattr(od, name)))
    Frame.resized_bgr = clock.wrap("resized_bgr", Frame.resized_bgr)  # type: ignore[method-assign]
    Source._offer = clock.wrap("reader_offer", Source._offer)  # type: ignore[method-assign]
    for det in daemon.detectors:
        det.session.run = clock.wrap("session.run", det.session.run)
    daemon.pool.runs = [clock.wrap("worker_run", run) for run in daemon.pool.runs]
    daemon._consume = clock.wrap("analysis", daemon._consume)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --------------------------------------------------------------------------------------------- setup
def make_clip(path: Path, seconds: float, fps: int = 25) -> None:
    import cv2

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_sample import compose_frames, find_asset, write_clip

    scene = cv2.imread(str(find_asset("bus.jpg", ROOT / "data" / "sample" / "assets")))
    assert scene is not None
    frames = compose_frames(np.asarray(scene, np.uint8), int(seconds * fps), (1280, 720))
    write_clip(frames, path, fps)


def start_rtsp(clip: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "scripts" / "rtsp_server.py"), "--port", str(port),
                             "--file", str(clip)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        raise RuntimeError(f"RTSP server did not start: {line!r}")
    return proc


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes] | None, int]:
    from tests.conftest import Broker

    if not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists():
        return None, 0
    b = Broker(workdir)
    b.start()
    return b.proc, b.port


# --------------------------------------------------------------------------------------------- runs
def bare_batch(args: argparse.Namespace) -> np.ndarray:
    """The network input for ``args.batch`` frames of the clip, prepared once, outside the timing."""
    import av

    from pipeline.detect.letterbox import letterbox, rect_canvas_wh, to_blob

    images = []
    with av.open(str(args.clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 5 == 0:
                images.append(np.asarray(frame.to_ndarray(format="bgr24"), np.uint8))
            if len(images) >= args.batch:
                break
    sizes = [(img.shape[1], img.shape[0]) for img in images]
    canvas_wh = None if args.square else rect_canvas_wh(sizes, args.imgsz, 32)
    return to_blob([letterbox(img, args.imgsz, canvas_wh)[0] for img in images])


def time_sessions(sessions: list[Any], batch: np.ndarray, seconds: float) -> dict[str, Any]:
    """Each session calls ``run`` on ``batch`` in a loop on its own thread for ``seconds``."""
    name = sessions[0].get_inputs()[0].name
    for sess in sessions:
        sess.run(None, {name: batch})
    counts = [0] * len(sessions)
    run_cpu = [0.0] * len(sessions)
    stop_at = time.perf_counter() + seconds

    def loop(k: int) -> None:
        while time.perf_counter() < stop_at:
            c = time.thread_time()
            sessions[k].run(None, {name: batch})
            run_cpu[k] += time.thread_time() - c
            counts[k] += len(batch)

    t0, c0 = time.perf_counter(), cpu_s()
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"fps": sum(counts) / wall, "cpu_cores": (cpu_s() - c0) / wall, "batch": len(batch),
            "sessions": len(sessions), "onnx_cpu_ms_per_frame": round(sum(run_cpu) * 1000 / max(sum(counts), 1), 2)}


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    """The limit as the issue defines it: one ``session.run`` loop, onnxruntime's default threading."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    return time_sessions([sess], bare_batch(args), args.seconds)


def run_bare_best(args: argparse.Namespace) -> dict[str, Any]:
    """The best the model alone does here: one single-threaded session per core (at most 4), each running
    in its own thread (what minewatch's workers do, minus everything else)."""
    import onnxruntime as ort

    from pipeline.detect.workers import usable_cores

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    n = min(usable_cores(), 4)
    sessions = [ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"]) for _ in range(n)]
    return run_bare_best_cpu(time_sessions(sessions, bare_batch(args), args.seconds))


def run_minewatch(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.config import Config
    from pipeline.daemon import Daemon
    from pipeline.logs import setup_logging
    from tests.daemon_helpers import Subscriber

    setup_logging("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    cams = [{
        "id": f"cam{i}", "source": url, "lat": 38.7, "lon": 111.6 + i * 0.01, "ground_elevation_m": 1450,
        "mast_height_m": 25, "pan_deg": 90, "tilt_deg": -8, "hfov_deg": 60, "analysis_fps": args.analysis_fps,
    } for i, url in enumerate(args.urls)]
    config = Config.model_validate({
        "cameras": cams,
        "detector": {"model_path": str(args.model), "providers": ["CPUExecutionProvider"],
                     "input_size_px": args.imgsz, "batch_max": args.batch, "batch_wait_ms": args.wait_ms,
                     "workers": args.workers, "rect_input": not args.square},
        "mqtt": {"enabled": args.broker_port > 0, "host": "127.0.0.1", "port": args.broker_port or 1883,
                 "box_id": "bench"},
        "alerts": {"snapshot_dir": str(tmp / "snaps"), "outbox_path": str(tmp / "outbox.sqlite"),
                   "update_interval_s": 1.0, "print_alerts": False},
        "zones": {"dir": str(ROOT / "zones")},
        "ops": {"http_port": None},
    })
    sub = Subscriber(args.broker_port, client_id=f"bench-{os.getpid()}") if args.broker_port else None
    daemon = Daemon(config, "bench", exit_at_eof=False)
    acked: list[float] = []  # capture → PUBACK, seconds, as the daemon's histogram sees them
    if daemon.relay is not None:
        observe = daemon.relay.on_ack_latency

        def record(latency_s: float) -> None:
            acked.append(latency_s)
            if observe is not None:
                observe(latency_s)

        daemon.relay.on_ack_latency = record
    clock = StageClock()
    if args.profile:
        instrument(daemon, clock)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    time.sleep(args.warmup)
    decoded0 = sum(src.frames_in.total for src in daemon.sources.values())
    f0, c0, t0, th0, st0 = daemon.stats.frames, cpu_s(), time.perf_counter(), thread_cpu_s(), clock.snapshot()
    daemon.stats.lag_s.clear()
    acked.clear()
    spy = None
    if args.pyspy:  # sampled stacks of the thread holding the GIL, by thread (py-spy's collapsed format)
        spy = subprocess.Popen([args.pyspy, "record", "--gil", "--threads", "--nonblocking", "-r", "100", "-d",
                                str(int(args.seconds)), "-f", "raw", "-o", str(args.pyspy_out), "-p",
                                str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(args.seconds)
    wall = time.perf_counter() - t0
    th1, st1 = thread_cpu_s(), clock.snapshot()
    threads = cpu_by_thread(th0, th1, wall)
    frames, cpu = daemon.stats.frames - f0, cpu_s() - c0
    decoded = sum(src.frames_in.total for src in daemon.sources.values()) - decoded0
    lags = list(daemon.stats.lag_s)
    if spy is not None:
        spy.wait(30)
    daemon.stop()
    thread.join(30)
    out: dict[str, Any] = {
        "fps": frames / wall, "cpu_cores": cpu / wall,
        "age_since_read_p50_s": pct([r for _, r in lags], 50), "age_since_read_p90_s": pct([r for _, r in lags], 90),
        "age_since_capture_p50_s": pct([c for c, _ in lags], 50),
        "age_since_capture_p90_s": pct([c for c, _ in lags], 90),
        "dropped": {cid: src.health().get("frames_dropped_total") for cid, src in daemon.sources.items()},
        "cpu_cores_by_thread": threads,
        "frames_decoded": decoded, "frames_analysed": frames,
        # CPU milliseconds per analysed frame, by thread group (contention inflates these far less than
        # it does wall-clock rates)
        "cpu_ms_per_frame_by_thread": {k: round(v * wall * 1000 / max(frames, 1), 2) for k, v in threads.items()},
        "cpu_ms_per_frame": round(cpu * 1000 / max(frames, 1), 2),
    }
    if args.profile:
        stages = {k: (st1[0][k] - st0[0].get(k, 0.0), st1[1][k] - st0[1].get(k, 0)) for k in st1[0]}
        out["stage_cpu_ms_per_frame"] = {k: round(c * 1000 / max(frames, 1), 3) for k, (c, _) in stages.items()}
        out["stage_cpu_ms_per_call"] = {k: round(c * 1000 / max(n, 1), 3) for k, (c, n) in stages.items()}
        run_ms, onnx_ms = (stages.get(k, (0.0, 0))[0] * 1000 / max(frames, 1) for k in ("worker_run", "session.run"))
        out["worker_outside_onnx_cpu_ms_per_frame"] = round(run_ms - onnx_ms, 3)
    if sub is not None:
        from datetime import datetime

        with sub.lock:
            msgs = list(zip(sub.messages, sub.received_at, strict=True))
        latencies = []
        for (topic, payload), t_rx in msgs:
            if topic.endswith("/events"):
                event = json.loads(payload)
                if event["type"] in ("new", "update"):
                    t_frame = datetime.fromisoformat(event["t_last"].replace("Z", "+00:00")).timestamp()
                    latencies.append(t_rx - t_frame)
        out["capture_to_puback_p50_s"] = pct(acked, 50)
        out["capture_to_puback_p99_s"] = pct(acked, 99)
        out["alert_messages"] = len(latencies)
        out["capture_to_subscriber_p50_s"] = pct(latencies, 50)
        out["capture_to_subscriber_p99_s"] = pct(latencies, 99)
        sub.close()
    return out


def run_bare_best_cpu(result: dict[str, Any]) -> dict[str, Any]:
    result["cpu_ms_per_frame"] = round(result["cpu_cores"] * 1000 / max(result["fps"], 1e-9), 2)
    return result


def run_ultralytics(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    import cv2
    import ultralytics.data.loaders as loaders
    from ultralytics import YOLO

    read_at: dict[int, float] = {}

    class Cap:
        """cv2.VideoCapture that remembers when each frame was read, to measure its age when analysed."""

        def __init__(self, *a: Any) -> None:
            self._cap = cv2.VideoCapture(*a)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cap, name)

        def retrieve(self, *a: Any) -> Any:
            ok, im = self._cap.retrieve(*a)
            if ok and im is not None:
                read_at[id(im)] = time.time()
            return ok, im

        def read(self, *a: Any) -> Any:
            ok, im = self._cap.read(*a)
            if ok and im is not None:
                read_at[id(im)] = time.time()
            return ok, im

    class Cv2Proxy:
        VideoCapture = Cap

        def __getattr__(self, name: str) -> Any:
            return getattr(cv2, name)

    loaders.cv2 = Cv2Proxy()  # type: ignore[assignment]
    streams = Path(tempfile.mkdtemp()) / "list.streams"
    streams.write_text("\n".join(args.urls) + "\n")
    model = YOLO(str(args.model), task="detect")
    ages: list[float] = []
    n = 0
    t0 = c0 = None
    start = time.perf_counter()
    for result in model.predict(source=str(streams), stream=True, imgsz=args.imgsz, verbose=False):
        now = time.perf_counter()
        if t0 is None and now - start >= args.warmup:
            t0, c0 = now, cpu_s()
        if t0 is not None:
            n += 1
            t_read = read_at.pop(id(getattr(result, "orig_img", None)), None)
            if t_read is not None:
                ages.append(time.time() - t_read)
            if now - t0 >= args.seconds:
                break
    assert t0 is not None and c0 is not None
    wall = time.perf_counter() - t0
    return {"fps": n / wall, "cpu_cores": (cpu_s() - c0) / wall, "age_since_read_p50_s": pct(ages, 50),
            "age_since_read_p90_s": pct(ages, 90)}


RUNS = {"bare": run_bare, "bare_best": run_bare_best, "minewatch": run_minewatch, "ultralytics": run_ultralytics}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-starter.onnx")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--wait-ms", type=float, default=20.0)
    parser.add_argument("--analysis-fps", type=float, default=25.0,
                        help="minewatch: analysis rate asked of each camera (25 = every frame: flat out)")
    parser.add_argument("--workers", type=int, default=0, help="minewatch: detector.workers (0 = auto)")
    parser.add_argument("--square", action="store_true",
                        help="bare and minewatch on the full imgsz square (default: the rectangular input"
                             " minewatch and Ultralytics use for a dynamic model, 320×192 for 16:9 at 320)")
    parser.add_argument("--profile", action="store_true",
                        help="minewatch: CPU time (time.thread_time) of each stage per analysed frame")
    parser.add_argument("--pyspy", default="", help="minewatch: path of a py-spy binary: record which thread"
                        " holds the GIL doing what during the measurement (written to --pyspy-out)")
    parser.add_argument("--pyspy-out", type=Path, default=Path("/tmp/mw-pyspy.txt"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--only", nargs="*", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    parser.add_argument("--run", choices=list(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--urls", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--broker-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # one measurement, in a fresh process
        print("RESULT " + json.dumps(RUNS[args.run](args)))
        return 0

    from tests.conftest import free_port

    work = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    clip = work / "cam720p25.mp4"
    make_clip(clip, args.warmup + args.seconds + 30)
    servers, urls = [], []
    for _ in range(args.streams):
        port = free_port()
        servers.append(start_rtsp(clip, port))
        urls.append(f"rtsp://127.0.0.1:{port}/cam")
    broker, broker_port = start_broker(work / "broker")
    results: dict[str, Any] = {"streams": args.streams, "imgsz": args.imgsz, "batch": args.batch,
                               "seconds": args.seconds, "model": str(args.model), "cores": os.cpu_count()}
    try:
        for name in args.only:
            cmd = [sys.executable, __file__, "--run", name, "--model", str(args.model), "--imgsz", str(args.imgsz),
                   "--batch", str(args.batch), "--analysis-fps", str(args.analysis_fps), "--wait-ms",
                   str(args.wait_ms), "--workers", str(args.workers), "--seconds", str(args.seconds),
                   *(["--square"] if args.square else []), *(["--profile"] if args.profile else []),
                   *(["--pyspy", args.pyspy, "--pyspy-out", str(args.pyspy_out)] if args.pyspy else []),
                   "--warmup", str(args.warmup), "--clip", str(clip), "--broker-port", str(broker_port),
                   "--urls", *urls]
            env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false",
                   "YOLO_CONFIG_DIR": str(work / "yolo")}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.seconds * 4 + 300)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                results[name] = {"error": (proc.stderr or proc.stdout)[-2000:]}
            else:
                results[name] = json.loads(line[7:])
            print(f"{name}: {results[name]}", file=sys.stderr)
    finally:
        for s in servers:
            s.send_signal(signal.SIGTERM)
        if broker is not None:
            broker.kill()
    bare = results.get("bare", {}).get("fps")
    best = results.get("bare_best", {}).get("fps")
    for name in ("minewatch", "ultralytics"):
        if bare and "fps" in results.get(name, {}):
            results[name]["ratio_to_bare"] = results[name]["fps"] / bare
        if best and "fps" in results.get(name, {}):
            results[name]["ratio_to_bare_best"] = results[name]["fps"] / best
    if "fps" in results.get("minewatch", {}) and "fps" in results.get("ultralytics", {}):
        results["minewatch_over_ultralytics"] = results["minewatch"]["fps"] / results["ultralytics"]["fps"]
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

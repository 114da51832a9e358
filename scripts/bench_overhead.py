"""CPU time the pipeline spends per frame outside the ONNX call, stage by stage, on one thread.

Decodes a 720p25 H.264 clip (the scene of ``scripts/bench_pipeline.py``) with PyAV, then measures with
``time.thread_time`` — the calling thread's own CPU time, which other processes competing for the cores
inflate far less than wall-clock rates — what minewatch does with each decoded frame:

* ``reader``: a camera reader's judgement of one decoded frame (counters, pose, analysis-rate gate,
  hand-off to the slot), for a frame it skips (not due) and one it hands on (``Source._offer``); and its
  bookkeeping per packet (decode policy, timestamps in seconds);
* ``worker``: the inference worker's path for one frame at batch 1: YUV → network-size BGR, letterbox into
  the network input, blob, ``session.run``, head decoding and NMS, boxes back to image pixels — reported as
  the whole call, ``session.run`` alone, and the difference (the overhead).

Each figure is the median over ``--rounds`` rounds of ``--frames`` frames. Not a test: numbers depend on
the machine. Example:

    nice -n 10 .venv/bin/python scripts/bench_overhead.py --rounds 5 --frames 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def decoded_frames(clip: Path, n: int) -> list[Any]:
    import av

    out = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            out.append(frame)
            if len(out) >= n:
                break
    return out


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 4)


def bench_worker(model: Path, imgsz: int, vframes: list[Any], rounds: int) -> dict[str, float]:
    from pipeline.config import DetectorConfig
    from pipeline.detect.onnx_detector import OnnxDetector
    from pipeline.types import Frame, Pose

    det = OnnxDetector(DetectorConfig(model_path=model, input_size_px=imgsz,
                                      providers=["CPUExecutionProvider"]), intra_op_threads=1)
    onnx = [0.0]
    run = det.session.run

    def timed_run(*a: Any, **k: Any) -> Any:
        t0 = time.thread_time()
        try:
            return run(*a, **k)
        finally:
            onnx[0] += time.thread_time() - t0

    det.session.run = timed_run  # type: ignore[method-assign]
    stages: dict[str, float] = {}

    def stage(name: str, fn: Any) -> Any:
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                stages[name] = stages.get(name, 0.0) + time.thread_time() - t0
        return timed

    import pipeline.detect.letterbox as lbm
    import pipeline.detect.onnx_detector as od

    for name in ("blob_into", "place", "to_blob", "decode_yolo", "placement"):
        if hasattr(od, name):
            setattr(od, name, stage(name, getattr(od, name)))
    resized = Frame.resized_bgr
    Frame.resized_bgr = stage("resized_bgr", resized)  # type: ignore[method-assign]
    lbm.Letterbox.to_image = stage("to_image", lbm.Letterbox.to_image)  # type: ignore[method-assign]
    pose = Pose(0.0, 0.0, 60.0)
    whole, inside = [], []
    for r in range(rounds + 1):  # round 0 warms up
        onnx[0] = 0.0
        t0 = time.thread_time()
        for i, vf in enumerate(vframes):
            det.detect_frames([Frame("cam0", i, float(i), vf, pose)])
        if r:
            whole.append((time.thread_time() - t0) / len(vframes))
            inside.append(onnx[0] / len(vframes))
    over = [w - o for w, o in zip(whole, inside, strict=True)]
    n = len(vframes) * (rounds + 1)
    Frame.resized_bgr = resized  # type: ignore[method-assign]
    return {**{f"stage_{k}_ms": round(v * 1000 / n, 4) for k, v in stages.items()},
            "worker_total_ms": median_ms(whole), "session_run_ms": median_ms(inside),
            "worker_outside_onnx_ms": median_ms(over),
            "worker_outside_onnx_min_ms": round(min(over) * 1000, 4)}


def bench_reader(clip: Path, vframes: list[Any], rounds: int) -> dict[str, float]:
    from pipeline.config import CameraConfig
    from pipeline.detect.batcher import Batcher
    from pipeline.sources import make_source

    out: dict[str, float] = {}
    for label, step_s in (("reader_skipped_ms", 0.0), ("reader_handed_ms", 0.04)):
        cam = CameraConfig.model_validate({"id": "cam0", "source": "rtsp://127.0.0.1:1/cam", "lat": 38.7,
                                           "lon": 111.6, "ground_elevation_m": 1450, "mast_height_m": 25,
                                           "pan_deg": 90, "tilt_deg": -8, "hfov_deg": 60,
                                           "analysis_fps": 25})
        src = make_source(cam)
        Batcher({"cam0": src.slot}, 1, 0.0)  # adds its wake-up listener to the slot, as in the daemon
        src.status = "online"
        samples = []
        t_cap = 1000.0
        for r in range(rounds + 1):
            t0 = time.thread_time()
            for vf in vframes:
                t_cap += step_s  # 25 fps stream at 25 fps: every frame due; a frozen clock: none after the first
                src._offer(vf, t_cap, t_cap)
                src.slot.take()
            if r:
                samples.append((time.thread_time() - t0) / len(vframes))
        out[label] = median_ms(samples)
    # per packet: the decode policy's bookkeeping and the packet's and its frame's timestamps in seconds
    import av

    src = make_source(cam)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size][: len(vframes)]
        seconds = getattr(src, "_seconds", None)
        samples = []
        for r in range(rounds + 1):
            t0 = time.thread_time()
            for p in packets:
                src._observe_packet(stream, p)
                if seconds is not None:
                    seconds(stream, p.pts)
                else:  # the code before the time base was cached
                    float(p.pts * p.time_base)
            if r:
                samples.append((time.thread_time() - t0) / len(packets))
    out["reader_packet_ms"] = median_ms(samples)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-starter.onnx")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clip", type=Path, default=None, help="a 720p clip (default: made like bench_pipeline)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args()
    clip = args.clip
    if clip is None:
        from bench_pipeline import make_clip

        clip = Path(tempfile.mkdtemp(prefix="mw-overhead-")) / "cam720p25.mp4"
        make_clip(clip, max(2.0, args.frames / 25 + 1))
    vframes = decoded_frames(clip, args.frames)
    results: dict[str, Any] = {"frames": len(vframes), "rounds": args.rounds, "imgsz": args.imgsz,
                               "wh": [vframes[0].width, vframes[0].height]}
    results.update(bench_reader(clip, vframes, args.rounds))
    results.update(bench_worker(args.model, args.imgsz, vframes, args.rounds))
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

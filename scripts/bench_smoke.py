"""What the smoke stage costs: per analysis, and on the analysis path of the daemon (detector + Analyzer).

    nice -n 5 .venv/bin/python scripts/bench_smoke.py [--frames 120] [--cameras 4] [--shared ../shared/data]

Real 1920×1080 tower frames (the rm-w sequence cropped to 16:9, cycled; a procedural view when the shared
data is absent) play as ``--cameras`` cameras at 1 frame/s each (t_capture advances 1 s per round), through
the daemon's detector (the config's defaults: starter model, rectangular input, one session) and its
:class:`~pipeline.analyzer.Analyzer`, single-threaded, three ways:

* ``smoke off``: ``smoke.enabled: false``;
* ``smoke on (default)``: the default ``smoke:`` section (one analysis per view every ``interval_s`` = 15 s);
* ``smoke every frame``: ``interval_s: 0`` (the worst case: every frame analysed, as in ``eval sequence``).

Figures: frames/s of one thread (detect + analyse, decoding excluded: the frames are already BGR), ms per
frame, and the stage's own ms per analysis. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.analyzer import Analyzer  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.eval.hookup import detect_frame, make_detector  # noqa: E402
from pipeline.smoke.synthetic import landscape  # noqa: E402
from pipeline.types import Frame, Pose  # noqa: E402


def frames_1080p(shared: Path, n: int) -> list[np.ndarray]:
    folder = shared / "tower_smoke" / "hpwren-rm-w-20180728"
    paths = sorted(folder.glob("*.jpg"), key=lambda p: float(p.stem))[:n]
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        crop = img[(h - w * 9 // 16) // 2:(h + w * 9 // 16) // 2]
        out.append(cv2.resize(crop, (1920, 1080), interpolation=cv2.INTER_AREA))
    return out or [landscape((1920, 1080), float(t)) for t in range(0, 60 * min(n, 20), 60)]


def config(cameras: int, smoke: dict[str, object]) -> Config:
    cams = [{"id": f"c{i}", "source": "rtsp://127.0.0.1/none", "lat": 38.7, "lon": 111.6 + 0.01 * i,
             "hfov_deg": 100, "tilt_deg": -2, "analysis_fps": 1} for i in range(cameras)]
    return Config.model_validate({"cameras": cams, "detector": {"model_path": str(ROOT / "models" /
                                                                                "minewatch-starter.onnx")},
                                  "mqtt": {"enabled": False}, "smoke": smoke})


def run(images: list[np.ndarray], n: int, cameras: int, smoke: dict[str, object]) -> dict[str, float]:
    cfg = config(cameras, smoke)
    analyzer = Analyzer(cfg, [])
    detector = make_detector(cfg.detector)
    score_per_class = cfg.detector.score_threshold.as_array()
    pose = Pose(0.0, -2.0, 100.0)
    smoke_s = 0.0
    analyses = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        cam = cfg.cameras[i % cameras]
        frame = Frame(cam.id, i, 1_700_000_000.0 + i // cameras, images[(i // cameras) % len(images)].copy(), pose)
        dets = detect_frame(detector, frame, cam, cfg.detector.iou_threshold).at_or_above(score_per_class)
        analyzer.process(frame, dets)
        stage = analyzer.cameras[cam.id].smoke
        if stage is not None and stage.watcher.last_analysis is not None:
            analyses += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if smoke.get("enabled", True):  # the stage alone, on the same frames, every frame analysed
        from pipeline.smoke.watcher import SmokeWatcher

        watcher = SmokeWatcher(cfg.smoke.model_copy(update={"interval_s": 0.0}))
        s0 = time.perf_counter()
        for i, img in enumerate(images):
            watcher.observe(Frame("s", i, 60.0 * i, img, pose))
        smoke_s = (time.perf_counter() - s0) / len(images)
    return {"frames_per_s": n / wall, "ms_per_frame": 1000 * wall / n, "cpu_ms_per_frame": 1000 * cpu / n,
            "analyses": analyses, "ms_per_analysis": 1000 * smoke_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    images = frames_1080p(args.shared, 20)
    rows = [("smoke off", {"enabled": False}), ("smoke on (default)", {}), ("smoke every frame", {"interval_s": 0})]
    print(f"{args.frames} frames of 1920x1080, {args.cameras} cameras at 1 frame/s each, one thread\n")
    print("| run | frames/s (one thread) | ms per frame | CPU ms per frame | smoke analyses | smoke ms per analysis |")
    print("|---|---|---|---|---|---|")
    for name, smoke in rows:
        r = run(images, args.frames, args.cameras, smoke)
        print(f"| {name} | {r['frames_per_s']:.1f} | {r['ms_per_frame']:.1f} | {r['cpu_ms_per_frame']:.1f} |"
              f" {r['analyses']} | {r['ms_per_analysis']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

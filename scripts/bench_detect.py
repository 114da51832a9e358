#!/usr/bin/env python
"""Detector throughput: images per second per batch size (and tiling cost) with onnxruntime.

    .venv/bin/python scripts/bench_detect.py --model models/minewatch-starter.onnx --batches 1 4 8 \\
        --provider CPUExecutionProvider --threads 2 --seconds 5

Measures the whole ``OnnxDetector.detect`` call (letterbox, inference, decode, NMS) on 1920×1080
frames, after warm-up; prints a markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import DetectorConfig, TilingConfig  # noqa: E402
from pipeline.detect.onnx_detector import OnnxDetector  # noqa: E402
from pipeline.detect.tiling import detect_frames  # noqa: E402


def frames(n: int, wh: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    w, h = wh
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    import cv2

    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)  # smooth texture, not pure noise
    return [np.ascontiguousarray(np.roll(img, 17 * i, axis=1)) for i in range(n)]


def time_it(fn: object, seconds: float) -> tuple[float, int]:
    assert callable(fn)
    fn()  # warm-up
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-starter.onnx")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--provider", default="CPUExecutionProvider")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime chooses)")
    ap.add_argument("--seconds", type=float, default=5.0, help="timing per row")
    ap.add_argument("--frame", default="1920x1080", help="frame size WxH")
    ap.add_argument("--imgsz", type=int, default=None, help="override the model's input size")
    ap.add_argument("--tile", type=int, default=0, help="also time tiled inference with this tile size")
    args = ap.parse_args()

    w, h = (int(v) for v in args.frame.lower().split("x"))
    cfg = DetectorConfig.model_validate({
        "model_path": args.model, "providers": [args.provider], "intra_op_threads": args.threads,
        "input_size_px": args.imgsz,
    })
    det = OnnxDetector(cfg)
    print(f"model {args.model.name}, input {det.input_size_px} px, provider {det.provider}, "
          f"threads {args.threads or 'auto'}, frames {w}x{h}, {platform.processor() or platform.machine()}")
    print()
    print("| batch | ms per call | ms per image | images/s |")
    print("|---:|---:|---:|---:|")
    for b in args.batches:
        imgs = frames(b, (w, h))
        per_call, _ = time_it(lambda imgs=imgs: det.detect(imgs), args.seconds)
        print(f"| {b} | {per_call * 1e3:.1f} | {per_call * 1e3 / b:.1f} | {b / per_call:.1f} |", flush=True)
    if args.tile:
        tiling = TilingConfig.model_validate({"tile_px": args.tile})
        imgs = frames(1, (w, h))
        untiled, _ = time_it(lambda: detect_frames(det, imgs, [None], cfg.iou_threshold), args.seconds)
        tiled, _ = time_it(lambda: detect_frames(det, imgs, [tiling], cfg.iou_threshold), args.seconds)
        print()
        print(f"tiling {args.tile} px, overlap {tiling.overlap_frac}, whole frame too: {tiled * 1e3:.0f} ms per frame"
              f" vs {untiled * 1e3:.0f} ms untiled ({tiled / untiled:.1f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""What tiled inference costs and gains on objects made small, as on distant tower views.

    nice -n 5 .venv/bin/python scripts/bench_tiling.py --model models/minewatch-starter.onnx --scales 1 0.5 0.25

Takes the held-out images of the starter model's split (same seed and grouping as
scripts/train_starter.py), shrinks each by a scale factor and pastes it at a random place into a
1920×1080 frame whose background is the same image, enlarged and blurred (so colours match). Then
counts, per scale, the labelled boxes found (same class, IoU ≥ 0.5) untiled and tiled, false
detections per frame, and milliseconds per frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.boxes import iou_matrix  # noqa: E402
from pipeline.config import DetectorConfig, TilingConfig  # noqa: E402
from pipeline.detect.onnx_detector import OnnxDetector  # noqa: E402
from pipeline.detect.tiling import detect_frames  # noqa: E402
from pipeline.train.dataset import Item, Source, collect, split_groups  # noqa: E402
from pipeline.types import CLASSES, Detections  # noqa: E402

FRAME_WH = (1920, 1080)


def make_frame(item: Item, scale: float, rng: np.random.Generator) -> tuple[NDArray[np.uint8], NDArray[np.float32],
                                                                             NDArray[np.int32]]:
    img: NDArray[np.uint8] = np.asarray(cv2.imread(str(item.image)), np.uint8)
    h, w = img.shape[:2]
    fw, fh = FRAME_WH
    bg = np.asarray(cv2.GaussianBlur(cv2.resize(img, FRAME_WH), (0, 0), 25), np.uint8)
    fit = min(fw / w, fh / h) * scale  # scale 1: the image fills the frame's height or width
    nw, nh = max(1, round(w * fit)), max(1, round(h * fit))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    x0 = int(rng.integers(0, fw - nw + 1))
    y0 = int(rng.integers(0, fh - nh + 1))
    bg[y0 : y0 + nh, x0 : x0 + nw] = small
    rows = np.array([r[1:] for r in item.rows], np.float32).reshape(-1, 4)
    cls = np.array([r[0] for r in item.rows], np.int32)
    xyxy = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2,
                     rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2], axis=1)
    xyxy = xyxy * np.array([nw, nh, nw, nh], np.float32) + np.array([x0, y0, x0, y0], np.float32)
    return bg, xyxy.astype(np.float32), cls


def match(det: Detections, gt_xyxy: NDArray[np.float32], gt_cls: NDArray[np.int32]) -> tuple[int, int]:
    """(labelled boxes found, detections matching no label), one detection per label."""
    if len(det) == 0 or len(gt_cls) == 0:
        return 0, len(det)
    iou = iou_matrix(gt_xyxy, det.xyxy)
    iou[gt_cls[:, None] != det.class_id[None, :]] = 0
    found, used = 0, np.zeros(len(det), bool)
    for g in range(len(gt_cls)):
        cand = np.where(~used & (iou[g] >= 0.5))[0]
        if cand.size:
            used[cand[np.argmax(iou[g, cand])]] = True
            found += 1
    return found, int((~used).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "minewatch-starter.onnx")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--tile", type=int, default=640)
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument("--limit", type=int, default=80, help="validation images used (evenly spread)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    items = collect([Source(args.data / "fire8", ["fire", "smoke"])]) + collect(
        [Source(args.data / "excavator", ["excavator"])]
    )
    _, val_idx = split_groups([it.group for it in items], 0.2, 0)
    val = [items[i] for i in val_idx if items[i].rows]
    val = [val[int(i)] for i in np.linspace(0, len(val) - 1, min(args.limit, len(val)))]
    det = OnnxDetector(DetectorConfig.model_validate(
        {"model_path": args.model, "providers": ["CPUExecutionProvider"], "intra_op_threads": args.threads}))
    tiling = TilingConfig.model_validate({"tile_px": args.tile, "overlap_frac": args.overlap})
    counts = ", ".join(f"{c}: {sum(r[0] == i for it in val for r in it.rows)}" for i, c in enumerate(CLASSES))
    print(f"{len(val)} held-out images ({counts} boxes),"
          f" frame {FRAME_WH[0]}×{FRAME_WH[1]}, model input {det.input_size_px} px,"
          f" tiles {args.tile} px overlap {args.overlap} + whole frame")
    print()
    print("| scale | median box height px | mode | boxes found | false detections / frame | ms / frame |")
    print("|---:|---:|---|---:|---:|---:|")
    for scale in args.scales:
        rng = np.random.default_rng(0)
        frames = [make_frame(it, scale, rng) for it in val]
        n_gt = sum(len(c) for _, _, c in frames)
        heights = np.concatenate([g[:, 3] - g[:, 1] for _, g, _ in frames])
        for mode, t in (("whole frame", None), ("tiled", tiling)):
            found = false = 0
            t0 = time.perf_counter()
            for img, gt, cls in frames:
                out = detect_frames(det, [img], [t], det.cfg.iou_threshold)[0]
                f, fp = match(out, gt, cls)
                found += f
                false += fp
            ms = (time.perf_counter() - t0) / len(frames) * 1e3
            print(f"| {scale:g} | {np.median(heights):.0f} | {mode} | {found}/{n_gt} ({found / n_gt:.0%}) |"
                  f" {false / len(frames):.2f} | {ms:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

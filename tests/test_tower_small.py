"""A machine 24 px tall on a real tower frame: found by the shipped default inference path (cameras.yaml),
missed by the whole frame at 320 px without tiles."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import Config, load_config
from pipeline.detect.tiling import tile_grid
from pipeline.eval.hookup import make_detector
from pipeline.eval.images import config_path_runner
from pipeline.train.composite import degrade, grabcut_cutout, paste
from pipeline.train.dataset import Source, collect, split_groups
from pipeline.types import CLASS_INDEX, Detections

ROOT = Path(__file__).resolve().parents[1]
EXC = CLASS_INDEX["excavator"]
HEIGHT_PX = 24.0
N = 6


def _held_out_cutouts(shared: Path) -> list:
    """Cut-outs of excavator photos the network never trained on (the starter's held-out split)."""
    fire = collect([Source(shared / "fire8", ["fire", "smoke"])])
    exc = collect([Source(shared / "excavator", ["excavator"])])
    close = fire + exc
    _, val_idx = split_groups([it.group for it in close], 0.2, 0)
    cuts = []
    for i in val_idx:
        it = close[i]
        if "excavator" not in it.source:
            continue
        img = cv2.imread(str(it.image))
        h, w = img.shape[:2]
        _, cx, cy, bw, bh = it.rows[0]
        cut = grabcut_cutout(img, ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h), EXC,
                             str(it.image))
        if cut is not None and cut.hw[1] / cut.hw[0] < 2.5:
            cuts.append(cut)
        if len(cuts) == N:
            break
    return cuts


def _found(dets: Detections, box: tuple[float, float, float, float], threshold: float) -> bool:
    for (x1, y1, x2, y2), score, cls in zip(dets.xyxy, dets.score, dets.class_id, strict=True):
        if cls != EXC or score < threshold:
            continue
        iw = max(0.0, min(x2, box[2]) - max(x1, box[0]))
        ih = max(0.0, min(y2, box[3]) - max(y1, box[1]))
        union = (x2 - x1) * (y2 - y1) + (box[2] - box[0]) * (box[3] - box[1]) - iw * ih
        if union > 0 and iw * ih / union >= 0.3:
            return True
    return False


def test_24px_machine_needs_the_default_tiles(shared_data: Path) -> None:
    config = load_config(ROOT / "cameras.yaml")
    cam = config.cameras[0]
    if cam.tiling is None or not Path(config.detector.model_path).is_file():
        pytest.skip("the shipped configuration has no tiling or no model")
    background = cv2.imread(str(shared_data / "tower_smoke" / "hpwren-rm-w-20180728" / "-00060.jpg"))
    h, w = background.shape[:2]
    # a tile of the default path that runs (zones_only: projected zones), in the lower half (the ground)
    from pipeline.analyzer import Analyzer
    from pipeline.detect.zonetiles import ZoneTiler
    from pipeline.eval.hookup import load_zones
    from pipeline.types import Pose

    zones = load_zones(config)
    grid = tile_grid((w, h), cam.tiling.tile_px, cam.tiling.overlap_frac)
    if cam.tiling.zones_only:
        tiler = ZoneTiler(Analyzer(config, zones).cameras[cam.id].model, zones, cam.tiling.zone_margin_px)
        grid = grid[tiler.active(Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg), (w, h), grid)]
    grid = grid[grid[:, 1] >= h // 2]
    assert len(grid), "no tile of the default path covers the lower half of the view"
    cuts = _held_out_cutouts(shared_data)
    assert len(cuts) == N
    rng = np.random.default_rng(0)
    frames, boxes = [], []
    for k, cut in enumerate(cuts):
        x1, y1, x2, y2 = grid[(k * 7) % len(grid)]
        frame = background.copy()
        box = paste(frame, cut, HEIGHT_PX, (int(x1 + (x2 - x1) * 0.4), int(y1 + (y2 - y1) * 0.4)), rng, haze=0.2)
        assert box is not None
        frames.append(degrade(frame, rng))
        boxes.append(box)
    threshold = config.detector.score_threshold.for_class("excavator")
    detector = make_detector(config.detector, 0.05)
    default = config_path_runner(config)
    whole_320 = config_path_runner(Config.model_validate({**config.model_dump(), "cameras": [
        {**cam.model_dump(), "tiling": None}]}))
    det_320 = make_detector(config.detector.model_copy(update={"input_size_px": 320}), 0.05)
    found_default = sum(_found(default(detector, [f])[0], b, threshold) for f, b in zip(frames, boxes, strict=True))
    found_320 = sum(_found(whole_320(det_320, [f])[0], b, threshold) for f, b in zip(frames, boxes, strict=True))
    assert found_default >= N - 2, f"default path found {found_default} of {N} machines of {HEIGHT_PX:.0f} px"
    assert found_320 <= 1, f"the whole frame at 320 px found {found_320} of {N}"

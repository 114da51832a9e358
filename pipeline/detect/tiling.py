"""Tiled inference: small, distant objects seen at full resolution.

A 1920×1080 frame letterboxed into a 320 px network input shrinks six-fold; a
machine 40 px high becomes 7 px and is missed. Slicing the frame into
overlapping tiles (each letterboxed on its own) keeps it at full size. The
boxes of all tiles (and of the whole frame, for objects larger than a tile) are
shifted back into frame pixels and merged per class with NMS plus an
intersection-over-smaller rule that drops the piece of an object cut by a tile edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from pipeline.config import TilingConfig
from pipeline.detect.decode import nms
from pipeline.types import Detections

#: a box kept from one tile suppresses another box of its class covering this share of the smaller one
MERGE_IOS = 0.7


class Detector(Protocol):
    def detect(self, images_bgr: list[NDArray[np.uint8]]) -> list[Detections]: ...


#: given an image's tile grid ``(T, 4) xyxy``, which tiles to run (``(T,)`` bool)
TileSelector = Callable[[NDArray[np.int32]], NDArray[np.bool_]]


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / step) + 1
    starts = [min(i * step, length - tile) for i in range(n)]
    return sorted(set(starts))


def tile_grid(image_wh: tuple[int, int], tile_px: int, overlap_frac: float) -> NDArray[np.int32]:
    """(T, 4) ``xyxy`` tiles covering the image; the last row/column is flush with the edge."""
    w, h = image_wh
    step = max(1, round(tile_px * (1.0 - overlap_frac)))
    xs = _starts(w, tile_px, step)
    ys = _starts(h, tile_px, step)
    tiles = [(x, y, min(x + tile_px, w), min(y + tile_px, h)) for y in ys for x in xs]
    return np.array(tiles, np.int32).reshape(-1, 4)


def merge(parts: Sequence[Detections], offsets_xy: Sequence[tuple[int, int]], iou_threshold: float) -> Detections:
    """Shift each part by its tile's offset into frame pixels and merge them (per-class NMS + IoS)."""
    if not parts:
        return Detections()
    xyxy = np.concatenate(
        [d.xyxy + np.array([ox, oy, ox, oy], np.float32) for d, (ox, oy) in zip(parts, offsets_xy, strict=True)]
    ).astype(np.float32)
    score = np.concatenate([d.score for d in parts]).astype(np.float32)
    class_id = np.concatenate([d.class_id for d in parts]).astype(np.int32)
    keep = nms(xyxy, score, class_id, iou_threshold, ios_threshold=MERGE_IOS)
    return Detections(xyxy[keep], score[keep], class_id[keep])


def detect_frames(
    detector: Detector,
    images_bgr: Sequence[NDArray[np.uint8]],
    tilings: Sequence[TilingConfig | None],
    iou_threshold: float,
    select: Sequence[TileSelector | None] | None = None,
) -> list[Detections]:
    """Detections per image; images with a tiling are sliced. All crops go to the detector as ONE batch,
    so frames of tiled and untiled cameras still share one inference call.

    ``select`` (per image, optional): given the image's tile grid, which tiles to run (e.g. only those
    covering a key zone, :class:`pipeline.detect.zonetiles.ZoneTiler`); the others are skipped."""
    if len(images_bgr) != len(tilings):
        raise ValueError(f"{len(images_bgr)} images but {len(tilings)} tilings")
    if select is not None and len(select) != len(images_bgr):
        raise ValueError(f"{len(images_bgr)} images but {len(select)} tile selectors")
    crops: list[NDArray[np.uint8]] = []
    owners: list[tuple[int, tuple[int, int]]] = []  # (image index, offset) per crop
    for i, (img, tiling) in enumerate(zip(images_bgr, tilings, strict=True)):
        h, w = img.shape[:2]
        if tiling is None or (w <= tiling.tile_px and h <= tiling.tile_px):
            crops.append(img)
            owners.append((i, (0, 0)))
            continue
        if tiling.include_full_frame:
            crops.append(img)
            owners.append((i, (0, 0)))
        grid = tile_grid((w, h), tiling.tile_px, tiling.overlap_frac)
        chooser = select[i] if select is not None else None
        run = chooser(grid) if chooser is not None else np.ones(len(grid), bool)
        for x1, y1, x2, y2 in grid[np.asarray(run, bool)]:
            crops.append(np.ascontiguousarray(img[y1:y2, x1:x2]))
            owners.append((i, (int(x1), int(y1))))
    found = detector.detect(crops) if crops else []
    results: list[Detections] = []
    for i, tiling in enumerate(tilings):
        mine = [k for k, (owner, _) in enumerate(owners) if owner == i]
        if len(mine) == 1 and owners[mine[0]][1] == (0, 0) and tiling is None:
            results.append(found[mine[0]])
        else:
            results.append(merge([found[k] for k in mine], [owners[k][1] for k in mine], iou_threshold))
    return results

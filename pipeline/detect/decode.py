"""Decode a YOLOv8/YOLO11 detection head and suppress duplicates (vectorised numpy).

The head's output is ``(batch, 4 + nc, anchors)``: per anchor the box centre and
size in network pixels (``cx, cy, w, h``) followed by one sigmoid score per class.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from pipeline.boxes import ios_matrix, iou_matrix, xywh_to_xyxy


def nms(
    xyxy: NDArray[np.float32],
    score: NDArray[np.float32],
    class_id: NDArray[np.integer],
    iou_threshold: float,
    ios_threshold: float | None = None,
) -> NDArray[np.intp]:
    """Indices kept by greedy per-class NMS, best score first; the same result as the classic loop.

    Boxes of different classes never suppress each other (they are shifted apart by class).
    Greedy NMS keeps box j when no *kept* better box overlaps it by more than the threshold.
    That rule is solved as a fixpoint over the whole IoU matrix: each pass settles at least one
    more box in score order, and in practice 2–4 passes settle all (the loop is over passes,
    never over boxes).

    ``ios_threshold`` also suppresses a box whose intersection with a better one covers more than
    this share of the *smaller* box: how tiled inference drops the part of an object cut by a tile edge.
    """
    n = int(score.shape[0])
    if n == 0:
        return np.zeros((0,), np.intp)
    order = np.argsort(-score, kind="stable")
    boxes = xyxy[order].astype(np.float32)
    span = float(boxes.max() - min(0.0, float(boxes.min()))) + 1.0
    boxes = boxes + (class_id[order].astype(np.float32) * span)[:, None]
    overlaps = np.triu(iou_matrix(boxes, boxes) > iou_threshold, k=1)  # [i, j]: better i overlaps worse j
    if ios_threshold is not None:
        overlaps |= np.triu(ios_matrix(boxes, boxes) > ios_threshold, k=1)
    keep: NDArray[np.bool_] = np.ones(n, bool)
    for _ in range(n):
        new_keep = np.logical_not((overlaps & keep[:, None]).any(axis=0))
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return order[keep]


def decode_yolo(
    head: NDArray[np.float32],
    score_threshold: NDArray[np.float32],
    iou_threshold: float,
    max_det: int = 300,
    max_candidates: int = 3000,
    nms_group: NDArray[np.int32] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int32]]:
    """One image's head output ``(4 + nc, anchors)`` → ``(xyxy (N, 4), score (N,), class_id (N,))``.

    Boxes are in network-input pixels, class ids are the model's. ``score_threshold`` is per model
    class ``(nc,)``; ``inf`` drops a class before NMS. Each anchor votes for its best class only.
    ``max_candidates`` bounds the NMS matrix (the best-scoring boxes are kept first).
    ``nms_group`` ``(nc,)`` lets several model classes suppress each other (e.g. COCO's bus and truck,
    both mapped to minewatch's truck); by default each class is its own group.
    """
    nc = head.shape[0] - 4
    if score_threshold.shape != (nc,):
        raise ValueError(f"score_threshold must have shape ({nc},), got {score_threshold.shape}")
    scores_all = head[4:]  # (nc, A)
    class_id = scores_all.argmax(axis=0).astype(np.int32)
    score = scores_all.max(axis=0)
    mask = score >= score_threshold[class_id]
    if not mask.any():
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)
    xywh = head[:4, mask].T
    score, class_id = score[mask], class_id[mask]
    if score.shape[0] > max_candidates:
        top = np.argpartition(-score, max_candidates)[:max_candidates]
        xywh, score, class_id = xywh[top], score[top], class_id[top]
    xyxy = xywh_to_xyxy(xywh)
    group = class_id if nms_group is None else nms_group[class_id]
    keep = nms(xyxy, score, group, iou_threshold)[:max_det]
    return xyxy[keep], score[keep].astype(np.float32), class_id[keep]

"""Box geometry shared by detection, tracking, evaluation and training: the one home of IoU.

Boxes are ``xyxy`` corners (any unit, the same for both sets) unless the name says ``xywh`` (centre and size).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def xywh_to_xyxy(xywh: NDArray[np.floating]) -> NDArray[np.float32]:
    """(N, 4) centre/size → corners."""
    half_wh = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half_wh, xywh[:, :2] + half_wh], axis=1).astype(np.float32)


def _intersection_and_areas(a_xyxy: ArrayLike, b_xyxy: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    """(N, M) intersection areas and the (N,), (M,) areas of two sets of boxes."""
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter, area_a, area_b


def iou_matrix(a_xyxy: ArrayLike, b_xyxy: ArrayLike) -> NDArray[np.float64]:
    """(len(a), len(b)) intersection over union of every pair (0 where the union is empty)."""
    inter, area_a, area_b = _intersection_and_areas(a_xyxy, b_xyxy)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def ios_matrix(a_xyxy: ArrayLike, b_xyxy: ArrayLike) -> NDArray[np.float64]:
    """(len(a), len(b)) intersection over the smaller box's area of every pair."""
    inter, area_a, area_b = _intersection_and_areas(a_xyxy, b_xyxy)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)

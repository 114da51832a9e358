"""YOLO head decoding and NMS against hand-checked values and the classic greedy loop."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.boxes import iou_matrix
from pipeline.detect.decode import decode_yolo, nms


def _head(anchors: list[tuple[float, float, float, float, float, float]]) -> np.ndarray:
    """(4 + 2, A) head from rows (cx, cy, w, h, score0, score1)."""
    return np.array(anchors, np.float32).T.copy()


HEAD = _head(
    [
        (50, 50, 20, 20, 0.9, 0.1),  # class 0, kept
        (52, 50, 20, 20, 0.8, 0.0),  # class 0, IoU 0.818 with the first: suppressed
        (52, 50, 20, 20, 0.1, 0.7),  # class 1 at the same place: another class, kept
        (10, 10, 4, 4, 0.2, 0.1),  # below the threshold
    ]
)


def test_decode_hand_checked() -> None:
    xyxy, score, cls = decode_yolo(HEAD, np.array([0.25, 0.25], np.float32), iou_threshold=0.45)
    np.testing.assert_allclose(xyxy, [[40, 40, 60, 60], [42, 40, 62, 60]])
    np.testing.assert_allclose(score, [0.9, 0.7])
    assert cls.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("thresholds", "iou", "expected_scores"),
    [
        ((0.85, np.inf), 0.45, [0.9]),  # class 1 dropped (inf), 0.8 box below 0.85
        ((0.05, 0.05), 0.45, [0.9, 0.7, 0.2]),  # the small box passes a low threshold
        ((0.25, 0.25), 0.9, [0.9, 0.8, 0.7]),  # IoU 0.818 < 0.9: no suppression
        ((0.95, 0.95), 0.45, []),  # nothing passes
    ],
)
def test_decode_thresholds_table(thresholds: tuple[float, float], iou: float, expected_scores: list[float]) -> None:
    _, score, _ = decode_yolo(HEAD, np.array(thresholds, np.float32), iou_threshold=iou)
    np.testing.assert_allclose(score, expected_scores)


def test_decode_rejects_wrong_threshold_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        decode_yolo(HEAD, np.array([0.5], np.float32), 0.45)


def test_nms_chain_is_greedy_not_fast_nms() -> None:
    # A suppresses B; B would suppress C, but B is gone, so greedy NMS keeps C.
    xyxy = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)
    keep = nms(xyxy, np.array([0.9, 0.8, 0.7], np.float32), np.zeros(3, np.int32), 0.3)
    assert keep.tolist() == [0, 2]


def _greedy_reference(xyxy: np.ndarray, score: np.ndarray, cls: np.ndarray, thr: float) -> list[int]:
    order = list(np.argsort(-score, kind="stable"))
    kept: list[int] = []
    for i in order:
        if all(cls[i] != cls[k] or iou_matrix(xyxy[[i]], xyxy[[k]])[0, 0] <= thr for k in kept):
            kept.append(int(i))
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_classic_greedy_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(10, 80, (n, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    score = rng.uniform(0, 1, n).astype(np.float32)
    cls = rng.integers(0, 3, n).astype(np.int32)
    assert nms(xyxy, score, cls, 0.45).tolist() == _greedy_reference(xyxy, score, cls, 0.45)


def test_nms_empty() -> None:
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), 0.5).size == 0

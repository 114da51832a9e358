"""The data passed between stages: Detections built from rows, and the one per-class threshold filter."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.types import CLASS_INDEX, CLASSES, Detections


def test_detections_from_rows() -> None:
    dets = Detections.from_rows([(1, 2, 3, 4, 0.5, 2), (5, 6, 7, 8, 0.25, 0)])
    assert dets.xyxy.dtype == np.float32 and dets.score.dtype == np.float32 and dets.class_id.dtype == np.int32
    np.testing.assert_array_equal(dets.xyxy, [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert dets.score.tolist() == [0.5, 0.25] and dets.class_id.tolist() == [2, 0]
    empty = Detections.from_rows([])
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("scores", "kept"),
    [
        ([0.3, 0.3, 0.3], [True, True, False]),  # at the threshold is kept; smoke's 0.4 drops 0.3
        ([0.29, 0.5, 0.4], [False, True, True]),
        ([0.0, 0.0, 0.0], [False, False, False]),
    ],
)
def test_at_or_above_each_class_threshold(scores: list[float], kept: list[bool]) -> None:
    classes = [CLASS_INDEX["excavator"], CLASS_INDEX["fire"], CLASS_INDEX["smoke"]]
    per_class = [0.4 if name == "smoke" else 0.3 for name in CLASSES]
    dets = Detections.from_rows([(0, 0, 1, 1, s, c) for s, c in zip(scores, classes, strict=True)])
    out = dets.at_or_above(per_class)
    assert out.class_id.tolist() == [c for c, k in zip(classes, kept, strict=True) if k]
    assert len(Detections().at_or_above(per_class)) == 0

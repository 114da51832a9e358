"""AP and recall per object height bin (source-frame pixels) on a tiny hand-made labelled set: exact figures."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.eval.boxmetrics import HEIGHT_BINS_PX, BoxEvaluator
from pipeline.types import CLASS_INDEX, Detections

EXC = CLASS_INDEX["excavator"]


def _box(x: float, y: float, h: float) -> list[float]:
    return [x, y, x + h * 1.5, y + h]


def _metrics():
    ev = BoxEvaluator()
    gts = [_box(10, 10, 10), _box(100, 10, 20), _box(200, 10, 40), _box(300, 10, 80), _box(500, 10, 200)]
    dets = [
        (_box(10, 10, 10), 0.9),  # <16 found
        (_box(100, 10, 20), 0.3),  # 16–32 found, below the 0.5 threshold
        (_box(700, 500, 20), 0.8),  # 16–32 false positive, ranked first
        (_box(200, 10, 40), 0.9),  # 32–64 found
        (_box(500, 10, 200), 0.9),  # ≥128 found; 64–128 missed
    ]
    det = Detections(np.array([d[0] for d in dets], np.float32), np.array([d[1] for d in dets], np.float32),
                     np.full(len(dets), EXC, np.int32))
    ev.add((1000, 1000), np.array(gts), np.full(len(gts), EXC), det)
    return ev.compute({"excavator": 0.5}).classes["excavator"]


@pytest.mark.parametrize(
    ("label", "n", "ap50", "recall"),
    [("<16", 1, 1.0, 1.0), ("16–32", 1, 0.5, 0.0), ("32–64", 1, 1.0, 1.0), ("64–128", 1, 0.0, 0.0),
     ("≥128", 1, 1.0, 1.0)],
)
def test_height_bins_are_exact(label: str, n: int, ap50: float, recall: float) -> None:
    fig = _metrics().by_height[label]
    assert fig["n_labels"] == n
    assert fig["ap50"] == pytest.approx(ap50, abs=1e-9)
    assert fig["recall"] == pytest.approx(recall, abs=1e-9)


def test_all_sizes_still_counted_once() -> None:
    m = _metrics()
    assert [b[0] for b in HEIGHT_BINS_PX] == list(m.by_height)
    assert m.n_labels == 5 and m.tp == 3 and m.fp == 1  # 3 found above 0.5, the false positive at 0.8
    assert m.recall == pytest.approx(3 / 5)

"""Box metrics against cases whose AP is known by hand (pycocotools: 101 recall points, step precision)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from pipeline.eval.boxmetrics import BoxEvaluator, BoxMetrics
from pipeline.types import CLASS_INDEX, Detections

FIRE = CLASS_INDEX["fire"]
SMOKE = CLASS_INDEX["smoke"]


def dets(rows: Sequence[Sequence[float]]) -> Detections:
    return Detections.from_rows(rows)


def one_image(
    gt: Sequence[Sequence[float]], det_rows: Sequence[Sequence[float]], thresholds: dict[str, float] | None = None
) -> BoxMetrics:
    ev = BoxEvaluator()
    g = np.asarray(gt, np.float64).reshape(-1, 5)
    ev.add((200, 200), g[:, :4], g[:, 4].astype(np.int32), dets(det_rows))
    return ev.compute(thresholds)


# (case, labels, detections, expected AP50 of fire, expected AP50-95 of fire)
CASES = [
    ("perfect", [(0, 0, 100, 100, FIRE)], [(0, 0, 100, 100, 0.9, FIRE)], 1.0, 1.0),
    # FP ranked above the TP: precision 1/2 at recall 1 → AP 0.5
    ("fp_then_tp", [(0, 0, 100, 100, FIRE)],
     [(150, 150, 190, 190, 0.9, FIRE), (0, 0, 100, 100, 0.8, FIRE)], 0.5, 0.5),
    # TP ranked above the FP: the FP comes after full recall → AP 1
    ("tp_then_fp", [(0, 0, 100, 100, FIRE)],
     [(0, 0, 100, 100, 0.9, FIRE), (150, 150, 190, 190, 0.8, FIRE)], 1.0, 1.0),
    # two labels, TP FP TP: precision 1 up to recall 0.5 (51 of 101 points), 2/3 above (50 points)
    ("tp_fp_tp", [(0, 0, 100, 100, FIRE), (110, 110, 190, 190, FIRE)],
     [(0, 0, 100, 100, 0.9, FIRE), (120, 0, 180, 50, 0.8, FIRE), (110, 110, 190, 190, 0.7, FIRE)],
     (51 + 50 * 2 / 3) / 101, (51 + 50 * 2 / 3) / 101),
    # IoU 0.72: a TP at 0.50, 0.55, 0.60, 0.65, 0.70 and a miss at 0.75…0.95 → AP50-95 = 5/10
    ("iou_072", [(0, 0, 100, 100, FIRE)], [(0, 0, 100, 72, 0.9, FIRE)], 1.0, 0.5),
    # nothing detected
    ("missed", [(0, 0, 100, 100, FIRE)], [], 0.0, 0.0),
    # right place, wrong class: a miss for fire
    ("wrong_class", [(0, 0, 100, 100, FIRE)], [(0, 0, 100, 100, 0.9, SMOKE)], 0.0, 0.0),
    # one of two labels found, nothing else: recall stops at 0.5 → 51 of 101 points at precision 1
    ("half_recall", [(0, 0, 100, 100, FIRE), (110, 110, 190, 190, FIRE)], [(0, 0, 100, 100, 0.9, FIRE)],
     51 / 101, 51 / 101),
]


@pytest.mark.parametrize(("case", "gt", "det_rows", "ap50", "ap50_95"), CASES, ids=[c[0] for c in CASES])
def test_ap_known_by_hand(case: str, gt: list, det_rows: list, ap50: float, ap50_95: float) -> None:
    m = one_image(gt, det_rows).classes["fire"]
    assert m.ap50 == pytest.approx(ap50, abs=1e-9)
    assert m.ap50_95 == pytest.approx(ap50_95, abs=1e-9)


def test_precision_recall_at_threshold() -> None:
    gt = [(0, 0, 100, 100, FIRE), (110, 110, 190, 190, FIRE)]
    det_rows = [(0, 0, 100, 100, 0.9, FIRE), (120, 0, 180, 50, 0.8, FIRE), (110, 110, 190, 190, 0.3, FIRE)]
    at_075 = one_image(gt, det_rows, {"fire": 0.75}).classes["fire"]
    assert (at_075.tp, at_075.fp, at_075.precision, at_075.recall) == (1, 1, 0.5, 0.5)
    at_02 = one_image(gt, det_rows, {"fire": 0.2}).classes["fire"]
    assert (at_02.tp, at_02.fp) == (2, 1)
    assert at_02.precision == pytest.approx(2 / 3)
    assert at_02.recall == 1.0
    at_095 = one_image(gt, det_rows, {"fire": 0.95}).classes["fire"]
    assert (at_095.tp, at_095.fp, at_095.precision, at_095.recall) == (0, 0, None, 0.0)


def test_class_without_labels_has_no_ap_and_mean_skips_it() -> None:
    m = one_image([(0, 0, 100, 100, FIRE)], [(0, 0, 100, 100, 0.9, FIRE), (0, 0, 50, 50, 0.9, SMOKE)])
    assert m.classes["smoke"].ap50 is None
    assert m.classes["smoke"].n_detections == 1
    assert m.classes["smoke"].fp == 1  # counted at the operating point even without labels
    assert m.map50 == pytest.approx(1.0)


def test_several_images_pool_detections_by_score() -> None:
    # image 1: a TP at 0.6; image 2: an FP at 0.9 and a missed label → fire: FP(0.9) then TP(0.6), 2 labels
    ev = BoxEvaluator()
    ev.add((200, 200), np.array([[0, 0, 100, 100]]), np.array([FIRE]), dets([(0, 0, 100, 100, 0.6, FIRE)]))
    ev.add((200, 200), np.array([[0, 0, 100, 100]]), np.array([FIRE]), dets([(150, 150, 199, 199, 0.9, FIRE)]))
    m = ev.compute().classes["fire"]
    # PR points: (r=0, p=0), (r=0.5, p=0.5) → precision 0.5 at recall ≤ 0.5 (51 points), 0 above
    assert m.ap50 == pytest.approx(51 * 0.5 / 101)
    assert m.n_labels == 2


def test_empty_evaluation() -> None:
    ev = BoxEvaluator()
    ev.add((10, 10), np.zeros((0, 4)), np.zeros(0, np.int32), Detections())
    m = ev.compute()
    assert m.map50 is None and m.n_images == 1


def test_max_dets_keeps_the_best() -> None:
    gt = [(0, 0, 100, 100, FIRE)]
    rows = [(150 + i, 150, 190, 190, 0.9, FIRE) for i in range(3)] + [(0, 0, 100, 100, 0.1, FIRE)]
    ev = BoxEvaluator(max_dets=3)
    g = np.asarray(gt, np.float64)
    ev.add((200, 200), g[:, :4], g[:, 4].astype(np.int32), dets(rows))
    assert ev.compute().classes["fire"].ap50 == 0.0  # the TP is the 4th best and is cut
    ev = BoxEvaluator(max_dets=4)
    ev.add((200, 200), g[:, :4], g[:, 4].astype(np.int32), dets(rows))
    assert ev.compute().classes["fire"].ap50 == pytest.approx(0.25)


def test_per_image_round_trip() -> None:
    ev = BoxEvaluator()
    ev.add((200, 200), np.array([[1, 2, 30, 40]]), np.array([SMOKE]), dets([(5, 6, 70, 80, 0.5, FIRE)]))
    gt_xyxy, gt_cls, det = ev.per_image()[0]
    np.testing.assert_allclose(gt_xyxy, [[1, 2, 30, 40]])
    assert gt_cls.tolist() == [SMOKE]
    np.testing.assert_allclose(det.xyxy, [[5, 6, 70, 80]])
    assert det.class_id.tolist() == [FIRE]

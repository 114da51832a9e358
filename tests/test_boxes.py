"""Box geometry: IoU, intersection over the smaller box, centre/size to corners."""

from __future__ import annotations

import numpy as np

from pipeline.boxes import ios_matrix, iou_matrix, xywh_to_xyxy


def test_xywh_to_xyxy() -> None:
    np.testing.assert_allclose(xywh_to_xyxy(np.array([[50, 40, 20, 10]], np.float32)), [[40, 35, 60, 45]])


def test_iou_matrix_hand_values() -> None:
    a = np.array([[40, 40, 60, 60]], np.float32)
    b = np.array([[42, 40, 62, 60], [60, 60, 70, 70], [40, 40, 60, 60]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[360 / 440, 0.0, 1.0]], rtol=1e-6)


def test_iou_matrix_hand_checked() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]], dtype=np.float64)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float64)
    expected = np.array([[50 / 150, 1.0, 0.0], [0.0, 16 / 100, 0.0]])
    np.testing.assert_allclose(iou_matrix(a, b), expected)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_iou_of_one_box_with_many() -> None:
    ious = iou_matrix([(0, 0, 10, 10)], np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float))[0]
    np.testing.assert_allclose(ious, [1.0, 50 / 150, 0.0])


def test_ios_matrix_hand_values() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [2, 2, 4, 4], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(ios_matrix(a, b), [[0.5, 1.0, 0.0]])

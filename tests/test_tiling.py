"""Tiled inference: a small object found tiled and missed untiled, with a real ONNX model built here.

The model is a genuine (tiny) detector graph: per 8×8 cell of its 256 px input, the class score is the
share of pure-red pixels in the cell, and the box is a 32 px square centred on the cell. A 16 px red
square in a 2048 px frame shrinks to 2 px in the untiled input (score ≈ 0.06: missed), but fills whole
cells in a 256 px tile (score 1: found).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipeline.config import DetectorConfig, TilingConfig
from pipeline.detect.onnx_detector import OnnxDetector
from pipeline.detect.tiling import detect_frames, merge, tile_grid
from pipeline.types import CLASS_INDEX, Detections

NET = 256
CELL = 8


def make_red_cell_model(path: Path) -> Path:
    g = NET // CELL
    anchors = g * g
    ys, xs = np.mgrid[0:g, 0:g]
    boxes = np.stack([(xs.ravel() + 0.5) * CELL, (ys.ravel() + 0.5) * CELL, np.full(anchors, 32.0),
                      np.full(anchors, 32.0)])[None].astype(np.float32)  # (1, 4, A)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, NET, NET])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, anchors])
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["redness"]),  # R - G - B
        helper.make_node("Relu", ["redness"], ["red"]),
        helper.make_node("AveragePool", ["red"], ["cells"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        helper.make_node("Reshape", ["cells", "shape"], ["score"]),  # (N, 1, A)
        helper.make_node("Mul", ["score", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "boxes"], ["xywh"]),  # (N, 4, A) by broadcasting
        helper.make_node("Concat", ["xywh", "score"], ["output0"], axis=1),
    ]
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, -1.0, -1.0]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 1, anchors]),
        helper.make_tensor("zero", TensorProto.FLOAT, [1, 4, 1], [0.0] * 4),
        helper.make_tensor("boxes", TensorProto.FLOAT, list(boxes.shape), boxes.ravel().tolist()),
    ]
    model = helper.make_model(helper.make_graph(nodes, "red", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for k, v in {"names": "{0: 'excavator'}", "imgsz": f"[{NET}, {NET}]", "stride": "32", "task": "detect"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def detector(tmp_path: Path) -> OnnxDetector:
    cfg = DetectorConfig.model_validate(
        {"model_path": make_red_cell_model(tmp_path / "red.onnx"), "providers": ["CPUExecutionProvider"],
         "iou_threshold": 0.3}
    )
    return OnnxDetector(cfg)


def frame_with_squares(squares_xy: list[tuple[int, int]], side: int = 16, size: int = 2048) -> np.ndarray:
    img = np.full((size, size, 3), 128, np.uint8)
    for x, y in squares_xy:
        img[y : y + side, x : x + side] = (0, 0, 255)  # red in BGR
    return img


@pytest.mark.parametrize(
    ("wh", "tile", "overlap", "expected"),
    [
        ((2048, 2048), 256, 0.25, (11 * 11, (0, 0, 256, 256), (1792, 1792, 2048, 2048))),
        ((1920, 1080), 640, 0.2, (4 * 2, (0, 0, 640, 640), (1280, 440, 1920, 1080))),
        ((500, 300), 640, 0.2, (1, (0, 0, 500, 300), (0, 0, 500, 300))),  # smaller than a tile: itself
    ],
)
def test_tile_grid_covers_the_frame(wh: tuple[int, int], tile: int, overlap: float,
                                    expected: tuple[int, tuple[int, ...], tuple[int, ...]]) -> None:
    tiles = tile_grid(wh, tile, overlap)
    assert (len(tiles), tuple(tiles[0]), tuple(tiles[-1])) == expected
    covered = np.zeros(wh[::-1], bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered.all()


def test_large_object_is_found_untiled(detector: OnnxDetector) -> None:
    """The model itself works on whole frames: a 128 px square becomes 16 px in the input and is found."""
    found, = detect_frames(detector, [frame_with_squares([(600, 600)], side=128)], [None], iou_threshold=0.3)
    assert len(found) >= 1 and all(600 <= (b[0] + b[2]) / 2 <= 728 for b in found.xyxy)


def test_small_object_found_tiled_and_missed_untiled(detector: OnnxDetector) -> None:
    img = frame_with_squares([(1000, 1000)])
    untiled, = detect_frames(detector, [img], [None], iou_threshold=0.3)
    assert len(untiled) == 0
    tiling = TilingConfig.model_validate({"tile_px": 256, "overlap_frac": 0.25})
    tiled, = detect_frames(detector, [img], [tiling], iou_threshold=0.3)
    assert len(tiled) == 1  # one object, once, although several cells and tiles saw it
    cx, cy = tiled.xyxy[0, [0, 2]].mean(), tiled.xyxy[0, [1, 3]].mean()
    assert 1000 <= cx <= 1016 and 1000 <= cy <= 1016
    assert tiled.class_id.tolist() == [CLASS_INDEX["excavator"]]


def test_tiled_and_untiled_cameras_share_one_batch(detector: OnnxDetector) -> None:
    calls: list[int] = []
    real = detector.detect

    def counting(images: list[np.ndarray]) -> list[Detections]:
        calls.append(len(images))
        return real(images)

    detector.detect = counting  # type: ignore[method-assign,assignment]
    small_frame = np.full((256, 256, 3), 128, np.uint8)
    small_frame[100:140, 100:140] = (0, 0, 255)  # big enough to see untiled
    tiling = TilingConfig.model_validate({"tile_px": 256, "overlap_frac": 0.25, "include_full_frame": False})
    out = detect_frames(detector, [frame_with_squares([(300, 1700)]), small_frame], [tiling, None], 0.3)
    assert calls == [121 + 1]  # 11×11 tiles of the first frame and the second frame, one call
    assert len(out[0]) == 1 and len(out[1]) >= 1


def test_object_cut_by_a_tile_edge_is_reported_once() -> None:
    # the same object: whole in tile A, its left half in tile B (cut by B's edge)
    whole = Detections.from_rows([(100, 100, 140, 120, 0.9, 0)])
    half = Detections.from_rows([(0, 100, 20, 120, 0.8, 0)])
    other_class = Detections.from_rows([(0, 100, 20, 120, 0.8, 1)])
    merged = merge([whole, half, other_class], [(0, 0), (120, 0), (120, 0)], iou_threshold=0.45)
    np.testing.assert_allclose(merged.xyxy, [[100, 100, 140, 120], [120, 100, 140, 120]])
    assert merged.class_id.tolist() == [0, 1]

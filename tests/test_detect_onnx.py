"""OnnxDetector: bad models give one-line UserErrors; batching, padding and mapping on a hand-built head."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper

from pipeline.config import DetectorConfig
from pipeline.detect.onnx_detector import OnnxDetector, choose_providers
from pipeline.errors import UserError
from pipeline.types import CLASS_INDEX

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64


def make_model(
    path: Path,
    head: np.ndarray | None = None,
    names: dict[int, str] | None = None,
    batch: int | str = "batch",
    out_shape: list[int | str] | None = None,
    task: str | None = "detect",
    n_outputs: int = 1,
    dynamic_hw: bool = False,
) -> Path:
    """A tiny ONNX model: output = head + mean(image) * mask (mask = score of class 0 at anchor 0).

    With the default head it is a valid YOLO detection export whose class-0 score is the mean
    brightness of the input, so each image of a batch gets its own, predictable score.
    """
    if head is None:
        head = np.zeros((6, 3), np.float32)
        head[:4, 0] = [32, 32, 16, 16]  # anchor 0: a 16 px box in the centre, score = brightness
        head[:4, 1] = [8, 8, 4, 4]
        head[5, 1] = 0.6  # anchor 1: class 1, fixed score 0.6
        head[:4, 2] = [60, 60, 4, 4]  # anchor 2: nothing
    if head.ndim == 2 and (out_shape is None or len(out_shape) == 3):
        head = head[None]
    mask = np.zeros(head.shape, np.float32)
    if head.ndim == 3 and head.shape[1] > 4:
        mask[0, 4, 0] = 1.0
    out_shape = out_shape or [batch, *head.shape[1:]]
    hw: list[int | str] = ["height", "width"] if dynamic_hw else [SIZE, SIZE]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *hw])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    outputs = [y] + [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, None) for i in range(1, n_outputs)]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),
        helper.make_node("Mul", ["m3", "mask"], ["scored"]),
        helper.make_node("Add", ["scored", "head"], ["output0"]),
    ] + [helper.make_node("Identity", ["m"], [f"extra{i}"]) for i in range(1, n_outputs)]
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [head.ndim], [-1] + [1] * (head.ndim - 1)),
        helper.make_tensor("mask", TensorProto.FLOAT, mask.shape, mask.flatten().tolist()),
        helper.make_tensor("head", TensorProto.FLOAT, head.shape, head.flatten().tolist()),
    ]
    graph = helper.make_graph(nodes, "fake", [x], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = {"stride": "32", "imgsz": f"[{SIZE}, {SIZE}]"}
    if names is not None:
        meta["names"] = repr(names)
    if task is not None:
        meta["task"] = task
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def cfg(path: Path, **kw: object) -> DetectorConfig:
    return DetectorConfig.model_validate({"model_path": path, "providers": ["CPUExecutionProvider"], **kw})


NAMES = {0: "excavator", 1: "smoke"}


@pytest.mark.parametrize(
    ("build", "field", "found"),
    [
        (None, "detector.model_path", "no such file"),
        ("text", "detector.model_path", ""),
        ({"head": np.zeros((1, 10), np.float32), "out_shape": ["batch", 10]}, "outputs", "10"),  # a classifier
        ({"names": NAMES, "head": np.zeros((7, 3), np.float32)}, "outputs", "7"),  # 3 classes in the head, 2 names
        ({"names": NAMES, "n_outputs": 2}, "outputs", "extra1"),  # e.g. a segmentation export
        ({"names": NAMES, "task": "segment"}, "metadata.task", "segment"),
        ({"names": {0: "a", 2: "b"}}, "metadata.names", "[0, 2]"),
    ],
)
def test_bad_models_raise_one_line_user_errors(tmp_path: Path, build: object, field: str, found: str) -> None:
    path = tmp_path / "model.onnx"
    if build == "text":
        path.write_text("not an onnx file")
    elif isinstance(build, dict):
        make_model(path, **build)
    with pytest.raises(UserError) as err:
        OnnxDetector(cfg(path))
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and field in message and found in message


def test_input_size_must_match_a_fixed_input(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", names=NAMES)
    with pytest.raises(UserError, match="input_size_px.*64"):
        OnnxDetector(cfg(path, input_size_px=96))


def test_no_available_provider_is_a_user_error(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", names=NAMES)
    with pytest.raises(UserError, match="detector.providers"):
        OnnxDetector(DetectorConfig.model_validate({"model_path": path, "providers": ["TensorrtExecutionProvider"]}))


def test_choose_providers_skips_with_reasons() -> None:
    chosen, skipped = choose_providers(
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]
    )
    assert chosen == ["CPUExecutionProvider"]
    assert len(skipped) == 2 and all("not in this onnxruntime build" in s for s in skipped)


@pytest.mark.parametrize("batch", ["batch", 2, 1])
def test_batch_of_cameras_maps_boxes_scores_and_classes(
    tmp_path: Path, batch: int | str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three frames (square and wide) through a dynamic, a fixed-2 (padded) and a fixed-1 model."""
    path = make_model(tmp_path / "m.onnx", names=NAMES, batch=batch)
    with caplog.at_level(logging.INFO, logger="minewatch.detect"):
        det = OnnxDetector(cfg(path, class_map={"excavator": "excavator", "smoke": "smoke"}))
    assert "on CPUExecutionProvider" in caplog.text
    assert det.names == NAMES and det.input_size_px == SIZE and det.provider == "CPUExecutionProvider"
    bright = np.full((SIZE, SIZE, 3), 255, np.uint8)
    wide = np.full((64, 128, 3), 204, np.uint8)  # 128×64: scale 0.5, 16 px of grey above and below
    dim = np.full((SIZE, SIZE, 3), 51, np.uint8)  # mean 0.2 < threshold 0.35: no excavator
    out = det.detect([bright, wide, dim])
    assert len(out) == 3
    # bright: the excavator box (score 1.0) and the fixed smoke box (0.6)
    np.testing.assert_allclose(out[0].xyxy, [[24, 24, 40, 40], [6, 6, 10, 10]])
    np.testing.assert_allclose(out[0].score, [1.0, 0.6], atol=1e-6)
    assert out[0].class_id.tolist() == [CLASS_INDEX["excavator"], CLASS_INDEX["smoke"]]
    # wide: mean = (204*32 + 114*32)/64/255; the box maps back through the letterbox
    np.testing.assert_allclose(out[1].score[0], (204 + 114) / 2 / 255, atol=1e-5)
    np.testing.assert_allclose(out[1].xyxy[0], [48, 16, 80, 48])
    assert out[2].class_id.tolist() == [CLASS_INDEX["smoke"]]


def test_class_map_renames_drops_and_thresholds(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", names={0: "digger", 1: "cloud"})
    bright = np.full((SIZE, SIZE, 3), 255, np.uint8)
    renamed = OnnxDetector(cfg(path, class_map={"digger": "excavator", "cloud": None})).detect([bright])[0]
    assert renamed.class_names() == ["excavator"]
    strict = OnnxDetector(
        cfg(path, class_map={"digger": "excavator", "cloud": "smoke"}, score_threshold={"smoke": 0.7})
    ).detect([bright])[0]
    assert strict.class_names() == ["excavator"]  # smoke's 0.6 is under its own 0.7 threshold
    assert OnnxDetector(cfg(path)).detect([bright])[0].class_names() == []  # names not in the map: dropped


def test_classes_mapped_to_one_class_suppress_each_other(tmp_path: Path) -> None:
    head = np.zeros((6, 2), np.float32)
    head[:, 0] = [32, 32, 16, 16, 0.9, 0.0]  # a "bus" (class 0; + brightness 0 on a black image)
    head[:, 1] = [33, 32, 16, 16, 0.0, 0.8]  # a "truck" at nearly the same place
    path = make_model(tmp_path / "m.onnx", head=head, names={0: "bus", 1: "truck"})
    black = np.zeros((SIZE, SIZE, 3), np.uint8)
    both = OnnxDetector(cfg(path, class_map={"bus": "truck", "truck": "truck"})).detect([black])[0]
    np.testing.assert_allclose(both.score, [0.9])  # one truck, not two boxes on one vehicle
    assert both.class_names() == ["truck"]
    apart = OnnxDetector(cfg(path, class_map={"bus": "excavator", "truck": "truck"})).detect([black])[0]
    assert sorted(apart.class_names()) == ["excavator", "truck"]


def test_detect_rejects_non_bgr_images(tmp_path: Path) -> None:
    det = OnnxDetector(cfg(make_model(tmp_path / "m.onnx", names=NAMES)))
    assert det.detect([]) == []
    with pytest.raises(ValueError, match="uint8 BGR"):
        det.detect([np.zeros((64, 64), np.uint8)])


@pytest.mark.shared
def test_same_boxes_as_ultralytics_on_the_coco_model(shared_data: Path) -> None:
    """Our letterbox + decode + NMS against Ultralytics' own predictor, on the same ONNX file."""
    import cv2

    ultralytics = pytest.importorskip("ultralytics")
    model = shared_data / "models" / "yolov8n_coco_640.onnx"
    img: NDArray[np.uint8] = np.asarray(
        cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg")), np.uint8
    )
    det = OnnxDetector(DetectorConfig.model_validate({
        "model_path": model, "providers": ["CPUExecutionProvider"], "iou_threshold": 0.7,
        "score_threshold": {"default": 0.25}, "class_map": {"person": "person", "bus": "truck"},
    }))
    ours = det.detect([img])[0]
    ref = ultralytics.YOLO(str(model), task="detect").predict(img, conf=0.25, iou=0.7, classes=[0, 5],
                                                             verbose=False)[0].boxes
    ref_xyxy = ref.xyxy.cpu().numpy()
    ref_score = ref.conf.cpu().numpy()
    from pipeline.boxes import iou_matrix

    # every confident reference box has a twin of ours (resampling differs slightly: INTER_AREA vs LINEAR)
    confident = ref_score > 0.3
    assert confident.sum() >= 4
    iou = iou_matrix(ref_xyxy[confident].astype(np.float32), ours.xyxy)
    assert (iou.max(axis=1) > 0.9).all(), (ref_xyxy, ours.xyxy)
    twin = iou.argmax(axis=1)
    np.testing.assert_allclose(ours.score[twin], ref_score[confident], atol=0.05)


def decoded_picture(image_bgr: NDArray[np.uint8]) -> object:
    """A real decoded YUV picture (PyAV): the image encoded to H.264 and decoded again."""
    import av

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = image_bgr.shape[1], image_bgr.shape[0], "yuv420p"
    codec.options = {"qp": "0", "preset": "ultrafast"}
    packets = list(codec.encode(av.VideoFrame.from_ndarray(image_bgr, format="bgr24"))) + list(codec.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))
    return frames[0]


@pytest.mark.parametrize("pixels", ["array", "picture"])
def test_detect_frames_scales_each_frame_to_the_input_and_maps_boxes_back(tmp_path: Path, pixels: str) -> None:
    """A 256×128 frame (scale 0.25, 16 px of padding above and below) as an array and as a decoded picture
    scaled straight from YUV: the same boxes, in the frame's own pixels, as ``detect`` on the image."""
    from pipeline.types import Frame, Pose

    path = make_model(tmp_path / "m.onnx", names=NAMES)
    det = OnnxDetector(cfg(path, class_map={"excavator": "excavator", "smoke": "smoke"}))
    image = np.full((128, 256, 3), 200, np.uint8)
    frame = Frame("c", 1, 0.0, image if pixels == "array" else decoded_picture(image), Pose(0, 0, 60))  # type: ignore[arg-type]
    (out,) = det.detect_frames([frame])
    (ref,) = det.detect([image])
    np.testing.assert_allclose(out.xyxy, ref.xyxy, atol=0.5)
    np.testing.assert_allclose(out.xyxy[0], [96, 32, 160, 96])  # the centre box, 4× the network's 16 px
    np.testing.assert_allclose(out.score, ref.score, atol=0.01)  # YUV round trip: within a grey level
    assert det.detect_frames([]) == []
    if pixels == "picture":  # the full image was never converted: a snapshot can still have it
        assert not isinstance(frame.pixels, np.ndarray)
        assert np.abs(frame.image_bgr.astype(int) - 200).max() <= 6  # limited-range YUV rounding
        assert isinstance(frame.pixels, np.ndarray)  # converted once, kept


@pytest.mark.parametrize(
    ("workers", "threads", "on_gpu", "cores", "expected"),
    [
        (0, 0, False, 2, (2, 1)),  # CPU: one single-threaded session per core
        (0, 0, False, 16, (4, 4)),  # at most 4 workers; the cores shared out
        (0, 0, False, 1, (1, 1)),
        (0, 0, True, 8, (2, 2)),  # GPU: two workers overlap host work with the device
        (1, 0, False, 2, (1, 2)),  # one worker gets every core
        (3, 2, False, 2, (3, 2)),  # explicit settings win
    ],
)
def test_plan_workers(workers: int, threads: int, on_gpu: bool, cores: int, expected: tuple[int, int]) -> None:
    from pipeline.detect.workers import plan_workers

    c = DetectorConfig.model_validate({"workers": workers, "intra_op_threads": threads})
    assert plan_workers(c, on_gpu, cores) == expected


def test_make_detectors_builds_one_session_per_worker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.detect.workers import make_detectors

    path = make_model(tmp_path / "m.onnx", names=NAMES)
    with caplog.at_level(logging.INFO, logger="minewatch.detect"):
        dets = make_detectors(cfg(path), cores=2)
    assert len(dets) == 2 and dets[0].session is not dets[1].session
    assert [d.intra_op_threads for d in dets] == [1, 1]
    assert caplog.text.count("detector: m.onnx") == 1
    assert "2 inference worker(s), 1 onnxruntime thread(s)" in caplog.text


@pytest.mark.parametrize(
    ("dynamic_hw", "rect_input", "sizes", "canvas", "score"),
    [
        # a 256×128 frame: on the rectangular 64×32 canvas no grey padding dilutes the score (the fake
        # model's class-0 score is the canvas's mean brightness)
        (True, True, [(256, 128)], (64, 32), 200 / 255),
        (True, False, [(256, 128)], (64, 64), (200 + 114) / 2 / 255),  # switched off: the square
        (False, True, [(256, 128)], (64, 64), (200 + 114) / 2 / 255),  # a fixed-size export: the square
        (True, True, [(256, 128), (128, 256)], (64, 64), None),  # one canvas holds the whole batch
    ],
)
def test_rectangular_input_pads_only_to_the_stride(
    tmp_path: Path, dynamic_hw: bool, rect_input: bool, sizes: list[tuple[int, int]],
    canvas: tuple[int, int], score: float | None,
) -> None:
    path = make_model(tmp_path / "m.onnx", names=NAMES, dynamic_hw=dynamic_hw)
    det = OnnxDetector(cfg(path, rect_input=rect_input, score_threshold={"default": 0.05}))
    assert det.canvas_wh(sizes) == canvas
    images = [np.full((h, w, 3), 200, np.uint8) for w, h in sizes]
    out = det.detect(images)
    assert len(out) == len(images)
    if score is not None:
        excavator = out[0].score[out[0].class_id == CLASS_INDEX["excavator"]]
        np.testing.assert_allclose(excavator, [score], atol=1e-4)

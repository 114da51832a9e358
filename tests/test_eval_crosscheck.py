"""pycocotools (minewatch's box metrics) against Ultralytics: its metric code on the same boxes, and its
own ``val`` on the same images and ONNX model. Needs the [train] extra (Ultralytics); skipped without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.eval.boxmetrics import BoxEvaluator
from pipeline.types import Detections

pytest.importorskip("ultralytics", reason="needs the [train] extra (Ultralytics, torch)")

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "models" / "minewatch-starter.onnx"
#: the agreement the issue asks for, in absolute AP
AGREEMENT = 0.01


def synthetic(seed: int, n_images: int = 60) -> BoxEvaluator:
    """Labelled boxes of 3 classes and predictions with localisation noise, misses, false boxes and
    wrong classes: a realistic spread of IoUs and scores."""
    rng = np.random.default_rng(seed)
    ev = BoxEvaluator()
    for _ in range(n_images):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 500, (n, 2))
        wh = rng.uniform(20, 150, (n, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        gt_cls = rng.integers(0, 3, n)
        rows, scores, classes = [], [], []
        for box, cls in zip(gt, gt_cls, strict=True):
            if rng.random() < 0.15:
                continue  # missed
            jitter = rng.normal(0, 0.12, 4) * np.r_[box[2] - box[0], box[3] - box[1]].repeat(2)[[0, 2, 1, 3]]
            rows.append(box + jitter)
            scores.append(float(np.clip(rng.normal(0.7, 0.2), 0.01, 1.0)))
            classes.append(int(cls) if rng.random() > 0.1 else int((cls + 1) % 3))
        for _ in range(int(rng.integers(0, 3))):  # false boxes
            p = rng.uniform(0, 500, 2)
            rows.append(np.r_[p, p + rng.uniform(10, 100, 2)])
            scores.append(float(rng.uniform(0.01, 0.8)))
            classes.append(int(rng.integers(0, 3)))
        det = Detections(np.asarray(rows, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                         np.asarray(classes, np.int32))
        ev.add((700, 700), gt, gt_cls, det)
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_predictions_agree_with_ultralytics_metrics(seed: int) -> None:
    from pipeline.eval.crosscheck import ultralytics_ap_same_predictions

    ev = synthetic(seed)
    ours = ev.compute()
    theirs = ultralytics_ap_same_predictions(ev)
    assert set(theirs.ap50) == {c.name for c in ours.labelled}
    for name, ap50 in theirs.ap50.items():
        c = ours.classes[name]
        assert c.ap50 is not None and c.ap50_95 is not None
        assert 0.2 < c.ap50 < 0.99, "the case must not be trivial"
        assert abs(c.ap50 - ap50) <= AGREEMENT, (name, c.ap50, ap50)
        assert abs(c.ap50_95 - theirs.ap50_95[name]) <= AGREEMENT, (name, c.ap50_95, theirs.ap50_95[name])


def model_and_items(shared: Path, n: int) -> tuple[object, list]:
    """The starter model on held-out fire8 images; without it, the COCO model on excavator photos
    (class_map truck → excavator), so the metric check runs either way."""
    from pipeline.config import DetectorConfig
    from pipeline.eval.baseline import _heldout_items, heldout_split
    from pipeline.eval.labels import load_image_dataset

    if STARTER.is_file():
        images, _ = heldout_split(shared)
        items = _heldout_items(shared, [p for p in images if p.parent.parent.name == "fire8"][:n])
        cfg = DetectorConfig.model_validate({"model_path": str(STARTER), "providers": ["CPUExecutionProvider"]})
    else:
        items = load_image_dataset(shared / "excavator", ["excavator"])[0][:n]
        cfg = DetectorConfig.model_validate({"model_path": str(shared / "models" / "yolov8n_coco_640.onnx"),
                                             "providers": ["CPUExecutionProvider"],
                                             "class_map": {"truck": "excavator"}})
    return cfg, items


@pytest.mark.shared
@pytest.mark.slow
def test_pycocotools_agrees_with_val_on_its_own_predictions(shared_data: Path, tmp_path: Path) -> None:
    """Ultralytics' val on real images; its own labels and predictions scored by pycocotools agree with
    the AP val reports, within 0.01."""
    import onnxruntime as ort

    from pipeline.eval.crosscheck import _parse_names_meta, ultralytics_val

    cfg, items = model_and_items(shared_data, 24)
    session = ort.InferenceSession(str(cfg.model_path), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    names = _parse_names_meta(session.get_modelmeta().custom_metadata_map["names"])
    imgsz = int(session.get_inputs()[0].shape[2]) if isinstance(session.get_inputs()[0].shape[2], int) else 320
    val = ultralytics_val(cfg, items, names, imgsz, tmp_path)  # type: ignore[arg-type]
    assert val.evaluator is not None and len(val.evaluator) == len(items)
    ours = val.evaluator.compute()
    assert val.ap50, "val reported no class"
    for name, ap50 in val.ap50.items():
        c = ours.classes[name]
        assert c.ap50 is not None and c.ap50_95 is not None
        assert abs(c.ap50 - ap50) <= AGREEMENT, (name, c.ap50, ap50)
        assert abs(c.ap50_95 - val.ap50_95[name]) <= AGREEMENT, (name, c.ap50_95, val.ap50_95[name])


#: whole chain (minewatch's detector → pycocotools) against val: differences by design, measured in
#: docs/EVALUATION.md (best class per anchor vs multi-label, boxes clipped to the image, resize details);
#: largest measured on the 184 held-out fire8 images: 0.020 (fire AP50-95)
WHOLE_CHAIN = 0.03


@pytest.mark.shared
@pytest.mark.slow
def test_pipeline_close_to_ultralytics_val(shared_data: Path, tmp_path: Path) -> None:
    """The starter model on all 184 held-out fire8 images (fewer give a handful of fire boxes, where one box
    moves AP by 0.05): minewatch's detector + pycocotools vs val."""
    if not STARTER.is_file():
        pytest.skip("models/minewatch-starter.onnx not there")
    from pipeline.eval.crosscheck import ultralytics_val
    from pipeline.eval.images import evaluate_images

    cfg, items = model_and_items(shared_data, 1000)
    ours = evaluate_images(cfg, items, ["fire", "smoke"], progress=False)  # type: ignore[arg-type]
    theirs = ultralytics_val(cfg, items, ours.model_names, ours.input_size_px, tmp_path)  # type: ignore[arg-type]
    for name in ("fire", "smoke"):
        c = ours.metrics.classes[name]
        assert c.ap50 is not None and c.ap50_95 is not None
        assert abs(c.ap50 - theirs.ap50[name]) <= WHOLE_CHAIN, (name, c.ap50, theirs.ap50[name])
        assert abs(c.ap50_95 - theirs.ap50_95[name]) <= WHOLE_CHAIN, (name, c.ap50_95, theirs.ap50_95[name])

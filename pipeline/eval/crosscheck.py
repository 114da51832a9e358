"""Cross-check of the box metrics against Ultralytics' own ``val`` on the same images and ONNX model.

Needs the ``[train]`` extra (Ultralytics imports torch); it is imported only inside :func:`ultralytics_val`,
never by the rest of the evaluation. Used by ``tests/test_eval_crosscheck.py`` and by
``minewatch eval images --crosscheck-ultralytics``.

Known, expected differences (measured figures are in docs/EVALUATION.md):

* AP: pycocotools reads precision at 101 recall points as a step function and averages them; Ultralytics
  interpolates the precision envelope linearly at 101 points and integrates with the trapezoid rule.
* Matching: pycocotools matches detections greedily by score; Ultralytics matches by IoU.
* NMS: Ultralytics' ``val`` lets one anchor count for several classes (``multi_label=True``); minewatch's
  decoder takes each anchor's best class only, as at run time.
* Resizing: minewatch letterboxes images with INTER_AREA when shrinking (video frames: swscale's area
  filter straight from YUV), Ultralytics with INTER_LINEAR. Both pad a dynamic model's input only to the
  stride (rectangular input); ``val`` pads to shapes shared by a batch of similar aspect ratios.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.config import DetectorConfig
from pipeline.errors import UserError
from pipeline.eval.boxmetrics import BoxEvaluator
from pipeline.eval.labels import LabelledImage
from pipeline.types import CLASSES, Detections


@dataclass(frozen=True, slots=True)
class UltralyticsFigures:
    ap50: dict[str, float]  # minewatch class name → AP50
    ap50_95: dict[str, float]
    map50: float
    map50_95: float
    #: val's own labels and predictions per image (network-input pixels, minewatch class ids), when captured
    evaluator: BoxEvaluator | None = None


def ultralytics_ap_same_predictions(evaluator: BoxEvaluator) -> UltralyticsFigures:
    """Ultralytics' own matching (``match_predictions``) and AP (``ap_per_class``) on the SAME boxes that
    pycocotools scored: isolates the metric implementations from everything upstream."""
    try:
        import torch
        from ultralytics.models.yolo.detect import DetectionValidator
        from ultralytics.utils.metrics import ap_per_class, box_iou
    except ImportError as exc:
        raise UserError("ultralytics", None, "the [train] extra (pip install -e .[train])", exc) from None
    validator = DetectionValidator()
    tps, confs, pred_cls, target_cls = [], [], [], []
    for gt_xyxy, gt_cls, det in evaluator.per_image():
        order = np.argsort(-det.score, kind="stable")[: evaluator.max_dets]
        det = det.subset(order)
        target_cls.append(gt_cls)
        confs.append(det.score.astype(np.float64))
        pred_cls.append(det.class_id.astype(np.int64))
        if len(det) == 0:
            tps.append(np.zeros((0, 10), bool))
            continue
        if gt_xyxy.shape[0] == 0:
            tps.append(np.zeros((len(det), 10), bool))
            continue
        iou = box_iou(torch.from_numpy(gt_xyxy).float(), torch.from_numpy(det.xyxy).float())
        correct = validator.match_predictions(torch.from_numpy(det.class_id.astype(np.int64)),
                                              torch.from_numpy(gt_cls), iou)
        tps.append(correct.numpy())
    result = ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(pred_cls),
                          np.concatenate(target_cls))
    ap, classes = result[5], result[6]
    names = evaluator.class_names
    ap50 = {names[int(k)]: float(ap[i, 0]) for i, k in enumerate(classes)}
    ap_all = {names[int(k)]: float(ap[i].mean()) for i, k in enumerate(classes)}
    return UltralyticsFigures(ap50=ap50, ap50_95=ap_all, map50=float(np.mean(list(ap50.values()) or [0.0])),
                              map50_95=float(np.mean(list(ap_all.values()) or [0.0])))


def _parse_names_meta(raw: str) -> dict[int, str]:
    """The ``names`` metadata of an Ultralytics ONNX export (a dict literal)."""
    import ast

    value = ast.literal_eval(raw)
    return {int(k): str(v) for k, v in (value.items() if isinstance(value, dict) else enumerate(value))}


def _model_ids_for_ours(cfg: DetectorConfig, model_names: dict[int, str]) -> dict[int, int]:
    """minewatch class id → the model's class id (the one model class that class_map sends there)."""
    out: dict[int, int] = {}
    for model_id, name in model_names.items():
        ours = cfg.class_map.get(name)
        if ours is None:
            continue
        k = CLASSES.index(ours)
        if k in out:
            raise UserError("config", "detector.class_map", "one model class per minewatch class for the"
                            " Ultralytics cross-check", f"{model_names[out[k]]} and {name} → {ours}")
        out[k] = model_id
    return out


def write_ultralytics_dataset(
    items: Sequence[LabelledImage], ours_to_model: dict[int, int], model_names: dict[int, str], root: Path
) -> Path:
    """Link the images and write their labels in the model's class ids; returns the data.yaml."""
    images_dir, labels_dir = root / "images" / "val", root / "labels" / "val"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir(parents=True)
    for i, it in enumerate(items):
        name = f"{i:06d}"
        os.symlink(it.image.resolve(), images_dir / f"{name}{it.image.suffix.lower()}")
        lines = []
        for (cx, cy, w, h), k in zip(it.labels.cxcywh_norm, it.labels.class_id, strict=True):
            if int(k) not in ours_to_model:
                continue  # a class the model cannot predict: left out on both sides (see evaluate_subset)
            lines.append(f"{ours_to_model[int(k)]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        (labels_dir / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/val", "val": "images/val",
                                    "names": {int(k): v for k, v in model_names.items()}}))
    return data


def ultralytics_val(
    cfg: DetectorConfig, items: Sequence[LabelledImage], model_names: dict[int, str], imgsz: int, workdir: Path
) -> UltralyticsFigures:
    """Ultralytics' ``val`` of the ONNX model on ``items``: AP per minewatch class."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise UserError("ultralytics", None, "the [train] extra (pip install -e .[train])", exc) from None
    ours_to_model = _model_ids_for_ours(cfg, model_names)
    root = Path(tempfile.mkdtemp(prefix="ultra-val-", dir=workdir))
    data = write_ultralytics_dataset(items, ours_to_model, model_names, root)
    from ultralytics.models.yolo.detect import DetectionValidator

    evaluator = BoxEvaluator()
    to_ours = {m: k for k, m in ours_to_model.items()}

    class CapturingValidator(DetectionValidator):
        """val's own predictions and labels, as its metric sees them (network-input pixels)."""

        def update_metrics(self, preds: Any, batch: Any) -> None:
            for si, pred in enumerate(preds):
                pb = self._prepare_batch(si, batch)
                pn = self._prepare_pred(pred)
                h, w = (int(v) for v in pb["imgsz"])
                gt_cls = pb["cls"].cpu().numpy().astype(int)
                pred_cls = pn["cls"].cpu().numpy().astype(int)
                keep = np.array([int(c) in to_ours for c in pred_cls], bool)
                evaluator.add(
                    (w, h), pb["bboxes"].cpu().numpy().reshape(-1, 4),
                    np.array([to_ours.get(int(c), -1) for c in gt_cls], np.int32),
                    Detections(pn["bboxes"].cpu().numpy().reshape(-1, 4)[keep].astype(np.float32),
                               pn["conf"].cpu().numpy()[keep].astype(np.float32),
                               np.array([to_ours[int(c)] for c in pred_cls[keep]], np.int32)),
                )
            super().update_metrics(preds, batch)

    model = YOLO(str(cfg.model_path), task="detect")
    try:
        result = model.val(
            validator=CapturingValidator, data=str(data), imgsz=imgsz, batch=1, conf=0.001,
            iou=cfg.iou_threshold, max_det=300, device="cpu", plots=False, verbose=False, save_json=False,
            project=str(root / "runs"), name="val", workers=0, rect=False,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    box = result.box
    model_to_ours = {m: k for k, m in ours_to_model.items()}
    ap50: dict[str, float] = {}
    ap: dict[str, float] = {}
    for i, model_id in enumerate(box.ap_class_index):
        ours = model_to_ours.get(int(model_id))
        if ours is None:
            continue
        ap50[CLASSES[ours]] = float(box.ap50[i])
        ap[CLASSES[ours]] = float(box.ap[i])
    return UltralyticsFigures(ap50=ap50, ap50_95=ap, map50=float(box.map50), map50_95=float(box.map),
                              evaluator=evaluator)

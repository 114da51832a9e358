"""Pseudo-labels from a pretrained (COCO) model, so that fine-tuning keeps what it already knew.

Our real data labels excavators, fire and smoke only; trucks and people in those
images are unlabelled, and training on them as background would teach the model
to forget COCO's trucks and people. Here the COCO model labels them instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.boxes import iou_matrix, xywh_to_xyxy
from pipeline.train.dataset import Item
from pipeline.types import CLASS_INDEX

#: COCO-80 class name → minewatch class kept by pseudo-labelling
COCO_KEEP: dict[str, str] = {"truck": "truck", "person": "person"}


def overlaps_a_label(
    box_xywh: tuple[float, float, float, float], rows: Sequence[tuple[int, float, float, float, float]], max_iou: float
) -> bool:
    """Does a normalised centre/size box overlap one of the label rows ``(class, cx, cy, w, h)`` by > ``max_iou``?"""
    labels_xywh = np.asarray([row[1:] for row in rows], np.float64).reshape(-1, 4)
    box_xyxy = xywh_to_xyxy(np.asarray([box_xywh], np.float64))
    return bool((iou_matrix(box_xyxy, xywh_to_xyxy(labels_xywh)) > max_iou).any())


def add_pseudo_labels(
    items: Sequence[Item],
    weights: Path,
    conf: float = 0.5,
    imgsz: int = 640,
    keep: dict[str, str] | None = None,
    max_iou_with_labels: float = 0.3,
) -> dict[str, int]:
    """Add the pretrained model's boxes of ``keep`` classes to every item (in place); returns counts added.

    A pseudo box overlapping an existing label by more than ``max_iou_with_labels`` is skipped: COCO
    calls many excavators "truck", and the human label wins.
    """
    from ultralytics import YOLO  # torch: only in pipeline.train

    keep = dict(COCO_KEEP if keep is None else keep)
    model = YOLO(str(weights))
    names: dict[int, str] = dict(model.names)
    wanted = {i: CLASS_INDEX[keep[n]] for i, n in names.items() if n in keep}
    added = dict.fromkeys(keep.values(), 0)
    batch = 16
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        results = model.predict(
            [str(it.image) for it in chunk], imgsz=imgsz, conf=conf, classes=sorted(wanted), verbose=False
        )
        for it, res in zip(chunk, results, strict=True):
            boxes: Any = res.boxes  # type: ignore[union-attr]
            xywhn = np.asarray(boxes.xywhn.cpu().numpy(), np.float64)
            cls = np.asarray(boxes.cls.cpu().numpy()).astype(int)
            for (cx, cy, w, h), c in zip(xywhn, cls, strict=True):
                box = (float(cx), float(cy), float(w), float(h))
                if overlaps_a_label(box, it.rows, max_iou_with_labels):
                    continue
                target = wanted[int(c)]
                it.rows.append((target, *box))
                added[keep[names[int(c)]]] += 1
    return added

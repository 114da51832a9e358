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

from pipeline.train.dataset import Item
from pipeline.types import CLASS_INDEX

#: COCO-80 class name → minewatch class kept by pseudo-labelling
COCO_KEEP: dict[str, str] = {"truck": "truck", "person": "person"}


def _iou_xywh(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


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
                if any(_iou_xywh(box, row[1:]) > max_iou_with_labels for row in it.rows):
                    continue
                target = wanted[int(c)]
                it.rows.append((target, *box))
                added[keep[names[int(c)]]] += 1
    return added

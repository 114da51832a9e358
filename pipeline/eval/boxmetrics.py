"""Box metrics (AP50, AP50-95, precision/recall at the configured thresholds) by pycocotools.

The matching and the averaging are pycocotools' own (``COCOeval``), the reference implementation of the
COCO detection metric: 10 IoU thresholds 0.50:0.05:0.95, 101 recall points, greedy matching by score. Only
the "all areas" range is evaluated, and up to ``max_dets`` detections per image are kept (Ultralytics'
``val`` keeps 300; COCO's own default is 100).

Precision and recall "at the configured thresholds" count, per class, the detections whose score is at or
above that class's threshold in ``detector.score_threshold`` and match them to labelled boxes at IoU ≥ 0.5
with the same COCOeval matching.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.types import CLASSES, Detections

#: object height bins in source-frame pixels (label boxes; a detection is binned by its own height):
#: [lo, hi) each
HEIGHT_BINS_PX: tuple[tuple[str, float, float], ...] = (
    ("<16", 0.0, 16.0), ("16–32", 16.0, 32.0), ("32–64", 32.0, 64.0), ("64–128", 64.0, 128.0),
    ("≥128", 128.0, 1e9),
)
#: COCOeval treats an area range as closed [lo, hi]; ranges end just below the next bin's start
_BIN_EPS = 1e-6

#: recall points of the COCO metric (0, 0.01, …, 1.0)
RECALL_POINTS: NDArray[np.float64] = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True, slots=True)
class ClassBoxMetrics:
    """Figures of one class. ``ap50``/``ap50_95`` are None when the class has no labelled box."""

    name: str
    n_labels: int  # labelled boxes
    n_detections: int  # detections of any score handed to the metric
    ap50: float | None
    ap50_95: float | None
    threshold: float  # the configured score threshold of this class
    precision: float | None  # at the threshold, IoU ≥ 0.5; None when nothing is detected above it
    recall: float | None  # at the threshold, IoU ≥ 0.5; None without labels
    tp: int  # at the threshold, IoU ≥ 0.5
    fp: int
    pr_precision: list[float] = field(default_factory=list)  # interpolated precision at RECALL_POINTS, IoU 0.5
    #: per height bin (HEIGHT_BINS_PX label): {"n_labels", "ap50", "recall"} (AP/recall None without labels)
    by_height: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "n_labels": self.n_labels,
            "n_detections": self.n_detections,
            "ap50": self.ap50,
            "ap50_95": self.ap50_95,
            "threshold": self.threshold,
            "precision": self.precision,
            "recall": self.recall,
            "tp": self.tp,
            "fp": self.fp,
            "by_height_px": self.by_height,
        }


@dataclass(frozen=True, slots=True)
class BoxMetrics:
    """Per-class figures and their means over the classes that have labels."""

    classes: dict[str, ClassBoxMetrics]
    n_images: int
    max_dets: int

    @property
    def labelled(self) -> list[ClassBoxMetrics]:
        return [c for c in self.classes.values() if c.ap50 is not None]

    @property
    def map50(self) -> float | None:
        values = [c.ap50 for c in self.labelled if c.ap50 is not None]
        return float(np.mean(values)) if values else None

    @property
    def map50_95(self) -> float | None:
        values = [c.ap50_95 for c in self.labelled if c.ap50_95 is not None]
        return float(np.mean(values)) if values else None

    def as_dict(self) -> dict[str, object]:
        return {
            "n_images": self.n_images,
            "max_dets": self.max_dets,
            "map50": self.map50,
            "map50_95": self.map50_95,
            "classes": {name: c.as_dict() for name, c in self.classes.items()},
            "pr_curves_iou50": {
                "recall": [float(r) for r in RECALL_POINTS],
                **{name: c.pr_precision for name, c in self.classes.items() if c.pr_precision},
            },
        }


class BoxEvaluator:
    """Collects labelled and detected boxes image by image, then scores them with pycocotools.

    ``class_ids`` are indices into ``class_names`` (minewatch CLASSES by default) for both labels and
    detections.
    """

    def __init__(self, class_names: Sequence[str] = CLASSES, max_dets: int = 300) -> None:
        self.class_names = tuple(class_names)
        self.max_dets = max_dets
        self._images: list[dict[str, object]] = []
        self._gts: list[tuple[int, int, float, float, float, float]] = []  # image_id, class, x1, y1, x2, y2
        self._dts: list[list[float]] = []  # [image_id, x, y, w, h, score, category_id]

    def __len__(self) -> int:
        return len(self._images)

    def add(
        self,
        image_wh: tuple[int, int],
        gt_xyxy: NDArray[np.floating],
        gt_class_id: NDArray[np.integer],
        det: Detections,
    ) -> int:
        """Add one image: its labelled boxes (pixels, xyxy) and the detector's output. Returns its id."""
        image_id = len(self._images) + 1
        self._images.append({"id": image_id, "width": int(image_wh[0]), "height": int(image_wh[1])})
        gt_xyxy = np.asarray(gt_xyxy, np.float64).reshape(-1, 4)
        for (x1, y1, x2, y2), cls in zip(gt_xyxy, np.asarray(gt_class_id).reshape(-1), strict=True):
            self._gts.append((image_id, int(cls), float(x1), float(y1), float(x2), float(y2)))
        for (x1, y1, x2, y2), score, cls in zip(det.xyxy, det.score, det.class_id, strict=True):
            self._dts.append(
                [image_id, float(x1), float(y1), float(x2 - x1), float(y2 - y1), float(score), int(cls) + 1]
            )
        return image_id

    def per_image(self) -> list[tuple[NDArray[np.float64], NDArray[np.int64], Detections]]:
        """Per image: labelled boxes (xyxy), their class ids, and the detections, as added."""
        out: list[tuple[list[list[float]], list[int], list[list[float]]]] = [([], [], []) for _ in self._images]
        for image_id, cls, x1, y1, x2, y2 in self._gts:
            out[image_id - 1][0].append([x1, y1, x2, y2])
            out[image_id - 1][1].append(cls)
        for d in self._dts:
            out[int(d[0]) - 1][2].append(d[1:])
        result = []
        for gt_xyxy, gt_cls, rows in out:
            arr = np.asarray(rows, np.float64).reshape(-1, 6)
            det = Detections(
                np.stack([arr[:, 0], arr[:, 1], arr[:, 0] + arr[:, 2], arr[:, 1] + arr[:, 3]], 1).astype(np.float32),
                arr[:, 4].astype(np.float32),
                (arr[:, 5] - 1).astype(np.int32),
            )
            result.append((np.asarray(gt_xyxy, np.float64).reshape(-1, 4), np.asarray(gt_cls, np.int64), det))
        return result

    def compute(self, thresholds: Mapping[str, float] | None = None) -> BoxMetrics:
        """Run COCOeval; ``thresholds`` (class name → score) give precision/recall at the operating point."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        thresholds = dict(thresholds or {})
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]
        gt = COCO()
        annotations = [
            {"id": i + 1, "image_id": image_id, "category_id": cls + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
             "area": y2 - y1, "iscrowd": 0}  # "area" holds the HEIGHT: COCOeval's area ranges bin by height
            for i, (image_id, cls, x1, y1, x2, y2) in enumerate(self._gts)
        ]
        gt.dataset = {"images": self._images, "annotations": annotations, "categories": categories}
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            gt.createIndex()
            dt = gt.loadRes(np.asarray(self._dts, np.float64)) if self._dts else COCO()
            for ann in dt.dataset.get("annotations", []):
                ann["area"] = ann["bbox"][3]  # height, as for the labels
            if not self._dts:
                dt.dataset = {"images": self._images, "annotations": [], "categories": categories}
                dt.createIndex()
            coco_eval = COCOeval(gt, dt, iouType="bbox")
            coco_eval.params.areaRng = [[0.0, 1e12]] + [[lo, hi - _BIN_EPS] for _, lo, hi in HEIGHT_BINS_PX]
            coco_eval.params.areaRngLbl = ["all"] + [label for label, _, _ in HEIGHT_BINS_PX]
            coco_eval.params.maxDets = [self.max_dets]
            coco_eval.evaluate()
            coco_eval.accumulate()
        precision = coco_eval.eval["precision"]  # (T, R, K, A=1+bins, M=1)
        n_labels = np.bincount(np.array([g[1] for g in self._gts], np.int64), minlength=len(self.class_names))
        n_dets = np.bincount(
            np.array([int(d[6]) - 1 for d in self._dts], np.int64), minlength=len(self.class_names)
        )
        per_image = _per_image_matches(coco_eval, len(self.class_names))
        heights = _height_bins(coco_eval, len(self.class_names), thresholds, self.class_names)
        classes: dict[str, ClassBoxMetrics] = {}
        for k, name in enumerate(self.class_names):
            thr = float(thresholds.get(name, 0.0))
            has_labels = bool(n_labels[k] > 0)
            ap50: float | None = None
            ap: float | None = None
            curve: list[float] = []
            if has_labels:
                p50 = precision[0, :, k, 0, 0]
                ap50 = float(np.mean(np.where(p50 > -1, p50, 0.0)))
                p_all = precision[:, :, k, 0, 0]
                ap = float(np.mean(np.where(p_all > -1, p_all, 0.0)))
                curve = [float(max(v, 0.0)) for v in p50]
            scores, matched = per_image[k]
            above = scores >= thr
            tp = int(np.count_nonzero(matched & above))
            fp = int(np.count_nonzero(~matched & above))
            classes[name] = ClassBoxMetrics(
                name=name,
                n_labels=int(n_labels[k]),
                n_detections=int(n_dets[k]),
                ap50=ap50,
                ap50_95=ap,
                threshold=thr,
                precision=tp / (tp + fp) if tp + fp else None,
                recall=tp / int(n_labels[k]) if has_labels else None,
                tp=tp,
                fp=fp,
                pr_precision=curve,
                by_height=heights[k],
            )
        return BoxMetrics(classes=classes, n_images=len(self._images), max_dets=self.max_dets)


def _per_image_matches(
    coco_eval: object, n_classes: int
) -> list[tuple[NDArray[np.float64], NDArray[np.bool_]]]:
    """Per class: scores of the kept detections and whether each matched a label at IoU 0.5."""
    out: list[tuple[list[float], list[bool]]] = [([], []) for _ in range(n_classes)]
    for entry in getattr(coco_eval, "evalImgs", []):
        if entry is None or entry["aRng"][1] < 1e11:  # the "all" range only
            continue
        k = int(entry["category_id"]) - 1
        scores = np.asarray(entry["dtScores"], np.float64)
        matches = np.asarray(entry["dtMatches"])[0] > 0 if len(scores) else np.zeros(0, bool)
        ignore = np.asarray(entry["dtIgnore"])[0].astype(bool) if len(scores) else np.zeros(0, bool)
        out[k][0].extend(scores[~ignore].tolist())
        out[k][1].extend(matches[~ignore].tolist())
    return [(np.asarray(s, np.float64), np.asarray(m, bool)) for s, m in out]


def _height_bins(
    coco_eval: Any, n_classes: int, thresholds: Mapping[str, float], names: Sequence[str]
) -> list[dict[str, dict[str, float | int | None]]]:
    """Per class, per height bin: labels, AP50 (COCOeval on that range) and recall at the class threshold."""
    precision = coco_eval.eval["precision"]
    counts = [[0] * len(HEIGHT_BINS_PX) for _ in range(n_classes)]
    found = [[0] * len(HEIGHT_BINS_PX) for _ in range(n_classes)]
    for entry in coco_eval.evalImgs:
        if entry is None or entry["aRng"][1] >= 1e11:
            continue
        b = next(i for i, (_, lo, _hi) in enumerate(HEIGHT_BINS_PX) if entry["aRng"][0] == lo)
        k = int(entry["category_id"]) - 1
        thr = float(thresholds.get(names[k], 0.0))
        score_of = dict(zip(entry["dtIds"], entry["dtScores"], strict=True))
        ignore = np.asarray(entry["gtIgnore"], bool)
        matched = np.asarray(entry["gtMatches"])[0] if len(ignore) else np.zeros(0)
        for g, m in enumerate(matched):
            if ignore[g]:
                continue
            counts[k][b] += 1
            if m > 0 and score_of.get(int(m), -1.0) >= thr:
                found[k][b] += 1
    out: list[dict[str, dict[str, float | int | None]]] = []
    for k in range(n_classes):
        per: dict[str, dict[str, float | int | None]] = {}
        for b, (label, _, _) in enumerate(HEIGHT_BINS_PX):
            n = counts[k][b]
            p50 = precision[0, :, k, b + 1, 0]
            per[label] = {"n_labels": n,
                          "ap50": float(np.mean(np.where(p50 > -1, p50, 0.0))) if n else None,
                          "recall": found[k][b] / n if n else None}
        out.append(per)
    return out

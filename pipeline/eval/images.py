"""Box metrics of the daemon's detector on a folder of YOLO-labelled images (``minewatch eval images``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from pipeline.config import Config, DetectorConfig
from pipeline.errors import UserError
from pipeline.eval.boxmetrics import BoxEvaluator, BoxMetrics
from pipeline.eval.hookup import SCORE_FLOOR, make_detector, thresholds_by_name
from pipeline.eval.labels import LabelledImage, load_image_dataset
from pipeline.types import Detections, Frame, Pose


@dataclass(slots=True)
class ImageEvalResult:
    metrics: BoxMetrics
    n_images: int
    names: list[str]  # the data set's class names
    inference_s: float
    wall_s: float
    model: str
    input_size_px: int
    provider: str
    model_names: dict[int, str]  # the model's own class names

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": "images",
            "model": self.model,
            "input_size_px": self.input_size_px,
            "provider": self.provider,
            "dataset_names": self.names,
            "boxes": self.metrics.as_dict(),
            "throughput": {
                "images": self.n_images,
                "wall_s": self.wall_s,
                "images_per_s": self.n_images / self.wall_s if self.wall_s > 0 else None,
                "inference_share": self.inference_s / self.wall_s if self.wall_s > 0 else None,
            },
        }


def config_path_runner(config: Config) -> Callable[[Any, list[NDArray[np.uint8]]], list[Detections]]:
    """The daemon's whole inference path for the FIRST camera of ``config`` (its tiling and zone tiles, with
    the camera's configured pose and zones), as a function of (detector, images)."""
    from pipeline.analyzer import Analyzer
    from pipeline.eval.hookup import load_zones, make_path

    if not config.cameras:
        raise UserError("config", "cameras", "at least one camera (its inference path is evaluated)", "none")
    cam = config.cameras[0]
    zones = load_zones(config)
    analyzer = Analyzer(config.model_copy(update={"cameras": [cam]}), zones)
    path = make_path(config.model_copy(update={"cameras": [cam]}), analyzer, zones)
    pose = Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg, None)

    def run(detector: Any, images: list[NDArray[np.uint8]]) -> list[Detections]:
        frames = [Frame(cam.id, k, 0.0, img, pose) for k, img in enumerate(images)]
        return path.run(detector, frames)

    return run


def evaluate_images(
    cfg: DetectorConfig,
    items: Sequence[LabelledImage],
    names: Sequence[str],
    batch: int = 1,
    progress: bool = True,
    score_floor: float = SCORE_FLOOR,
    config: Config | None = None,
) -> ImageEvalResult:
    """Run the detector on every image and score it with pycocotools.

    With ``config``, each image goes through the daemon's whole inference path of its first camera
    (:func:`config_path_runner`: whole frame, tiles, zone tiles), else straight through the detector."""
    detector = make_detector(cfg, score_floor)
    runner = config_path_runner(config) if config is not None else None
    evaluator = BoxEvaluator()
    t0 = time.perf_counter()
    infer_s = 0.0
    bar = tqdm(total=len(items), unit="img", desc="eval images", disable=not progress)
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        images = []
        for it in chunk:
            img = cv2.imread(str(it.image), cv2.IMREAD_COLOR)
            if img is None:
                raise UserError(str(it.image), None, "a readable image", "cv2 could not decode it")
            images.append(np.asarray(img, np.uint8))
        t1 = time.perf_counter()
        dets = runner(detector, images) if runner is not None else detector.detect(images)
        infer_s += time.perf_counter() - t1
        for it, img, det in zip(chunk, images, dets, strict=True):
            wh = (int(img.shape[1]), int(img.shape[0]))
            evaluator.add(wh, it.labels.xyxy_px(wh), it.labels.class_id, det)
        bar.update(len(chunk))
    bar.close()
    wall = time.perf_counter() - t0
    metrics = evaluator.compute(thresholds_by_name(cfg.score_threshold))
    return ImageEvalResult(
        metrics=metrics,
        n_images=len(items),
        names=list(names),
        inference_s=infer_s,
        wall_s=wall,
        model=str(cfg.model_path),
        input_size_px=detector.input_size_px,
        provider=detector.provider,
        model_names=dict(detector.names),
    )


def evaluate_image_folder(
    cfg: DetectorConfig, data: Path, names: Sequence[str] | None = None, progress: bool = True, batch: int = 1,
    config: Config | None = None,
) -> ImageEvalResult:
    items, dataset_names = load_image_dataset(data, names)
    return evaluate_images(cfg, items, dataset_names, batch=batch, progress=progress, config=config)

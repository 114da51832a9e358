"""Hard-example harvesting: keep the frames a model should learn from, with its boxes as YOLO labels.

The loop: harvest → a person corrects the labels in any YOLO labelling tool → ``minewatch train
--data <harvest dir>`` → ``minewatch eval`` → deploy the new ONNX.

Rules (``harvest:`` in cameras.yaml), checked in this order for every analysed frame:

- ``alert``: the frame raised a new alert (true alarms teach, false alarms teach more);
- ``low_score``: a detection scored between ``low_score_min`` and its class threshold (the model
  hesitated); the detector must be asked for scores that low (``OnnxDetector.detect(…, score_floor=…)``);
- ``sample``: one frame per camera and preset every ``sample_every_s`` (ordinary background).

Every saved frame gets ``images/<camera>__<preset>__<UTC time>_<seq>.jpg`` and ``labels/<same>.txt``
with ALL its boxes down to ``low_score_min`` (review every file: delete the wrong ones, draw the
missed ones), plus a line in ``harvest.jsonl`` with rule and scores. ``classes.txt`` names the
classes, so the folder is a ready ``minewatch train --data`` source; the ``camera__preset`` prefix
makes ``train`` split by camera preset, never frame by frame. Runs on the analysis thread.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.config import HarvestConfig, ScoreThresholds
from pipeline.logs import get_logger
from pipeline.types import CLASSES, AlertEvent, Detections, Frame

log = get_logger("harvest")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

LICENCE_TEXT = (
    "Frames recorded by minewatch on the operator's own cameras; the operator owns them. "
    "Labels are model predictions until a person has reviewed them.\n"
)


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-") or "x"


def yolo_lines(dets: Detections, image_wh: tuple[int, int]) -> list[str]:
    """``class cx cy w h`` (normalised to the image) per box."""
    w, h = image_wh
    xyxy = np.clip(dets.xyxy.astype(np.float64), 0, [w, h, w, h])
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
    bw = (xyxy[:, 2] - xyxy[:, 0]) / w
    bh = (xyxy[:, 3] - xyxy[:, 1]) / h
    return [
        f"{int(c)} {x:.6f} {y:.6f} {ww:.6f} {hh:.6f}"
        for c, x, y, ww, hh in zip(dets.class_id, cx, cy, bw, bh, strict=True)
        if ww > 0 and hh > 0
    ]


class Harvester:
    """Decides per frame whether to save it, and saves it (JPEG + YOLO labels + a JSONL record)."""

    def __init__(self, cfg: HarvestConfig, thresholds: ScoreThresholds) -> None:
        self.cfg = cfg
        self.dir = Path(cfg.dir)
        self._thr = np.array(thresholds.as_array(), np.float32)  # per minewatch class
        self._last: dict[tuple[str, str, str], float] = {}  # (camera, preset, rule) → time saved
        self.counts: dict[str, int] = {"alert": 0, "low_score": 0, "sample": 0, "skipped_full": 0}
        self._n_images = 0
        self._full_logged = False
        if cfg.enabled:
            (self.dir / "images").mkdir(parents=True, exist_ok=True)
            (self.dir / "labels").mkdir(parents=True, exist_ok=True)
            classes = self.dir / "classes.txt"
            if not classes.exists():
                classes.write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
            licence = self.dir / "licence.txt"
            if not licence.exists():
                licence.write_text(LICENCE_TEXT, encoding="utf-8")
            self._n_images = sum(1 for _ in (self.dir / "images").glob("*.jpg"))

    def rule_for(self, frame: Frame, dets: Detections, events: Sequence[AlertEvent], now_s: float) -> str | None:
        """The first rule that wants this frame now (rate limits applied), or None."""
        cfg = self.cfg
        preset = frame.pose.preset or "fixed"
        wanted: list[str] = []
        if cfg.on_alert and any(e.type == "new" and e.camera_id == frame.camera_id for e in events):
            wanted.append("alert")
        if cfg.low_score and len(dets):
            low = (dets.score >= cfg.low_score_min) & (dets.score < self._thr[dets.class_id])
            if low.any():
                wanted.append("low_score")
        for rule in wanted:
            last = self._last.get((frame.camera_id, preset, rule))
            if last is None or now_s - last >= cfg.min_interval_s:
                return rule
        if cfg.sample_every_s > 0:
            last = self._last.get((frame.camera_id, preset, "sample"))
            if last is None or now_s - last >= cfg.sample_every_s:
                return "sample"
        return None

    def consider(
        self, frame: Frame, dets: Detections, events: Sequence[AlertEvent] = (), now_s: float | None = None
    ) -> Path | None:
        """Save ``frame`` when a rule wants it; returns the image path written, or None."""
        if not self.cfg.enabled:
            return None
        now_s = time.time() if now_s is None else now_s
        rule = self.rule_for(frame, dets, events, now_s)
        if rule is None:
            return None
        if self._n_images >= self.cfg.max_images:
            self.counts["skipped_full"] += 1
            if not self._full_logged:
                log.warning("harvest folder %s holds %d images (max_images): saving no more", self.dir,
                            self._n_images)
                self._full_logged = True
            return None
        preset = frame.pose.preset or "fixed"
        self._last[(frame.camera_id, preset, rule)] = now_s
        return self._save(frame, dets, rule, preset)

    def _save(self, frame: Frame, dets: Detections, rule: str, preset: str) -> Path | None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(frame.t_capture))
        stem = f"{_safe(frame.camera_id)}__{_safe(preset)}__{stamp}_{frame.seq:06d}"
        image_path = self.dir / "images" / f"{stem}.jpg"
        keep = dets.score >= self.cfg.low_score_min
        shown = dets.subset(keep)
        ok = cv2.imwrite(str(image_path), frame.image_bgr, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            log.warning("could not write %s (disk full or folder gone?)", image_path)
            return None
        label_path = self.dir / "labels" / f"{stem}.txt"
        tmp = label_path.with_suffix(".tmp")
        lines = yolo_lines(shown, frame.wh)
        tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        tmp.replace(label_path)
        record = {
            "file": image_path.name, "camera": frame.camera_id, "preset": preset, "rule": rule,
            "t_capture": frame.t_capture, "seq": frame.seq,
            "boxes": [
                {"class": CLASSES[int(c)], "score": round(float(s), 4), "xyxy": [round(float(v), 1) for v in b],
                 "below_threshold": bool(s < self._thr[int(c)])}
                for b, s, c in zip(shown.xyxy, shown.score, shown.class_id, strict=True)
            ],
        }
        with open(self.dir / "harvest.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        self._n_images += 1
        self.counts[rule] += 1
        log.info("harvested %s (%s, %d boxes)", image_path.name, rule, len(shown))
        return image_path

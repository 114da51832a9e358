"""``minewatch eval --config … --footage … --labels …``: every clip through the pipeline, then the figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.config import Config
from pipeline.eval.alerts import evaluate_alerts
from pipeline.eval.boxmetrics import BoxEvaluator
from pipeline.eval.footage import ClipOutcome, Timing, analysed_label_coverage, plan_clips, run_clip
from pipeline.eval.hookup import SCORE_FLOOR, load_zones, make_detector
from pipeline.types import CLASSES


def evaluate_footage(
    config: Config,
    footage: Path,
    labels: Path,
    names: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    gap_s: float = 1.0,
    grace_s: float = 2.0,
    match_iou: float = 0.1,
    progress: bool = True,
    score_floor: float = SCORE_FLOOR,
) -> dict[str, Any]:
    """Run the clips and return the report dict (every figure; see pipeline.eval.report)."""
    plans = plan_clips(config, footage, labels, names, only)
    detector = make_detector(config.detector, score_floor)
    zones = load_zones(config)
    boxes = BoxEvaluator()
    outcomes: list[ClipOutcome] = []
    total = sum(int(p.n_frames * min(1.0, p.camera.analysis_fps / p.fps) + 0.999) for p in plans)
    with tqdm(total=total, unit="frame", desc="eval", disable=not progress) as bar:
        for plan in plans:
            bar.set_postfix_str(plan.path.name)
            outcomes.append(run_clip(plan, config, zones, detector, boxes, on_frame=lambda: bar.update(1)))
    timing = Timing()
    for o in outcomes:
        timing.add(o.timing)
    box_metrics = boxes.compute({c: config.detector.score_threshold.for_class(c) for c in CLASSES})
    matching = evaluate_alerts([o.result for o in outcomes], gap_s=gap_s, grace_s=grace_s, match_iou=match_iou)
    events = [
        {
            "clip": ev.clip,
            "class": CLASSES[ev.class_id],
            "first_index": ev.first_index,
            "last_index": ev.last_index,
            "t_start_s": ev.t_start_s,
            "duration_s": ev.duration_s,
            "labelled_frames": ev.n_frames,
            "alert_id": alert.alert_id if alert else None,
            "time_to_alert_s": tta,
        }
        for ev, alert, tta in matching.events
    ]
    false_alerts = [
        {"clip": a.clip, "alert_id": a.alert_id, "class": CLASSES[a.class_id], "t_new_s": a.t_new_s,
         "frame_index": a.index_new, "xyxy": list(a.xyxy_new)}
        for a in matching.false_alerts
    ]
    clips = [
        {
            "name": o.plan.path.stem,
            "file": str(o.plan.path),
            "camera_id": o.plan.camera.id,
            "fps": o.plan.fps,
            "analysis_fps": o.plan.camera.analysis_fps,
            "frames": o.plan.n_frames,
            "duration_s": o.plan.duration_s,
            "analysed_frames": o.timing.frames,
            "label_coverage": analysed_label_coverage(o),
            "alerts_new": o.n_events_out.get("new", 0),
            "messages": dict(o.n_events_out),
            "frames_per_s": o.timing.frames / o.timing.wall_s if o.timing.wall_s > 0 else None,
        }
        for o in outcomes
    ]
    return {
        "schema": "minewatch.eval/1",
        "kind": "footage",
        "title": f"{len(plans)} clip(s) from {footage}",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": str(config.detector.model_path),
        "input_size_px": detector.input_size_px,
        "provider": detector.provider,
        "score_floor": score_floor,
        "thresholds": {c: config.detector.score_threshold.for_class(c) for c in CLASSES},
        "confirm": {"hits": config.alerts.confirm_hits, "window": config.alerts.confirm_window},
        "zones": len(zones),
        "clips": clips,
        "boxes": box_metrics.as_dict(),
        "alerts": {
            "gap_s": gap_s,
            "grace_s": grace_s,
            "match_iou": match_iou,
            "hours": matching.hours,
            "classes": {name: m.as_dict(matching.hours) for name, m in matching.per_class.items()},
            "events": events,
            "false_alerts": false_alerts,
        },
        "throughput": timing.as_dict(),
        "per_clip_timing": {o.plan.path.stem: asdict(o.timing) for o in outcomes},
    }

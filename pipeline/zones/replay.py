"""``zones test``: recorded footage through the daemon's own chain, as the evaluation runs it
(:mod:`pipeline.eval.hookup`): the daemon's detector at the configured thresholds, tiled where the camera
has ``tiling`` (as the daemon's inference workers run it), then the Analyzer (tracks → ground fixes →
zones and rules → alert events). What comes out is one row per detection (where it was located, which
zones it fell in or near) and one per alert event."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.config import CameraConfig, Config
from pipeline.errors import UserError
from pipeline.types import Pose
from pipeline.zones.model import Zone


@dataclass
class Replay:
    frames: int = 0
    detections: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def replay(config: Config, cam: CameraConfig, pose: Pose, zones: Sequence[Zone], terrain: Any, footage: Path,
           fps: float, max_frames: int, t0: float, near_m: float) -> Replay:
    """Every ``1/fps`` s of ``footage`` as camera ``cam`` at ``pose``, from UTC time ``t0``."""
    from pipeline.analyzer import Analyzer
    from pipeline.detect.onnx_detector import OnnxDetector
    from pipeline.eval.hookup import detect_frame
    from pipeline.types import Frame
    from pipeline.zones.index import ZoneIndex

    only = config.model_copy(update={"cameras": [cam.model_copy(update={"enabled": True})]})
    analyzer = Analyzer(only, zones, terrain)
    detector = OnnxDetector(config.detector)
    index = ZoneIndex(zones, cam.lat, cam.lon)
    out = Replay()
    t_last = t0
    for seq, (t_s, image) in enumerate(footage_frames(footage, fps, max_frames)):
        frame = Frame(cam.id, seq, t0 + t_s, image, pose, t0 + t_s)
        dets = detect_frame(detector, frame, cam, config.detector.iou_threshold)
        fixes = analyzer.locate(frame, dets)
        out.detections += detection_rows(index, zones, t_s, dets, fixes, near_m)
        out.events += [event_row(e) | {"t_s": round(t_s, 3)} for e in analyzer.process(frame, dets)]
        out.frames += 1
        t_last = t0 + t_s
    out.events += [event_row(e) | {"t_s": round(t_last - t0, 3)} for e in analyzer.finish(t_last)]
    return out


def footage_frames(path: Path, fps: float, max_frames: int) -> Iterator[tuple[float, NDArray[np.uint8]]]:
    """(t_s, BGR image) of a video file, taken every 1/fps seconds of its own time (PyAV)."""
    from pipeline.sources.video import decoded_frames, to_bgr

    if not path.is_file():
        raise UserError(str(path), None, "an existing video file", "no such file")
    next_t = 0.0
    taken = 0
    for frame in decoded_frames(str(path), label=str(path)):
        t = float(frame.time) if frame.time is not None else next_t
        if t + 1e-6 < next_t:
            continue
        yield t, to_bgr(frame)
        taken += 1
        next_t = t + 1.0 / fps
        if max_frames and taken >= max_frames:
            return


def detection_rows(
    index: Any, zones: Sequence[Zone], t_s: float, dets: Any, fixes: Sequence[Any], near_m: float
) -> list[dict[str, Any]]:
    """One row per detection: where it was located and which zones it fell in or near (signed distance)."""
    rows = []
    names = dets.class_names()
    for i in range(len(dets)):
        fix = fixes[i] if i < len(fixes) else None
        row: dict[str, Any] = {
            "t_s": round(t_s, 3), "class": names[i], "score": round(float(dets.score[i]), 3),
            "xyxy": [round(float(v), 1) for v in dets.xyxy[i]], "location": None, "zones": [],
        }
        if fix is not None:
            row["location"] = {"lat": round(fix.lat, 7), "lon": round(fix.lon, 7), "range_m": round(fix.range_m, 1),
                               "bearing_deg": round(fix.bearing_deg, 1),
                               "semi_major_m": round(fix.semi_major_m, 1)}
            east, north = index.to_local_m(fix.lat, fix.lon)
            reach = near_m + fix.semi_major_m
            for k in index.query(east, north, reach):
                d = index.signed_distance_m(k, east, north)
                p = index.probability_inside(k, (east, north), fix.cov_en_m2)
                row["zones"].append({"id": zones[k].id, "kind": zones[k].kind, "inside": d > 0,
                                     "distance_to_boundary_m": round(d, 1), "probability_inside": round(p, 3)})
        rows.append(row)
    return rows


def event_row(event: Any) -> dict[str, Any]:
    return {
        "type": event.type, "alert_id": event.alert_id, "class": event.class_name, "rule": event.rule,
        "score": round(float(event.score), 3), "zone": event.zone.id if event.zone else None,
        "distance_to_boundary_m": (None if event.zone is None or event.zone.distance_to_boundary_m is None
                                   else round(event.zone.distance_to_boundary_m, 1)),
        "probability_in_zone": None if event.probability_in_zone is None else round(event.probability_in_zone, 3),
        "t_first": event.t_first, "t_last": event.t_last,
    }

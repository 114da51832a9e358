"""Run the daemon's pipeline over labelled recorded clips and collect what the metrics need.

Each clip plays as one camera through the daemon's own parts (see :mod:`pipeline.eval.hookup`): the file
source (``realtime: false``: as fast as the analysis takes frames, none dropped), the detector, and the
Analyzer (tracks → ground fixes → zones and rules → alert events). Clips run one after the other, each
with a fresh Analyzer (its own tracks and events), so one clip's events never leak into the next.

Time: every figure uses the clip's own clock (the frame timestamps of the file), not the wall clock, so
results do not depend on how fast the machine is. Events that end by time alone are ticked on that clock
once per clip-second, as the daemon does once per wall-second, and open events end at the clip's end.

Frame index of a frame = round((t_capture − t_capture of the first frame) × fps): the file source stamps
frames with the opening time plus the file's timestamp, and its first frame is always handed on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import CameraConfig, Config
from pipeline.errors import UserError
from pipeline.eval.alerts import AlertRecord, ClipResult
from pipeline.eval.boxmetrics import BoxEvaluator
from pipeline.eval.hookup import make_analyzer, make_file_source, make_path
from pipeline.eval.labels import VIDEO_SUFFIXES, ClipLabels, find_clip_labels, load_clip_labels
from pipeline.logs import get_logger
from pipeline.sources.video import open_video
from pipeline.types import CLASS_INDEX, AlertEvent


@dataclass(slots=True)
class ClipPlan:
    path: Path
    camera: CameraConfig
    labels: ClipLabels
    fps: float  # the clip's frame rate (labels' fps, else the container's)
    n_frames: int  # frames in the file (container's count, else the labels')

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


@dataclass(slots=True)
class Timing:
    """Seconds spent on the analysis thread, by stage."""

    wait_decode_s: float = 0.0  # waiting for the reader thread's next decoded frame
    inference_s: float = 0.0  # OnnxDetector.detect
    analysis_s: float = 0.0  # Analyzer.process/tick/finish
    wall_s: float = 0.0
    frames: int = 0

    def add(self, other: Timing) -> None:
        self.wait_decode_s += other.wait_decode_s
        self.inference_s += other.inference_s
        self.analysis_s += other.analysis_s
        self.wall_s += other.wall_s
        self.frames += other.frames

    def as_dict(self) -> dict[str, float | int | None]:
        wall = self.wall_s
        rest = max(0.0, wall - self.wait_decode_s - self.inference_s - self.analysis_s)

        def share(v: float) -> float | None:
            return v / wall if wall > 0 else None

        return {
            "frames": self.frames,
            "wall_s": wall,
            "frames_per_s": self.frames / wall if wall > 0 else None,
            "decode_wait_s": self.wait_decode_s,
            "inference_s": self.inference_s,
            "analysis_s": self.analysis_s,
            "rest_s": rest,
            "decode_share": share(self.wait_decode_s),
            "inference_share": share(self.inference_s),
            "analysis_share": share(self.analysis_s),
            "rest_share": share(rest),
        }


@dataclass(slots=True)
class ClipOutcome:
    plan: ClipPlan
    result: ClipResult
    timing: Timing
    analysed_indices: list[int] = field(default_factory=list)
    n_events_out: dict[str, int] = field(default_factory=dict)  # new/update/end messages


def _camera_id(stem: str) -> str:
    cid = re.sub(r"[^A-Za-z0-9_-]", "-", stem)[:64]
    return cid or "clip"


def _probe(path: Path) -> tuple[float | None, int | None]:
    """(fps, frame count) from the container, without decoding."""
    with open_video(str(path), label=str(path)) as (_, stream):
        fps = float(stream.average_rate) if stream.average_rate else None
        frames = int(stream.frames) if stream.frames else None
        if frames is None and stream.duration is not None and stream.time_base is not None and fps:
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        return fps, frames


def find_clips(footage: Path, only: Sequence[str] | None = None) -> list[Path]:
    """A video file, or the video files of a folder (sorted); ``only`` keeps those stems."""
    if footage.is_file():
        clips = [footage]
    elif footage.is_dir():
        clips = sorted(p for p in footage.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        raise UserError(str(footage), "--footage", "a video file or a folder of them", "no such file or folder")
    if only:
        stems = {p.stem for p in clips}
        missing = [s for s in only if s not in stems]
        if missing:
            raise UserError(str(footage), "--clips", f"names among {', '.join(sorted(stems))}", missing[0])
        clips = [p for p in clips if p.stem in set(only)]
    if not clips:
        raise UserError(str(footage), "--footage", "at least one video (" + ", ".join(VIDEO_SUFFIXES) + ")", "none")
    return clips


def plan_clips(
    config: Config, footage: Path, labels: Path, names: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
) -> list[ClipPlan]:
    """Which camera of ``config`` plays each clip, with its labels and frame rate.

    A camera whose id is the clip's name (file stem) plays it; otherwise the first camera of the config
    is the template (pose, tower position, analysis_fps), renamed after the clip.
    """
    plans: list[ClipPlan] = []
    by_id = {c.id: c for c in config.cameras}
    for clip in find_clips(footage, only):
        cid = _camera_id(clip.stem)
        template = by_id.get(cid, config.cameras[0])
        cam = template.model_copy(update={"id": cid, "source": str(clip), "realtime": False, "loop": False,
                                          "enabled": True})
        clip_labels = load_clip_labels(find_clip_labels(labels, clip), names)
        fps_file, n_file = _probe(clip)
        fps = clip_labels.fps or fps_file
        if not fps:
            raise UserError(str(clip), "fps", "a frame rate in the labels or the container", "none")
        n_frames = n_file or clip_labels.n_frames or 0
        if n_frames <= 0:
            raise UserError(str(clip), "frames", "a clip with frames", 0)
        plans.append(ClipPlan(clip, cam, clip_labels, float(fps), int(n_frames)))
    return plans


def run_clip(
    plan: ClipPlan,
    config: Config,
    zones: Sequence[Any],
    detector: Any,
    boxes: BoxEvaluator,
    on_frame: Callable[[], None] | None = None,
) -> ClipOutcome:
    """Play one clip through source → detector → Analyzer; add its frames to ``boxes``."""
    clip_config = config.model_copy(update={"cameras": [plan.camera]})
    analyzer = make_analyzer(clip_config, zones)
    score_per_class = config.detector.score_threshold.as_array()
    path = make_path(clip_config, analyzer, zones)
    source = make_file_source(plan.camera)
    timing = Timing()
    records: dict[str, AlertRecord] = {}
    counts: dict[str, int] = {"new": 0, "update": 0, "end": 0}
    indices: list[int] = []
    t_origin: float | None = None
    last_t: float | None = None
    next_tick: float | None = None
    wh: tuple[int, int] = (0, 0)

    def index_of(t_capture: float) -> int:
        assert t_origin is not None
        return int(round((t_capture - t_origin) * plan.fps))

    def record(events: list[AlertEvent]) -> None:
        for ev in events:
            counts[ev.type] = counts.get(ev.type, 0) + 1
            if ev.frame is not None:
                t_s = ev.frame.t_capture - (t_origin or 0.0)
                index = index_of(ev.frame.t_capture)
                image_wh = ev.frame.wh
            else:  # `end` messages carry no frame
                t_s = (last_t or 0.0) - (t_origin or 0.0)
                index = index_of(last_t or 0.0)
                image_wh = wh
            rec = records.get(ev.alert_id)
            if ev.type == "new" or rec is None:
                rec = AlertRecord(plan.path.stem, ev.alert_id, CLASS_INDEX[ev.class_name], t_s, index,
                                  tuple(float(v) for v in ev.xyxy), image_wh)  # type: ignore[arg-type]
                records[ev.alert_id] = rec
            if ev.type == "end":
                rec.t_end_s = t_s
            elif ev.fix is not None:
                rec.fixes.append((index, ev.fix.lat, ev.fix.lon, tuple(float(v) for v in ev.xyxy)))  # type: ignore[arg-type]

    t_start = time.perf_counter()
    source.start()
    try:
        while True:
            t0 = time.perf_counter()
            frame = source.slot.get(0.2)
            if frame is None:
                frame = source.slot.take()
            timing.wait_decode_s += time.perf_counter() - t0
            if frame is None:
                if source.finished:
                    break
                if not source.running:
                    raise UserError(str(plan.path), None, "a clip the file source can play",
                                    source.status_detail.get("reason", source.status))
                continue
            if t_origin is None:
                t_origin = frame.t_capture
                next_tick = frame.t_capture + 1.0
            last_t = frame.t_capture
            wh = frame.wh
            index = index_of(frame.t_capture)
            indices.append(index)
            t1 = time.perf_counter()
            dets_floor = path.run(detector, [frame])[0]
            t2 = time.perf_counter()
            dets = dets_floor.at_or_above(score_per_class)  # the daemon detector's operating point
            events = analyzer.process(frame, dets)
            if next_tick is not None and frame.t_capture >= next_tick:
                events += analyzer.tick(frame.t_capture)
                next_tick = frame.t_capture + 1.0
            t3 = time.perf_counter()
            timing.inference_s += t2 - t1
            timing.analysis_s += t3 - t2
            timing.frames += 1
            record(events)
            fl = plan.labels.at(index)
            boxes.add(wh, fl.xyxy_px(wh), fl.class_id, dets_floor)
            if on_frame is not None:
                on_frame()
        t4 = time.perf_counter()
        if last_t is not None:
            last_t = last_t + 1.0 / plan.fps
            record(analyzer.finish(last_t))
        timing.analysis_s += time.perf_counter() - t4
    finally:
        source.stop()
    timing.wall_s = time.perf_counter() - t_start
    if not indices:
        raise UserError(str(plan.path), None, "a clip with decodable frames", "none were decoded")
    if len(set(indices)) != len(indices):
        get_logger("eval", plan.camera.id).warning(
            "%s: %d frames map onto the same label index (timestamps off?)", plan.path.name,
            len(indices) - len(set(indices)))
    result = ClipResult(plan.path.stem, plan.fps, plan.duration_s, plan.labels, list(records.values()))
    return ClipOutcome(plan, result, timing, indices, counts)


def analysed_label_coverage(outcome: ClipOutcome) -> float:
    """Share of labelled frames that were analysed (1.0 when analysis_fps ≥ the clip's fps)."""
    labelled = [i for i, fl in outcome.plan.labels.frames.items() if len(fl)]
    if not labelled:
        return 1.0
    seen = set(outcome.analysed_indices)
    return float(np.mean([i in seen for i in labelled]))

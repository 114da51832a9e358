"""``minewatch eval sequence --config CFG --frames DIR [--out OUT]``: a tower's still frames, minutes apart,
through the daemon's own chain, with their real time gaps; how long after a known ignition the first fire
or smoke alert came, and how many alerts came before it (docs/EVALUATION.md).

The folder holds frames whose file names are their capture times in seconds from any origin (``-02400.jpg``,
``+00060.jpg``), or a ``times.csv`` (``file,t_s``); an optional ``sequence.json`` gives
``ignition_offset_s`` (on the same clock). The frames play as ONE camera, the config's first (its pose, zones
and rules; ``zones.fire_anywhere`` as configured), through the daemon's detector and :class:`Analyzer`
(:mod:`pipeline.eval.hookup`): each frame's ``t_capture`` is :data:`T0_UTC_S` plus its time, so everything that
uses time (track confirmation, the smoke stage's temporal evidence, event ends) sees the real gaps (60 s
between HPWREN frames), not 1/fps. The camera's ``analysis_fps`` is set to 1 / the median gap, so that the
events' "looked but did not see" time counts whole gaps as the daemon would at that rate.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.eval.hookup import detect_frame, make_analyzer, make_detector
from pipeline.types import AlertEvent, Detections, Frame, Pose

#: the UTC time a sequence's t_s = 0 is played at (2024-01-01T00:00:00Z): any fixed origin would do
T0_UTC_S = 1_704_067_200.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: alert classes that count as "the fire was alerted"
FIRE_CLASSES = ("fire", "smoke")
_TIME_NAME = re.compile(r"^[+-]?\d+(\.\d+)?$")


@dataclass(slots=True)
class SequencePlan:
    folder: Path
    frames: list[tuple[Path, float]]  # (file, t_s), sorted by time
    ignition_t_s: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def median_gap_s(self) -> float:
        gaps = np.diff([t for _, t in self.frames])
        return float(np.median(gaps)) if len(gaps) else 1.0


def _times_csv(folder: Path) -> list[tuple[Path, float]]:
    path = folder / "times.csv"
    out: list[tuple[Path, float]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"file", "t_s"} <= set(reader.fieldnames):
            raise UserError(str(path), "header", "columns file,t_s", ",".join(reader.fieldnames or []))
        for line, row in enumerate(reader, start=2):
            name = (row.get("file") or "").strip()
            try:
                t_s = float(row.get("t_s") or "")
            except ValueError:
                raise UserError(f"{path}:{line}", "t_s", "a time in seconds", row.get("t_s")) from None
            if not math.isfinite(t_s):
                raise UserError(f"{path}:{line}", "t_s", "a finite time in seconds", row.get("t_s"))
            file = folder / name
            if not name or not file.is_file():
                raise UserError(f"{path}:{line}", "file", "an image file in the folder", name)
            out.append((file, t_s))
    return out


def load_sequence(folder: Path) -> SequencePlan:
    """The frames of ``folder`` with their capture times, and the ignition time when known."""
    if not folder.is_dir():
        raise UserError(str(folder), "--frames", "a folder of frames", "no such folder")
    if (folder / "times.csv").is_file():
        frames = _times_csv(folder)
    else:
        frames = []
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not _TIME_NAME.match(p.stem):
                raise UserError(str(p), "file name", "the capture time in seconds (e.g. -02400.jpg, +00060.jpg)"
                                " or a times.csv in the folder", p.name)
            frames.append((p, float(p.stem)))
    if not frames:
        raise UserError(str(folder), "--frames", "image files (" + ", ".join(IMAGE_SUFFIXES) + ")", "none")
    frames.sort(key=lambda ft: ft[1])
    times = [t for _, t in frames]
    if len(set(times)) != len(times):
        dup = next(t for t in times if times.count(t) > 1)
        raise UserError(str(folder), "capture times", "one frame per time", f"two frames at {dup:g} s")
    meta: dict[str, Any] = {}
    ignition: float | None = None
    seq_json = folder / "sequence.json"
    if seq_json.is_file():
        try:
            meta = json.loads(seq_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(str(seq_json), None, "JSON", exc) from None
        if not isinstance(meta, dict):
            raise UserError(str(seq_json), None, "a JSON object", type(meta).__name__)
        value = meta.get("ignition_offset_s")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(str(seq_json), "ignition_offset_s", "a time in seconds or null", value)
            ignition = float(value)
    return SequencePlan(folder, frames, ignition, meta)


@dataclass(slots=True)
class FrameResult:
    name: str
    t_s: float
    boxes: list[tuple[str, float, tuple[float, float, float, float], str]]  # (class, score, xyxy, source)


def _xyxy(box: Any) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, x2, y2


def _read(path: Path) -> NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(str(path), None, "a readable image", "undecodable file")
    return np.asarray(image, dtype=np.uint8)


def run_sequence(config: Config, plan: SequencePlan, progress: bool = False) -> dict[str, Any]:
    """Play the frames through detector → Analyzer; the report dict (see module doc)."""
    template = config.cameras[0]
    fps = min(60.0, 1.0 / max(plan.median_gap_s, 1e-3))
    cam = template.model_copy(update={"enabled": True, "analysis_fps": fps, "patrol": None})
    seq_config = config.model_copy(update={"cameras": [cam]})
    from pipeline.eval.hookup import load_zones

    zones = load_zones(seq_config)
    analyzer = make_analyzer(seq_config, zones)
    detector = make_detector(config.detector)
    score_per_class = config.detector.score_threshold.as_array()
    pose = Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg, None)
    alerts: list[dict[str, Any]] = []
    frames: list[FrameResult] = []
    counts = {"new": 0, "update": 0, "end": 0}
    t_detect = t_analyse = 0.0

    def record(events: list[AlertEvent], result: FrameResult | None) -> None:
        for ev in events:
            counts[ev.type] = counts.get(ev.type, 0) + 1
            if ev.type == "new" and result is not None:
                alert: dict[str, Any] = {"alert_id": ev.alert_id, "class": ev.class_name, "frame": result.name,
                                         "t_s": result.t_s, "xyxy": [round(float(v), 1) for v in ev.xyxy],
                                         "score": round(float(ev.score), 3)}
                if ev.fix is not None:
                    alert["lat"], alert["lon"] = ev.fix.lat, ev.fix.lon
                    alert["range_m"] = round(ev.fix.range_m, 1)
                    alert["semi_major_m"] = round(ev.fix.semi_major_m, 1)
                alerts.append(alert)
            if ev.type in ("new", "update") and result is not None:
                result.boxes.append((ev.class_name, float(ev.score), _xyxy(ev.xyxy), f"alert {ev.type}"))

    wall0 = time.perf_counter()
    for seq, (path, t_s) in enumerate(plan.frames):
        image = _read(path)
        frame = Frame(cam.id, seq, T0_UTC_S + t_s, image, pose, T0_UTC_S + t_s)
        t1 = time.perf_counter()
        dets_floor = detect_frame(detector, frame, cam, config.detector.iou_threshold)
        dets: Detections = dets_floor.at_or_above(score_per_class)  # the daemon detector's operating point
        t2 = time.perf_counter()
        events = analyzer.process(frame, dets)
        events += analyzer.tick(frame.t_capture)
        t3 = time.perf_counter()
        t_detect += t2 - t1
        t_analyse += t3 - t2
        result = FrameResult(path.name, t_s, [])
        for n, s, b in zip(dets.class_names(), dets.score, dets.xyxy, strict=True):
            result.boxes.append((n, float(s), _xyxy(b), "detector"))
        record(events, result)
        frames.append(result)
        if progress:
            print(f"\r{seq + 1}/{len(plan.frames)} {path.name}", end="", flush=True)
    if progress:
        print()
    last_t = T0_UTC_S + plan.frames[-1][1] + plan.median_gap_s
    record(analyzer.finish(last_t), None)
    wall = time.perf_counter() - wall0
    report: dict[str, Any] = {
        "schema": "minewatch.eval/1",
        "kind": "sequence",
        "title": f"sequence {plan.folder}",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "frames_dir": str(plan.folder),
        "camera_template": template.id,
        "model": str(config.detector.model_path),
        "frames": len(plan.frames),
        "t_first_s": plan.frames[0][1],
        "t_last_s": plan.frames[-1][1],
        "median_gap_s": plan.median_gap_s,
        "ignition_offset_s": plan.ignition_t_s,
        "zones": len(zones),
        "alerts": alerts,
        "messages": counts,
        "timing": {"wall_s": wall, "detector_s": t_detect, "analysis_s": t_analyse,
                   "frames_per_s": len(plan.frames) / wall if wall > 0 else None},
    }
    report.update(score_alerts(alerts, plan.ignition_t_s))
    report["_frames"] = frames  # for the strip; dropped before writing
    return report


def score_alerts(alerts: Sequence[dict[str, Any]], ignition_t_s: float | None) -> dict[str, Any]:
    """Minutes from ignition to the first fire/smoke alert raised at or after it, and alerts before it."""
    if ignition_t_s is None:
        return {"minutes_to_first_alert": None, "false_alerts_before_ignition": None}
    before = [a for a in alerts if a["t_s"] < ignition_t_s]
    after = [a for a in alerts if a["t_s"] >= ignition_t_s and a["class"] in FIRE_CLASSES]
    first = min(after, key=lambda a: a["t_s"]) if after else None
    by_class: dict[str, int] = {}
    for a in before:
        by_class[a["class"]] = by_class.get(a["class"], 0) + 1
    return {
        "minutes_to_first_alert": None if first is None else (first["t_s"] - ignition_t_s) / 60.0,
        "first_alert_id": None if first is None else first["alert_id"],
        "false_alerts_before_ignition": len(before),
        "false_alerts_before_ignition_by_class": by_class,
    }


_COLOURS = {"smoke": (200, 200, 200), "fire": (0, 0, 255), "excavator": (0, 200, 255), "truck": (255, 160, 0),
            "person": (255, 0, 255), "dust": (80, 180, 230)}


def strip_image(plan: SequencePlan, frames: Sequence[FrameResult], centre: int, each_w: int = 480,
                span: int = 2) -> NDArray[np.uint8]:
    """Frames ``centre-span … centre+span`` side by side with their boxes (alerts thick, detections thin)."""
    lo, hi = max(0, centre - span), min(len(frames), centre + span + 1)
    tiles = []
    for i in range(lo, hi):
        image = _read(plan.frames[i][0])
        h, w = image.shape[:2]
        k = each_w / w
        small = cv2.resize(image, (each_w, max(1, int(round(h * k)))), interpolation=cv2.INTER_AREA)
        for name, score, xyxy, source in frames[i].boxes:
            x1, y1, x2, y2 = (int(round(v * k)) for v in xyxy)
            colour = _COLOURS.get(name, (0, 255, 0))
            thick = 2 if source.startswith("alert") else 1
            cv2.rectangle(small, (x1, y1), (x2, y2), colour, thick)
            cv2.putText(small, f"{name} {score:.2f}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        colour, 1, cv2.LINE_AA)
        label = f"{frames[i].name}  t={frames[i].t_s:+.0f}s"
        cv2.putText(small, label, (6, small.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(small, label, (6, small.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(small)
    hmax = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, hmax - t.shape[0]), (0, 2), (0, 0))) for t in tiles]
    return np.asarray(np.hstack(tiles), dtype=np.uint8)


def markdown(report: dict[str, Any], strip_name: str | None) -> str:
    m = report.get("minutes_to_first_alert")
    lines = [
        f"# minewatch eval sequence: {report['frames_dir']}",
        "",
        f"{report['frames']} frames from {report['t_first_s']:+.0f} s to {report['t_last_s']:+.0f} s, median gap"
        f" {report['median_gap_s']:.0f} s, played as camera `{report['camera_template']}` with {report['zones']}"
        f" zone(s); model `{report['model']}`.",
        "",
    ]
    if report.get("ignition_offset_s") is not None:
        lines += [
            f"- ignition at {report['ignition_offset_s']:+.0f} s",
            f"- minutes to first fire/smoke alert: **{'none' if m is None else f'{m:.1f}'}**",
            f"- false alerts before ignition: **{report['false_alerts_before_ignition']}**",
            "",
        ]
    lines += ["| alert_id | class | frame | t_s | box xyxy |", "|---|---|---|---|---|"]
    for a in report["alerts"]:
        lines.append(f"| {a['alert_id']} | {a['class']} | {a['frame']} | {a['t_s']:+.0f} | {a['xyxy']} |")
    if not report["alerts"]:
        lines.append("| (none) | | | | |")
    if strip_name:
        lines += ["", f"Frames around {report.get('strip_about', 'the first alert')} (alert boxes thick, detector"
                  " boxes thin):", "", f"![strip]({strip_name})"]
    t = report["timing"]
    lines += ["", f"Wall time {t['wall_s']:.1f} s (detector {t['detector_s']:.1f} s,"
              f" analysis {t['analysis_s']:.1f} s).",
              "", f"Command: `{report.get('command', '')}`", ""]
    return "\n".join(lines)


def write_sequence_report(report: dict[str, Any], plan: SequencePlan, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    frames: list[FrameResult] = report.pop("_frames")
    index = {f.name: i for i, f in enumerate(frames)}
    first_id = report.get("first_alert_id")
    first = next((a for a in report["alerts"] if a["alert_id"] == first_id), None)
    if first is None and report["alerts"]:
        first = report["alerts"][0]
    if first is not None:
        centre, report["strip_about"] = index[first["frame"]], f"the first alert ({first['frame']})"
    elif plan.ignition_t_s is not None:
        centre = int(np.argmin([abs(f.t_s - plan.ignition_t_s) for f in frames]))
        report["strip_about"] = "the ignition (no alert)"
    else:
        centre, report["strip_about"] = len(frames) // 2, "the middle (no alert)"
    strip = strip_image(plan, frames, centre)
    strip_path = out / "strip.jpg"
    cv2.imwrite(str(strip_path), strip, [cv2.IMWRITE_JPEG_QUALITY, 85])
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(markdown(report, strip_path.name), encoding="utf-8")
    return [json_path, md_path, strip_path]

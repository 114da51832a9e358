"""Write an evaluation's figures: ``report.json`` (every figure), ``report.md`` (made from that same dict,
so the two cannot disagree) and PNG plots (precision-recall per class, time to alert)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMA = "minewatch.eval/1"


def fmt(value: Any, digits: int = 3) -> str:
    """How every number appears in the Markdown report (tests parse it back with :func:`parse_fmt`)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def parse_fmt(text: str) -> float | None:
    text = text.strip()
    return None if text == "–" else float(text)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |" for row in rows]
    return lines


def box_section(boxes: Mapping[str, Any]) -> list[str]:
    lines = [
        "## Box metrics",
        "",
        f"{boxes['n_images']} frames/images; pycocotools COCOeval, all areas, up to {boxes['max_dets']} detections"
        " per image. mAP is the mean over classes with labels.",
        "",
    ]
    rows = []
    for name, c in boxes["classes"].items():
        if c["n_labels"] == 0 and c["n_detections"] == 0:
            continue
        rows.append([name, c["n_labels"], c["n_detections"], c["ap50"], c["ap50_95"], c["threshold"],
                     c["precision"], c["recall"], c["tp"], c["fp"]])
    lines += _table(["class", "labels", "detections", "AP50", "AP50-95", "threshold", "precision", "recall",
                     "TP", "FP"], rows)
    lines += ["", f"**mAP50 {fmt(boxes['map50'])}, mAP50-95 {fmt(boxes['map50_95'])}**", ""]
    lines += height_section(boxes)
    return lines


def height_section(boxes: Mapping[str, Any]) -> list[str]:
    """AP50 / recall (at the class threshold) per object height in source-frame pixels, per class."""
    bins: list[str] = []
    for c in boxes["classes"].values():
        bins = list(c.get("by_height_px") or {})
        if bins:
            break
    rows = []
    for name, c in boxes["classes"].items():
        per = c.get("by_height_px") or {}
        if c["n_labels"] == 0:
            continue
        row: list[Any] = [name]
        for label in bins:
            fig = per.get(label) or {}
            n = fig.get("n_labels", 0)
            row.append("–" if not n else f"{fmt(fig.get('ap50'))} / {fmt(fig.get('recall'))} ({n})")
        rows.append(row)
    if not rows or not bins:
        return []
    return ["## Box metrics by object height (source-frame px): AP50 / recall at the threshold (labels)", "",
            *_table(["class", *bins], rows), ""]


def alerts_section(alerts: Mapping[str, Any]) -> list[str]:
    lines = [
        "## Alert metrics",
        "",
        f"{fmt(alerts['hours'] * 3600.0, 1)} s of footage ({fmt(alerts['hours'], 5)} camera-hours). "
        f"Labelled event: a run of labelled frames of one class, gaps ≤ {fmt(alerts['gap_s'], 2)} s; an alert is"
        f" true when raised inside its event (or ≤ {fmt(alerts['grace_s'], 2)} s after) on a labelled box"
        f" (IoU ≥ {fmt(alerts['match_iou'], 2)}). See docs/EVALUATION.md.",
        "",
    ]
    rows = []
    for name, c in alerts["classes"].items():
        if c["n_events"] == 0 and c["n_alerts"] == 0:
            continue
        tta = c["time_to_alert_s"]
        loc = c["location_error_m"]
        rows.append([name, c["n_events"], c["n_caught"], c["event_recall"], tta["mean"], tta["median"],
                     tta["max"], c["n_alerts"], c["n_false_alerts"], c["false_alerts_per_camera_hour"],
                     c["n_duplicate_alerts"], loc["median"]])
    lines += _table(["class", "events", "caught", "event recall", "time to alert mean s", "median s", "max s",
                     "alerts", "false alerts", "false / camera-hour", "duplicates", "location error median m"],
                    rows)
    lines.append("")
    return lines


def throughput_section(t: Mapping[str, Any]) -> list[str]:
    if "images" in t:
        return ["## Throughput", "",
                *_table(["images", "wall s", "images/s", "inference share"],
                        [[t["images"], t["wall_s"], t["images_per_s"], t["inference_share"]]]),
                "", "Images read with OpenCV one at a time (batch 1) on the analysis thread.", ""]
    return [
        "## Throughput",
        "",
        *_table(
            ["frames", "wall s", "frames/s", "decode (wait) share", "inference share", "analysis share",
             "rest share"],
            [[t["frames"], t["wall_s"], t["frames_per_s"], t["decode_share"], t["inference_share"],
              t["analysis_share"], t["rest_share"]]],
        ),
        "",
        "Shares of the analysis thread's wall time. Decoding runs on the file source's reader thread; its share"
        " here is the time the analysis waited for a decoded frame (decoding that overlapped inference is"
        " free). Analysis: Analyzer.process/tick/finish (tracking, ground fixes, zones and rules, events).",
        "",
    ]


def clips_section(clips: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [[c["name"], c["fps"], c["frames"], c["analysed_frames"], c["label_coverage"], c["alerts_new"],
             c["frames_per_s"]] for c in clips]
    return ["## Clips", "", *_table(["clip", "fps", "frames", "analysed", "labelled frames analysed", "alerts",
                                     "frames/s"], rows), ""]


def markdown(report: Mapping[str, Any]) -> str:
    lines = [f"# minewatch evaluation — {report.get('title', report['kind'])}", ""]
    lines += [f"- model: `{report['model']}` ({report.get('input_size_px')} px, {report.get('provider')})"]
    if report.get("config"):
        lines.append(f"- config: `{report['config']}`")
    if report.get("data"):
        lines.append(f"- data: `{report['data']}`")
    lines += [f"- command: `{report.get('command', '')}`", f"- created: {report.get('created', '')}", ""]
    if report.get("clips"):
        lines += clips_section(report["clips"])
    lines += box_section(report["boxes"])
    if report.get("ultralytics_val"):
        u = report["ultralytics_val"]
        rows = [[name, report["boxes"]["classes"][name]["ap50"], u["ap50"][name],
                 report["boxes"]["classes"][name]["ap50_95"], u["ap50_95"].get(name)] for name in u["ap50"]]
        lines += ["## Ultralytics val on the same images", "",
                  *_table(["class", "AP50 (minewatch)", "AP50 (val)", "AP50-95 (minewatch)", "AP50-95 (val)"], rows),
                  "", "Why they differ: docs/EVALUATION.md, Ultralytics cross-check.", ""]
    if report.get("alerts"):
        lines += alerts_section(report["alerts"])
    if report.get("throughput"):
        lines += throughput_section(report["throughput"])
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in report["plots"]] + [""]
    return "\n".join(lines)


def plot_pr_curves(boxes: Mapping[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = boxes.get("pr_curves_iou50", {})
    recall = curves.get("recall")
    names = [n for n in curves if n != "recall"]
    if not recall or not names:
        return False
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for name in names:
        ap = boxes["classes"][name]["ap50"]
        ax.plot(recall, curves[name], label=f"{name} (AP50 {fmt(ap)})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated, IoU 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Precision-recall per class (pycocotools)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_time_to_alert(alerts: Mapping[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = alerts.get("events", [])
    if not events:
        return False
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(events) + 1.5), dpi=100)
    labels = []
    for i, ev in enumerate(events):
        labels.append(f"{ev['clip']} {ev['class']} #{ev['first_index']}")
        ax.barh(i, ev["duration_s"], left=0, color="#dddddd", edgecolor="#999999")
        if ev["time_to_alert_s"] is None:
            ax.plot([0], [i], marker="x", color="red")
        else:
            ax.plot([ev["time_to_alert_s"]], [i], marker="o", color="tab:blue")
    ax.set_yticks(range(len(events)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the event's first labelled frame (grey: labelled duration)")
    ax.set_title("Time to alert per labelled event (o: alert, x: missed)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and the plots under ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plots: list[str] = []
    if plot_pr_curves(report["boxes"], out_dir / "pr_curves.png"):
        plots.append("pr_curves.png")
    if report.get("alerts") and plot_time_to_alert(report["alerts"], out_dir / "time_to_alert.png"):
        plots.append("time_to_alert.png")
    report["plots"] = plots
    report.setdefault("schema", SCHEMA)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path = out_dir / "report.md"
    md_path.write_text(markdown(report), encoding="utf-8")
    written.update({"json": json_path, "markdown": md_path})
    for name in plots:
        written[name] = out_dir / name
    return written

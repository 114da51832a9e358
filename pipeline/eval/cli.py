"""``minewatch eval``: offline evaluation (docs/EVALUATION.md).

    minewatch eval --config cameras.yaml --footage CLIPS --labels LABELS [--out DIR]
    minewatch eval images --model M.onnx --data DIR [--names fire,smoke] [--out DIR]
    minewatch eval baseline [--out docs/baselines/minewatch-starter.json] [--check]
    minewatch eval compare BASELINE.json CURRENT.json
    minewatch eval sequence --config cameras.yaml --frames DIR [--out DIR]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Config, DetectorConfig, load_config
from pipeline.errors import UserError
from pipeline.logs import setup_logging


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _class_map(text: str | None) -> dict[str, str | None] | None:
    """``truck=truck,person=person,car=none`` → {model name: minewatch class or None}."""
    if not text:
        return None
    out: dict[str, str | None] = {}
    for part in text.split(","):
        if "=" not in part:
            raise UserError("--class-map", part, "MODEL_NAME=CLASS pairs separated by commas", part)
        key, _, value = part.partition("=")
        out[key.strip()] = None if value.strip().lower() in ("none", "null", "") else value.strip()
    return out


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, found {text}")
    return value


def _summary(report: dict[str, object]) -> str:
    boxes = report["boxes"]
    assert isinstance(boxes, dict)
    from pipeline.eval.report import fmt

    parts = [f"mAP50 {fmt(boxes['map50'])}", f"mAP50-95 {fmt(boxes['map50_95'])}"]
    alerts = report.get("alerts")
    if isinstance(alerts, dict):
        for name, c in alerts["classes"].items():
            if c["n_events"] or c["n_alerts"]:
                parts.append(f"{name}: {c['n_caught']}/{c['n_events']} events caught, {c['n_false_alerts']} false")
    return "; ".join(parts)


def images_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="minewatch eval images",
                                 description="Box metrics of a model on a folder of YOLO-labelled images.")
    ap.add_argument("--model", type=Path, help="ONNX model (default: the config's detector.model_path)")
    ap.add_argument("--data", type=Path, required=True,
                    help="folder with images/ and labels/, a split list (one image path a line) or a data.yaml")
    ap.add_argument("--config", type=Path, help="cameras.yaml whose detector section (thresholds, class_map,"
                    " input size, providers) is used; default: the built-in defaults")
    ap.add_argument("--names", help="the data set's class names by id (fire,smoke); default: data.yaml or"
                    " classes.txt")
    ap.add_argument("--class-map", help="model class → minewatch class (truck=truck,car=none); overrides the"
                    " config's")
    ap.add_argument("--imgsz", type=int, help="network input size (default: the model's)")
    ap.add_argument("--out", type=Path, help="write report.json, report.md and pr_curves.png here")
    ap.add_argument("--crosscheck-ultralytics", action="store_true",
                    help="also run Ultralytics' val on the same images and model (needs the [train] extra)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    from pipeline.eval.images import evaluate_images
    from pipeline.eval.labels import load_image_dataset
    from pipeline.eval.report import write_report

    config = load_config(args.config) if args.config else None
    cfg = config.detector if config is not None else DetectorConfig.model_validate({})
    update: dict[str, object] = {}
    if args.model:
        update["model_path"] = args.model
    if args.imgsz:
        update["input_size_px"] = args.imgsz
    cmap = _class_map(args.class_map)
    if cmap is not None:
        update["class_map"] = cmap
    if update:
        cfg = DetectorConfig.model_validate({**cfg.model_dump(), **update})
    items, names = load_image_dataset(args.data, _names(args.names))
    result = evaluate_images(cfg, items, names, progress=not args.no_progress, config=config)
    report: dict[str, object] = {
        **result.as_dict(),
        "title": f"images {args.data}",
        "data": str(args.data),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "minewatch eval images " + shlex.join(argv),
    }
    if args.crosscheck_ultralytics:
        from pipeline.eval.crosscheck import ultralytics_val

        workdir = args.out or Path.cwd()
        workdir.mkdir(parents=True, exist_ok=True)
        figures = ultralytics_val(cfg, items, result.model_names, result.input_size_px, workdir)
        report["ultralytics_val"] = {"ap50": figures.ap50, "ap50_95": figures.ap50_95, "map50": figures.map50,
                                     "map50_95": figures.map50_95}
    if args.out:
        written = write_report(report, args.out)
        print(f"wrote {', '.join(str(p) for p in written.values())}")
    else:
        from pipeline.eval.report import markdown

        print(markdown(report))
    print(_summary(report))
    return 0


def compare_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="minewatch eval compare",
                                 description="Exit 1 when the figures of CURRENT (written by `minewatch eval"
                                 " baseline --out`) are worse than BASELINE beyond its tolerances.")
    ap.add_argument("baseline", type=Path)
    ap.add_argument("current", type=Path)
    args = ap.parse_args(argv)
    from pipeline.eval.baseline import compare, read_json

    problems = compare(read_json(args.baseline), read_json(args.current))
    for line in problems:
        print(line)
    if not problems:
        print("no figure is worse than the baseline beyond its tolerance")
    return 1 if problems else 0


def _config_with_model(config_path: Path, model: Path | None) -> Config:
    """The config, with ``--model`` replacing its detector's model; the model file must exist."""
    config = load_config(config_path)
    if model:
        config.detector = config.detector.model_copy(update={"model_path": model})
    if not Path(config.detector.model_path).is_file():
        raise UserError(str(config_path), "detector.model_path", "an existing ONNX model file",
                        str(config.detector.model_path))
    return config


def footage_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="minewatch eval",
        description="Run the daemon's pipeline over labelled recorded clips and report box metrics, alert"
        " metrics and throughput. Subcommands: `minewatch eval images|baseline|compare|sequence --help`.",
    )
    ap.add_argument("--config", type=Path, required=True, help="cameras.yaml (detector, alerts, zones; its first"
                    " camera is the template for clips without a camera of their own name)")
    ap.add_argument("--footage", type=Path, required=True, help="a video file or a folder of them")
    ap.add_argument("--labels", type=Path, required=True,
                    help="NAME.labels.json (per-frame JSON) or a folder of them, or per-frame YOLO folders NAME/")
    ap.add_argument("--out", type=Path, default=Path("eval-out"), help="report folder (default: eval-out)")
    ap.add_argument("--clips", help="evaluate only these clips (file stems, comma-separated)")
    ap.add_argument("--names", help="class names by id of YOLO label files (default: classes.txt/data.yaml)")
    ap.add_argument("--gap-s", type=_positive, default=1.0,
                    help="labelled frames of a class at most this far apart form one event (default 1.0)")
    ap.add_argument("--grace-s", type=_positive, default=2.0,
                    help="an alert up to this long after its event's last labelled frame still counts (default 2.0)")
    ap.add_argument("--match-iou", type=_positive, default=0.1,
                    help="least IoU between an alert's box and a labelled box for a true alert (default 0.1)")
    ap.add_argument("--model", type=Path, help="override the config's detector.model_path")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    from pipeline.eval.report import write_report
    from pipeline.eval.runner import evaluate_footage

    config = _config_with_model(args.config, args.model)
    report = evaluate_footage(
        config, args.footage, args.labels, names=_names(args.names), only=_names(args.clips),
        gap_s=args.gap_s, grace_s=args.grace_s, match_iou=args.match_iou, progress=not args.no_progress,
    )
    report["config"] = str(args.config)
    report["command"] = "minewatch eval " + shlex.join(argv)
    written = write_report(report, args.out)
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    print(_summary(report))
    return 0


def sequence_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="minewatch eval sequence",
        description="Play a tower's still frames (file names = capture times in seconds, or times.csv; optional"
        " sequence.json with ignition_offset_s) as the config's first camera through the daemon's chain, with"
        " their real time gaps; report the alerts, minutes to the first fire/smoke alert and false alerts before"
        " ignition.")
    ap.add_argument("--config", type=Path, required=True, help="cameras.yaml (its first camera plays the frames)")
    ap.add_argument("--frames", type=Path, required=True, help="folder of frames")
    ap.add_argument("--out", type=Path, default=Path("eval-sequence"), help="report folder (default: eval-sequence)")
    ap.add_argument("--model", type=Path, help="override the config's detector.model_path")
    ap.add_argument("--no-progress", action="store_true", help="no progress line")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    from pipeline.eval.sequence import load_sequence, run_sequence, write_sequence_report

    config = _config_with_model(args.config, args.model)
    plan = load_sequence(args.frames)
    report = run_sequence(config, plan, progress=not args.no_progress)
    report["config"] = str(args.config)
    report["command"] = "minewatch eval sequence " + shlex.join(argv)
    written = write_sequence_report(report, plan, args.out)
    print(f"wrote {', '.join(str(p) for p in written)}")
    m = report["minutes_to_first_alert"]
    print(f"{len(report['alerts'])} alert(s); minutes to first fire/smoke alert: {'–' if m is None else f'{m:.1f}'};"
          f" false alerts before ignition: {report['false_alerts_before_ignition']}")
    return 0


def cli_main(argv: list[str]) -> int:
    if argv and argv[0] == "sequence":
        return sequence_main(argv[1:])
    if argv and argv[0] == "images":
        return images_main(argv[1:])
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    if argv and argv[0] == "baseline":
        from pipeline.eval.baseline import baseline_main

        return baseline_main(argv[1:])
    return footage_main(argv)


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))

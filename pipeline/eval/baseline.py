"""The committed baseline: the starter model's figures on held-out data, and the regression gate.

Held-out data is the starter model's own validation split, made by the same code that made it
(:func:`pipeline.train.dataset.split_groups`, seeded, by group: fire8 frames by SOURCE VIDEO, other images by
original image), so no frame the model trained on is evaluated. The clips of ``../shared/data/clips`` are
the frames of fire8 videos: only the clips of held-out videos are evaluated.

``compare(baseline, report)`` lists every figure that got worse beyond its tolerance (see TOLERANCES);
``tests/test_eval_baseline.py`` fails on any. Rebuild after an intended change with
``minewatch eval baseline --shared ../shared/data --out docs/baselines/minewatch-starter.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.errors import UserError
from pipeline.eval.images import evaluate_images
from pipeline.eval.labels import LabelledImage, load_image_dataset

ROOT = Path(__file__).resolve().parents[2]
BASELINE_DIR = ROOT / "docs" / "baselines"
DEFAULT_BASELINE = BASELINE_DIR / "minewatch-starter.json"
CLIPS_CONFIG = BASELINE_DIR / "clips-eval.yaml"

#: How much worse a figure may get before the gate fails, and why that much.
TOLERANCES: dict[str, float] = {
    # absolute AP: onnxruntime on CPU is deterministic run to run (differences ~1e-6); 0.02 leaves room for
    # harmless changes (a resize filter, an onnxruntime upgrade) and still catches a real regression
    "ap": 0.02,
    # labelled events caught on the held-out clips: not one may be lost
    "events_caught": 0.0,
    # false alerts on the held-out clips: not one more
    "false_alerts": 0.0,
    # mean time to alert: at most 2 frames (0.4 s at the clips' 5 fps) later
    "time_to_alert_s": 0.4,
}

#: the starter model's split (scripts/train_starter.py defaults: --val-fraction 0.2 --seed 0)
SPLIT = {"val_fraction": 0.2, "seed": 0}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def heldout_split(shared: Path, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Path], list[str]]:
    """(held-out images of fire8 and excavator, held-out fire8 videos), by the training code's own split."""
    from pipeline.train.dataset import Source, collect, split_groups

    items = collect([Source(shared / "fire8", ["fire", "smoke"])]) + collect(
        [Source(shared / "excavator", ["excavator"])]
    )
    _, val = split_groups([it.group for it in items], val_fraction, seed)
    images = [items[i].image for i in val]
    videos = sorted({items[i].group.split("video:", 1)[1] for i in val if "video:" in items[i].group})
    return images, videos


def _heldout_items(shared: Path, images: list[Path]) -> list[LabelledImage]:
    """The held-out images with their ORIGINAL labels (fire/smoke for fire8, excavator for excavator)."""
    out: list[LabelledImage] = []
    for folder, names in (("fire8", "fire,smoke"), ("excavator", "excavator")):
        chosen = [p for p in images if p.parent.parent.name == folder]
        if not chosen:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            split = Path(tmp) / "split.txt"
            split.write_text("\n".join(str(p) for p in chosen) + "\n")
            items, _ = load_image_dataset(split, names.split(","))
        out.extend(items)
    return out


def _box_figures(boxes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "n_images": boxes["n_images"],
        "map50": boxes["map50"],
        "map50_95": boxes["map50_95"],
        "classes": {
            n: {k: c[k] for k in ("n_labels", "ap50", "ap50_95", "precision", "recall", "threshold")}
            for n, c in boxes["classes"].items() if c["n_labels"] > 0
        },
    }


def _alert_figures(alerts: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "hours": alerts["hours"],
        "classes": {
            n: {"n_events": c["n_events"], "n_caught": c["n_caught"], "n_false_alerts": c["n_false_alerts"],
                "n_alerts": c["n_alerts"], "time_to_alert_mean_s": c["time_to_alert_s"]["mean"],
                "false_alerts_per_camera_hour": c["false_alerts_per_camera_hour"]}
            for n, c in alerts["classes"].items() if c["n_events"] or c["n_alerts"]
        },
    }


def measure(shared: Path, model: Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Run both evaluations of the baseline and return its figures (the baseline file's content)."""
    from pipeline.eval.runner import evaluate_footage

    config = load_config(CLIPS_CONFIG)
    if model is not None:
        config.detector = config.detector.model_copy(update={"model_path": model})
    model_path = Path(config.detector.model_path)
    if not model_path.is_file():
        raise UserError(str(CLIPS_CONFIG), "detector.model_path", "an existing ONNX model file", str(model_path))
    images, videos = heldout_split(shared, **SPLIT)  # type: ignore[arg-type]
    items = _heldout_items(shared, images)
    image_result = evaluate_images(config.detector, items, ["fire", "smoke", "excavator"], progress=progress)
    footage = evaluate_footage(config, shared / "clips", shared / "clips", only=videos, progress=progress)
    return {
        "schema": "minewatch.eval-baseline/1",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model_path.name,
        "model_sha256": sha256(model_path),
        "input_size_px": image_result.input_size_px,
        "config": str(CLIPS_CONFIG.relative_to(ROOT)),
        "split": {**SPLIT, "heldout_videos": videos, "n_heldout_images": len(items),
                  "heldout_images": sorted(f"{p.parent.parent.name}/{p.name}" for p in images)},
        "tolerances": TOLERANCES,
        "images": _box_figures(image_result.metrics.as_dict()),
        "clips": {
            "names": [c["name"] for c in footage["clips"]],
            "frames": sum(c["analysed_frames"] for c in footage["clips"]),
            "boxes": _box_figures(footage["boxes"]),
            "alerts": _alert_figures(footage["alerts"]),
        },
        "throughput_not_gated": {"clips_frames_per_s": footage["throughput"]["frames_per_s"],
                                 "images_per_s": image_result.as_dict()["throughput"]["images_per_s"]},  # type: ignore[index]
    }


def compare(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Every figure of ``current`` worse than ``baseline`` beyond the baseline's tolerances (empty: pass)."""
    tol = {**TOLERANCES, **baseline.get("tolerances", {})}
    problems: list[str] = []

    def boxes(where: str, base: Mapping[str, Any], cur: Mapping[str, Any]) -> None:
        for key in ("map50", "map50_95"):
            if base.get(key) is not None and (cur.get(key) is None or cur[key] < base[key] - tol["ap"]):
                problems.append(f"{where}.{key}: {cur.get(key)} < baseline {base[key]:.4f} − {tol['ap']}")
        for name, b in base.get("classes", {}).items():
            c = cur.get("classes", {}).get(name)
            if c is None:
                problems.append(f"{where}.classes.{name}: missing (baseline has {b.get('n_labels')} labels)")
                continue
            for key in ("ap50", "ap50_95"):
                if b.get(key) is not None and (c.get(key) is None or c[key] < b[key] - tol["ap"]):
                    problems.append(f"{where}.classes.{name}.{key}: {c.get(key)} < baseline {b[key]:.4f} − {tol['ap']}")

    boxes("images", baseline["images"], current["images"])
    boxes("clips.boxes", baseline["clips"]["boxes"], current["clips"]["boxes"])
    for name, b in baseline["clips"]["alerts"]["classes"].items():
        c = current["clips"]["alerts"]["classes"].get(name, {"n_caught": 0, "n_false_alerts": 0,
                                                                "time_to_alert_mean_s": None})
        where = f"clips.alerts.{name}"
        if c["n_caught"] < b["n_caught"] - tol["events_caught"]:
            problems.append(f"{where}.n_caught: {c['n_caught']} < baseline {b['n_caught']}")
        if c["n_false_alerts"] > b["n_false_alerts"] + tol["false_alerts"]:
            problems.append(f"{where}.n_false_alerts: {c['n_false_alerts']} > baseline {b['n_false_alerts']}")
        bt, ct = b.get("time_to_alert_mean_s"), c.get("time_to_alert_mean_s")
        if bt is not None and ct is not None and ct > bt + tol["time_to_alert_s"]:
            problems.append(f"{where}.time_to_alert_mean_s: {ct:.3f} > baseline {bt:.3f} + {tol['time_to_alert_s']}")
    for name, c in current["clips"]["alerts"]["classes"].items():
        if name not in baseline["clips"]["alerts"]["classes"] and c["n_false_alerts"] > tol["false_alerts"]:
            problems.append(f"clips.alerts.{name}.n_false_alerts: {c['n_false_alerts']} > baseline 0")
    return problems


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(str(path), None, "an existing JSON file", "no such file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(str(path), None, "a readable JSON file", exc) from None


def baseline_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="minewatch eval baseline",
                                 description="Measure the starter model's baseline figures on held-out data;"
                                 " write them (--out) or compare them with the committed ones (--check).")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="../shared/data")
    ap.add_argument("--model", type=Path, help="model to measure (default: the config's, the starter model)")
    ap.add_argument("--out", type=Path, help="write the figures here (docs/baselines/minewatch-starter.json)")
    ap.add_argument("--check", type=Path, nargs="?", const=DEFAULT_BASELINE,
                    help="compare with this baseline (default: the committed one); exit 1 when worse")
    args = ap.parse_args(argv)
    if not args.shared.is_dir():
        raise UserError(str(args.shared), "--shared", "the shared data folder", "no such folder")
    figures = measure(args.shared, args.model, progress=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    if args.check:
        problems = compare(read_json(args.check), figures)
        for line in problems:
            print(line)
        print("worse than the baseline" if problems else "no figure worse than the baseline beyond its tolerance")
        return 1 if problems else 0
    if not args.out:
        print(json.dumps(figures, indent=2))
    return 0

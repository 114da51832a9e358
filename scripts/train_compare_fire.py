#!/usr/bin/env python
"""Compare the starter model with PyPI ``fire-detector==1.0.3`` (its ``light_yolov8_flame.pt``) on fire/smoke.

    .venv/bin/pip install --no-deps fire-detector==1.0.3     # comparison only; not a minewatch dependency
    nice -n 5 .venv/bin/python scripts/train_compare_fire.py --ours models/minewatch-starter.onnx

Both models are evaluated as ONNX files (the artefact a deployment runs) by Ultralytics' validator on the
SAME images: the fire8 part of the starter model's held-out split (same seed and grouping as
scripts/train_starter.py: whole source videos / original images), labels remapped to each model's ids.
Prints a markdown table per class (AP50, AP50-95).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.train.dataset import Item, Source, collect, split_groups  # noqa: E402
from pipeline.train.trainer import offline_env  # noqa: E402
from pipeline.types import CLASSES  # noqa: E402


def write_val(items: list[Item], out: Path, names: dict[int, str]) -> Path:
    """A val-only dataset of ``items`` with labels in the class order of ``names``."""
    ids = {name: i for i, name in names.items()}
    (out / "images" / "val").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "val").mkdir(parents=True, exist_ok=True)
    for k, it in enumerate(items):
        stem = f"{k:05d}_{it.image.stem}"
        dst = out / "images" / "val" / f"{stem}{it.image.suffix}"
        if not dst.exists():
            os.symlink(it.image.resolve(), dst)
        rows = [(ids[CLASSES[c]], cx, cy, w, h) for c, cx, cy, w, h in it.rows if CLASSES[c] in ids]
        (out / "labels" / "val" / f"{stem}.txt").write_text("".join(f"{c} {a} {b} {d} {e}\n" for c, a, b, d, e in rows))
    data = {"path": str(out), "train": "images/val", "val": "images/val", "names": names}
    (out / "data.yaml").write_text(yaml.safe_dump(data))
    return out / "data.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--ours", type=Path, default=ROOT / "models" / "minewatch-starter.onnx")
    ap.add_argument("--ours-imgsz", type=int, default=None, help="default: the model's own")
    ap.add_argument("--theirs-imgsz", type=int, nargs="+", default=[640, 320])
    ap.add_argument("--work", type=Path, default=Path("/tmp/minewatch-compare-fire"))
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    offline_env(args.work / "yolo_config")

    import fire_detector  # noqa: F401  (registers the custom modules its checkpoint pickles)
    from ultralytics import YOLO

    # the starter model's split: same sources, same order, same seed
    items = collect([Source(args.data / "fire8", ["fire", "smoke"])]) + collect(
        [Source(args.data / "excavator", ["excavator"])]
    )
    # train_starter.py collects fire8 first, then excavator: same order here
    _, val_idx = split_groups([it.group for it in items], args.val_fraction, args.seed)
    val = [items[i] for i in val_idx if "fire8" in items[i].group]
    print(f"fire8 validation images: {len(val)} from groups "
          f"{sorted({it.group for it in val if 'video:' in it.group})} + original images", flush=True)

    shutil.rmtree(args.work / "ours", ignore_errors=True)
    shutil.rmtree(args.work / "theirs", ignore_errors=True)
    ours_yaml = write_val(val, args.work / "ours", dict(enumerate(CLASSES)))
    theirs_pt = Path(fire_detector.__file__).parent / "models" / "light_yolov8_flame.pt"
    theirs_model = YOLO(str(theirs_pt))
    theirs_names = {int(k): str(v) for k, v in theirs_model.names.items()}
    theirs_yaml = write_val(val, args.work / "theirs", theirs_names)

    results: dict[str, dict[str, dict[str, float]]] = {}

    def run(label: str, model_path: str, data_yaml: Path, imgsz: int) -> None:
        metrics = YOLO(model_path, task="detect").val(
            data=str(data_yaml), imgsz=imgsz, batch=1, device="cpu", plots=False, verbose=False, workers=0,
            project=str(args.work / "runs"), name=label, exist_ok=True,
        )
        names = YOLO(model_path, task="detect").names if model_path.endswith(".pt") else metrics.names
        per = {}
        for k, cls in enumerate(metrics.box.ap_class_index):
            per[str(names[int(cls)])] = {"ap50": float(metrics.box.ap50[k]), "ap50_95": float(metrics.box.ap[k])}
        per["_speed_ms"] = {"inference": float(metrics.speed["inference"])}
        results[label] = per
        print(label, json.dumps(per), flush=True)

    ours_imgsz = args.ours_imgsz
    if ours_imgsz is None:
        import onnxruntime as ort

        meta = ort.InferenceSession(str(args.ours), providers=["CPUExecutionProvider"]).get_modelmeta()
        ours_imgsz = int(yaml.safe_load(meta.custom_metadata_map["imgsz"])[0])
    run(f"minewatch-starter@{ours_imgsz}", str(args.ours), ours_yaml, ours_imgsz)
    theirs_onnx = Path(theirs_model.export(format="onnx", imgsz=max(args.theirs_imgsz), dynamic=True, simplify=True))
    for size in args.theirs_imgsz:
        run(f"fire-detector@{size}", str(theirs_onnx), theirs_yaml, size)

    print()
    print("| model | fire AP50 | fire AP50-95 | smoke AP50 | smoke AP50-95 | inference ms/img (Ultralytics val, CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, per in results.items():
        f, s = per.get("fire", {}), per.get("smoke", {})
        print(f"| {label} | {f.get('ap50', float('nan')):.3f} | {f.get('ap50_95', float('nan')):.3f} |"
              f" {s.get('ap50', float('nan')):.3f} | {s.get('ap50_95', float('nan')):.3f} |"
              f" {per['_speed_ms']['inference']:.1f} |")
    (args.work / "compare.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train minewatch's one 5-class tower-scale network on the set of ``scripts/make_tower_dataset.py``.

    nice -n 10 .venv/bin/python scripts/make_tower_dataset.py --out /work/train/data
    nice -n 3 .venv/bin/python scripts/train_tower.py --data /work/train/data --work /work/train \\
        --weights models/minewatch-starter.pt --imgsz 320 --epochs 8 --hours 1.4
    # interrupted? continue where it stopped (last.pt is written after every epoch):
    nice -n 3 .venv/bin/python scripts/train_tower.py --data /work/train/data --work /work/train --resume

Fine-tunes from a 5-class minewatch checkpoint (its class head kept) or any Ultralytics checkpoint.
``--hours`` caps the run's wall time (Ultralytics ``time=``: the schedule is fitted to it after the
first epoch, so the learning rate still decays to its end). Export and the model card are separate steps
(``scripts/export_tower.py``) so that a stopped run can still be shipped from its last good epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.train.trainer import offline_env, train  # noqa: E402

#: tower crops are at native scale already: zoom only a little (objects of 8 px must stay visible),
#: haze and dusk in the colours, no vertical flips
TOWER_CROP_AUGMENT = {
    "scale": 0.35,
    "translate": 0.1,
    "hsv_h": 0.015,
    "hsv_s": 0.5,
    "hsv_v": 0.4,
    "fliplr": 0.5,
    "flipud": 0.0,
    "degrees": 0.0,
    "mosaic": 1.0,
    "close_mosaic": 1,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="output folder of make_tower_dataset.py")
    ap.add_argument("--work", type=Path, required=True, help="runs folder (outside the repository)")
    ap.add_argument("--weights", type=Path, default=ROOT / "models" / "minewatch-starter.pt")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hours", type=float, default=0.0, help="wall-time cap (0: none)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="tower")
    ap.add_argument("--resume", action="store_true", help="continue WORK/NAME/weights/last.pt")
    args = ap.parse_args()
    work = args.work.resolve()
    offline_env(work / "yolo_config")
    t0 = time.monotonic()
    if args.resume:
        from ultralytics import YOLO

        last = work / args.name / "weights" / "last.pt"
        YOLO(str(last)).train(resume=True)
        print(f"resumed run finished in {time.monotonic() - t0:.0f} s", flush=True)
        return 0
    from pipeline.train.trainer import checkpoint_names
    from pipeline.types import CLASSES

    keep_head = checkpoint_names(args.weights) == list(CLASSES)
    # a CPU run affords a few epochs: a short warm-up, and no per-epoch validation (the close-up split is
    # validated once at the end; tower figures come from `minewatch eval images --config`)
    extra: dict[str, object] = {"save_period": 1, "warmup_epochs": 0.3, "val": False}
    if args.hours > 0:
        extra["time"] = args.hours
    result = train(args.data.resolve() / "data.yaml", args.weights, work, args.epochs, args.imgsz,
                   batch=args.batch, workers=args.workers, seed=args.seed, augment=TOWER_CROP_AUGMENT,
                   name=args.name, cache="ram", keep_head=keep_head, extra=extra)
    summary = {"best_pt": str(result.best_pt), "seconds": result.seconds, "per_class": result.per_class,
               "summary": result.summary, "weights": str(args.weights), "imgsz": args.imgsz,
               "augment": TOWER_CROP_AUGMENT, "command": " ".join(sys.argv)}
    (work / args.name / "result.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

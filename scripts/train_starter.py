#!/usr/bin/env python
"""Train minewatch's starter model from ../shared/data, fully offline, and write its model card.

    nice -n 5 .venv/bin/python scripts/train_starter.py --imgsz 320 --epochs 12

Data: excavator photos (excavator), fire8 frames (fire, smoke); trucks and people come from
pseudo-labels of the COCO model on the same images, so fine-tuning keeps that knowledge.
Validation is split by source video for fire8 (frames of one video never straddle the split)
and by original image otherwise (Roboflow's augmented copies stay together).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.train.card import CardData, write_card  # noqa: E402
from pipeline.train.dataset import Item, Source, collect, write_dataset  # noqa: E402
from pipeline.train.trainer import TOWER_AUGMENT, export_onnx, offline_env, resume, train  # noqa: E402
from pipeline.types import CLASSES  # noqa: E402

#: class-head rows the starter model starts from (headinit): people and trucks keep COCO's knowledge
COCO_ROWS = {"excavator": "truck", "truck": "truck", "person": "person"}

DATA_ROWS = [
    {
        "source": "`fire8/` — Roboflow Universe, custom-thxhn/fire-wrpgm v8",
        "what": "833 CCTV, news and stock frames of fire and smoke (608×608)",
        "licence": "CC BY 4.0 — attribution: \"Roboflow Universe, custom-thxhn/fire-wrpgm v8\"",
    },
    {
        "source": "`excavator/` — GitHub miniexcav/Construction-Machines-Images-Dataset",
        "what": "120 photographs of excavators, one boxed per image",
        "licence": "none given; the authors state \"educational and research purposes only\": the weights are"
        " offered on the same terms for that part",
    },
    {
        "source": "COCO-pretrained YOLOv8n (Ultralytics) — base weights and pseudo-labels of trucks and people",
        "what": "`yolov8n_coco_pretrained.pt`",
        "licence": "AGPL-3.0 (Ultralytics); COCO annotations CC BY 4.0",
    },
]


def pseudo_label(items_fire: list[Item], items_exc: list[Item], weights: Path, cache: Path) -> dict[str, int]:
    """Add COCO trucks/people (fire8) and people (excavator photos); cached in ``cache`` (JSON)."""
    if cache.is_file():
        saved = json.loads(cache.read_text())
        added: dict[str, int] = {"truck": 0, "person": 0}
        for it in items_fire + items_exc:
            for row in saved.get(str(it.image), []):
                it.rows.append((int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4])))
                added["truck" if row[0] == 1 else "person"] += 1
        return added
    from pipeline.train.pseudo import add_pseudo_labels

    before = {str(it.image): len(it.rows) for it in items_fire + items_exc}
    added = add_pseudo_labels(items_fire, weights)
    # COCO calls many excavators "truck" (and only one machine is boxed per photo): keep only people there.
    more = add_pseudo_labels(items_exc, weights, keep={"person": "person"})
    added["person"] += more.get("person", 0)
    cache.write_text(json.dumps({str(it.image): it.rows[before[str(it.image)]:] for it in items_fire + items_exc}))
    return added


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="../shared/data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/minewatch-starter"), help="dataset + runs folder")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "minewatch-starter.onnx")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp16", action="store_true", help="also write an fp16 copy (GPU providers)")
    ap.add_argument("--no-export", action="store_true", help="train and validate only (size comparisons)")
    ap.add_argument("--fresh-head", action="store_true",
                    help="let Ultralytics re-initialise the class head (forgets COCO's people and trucks)")
    ap.add_argument("--warmup-epochs", type=float, default=3.0)
    ap.add_argument("--resume", type=Path, default=None,
                    help="continue this interrupted run's last.pt, its schedule set to --epochs in all")
    ap.add_argument("--previous-s", type=float, default=0.0,
                    help="with --resume: training seconds spent before the interruption (for the card)")
    args = ap.parse_args()

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    offline_env(work / "yolo_config")
    weights = args.data / "models" / "yolov8n_coco_pretrained.pt"
    exc = Source(args.data / "excavator", ["excavator"])
    fire = Source(args.data / "fire8", ["fire", "smoke"])
    items_exc = collect([exc])
    items_fire = collect([fire])
    t0 = time.monotonic()
    added = pseudo_label(items_fire, items_exc, weights, work / "pseudo_labels.json")
    print(f"pseudo-labels added: {added} ({time.monotonic() - t0:.0f} s)", flush=True)

    info = write_dataset(items_fire + items_exc, work / "dataset", args.val_fraction, args.seed)
    print(f"dataset: train {info.n_train} ({info.boxes_train}), val {info.n_val} ({info.boxes_val})", flush=True)
    print(f"val groups ({info.groups_val}): {[g for g in info.val_groups if 'video:' in g]} + image groups")

    name = f"starter_{args.imgsz}_{args.epochs}e" + ("" if args.fresh_head else "_cocohead")
    start = weights
    if not args.fresh_head:
        from pipeline.train.headinit import init_from_pretrained

        start = work / "init_cocohead.pt"
        used = init_from_pretrained(weights, CLASSES, COCO_ROWS, start)
        print(f"class head rows from COCO: {used}", flush=True)
    if args.resume is not None:
        result = resume(args.resume, args.epochs, info.yaml_path, args.imgsz, batch=args.batch)
        result.seconds += args.previous_s
    else:
        result = train(info.yaml_path, start, work / "runs", args.epochs, args.imgsz, batch=args.batch,
                       seed=args.seed, name=name, keep_head=not args.fresh_head,
                       extra={"warmup_epochs": args.warmup_epochs})
    record = {
        "imgsz": args.imgsz, "epochs": args.epochs, "train_s": result.seconds, "per_class": result.per_class,
        "summary": result.summary, "best": str(result.best_pt), "pseudo_added": added,
        "n_train": info.n_train, "n_val": info.n_val, "boxes_val": info.boxes_val,
        "val_video_groups": [g for g in info.val_groups if "video:" in g],
    }
    (work / f"{name}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2), flush=True)
    if args.no_export:
        return 0

    files = export_onnx(result.best_pt, args.out, args.imgsz, fp16=args.fp16)
    videos = sorted(g.split("video:", 1)[1] for g in info.val_groups if "video:" in g)
    card = CardData(
        title="minewatch-starter — YOLOv8n for excavator, truck, fire, smoke, person",
        model_files=files,
        command="nice -n 5 .venv/bin/python scripts/train_starter.py " + shlex.join(sys.argv[1:]),
        base_weights="`../shared/data/models/yolov8n_coco_pretrained.pt` (COCO-80, Ultralytics YOLOv8n)",
        imgsz=args.imgsz,
        epochs=args.epochs,
        train_seconds=result.seconds,
        data_rows=DATA_ROWS,
        split=(
            f"{args.val_fraction:.0%} held out, by group (seed {args.seed}): fire8 frames by SOURCE VIDEO"
            f" (validation videos: {', '.join(videos) or 'none'}), other fire8 images by original image"
            " (Roboflow's augmented copies stay together), excavator photos by image"
        ),
        n_train=info.n_train,
        n_val=info.n_val,
        boxes_train=info.boxes_train,
        boxes_val=info.boxes_val,
        per_class=result.per_class,
        summary=result.summary,
        augment=TOWER_AUGMENT,
        notes=[
            "Trucks and people are labelled by the COCO model itself (confidence ≥ 0.5, not checked by a"
            " person): their figures measure agreement with the COCO model, which scores ≈1 on them by"
            " construction. There are few of them (6 trucks, 48 people in training), so their knowledge comes"
            " from the head transfer below, not from this data.",
            "Class head: "
            + ("re-initialised by Ultralytics (COCO's people and trucks are forgotten)." if args.fresh_head else
               "the COCO model's classification branch is kept; the rows of person and truck start from COCO's"
               " person and truck, excavator from COCO's truck, fire and smoke from zero (pipeline/train/"
               "headinit.py). Without it the model forgot people entirely (AP50 0.006 on the same split)."),
            "The excavator photos are close-ups; machines a few dozen pixels high on tower views are not in"
            " the data: fine-tune on the bureau's own footage (`minewatch train`) before trusting it there.",
            "fire8 images were stretched to 608×608 by the exporter; smoke boxes are loose by nature, so"
            " AP50-95 for smoke is low.",
            "CPU cost (onnxruntime, 2 cores, batch 1): see docs/BENCHMARKS.md `## Detector`.",
        ],
    )
    write_card(card, args.out.with_suffix(".md"))
    print(f"wrote {', '.join(map(str, files))} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

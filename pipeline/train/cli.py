"""``minewatch train``: fine-tune a detector on folders of YOLO-labelled images, export ONNX, write a card.

    minewatch train --data harvest/ --data other/=digger,lorry --map digger=excavator --map lorry=truck \\
        --weights models/base.pt --out models/site.onnx --epochs 30 --imgsz 640

Every ``--data`` folder holds ``images/`` + ``labels/`` (or images with ``.txt`` labels beside them) and
names its classes in ``classes.txt`` / ``data.yaml``, or after ``=``. Class names that are minewatch's
own (excavator, truck, fire, smoke, person) need no ``--map``; other names without one are dropped.
The validation split keeps the frames of one source video (or one camera preset of a harvest) together.
Needs the ``train`` extra (Ultralytics + torch); the daemon never imports this module.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from pipeline.errors import UserError
from pipeline.logs import get_logger, setup_logging
from pipeline.types import CLASSES

log = get_logger("train")

LICENCE_FILES = ("licence.txt", "license.txt", "LICENSE", "LICENCE", "LICENSE.txt")


def parse_map(items: list[str]) -> dict[str, str | None]:
    """``name=target`` pairs (target a minewatch class, or ``none`` to drop) → dict; UserError otherwise."""
    out: dict[str, str | None] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name:
            raise UserError("command line", "--map", "NAME=CLASS (CLASS one of " + ", ".join(CLASSES) + " or none)",
                            item)
        target = target.strip()
        if target.lower() in ("none", "null", "drop", ""):
            out[name.strip()] = None
        elif target in CLASSES:
            out[name.strip()] = target
        else:
            raise UserError("command line", "--map", "a target among " + ", ".join(CLASSES) + " or none", target)
    return out


def parse_head_from(items: list[str]) -> dict[str, str | None]:
    """``CLASS=PRETRAINED`` pairs (CLASS a minewatch class, PRETRAINED a class of the checkpoint)."""
    out: dict[str, str | None] = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or name.strip() not in CLASSES or not source.strip():
            raise UserError("command line", "--head-from", "CLASS=PRETRAINED with CLASS one of " + ", ".join(CLASSES),
                            item)
        out[name.strip()] = source.strip()
    return out


def source_licence(root: Path) -> str:
    for name in LICENCE_FILES:
        path = root / name
        if path.is_file():
            text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
            return text[:300]
    return "not stated (put a licence.txt in the folder)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="minewatch train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", action="append", required=True, metavar="DIR[=NAMES]",
                    help="a folder of YOLO-labelled images; NAMES = its class names by id, comma-separated")
    ap.add_argument("--map", action="append", default=[], metavar="NAME=CLASS",
                    help="map a source class name to a minewatch class (or none); repeatable")
    ap.add_argument("--weights", required=True,
                    help="local checkpoint to start from (.pt), or a model .yaml to start from scratch")
    ap.add_argument("--out", type=Path, required=True, help="ONNX file to write; the card goes beside it (.md)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=640, help="training and export input size (multiple of 32)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--val-fraction", type=float, default=0.2,
                    help="share of images (whole videos/groups) held out for validation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="dataset and run folder (default: var/train/<out name>)")
    ap.add_argument("--fp16", action="store_true", help="also write an fp16 ONNX (for GPU providers)")
    ap.add_argument("--workers", type=int, default=2, help="data-loader processes")
    ap.add_argument("--title", default=None, help="model card title")
    ap.add_argument("--head-from", action="append", default=[], metavar="CLASS=PRETRAINED",
                    help="start minewatch CLASS's output from the checkpoint's class PRETRAINED (e.g. person=person,"
                    " truck=truck for a COCO checkpoint), so it is not forgotten; repeatable")
    return ap


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("INFO")
    if args.imgsz % 32 or not 32 <= args.imgsz <= 4096:
        raise UserError("command line", "--imgsz", "a multiple of 32 between 32 and 4096", args.imgsz)
    if not 0 < args.val_fraction < 1:
        raise UserError("command line", "--val-fraction", "a fraction between 0 and 1", args.val_fraction)
    if args.epochs < 1:
        raise UserError("command line", "--epochs", "at least 1", args.epochs)
    weights = Path(args.weights)
    if weights.suffix not in (".pt", ".yaml", ".yml"):
        raise UserError(str(weights), "--weights", "an Ultralytics .pt checkpoint or model .yaml", weights.suffix)
    if weights.suffix == ".pt" and not weights.is_file():
        raise UserError(str(weights), "--weights", "a local .pt file (nothing is downloaded)", "no such file")
    if args.out.suffix != ".onnx":
        raise UserError(str(args.out), "--out", "a path ending in .onnx", args.out.suffix or "no suffix")

    from pipeline.train.card import CardData, write_card
    from pipeline.train.dataset import collect, parse_source, write_dataset

    class_map = parse_map(args.map)
    sources = [parse_source(spec, class_map) for spec in args.data]
    items = collect(sources)
    if not any(it.rows for it in items):
        raise UserError(", ".join(args.data), "labels", "at least one box of a mapped class", "none")
    groups = {it.group for it in items}
    if len(groups) < 2:
        raise UserError(", ".join(args.data), "--data", "images from at least 2 videos/groups to split", len(groups))
    work: Path = (args.work or Path("var") / "train" / args.out.stem).resolve()
    info = write_dataset(items, work / "dataset", args.val_fraction, args.seed)
    if info.n_val == 0:
        raise UserError(", ".join(args.data), "--val-fraction", "a validation split with images", "none")
    log.info("dataset: %d train / %d val images (%d / %d groups); boxes train %s, val %s", info.n_train,
             info.n_val, info.groups_train, info.groups_val, info.boxes_train, info.boxes_val)

    from pipeline.train.trainer import TOWER_AUGMENT, checkpoint_names, export_onnx, train

    start, keep_head = weights, False
    if args.head_from:
        if weights.suffix != ".pt":
            raise UserError(str(weights), "--head-from", "a pretrained .pt checkpoint to take rows from", "a yaml")
        from pipeline.train.headinit import init_from_pretrained

        head_rows = parse_head_from(args.head_from)
        start = work / "init_head.pt"
        used = init_from_pretrained(weights, CLASSES, head_rows, start)
        log.info("class head rows from %s: %s", weights.name, used)
        keep_head = True
    elif weights.suffix == ".pt" and checkpoint_names(weights) == list(CLASSES):
        keep_head = True  # a minewatch model (e.g. the starter's .pt): fine-tune its head as it is
    result = train(info.yaml_path, start, work / "runs", args.epochs, args.imgsz, batch=args.batch,
                   seed=args.seed, workers=args.workers, name="train", cache=False, keep_head=keep_head)
    files = export_onnx(result.best_pt, args.out, args.imgsz, fp16=args.fp16)
    rows = [
        {"source": f"`{s.root}`", "what": f"{sum(1 for it in items if it.source == str(s.root))} images, classes "
         + ", ".join(f"{n}→{s.class_map.get(n, n if n in CLASSES else None) or 'dropped'}" for n in s.names),
         "licence": source_licence(s.root)}
        for s in sources
    ]
    videos = [g for g in info.val_groups if "/video:" in g or "/seq:" in g]
    card = CardData(
        title=args.title or f"{args.out.stem} — fine-tuned by minewatch train",
        model_files=files,
        command="minewatch train " + shlex.join(argv),
        base_weights=f"`{weights}`",
        imgsz=args.imgsz,
        epochs=args.epochs,
        train_seconds=result.seconds,
        data_rows=rows,
        split=(f"{args.val_fraction:.0%} held out by group (seed {args.seed}); frames of one video or camera"
               f" preset never straddle the split; validation videos/sequences: {', '.join(videos) or 'none'}"),
        n_train=info.n_train,
        n_val=info.n_val,
        boxes_train=info.boxes_train,
        boxes_val=info.boxes_val,
        per_class=result.per_class,
        summary=result.summary,
        augment=TOWER_AUGMENT,
    )
    card_path = write_card(card, args.out.with_suffix(".md"))
    print(f"wrote {', '.join(str(f) for f in files)} and {card_path}")
    for name in CLASSES:
        fig = result.per_class.get(name)
        if fig:
            print(f"  {name:<10} AP50 {fig['ap50']:.3f}  AP50-95 {fig['ap50_95']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))

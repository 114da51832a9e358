#!/usr/bin/env python
"""Export the tower network to ONNX (dynamic shape, fp16-stored weights, fp32 compute) with its metadata.

    .venv/bin/python scripts/export_tower.py --weights /work/train/tower/weights/best.pt \\
        --out models/minewatch-tower.onnx --imgsz 320 [--size-floor-from eval-out/report.json]

Metadata (beside Ultralytics' names, imgsz, stride): ``size_floor_px``, a JSON object class → the
smallest object height (source-frame pixels) at which the shipped default inference path finds at least
half of the objects (recall ≥ 0.5 at the class threshold), read from a ``minewatch eval images --config``
report on the validation composites: the lower edge of the smallest height bin from which every larger
bin reaches 0.5 (the "<16" bin counts from 8 px, the smallest height the composites hold). Classes with no
validation boxes at tower scale are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.eval.boxmetrics import HEIGHT_BINS_PX  # noqa: E402

#: smallest object height the validation composites hold (make_tower_dataset: 8–128 px)
SMALLEST_PX = 8.0


def size_floor(report: dict[str, object], min_recall: float = 0.5, min_labels: int = 5) -> dict[str, float]:
    classes = report["boxes"]["classes"]  # type: ignore[index]
    out: dict[str, float] = {}
    for name, c in classes.items():  # type: ignore[union-attr]
        per = c.get("by_height_px") or {}
        floor: float | None = None
        for label, lo, _hi in reversed(HEIGHT_BINS_PX):
            fig = per.get(label) or {}
            if not fig.get("n_labels") or fig["n_labels"] < min_labels:
                continue
            if fig["recall"] is not None and fig["recall"] >= min_recall:
                floor = max(lo, SMALLEST_PX)
            else:
                break
        if floor is not None:
            out[name] = floor
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--size-floor-from", type=Path, help="report.json of `minewatch eval images --config`")
    ap.add_argument("--only-metadata", action="store_true", help="just (re)write the metadata of --out")
    args = ap.parse_args()
    import onnx

    from pipeline.train.merge import _weights_to_fp16
    from pipeline.train.trainer import export_onnx

    if not args.only_metadata:
        export_onnx(args.weights, args.out, args.imgsz)
        model = onnx.load(str(args.out))
        _weights_to_fp16(model)
    else:
        model = onnx.load(str(args.out))
    if args.size_floor_from:
        floors = size_floor(json.loads(args.size_floor_from.read_text()))
        for p in list(model.metadata_props):
            if p.key == "size_floor_px":
                model.metadata_props.remove(p)
        model.metadata_props.add(key="size_floor_px", value=json.dumps(floors))
        print(f"size_floor_px {floors}")
    onnx.save(model, str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""AP per object height against milliseconds per frame, for candidate default inference paths (issue 15).

    nice -n 5 .venv/bin/python scripts/bench_tower.py --model models/minewatch-tower.onnx \\
        --data /work/train/data/val_tower --out /tmp/bench_tower [--limit 40]

Each candidate is a camera configuration (input size, tiling) run through ``minewatch eval images --config``'s
path, i.e. the daemon's own :class:`pipeline.detect.path.InferencePath`, on the validation composites of
``scripts/make_tower_dataset.py`` (whole 1920×1280 tower frames, cut-outs of held-out photos on held-out
backgrounds). Zone tiles run the same crops as "all tiles" for a machine inside a zone (so their AP there is
that row's) at the cost of the tiles a zone covers: counted here for the zones of ``--zones-config``
(cameras.yaml) projected into a 1920×1080 view with its camera's pose, and timed on such frames.
Milliseconds are wall time per frame on one detector session (all cores), batch 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Config, load_config  # noqa: E402
from pipeline.eval.boxmetrics import HEIGHT_BINS_PX  # noqa: E402
from pipeline.eval.images import evaluate_images  # noqa: E402
from pipeline.eval.labels import load_image_dataset  # noqa: E402

CLASSES_SHOWN = ("excavator", "truck", "person")


def candidate(base: Config, model: Path, imgsz: int, tiling: dict[str, Any] | None) -> Config:
    cam = base.cameras[0].model_copy(update={"tiling": None})
    data = base.model_dump()
    data["cameras"] = [{**cam.model_dump(), "tiling": tiling}]
    data["detector"] = {**data["detector"], "model_path": str(model), "input_size_px": imgsz,
                        "providers": ["CPUExecutionProvider"]}
    return Config.model_validate(data)


def zone_tile_count(config: Config, wh: tuple[int, int]) -> tuple[int, int]:
    """(tiles run, tiles in the grid) of the config's first camera on a ``wh`` frame at its configured pose."""
    from pipeline.analyzer import Analyzer
    from pipeline.detect.tiling import tile_grid
    from pipeline.detect.zonetiles import ZoneTiler
    from pipeline.eval.hookup import load_zones
    from pipeline.types import Pose

    cam = config.cameras[0]
    assert cam.tiling is not None
    zones = load_zones(config)
    analyzer = Analyzer(config, zones)
    tiler = ZoneTiler(analyzer.cameras[cam.id].model, zones, cam.tiling.zone_margin_px)
    grid = tile_grid(wh, cam.tiling.tile_px, cam.tiling.overlap_frac)
    active = tiler.active(Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg), wh, grid)
    return int(active.sum()), len(grid)


def time_path(config: Config, wh: tuple[int, int], n: int) -> float:
    """Milliseconds per frame of the config's path on ``n`` noise frames of size ``wh`` (after one warm-up)."""
    from pipeline.eval.hookup import make_detector
    from pipeline.eval.images import config_path_runner

    detector = make_detector(config.detector, 0.25)
    run = config_path_runner(config)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8) for _ in range(2)]
    run(detector, [frames[0]])
    t0 = time.perf_counter()
    for k in range(n):
        run(detector, [frames[k % 2]])
    return (time.perf_counter() - t0) / n * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="val_tower of make_tower_dataset.py")
    ap.add_argument("--zones-config", type=Path, default=ROOT / "cameras.yaml")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--time-frames", type=int, default=10)
    ap.add_argument("--only", nargs="*", help="candidate names to run")
    args = ap.parse_args()
    base = load_config(args.zones_config)
    items, names = load_image_dataset(args.data, None)
    if args.limit:
        items = items[: args.limit]
    tiles320 = {"tile_px": 320, "overlap_frac": 0.2, "include_full_frame": True}
    cands: list[tuple[str, int, dict[str, Any] | None]] = [
        ("320 whole frame", 320, None),
        ("640 whole frame", 640, None),
        ("960 whole frame", 960, None),
        ("320 + all 320 px tiles", 320, tiles320),
    ]
    if args.only:
        cands = [c for c in cands if c[0] in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name, imgsz, tiling in cands:
        cfg = candidate(base, args.model, imgsz, tiling)
        res = evaluate_images(cfg.detector, items, names, progress=False, config=cfg)
        ms_eval = res.wall_s / max(1, res.n_images) * 1000.0
        ms_1080 = time_path(cfg, (1920, 1080), args.time_frames)
        classes = res.metrics.as_dict()["classes"]
        row = {"name": name, "imgsz": imgsz, "tiling": tiling, "ms_per_1080p_frame": ms_1080,
               "ms_per_eval_frame": ms_eval, "images": res.n_images,
               "classes": {c: classes[c] for c in CLASSES_SHOWN if c in classes}}
        rows.append(row)
        print(json.dumps({"name": name, "ms_1080p": round(ms_1080, 1), "excavator": {
            k: v for k, v in classes["excavator"]["by_height_px"].items()}}), flush=True)
    # zone tiles: the tiles the config's zones cover, timed
    zcfg = candidate(base, args.model, 320, {**tiles320, "zones_only": True})
    run_tiles, all_tiles = zone_tile_count(zcfg, (1920, 1080))
    ms_zone = time_path(zcfg, (1920, 1080), args.time_frames)
    rows.append({"name": f"320 + zone tiles ({args.zones_config.name}: {run_tiles} of {all_tiles} tiles)",
                 "imgsz": 320, "tiling": {**tiles320, "zones_only": True}, "ms_per_1080p_frame": ms_zone,
                 "zone_tiles": [run_tiles, all_tiles], "classes": None})
    (args.out / "bench_tower.json").write_text(json.dumps(rows, indent=1))
    lines = ["| path | ms / 1080p frame | frames/s | " + " | ".join(
        f"excavator AP50 / recall {b[0]}" for b in HEIGHT_BINS_PX[:4]) + " | truck AP50 | person AP50 |",
        "|---|---:|---:|" + "---:|" * (len(HEIGHT_BINS_PX[:4]) + 2)]
    for r in rows:
        if r["classes"] is None:
            cells = ["as all tiles inside a zone; as 320 outside"] + [""] * (len(HEIGHT_BINS_PX[:4]) + 1)
        else:
            ex = r["classes"]["excavator"]["by_height_px"]
            cells = [f"{_f(ex[b[0]]['ap50'])} / {_f(ex[b[0]]['recall'])}" for b in HEIGHT_BINS_PX[:4]]
            cells += [_f(r["classes"].get("truck", {}).get("ap50")), _f(r["classes"].get("person", {}).get("ap50"))]
        lines.append(f"| {r['name']} | {r['ms_per_1080p_frame']:.0f} | {1000 / r['ms_per_1080p_frame']:.1f} | "
                     + " | ".join(cells) + " |")
    (args.out / "bench_tower.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    sys.exit(main())

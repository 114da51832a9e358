"""Validation of the smoke stage on synthetic sequences built from real tower frames (docs/SMOKE.md).

    python scripts/smoke_validate.py [--set dev|val|all] [--out smoke-validation.json] [--set-knob NAME=VALUE]

Material (nothing is written into the repository; the shared data is read from ../shared/data):
- positives: the 40 real pre-ignition frames of hpwren-rm-w-20180728 (-2400 … -60 s, one a minute), with a
  synthetic ignition at -1200 s: a plume composited from then on, growing from a ground point and drifting
  (its base, size, opacity, brightness, rise and drift drawn from a seeded generator); half of the sequences
  are mirrored left-right (the mast on the other side, another horizon line);
- negatives: the same real pre-ignition frames without a plume (plain and mirrored; 40 minutes of haze,
  sun and the mast), with a global exposure ramp, and procedural views with drifting clouds and exposure
  jumps (``pipeline.smoke.synthetic.landscape``).
Seeds 0-9 are the **dev** set (looked at while choosing the defaults); seeds 100-129 are the **val** set,
reported only. The real rm-w fire itself is scored with ``minewatch eval sequence`` (docs/SMOKE.md).

Scoring per sequence: minutes from the (synthetic) ignition to the first confirmed plume whose base lies within
8 % of the frame width of the true base (a hit), plumes confirmed before the ignition (false alerts), and
plumes confirmed after it elsewhere (misplaced alerts). The stage runs alone here (no detector): with
``zones.fire_anywhere`` every confirmed plume is an alert (the events add no confirmation of their own).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.smoke.config import SmokeConfig  # noqa: E402
from pipeline.smoke.synthetic import PlumeSpec, jpeg, landscape, with_plume  # noqa: E402
from pipeline.smoke.watcher import Plume, SmokeWatcher  # noqa: E402
from pipeline.types import Frame, Pose  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RMW = SHARED / "tower_smoke" / "hpwren-rm-w-20180728"
IGNITION_S = -1200.0
WIDTH = 1280  # frames are shrunk to this once (the stage shrinks to smoke.width_px anyway)
DEV = list(range(0, 10))
VAL = list(range(100, 130))


def real_frames(mirror: bool) -> list[tuple[float, np.ndarray]]:
    out = []
    for p in sorted(RMW.glob("-*.jpg"), key=lambda p: float(p.stem)):
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        img = cv2.resize(img, (WIDTH, round(h * WIDTH / w)), interpolation=cv2.INTER_AREA)
        out.append((float(p.stem), img[:, ::-1].copy() if mirror else img))
    return out


def spec_for(seed: int, mirror: bool) -> PlumeSpec:
    """A plume on the ground of the rm-w view (below the far ridge at ~53 % of the height), clear of the mast."""
    rng = np.random.default_rng(seed)
    x = float(rng.uniform(0.2, 0.95))
    y = float(rng.uniform(0.56, 0.72))
    if mirror:
        x = 1.0 - x
    return PlumeSpec(
        base_xy_frac=(x, y),
        rise_frac_per_min=float(rng.uniform(0.008, 0.03)),
        width_frac=float(rng.uniform(0.002, 0.006)),
        spread=float(rng.uniform(0.2, 0.5)),
        drift_frac_per_min=float(rng.uniform(-0.01, 0.01)),
        opacity=float(rng.uniform(0.25, 0.6)),
        grey_level=float(rng.uniform(185, 235)),
        onset_min=float(rng.uniform(0.5, 1.5)),
        ramp_min=float(rng.uniform(2.0, 5.0)),
    )


def jitter(frames: list[tuple[float, np.ndarray]], px: float) -> list[tuple[float, np.ndarray]]:
    """Each frame shifted by a random (dx, dy) of up to ``px`` pixels: a PTZ head back at its preset."""
    rng = np.random.default_rng(11)
    out = []
    for t, img in frames:
        dx, dy = rng.uniform(-px, px, 2)
        m = np.asarray([[1, 0, dx], [0, 1, dy]], np.float32)
        out.append((t, cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REPLICATE)))
    return out


def spec_mirrored(name: str) -> bool:
    return name.endswith("-mirrored")


def play(frames: list[tuple[float, np.ndarray]], cfg: SmokeConfig) -> tuple[dict[float, list[Plume]], float]:
    watcher = SmokeWatcher(cfg)
    out: dict[float, list[Plume]] = {}
    cpu = 0.0
    for i, (t, img) in enumerate(frames):
        t0 = time.process_time()
        out[t] = watcher.observe(Frame("v", i, t, img, Pose(0, 0, 100)))
        cpu += time.process_time() - t0
    return out, cpu / max(1, len(frames))


def score(out: dict[float, list[Plume]], wh: tuple[int, int], ignition: float | None,
          base_xy: tuple[float, float] | None) -> dict[str, Any]:
    seen: dict[int, tuple[float, Plume]] = {}
    for t, plumes in out.items():
        for p in plumes:
            seen.setdefault(p.candidate_id, (t, p))  # first frame a plume was handed on = its alert
    false_before, misplaced, hit_t = 0, 0, None
    for t, p in seen.values():
        if ignition is None or t < ignition:
            false_before += 1
            continue
        bx, by = (p.xyxy[0] + p.xyxy[2]) / 2, p.xyxy[3]
        near = 0.08 * wh[0]
        if base_xy is not None and abs(bx - base_xy[0] * wh[0]) <= near and abs(by - base_xy[1] * wh[1]) <= near:
            hit_t = t if hit_t is None else min(hit_t, t)
        else:
            misplaced += 1
    minutes = None if hit_t is None or ignition is None else (hit_t - ignition) / 60.0
    return {"minutes_to_alert": minutes, "false_before_ignition": false_before, "misplaced_after": misplaced}


def sequences(seeds: list[int]) -> list[dict[str, Any]]:
    cache: dict[bool, list[tuple[float, np.ndarray]]] = {}
    items: list[dict[str, Any]] = []
    for seed in seeds:
        mirror = seed % 2 == 1
        if mirror not in cache:
            cache[mirror] = real_frames(mirror)
        spec = spec_for(seed, mirror)
        items.append({"name": f"rmw-plume-{seed}{'-mirrored' if mirror else ''}", "kind": "positive",
                      "frames": lambda s=spec, m=mirror, sd=seed: with_plume(cache[m], s, IGNITION_S, sd),
                      "ignition": IGNITION_S, "spec": spec})
    return items


def night_ir(frames: list[tuple[float, np.ndarray]]) -> list[tuple[float, np.ndarray]]:
    """The second half as a night IR camera sees it: grey, dark, strong sensor noise (new every frame)."""
    out = []
    for t, img in frames:
        if t >= IGNITION_S:
            rng = np.random.default_rng(int(t) + 100_000)
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.45 + 10
            grey += rng.normal(0, 6.0, grey.shape).astype(np.float32)
            img = jpeg(cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
        out.append((t, img))
    return out


def negatives(seeds: list[int]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if seeds == DEV or seeds == DEV + VAL:
        items.append({"name": "rmw-pre-ignition", "kind": "negative", "frames": lambda: real_frames(False)})
    if seeds == VAL or seeds == DEV + VAL:
        items.append({"name": "rmw-pre-ignition-mirrored", "kind": "negative", "frames": lambda: real_frames(True)})
        items.append({"name": "rmw-pre-ignition-exposure-ramp", "kind": "negative",
                      "frames": lambda: [(t, jpeg(np.clip(img.astype(np.float32) * (1 + 0.004 * (t + 2400) / 60), 0,
                                                          255).astype(np.uint8)))
                                         for t, img in real_frames(False)]})
    if seeds == VAL or seeds == DEV + VAL:
        items.append({"name": "rmw-day-to-night-ir", "kind": "negative",
                      "frames": lambda: night_ir(real_frames(False))})
    for seed in seeds[:4]:
        items.append({"name": f"procedural-clouds-{seed}", "kind": "negative",
                      "frames": lambda sd=seed: [(float(t), landscape((WIDTH, 720), t, seed=sd))
                                                 for t in range(-2400, 1, 60)]})
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=("dev", "val", "all"), default="val")
    ap.add_argument("--out", type=Path, help="write every figure here (JSON)")
    ap.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    ap.add_argument("--opacity", type=float, help="every plume's peak opacity (the detection limit sweep)")
    ap.add_argument("--jitter-px", type=float, default=0.0,
                    help="shift every frame by a random offset of up to this many pixels (PTZ pose error)")
    ap.add_argument("--only", help="run only the sequences whose name contains this")
    ap.add_argument("--set-knob", action="append", default=[], help="smoke config NAME=VALUE (repeatable)")
    args = ap.parse_args()
    global RMW
    RMW = args.shared / "tower_smoke" / "hpwren-rm-w-20180728"
    if not RMW.is_dir():
        print(f"shared data absent: {RMW}", file=sys.stderr)
        return 2
    knobs = {k: float(v) for k, v in (kv.split("=", 1) for kv in args.set_knob)}
    cfg = SmokeConfig(**knobs)  # type: ignore[arg-type]
    seeds = {"dev": DEV, "val": VAL, "all": DEV + VAL}[args.set]
    rows = []
    for item in sequences(seeds) + negatives(seeds):
        if args.only and args.only not in item["name"]:
            continue
        frames = item["frames"]()
        if args.jitter_px > 0:
            frames = jitter(frames, args.jitter_px)
        h, w = frames[0][1].shape[:2]
        spec = item.get("spec")
        if spec is not None and args.opacity is not None:
            from dataclasses import replace

            spec = replace(spec, opacity=args.opacity)
            item["spec"] = spec
            frames = with_plume([(t, img) for t, img in real_frames(spec_mirrored(item["name"]))], spec, IGNITION_S,
                                int(item["name"].split("-")[2]))
        out, cpu_s = play(frames, cfg)
        row = {"name": item["name"], "kind": item["kind"], "frames": len(frames),
               **score(out, (w, h), item.get("ignition"), spec.base_xy_frac if spec else None),
               "cpu_ms_per_frame": round(cpu_s * 1000, 1)}
        if spec is not None:
            row["spec"] = asdict(spec)
        rows.append(row)
        print(f"{row['name']:36s} {row['kind']:8s} minutes={row['minutes_to_alert']}"
              f" false={row['false_before_ignition']} misplaced={row['misplaced_after']}", flush=True)
    pos = [r for r in rows if r["kind"] == "positive"]
    hits = [r["minutes_to_alert"] for r in pos if r["minutes_to_alert"] is not None]
    summary = {
        "set": args.set, "knobs": knobs, "positives": len(pos), "alerted": len(hits),
        "alerted_within_5_min": sum(m <= 5.0 for m in hits),
        "mean_minutes": float(np.mean(hits)) if hits else None,
        "median_minutes": float(np.median(hits)) if hits else None,
        "false_alerts_before_ignition": sum(r["false_before_ignition"] for r in rows),
        "sequences_with_false_alerts": sum(r["false_before_ignition"] > 0 for r in rows),
        "negatives": sum(r["kind"] == "negative" for r in rows),
        "misplaced_after_ignition": sum(r["misplaced_after"] for r in pos),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "sequences": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

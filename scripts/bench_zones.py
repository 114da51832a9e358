#!/usr/bin/env python
"""What tracking + rules + events cost per analysed frame, and how exact the probability in a zone is.

    nice -n 5 .venv/bin/python scripts/bench_zones.py --detections 1 10 30 --zones 10 200

Cost: one EventManager (ByteTrack-style tracker, zone rules, events) of one camera; each frame has N
excavators parked in a grid of Z square zones around 1-4 km east of the tower, with jittered ground fixes
(σ = 20 m); 300 frames, the first 10 left out; median and 95th percentile milliseconds per frame.

Accuracy: the 256-point integration of the fix's Gaussian over a half-plane against the exact normal CDF,
for anisotropic ellipses (1 : 0.3) at 13 orientations and offsets from −3σ to 3σ: largest and mean error.
Prints markdown for docs/ZONES.md (## Cost).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import AlertsConfig, CameraConfig, ZonesConfig  # noqa: E402
from pipeline.events.lifecycle import EventManager  # noqa: E402
from pipeline.geo.coords import LocalFrame  # noqa: E402
from pipeline.track import PresetTrackers, per_track  # noqa: E402
from pipeline.types import Detections, Frame, GroundFix, Pose  # noqa: E402
from pipeline.zones.index import sample_points_en  # noqa: E402
from pipeline.zones.model import Zone, parse_feature_collection  # noqa: E402

LAT0, LON0 = 38.70, 111.60
LOCAL = LocalFrame(LAT0, LON0)


def zone_grid(n: int) -> list[Zone]:
    side = math.ceil(math.sqrt(n))
    features = []
    for i in range(n):
        e0, n0 = 1000 + (i % side) * 3000 / side, -1500 + (i // side) * 3000 / side
        half = 0.3 * 3000 / side
        east = np.array([e0 - half, e0 + half, e0 + half, e0 - half, e0 - half])
        north = np.array([n0 - half, n0 - half, n0 + half, n0 + half, n0 - half])
        lat, lon = LOCAL.to_wgs84(east, north)
        ring = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]
        features.append(
            {
                "type": "Feature",
                "properties": {"id": f"z{i}", "name": f"zone {i}", "kind": "closed_mine"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return parse_feature_collection({"type": "FeatureCollection", "features": features}, "bench")


def fix_at(east: float, north: float, sigma: float) -> GroundFix:
    lat, lon = LOCAL.to_wgs84(east, north)
    return GroundFix(
        float(lat),
        float(lon),
        1000.0,
        math.hypot(east, north),
        math.degrees(math.atan2(east, north)) % 360,
        2.146 * sigma,
        2.146 * sigma,
        0.0,
        (sigma**2, 0.0, 0.0, sigma**2),
        ("b1",),
    )


def cost_ms(n_det: int, n_zones: int, frames: int = 300) -> tuple[float, float, int]:
    cam = CameraConfig.model_validate({"id": "b1", "source": "x.mp4", "lat": LAT0, "lon": LON0, "analysis_fps": 2})
    alerts, rules = AlertsConfig.model_validate({}), ZonesConfig.model_validate({})
    mgr = EventManager(cam, zone_grid(n_zones), alerts, rules)
    trackers = PresetTrackers(rules.track, alerts.confirm_hits, alerts.confirm_window)
    rng = np.random.default_rng(1)
    pos = np.stack([1000 + rng.uniform(0, 3000, n_det), -1500 + rng.uniform(0, 3000, n_det)], axis=1)
    dets = Detections.from_rows([(x1, 500, x1 + 50, 540, 0.8, 0) for x1 in np.arange(n_det) * (1800 / max(n_det, 1))])
    image = np.zeros((1080, 1920, 3), np.uint8)
    pose = Pose(90.0, -2.0, 60.0)
    times: list[float] = []
    events = 0
    t = 1.78e9
    for k in range(frames):
        t += 0.5
        fixes: list[GroundFix | None] = [fix_at(e + rng.normal(0, 3), n + rng.normal(0, 3), 20.0) for e, n in pos]
        start = time.perf_counter()
        frame = Frame("b1", k, t, image, pose)
        tracks = trackers.update(pose.preset, dets, t)
        events += len(mgr.update(frame, mgr.sightings(frame, tracks, per_track(tracks, fixes), t), t))
        times.append(time.perf_counter() - start)
    ms = 1000 * np.asarray(times[10:])
    return float(np.median(ms)), float(np.percentile(ms, 95)), events


def accuracy() -> tuple[float, float]:
    errors = []
    for angle in np.linspace(0, math.pi, 13):
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s], [s, c]])
        cov = rot @ np.diag([1.0, 0.09]) @ rot.T
        for d in np.linspace(-3, 3, 61):
            pts = sample_points_en((-d, 0.0), tuple(cov.ravel()))
            exact = 0.5 * (1 + math.erf(d / math.sqrt(cov[0, 0]) / math.sqrt(2)))
            errors.append(abs(float(np.mean(pts[:, 0] < 0)) - exact))
    return max(errors), float(np.mean(errors))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detections", type=int, nargs="+", default=[1, 10, 30], help="detections per frame")
    ap.add_argument("--zones", type=int, nargs="+", default=[10, 200], help="zones around the camera")
    args = ap.parse_args()
    print("| detections / frame | zones | ms / frame (median) | ms / frame (p95) | event messages |")
    print("|---:|---:|---:|---:|---:|")
    for n_zones in args.zones:
        for n_det in args.detections:
            med, p95, events = cost_ms(n_det, n_zones)
            print(f"| {n_det} | {n_zones} | {med:.2f} | {p95:.2f} | {events} |")
    worst, mean = accuracy()
    print(
        f"\nP(in zone) against the exact normal CDF (half-plane, 13 orientations × 61 offsets): largest error"
        f" {worst:.4f}, mean {mean:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

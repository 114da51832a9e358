"""The Analyzer: the daemon's per-frame chain, on real geometry and real zone rules (no detector needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.analyzer import Analyzer
from pipeline.config import Config
from pipeline.types import CLASS_INDEX, Detections, Frame, Pose
from pipeline.zones.model import load_zones

ROOT = Path(__file__).resolve().parents[1]
WH = (1280, 720)
TARGET_LAT, TARGET_LON = 38.70000, 111.61000  # ~870 m east of tower A


def make_config(n_cameras: int, **extra: object) -> Config:
    towers = [(38.70000, 111.60000, 90.0), (38.70700, 111.61000, 180.0)]  # A looks east, B (780 m north) south
    cams = [{"id": f"t{i}", "source": "x.mp4", "lat": lat, "lon": lon, "ground_elevation_m": 1450,
             "mast_height_m": 30, "pan_deg": pan, "tilt_deg": -3, "hfov_deg": 40, "analysis_fps": 2}
            for i, (lat, lon, pan) in enumerate(towers[:n_cameras])]
    return Config.model_validate({"cameras": cams, "alerts": {"confirm_hits": 2, "confirm_window": 3},
                                  "zones": {"dir": str(ROOT / "zones")}, **extra})


def frame_seeing(analyzer: Analyzer, cam_id: str, lat: float, lon: float, t: float) -> tuple[Frame, Detections]:
    """A frame of ``cam_id`` whose one excavator box stands on (lat, lon)."""
    state = analyzer.cameras[cam_id]
    cam = state.camera
    pose = Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg)
    x, y = state.model.project(pose, WH, np.array([lat]), np.array([lon]))[0]
    assert 0 < x < WH[0] and 0 < y < WH[1], (x, y)
    dets = Detections.from_rows([(x - 10, y - 20, x + 10, y, 0.9, CLASS_INDEX["excavator"])])
    image = np.zeros((WH[1], WH[0], 3), np.uint8)
    return Frame(cam_id, 0, t, image, pose, t), dets


def test_locate_puts_the_box_where_the_geometry_says() -> None:
    analyzer = Analyzer(make_config(1), [])
    frame, dets = frame_seeing(analyzer, "t0", TARGET_LAT, TARGET_LON, time.time())
    (fix,) = analyzer.locate(frame, dets)
    assert fix is not None
    assert abs(fix.lat - TARGET_LAT) < 1e-5 and abs(fix.lon - TARGET_LON) < 1e-5
    assert fix.cameras in ((), ("t0",))


@pytest.mark.parametrize("fusion_on", [True, False])
def test_two_towers_fuse_into_a_smaller_ellipse(fusion_on: bool) -> None:
    analyzer = Analyzer(make_config(2, fusion={"enabled": fusion_on}), [])
    t = time.time()
    fa, da = frame_seeing(analyzer, "t0", TARGET_LAT, TARGET_LON, t)
    fb, db = frame_seeing(analyzer, "t1", TARGET_LAT, TARGET_LON, t + 0.5)
    (fix_a,) = analyzer.locate(fa, da)
    (fix_b,) = analyzer.locate(fb, db)
    assert fix_a is not None and fix_b is not None
    state_b = analyzer.cameras["t1"]
    single_b = state_b.model.locate(fb.pose, WH, db.bottom_centre_xy(), state_b.camera.pose_sigma)[0]
    assert single_b is not None
    if fusion_on:
        assert set(fix_b.cameras) == {"t0", "t1"}
        assert fix_b.semi_major_m < min(fix_a.semi_major_m, single_b.semi_major_m)
    else:
        assert set(fix_b.cameras) <= {"t1"}
        assert fix_b.semi_major_m == pytest.approx(single_b.semi_major_m)


def test_process_raises_an_event_in_the_sample_zone_with_its_outline(tmp_path: Path) -> None:
    zones = load_zones(ROOT / "zones")
    site = json.loads((ROOT / "zones" / "kelan-illegal-site-01.geojson").read_text())
    lon, lat = np.asarray(site["features"][0]["geometry"]["coordinates"][0][:-1]).mean(axis=0)
    config = make_config(1)
    config.cameras[0].tilt_deg = -20
    config.cameras[0].hfov_deg = 90
    analyzer = Analyzer(config, zones)
    t = time.time()
    events = []
    for i in range(4):
        frame, dets = frame_seeing(analyzer, "t0", float(lat), float(lon), t + i * 0.5)
        events += analyzer.process(frame, dets)
    new = [e for e in events if e.type == "new"]
    assert len(new) == 1
    event = new[0]
    assert event.zone is not None and event.zone.id == "kelan-illegal-site-01"
    assert event.rule == "illegal_site" and event.class_name == "excavator"
    assert event.zone_outline_xy is not None
    outline = np.asarray(event.zone_outline_xy)[0]
    assert outline.shape[1] == 2 and np.isfinite(outline).all()
    ended = analyzer.finish(t + 10)
    assert [e.alert_id for e in ended] == [event.alert_id]


"""EventManager: new after confirmation and dwell, update, end after unseen time in view, flicker, patrol
revisits, one event per site, and the fields events carry."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from pipeline.config import AlertsConfig, CameraConfig, ZonesConfig
from pipeline.events.lifecycle import EventManager
from pipeline.geo.camera import box_bearing_deg
from pipeline.geo.coords import LocalFrame
from pipeline.track import PresetTrackers, Tracker, per_track
from pipeline.types import CLASS_INDEX, AlertEvent, Detections, Frame, GroundFix, Pose
from tests.zones_helpers import LAT0, LON0, make_zone, square

LOCAL = LocalFrame(LAT0, LON0)
T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC, 04:26 on the 29th in Shanghai
IMAGE = np.zeros((720, 1280, 3), np.uint8)
CAMERA = CameraConfig.model_validate(
    {
        "id": "t1",
        "source": "clip.mp4",
        "lat": LAT0,
        "lon": LON0,
        "ground_elevation_m": 1000,
        "mast_height_m": 20,
        "pan_deg": 90,
        "tilt_deg": -2,
        "hfov_deg": 60,
        "analysis_fps": 2,
    }
)
EAST = Pose(90.0, -2.0, 60.0, preset="east")
WEST = Pose(270.0, -2.0, 60.0, preset="west")

ZONES = [
    make_zone(
        "mine", [square(1000, 0, 300)], kind="closed_mine", township="T", responsible={"name": "W", "phone": "1"}
    ),
    make_zone("lic", [square(1000, 1000, 200)], kind="licensed_area", buffer_m=50),
    make_zone("slow", [square(1000, -1000, 100)], min_dwell_s=10),
    make_zone("night", [square(3000, 0, 100)], schedule=["20:00-06:00"]),  # local Shanghai time
]


def fix_at(east: float, north: float, sigma: float = 5.0, elevation_m: float = 1000.0) -> GroundFix:
    lat, lon = LOCAL.to_wgs84(east, north)
    return GroundFix(
        lat=float(lat),
        lon=float(lon),
        elevation_m=elevation_m,
        range_m=math.hypot(east, north),
        bearing_deg=math.degrees(math.atan2(east, north)) % 360,
        semi_major_m=2.146 * sigma,
        semi_minor_m=2.146 * sigma,
        orientation_deg=0.0,
        cov_en_m2=(sigma**2, 0.0, 0.0, sigma**2),
        cameras=("t1",),
    )


@dataclass
class Obj:
    """A detection and its ground fix in one frame."""

    x: float
    en: tuple[float, float] | None
    cls: str = "excavator"
    score: float = 0.8
    w: float = 60.0
    sigma: float = 5.0


def track_and_update(
    mgr: EventManager, trackers: PresetTrackers, frame: Frame, dets: Detections, fixes: Sequence[GroundFix | None]
) -> list[AlertEvent]:
    """What the Analyzer does with one frame: tracks → fixes → rule hits → lifecycle."""
    tracks = trackers.update(frame.pose.preset, dets, frame.t_capture)
    hits = mgr.sightings(frame, tracks, per_track(tracks, fixes), frame.t_capture)
    return mgr.update(frame, hits, frame.t_capture)


def trackers_of(mgr: EventManager) -> PresetTrackers:
    return PresetTrackers(mgr.cfg.track, mgr.alerts_cfg.confirm_hits, mgr.alerts_cfg.confirm_window)


@dataclass
class Run:
    mgr: EventManager
    t: float = T0
    seq: int = 0
    events: list[AlertEvent] = field(default_factory=list)
    trackers: PresetTrackers = field(init=False)

    def __post_init__(self) -> None:
        self.trackers = trackers_of(self.mgr)

    def step(self, objs: Sequence[Obj] = (), pose: Pose = EAST, dt: float = 0.5) -> list[AlertEvent]:
        self.t += dt
        self.seq += 1
        frame = Frame("t1", self.seq, self.t, IMAGE, pose)
        dets = Detections.from_rows([(o.x, 400.0, o.x + o.w, 440.0, o.score, CLASS_INDEX[o.cls]) for o in objs])
        fixes = [None if o.en is None else fix_at(*o.en, sigma=o.sigma) for o in objs]
        out = track_and_update(self.mgr, self.trackers, frame, dets, fixes)
        self.events.extend(out)
        return out

    def repeat(self, n: int, objs: Sequence[Obj] = (), pose: Pose = EAST) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        for _ in range(n):
            out.extend(self.step(objs, pose))
        return out

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def manager(zones: Sequence[Any] = ZONES, alerts: dict[str, Any] | None = None, **rules: Any) -> EventManager:
    alerts_cfg = AlertsConfig.model_validate(
        {"confirm_hits": 3, "confirm_window": 5, "end_after_s": 20, "update_interval_s": 10, **(alerts or {})}
    )
    return EventManager(CAMERA, zones, alerts_cfg, ZonesConfig.model_validate(rules))


IN_MINE = Obj(600, (1000.0, 0.0))


def test_new_after_confirmation_with_all_fields() -> None:
    run = Run(manager())
    assert run.step([IN_MINE]) == [] and run.step([IN_MINE]) == []
    [new] = run.step([IN_MINE])  # third of 3-of-5
    assert new.type == "new" and new.camera_id == "t1" and new.class_name == "excavator"
    assert re.fullmatch(r"t1-\d{8}T\d{6}Z-[0-9a-f]{6}", new.alert_id)
    assert new.alert_id.split("-")[1] == datetime.fromtimestamp(run.t, UTC).strftime("%Y%m%dT%H%M%SZ")
    assert new.rule == "closed_mine" and new.zone is not None
    assert (new.zone.id, new.zone.kind, new.zone.township, new.zone.responsible) == (
        "mine",
        "closed_mine",
        "T",
        {"name": "W", "phone": "1"},
    )
    assert new.zone.distance_to_boundary_m == pytest.approx(300.0, abs=0.5)
    assert new.probability_in_zone == pytest.approx(1.0)
    assert new.fix is not None and LOCAL.to_local_m(new.fix.lat, new.fix.lon) == pytest.approx((1000, 0), abs=0.01)
    assert new.xyxy == pytest.approx((600, 400, 660, 440)) and new.score == pytest.approx(0.8)
    assert new.t_first == run.t and new.t_last == run.t
    assert new.preset == "east" and new.track_id == 1 and new.cameras == ("t1",)
    assert new.frame is not None and new.frame.seq == 3
    assert "zone_outline_xy" not in new.extra  # filled later by the caller, with the camera model


def test_unconfirmed_flash_raises_nothing() -> None:
    run = Run(manager())
    run.step([IN_MINE])
    run.step([IN_MINE])
    run.repeat(40)
    assert run.events == []


def test_updates_at_most_every_interval() -> None:
    run = Run(manager())
    run.repeat(3, [IN_MINE])
    t_new = run.t
    run.repeat(60, [IN_MINE])  # 30 s more
    updates = [e for e in run.events if e.type == "update"]
    assert [round(e.t_last - t_new, 1) for e in updates] == [10.0, 20.0, 30.0]
    assert len({e.alert_id for e in run.events}) == 1


def test_update_at_once_when_the_score_rises_or_the_object_moves() -> None:
    run = Run(manager())
    run.repeat(3, [Obj(600, (1000.0, 0.0), score=0.6)])
    [up] = run.step([Obj(600, (1000.0, 0.0), score=0.75)])  # +0.15 ≥ update_score_delta 0.1
    assert up.type == "update" and up.score == pytest.approx(0.75)
    assert run.step([Obj(600, (1000.0, 0.0), score=0.6)]) == []  # best score so far stays 0.75
    # moving 30 m a frame: smoothed (weight 0.3) the position is 9, 24.3, 44.0, 66.8, 91.8 m on; the update
    # comes when it has moved 50 m (the fourth frame) and the next is not due before another 50 m
    out: list[AlertEvent] = []
    for k in range(1, 6):
        out += run.step([Obj(600 + 10 * k, (1000.0 + 30 * k, 0.0), score=0.6)])
        assert [e.type for e in out] == ([] if k < 4 else ["update"])
    assert out[0].fix is not None
    east, _ = LOCAL.to_local_m(out[0].fix.lat, out[0].fix.lon)
    assert east == pytest.approx(1066.807, abs=0.01)


def test_end_after_unseen_in_view() -> None:
    run = Run(manager())
    run.repeat(5, [IN_MINE])
    t_last = run.t
    out = run.repeat(39)  # 19.5 s unseen
    assert out == []
    [end] = run.step()
    assert end.type == "end" and end.alert_id == run.events[0].alert_id
    assert end.t_last == t_last and end.frame is None and run.t - t_last == pytest.approx(20.0)


@pytest.mark.parametrize("pattern", ["1110011100111001110011", "1101101101101101101101", "1111000111100011110001"])
def test_flicker_neither_ends_nor_duplicates(pattern: str) -> None:
    run = Run(manager())
    for ch in pattern * 3:
        run.step([IN_MINE] if ch == "1" else [])
    assert run.types().count("new") == 1 and "end" not in run.types()
    assert len({e.alert_id for e in run.events}) == 1


def test_patrol_looking_elsewhere_does_not_end_the_event() -> None:
    run = Run(manager())
    run.repeat(5, [IN_MINE])
    alert_id = run.events[0].alert_id
    assert run.repeat(240, pose=WEST) == []  # two minutes facing west
    out = run.repeat(25, [IN_MINE])  # back east: the parked excavator is still there
    assert all(e.type == "update" for e in out) and out and {e.alert_id for e in out} == {alert_id}
    assert run.types().count("new") == 1


def test_patrol_revisit_with_a_new_track_continues_by_ground_distance() -> None:
    run = Run(manager())
    run.repeat(5, [IN_MINE])
    run.repeat(240, pose=WEST)
    # the preset comes back 200 px off (poor repeatability): no overlap, a new track; the ground fix is 30 m off
    moved = Obj(300, (1020.0, 20.0))
    out = run.repeat(25, [moved])
    assert "new" not in [e.type for e in out] and out
    assert out[-1].track_id != run.events[0].track_id and out[-1].alert_id == run.events[0].alert_id


def test_patrol_back_and_gone_ends_after_end_after_s_in_view() -> None:
    run = Run(manager())
    run.repeat(5, [IN_MINE])
    run.repeat(240, pose=WEST)
    assert run.repeat(39) == []  # 19.5 s looking east, nothing there
    assert [e.type for e in run.step()] == ["end"]


@pytest.mark.parametrize(
    ("pose", "ends"),
    [
        (Pose(90.0, -2.0, 60.0, preset="east-zoomed"), True),  # another preset that sees the site
        (Pose(120.0, -2.0, 20.0, preset="southeast"), False),  # site outside the horizontal view
        (Pose(90.0, 30.0, 20.0, preset="sky"), False),  # right bearing, looking far above it
    ],
)
def test_other_presets_count_only_when_they_see_the_site(pose: Pose, ends: bool) -> None:
    run = Run(manager())
    run.repeat(5, [IN_MINE])
    run.repeat(60, pose=pose)
    assert ("end" in run.types()) is ends


@pytest.mark.parametrize("sees", [True, False])
def test_view_test_hook_decides_for_other_presets(sees: bool) -> None:
    asked: list[tuple[str | None, float]] = []

    def hook(frame: Frame, fix: GroundFix) -> bool:
        asked.append((frame.pose.preset, fix.range_m))
        return sees

    mgr = manager()
    mgr.sees = hook
    run = Run(mgr)
    run.repeat(5, [IN_MINE])
    run.repeat(60, pose=Pose(90.0, -2.0, 60.0, preset="east-zoomed"))
    assert ("end" in run.types()) is sees
    assert asked and asked[0][0] == "east-zoomed" and asked[0][1] == pytest.approx(1000.0)
    if not sees:
        asked.clear()
        run.repeat(41)  # back on the event's own preset, nothing there: no need to ask, and it ends
        assert asked == [] and run.types()[-1] == "end"


def test_tick_ends_after_max_unseen_whatever_the_camera_did() -> None:
    mgr = manager(max_unseen_s=600)
    run = Run(mgr)
    run.repeat(5, [IN_MINE])
    assert mgr.tick(run.t + 599) == []
    [end] = mgr.tick(run.t + 600)
    assert end.type == "end" and mgr.events == []


@pytest.mark.parametrize(
    ("kind", "cls", "en"),
    [
        ("closed_mine", "excavator", (0.0, 0.0)),
        ("illegal_site", "truck", (0.0, 0.0)),
        ("licensed_area", "excavator", (0.0, 130.0)),
        ("fire_watch", "fire", (0.0, 0.0)),
    ],
)
def test_dwell_for_every_kind(kind: str, cls: str, en: tuple[float, float]) -> None:
    extra = {"buffer_m": 50} if kind == "licensed_area" else {}
    zone = make_zone("z", [square(1000, 0, 100)], kind=kind, min_dwell_s=5, **extra)
    run = Run(manager([zone], fire_anywhere=False))
    obj = Obj(600, (1000.0 + en[0], en[1]), cls=cls)
    run.repeat(10, [obj])  # first sighting + 4.5 s
    assert run.events == []
    [new] = run.step([obj])  # 5 s after the first sighting
    assert new.type == "new" and new.zone is not None and new.zone.id == "z" and new.rule == zone.rule


def test_dwell_time_delays_new() -> None:
    run = Run(manager())
    slow = Obj(600, (1000.0, -1000.0))
    run.repeat(20, [slow])  # 10 s after the first sighting, counted from that frame
    assert run.events == []
    [new] = run.step([slow])
    assert new.type == "new" and new.zone is not None and new.zone.id == "slow"


def test_dwell_time_runs_on_while_the_patrol_looks_elsewhere() -> None:
    run = Run(manager())
    slow = Obj(600, (1000.0, -1000.0))  # zone "slow": min_dwell_s 10
    run.repeat(8, [slow])  # 3.5 s in the zone
    run.repeat(40, pose=WEST)  # 20 s looking west
    [new] = run.step([slow])  # back: seen 24 s after the first sighting, the dwell time is over
    assert new.type == "new" and new.t_first == run.t


def test_dwell_time_restarts_after_end_after_s_in_view_without_it() -> None:
    run = Run(manager())
    slow = Obj(600, (1000.0, -1000.0))
    run.repeat(8, [slow])
    run.repeat(40)  # 20 s looking at the zone, nothing there: the machine left
    run.repeat(19, [slow])  # it is back: 9 s of a fresh dwell
    assert run.events == []
    assert [e.type for e in run.repeat(2, [slow])] == ["new"]


def test_one_event_per_site() -> None:
    """Two machines 20 m apart are one site; one 270 m away is another."""
    run = Run(manager())
    a, b, c = Obj(400, (900.0, 0.0)), Obj(480, (920.0, 0.0)), Obj(800, (1000.0, 250.0))
    run.repeat(10, [a, b, c])
    news = [e for e in run.events if e.type == "new"]
    assert len(news) == 2
    assert sorted(round(LOCAL.to_local_m(e.fix.lat, e.fix.lon)[1]) for e in news if e.fix) == [0, 250]


def test_classes_are_separate_events() -> None:
    run = Run(manager())
    run.repeat(5, [Obj(600, (1000.0, 0.0)), Obj(700, (1005.0, 0.0), cls="truck")])
    assert sorted(e.class_name for e in run.events if e.type == "new") == ["excavator", "truck"]


def test_beyond_boundary_event() -> None:
    run = Run(manager())
    run.repeat(5, [Obj(600, (1000.0, 1000.0))])  # inside the licence: allowed
    assert run.events == []
    run.repeat(5, [Obj(900, (1000.0, 1230.0))])  # 30 m beyond it, inside the 50 m buffer
    [new] = run.events
    assert new.rule == "beyond_boundary" and new.zone is not None and new.zone.id == "lic"
    assert new.zone.distance_to_boundary_m is not None and new.zone.distance_to_boundary_m < 0
    assert new.probability_in_zone is not None and new.probability_in_zone > 0.9


def test_probability_hysteresis_near_the_boundary() -> None:
    """σ = 10 m at the mine's east edge (x = 1300): P(inside) ≈ 0.69 at 5 m in, ≈ 0.42 at 2 m out."""
    run = Run(manager(probability_threshold=0.5, probability_hysteresis=0.15))
    run.repeat(5, [Obj(600, (1295.0, 0.0), sigma=10)])
    [new] = run.events
    assert new.probability_in_zone == pytest.approx(0.69, abs=0.03)
    run.repeat(80, [Obj(600, (1302.0, 0.0), sigma=10)])  # 40 s at P ≈ 0.42: above 0.35, the event goes on
    assert "end" not in run.types()
    fresh = Run(manager(probability_threshold=0.5, probability_hysteresis=0.15))
    fresh.repeat(20, [Obj(600, (1302.0, 0.0), sigma=10)])  # the same place never opens an event
    assert fresh.events == []


def test_fire_anywhere_and_sky_smoke() -> None:
    run = Run(manager())
    run.repeat(5, [Obj(600, (500.0, 500.0), cls="fire"), Obj(900, None, cls="smoke")])
    news = sorted((e for e in run.events if e.type == "new"), key=lambda e: e.class_name)
    assert [(e.class_name, e.rule, e.zone, e.probability_in_zone) for e in news] == [
        ("fire", "fire_in_view", None, None),
        ("smoke", "fire_in_view", None, None),
    ]
    assert news[0].fix is not None and news[1].fix is None


def test_fire_on_a_fire_watch_boundary() -> None:
    """σ = 10 m at the fire_watch zone's north edge (y = 100 around (1000, 0)): P(inside) ≈ 0.42 at 2 m out."""
    zone = make_zone("fw", [square(1000, 0, 100)], kind="fire_watch")
    unsure = Run(manager([zone]))
    unsure.repeat(5, [Obj(600, (1000.0, 102.0), cls="fire", sigma=10)])  # never sure enough for the zone
    assert [(e.type, e.rule) for e in unsure.events] == [("new", "fire_in_view")]
    dips = Run(manager([zone]))
    dips.repeat(5, [Obj(600, (1000.0, 95.0), cls="fire", sigma=10)])  # P ≈ 0.69: the zone's event
    dips.repeat(20, [Obj(600, (1000.0, 102.0), cls="fire", sigma=10)])  # dips to 0.42: the same event goes on
    assert [(e.type, e.rule) for e in dips.events] == [("new", "fire_watch"), ("update", "fire_watch")]


def test_schedule_silences_the_zone() -> None:
    # T0 is about 04:26 in Shanghai: inside the night zone's 20:00-06:00 window; noon is outside
    run = Run(manager())
    run.repeat(5, [Obj(600, (3000.0, 0.0))])
    assert [e.type for e in run.events] == ["new"]
    noon = Run(manager())
    noon.t = T0 + 8 * 3600
    noon.repeat(20, [Obj(600, (3000.0, 0.0))])
    assert noon.events == []


def test_close_all_and_set_zones() -> None:
    mgr = manager()
    run = Run(mgr)
    run.repeat(5, [IN_MINE])
    mgr.set_zones(ZONES[1:])  # the mine zone is gone: its event ends as usual, no new one starts
    run.repeat(41, [IN_MINE])
    assert run.types() == ["new", "end"]
    run.repeat(5, [Obj(900, (1000.0, 1230.0))])
    [end] = mgr.close_all(run.t)
    assert end.type == "end" and end.rule == "beyond_boundary" and mgr.events == []


def test_tracks_from_the_caller() -> None:
    """The caller may run the tracker; fixes then align with the tracks."""
    mgr = manager()
    tracker = Tracker(confirm_hits=1, confirm_window=1)
    t = T0
    for k in range(3):
        t += 0.5
        frame = Frame("t1", k, t, IMAGE, EAST)
        tracks = tracker.update(
            Detections.from_rows([(600, 400, 660, 440, 0.8, 0)]),
            t,
        )
        out = mgr.update(frame, mgr.sightings(frame, tracks, [fix_at(1000.0, 0.0)], t), t)
        if k == 0:
            assert [e.type for e in out] == ["new"]


def test_unconfirmed_false_detection_does_not_keep_an_event_alive() -> None:
    run = Run(manager())
    run.repeat(5, [IN_MINE])
    t_last = run.t
    run.repeat(20)
    run.step([Obj(200, (1010.0, 0.0))])  # one frame, elsewhere in the image: a new, unconfirmed track
    out = run.repeat(19)
    assert [e.type for e in out] == ["end"] and out[0].t_last == t_last


def test_smoke_plume_with_and_without_fix_is_one_event() -> None:
    """A plume first seen only against the sky, then with its base on the ground, on the same bearing."""
    run = Run(manager())
    run.repeat(5, [Obj(900, None, cls="smoke")])
    x_centre = 900 + 30  # the box centre's bearing, as the manager computes it
    bearing = box_bearing_deg(EAST, (1280, 720), x_centre)
    east, north = 4000 * math.sin(math.radians(bearing)), 4000 * math.cos(math.radians(bearing))
    run.repeat(10, [Obj(200, (east, north), cls="smoke")])  # another box (a new track), its fix on that bearing
    assert run.types().count("new") == 1 and len({e.alert_id for e in run.events}) == 1
    run.repeat(10, [Obj(300, (4000.0 * math.sin(math.radians(60)), 4000.0 * math.cos(math.radians(60))), cls="smoke")])
    assert run.types().count("new") == 2  # another plume 30° away is another event


def test_with_the_real_camera_model() -> None:
    """Pixels → CameraModel.locate (flat ground, pose uncertainty) → rules → events."""
    from pipeline.geo.camera import CameraModel

    model = CameraModel.from_config(CAMERA)
    mgr = manager()
    wh = (1280, 720)

    def pixel(east: float, north: float) -> tuple[float, float]:
        lat, lon = LOCAL.to_wgs84(east, north)
        xy = model.project(EAST, wh, np.array([lat]), np.array([lon]), np.array([1000.0]))
        return float(xy[0, 0]), float(xy[0, 1])

    in_mine = pixel(1000.0, 0.0)
    beyond = pixel(1600.0, -200.0)  # 300 m past the mine's east edge
    sky = (300.0, 100.0)  # above the horizon
    boxes = [
        (in_mine[0] - 20, in_mine[1] - 30, in_mine[0] + 20, in_mine[1], 0.8, CLASS_INDEX["excavator"]),
        (beyond[0] - 20, beyond[1] - 30, beyond[0] + 20, beyond[1], 0.8, CLASS_INDEX["excavator"]),
        (sky[0] - 40, sky[1] - 60, sky[0] + 40, sky[1], 0.7, CLASS_INDEX["smoke"]),
    ]
    dets = Detections.from_rows(boxes)
    fixes = model.locate(EAST, wh, dets.bottom_centre_xy(), CAMERA.pose_sigma)
    assert fixes[0] is not None and fixes[1] is not None and fixes[2] is None
    out: list[AlertEvent] = []
    trackers = trackers_of(mgr)
    for k in range(3):
        frame = Frame("t1", k, T0 + 0.5 * k, IMAGE, EAST)
        out += track_and_update(mgr, trackers, frame, dets, fixes)
    news = sorted((e for e in out if e.type == "new"), key=lambda e: e.rule)
    assert [(e.rule, e.class_name) for e in news] == [("closed_mine", "excavator"), ("fire_in_view", "smoke")]
    mine = news[0]
    assert mine.fix is not None and mine.probability_in_zone is not None
    # 1 km from a 20 m mast the range is uncertain (σ_east ≈ 280 m) while the bearing is sharp (σ_north ≈ 2.5 m):
    # P(inside the 600 m wide mine) = 2 Φ(300 / σ_east) − 1, integrated by hand from the fix's covariance
    sigma_east = math.sqrt(mine.fix.cov_en_m2[0])
    assert 100 < sigma_east < 1000 and math.sqrt(mine.fix.cov_en_m2[3]) < 10
    assert mine.probability_in_zone == pytest.approx(math.erf(300 / sigma_east / math.sqrt(2)), abs=0.03)
    assert LOCAL.to_local_m(mine.fix.lat, mine.fix.lon) == pytest.approx((1000.0, 0.0), abs=5.0)
    assert news[1].fix is None and news[1].zone is None


def test_messages_carry_the_analysis_time_and_the_frame_size() -> None:
    """``t_event``: the frame that caused the message, or the clock of the check that ended it; ``image_wh``:
    the frame the box was seen in, also on ``end`` (which has no frame)."""
    mgr = manager(max_unseen_s=600)
    run = Run(mgr)
    run.repeat(3, [IN_MINE])
    [new] = run.events
    assert new.t_event == run.t and new.image_wh == (1280, 720)
    run.repeat(21, [IN_MINE])  # 10.5 s on: one update
    [update] = run.events[1:]
    assert update.type == "update" and update.t_event == run.t - 0.5
    [end] = mgr.tick(run.t + 600)
    assert end.t_event == run.t + 600 and end.image_wh == (1280, 720) and end.frame is None
    assert new.zone_outline_xy is None  # the Analyzer projects it

"""Look closer, the bounds (no RTSP, no detector: hand-made detections on the virtual tower's geometry):
which detections are candidates, no look while an alert is open, the cooldown per place, at most K looks
per tour, and the controller's way back to the interrupted preset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import CameraConfig, ZonesConfig
from pipeline.events.rules import RuleEngine
from pipeline.geo.camera import CameraModel
from pipeline.look import LookCloser
from pipeline.sources import LOOK_PRESET, LookRequest, PatrolController, SimulatedDriver
from pipeline.types import CLASSES, Detections, Frame, Pose
from pipeline.zones.model import load_zones
from tests.rtsp_fixture import wait_until
from tests.test_look_closer import zone_file
from tests.virtual_tower import TOUR, TOWER, WH, WIDE_HFOV_DEG, at, make_tower

TILT = -5.0


def camera(dwell_s: float = 30.0, max_per_tour: int = 1, first: str = "A", **look: Any) -> CameraConfig:
    start = [n for n, _ in TOUR].index(first)
    presets = [{"name": n, "pan_deg": pan, "tilt_deg": TILT, "settle_s": 0.05, "dwell_s": dwell_s}
               for n, pan in TOUR[start:] + TOUR[:start]]
    return CameraConfig.model_validate({
        "id": "vt", "source": "rtsp://127.0.0.1:1/none", **TOWER, "hfov_deg": WIDE_HFOV_DEG,
        "patrol": {"driver": "simulated", "simulated_speed_deg_s": 600.0, "presets": presets,
                   "look": {"enabled": True, "look_score": 0.1, "max_per_tour": max_per_tour, **look}}})


def dets_at(boxes: list[tuple[float, float, float, float]], scores: list[float], cls: str = "person") -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.full(len(scores), CLASSES.index(cls), np.int32))


class Rig:
    """A patrol controller on the simulated driver, a look-closer, the test zone's rules."""

    def __init__(self, tmp: Path, **kw: Any) -> None:
        self.cam = camera(first="C", **kw)  # the tour starts where the zone is in view
        assert self.cam.patrol is not None
        self.driver = SimulatedDriver(600.0, 0.05, hfov_deg=WIDE_HFOV_DEG)
        self.pointing = PatrolController(self.cam, self.cam.patrol.presets, self.driver, 5.0,
                                         self.cam.patrol.look.max_per_tour)
        self.model = CameraModel.from_config(self.cam)
        self.rules = RuleEngine(load_zones(zone_file(tmp / "zones")), self.cam.lat, self.cam.lon,
                                ZonesConfig.model_validate({}))
        self.closer = LookCloser(self.cam, self.cam.patrol.look, self.pointing, self.model, lambda _c: 0.5, 2)
        self.tower, _ = make_tower(self.cam, objects=[])
        self.seq = 0

    def frame(self, preset: str, pose: Pose | None = None) -> Frame:
        self.seq += 1
        pose = pose or Pose(dict(TOUR)[preset], TILT, WIDE_HFOV_DEG, 0.0, preset)
        return Frame("vt", self.seq, time.time(), np.zeros((WH[1], WH[0], 3), np.uint8), pose)

    def box_at(self, preset: str, bearing_deg: float, range_m: float) -> tuple[float, float, float, float]:
        """The 12-ish px box of a 3 m object at this place, seen from the preset."""
        pose = Pose(dict(TOUR)[preset], TILT, WIDE_HFOV_DEG, 0.0, preset)
        east, north = at(bearing_deg, range_m)
        foot, top = self.model.project_local(pose, WH, np.array([east, east]), np.array([north, north]),
                                             np.array([TOWER["ground_elevation_m"]] * 2) + np.array([0.0, 3.0]))
        return float(foot[0]) - 4, float(top[1]), float(foot[0]) + 4, float(foot[1])


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


IN_ZONE = (137.0, 149.0)
OUT_OF_ZONE = (137.0, 60.0)  # nearer than the zone's 90 m inner edge


@pytest.mark.parametrize(("score", "place", "small_box_px", "expected"), [
    (0.2, IN_ZONE, 0.0, True),  # between look_score and the threshold, in the zone
    (0.05, IN_ZONE, 0.0, False),  # below look_score
    (0.8, IN_ZONE, 0.0, False),  # above the threshold: the normal path alerts
    (0.8, IN_ZONE, 40.0, True),  # … unless small_box_px makes small sure boxes candidates too
    (0.2, OUT_OF_ZONE, 0.0, False),  # not in a zone its class triggers
])
def test_which_detections_are_candidates(tmp_path: Path, score: float, place: tuple[float, float],
                                         small_box_px: float, expected: bool) -> None:
    rig = Rig(tmp_path, small_box_px=small_box_px)
    box = rig.box_at("C", *place)
    cands = rig.closer.candidates(rig.frame("C"), dets_at([box], [score]), rig.rules)
    assert bool(cands) == expected
    if cands:
        assert cands[0].zone_id == "mine-1"
    # a class no zone triggers is never one
    assert not rig.closer.candidates(rig.frame("C"), dets_at([box], [score], "fire"), rig.rules)


def test_no_look_while_an_alert_of_the_camera_is_open(rig: Rig) -> None:
    rig.pointing.start()
    try:
        assert wait_until(lambda: rig.pointing.state.state == "dwelling", 5)
        preset = rig.pointing.state.preset
        bearing = dict(TOUR)[preset] - 3.0
        rig.closer.observe(rig.frame(preset), dets_at([rig.box_at(preset, bearing, 149.0)], [0.2]), [], 1,
                           rig.rules)
        assert rig.pointing.look_counts["skipped_alert_open"] == 1 and rig.pointing.look_counts["started"] == 0
        assert rig.closer.active is None
    finally:
        rig.pointing.stop()


def test_cooldown_per_place_and_at_most_k_looks_per_tour(tmp_path: Path) -> None:
    """One look per tour (K = 1): the same place again is cooling down; another place is refused."""
    rig = Rig(tmp_path, cooldown_radius_m=10.0)
    rig.pointing.start()
    try:
        assert wait_until(lambda: rig.pointing.state.state == "dwelling", 5)
        preset = rig.pointing.state.preset
        pan = dict(TOUR)[preset]
        here = rig.box_at(preset, pan - 3.0, 149.0)
        rig.closer.observe(rig.frame(preset), dets_at([here], [0.2]), [], 0, rig.rules)
        assert rig.closer.active is not None
        assert wait_until(lambda: rig.pointing.state.preset == LOOK_PRESET
                          and rig.pointing.state.state == "dwelling", 5)
        look_pose = rig.pointing.state.pose
        assert look_pose is not None and look_pose.hfov_deg < WIDE_HFOV_DEG / 5
        for i in range(rig.closer.frames_needed):  # max(look.frames, confirm_hits) look frames, no alert
            assert rig.pointing.active_look == 1, i  # not rejected before its frames
            rig.closer.observe(rig.frame(LOOK_PRESET, look_pose), dets_at([], []), [], 0, rig.rules)
        assert wait_until(lambda: rig.pointing.state.preset == preset and rig.pointing.state.state == "dwelling",
                          5)
        assert [o for _, o, _, _ in rig.pointing.looks] == ["rejected"]
        # the same place: cooling down (no request at all)
        rig.closer.observe(rig.frame(preset), dets_at([here], [0.2]), [], 0, rig.rules)
        assert rig.pointing.look_counts["skipped_cooldown"] == 1
        # another place in the zone (41 m away): the tour's one look is spent, the controller refuses
        elsewhere = rig.box_at(preset, pan + 3.0, 110.0)
        rig.closer.observe(rig.frame(preset), dets_at([elsewhere], [0.2]), [], 0, rig.rules)
        assert rig.pointing.look_counts["refused"] == 1 and rig.pointing.look_counts["started"] == 1
        assert rig.pointing.request_look(LookRequest(99, pan, TILT, 3.0, None, 0.0, 1.0)) == "tour_limit"
    finally:
        rig.pointing.stop()


def test_the_controller_goes_back_to_the_interrupted_preset_for_the_rest_of_its_dwell() -> None:
    cam = camera(dwell_s=1.0, max_per_tour=1)
    assert cam.patrol is not None
    driver = SimulatedDriver(600.0, 0.05, hfov_deg=WIDE_HFOV_DEG)
    pointing = PatrolController(cam, cam.patrol.presets, driver, 5.0, 1)
    pointing.start()
    try:
        assert wait_until(lambda: pointing.state.preset == "B" and pointing.state.state == "dwelling", 10)
        assert pointing.request_look(LookRequest(1, 113.0, -7.0, 3.0, None, 0.05, 0.3, "test")) is None
        assert wait_until(lambda: pointing.tours >= 1 and pointing.state.preset == "A", 10)
    finally:
        pointing.stop()
    seq = [(s.state, s.preset) for s in pointing.history]
    first_b = seq.index(("dwelling", "B"))
    # B, the look (timed out after 0.3 s: nobody judged it), B again, then C: the tour goes on from B
    assert [p for st, p in seq[first_b:] if st == "dwelling"][:4] == ["B", LOOK_PRESET, "B", "C"]
    assert [o for _, o, _, _ in pointing.looks] == ["timed_out"]
    dwell = {(s.preset, s.since) for s in pointing.history if s.state == "dwelling"}
    t_b = sorted(t for p, t in dwell if p == "B")
    t_look = min(t for p, t in dwell if p == LOOK_PRESET)
    t_c = min(t for p, t in dwell if p == "C" and t > t_look)
    # B's dwell in all (before and after the look) is its 1 s, not 1 s again after the look
    before = t_look - t_b[0]
    after = t_c - t_b[1]
    assert before + after == pytest.approx(1.0 + 0.05 + 0.05, abs=0.35)  # + the move to C and its settling
    # the driver's view came back to the preset's field of view (the look had zoomed to 3°)
    assert driver.hfov_deg == WIDE_HFOV_DEG


@pytest.mark.parametrize(("table", "min_hfov_deg", "expected"), [
    ([], 1.0, 1.0),  # no lens table: the configured floor
    ([(0.01, 30.0), (1.0, 5.0)], 1.0, 5.0),  # the lens cannot go below 5°
    ([(0.01, 30.0), (1.0, 0.8)], 2.0, 2.0),  # the configured floor is the wider
])
def test_a_look_never_zooms_tighter_than_the_lens(table: list[tuple[float, float]], min_hfov_deg: float,
                                                  expected: float) -> None:
    cam = camera(min_hfov_deg=min_hfov_deg).model_copy(update={"zoom_hfov": table})
    assert cam.patrol is not None
    pointing = PatrolController(cam, cam.patrol.presets, SimulatedDriver(), 5.0, 1)
    closer = LookCloser(cam, cam.patrol.look, pointing, CameraModel.from_config(cam), lambda _c: 0.5)
    assert closer.min_hfov_deg == expected

"""Patrol: the simulated PTZ driver moves a camera read from a real RTSP server through its tour."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import CameraConfig, OnvifConfig
from pipeline.errors import UserError
from pipeline.sources import PatrolController, SimulatedDriver, make_source
from pipeline.sources.onvif_driver import OnvifDriver, azimuth_to_onvif_x, onvif_x_to_azimuth, tilt_to_onvif_y
from tests.rtsp_fixture import (  # noqa: F401  (fixtures)
    PRESETS,
    RtspServer,
    Statuses,
    collect,
    patrol_camera,
    rtsp_clip_fixture,
    rtsp_server_fixture,
    wait_until,
)


def test_frames_during_moves_are_not_analysed_and_carry_the_preset_pose(rtsp_server: RtspServer) -> None:
    cam = patrol_camera(rtsp_server.url, PRESETS)
    driver = SimulatedDriver(speed_deg_s=150.0)  # 90° takes 0.6 s
    statuses = Statuses()
    src = make_source(cam, statuses, driver=driver)
    src.start()
    try:
        assert wait_until(lambda: src.status == "online", 10)
        frames = collect(src, 6.0)
    finally:
        src.stop()
    assert isinstance(src.pointing, PatrolController)
    settle = {str(p["name"]): float(p["settle_s"]) for p in PRESETS}
    # the windows in which nothing may be analysed: each move and the settling after it
    blocked = [(t0, t1 + settle[name]) for name, t0, t1 in driver.moves]
    assert len(driver.moves) >= 3
    names = set()
    for f in frames:
        assert not any(a <= f.t_capture < b for a, b in blocked), (f.pose.preset, f.t_capture, blocked)
        spec = next(p for p in PRESETS if p["name"] == f.pose.preset)
        assert (f.pose.pan_deg, f.pose.tilt_deg, f.pose.hfov_deg) == (spec["pan_deg"], spec["tilt_deg"],
                                                                      spec["hfov_deg"])
        names.add(f.pose.preset)
        # and it was captured while the controller was dwelling at that preset
        dwell = [s for s in src.pointing.history if s.state == "dwelling" and s.preset == f.pose.preset
                 and s.since <= f.t_capture]
        assert dwell, f
    assert names == {"north", "east"}
    health = src.health()
    assert health["frames_moving_total"] > 20  # the stream kept coming while moving; those were not analysed
    assert "moving" in statuses.names()


def test_a_failed_move_analyses_nothing_until_a_move_succeeds(rtsp_server: RtspServer) -> None:
    cam = patrol_camera(rtsp_server.url, PRESETS[:1])  # a tour of one preset (a fixed PTZ position)
    driver = SimulatedDriver(speed_deg_s=150.0)
    driver.fail_next = 1  # the camera's PTZ service errs once
    src = make_source(cam, driver=driver)
    src.start()
    try:
        assert wait_until(lambda: src.status == "online", 10)
        assert src.slot.get(0.5) is None  # pose unknown after the failed move: nothing analysed
        assert wait_until(lambda: src.health()["patrol_state"] == "dwelling", 5)
        frame = src.slot.get(2)
    finally:
        src.stop()
    assert frame is not None and frame.pose.preset == "north"
    assert src.health()["move_failures"] == 1 and len(driver.moves) == 1


def test_fixed_camera_is_a_tour_of_one_pose() -> None:
    cam = CameraConfig.model_validate({"id": "fix", "source": "x.mp4", "lat": 1, "lon": 2, "pan_deg": 123.0,
                                       "tilt_deg": -4.0, "hfov_deg": 33.0})
    src = make_source(cam)
    aim = src.pointing.pose_at(time.time())
    assert aim is not None
    pose, _ = aim
    assert (pose.pan_deg, pose.tilt_deg, pose.hfov_deg, pose.preset) == (123.0, -4.0, 33.0, None)


ONVIF = OnvifConfig.model_validate({"host": "cam.local", "pan_zero_azimuth_deg": 30.0, "pan_deg_at_minus1": 0.0,
                                    "pan_deg_at_plus1": 360.0, "tilt_deg_at_minus1": -90.0,
                                    "tilt_deg_at_plus1": 10.0})


@pytest.mark.parametrize(
    ("azimuth", "x"),
    [(30.0, -1.0), (210.0, 0.0), (120.0, -0.5), (300.0, 0.5), (29.0, 2 * 359 / 360 - 1), (390.0, -1.0)],
)
def test_onvif_pan_mapping(azimuth: float, x: float) -> None:
    assert azimuth_to_onvif_x(azimuth, ONVIF) == pytest.approx(x)
    assert onvif_x_to_azimuth(azimuth_to_onvif_x(azimuth, ONVIF), ONVIF) == pytest.approx(azimuth % 360)


@pytest.mark.parametrize(("tilt", "y"), [(-90.0, -1.0), (10.0, 1.0), (-40.0, 0.0), (45.0, 1.0), (-120.0, -1.0)])
def test_onvif_tilt_mapping(tilt: float, y: float) -> None:
    assert tilt_to_onvif_y(tilt, ONVIF) == pytest.approx(y)


def test_onvif_limited_pan_range_goes_to_the_nearer_end() -> None:
    cfg = OnvifConfig.model_validate({"host": "h", "pan_deg_at_minus1": -170.0, "pan_deg_at_plus1": 170.0})
    assert azimuth_to_onvif_x(175.0, cfg) == pytest.approx(1.0)
    assert azimuth_to_onvif_x(-175.0, cfg) == pytest.approx(-1.0)
    assert azimuth_to_onvif_x(85.0, cfg) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("onvif", "message"),
    [
        ({"host": "h", "password_env": "MW_TEST_UNSET_PW"}, "environment variable MW_TEST_UNSET_PW set"),
        ({"host": "h", "password_file": "/nonexistent/pw"}, "a readable file"),
    ],
)
def test_onvif_password_errors_are_one_line(onvif: dict[str, Any], message: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onvif", reason="the optional `onvif` extra is not installed")
    monkeypatch.delenv("MW_TEST_UNSET_PW", raising=False)
    cam = CameraConfig.model_validate({"id": "p", "source": "rtsp://h/x", "lat": 1, "lon": 2, "onvif": onvif,
                                       "patrol": {"presets": [{"name": "a", "pan_deg": 0}]}})
    with pytest.raises(UserError, match=message) as err:
        OnvifDriver(cam)
    assert "\n" not in str(err.value)


def test_onvif_patrol_without_onvif_section_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="onvif"):
        CameraConfig.model_validate({"id": "p", "source": "rtsp://h/x", "lat": 1, "lon": 2,
                                     "patrol": {"presets": [{"name": "a", "pan_deg": 0}]}})


@pytest.mark.parametrize(
    ("camera_extra", "field", "expected"),
    [
        ({"reader": {"decode_mode": "sometimes"}}, "cameras[0] (id=c).reader.decode_mode", "'auto', 'all' or"),
        ({"reader": {"stall_s": 0}}, "cameras[0] (id=c).reader.stall_s", "greater than or equal to 0.5"),
        ({"patrol": {"driver": "simulated", "presets": []}}, "cameras[0] (id=c).patrol.presets", "at least 1"),
        ({"patrol": {"driver": "simulated", "presets": [{"name": "a", "pan_deg": 0, "dwel_s": 3}]}},
         "cameras[0] (id=c).patrol.presets[0].dwel_s", "only known fields"),
        ({"patrol": {"driver": "simulated", "presets": [{"name": "a b", "pan_deg": 0}]}},
         "cameras[0] (id=c).patrol.presets[0].name", "match pattern"),
        ({"patrol": {"presets": [{"name": "a", "pan_deg": 0}]}}, "cameras[0] (id=c)", "needs an `onvif:` section"),
        ({"onvif": {"host": "h", "password_env": "X", "password_file": "/p"}}, "cameras[0] (id=c).onvif",
         "not both"),
        ({"view_reference_path": "r.png", "patrol": {"driver": "simulated", "presets": [{"name": "a", "pan_deg": 0}]}},
         "cameras[0] (id=c)", "reference_image per preset"),
        ({"view_check": {"min_inliers": 2}}, "cameras[0] (id=c).view_check.min_inliers", "greater than or equal"),
    ],
)
def test_bad_ingestion_config_is_one_line(tmp_path: Path, camera_extra: dict[str, Any], field: str,
                                          expected: str) -> None:
    import yaml

    from pipeline.config import load_config

    path = tmp_path / "cameras.yaml"
    cam = {"id": "c", "source": "rtsp://h/x", "lat": 1, "lon": 2, **camera_extra}
    path.write_text(yaml.safe_dump({"cameras": [cam]}))
    with pytest.raises(UserError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}"), message
    assert expected in message, message

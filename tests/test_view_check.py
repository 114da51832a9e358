"""View check: ORB matching against reference images, the guard that holds a preset, and the status."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from pipeline.config import CameraConfig, ViewCheckConfig
from pipeline.errors import UserError
from pipeline.sources import ViewChecker, ViewGuard, make_source
from pipeline.sources.view_check import load_reference
from tests.rtsp_fixture import (  # noqa: F401  (fixtures)
    PRESETS,
    RtspServer,
    Statuses,
    collect,
    patrol_camera,
    rtsp_clip_fixture,
    rtsp_server_fixture,
    scene,
    wait_until,
)

CFG = ViewCheckConfig.model_validate({"min_inliers": 12, "max_shift_deg": 3.0, "recheck_s": 0.5})
REF = scene(640, 480, seed=0)


def shifted(image: NDArray[np.uint8], dx: int) -> NDArray[np.uint8]:
    matrix = np.array([[1, 0, dx], [0, 1, 0]], np.float32)
    return np.asarray(cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0])), np.uint8)


def brighter(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(cv2.convertScaleAbs(image, alpha=0.8, beta=30), np.uint8)


@pytest.mark.parametrize(
    ("view", "matches", "reason"),
    [
        (REF, True, "ok"),
        (cv2.resize(REF, (320, 240)), True, "ok"),  # another resolution of the same view
        (brighter(REF), True, "ok"),  # light changed a little
        (shifted(REF, 20), True, "ok"),  # 20 px of 640 at 60° = 1.9°: within preset repeatability
        (shifted(REF, 64), False, "off its reference"),  # 6°: the camera was turned
        (scene(640, 480, seed=7), False, ""),  # looking at something else
        (np.zeros((480, 640, 3), np.uint8), False, "no features"),  # lens covered / dark
    ],
    ids=["same", "smaller", "brighter", "shift-1.9deg", "shift-6deg", "other-view", "black"],
)
def test_view_checker(view: NDArray[np.uint8], matches: bool, reason: str) -> None:
    result = ViewChecker(REF, 60.0, CFG).compare(view)
    assert result.matches is matches, result
    assert reason in result.reason
    if reason == "off its reference":
        assert result.shift_deg == pytest.approx(6.0, abs=0.5)


def test_guard_holds_a_preset_until_its_view_matches_again() -> None:
    changes: list[tuple[str | None, bool]] = []
    guard = ViewGuard({"east": ViewChecker(REF, 60.0, CFG)}, CFG)
    guard.on_change = lambda preset, ok, detail: changes.append((preset, ok))
    turned = shifted(REF, 100)
    assert guard.allows("north", 1, turned, 0.0)  # no reference for this preset: never held
    assert not guard.allows("east", 1, turned, 0.0)
    assert not guard.allows("east", 1, REF, 0.2)  # within recheck_s: still held, not recomputed
    assert guard.allows("east", 1, REF, 0.6)  # rechecked: matches again
    assert not guard.allows("east", 2, turned, 0.7)  # a new visit is checked at once
    assert not guard.allows("east", 2, turned, 1.3)  # still wrong in the same visit: not reported again
    assert not guard.allows("east", 3, turned, 1.4)  # still wrong at the next visit: reported again
    assert changes == [("east", False), ("east", True), ("east", False), ("east", False)]
    assert guard.health()["view_mismatch"] == ["east"]


def test_missing_reference_image_is_a_one_line_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="a readable reference image") as err:
        load_reference(tmp_path / "none.png", "cameras (id=x).view_reference_path")
    assert "none.png" in str(err.value) and "no such file" in str(err.value)


def test_mismatching_view_raises_view_mismatch_and_holds_that_preset(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    # the clip shows scene(seed=0); "north" has the right reference, "east" one of another view
    cv2.imwrite(str(tmp_path / "north.png"), scene(320, 240, seed=0))
    cv2.imwrite(str(tmp_path / "east.png"), scene(320, 240, seed=5))
    presets = [{**PRESETS[0], "reference_image": str(tmp_path / "north.png")},
               {**PRESETS[1], "reference_image": str(tmp_path / "east.png")}]
    cam = patrol_camera(rtsp_server.url, presets, patrol={"driver": "simulated", "simulated_speed_deg_s": 150.0,
                                                         "presets": presets})
    statuses = Statuses()
    src = make_source(cam, statuses)
    src.start()
    try:
        assert wait_until(lambda: src.status == "online", 10)
        frames = collect(src, 5.0)
    finally:
        src.stop()
    assert "view_mismatch" in statuses.names()
    mismatch = next(d for _, s, d in statuses.events if s == "view_mismatch")
    assert mismatch["preset"] == "east"
    assert {f.pose.preset for f in frames} == {"north"}  # east held: nothing analysed there
    assert src.health()["frames_held_total"] > 0
    assert src.health()["view_mismatch"] == ["east"]


def test_fixed_camera_with_wrong_reference_is_held(rtsp_server: RtspServer, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "ref.png"), shifted(scene(320, 240, seed=0), 60))  # turned by ~10°
    cam = CameraConfig.model_validate({"id": "fix", "source": rtsp_server.url, "lat": 38.7, "lon": 111.6,
                                       "hfov_deg": 60.0, "view_reference_path": str(tmp_path / "ref.png"),
                                       "reader": {"stall_s": 1.0, "open_timeout_s": 2.0}})
    statuses = Statuses()
    src = make_source(cam, statuses)
    src.start()
    try:
        assert wait_until(lambda: statuses.seen("view_mismatch"), 10), statuses.names()
        time.sleep(0.5)
        assert src.slot.get(0.2) is None
    finally:
        src.stop()

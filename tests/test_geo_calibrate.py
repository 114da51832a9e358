"""pipeline/geo/calibrate.py: recover a head's pan/tilt/roll offsets from landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import PoseSigma
from pipeline.geo.calibrate import fit_pose_offset
from pipeline.geo.camera import CameraModel
from pipeline.geo.terrain import Terrain
from pipeline.types import Pose

WH = (1920, 1080)
MODEL = CameraModel("cal", 26.5, 107.6, 500.0, 40.0, Terrain(vertical_sigma_m=0.0))
NO_SIGMA = PoseSigma(pan_deg=0.0, tilt_deg=0.0, pixel_px=0.0, height_m=0.0)


def landmarks(true_pose: Pose, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fixes = MODEL.locate(true_pose, WH, xy, NO_SIGMA)
    assert all(f is not None for f in fixes)
    return (
        np.array([f.lat for f in fixes if f]),
        np.array([f.lon for f in fixes if f]),
        np.array([f.elevation_m for f in fixes if f]),
    )


@pytest.mark.parametrize(("d_pan", "d_tilt", "d_roll"), [(0.3, -0.2, 0.5), (-1.5, 0.4, 0.0), (0.0, 0.05, -1.0)])
def test_offsets_are_recovered_and_fix_the_range(d_pan: float, d_tilt: float, d_roll: float) -> None:
    reported = Pose(40.0, -2.0, 30.0)
    true_pose = Pose(40.0 + d_pan, -2.0 + d_tilt, 30.0, d_roll)
    xy = np.array([[200.0, 700.0], [1700.0, 650.0], [960.0, 900.0], [500.0, 1000.0], [1400.0, 800.0]])
    lat, lon, elev = landmarks(true_pose, xy)
    rng = np.random.default_rng(1)
    seen_xy = xy + rng.normal(0, 0.3, xy.shape)
    off = fit_pose_offset(MODEL, reported, WH, seen_xy, lat, lon, elev)
    assert off.pan_deg == pytest.approx(d_pan, abs=0.01)
    assert off.tilt_deg == pytest.approx(d_tilt, abs=0.01)
    assert off.roll_deg == pytest.approx(d_roll, abs=0.05)
    assert off.rms_px < 1.0 and off.landmarks == 5
    # a target located with the corrected pose lands where the true pose puts it
    target = np.array([[1000.0, 760.0]])
    truth = MODEL.locate(true_pose, WH, target, NO_SIGMA)[0]
    fixed = MODEL.locate(off.apply(reported), WH, target, NO_SIGMA)[0]
    assert truth is not None and fixed is not None
    assert abs(fixed.range_m - truth.range_m) < 0.01 * truth.range_m


def test_without_roll_two_landmarks_suffice() -> None:
    reported = Pose(10.0, -3.0, 20.0)
    true_pose = Pose(10.2, -3.1, 20.0)
    xy = np.array([[600.0, 700.0], [1300.0, 800.0]])
    lat, lon, elev = landmarks(true_pose, xy)
    off = fit_pose_offset(MODEL, reported, WH, xy, lat, lon, elev, fit_roll=False)
    assert off.pan_deg == pytest.approx(0.2, abs=1e-4) and off.tilt_deg == pytest.approx(-0.1, abs=1e-4)
    assert off.roll_deg == 0.0


@pytest.mark.parametrize("case", ["one landmark", "mismatched", "behind"])
def test_fit_errors(case: str) -> None:
    reported = Pose(0.0, -3.0, 30.0)
    lat, lon, elev = landmarks(reported, np.array([[900.0, 700.0], [1000.0, 800.0]]))
    xy = np.array([[900.0, 700.0], [1000.0, 800.0]])
    if case == "one landmark":
        xy, lat, lon, elev = xy[:1], lat[:1], lon[:1], elev[:1]
    elif case == "mismatched":
        lat = lat[:1]
    else:
        reported = Pose(180.0, -3.0, 30.0)  # looking the other way
    with pytest.raises(ValueError):
        fit_pose_offset(MODEL, reported, WH, xy, lat, lon, elev)

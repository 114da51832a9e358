"""pipeline/geo/camera.py: hand-worked geometry, round trips, conventions and the 90 % ellipse (flat ground)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.config import CameraConfig, PoseSigma
from pipeline.geo.camera import (
    CHI2_2D_90,
    CameraModel,
    box_bearing_deg,
    ellipse_90,
    hfov_for_zoom,
    in_vertical_view,
    vfov_deg,
)
from pipeline.geo.terrain import EARTH_RADIUS_M, Terrain
from pipeline.types import Pose

WH = (1920, 1080)
CENTRE = [[960.0, 540.0]]
NO_SIGMA = PoseSigma(pan_deg=0.0, tilt_deg=0.0, pixel_px=0.0, height_m=0.0)


def flat(curvature: bool = False, mast_m: float = 100.0, **kw: float) -> CameraModel:
    terrain = Terrain(curvature=curvature, vertical_sigma_m=kw.pop("vertical_sigma_m", 0.0))
    return CameraModel("cam", 26.5, 107.6, 500.0, mast_m, terrain, **kw)  # type: ignore[arg-type]


def test_hand_worked_100m_tower_looking_down_1deg_sees_ground_at_5_73_km() -> None:
    fix = flat().locate(Pose(0.0, -1.0, 30.0), WH, CENTRE, NO_SIGMA)[0]
    assert fix is not None
    assert fix.range_m == pytest.approx(100.0 / math.tan(math.radians(1.0)), abs=0.01)  # 5729.0 m
    assert fix.range_m == pytest.approx(5729.0, abs=0.5)
    assert fix.bearing_deg == pytest.approx(0.0, abs=1e-9)
    assert fix.elevation_m == 500.0
    assert fix.lat > 26.5 and fix.lon == pytest.approx(107.6, abs=1e-12)


def test_hand_worked_with_curvature_and_refraction() -> None:
    """The ground falls (1−k)s²/2R below the horizontal: solve s·tan1° = 100 + 0.87 s²/2R by the textbook formula;
    the tangent-frame distance s is R/(R+500 m) of a sea-level surface distance (the local frame's metres)."""
    a = 0.87 / (2 * EARTH_RADIUS_M)
    tan1 = math.tan(math.radians(1.0))
    s_expected = (tan1 - math.sqrt(tan1 * tan1 - 4 * a * 100.0)) / (2 * a)  # the nearer root
    assert 5850 < s_expected < 5880  # ≈ 134 m further than on a flat Earth
    fix = flat(curvature=True).locate(Pose(0.0, -1.0, 30.0), WH, CENTRE, NO_SIGMA)[0]
    assert fix is not None
    assert fix.range_m == pytest.approx(s_expected * EARTH_RADIUS_M / (EARTH_RADIUS_M + 500.0), abs=0.05)


@pytest.mark.parametrize(("pan", "bearing"), [(0.0, 0.0), (30.0, 30.0), (90.0, 90.0), (-90.0, 270.0), (400.0, 40.0)])
def test_pan_is_clockwise_from_north(pan: float, bearing: float) -> None:
    fix = flat().locate(Pose(pan, -5.0, 40.0), WH, CENTRE, NO_SIGMA)[0]
    assert fix is not None and fix.bearing_deg == pytest.approx(bearing, abs=1e-6)


def test_image_axes_right_is_clockwise_and_bottom_is_nearer() -> None:
    model = flat()
    pose = Pose(0.0, -10.0, 40.0)
    left, right, top, bottom = model.locate(pose, WH, [[100, 540], [1820, 540], [960, 300], [960, 1000]], NO_SIGMA)
    assert left and right and top and bottom
    assert left.bearing_deg > 180 and 0 < right.bearing_deg < 90
    assert bottom.range_m < top.range_m


def test_right_edge_pixel_is_half_the_hfov_off_axis_at_zero_tilt() -> None:
    model = flat(mast_m=100.0)
    ray = model.rays(Pose(0.0, 0.0, 50.0), WH, [[1920.0, 540.0]])[0]
    assert math.degrees(math.atan2(ray[0], ray[1])) == pytest.approx(25.0, abs=1e-9)
    top = model.rays(Pose(0.0, 0.0, 50.0), WH, [[960.0, 0.0]])[0]
    vfov = 2 * math.degrees(math.atan(math.tan(math.radians(25.0)) * 1080 / 1920))
    assert math.degrees(math.asin(top[2])) == pytest.approx(vfov / 2, abs=1e-9)


def test_roll_turns_the_right_side_down() -> None:
    ray = flat().rays(Pose(0.0, 0.0, 60.0, roll_deg=10.0), WH, [[1920.0, 540.0]])[0]
    assert ray[2] < 0  # right edge now below the horizon


@pytest.mark.parametrize(
    ("pose", "k1", "k2", "curvature"),
    [
        (Pose(0.0, -2.0, 60.0), 0.0, 0.0, False),
        (Pose(123.0, -0.8, 4.0), 0.0, 0.0, True),
        (Pose(250.0, -12.0, 45.0, roll_deg=3.0), -0.12, 0.02, True),
        (Pose(359.0, -30.0, 90.0, roll_deg=-5.0), 0.08, -0.01, False),
    ],
)
def test_pixel_ground_pixel_round_trip(pose: Pose, k1: float, k2: float, curvature: bool) -> None:
    model = flat(curvature=curvature, distortion_k1=k1, distortion_k2=k2)
    gx, gy = np.meshgrid(np.linspace(20, 1900, 7), np.linspace(560, 1060, 5))
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    fixes = model.locate(pose, WH, xy, NO_SIGMA)
    pts = [(p, f) for p, f in zip(xy, fixes, strict=True) if f is not None]
    assert len(pts) >= 20
    back = model.project(pose, WH, [f.lat for _, f in pts], [f.lon for _, f in pts], [f.elevation_m for _, f in pts])
    assert np.max(np.abs(back - np.array([p for p, _ in pts]))) < 1e-4
    # the ground elevation is found by the model when not given
    again = model.project(pose, WH, [f.lat for _, f in pts], [f.lon for _, f in pts])
    assert np.max(np.abs(again - back)) < 1e-9


def test_project_behind_the_camera_is_nan() -> None:
    model = flat()
    pose = Pose(0.0, -5.0, 40.0)
    lat, lon = model.frame.to_wgs84(np.array([0.0, 0.0]), np.array([1000.0, -1000.0]))
    px = model.project(pose, WH, lat, lon)
    assert np.isfinite(px[0]).all() and np.isnan(px[1]).all()


def test_above_horizon_gives_none_and_is_counted() -> None:
    model = CameraModel("cam", 26.5, 107.6, 500.0, 100.0, Terrain(max_range_m=100_000.0))
    fixes = model.locate(Pose(0.0, 2.0, 30.0), WH, [[960, 540], [960, 1080]], NO_SIGMA)
    assert fixes[0] is None and model.miss_counts["above_horizon"] >= 1
    # with curvature even a slightly downward ray can miss: the horizon of a 100 m mast is 0.30° down
    dip = math.degrees(math.sqrt(2 * 100.0 * 0.87 / EARTH_RADIUS_M))
    assert model.locate(Pose(0.0, -(dip - 0.02), 30.0), WH, CENTRE, NO_SIGMA)[0] is None
    assert model.locate(Pose(0.0, -(dip + 0.02), 30.0), WH, CENTRE, NO_SIGMA)[0] is not None
    assert model.miss_counts["beyond_max_range"] == 0


def test_beyond_max_range_gives_none() -> None:
    model = CameraModel("cam", 26.5, 107.6, 0.0, 100.0, Terrain(curvature=False, max_range_m=3000.0))
    assert model.locate(Pose(0.0, -1.0, 30.0), WH, CENTRE)[0] is None
    assert model.miss_counts["beyond_max_range"] == 1


def test_empty_input() -> None:
    assert flat().locate(Pose(0.0, -1.0, 30.0), WH, np.zeros((0, 2))) == []


# -------------------------------------------------------------------------------------------------- uncertainty
def test_ellipse_matches_hand_worked_sensitivities() -> None:
    """Flat ground, no curvature: s = H/tan θ. Probing tilt at ±kσ (k = 2.146) and keeping the longer side,
    σ_s = H(cot(θ−kσ) − cot θ)/k (the far side: 730 m, where the symmetric secant would say 580 m); the cross
    error is s·σ_pan."""
    h, theta, sig = 100.0, 1.0, 0.1
    model = flat()
    sigma = PoseSigma(pan_deg=sig, tilt_deg=sig, pixel_px=0.0, height_m=0.0)
    fix = model.locate(Pose(60.0, -theta, 30.0), WH, CENTRE, sigma)[0]
    assert fix is not None
    cot = lambda deg: 1.0 / math.tan(math.radians(deg))  # noqa: E731
    k = math.sqrt(CHI2_2D_90)
    sigma_range = h * (cot(theta - k * sig) - cot(theta)) / k  # ≈ 730 m
    assert 725 < sigma_range < 735
    sigma_cross = fix.range_m * math.radians(sig)  # ≈ 10 m
    assert fix.semi_major_m == pytest.approx(k * sigma_range, rel=1e-3)
    assert fix.semi_minor_m == pytest.approx(k * sigma_cross, rel=1e-3)
    assert fix.orientation_deg == pytest.approx(60.0, abs=0.01)  # along the line of sight
    cov = np.array(fix.cov_en_m2).reshape(2, 2)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)


def test_vertical_sigma_of_the_ground_widens_the_ellipse_along_the_ray() -> None:
    pose = Pose(0.0, -2.0, 30.0)
    sig = PoseSigma(pan_deg=0.0, tilt_deg=0.0, pixel_px=0.0, height_m=0.0)
    without = flat(vertical_sigma_m=0.0).locate(pose, WH, CENTRE, sig)[0]
    with_dz = flat(vertical_sigma_m=5.0).locate(pose, WH, CENTRE, sig)[0]
    assert without is not None and with_dz is not None
    assert without.semi_major_m == pytest.approx(0.0, abs=1e-6)
    # raising the ground by 5 m shortens the range by 5/tan 2° = 143 m
    assert with_dz.semi_major_m == pytest.approx(math.sqrt(CHI2_2D_90) * 5.0 / math.tan(math.radians(2.0)), rel=1e-6)


def test_monte_carlo_coverage_of_the_90_percent_ellipse_on_flat_ground() -> None:
    rng = np.random.default_rng(7)
    model = flat(curvature=True)
    sig = PoseSigma(pan_deg=0.1, tilt_deg=0.1, pixel_px=2.0, height_m=0.0)
    inside = []
    for _ in range(400):
        true_pose = Pose(rng.uniform(0, 360), rng.uniform(-20.0, -2.0), rng.uniform(5.0, 50.0))
        xy = np.array([[rng.uniform(100, 1820), rng.uniform(600, 1000)]])
        truth = model.locate(true_pose, WH, xy, NO_SIGMA)[0]
        pan, tilt = true_pose.pan_deg + rng.normal(0, 0.1), true_pose.tilt_deg + rng.normal(0, 0.1)
        noisy = Pose(pan, tilt, true_pose.hfov_deg)
        fix = model.locate(noisy, WH, xy + rng.normal(0, 2.0, 2), sig)[0]
        assert truth is not None and fix is not None
        te, tn = model.frame.to_local_m(truth.lat, truth.lon)
        fe, fn = model.frame.to_local_m(fix.lat, fix.lon)
        d = np.array([te - fe, tn - fn])
        inside.append(float(d @ np.linalg.solve(np.array(fix.cov_en_m2).reshape(2, 2), d)) <= CHI2_2D_90)
    assert 0.86 <= float(np.mean(inside)) <= 0.94  # binomial 95 % band around 0.90 for n=400 is ±0.03


@pytest.mark.parametrize(
    ("cov", "major", "minor", "orientation"),
    [
        ([[4.0, 0.0], [0.0, 1.0]], 2.0, 1.0, 90.0),
        ([[1.0, 0.0], [0.0, 9.0]], 3.0, 1.0, 0.0),
        ([[5.0, 4.0], [4.0, 5.0]], 3.0, 1.0, 45.0),
        ([[5.0, -4.0], [-4.0, 5.0]], 3.0, 1.0, 135.0),
    ],
)
def test_ellipse_axes_and_orientation(cov: list[list[float]], major: float, minor: float, orientation: float) -> None:
    a, b, o = ellipse_90(cov)
    k = math.sqrt(CHI2_2D_90)
    assert a == pytest.approx(k * major) and b == pytest.approx(k * minor)
    assert o == pytest.approx(orientation)


# ---------------------------------------------------------------------------------------------- lens and config
def test_zoom_table_interpolates_in_focal_length() -> None:
    table = [(1.0, 60.0), (30.0, 2.2)]
    assert hfov_for_zoom(table, 1.0) == pytest.approx(60.0)
    assert hfov_for_zoom(table, 30.0) == pytest.approx(2.2)
    assert hfov_for_zoom(table, 50.0) == pytest.approx(2.2)  # clamped
    f1, f30 = 1 / math.tan(math.radians(30.0)), 1 / math.tan(math.radians(1.1))
    mid = math.degrees(2 * math.atan(1 / ((f1 + f30) / 2)))
    assert hfov_for_zoom(table, 15.5) == pytest.approx(mid)
    with pytest.raises(ValueError):
        hfov_for_zoom([], 2.0)


def test_from_config_carries_tower_lens_and_sigma() -> None:
    cam = CameraConfig.model_validate(
        {
            "id": "t1",
            "source": "x.mp4",
            "lat": 26.5,
            "lon": 107.6,
            "ground_elevation_m": 800.0,
            "mast_height_m": 35.0,
            "zoom_hfov": [[1, 58.0], [20, 3.1]],
            "distortion_k1": -0.05,
            "pose_sigma": {"pan_deg": 0.2, "tilt_deg": 0.05, "pixel_px": 3.0},
        }
    )
    model = CameraModel.from_config(cam)
    assert model.camera_z_m == 835.0 and model.k1 == -0.05
    assert model.hfov_for_zoom(20) == pytest.approx(3.1)
    fix = model.locate(Pose(0.0, -3.0, 30.0), WH, CENTRE)[0]
    assert fix is not None and fix.cameras == ("t1",)
    assert fix.elevation_m == 800.0
    assert fix.range_m == pytest.approx(35.0 / math.tan(math.radians(3.0)), rel=1e-3)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"distortion_k1": 3.0}, "distortion_k1"),
        ({"zoom_hfov": [[1, 200.0]]}, "zoom_hfov"),
        ({"zoom_hfov": [[0, 50.0]]}, "zoom_hfov"),
    ],
)
def test_lens_config_errors(patch: dict[str, object], field: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=field):
        CameraConfig.model_validate({"id": "t1", "source": "x.mp4", "lat": 26.5, "lon": 107.6, **patch})


@pytest.mark.parametrize("k1", [0.0, -0.08])
@pytest.mark.parametrize("roll_deg", [0.0, 3.0])
def test_probe_in_one_pass_equals_one_ray_per_perturbation(k1: float, roll_deg: float) -> None:
    """``_probe`` builds every perturbed ray at once; each must be the ray ``rays`` gives for that pose."""
    model = flat(distortion_k1=k1)
    pose = Pose(40.0, -6.0, 50.0, roll_deg)
    xy = np.array([[640.0, 500.0], [100.0, 700.0], [1200.0, 400.0]])
    steps = np.array([[0, 0, 0, 0, 0], [0.2, 0, 0, 0, 0], [0, -0.3, 0, 0, 0], [0, 0, 4, -2, 0], [0, 0, 0, 0, 5]],
                     np.float64)
    pts, codes = model._probe(pose, (1280, 720), xy, steps)
    for k, (d_pan, d_tilt, d_x, d_y, d_z) in enumerate(steps):
        p = Pose(pose.pan_deg + d_pan, pose.tilt_deg + d_tilt, pose.hfov_deg, pose.roll_deg)
        dirs = model.rays(p, (1280, 720), xy + np.array([d_x, d_y]))
        t, code = model.intersect(dirs, np.full(len(xy), d_z))
        np.testing.assert_allclose(pts[k], model.ground_en(dirs, t), rtol=1e-9, atol=1e-6)
        assert (codes[k] == code).all()


@pytest.mark.parametrize(
    ("x", "bearing"),
    [(640, 90.0), (1280, 120.0), (0, 60.0), (960, 90 + math.degrees(math.atan(0.5 * math.tan(math.radians(30)))))],
)
def test_box_bearing(x: float, bearing: float) -> None:
    assert box_bearing_deg(Pose(90.0, -2.0, 60.0, preset="east"), (1280, 720), x) == pytest.approx(bearing)


def test_vertical_view_by_elevation_angle() -> None:
    """hfov 60° on 1280 × 720: vfov = 2·atan(tan 30° · 720 / 1280) = 35.98°; ±17.99° around the tilt."""
    assert vfov_deg(60.0, (1280, 720)) == pytest.approx(35.98, abs=0.01)
    pose = Pose(90.0, -2.0, 60.0)
    assert in_vertical_view(pose, (1280, 720), 1020.0, 1000.0, 1000.0)  # 1.1° down: inside
    assert not in_vertical_view(Pose(90.0, 30.0, 20.0), (1280, 720), 1020.0, 1000.0, 1000.0)  # looking far above
    assert not in_vertical_view(pose, (1280, 720), 1020.0, 1000.0, 50.0)  # 21.8° down: below the frame


def test_tower_height_error_is_in_the_ellipse() -> None:
    """Issue 17 item 14: the camera stands 1 m (1 σ) higher or lower than the config says; the DEM is exact.

    Grazing lines of sight (0.7–6° down from a 30 m mast): the height error dominates and, left out of the
    ellipse, the truth falls outside it far more often than 10 %; with ``pose_sigma.height_m`` it is ~90 %.
    """
    rng = np.random.default_rng(14)
    sig = PoseSigma(pan_deg=0.02, tilt_deg=0.02, pixel_px=0.5, height_m=1.0)
    inside = []
    for _ in range(300):
        truth = flat(curvature=True, mast_m=30.0 + rng.normal(0.0, 1.0))
        believed = flat(curvature=True, mast_m=30.0)
        r = rng.uniform(300.0, 2500.0)
        az = rng.uniform(0.0, 360.0)
        lat, lon = believed.frame.to_wgs84(r * math.sin(math.radians(az)), r * math.cos(math.radians(az)))
        pose = Pose(az, -math.degrees(math.atan2(30.0, r)), 10.0)
        px = truth.project(pose, WH, lat, lon, 500.0)[0]
        noisy = Pose(pose.pan_deg + rng.normal(0, 0.02), pose.tilt_deg + rng.normal(0, 0.02), pose.hfov_deg)
        fix = believed.locate(noisy, WH, (px + rng.normal(0, 0.5, 2))[None, :], sig)[0]
        assert fix is not None
        fe, fn = believed.frame.to_local_m(fix.lat, fix.lon)
        te, tn = believed.frame.to_local_m(lat, lon)
        d = np.array([te - fe, tn - fn])
        inside.append(float(d @ np.linalg.solve(np.array(fix.cov_en_m2).reshape(2, 2), d)) <= CHI2_2D_90)
    coverage = float(np.mean(inside))
    assert 0.85 <= coverage <= 0.97, coverage

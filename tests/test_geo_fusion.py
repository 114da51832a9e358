"""pipeline/geo/fusion.py: two-tower fixes (flat ground, so every number can be checked by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.config import PoseSigma
from pipeline.geo.camera import CHI2_2D_90, CameraModel
from pipeline.geo.coords import LocalFrame
from pipeline.geo.fusion import FusionBuffer, View, fuse_fixes, tower_of
from pipeline.geo.terrain import Terrain
from pipeline.types import GroundFix, Pose

WH = (1920, 1080)
LAT0, LON0 = 26.5, 107.6
FRAME = LocalFrame(LAT0, LON0)
SIG = PoseSigma(pan_deg=0.1, tilt_deg=0.1, pixel_px=1.0, height_m=0.0)
TERRAIN = Terrain(curvature=True, vertical_sigma_m=0.0)


def tower(cid: str, east_m: float, north_m: float) -> CameraModel:
    lat, lon = FRAME.to_wgs84(east_m, north_m)
    return CameraModel(cid, lat, lon, 500.0, 100.0, TERRAIN)


A = tower("A", 0.0, 0.0)
B = tower("B", 6000.0, 0.0)
C = tower("C", -1500.0, -2000.0)  # right behind A as seen from the target: parallel lines of sight


def aim(model: CameraModel, target_en: tuple[float, float]) -> tuple[Pose, np.ndarray]:
    """The pose that centres the target, and the target's pixel (the image centre)."""
    lat, lon = FRAME.to_wgs84(*target_en)
    e, n = model.frame.to_local_m(lat, lon)
    s = math.hypot(e, n)
    dip = math.degrees(math.atan2(model.camera_z_m - 500.0 + float(TERRAIN.drop_m(s)), s))
    pose = Pose(math.degrees(math.atan2(e, n)), -dip, 8.0)
    return pose, model.project(pose, WH, lat, lon, 500.0)[0]


def seen(
    model: CameraModel,
    target_en: tuple[float, float],
    rng: np.random.Generator | None = None,
    d_tilt: float = 0.0,
    d_pan: float = 0.0,
) -> GroundFix:
    pose, px = aim(model, target_en)
    if rng is not None:
        d_pan, d_tilt = rng.normal(0, 0.1), rng.normal(0, 0.1)
        px = px + rng.normal(0, 1.0, 2)
    noisy = Pose(pose.pan_deg + d_pan, pose.tilt_deg + d_tilt, pose.hfov_deg)
    fix = model.locate(noisy, WH, px[None, :], SIG)[0]
    assert fix is not None
    return fix


def error_m(fix: GroundFix, target_en: tuple[float, float]) -> float:
    e, n = FRAME.to_local_m(fix.lat, fix.lon)
    return math.hypot(e - target_en[0], n - target_en[1])


def test_fused_fix_is_closer_with_a_smaller_ellipse_and_names_both_cameras() -> None:
    target = (3000.0, 4000.0)
    a = seen(A, target, d_tilt=0.1)  # a 1 σ tilt error each: ±10 % of range along each line of sight
    b = seen(B, target, d_tilt=-0.1)
    fused = fuse_fixes(a, b)
    assert fused is not None
    assert fused.cameras == ("A", "B")
    assert error_m(fused, target) < 0.2 * min(error_m(a, target), error_m(b, target))
    assert fused.semi_major_m < min(a.semi_major_m, b.semi_major_m) / 5
    area = lambda f: f.semi_major_m * f.semi_minor_m  # noqa: E731
    assert area(fused) < min(area(a), area(b))
    lat_a, lon_a = A.lat, A.lon
    e, n = LocalFrame(lat_a, lon_a).to_local_m(fused.lat, fused.lon)
    assert fused.range_m == pytest.approx(math.hypot(e, n), rel=1e-6)  # range and bearing from the first tower
    assert fused.bearing_deg == pytest.approx(math.degrees(math.atan2(e, n)) % 360, abs=1e-4)


def test_monte_carlo_fused_error_smaller_than_either_and_coverage() -> None:
    rng = np.random.default_rng(11)
    errs: dict[str, list[float]] = {"A": [], "B": [], "fused": []}
    inside = []
    rejected = 0
    for _ in range(150):
        target = (rng.uniform(1000, 5000), rng.uniform(2000, 5500))
        a, b = seen(A, target, rng), seen(B, target, rng)
        fused = fuse_fixes(a, b)
        if fused is None:  # the default gate (99.99 % point) turns away ~0.3 % of true pairs
            rejected += 1
            continue
        errs["A"].append(error_m(a, target))
        errs["B"].append(error_m(b, target))
        errs["fused"].append(error_m(fused, target))
        fe, fn = FRAME.to_local_m(fused.lat, fused.lon)
        d = np.array([target[0] - fe, target[1] - fn])
        inside.append(float(d @ np.linalg.solve(np.array(fused.cov_en_m2).reshape(2, 2), d)) <= CHI2_2D_90)
    med = {k: float(np.median(v)) for k, v in errs.items()}
    assert med["fused"] < 0.5 * min(med["A"], med["B"])
    assert 0.83 <= float(np.mean(inside)) <= 0.96
    assert rejected <= 3


@pytest.mark.parametrize("case", ["same camera", "parallel", "disagree", "outside view a", "outside view b"])
def test_fusion_gates(case: str) -> None:
    target = (3000.0, 4000.0)
    a, b = seen(A, target), seen(B, target)
    kwargs: dict[str, View] = {}
    if case == "same camera":
        b = seen(A, (3010.0, 4010.0))
    elif case == "parallel":
        b = seen(C, target)
    elif case == "disagree":
        b = seen(B, (5500.0, 500.0))
    elif case == "outside view a":
        kwargs["view_a"] = View(pan_deg=a.bearing_deg + 10.0, hfov_deg=8.0)
    else:
        kwargs["view_b"] = View(pan_deg=b.bearing_deg - 10.0, hfov_deg=8.0)
    assert fuse_fixes(a, b, **kwargs) is None  # type: ignore[arg-type]
    if case.startswith("outside"):
        assert fuse_fixes(a, b, view_a=View(a.bearing_deg + 1.0, 8.0), view_b=View(b.bearing_deg - 1.0, 8.0))


def test_covariance_intersection_is_conservative() -> None:
    target = (2000.0, 5000.0)
    a, b = seen(A, target, d_tilt=0.05), seen(B, target, d_tilt=0.05)
    indep, ci = fuse_fixes(a, b), fuse_fixes(a, b, method="ci")
    assert indep is not None and ci is not None
    area = lambda f: f.semi_major_m * f.semi_minor_m  # noqa: E731
    assert area(indep) <= area(ci) <= min(area(a), area(b))


def test_tower_is_recovered_from_a_fix() -> None:
    fix = seen(B, (500.0, 9000.0))
    lat, lon = tower_of(fix)
    e, n = FRAME.to_local_m(lat, lon)
    assert math.hypot(e - 6000.0, n - 0.0) < 0.01


# ------------------------------------------------------------------------------------------------- FusionBuffer
def test_buffer_fuses_across_cameras_within_the_window_only() -> None:
    target = (3000.0, 4000.0)
    a, b = seen(A, target, d_tilt=0.1), seen(B, target, d_tilt=-0.1)
    buf = FusionBuffer(window_s=5.0)
    assert buf.add_and_fuse("A", "excavator", 100.0, a, key=1) is a  # nothing to fuse with yet
    fused = buf.add_and_fuse("B", "excavator", 103.0, b, key=7)
    assert fused.cameras == ("B", "A") and buf.fused == 1
    assert buf.query("B", "truck", 103.0, b) is None  # another class
    assert buf.query("B", "excavator", 106.0, b) is None  # A's fix is 6 s old
    assert buf.query("A", "excavator", 104.0, seen(A, target)) is not None  # B's is still fresh for A


def test_buffer_keys_replace_and_size_is_bounded() -> None:
    fix = seen(A, (3000.0, 4000.0))
    buf = FusionBuffer(window_s=60.0, max_entries=5)
    for i in range(3):
        buf.add("A", "truck", float(i), fix, key="track-1")
    assert len(buf) == 1
    for i in range(20):
        buf.add("A", "truck", 10.0 + i, fix)
    assert len(buf) == 5
    buf.prune(1000.0)
    assert len(buf) == 0


def test_buffer_respects_each_cameras_view() -> None:
    target = (3000.0, 4000.0)
    a, b = seen(A, target, d_tilt=0.1), seen(B, target, d_tilt=-0.1)
    buf = FusionBuffer(window_s=5.0)
    buf.add("A", "truck", 10.0, a, view=View(a.bearing_deg + 20.0, 10.0))  # A's view does not contain the point
    assert buf.query("B", "truck", 11.0, b, view=View(b.bearing_deg, 10.0)) is None
    buf.add("A", "truck", 10.0, a, key="t", view=View(a.bearing_deg + 2.0, 10.0))
    fused = buf.query("B", "truck", 11.0, b, view=View(b.bearing_deg, 10.0))
    assert fused is not None and set(fused.cameras) == {"A", "B"}


def test_gate_is_a_documented_quantile_and_rejects_few_true_pairs() -> None:
    """Issue 17 item 15: the gate is ``fusion.gate_quantile`` of χ²₂ and turns away < 1 % of true pairs here."""
    from pipeline.config import FusionConfig
    from pipeline.geo.fusion import GATE_CHI2, chi2_2d_quantile, fusion_chi2

    assert chi2_2d_quantile(0.99) == pytest.approx(9.2103, abs=1e-4)
    assert chi2_2d_quantile(FusionConfig().gate_quantile) == pytest.approx(GATE_CHI2)
    rng = np.random.default_rng(15)
    chi2 = []
    for _ in range(400):
        target = (rng.uniform(1000, 5000), rng.uniform(2000, 5500))
        chi2.append(fusion_chi2(seen(A, target, rng), seen(B, target, rng)))
    arr = np.array(chi2)
    assert float(np.mean(arr > GATE_CHI2)) <= 0.01


def test_analyzer_gates_at_the_configured_quantile() -> None:
    from pipeline.analyzer import Analyzer
    from pipeline.config import Config
    from pipeline.geo.fusion import chi2_2d_quantile

    cams = [{"id": c, "source": "x.mp4", "lat": 26.5, "lon": 107.6 + i * 0.01} for i, c in enumerate("ab")]
    config = Config.model_validate({"cameras": cams, "fusion": {"gate_quantile": 0.995}})
    analyzer = Analyzer(config, [])
    assert analyzer.fusion is not None
    assert analyzer.fusion.gate_chi2 == pytest.approx(chi2_2d_quantile(0.995))

"""The virtual tower (tests/virtual_tower.py): its drawing agrees with the project's geolocation, a look
pose centres and zooms as planned, and its RTSP stream follows the simulated PTZ driver."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

from pipeline.config import CameraConfig
from pipeline.geo.camera import CameraModel, hfov_for_zoom
from pipeline.look import look_pose, zoom_for_hfov
from pipeline.sources import PatrolController, SimulatedDriver, make_source
from tests.rtsp_fixture import collect, rtsp_server_available, wait_until
from tests.virtual_tower import (
    TOUR,
    TOWER,
    WIDE_HFOV_DEG,
    TowerStream,
    make_tower,
)


def camera(**kw: Any) -> CameraConfig:
    return CameraConfig.model_validate({"id": "vt", "source": "rtsp://127.0.0.1:1/none", **TOWER,
                                        "hfov_deg": WIDE_HFOV_DEG, **kw})


def test_a_drawn_object_is_located_on_its_ground_position() -> None:
    cam = camera()
    tower, _ = make_tower(cam)
    model = CameraModel.from_config(cam)
    for obj in tower.objects:
        bearing = math.degrees(math.atan2(obj.east_m, obj.north_m))
        for hfov in (WIDE_HFOV_DEG, 3.0):
            pose = tower.pose(bearing + 2.0, -6.0, hfov)
            box = tower.object_box(obj, pose)
            assert box is not None
            # the drawn box (pixel-rounded as render() draws it), located as the pipeline locates a detection
            x1, y1, x2, y2 = box
            bottom = (round((x1 + x2) / 2 - max(1, round(x2 - x1)) / 2) + max(1, round(x2 - x1)) / 2, round(y2))
            fix = model.locate(pose, tower.wh, np.array([bottom]))[0]
            assert fix is not None
            east, north = model.frame.to_local_m(fix.lat, fix.lon)
            err = math.dist((float(east), float(north)), (obj.east_m, obj.north_m))
            # within the ground footprint of one pixel at that range
            one_px_m = fix.range_m * (fix.range_m / TOWER["mast_height_m"]) * math.radians(hfov) / tower.wh[0]
            assert err <= 1.0 * one_px_m + 0.05, (obj.name, hfov, err, one_px_m)


def test_the_wide_view_shows_the_truth_12_px_tall_and_a_look_pose_zooms_it_to_the_target() -> None:
    cam = camera()
    tower, _ = make_tower(cam)
    truth = tower.objects[0]
    wide = tower.pose(dict(TOUR)["C"], -5.0, WIDE_HFOV_DEG)
    box = tower.object_box(truth, wide)
    assert box is not None and 11.5 <= box[3] - box[1] <= 12.5
    look = look_pose(tower.model, wide, tower.wh, box, 120.0, 1.0)
    zoomed = tower.object_box(truth, look)
    assert zoomed is not None
    assert (zoomed[0] + zoomed[2]) / 2 == pytest.approx(tower.wh[0] / 2, abs=1.0)
    assert (zoomed[1] + zoomed[3]) / 2 == pytest.approx(tower.wh[1] / 2, abs=1.0)
    assert zoomed[3] - zoomed[1] == pytest.approx(120.0, rel=0.03)
    # never narrower than the lens allows
    assert look_pose(tower.model, wide, tower.wh, box, 120.0, 5.0).hfov_deg == 5.0


@pytest.mark.parametrize("hfov", [60.0, 20.0, 4.5, 2.0])
def test_zoom_for_hfov_inverts_the_calibration_table(hfov: float) -> None:
    table = [(0.0, 60.0), (0.5, 10.0), (1.0, 2.0)]
    assert hfov_for_zoom(table, zoom_for_hfov(table, hfov)) == pytest.approx(hfov, rel=1e-6)


def test_the_stream_follows_the_simulated_driver() -> None:
    if not rtsp_server_available():
        pytest.fail("gst-rtsp-server is not installed: run `bash scripts/setup.sh --dev`")
    presets = [{"name": n, "pan_deg": pan, "tilt_deg": -5.0, "settle_s": 0.5, "dwell_s": 1.5} for n, pan in TOUR]
    driver = SimulatedDriver(speed_deg_s=90.0, hfov_deg=WIDE_HFOV_DEG)
    tower, _ = make_tower(camera())
    stream = TowerStream(tower, lambda: driver.view_at(time.time()), fps=5)
    cam = camera(source=stream.url, analysis_fps=5.0,
                 reader={"stall_s": 2.0, "open_timeout_s": 3.0, "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
                 patrol={"driver": "simulated", "presets": presets})
    stream.start()
    src = make_source(cam, driver=driver)
    src.start()
    try:
        assert wait_until(lambda: src.status == "online", 15)
        frames = collect(src, 7.0)
    finally:
        src.stop()
        stream.stop()
    assert isinstance(src.pointing, PatrolController)
    renders = {n: tower.render(pan, -5.0, WIDE_HFOV_DEG).astype(np.float32) for n, pan in TOUR}
    seen = set()
    for f in frames:
        image = f.image_bgr.astype(np.float32)
        err = {n: float(np.abs(image - r).mean()) for n, r in renders.items()}
        # the frame is the view of its own preset (H.264 noise aside), not of another
        assert min(err, key=lambda n: err[n]) == f.pose.preset, err
        assert err[str(f.pose.preset)] < 6.0, err
        seen.add(f.pose.preset)
    assert seen == {n for n, _ in TOUR}


def test_a_score_floor_does_not_bring_back_classes_the_class_map_drops() -> None:
    """A look's zoom magnifies the backdrop into a blur the model calls smoke (~0.8); with smoke dropped by
    class_map, the look's low score floor must not let it out again (it came out as class -1: "person")."""
    from pipeline.config import DetectorConfig
    from pipeline.detect.onnx_detector import OnnxDetector
    from tests.conftest import ROOT

    tower, _ = make_tower(camera(), objects=[])
    image = tower.render(113.0, -7.1, 3.0)
    model = ROOT / "models" / "minewatch-starter.onnx"
    every = OnnxDetector(DetectorConfig(model_path=model, providers=["CPUExecutionProvider"]), intra_op_threads=1)
    people = OnnxDetector(DetectorConfig(model_path=model, providers=["CPUExecutionProvider"],
                                         class_map={"person": "person"}), intra_op_threads=1)
    assert "smoke" in every.detect([image], score_floor=0.05)[0].class_names()  # the blur, as measured
    kept = people.detect([image], score_floor=0.05)[0]
    assert set(kept.class_names()) <= {"person"} and (kept.score < 0.3).all(), (kept.class_names(), kept.score)

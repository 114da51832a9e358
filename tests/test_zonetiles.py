"""Zone tiles: full-resolution tiles run only where a key zone lies in the view (projected with the pose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import CameraConfig, DetectorConfig, TilingConfig
from pipeline.detect.onnx_detector import OnnxDetector
from pipeline.detect.path import InferencePath
from pipeline.detect.tiling import tile_grid
from pipeline.geo.camera import CameraModel
from pipeline.types import Detections, Frame, Pose
from tests.zones_helpers import LAT0, LON0, make_zone, square

ROOT = Path(__file__).resolve().parents[1]
WH = (1920, 1080)
TILING = {"tile_px": 320, "overlap_frac": 0.2, "include_full_frame": True, "zones_only": True, "zone_margin_px": 64}


def _camera(**tiling: object) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "t1", "source": "x.mp4", "lat": LAT0, "lon": LON0, "ground_elevation_m": 0.0, "mast_height_m": 40.0,
        "pan_deg": 0.0, "tilt_deg": -1.0, "hfov_deg": 20.0, "tiling": {**TILING, **tiling}})


class Recording(OnnxDetector):
    """The real detector, remembering the sizes of the crops it was handed."""

    crops: list[tuple[int, int]]

    def detect(self, images_bgr: list[np.ndarray], score_floor: float | None = None) -> list[Detections]:
        self.crops = [(int(i.shape[1]), int(i.shape[0])) for i in images_bgr]
        return super().detect(images_bgr, score_floor)


@pytest.fixture(scope="module")
def detector() -> Recording:
    model = next(iter(sorted((ROOT / "models").glob("*.onnx"))))
    return Recording(DetectorConfig(model_path=model, providers=["CPUExecutionProvider"]), announce=False)


def _run(detector: Recording, cam: CameraConfig, zones: list[object]) -> tuple[list[tuple[int, int]], np.ndarray]:
    model = CameraModel.from_config(cam)
    path = InferencePath([cam], 0.45, {cam.id: model}, zones)
    pose = Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg)
    frame = Frame(cam.id, 0, 0.0, np.full((WH[1], WH[0], 3), 110, np.uint8), pose)
    path.run(detector, [frame])
    return detector.crops, model.project(pose, WH, *_zone_latlon(zones))


def _zone_latlon(zones: list[object]) -> tuple[np.ndarray, np.ndarray]:
    pts = [p for z in zones for ring in z.outline_lonlat() for p in ring]  # type: ignore[attr-defined]
    if not pts:
        return np.zeros(0), np.zeros(0)
    lon, lat = np.asarray(pts).T
    return lat, lon


def test_only_tiles_over_the_zone_run(detector: Recording) -> None:
    cam = _camera()
    zone = make_zone("pit", [square(0.0, 2500.0, 60.0)])  # 2.5 km north, straight ahead
    crops, xy = _run(detector, cam, [zone])
    grid = tile_grid(WH, 320, 0.2)
    assert crops[0] == WH  # the whole frame first
    n_tiles = len(crops) - 1
    assert 1 <= n_tiles < len(grid) // 3
    # the zone is in the middle of the view; every tile that can hold it runs, none far from it
    x1, y1 = xy.min(axis=0) - 64
    x2, y2 = xy.max(axis=0) + 64
    touching = [(tx1 < x2 and tx2 > x1 and ty1 < y2 and ty2 > y1) for tx1, ty1, tx2, ty2 in grid]
    assert n_tiles >= sum(touching) - 0  # all tiles touching the zone's box (±margin) are run
    assert n_tiles <= sum(touching) + 2  # …and hardly more (the box is coarser than the outline)


@pytest.mark.parametrize(
    ("zones_en", "expected_tiles"),
    [
        ([], 0),  # no zone: the whole frame only
        ([square(0.0, -2500.0, 60.0)], 0),  # behind the tower: outside the view, no tile
        ([square(3000.0, 2500.0, 60.0)], 0),  # far to the right of a 20° view
        ([square(0.0, 0.0, 300.0)], len(tile_grid(WH, 320, 0.2))),  # the tower stands in it: every tile
    ],
)
def test_tiles_outside_every_zone_are_not_run(detector: Recording, zones_en: list, expected_tiles: int) -> None:
    zones = [make_zone(f"z{k}", [ring]) for k, ring in enumerate(zones_en)]
    crops, _ = _run(detector, _camera(), zones)
    assert len(crops) - 1 == expected_tiles


def test_without_zones_only_every_tile_runs(detector: Recording) -> None:
    crops, _ = _run(detector, _camera(zones_only=False), [make_zone("pit", [square(0.0, 2500.0, 60.0)])])
    assert len(crops) - 1 == len(tile_grid(WH, 320, 0.2))
    assert TilingConfig.model_validate(TILING).zones_only

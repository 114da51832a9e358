"""Previews checked by pixel: a zone is drawn where the geometry puts it, in a frame and on the map."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from pipeline.config import CameraConfig
from pipeline.errors import UserError
from pipeline.geo.camera import CameraModel
from pipeline.geo.coords import LocalFrame
from pipeline.types import Pose
from pipeline.zones.model import Zone, parse_feature
from pipeline.zones.preview import (
    DEFAULT_FILL_ALPHA,
    colour_of,
    draw_map,
    draw_zones_on_frame,
    grab_frame,
    read_frame,
)

LAT0, LON0 = 38.70, 111.60
W, H = 1920, 1080
MAST_M, TILT_DEG, HFOV_DEG = 25.0, -8.0, 60.0
GREY = 96


def zone(zone_id: str, kind: str, ring_en: list[tuple[float, float]]) -> Zone:
    frame = LocalFrame(LAT0, LON0)
    coords = []
    for e, n in [*ring_en, ring_en[0]]:
        lat, lon = frame.to_wgs84(e, n)
        coords.append([lon, lat])
    feat = {"type": "Feature", "properties": {"id": zone_id, "name": zone_id, "kind": kind},
            "geometry": {"type": "Polygon", "coordinates": [coords]}}
    return parse_feature(feat, 0, "mem")


def camera(**extra: Any) -> CameraConfig:
    return CameraConfig.model_validate({"id": "t1", "source": "x.mp4", "lat": LAT0, "lon": LON0,
                                        "mast_height_m": MAST_M, "pan_deg": 90, "tilt_deg": TILT_DEG,
                                        "hfov_deg": HFOV_DEG} | extra)


def blend(colour: tuple[int, int, int], under: tuple[int, int, int], alpha: float = DEFAULT_FILL_ALPHA) -> np.ndarray:
    return np.array(colour) * alpha + np.array(under) * (1 - alpha)


def row_of_ground_distance(d_m: float) -> float:
    """Pinhole on flat ground, independent of the camera model: the image row of a point d metres straight ahead."""
    f = (W / 2) / math.tan(math.radians(HFOV_DEG / 2))
    below_axis = math.atan2(MAST_M, d_m) - math.radians(-TILT_DEG)
    return H / 2 + f * math.tan(below_axis)


def test_zone_is_filled_where_the_geometry_projects() -> None:
    cam = camera()
    # a closed mine from 150 m to 250 m east of the tower, 120 m wide, straight ahead (pan 90°)
    mine = zone("mine", "closed_mine", [(150, -60), (250, -60), (250, 60), (150, 60)])
    image = np.full((H, W, 3), GREY, np.uint8)
    out, drawn = draw_zones_on_frame(image, CameraModel.from_config(cam), cam, Pose(90, TILT_DEG, HFOV_DEG),
                                     [mine])
    assert drawn == ["mine"]
    want = blend(colour_of("closed_mine"), (GREY, GREY, GREY))
    # inside: 160 m and 240 m ahead (the label sits in the middle), centre column
    for d in (160.0, 240.0):
        y = round(row_of_ground_distance(d))
        assert np.abs(out[y, W // 2].astype(float) - want).max() <= 2, (d, y, out[y, W // 2])
    # outside: 130 m (nearer than the zone) and 300 m (beyond it) are untouched
    for d in (130.0, 300.0):
        y = round(row_of_ground_distance(d))
        assert tuple(out[y, W // 2]) == (GREY, GREY, GREY), (d, y)
    # the outline is at the near edge (150 m) in the zone's own colour
    y_edge = round(row_of_ground_distance(150.0))
    column = out[y_edge - 3:y_edge + 4, W // 4]
    assert any(np.abs(px.astype(int) - colour_of("closed_mine")).max() <= 40 for px in column)
    # the label (white on black box) is drawn in the zone's colour somewhere inside
    mask = np.all(np.abs(out.astype(int) - colour_of("closed_mine")) <= 30, axis=2)
    assert mask.sum() > 50


def test_zone_behind_the_camera_is_not_drawn() -> None:
    cam = camera()
    behind = zone("behind", "illegal_site", [(-250, -60), (-150, -60), (-150, 60), (-250, 60)])
    image = np.full((H, W, 3), GREY, np.uint8)
    out, drawn = draw_zones_on_frame(image, CameraModel.from_config(cam), cam, Pose(90, TILT_DEG, HFOV_DEG),
                                     [behind])
    assert drawn == []
    assert (out[80:] == GREY).all()  # only the caption at the top


def test_zone_across_the_view_edge_is_clipped_not_smeared() -> None:
    cam = camera()
    # from the tower's left (north) side round to straight ahead: partly outside the field of view
    half = zone("half", "licensed_area", [(100, -20), (300, -20), (300, 600), (100, 600)])
    image = np.full((H, W, 3), GREY, np.uint8)
    out, drawn = draw_zones_on_frame(image, CameraModel.from_config(cam), cam, Pose(90, TILT_DEG, HFOV_DEG),
                                     [half])
    assert drawn == ["half"]
    want = blend(colour_of("licensed_area"), (GREY, GREY, GREY))
    y = round(row_of_ground_distance(200.0))
    assert np.abs(out[y, W // 2 + 100].astype(float) - want).max() <= 2  # 12 m south of the axis: inside
    assert tuple(out[y, W - 100]) == (GREY, GREY, GREY)  # the right half (south of -20 m) stays clear


def test_map_draws_zones_and_sectors_where_they_are() -> None:
    cam = camera()
    mine = zone("mine", "closed_mine", [(1000, -300), (2000, -300), (2000, 300), (1000, 300)])
    outside = zone("far-west", "fire_watch", [(-3000, -300), (-2500, -300), (-2500, 300), (-3000, 300)])
    image, canvas = draw_map([mine, outside], [cam], max_range_m=5000)
    origin = LocalFrame(LAT0, LON0)

    def px(e: float, n: float) -> tuple[int, int]:
        lat, lon = origin.to_wgs84(e, n)
        x, y = canvas.lonlat_px(np.array(lon), np.array(lat))
        return int(round(float(x))), int(round(float(y)))

    sector_grey = (215, 215, 215)
    x, y = px(1200, 200)  # inside the mine, inside the view sector
    assert np.abs(image[y, x].astype(float) - blend(colour_of("closed_mine"), sector_grey)).max() <= 2
    x, y = px(-2600, 200)  # inside the fire-watch zone, behind the camera: over white
    assert np.abs(image[y, x].astype(float) - blend(colour_of("fire_watch"), (255, 255, 255))).max() <= 2
    x, y = px(3000, 0)  # in the sector, no zone
    assert tuple(image[y, x]) == sector_grey
    x, y = px(3000, 3000)  # 45° off the axis of a 60° view: outside the sector
    assert tuple(image[y, x]) == (255, 255, 255)
    x, y = px(0, 0)  # the tower: a black triangle
    assert tuple(image[y, x]) == (0, 0, 0)


def test_read_frame_from_image_and_video(tmp_path: Path) -> None:
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :80] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / "f.png"), img)
    assert read_frame(tmp_path / "f.png").shape == (90, 160, 3)
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(10):
            frame = np.full((96, 160, 3), 20 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    first = grab_frame(str(path))
    later = read_frame(path, at_s=1.0)  # frame 5 of a 5 fps clip
    assert first.shape == (96, 160, 3)
    assert abs(int(first.mean()) - 0) <= 4 and abs(int(later.mean()) - 100) <= 4


@pytest.mark.parametrize(("name", "message"), [
    ("missing.png", "expected an existing image or video file, found no such file"),
    ("broken.png", "expected an image OpenCV can read, found unreadable"),
    ("broken.mp4", "expected a video file or stream PyAV can open"),
])
def test_bad_frames(tmp_path: Path, name: str, message: str) -> None:
    if name.startswith("broken"):
        (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(UserError, match=message):
        read_frame(tmp_path / name)

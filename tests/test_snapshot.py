"""Snapshots: box and zone outline drawn on the full frame; JPEG written durably with the right hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.alerts.snapshot import BOX_BGR, ZONE_BGR, outlines_xy, render, write_jpeg


def close_to(pixel: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(bgr)) <= tol))


def test_box_and_zone_outline_are_drawn_and_the_frame_is_untouched() -> None:
    frame = np.full((240, 320, 3), 100, np.uint8)
    outline = np.array([[20.0, 20.0], [300.0, 20.0], [300.0, 220.0], [20.0, 220.0]])
    out = render(frame, (100, 100, 200, 180), "excavator 0.87", [outline])
    assert out.shape == frame.shape and (frame == 100).all()  # a copy
    assert close_to(out[180, 150], BOX_BGR)  # bottom edge of the box
    assert close_to(out[140, 100], BOX_BGR)  # left edge
    assert close_to(out[20, 160], ZONE_BGR)  # top edge of the zone
    assert close_to(out[120, 300], ZONE_BGR)  # right edge
    assert close_to(out[60, 60], (100, 100, 100), 0)  # inside: untouched


def test_outline_points_behind_the_camera_split_the_line() -> None:
    frame = np.full((100, 100, 3), 0, np.uint8)
    outline = np.array([[10.0, 50.0], [40.0, 50.0], [np.nan, np.nan], [60.0, 50.0], [90.0, 50.0]])
    out = render(frame, (0, 0, 1, 1), "x", [outline])
    assert close_to(out[50, 25], ZONE_BGR) and close_to(out[50, 75], ZONE_BGR)
    assert close_to(out[50, 50], (0, 0, 0), 0)  # no segment across the gap


@pytest.mark.parametrize(("value", "n"), [
    (None, 0),
    ([np.zeros((4, 2))], 1),
    (np.zeros((3, 2)), 1),
    ([[(0, 0), (1, 1), (2, 0)]], 1),
    ([(0, 0), (1, 1), (2, 0)], 1),
    ([np.zeros((4, 3))], 0),  # wrong shape: ignored
    ([np.zeros((1, 2))], 0),  # one point is no outline
    ("nonsense", 0),
])
def test_outlines_xy(value: object, n: int) -> None:
    assert len(outlines_xy(value)) == n


def test_write_jpeg_is_decodable_and_hashed(tmp_path: Path) -> None:
    img = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    out = write_jpeg(tmp_path / "d" / "a.jpg", img, 80)
    data = out.path.read_bytes()
    assert out.nbytes == len(data) and out.sha256 == hashlib.sha256(data).hexdigest()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == img.shape
    assert not list((tmp_path / "d").glob(".*tmp"))  # no temp file left

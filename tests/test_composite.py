"""Tower-scale composites: GrabCut cut-outs carry no background rectangle, pasted boxes are exact."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.train.composite import compose_frame, crops_around, grabcut_cutout, labels_in_crop, paste


def _photo() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A textured 'studio' background with a dark-orange machine shape in the middle."""
    rng = np.random.default_rng(0)
    img = (rng.normal(200, 12, (240, 320, 3))).clip(0, 255).astype(np.uint8)
    cv2.rectangle(img, (110, 110), (210, 170), (20, 90, 200), -1)  # body
    cv2.rectangle(img, (150, 60), (165, 110), (20, 90, 200), -1)  # arm
    return img, (95, 50, 225, 185)


def test_grabcut_keeps_the_object_not_the_box() -> None:
    img, box = _photo()
    cut = grabcut_cutout(img, box, 0, "synthetic")
    assert cut is not None
    h, w = cut.hw
    assert abs(h - 110) <= 4 and abs(w - 100) <= 4  # tight to the shape (60..170 by 110..210)
    # background pixels left in the cut-out: alpha there is ~0 (the arm's sides are background)
    assert cut.alpha[5:40, :25].max() < 0.2
    assert cut.alpha[h // 2 + 20, w // 2] > 0.9


def test_grabcut_rejects_a_box_of_background() -> None:
    rng = np.random.default_rng(1)
    flat = rng.normal(128, 10, (200, 200, 3)).clip(0, 255).astype(np.uint8)
    assert grabcut_cutout(flat, (40, 40, 160, 160), 0, "flat") is None


@pytest.mark.parametrize("height", [8.0, 24.0, 64.0])
def test_pasted_box_has_the_asked_height(height: float) -> None:
    img, box = _photo()
    cut = grabcut_cutout(img, box, 0, "synthetic")
    assert cut is not None
    frame = np.full((400, 600, 3), 120, np.uint8)
    xyxy = paste(frame, cut, height, (300, 200), np.random.default_rng(2))
    assert xyxy is not None
    assert abs((xyxy[3] - xyxy[1]) - height) <= max(2.0, 0.12 * height)
    assert xyxy[0] >= 299 and xyxy[1] >= 199


def test_compose_and_crop_keep_native_size() -> None:
    img, box = _photo()
    cut = grabcut_cutout(img, box, 0, "synthetic")
    assert cut is not None
    bg = np.full((720, 1280, 3), 140, np.uint8)
    frame, placed = compose_frame(bg, [cut], 4, np.random.default_rng(3), height_px=(20.0, 40.0))
    assert frame.shape == bg.shape and len(placed) >= 3
    crops = crops_around((1280, 720), [p.xyxy for p in placed], 320, np.random.default_rng(4))
    kept = 0
    for crop, p in zip(crops, placed, strict=True):
        assert crop[2] - crop[0] == 320 and crop[3] - crop[1] == 320
        assert crop[0] <= p.xyxy[0] and p.xyxy[2] <= crop[2] and crop[1] <= p.xyxy[1] and p.xyxy[3] <= crop[3]
        rows = labels_in_crop(crop, [(q.class_id, q.xyxy) for q in placed])
        if rows is None:  # another object cut by this crop's edge: the crop is dropped
            continue
        kept += 1
        assert max(r[4] for r in rows) * 320 <= 41  # heights stay native (20–40 px), never rescaled
    assert kept >= 1

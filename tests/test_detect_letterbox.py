"""Letterboxing against hand-checked placements."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detect.letterbox import PAD_VALUE, letterbox, letterbox_params, rect_canvas_wh, to_blob


@pytest.mark.parametrize(
    ("image_wh", "size", "scale", "pad_x", "pad_y"),
    [
        ((640, 480), 320, 0.5, 0.0, 40.0),  # landscape: bars top and bottom
        ((480, 640), 320, 0.5, 40.0, 0.0),  # portrait: bars left and right
        ((320, 320), 320, 1.0, 0.0, 0.0),  # already the right size
        ((100, 50), 320, 3.2, 0.0, 80.0),  # small images are scaled up
        ((1920, 1080), 640, 1 / 3, 0.0, 140.0),
    ],
)
def test_letterbox_params(image_wh: tuple[int, int], size: int, scale: float, pad_x: float, pad_y: float) -> None:
    lb = letterbox_params(image_wh, size)
    assert lb.scale == pytest.approx(scale)
    assert (lb.pad_x, lb.pad_y) == pytest.approx((pad_x, pad_y))


@pytest.mark.parametrize("image_wh", [(0, 10), (10, -1)])
def test_letterbox_params_rejects_empty_images(image_wh: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        letterbox_params(image_wh, 320)


def test_letterbox_places_image_and_pads_grey() -> None:
    img = np.zeros((100, 200, 3), np.uint8)  # h=100, w=200
    img[:, :, 2] = 255  # red in BGR
    canvas, lb = letterbox(img, 64)
    # 200×100 → 64×32, centred: rows 16..47 are image, the rest grey
    assert canvas.shape == (64, 64, 3)
    assert (lb.scale, lb.pad_x, lb.pad_y) == (0.32, 0.0, 16.0)
    assert (canvas[:16] == PAD_VALUE).all() and (canvas[48:] == PAD_VALUE).all()
    assert (canvas[16:48, :, 2] == 255).all() and (canvas[16:48, :, :2] == 0).all()


def test_letterbox_odd_padding_rounds_like_ultralytics() -> None:
    # 100×95 → 64×61: 3 rows of padding, 1 on top and 2 below (Ultralytics: round(dh - 0.1))
    canvas, lb = letterbox(np.zeros((95, 100, 3), np.uint8), 64)
    assert lb.pad_y == 1.0
    assert (canvas[0] == PAD_VALUE).all() and (canvas[1:62] == 0).all() and (canvas[62:] == PAD_VALUE).all()


def test_boxes_map_back_to_the_original_image() -> None:
    _, lb = letterbox(np.zeros((480, 640, 3), np.uint8), 320)
    net = np.array([[0, 40, 320, 280], [160, 160, 170, 200], [-5, 0, 330, 300]], np.float32)
    np.testing.assert_allclose(
        lb.to_image(net),
        [[0, 0, 640, 480], [320, 240, 340, 320], [0, 0, 640, 480]],  # the last one is clipped
    )


def test_to_blob_is_rgb_nchw_unit_range() -> None:
    canvas = np.zeros((4, 4, 3), np.uint8)
    canvas[..., 0] = 255  # blue in BGR
    blob = to_blob([canvas, canvas])
    assert blob.shape == (2, 3, 4, 4) and blob.dtype == np.float32
    assert (blob[:, 2] == 1.0).all() and (blob[:, :2] == 0.0).all()  # blue is the last RGB channel


@pytest.mark.parametrize(
    ("sizes", "size", "stride", "expected"),
    [
        ([(1280, 720)], 320, 32, (320, 192)),  # 320×180 → next multiple of 32
        ([(1920, 1080)], 640, 32, (640, 384)),  # 640×360
        ([(720, 1280)], 320, 32, (192, 320)),
        ([(640, 640)], 320, 32, (320, 320)),
        ([(1000, 10)], 320, 32, (320, 32)),  # a sliver still gets one stride
        ([(1280, 720), (720, 1280)], 320, 32, (320, 320)),  # a batch: the canvas that holds both
        ([(1280, 720), (1920, 1080)], 320, 32, (320, 192)),
    ],
)
def test_rect_canvas_is_the_smallest_stride_multiple(
    sizes: list[tuple[int, int]], size: int, stride: int, expected: tuple[int, int]
) -> None:
    assert rect_canvas_wh(sizes, size, stride) == expected


def test_letterbox_into_a_rectangular_canvas_centres_and_maps_back() -> None:
    img = np.full((720, 1280, 3), 50, np.uint8)
    canvas, lb = letterbox(img, 320, (320, 192))
    assert canvas.shape == (192, 320, 3)
    assert (lb.pad_x, lb.pad_y) == (0.0, 6.0)  # 180 rows of image, 6 of grey above and below
    assert (canvas[:6] == PAD_VALUE).all() and (canvas[186:] == PAD_VALUE).all() and (canvas[6:186] == 50).all()
    np.testing.assert_allclose(lb.to_image(np.array([[0, 6, 320, 186]], np.float32)), [[0, 0, 1280, 720]])

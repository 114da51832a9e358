"""Letterboxing: fit an image into a square network input without distorting it, and map boxes back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

#: Ultralytics pads with grey 114; a different value shifts scores slightly.
PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How one image was placed into the network input: ``net = img * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float
    image_wh: tuple[int, int]

    def to_image(self, xyxy_net: NDArray[np.float32]) -> NDArray[np.float32]:
        """(N, 4) boxes in network pixels → original-image pixels, clipped to the image."""
        out = np.empty_like(xyxy_net, dtype=np.float32)
        w, h = self.image_wh
        xs, ys = out[:, 0::2], out[:, 1::2]  # views: x1, x2 and y1, y2
        np.divide(xyxy_net[:, 0::2] - self.pad_x, self.scale, out=xs)
        np.divide(xyxy_net[:, 1::2] - self.pad_y, self.scale, out=ys)
        np.clip(xs, 0, w, out=xs)
        np.clip(ys, 0, h, out=ys)
        return out


def letterbox_params(image_wh: tuple[int, int], size_px: int,
                     canvas_wh: tuple[int, int] | None = None) -> Letterbox:
    """Scale to fit ``size_px`` (up or down) and centre with padding in the canvas (default: the
    ``size_px`` square), as Ultralytics does."""
    w, h = image_wh
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {image_wh}")
    scale = min(size_px / w, size_px / h)
    new_w, new_h = round(w * scale), round(h * scale)
    cw, ch = canvas_wh or (size_px, size_px)
    return Letterbox(scale, (cw - new_w) / 2, (ch - new_h) / 2, (w, h))


def fitted_wh(image_wh: tuple[int, int], size_px: int) -> tuple[int, int]:
    """Size of the image once scaled into the ``size_px`` square (before padding)."""
    lb = letterbox_params(image_wh, size_px)
    return round(image_wh[0] * lb.scale), round(image_wh[1] * lb.scale)


def rect_canvas_wh(images_wh: list[tuple[int, int]], size_px: int, stride: int) -> tuple[int, int]:
    """The smallest canvas, in multiples of ``stride``, that holds every image of a batch scaled to fit
    ``size_px`` (Ultralytics' rectangular inference: a 1280×720 frame at 320 runs on 320×192, not 320×320)."""
    fits = [fitted_wh(wh, size_px) for wh in images_wh]
    w = max(-(-fw // stride) * stride for fw, _ in fits)
    h = max(-(-fh // stride) * stride for _, fh in fits)
    return w, h


def resize_to(image_bgr: NDArray[np.uint8], wh: tuple[int, int]) -> NDArray[np.uint8]:
    """The image scaled to ``wh``: area-averaged when shrinking, bilinear when growing, itself when equal."""
    h, w = image_bgr.shape[:2]
    if (w, h) == wh:
        return image_bgr
    interpolation = cv2.INTER_AREA if wh[0] < w else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image_bgr, wh, interpolation=interpolation), np.uint8)


def place(
    resized_bgr: NDArray[np.uint8], size_px: int, image_wh: tuple[int, int],
    canvas_wh: tuple[int, int] | None = None,
) -> tuple[NDArray[np.uint8], Letterbox]:
    """Pad an image already scaled to :func:`fitted_wh` into the canvas (default: the ``size_px``
    square); ``image_wh`` is the original size, which the returned placement maps boxes back to."""
    lb = placement(image_wh, size_px, canvas_wh)
    cw, ch = canvas_wh or (size_px, size_px)
    new_h, new_w = resized_bgr.shape[:2]
    canvas = np.full((ch, cw, 3), PAD_VALUE, np.uint8)
    top, left = int(lb.pad_y), int(lb.pad_x)
    canvas[top : top + new_h, left : left + new_w] = resized_bgr
    return canvas, lb


def placement(image_wh: tuple[int, int], size_px: int, canvas_wh: tuple[int, int] | None = None) -> Letterbox:
    """Where :func:`place` puts an image of ``image_wh`` scaled to :func:`fitted_wh`: whole-pixel padding."""
    lb = letterbox_params(image_wh, size_px, canvas_wh)
    return Letterbox(lb.scale, float(round(lb.pad_x - 0.1)), float(round(lb.pad_y - 0.1)), image_wh)


#: the padding as it appears in the network input (the value :func:`to_blob` gives a ``PAD_VALUE`` pixel)
PAD_UNIT = np.float32(PAD_VALUE) / np.float32(255.0)


def blob_into(out_chw: NDArray[np.float32], resized_bgr: NDArray[np.uint8], lb: Letterbox) -> None:
    """Write one image already scaled to :func:`fitted_wh` straight into its ``(3, H, W)`` slice of the
    network input, placed as ``lb`` (from :func:`placement`) says: the same values as :func:`to_blob` of
    :func:`place`'s canvas (RGB, [0, 1], grey padding), without the canvas, the stack and the extra
    float copies."""
    out_chw.fill(PAD_UNIT)
    new_h, new_w = resized_bgr.shape[:2]
    top, left = int(lb.pad_y), int(lb.pad_x)
    region = out_chw[:, top : top + new_h, left : left + new_w]
    region[...] = resized_bgr.transpose(2, 0, 1)[::-1]  # BGR (H, W, 3) → RGB (3, H, W), as float32
    np.divide(region, np.float32(255.0), out=region)


def letterbox(
    image_bgr: NDArray[np.uint8], size_px: int, canvas_wh: tuple[int, int] | None = None
) -> tuple[NDArray[np.uint8], Letterbox]:
    """Canvas (default ``(size_px, size_px, 3)``) holding the resized BGR image, and the placement to undo it."""
    h, w = image_bgr.shape[:2]
    return place(resize_to(image_bgr, fitted_wh((w, h), size_px)), size_px, (w, h), canvas_wh)


def to_blob(canvases_bgr: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """BGR uint8 canvases → ``(B, 3, S, S)`` RGB float32 in [0, 1], the layout YOLO exports expect."""
    batch = np.stack(canvases_bgr)[..., ::-1]  # BGR → RGB
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)

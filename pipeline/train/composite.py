"""Tower-scale training data, made honestly: objects cut out of their photos, placed small on real tower views.

No real tower footage of machines exists here, so distant machines are *made*: each object is segmented
out of its own photo with OpenCV's GrabCut inside its labelled box (never a rectangle of its studio or site
background: a network learns such shortcuts), its alpha feathered, shrunk to a tower-scale height, washed
toward the local background colour by distance haze that grows as the object shrinks, blurred, then pasted
onto a real tower frame; the whole frame then gets sensor noise and JPEG compression. Labels are the
tight box of the pasted alpha.

No torch here (numpy + OpenCV): the generator runs on any install.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

#: a cut-out whose mask fills more than this share of its (shrunk) box is mostly background: rejected
MAX_FILL = 0.93
#: a cut-out whose mask fills less than this share of its box lost the object: rejected
MIN_FILL = 0.18


@dataclass(slots=True)
class Cutout:
    """An object segmented out of a photo: BGR pixels and a feathered alpha (0..1) of the same size."""

    bgr: NDArray[np.uint8]
    alpha: NDArray[np.float32]
    class_id: int
    source: str  # the photo it came from (splits are made by source photo)

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.bgr.shape[0]), int(self.bgr.shape[1])


def grabcut_cutout(
    image_bgr: NDArray[np.uint8], box_xyxy: tuple[float, float, float, float], class_id: int, source: str,
    iterations: int = 4,
) -> Cutout | None:
    """Segment the object in ``box_xyxy`` with GrabCut (the box's outside is certain background).

    Returns None when the segmentation fails: a mask filling almost the whole box (the background came
    along) or almost none of it. The kept mask is its largest connected part, eroded by one pixel and
    feathered, cropped to its own bounding box.
    """
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box_xyxy)
    x1, y1 = max(1, x1), max(1, y1)
    x2, y2 = min(w - 2, x2), min(h - 2, y2)
    if x2 - x1 < 12 or y2 - y1 < 12:
        return None
    # work on a margin around the box, at most ~400 px on a side (GrabCut is slow on big images)
    mx, my = max(8, (x2 - x1) // 6), max(8, (y2 - y1) // 6)
    cx1, cy1, cx2, cy2 = max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)
    crop = image_bgr[cy1:cy2, cx1:cx2]
    scale = min(1.0, 400.0 / max(crop.shape[:2]))
    if scale < 1.0:
        crop = np.asarray(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
    rect = (int((x1 - cx1) * scale), int((y1 - cy1) * scale),
            max(2, int((x2 - x1) * scale)), max(2, int((y2 - y1) * scale)))
    mask = np.zeros(crop.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    fg = (lab == biggest).astype(np.uint8)
    fg = cv2.erode(fg, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(fg)
    if len(xs) == 0:
        return None
    fill = float(fg.sum()) / float(rect[2] * rect[3])
    if not MIN_FILL <= fill <= MAX_FILL:
        return None
    bx1, by1, bx2, by2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    alpha = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 1.0)[by1:by2, bx1:bx2]
    return Cutout(np.ascontiguousarray(crop[by1:by2, bx1:bx2]), np.clip(alpha, 0, 1).astype(np.float32),
                  class_id, source)


def haze_for_height(height_px: float, rng: np.random.Generator) -> float:
    """Share of the background's colour mixed into an object ``height_px`` tall: distance haze.

    Smaller on screen means farther away (for one zoom), so more air between camera and object: about
    0.35–0.6 at 8 px, 0.05–0.25 at 128 px.
    """
    t = min(1.0, max(0.0, math.log2(max(height_px, 8.0) / 8.0) / 4.0))  # 0 at 8 px, 1 at 128 px
    lo, hi = 0.35 - 0.30 * t, 0.60 - 0.35 * t
    return float(rng.uniform(lo, hi))


def paste(
    frame_bgr: NDArray[np.uint8], cut: Cutout, height_px: float, xy_top_left: tuple[int, int],
    rng: np.random.Generator, haze: float | None = None,
) -> tuple[float, float, float, float] | None:
    """Paste ``cut`` scaled to ``height_px`` at ``xy_top_left`` (in place); returns its label box ``xyxy``.

    The object is blurred a little (optics, atmosphere), mixed toward the mean colour of the background
    around it (haze) and alpha-blended. The box is the extent of alpha ≥ 0.5 after scaling; None when the
    object falls outside the frame or is too thin to see.
    """
    ch, cw = cut.hw
    s = height_px / ch
    nh, nw = max(2, int(round(ch * s))), max(2, int(round(cw * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    obj = cv2.resize(cut.bgr, (nw, nh), interpolation=interp).astype(np.float32)
    alpha = cv2.resize(cut.alpha, (nw, nh), interpolation=interp)
    sigma = float(rng.uniform(0.2, 0.5 + 0.6 * min(1.0, height_px / 64.0)))
    obj = np.asarray(cv2.GaussianBlur(obj, (0, 0), sigma), np.float32)
    alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.3, sigma * 0.6)), np.float32)
    fh, fw = frame_bgr.shape[:2]
    x, y = xy_top_left
    x1, y1, x2, y2 = max(0, x), max(0, y), min(fw, x + nw), min(fh, y + nh)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    obj = obj[y1 - y: y2 - y, x1 - x: x2 - x]
    a = alpha[y1 - y: y2 - y, x1 - x: x2 - x, None]
    region = frame_bgr[y1:y2, x1:x2].astype(np.float32)
    pad = max(4, nh // 2)
    around = frame_bgr[max(0, y1 - pad): min(fh, y2 + pad), max(0, x1 - pad): min(fw, x2 + pad)]
    bg_mean = around.reshape(-1, 3).astype(np.float32).mean(axis=0)
    k = rng.uniform(0.85, 1.15)  # exposure of the object against the scene
    obj = np.clip(obj * k, 0, 255)
    h = haze_for_height(height_px, rng) if haze is None else haze
    obj = (1.0 - h) * obj + h * bg_mean
    frame_bgr[y1:y2, x1:x2] = np.clip(a * obj + (1.0 - a) * region, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(a[..., 0] >= 0.5)
    if len(xs) == 0 or xs.max() - xs.min() < 1 or ys.max() - ys.min() < 1:
        return None
    return (float(x1 + xs.min()), float(y1 + ys.min()), float(x1 + xs.max() + 1), float(y1 + ys.max() + 1))


def degrade(frame_bgr: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Sensor noise and a JPEG round trip (quality 55–92), as a camera stream delivers the frame."""
    noise = rng.normal(0.0, rng.uniform(0.5, 3.5), frame_bgr.shape).astype(np.float32)
    noisy = np.clip(frame_bgr.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 93))])
    assert ok
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.asarray(out, np.uint8)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@dataclass(slots=True)
class Placed:
    class_id: int
    xyxy: tuple[float, float, float, float]
    source: str


def compose_frame(
    background_bgr: NDArray[np.uint8], cutouts: list[Cutout], n_objects: int, rng: np.random.Generator,
    height_px: tuple[float, float] = (8.0, 128.0), y_range_frac: tuple[float, float] = (0.3, 0.97),
    forbidden_xyxy: list[tuple[float, float, float, float]] | None = None, fixed_height_px: float | None = None,
    degraded: bool = True,
) -> tuple[NDArray[np.uint8], list[Placed]]:
    """A copy of ``background_bgr`` with ``n_objects`` random cut-outs pasted, degraded; and their boxes.

    Heights are log-uniform in ``height_px`` (or ``fixed_height_px``); objects do not overlap each other
    or any ``forbidden_xyxy`` box (e.g. a smoke plume's label); their feet sit in ``y_range_frac`` of the
    frame's height (the ground, not the sky, on a tower view looking at the horizon). ``degraded=False``
    leaves noise and JPEG to the caller (cheaper on the crops cut from the frame than on the whole frame).
    """
    frame = background_bgr.copy()
    fh, fw = frame.shape[:2]
    taken: list[tuple[float, float, float, float]] = list(forbidden_xyxy or [])
    placed: list[Placed] = []
    for _ in range(n_objects):
        cut = cutouts[int(rng.integers(len(cutouts)))]
        hpx = fixed_height_px if fixed_height_px is not None else log_uniform(rng, *height_px)
        ch, cw = cut.hw
        wpx = cw * hpx / ch
        for _try in range(20):
            x = int(rng.uniform(0, max(1.0, fw - wpx)))
            foot = rng.uniform(y_range_frac[0] * fh + hpx, y_range_frac[1] * fh)
            y = int(foot - hpx)
            cand = (x - 2.0, y - 2.0, x + wpx + 2.0, y + hpx + 2.0)
            if all(cand[2] <= t[0] or cand[0] >= t[2] or cand[3] <= t[1] or cand[1] >= t[3] for t in taken):
                break
        else:
            continue
        box = paste(frame, cut, hpx, (x, y), rng)
        if box is None:
            continue
        taken.append(cand)
        placed.append(Placed(cut.class_id, box, cut.source))
    return (degrade(frame, rng) if degraded else frame), placed


def crops_around(
    frame_wh: tuple[int, int], boxes_xyxy: list[tuple[float, float, float, float]], crop_px: int,
    rng: np.random.Generator,
) -> list[tuple[int, int, int, int]]:
    """One native-resolution ``crop_px`` square per box, placed at random so that the box lies inside it
    (objects keep their tower-scale pixel size: the frame is cut, never shrunk)."""
    fw, fh = frame_wh
    out: list[tuple[int, int, int, int]] = []
    for x1, y1, x2, y2 in boxes_xyxy:
        bw, bh = x2 - x1, y2 - y1
        lo_x, hi_x = max(0.0, x2 - crop_px), min(x1, fw - crop_px)
        lo_y, hi_y = max(0.0, y2 - crop_px), min(y1, fh - crop_px)
        if bw > crop_px or bh > crop_px or hi_x < lo_x or hi_y < lo_y:
            cx, cy = (x1 + x2) / 2 - crop_px / 2, (y1 + y2) / 2 - crop_px / 2
            lo_x = hi_x = min(max(0.0, cx), fw - crop_px)
            lo_y = hi_y = min(max(0.0, cy), fh - crop_px)
        x = int(rng.uniform(lo_x, hi_x)) if hi_x > lo_x else int(lo_x)
        y = int(rng.uniform(lo_y, hi_y)) if hi_y > lo_y else int(lo_y)
        out.append((x, y, x + crop_px, y + crop_px))
    return out


def labels_in_crop(
    crop_xyxy: tuple[int, int, int, int], placed: list[tuple[int, tuple[float, float, float, float]]],
    min_visible: float = 0.6,
) -> list[tuple[int, float, float, float, float]] | None:
    """YOLO rows (class, cx, cy, w, h normalised) of the boxes inside a crop, clipped to it.

    None when a box is cut by the crop so much that less than ``min_visible`` of it shows but some does
    (neither a fair positive nor a fair negative): the caller drops that crop.
    """
    cx1, cy1, cx2, cy2 = crop_xyxy
    cw, ch = cx2 - cx1, cy2 - cy1
    rows: list[tuple[int, float, float, float, float]] = []
    for cls, (x1, y1, x2, y2) in placed:
        ix1, iy1, ix2, iy2 = max(x1, cx1), max(y1, cy1), min(x2, cx2), min(y2, cy2)
        if ix2 <= ix1 or iy2 <= iy1:
            continue
        vis = (ix2 - ix1) * (iy2 - iy1) / max(1e-6, (x2 - x1) * (y2 - y1))
        if vis < min_visible:
            return None
        rows.append((cls, ((ix1 + ix2) / 2 - cx1) / cw, ((iy1 + iy2) / 2 - cy1) / ch, (ix2 - ix1) / cw,
                     (iy2 - iy1) / ch))
    return rows

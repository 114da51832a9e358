"""Alert snapshots: the full frame with the box and the zone outline drawn, written durably as JPEG."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

BOX_BGR = (0, 0, 255)  # red
ZONE_BGR = (0, 215, 255)  # amber
TEXT_BGR = (255, 255, 255)


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    path: Path
    nbytes: int
    sha256: str


def outlines_xy(value: object) -> list[NDArray[np.float64]]:
    """``AlertEvent.zone_outline_xy``: a list of (N, 2) pixel arrays (or one); anything else → []."""
    if value is None:
        return []
    items = [value] if isinstance(value, np.ndarray) else list(value) if isinstance(value, list | tuple) else []
    if items and not isinstance(items[0], np.ndarray | list | tuple):
        return []
    if items and isinstance(items[0], list | tuple) and items[0] and not hasattr(items[0][0], "__len__"):
        items = [items]  # one outline given as a list of (x, y) pairs
    out: list[NDArray[np.float64]] = []
    for item in items:
        arr = np.asarray(item, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 2:
            out.append(arr)
    return out


def render(
    image_bgr: NDArray[np.uint8],
    xyxy: Sequence[float],
    label: str,
    zone_outlines_xy: Sequence[NDArray[np.float64]] = (),
) -> NDArray[np.uint8]:
    """A copy of the frame with the zone outline(s) (closed polylines, NaN points split them) and the box."""
    img = image_bgr.copy()
    h, w = img.shape[:2]
    thick = max(2, round(min(w, h) / 300))
    for outline_xy in zone_outlines_xy:
        finite_n: NDArray[np.bool_] = np.asarray(np.isfinite(outline_xy).all(axis=1))
        finite = [bool(v) for v in finite_n]
        # split at NaN points (parts of the outline behind the camera) and draw each visible run
        runs: list[NDArray[np.float64]] = []
        start = None
        for i, ok in enumerate(finite):
            if ok and start is None:
                start = i
            if (not ok or i == len(finite) - 1) and start is not None:
                end = i + 1 if ok else i
                runs.append(outline_xy[start:end])
                start = None
        closed = all(finite)
        for run in runs:
            pts = np.clip(np.round(run), -10 * max(w, h), 10 * max(w, h)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], closed, ZONE_BGR, thick, cv2.LINE_AA)
    x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
    cv2.rectangle(img, (x1, y1), (x2, y2), BOX_BGR, thick, cv2.LINE_AA)
    scale = max(0.5, min(w, h) / 900)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - 1, y2 + th + 4)
    cv2.rectangle(img, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), BOX_BGR, -1)
    cv2.putText(img, label, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_BGR, 1, cv2.LINE_AA)
    return img


def beside(left_bgr: NDArray[np.uint8], right_bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Two pictures side by side, the right one scaled to the left one's height (a look's zoomed view on
    the left, so the event's box coordinates stay those of the left picture)."""
    h = left_bgr.shape[0]
    if right_bgr.shape[0] != h:
        w = max(1, round(right_bgr.shape[1] * h / right_bgr.shape[0]))
        right_bgr = np.asarray(cv2.resize(right_bgr, (w, h), interpolation=cv2.INTER_AREA), np.uint8)
    return np.ascontiguousarray(np.hstack([left_bgr, right_bgr]))


def write_jpeg(path: Path, image_bgr: NDArray[np.uint8], quality: int) -> SnapshotFile:
    """Encode and write atomically (temp file, fsync, rename, fsync the folder): on disk before the outbox commit."""
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"JPEG encoding failed for {path.name}")
    data = buf.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return SnapshotFile(path, len(data), hashlib.sha256(data).hexdigest())

"""Synthetic tower sequences for tests and validation (docs/SMOKE.md): a plume composited into frames,
growing from a ground point and drifting with the wind; and a procedural tower view (sky, ridge, textured
ground, drifting clouds, exposure jumps, JPEG noise) for tests that run without the shared data.

A frame folder written here plays with ``minewatch eval sequence`` (names ``+00060.jpg``, ``sequence.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class PlumeSpec:
    base_xy_frac: tuple[float, float]  # where the fire is, as a share of the frame's width and height
    rise_frac_per_min: float = 0.02  # the plume's height grows by this share of the frame height a minute
    width_frac: float = 0.004  # its width at the base, share of the frame width
    spread: float = 0.35  # width growth per unit of height
    drift_frac_per_min: float = 0.006  # the top drifts sideways (wind) by this share of the width a minute
    opacity: float = 0.55  # peak opacity of the plume's core
    grey_level: float = 215.0  # the plume's brightness (0-255); low saturation
    max_height_frac: float = 0.25
    onset_min: float = 0.5  # nothing shows for this long after ignition
    ramp_min: float = 2.5  # then the opacity ramps up to full over this long


def plume_alpha(wh: tuple[int, int], spec: PlumeSpec, age_s: float, seed: int = 0) -> NDArray[np.float32]:
    """(H, W) opacity of a plume ``age_s`` after ignition (0 before it): a chain of soft puffs from the base
    up, wider and drifting with height, with some turbulence."""
    w, h = wh
    alpha = np.zeros((h, w), np.float32)
    minutes = age_s / 60.0
    visible = min(1.0, (minutes - spec.onset_min) / max(spec.ramp_min, 1e-6))
    if visible <= 0:
        return alpha
    rng = np.random.default_rng(seed + int(age_s))
    visible *= float(rng.uniform(0.8, 1.2))  # the plume's density flickers from frame to frame
    height = min(spec.max_height_frac, spec.rise_frac_per_min * minutes) * h
    bx, by = spec.base_xy_frac[0] * w, spec.base_xy_frac[1] * h
    drift = spec.drift_frac_per_min * minutes * w
    n = max(3, int(height / max(2.0, spec.width_frac * w * 0.8)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n + 1):
        f = i / n  # 0 at the base, 1 at the top
        cy = by - f * height
        cx = bx + drift * f * f + rng.normal(0, 0.15) * spec.width_frac * w
        r = max(1.5, spec.width_frac * w * (1 + spec.spread * f * height / max(1.0, spec.width_frac * w)))
        r *= 0.8 + 0.4 * rng.random()
        x0, x1 = int(max(0, cx - 3 * r)), int(min(w, cx + 3 * r + 1))
        y0, y1 = int(max(0, cy - 3 * r)), int(min(h, cy + 3 * r + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        puff = np.exp(-((xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2) / (2 * r * r))
        a = min(1.0, spec.opacity * (1.0 - 0.5 * f) * visible)
        alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], a * puff)
    # the ground in front of the base hides the plume's foot
    alpha[int(by) + 1:, :] = 0.0
    return alpha


def composite(image_bgr: NDArray[np.uint8], alpha: NDArray[np.float32], grey_level: float) -> NDArray[np.uint8]:
    img = image_bgr.astype(np.float32)
    a = alpha[..., None]
    out = img * (1 - a) + grey_level * a
    return np.asarray(np.clip(out, 0, 255).round(), np.uint8)


def jpeg(image_bgr: NDArray[np.uint8], quality: int = 85) -> NDArray[np.uint8]:
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


def landscape(wh: tuple[int, int], t_s: float, seed: int = 0, clouds: bool = True,
              exposure_jumps: bool = True, horizon_frac: float = 0.45) -> NDArray[np.uint8]:
    """A procedural tower view at time ``t_s``: bright hazy sky, a far ridge at ``horizon_frac``, darker
    textured ground (the same every frame, with sensor noise), a dark mast on the left; optionally clouds
    that drift across the sky and a global exposure change every ~7 minutes."""
    w, h = wh
    rng_static = np.random.default_rng(seed)
    rng = np.random.default_rng(seed * 7919 + int(t_s) + 100_000)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = 200 - 40 * (yy / h)
    ridge = horizon_frac * h + 0.03 * h * np.sin(xx / w * 9.0 + seed) + 0.015 * h * np.sin(xx / w * 23.0)
    texture = cv2.resize(rng_static.normal(0, 18, (h // 8 + 1, w // 8 + 1)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
    fine = rng_static.normal(0, 6, (h, w)).astype(np.float32)
    ground = 95 + 30 * (yy - ridge) / h + texture + fine
    grey = np.where(yy < ridge, sky, ground)
    if clouds:
        for k in range(3):
            cx = ((t_s * (0.6 + 0.3 * k) / 60.0 * 0.02 * w) + k * w / 3) % (w * 1.2) - 0.1 * w
            cy = (0.1 + 0.08 * k) * h
            r = (0.05 + 0.02 * k) * w
            grey += 25 * np.exp(-(((xx - cx) / (2.2 * r)) ** 2 + ((yy - cy) / (0.6 * r)) ** 2))
    gain = 1.0
    if exposure_jumps:
        gain = 1.0 + 0.08 * math.sin(t_s / 420.0 * math.pi) * (1 if int(t_s // 420) % 2 else -1)
    grey = grey * gain + rng.normal(0, 2.0, (h, w)).astype(np.float32)
    mast = (xx > 0.06 * w) & (xx < 0.08 * w) & (yy > 0.05 * h) & (yy < 0.7 * h)
    grey = np.where(mast, 40, grey)
    tint = np.stack([grey * 1.02, grey * 1.0, grey * 0.96], axis=-1)
    return jpeg(np.asarray(np.clip(tint, 0, 255), np.uint8))


def write_sequence(folder: Path, frames: Iterable[tuple[float, NDArray[np.uint8]]],
                   ignition_t_s: float | None, meta: dict[str, object] | None = None) -> Path:
    """Frames named by their time (``+00060.jpg``) and a ``sequence.json``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for t_s, image in frames:
        cv2.imwrite(str(folder / f"{int(round(t_s)):+06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    doc: dict[str, object] = {"ignition_offset_s": ignition_t_s, **(meta or {})}
    (folder / "sequence.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return folder


def with_plume(frames: Iterable[tuple[float, NDArray[np.uint8]]], spec: PlumeSpec, ignition_t_s: float,
               seed: int = 0) -> list[tuple[float, NDArray[np.uint8]]]:
    """The frames with the plume composited into those after ``ignition_t_s`` (re-encoded as JPEG)."""
    out = []
    for t_s, image in frames:
        age = t_s - ignition_t_s
        if age > 0:
            h, w = image.shape[:2]
            image = jpeg(composite(image, plume_alpha((w, h), spec, age, seed), spec.grey_level))
        out.append((t_s, image))
    return out

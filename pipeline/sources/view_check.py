"""Is the camera looking where its preset says? ORB features against a reference image.

Both images are scaled to the same width; ORB key points are matched (Hamming distance, Lowe's ratio
test) and a homography is fitted with RANSAC. The view matches when enough matches agree on the
homography *and* it maps the reference's centre to within ``max_shift_deg`` of the view's centre
(pixels are turned into degrees with the preset's horizontal field of view). A camera that did not
reach its preset, was turned by wind or a person, or looks at something else fails one or the other.

Honest limits: night versus a daytime reference, fog, snow or a season change can fail a correct view
(take references per season/time of day, or raise ``min_inliers`` less); a featureless view (sky, water)
cannot be checked. Feature matching is done on frames already decoded for analysis, at most every
``recheck_s`` while a view does not match and every ``verify_s`` while it does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.config import ViewCheckConfig
from pipeline.errors import UserError

WIDTH_PX = 640  # both images are compared at this width


@dataclass(frozen=True, slots=True)
class ViewResult:
    matches: bool
    inliers: int
    shift_deg: float | None  # offset of the reference's centre in the view; None without a homography
    reason: str

    def detail(self) -> dict[str, Any]:
        return {"inliers": self.inliers,
                "shift_deg": None if self.shift_deg is None else round(self.shift_deg, 2),
                "reason": self.reason}


def _grey(image_bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    h, w = grey.shape[:2]
    if w != WIDTH_PX:
        grey = cv2.resize(grey, (WIDTH_PX, max(1, round(h * WIDTH_PX / w))), interpolation=cv2.INTER_AREA)
    return np.asarray(grey, dtype=np.uint8)


def load_reference(path: Path, field: str) -> NDArray[np.uint8]:
    """Read a reference image; a missing or unreadable one is a one-line :class:`UserError`."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        found = "no such file" if not path.exists() else "a file OpenCV cannot read"
        raise UserError(str(path), field, "a readable reference image (JPEG/PNG)", found)
    return np.asarray(image, dtype=np.uint8)


class ViewChecker:
    """Compares views with one reference image."""

    def __init__(self, reference_bgr: NDArray[np.uint8], hfov_deg: float, cfg: ViewCheckConfig,
                 n_features: int = 1500) -> None:
        self.cfg = cfg
        self.hfov_deg = hfov_deg
        self._orb = cv2.ORB.create(nfeatures=n_features)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        ref = _grey(reference_bgr)
        self._ref_wh = (ref.shape[1], ref.shape[0])
        self._ref_kp, self._ref_desc = self._orb.detectAndCompute(ref, None)

    @property
    def reference_features(self) -> int:
        return len(self._ref_kp)

    def compare(self, image_bgr: NDArray[np.uint8]) -> ViewResult:
        if self._ref_desc is None or len(self._ref_kp) < self.cfg.min_inliers:
            return ViewResult(False, 0, None, "reference image has too few features to check")
        view = _grey(image_bgr)
        kp, desc = self._orb.detectAndCompute(view, None)
        if desc is None or len(kp) < 4:
            return ViewResult(False, 0, None, "view has no features (blank, dark or fogged)")
        pairs = self._matcher.knnMatch(self._ref_desc, desc, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
        if len(good) < 4:
            return ViewResult(False, len(good), None, "too few feature matches")
        src = np.array([self._ref_kp[m.queryIdx].pt for m in good], np.float32).reshape(-1, 1, 2)
        dst = np.array([kp[m.trainIdx].pt for m in good], np.float32).reshape(-1, 1, 2)
        homography, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
        if homography is None or mask is None:
            return ViewResult(False, 0, None, "matches agree on no homography")
        inliers = int(mask.sum())
        centre_ref = np.array([[[self._ref_wh[0] / 2, self._ref_wh[1] / 2]]], np.float32)
        mapped = np.asarray(cv2.perspectiveTransform(centre_ref, homography))[0, 0]
        view_centre = np.array([view.shape[1] / 2, view.shape[0] / 2])
        shift_px = float(np.hypot(*(mapped - view_centre)))
        shift_deg = shift_px * self.hfov_deg / WIDTH_PX if math.isfinite(shift_px) else float("inf")
        if inliers < self.cfg.min_inliers:
            return ViewResult(False, inliers, shift_deg, f"only {inliers} consistent matches")
        if shift_deg > self.cfg.max_shift_deg:
            return ViewResult(False, inliers, shift_deg, f"view is {shift_deg:.1f}° off its reference")
        return ViewResult(True, inliers, shift_deg, "ok")


ViewChange = Callable[[str | None, bool, dict[str, Any]], None]


@dataclass(slots=True)
class _PresetView:
    visit: int
    matches: bool
    checked_mono: float
    result: ViewResult


class ViewGuard:
    """Holds analysis of a preset while its view does not match its reference.

    Checks the first due frame of each visit to a preset, then every ``recheck_s`` while the view does
    not match and every ``verify_s`` while it does (a fixed camera can be turned at any time).
    ``on_change(preset, matches, detail)`` is called when a view stops matching, again at every new visit
    while it does not match (a patrol reports ``online`` at each arrival elsewhere), and when it matches
    again.
    """

    def __init__(self, checkers: dict[str | None, ViewChecker], cfg: ViewCheckConfig) -> None:
        self.checkers = checkers
        self.cfg = cfg
        self.verify_s = cfg.verify_s
        self.on_change: ViewChange | None = None
        self._views: dict[str | None, _PresetView] = {}
        self.mismatches = 0
        self.checks = 0

    def allows(self, preset: str | None, visit: int, image_bgr: NDArray[np.uint8], now_mono: float) -> bool:
        checker = self.checkers.get(preset)
        if checker is None:
            return True
        seen = self._views.get(preset)
        if seen is not None and seen.visit == visit:
            wait = self.verify_s if seen.matches else self.cfg.recheck_s
            if now_mono - seen.checked_mono < wait:
                return seen.matches
        result = checker.compare(image_bgr)
        self.checks += 1
        self._views[preset] = _PresetView(visit, result.matches, now_mono, result)
        if result.matches:  # reported when it recovers
            changed = seen is not None and not seen.matches
        else:  # reported on the first check of every visit (the status may have said `online` meanwhile)
            changed = seen is None or seen.matches or seen.visit != visit
        if not result.matches:
            self.mismatches += 1
        if changed and self.on_change is not None:
            self.on_change(preset, result.matches, result.detail())
        return result.matches

    def mismatched(self) -> list[str | None]:
        return [p for p, v in self._views.items() if not v.matches]

    def health(self) -> dict[str, Any]:
        return {
            "view_mismatch": [p or "fixed" for p in self.mismatched()],
            "view_checks_total": self.checks,
            "view_mismatches_total": self.mismatches,
        }

"""Tower smoke from change against the view's own history (docs/SMOKE.md).

Per view (camera and preset) a :class:`ViewWatcher` keeps a short history of small grey frames. Each analysis
(at most one per ``interval_s`` of the frames' own clock):

1. the frame is shrunk to ``width_px`` and made grey; frames ``ref_min_age_s`` … ``ref_max_age_s`` old are
   each registered onto it by phase correlation (absorbs a PTZ head's small pose errors) and their median is
   the reference;
2. the change is ``frame - reference`` minus its own large-scale blur (removes exposure jumps, haze and light
   that change smoothly across the frame), averaged per tile of ``tile_px``;
3. a tile brightens when its change exceeds ``z_threshold`` times its own usual change (learnt per tile from
   earlier analyses: trees, roads and noise learn to be noisy, the mast learns to be calm) and
   ``min_brightening`` levels, with low colour saturation;
4. connected brightening tiles form a candidate, kept only when its base (bottom) lies at or below the
   horizon, estimated per column from the reference (sky above, ground below): clouds drifting in the sky do
   not qualify; when more than ``max_changed_share`` of the tiles change the frame is a global change and is
   skipped;
5. a candidate is confirmed when its base stays put (``base_match_tiles``), it is seen in ``confirm_hits``
   analyses within ``confirm_window_s`` spanning at least ``confirm_min_span_s`` of real time, and it has not
   shrunk below ``max_shrink`` of its largest area.

Confirmed plumes are handed on as ``smoke`` boxes (pixels of the full frame) whose bottom is the plume's base,
the point the geolocation locates.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.smoke.config import SmokeConfig
from pipeline.types import CLASS_INDEX, Detections, Frame

SMOKE_ID = CLASS_INDEX["smoke"]
#: per-tile usual change never counts as less than this (grey levels): JPEG noise of calm tiles
NOISE_FLOOR = 0.6
#: weight of a new analysis in a tile's usual change (in one that brightened in it)
NOISE_RATE = 0.15
NOISE_RATE_CHANGED = 0.05
#: most reference frames registered and medianed per analysis
MAX_REFS = 5
#: least phase-correlation response for a registration to be trusted (else the shift is taken as zero)
MIN_RESPONSE = 0.05


@dataclass(slots=True)
class Component:
    """Connected brightening tiles of one analysis."""

    box_tiles: tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive-exclusive), tiles
    base_xy_tiles: tuple[float, float]  # centre of the bottom row of tiles
    area_tiles: int
    z_mean: float


@dataclass
class Candidate:
    id: int
    base_xy_tiles: tuple[float, float]
    sightings: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))  # (t_s, area)
    box_tiles: tuple[int, int, int, int] = (0, 0, 0, 0)
    max_area: int = 0
    z_mean: float = 0.0
    confirmed: bool = False
    t_last: float = -math.inf
    appearance_score: float | None = None  # the network's smoke score on the plume (network_min_score > 0)


@dataclass(slots=True)
class Plume:
    """A confirmed plume, in pixels of the full frame (its bottom centre is the base)."""

    candidate_id: int
    xyxy: tuple[float, float, float, float]
    score: float
    t_first_s: float
    t_last_s: float


@dataclass(slots=True)
class Analysis:
    """What one analysis saw (for tests, the validation script and the report strip)."""

    t_s: float
    used: bool  # False: warm-up (no reference yet) or a global change
    reason: str
    components: list[Component]
    horizon_rows: NDArray[np.float32] | None = None


def small_grey(image_bgr: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(grey, chroma) float32 of a small BGR image: mean of the channels, max - min of the channels."""
    b, g, r = cv2.split(image_bgr)
    hi = cv2.max(cv2.max(b, g), r)
    lo = cv2.min(cv2.min(b, g), r)
    grey = cv2.transform(image_bgr, np.full((1, 3), 1.0 / 3.0, np.float32))
    chroma = cv2.subtract(hi, lo)
    return np.asarray(grey, np.float32).reshape(image_bgr.shape[:2]), np.asarray(chroma, np.float32)


def register_shift(ref: NDArray[np.float32], cur: NDArray[np.float32],
                   window: NDArray[np.float32]) -> tuple[float, float]:
    """(dx, dy) that moves ``ref`` onto ``cur`` (phase correlation on half-size images, the window's size);
    (0, 0) when it is not trustworthy."""
    wh = (window.shape[1], window.shape[0])
    k = ref.shape[1] / wh[0]
    a = cv2.resize(ref, wh, interpolation=cv2.INTER_AREA)
    b = cv2.resize(cur, wh, interpolation=cv2.INTER_AREA)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    if response < MIN_RESPONSE or not (math.isfinite(dx) and math.isfinite(dy)):
        return 0.0, 0.0
    return float(dx * k), float(dy * k)


def shifted(image: NDArray[np.float32], dx: float, dy: float) -> NDArray[np.float32]:
    if abs(dx) < 0.05 and abs(dy) < 0.05:
        return image
    m = np.asarray([[1, 0, dx], [0, 1, dy]], np.float32)
    h, w = image.shape
    return np.asarray(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                      np.float32)


def horizon_rows(reference: NDArray[np.float32], tile_px: int, top_px: int) -> NDArray[np.float32]:
    """Per column of tiles, the row (pixels) where the bright, smooth sky gives way to the ground: the row of
    the strongest drop in brightness from a band above to a band below, medianed across neighbouring columns
    (a mast or an antenna does not move it)."""
    h, w = reference.shape
    cols = max(1, w // tile_px)
    profile = cv2.resize(reference[:, : cols * tile_px], (cols, h), interpolation=cv2.INTER_AREA)
    band = max(2, 2 * tile_px)
    csum = np.cumsum(np.vstack([np.zeros((1, cols), np.float32), profile]), axis=0)
    rows = np.arange(max(top_px, band), h - band)
    if len(rows) == 0:
        return np.full(cols, h / 2, np.float32)
    above = (csum[rows] - csum[rows - band]) / band
    below = (csum[rows + band] - csum[rows]) / band
    drop = above - below
    best = rows[np.argmax(drop, axis=0)].astype(np.float32)
    k = min(cols if cols % 2 else cols - 1, 15)
    return _median_1d(best, k) if k >= 3 else best


def pixel_median(images: list[NDArray[np.float32]]) -> NDArray[np.float32]:
    """Per-pixel median of 1-5 images (a min/max network for 3 and 5: ~10x faster than np.median)."""
    n = len(images)
    if n == 1:
        return images[0]
    if n == 3:
        a, b, c = images
        return np.asarray(cv2.max(cv2.min(a, b), cv2.min(cv2.max(a, b), c)), np.float32)
    if n == 5:
        a, b, c, d, e = images
        # median of 5: sort (a, b) and (d, e), drop the extremes of the four, then the median of three
        ab_lo, ab_hi = cv2.min(a, b), cv2.max(a, b)
        de_lo, de_hi = cv2.min(d, e), cv2.max(d, e)
        lo = cv2.max(ab_lo, de_lo)  # the smallest of the four is out
        hi = cv2.min(ab_hi, de_hi)  # the largest of the four is out
        return pixel_median([np.asarray(lo, np.float32), np.asarray(hi, np.float32), c])
    return np.asarray(np.median(np.stack(images), axis=0), np.float32)


def _median_1d(values: NDArray[np.float32], k: int) -> NDArray[np.float32]:
    half = k // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, k)
    return np.asarray(np.median(windows, axis=1), np.float32)


class ViewWatcher:
    """One view's history, per-tile usual change and candidates."""

    def __init__(self, cfg: SmokeConfig, ids: Any = None) -> None:
        self.cfg = cfg
        self.history: deque[tuple[float, NDArray[np.float32]]] = deque()
        self.noise: NDArray[np.float32] | None = None
        self.candidates: list[Candidate] = []
        self._ids = ids if ids is not None else count(1)
        self._window: NDArray[np.float32] | None = None
        self.t_last_analysis = -math.inf
        self.analyses = 0

    # ---------------------------------------------------------------------------------------------- steps

    def reference(self, cur: NDArray[np.float32], t_s: float) -> NDArray[np.float32] | None:
        cfg = self.cfg
        refs = [g for t, g in self.history if cfg.ref_min_age_s <= t_s - t <= cfg.ref_max_age_s]
        if not refs:
            return None
        if len(refs) > MAX_REFS:  # spread over the window
            idx = np.linspace(0, len(refs) - 1, MAX_REFS).round().astype(int)
            refs = [refs[i] for i in idx]
        half_wh = (max(16, cur.shape[1] // 2), max(16, cur.shape[0] // 2))
        if self._window is None or self._window.shape != half_wh[::-1]:
            self._window = np.asarray(cv2.createHanningWindow(half_wh, cv2.CV_32F), np.float32)
        warped = [shifted(r, *register_shift(r, cur, self._window)) for r in refs]
        return pixel_median(warped)

    def change_tiles(self, cur: NDArray[np.float32], ref: NDArray[np.float32]) -> NDArray[np.float32]:
        """Brightening per tile after removing smooth (large-scale) changes, grey levels: the tile means of
        ``cur - ref`` minus their own blur over ~6 tiles (exposure, haze, light across the frame)."""
        tile = self.cfg.tile_px
        h, w = cur.shape
        rows, cols = h // tile, w // tile
        d = cv2.subtract(cur[: rows * tile, : cols * tile], ref[: rows * tile, : cols * tile])
        tiles = cv2.resize(d, (cols, rows), interpolation=cv2.INTER_AREA)
        return np.asarray(tiles - cv2.GaussianBlur(tiles, (0, 0), 6.0, borderType=cv2.BORDER_REFLECT), np.float32)

    def analyse(self, small_bgr: NDArray[np.uint8], t_s: float) -> Analysis:
        """One analysis of a small BGR frame of this view at time ``t_s`` (seconds, the frames' clock)."""
        cfg = self.cfg
        tile = cfg.tile_px
        grey, chroma = small_grey(small_bgr)
        cur = np.asarray(cv2.GaussianBlur(grey, (3, 3), 0), np.float32)
        self.t_last_analysis = t_s
        self.analyses += 1
        ref = self.reference(cur, t_s)
        self._remember(cur, t_s)
        if ref is None:
            return Analysis(t_s, False, "warm-up: no reference frame old enough", [])
        tiles = self.change_tiles(cur, ref)
        rows, cols = tiles.shape
        top_rows = int(math.ceil(cfg.ignore_top_frac * cur.shape[0] / tile))
        valid = np.ones_like(tiles, bool)
        valid[:top_rows] = False
        first = self.noise is None
        if self.noise is None:
            # first comparison: what changes now is taken as this view's usual change (a plume already in
            # view at start-up is learnt as usual: docs/SMOKE.md, limits)
            self.noise = np.maximum(np.abs(tiles), NOISE_FLOOR).astype(np.float32)
        noise = np.maximum(self.noise, NOISE_FLOOR)
        global_noise = float(np.median(np.abs(tiles[valid]))) * 1.4826 if valid.any() else NOISE_FLOOR
        z = np.asarray(tiles / np.maximum(noise, global_noise), np.float32)
        chroma_t = cv2.resize(chroma[: rows * tile, : cols * tile], (cols, rows), interpolation=cv2.INTER_AREA)
        grey_t = np.asarray(cv2.resize(cur[: rows * tile, : cols * tile], (cols, rows),
                                       interpolation=cv2.INTER_AREA), np.float32)
        mask = valid & (z > cfg.z_threshold) & (tiles > cfg.min_brightening) & (chroma_t < cfg.max_chroma)
        share = float(mask.sum()) / max(1, int(valid.sum()))
        horizon = horizon_rows(ref, tile, top_rows * tile)
        # the usual change learns from every tile, slower from those that brightened now (a young plume must
        # not teach itself as usual before it is confirmed; a tile that brightens for ever must learn it)
        rate = np.where(mask, NOISE_RATE_CHANGED, NOISE_RATE).astype(np.float32)
        self.noise += rate * (np.abs(tiles) - self.noise)
        if first:
            return Analysis(t_s, False, "warm-up: learning the usual change", [], horizon)
        if share > cfg.max_changed_share:
            return Analysis(t_s, False, f"global change: {share:.0%} of tiles", [], horizon)
        z_start = min(cfg.z_start, cfg.z_threshold) if cfg.z_start > 0 else cfg.z_threshold
        weak = valid & (z > z_start) & (tiles > cfg.min_brightening) & (chroma_t < cfg.max_chroma)
        comps = self._components(weak, mask, z, horizon, grey_t)
        self._track(comps, t_s)
        return Analysis(t_s, True, "", comps, horizon)

    def _remember(self, cur: NDArray[np.float32], t_s: float) -> None:
        cfg = self.cfg
        if not self.history or t_s - self.history[-1][0] >= cfg.history_step_s:
            self.history.append((t_s, cur))
        while self.history and t_s - self.history[0][0] > cfg.ref_max_age_s:
            self.history.popleft()

    def _components(self, weak: NDArray[np.bool_], mask: NDArray[np.bool_], z: NDArray[np.float32],
                    horizon: NDArray[np.float32], grey_t: NDArray[np.float32]) -> list[Component]:
        """Connected tiles of ``weak`` (brightening above z_start) with their count of ``mask`` tiles
        (above z_threshold) as the area that confirms."""
        tile = self.cfg.tile_px
        m = np.asarray(cv2.morphologyEx(weak.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        out: list[Component] = []
        for i in range(1, n):
            x0, y0, w, h, area = (int(v) for v in stats[i])
            sel = labels == i
            own = sel & weak
            if not own.any():
                continue
            if float(grey_t[own].max()) >= self.cfg.max_grey:
                continue  # a blown-out tile in it: glare (the sun, a reflection), not smoke
            ys, xs = np.nonzero(own)
            yb = int(ys.max())
            xb = float(xs[ys == yb].mean())
            horizon_tile = float(horizon[min(int(round(xb)), len(horizon) - 1)]) / tile
            if yb + 1 < horizon_tile - self.cfg.horizon_margin_tiles:
                continue  # wholly above the horizon: sky (clouds), not anchored on the ground
            out.append(Component((x0, y0, x0 + w, y0 + h), (xb, float(yb)), int((sel & mask).sum()),
                                 float(z[own].mean())))
        return out

    def _track(self, comps: list[Component], t_s: float) -> None:
        cfg = self.cfg
        self.candidates = [c for c in self.candidates if t_s - c.t_last <= cfg.confirm_window_s]
        for comp in sorted(comps, key=lambda c: -c.area_tiles):
            best: tuple[float, Candidate] | None = None
            for cand in self.candidates:
                if cand.t_last == t_s:
                    continue  # one component per candidate and analysis
                d = math.dist(cand.base_xy_tiles, comp.base_xy_tiles)
                if d <= cfg.base_match_tiles and (best is None or d < best[0]):
                    best = (d, cand)
            if best is None:
                cand = Candidate(next(self._ids), comp.base_xy_tiles)
                self.candidates.append(cand)
            else:
                cand = best[1]
            cand.sightings.append((t_s, comp.area_tiles))
            cand.box_tiles = comp.box_tiles
            cand.z_mean = comp.z_mean
            cand.max_area = max(cand.max_area, comp.area_tiles)
            cand.t_last = t_s
            if not cand.confirmed:
                cand.confirmed = self._confirms(cand, t_s) and not self._part_of_confirmed(cand)

    def _part_of_confirmed(self, cand: Candidate) -> bool:
        """True when the candidate touches a confirmed plume (its drifting top, a second puff): one alert."""
        x0, y0, x1, y1 = cand.box_tiles
        for other in self.candidates:
            if other is cand or not other.confirmed:
                continue
            a0, b0, a1, b1 = other.box_tiles
            if x0 <= a1 and a0 <= x1 and y0 <= b1 and b0 <= y1:  # boxes touch or overlap (tiles)
                return True
        return False

    def _confirms(self, cand: Candidate, t_s: float) -> bool:
        cfg = self.cfg
        recent = [(t, a) for t, a in cand.sightings if t_s - t <= cfg.confirm_window_s]
        if len(recent) < cfg.confirm_hits or recent[-1][1] < cfg.min_area_tiles:
            return False
        if recent[-1][0] - recent[0][0] < cfg.confirm_min_span_s:
            return False
        return recent[-1][1] >= cfg.max_shrink * max(a for _, a in recent)

    def plumes(self, t_s: float, wh: tuple[int, int], small_wh: tuple[int, int]) -> list[Plume]:
        """Confirmed plumes seen within ``hold_s``, in pixels of a ``wh`` frame."""
        tile = self.cfg.tile_px
        kx, ky = wh[0] / small_wh[0], wh[1] / small_wh[1]
        out = []
        for c in self.candidates:
            if not c.confirmed or t_s - c.t_last > self.cfg.hold_s:
                continue
            x0, y0, x1, y1 = c.box_tiles
            xyxy = (x0 * tile * kx, y0 * tile * ky, x1 * tile * kx, y1 * tile * ky)
            score = float(min(0.99, 0.5 + 0.02 * c.z_mean))
            out.append(Plume(c.id, xyxy, score, c.sightings[0][0], c.t_last))
        return out


#: the network's smoke score on a square crop of a full frame around a box (xyxy, pixels of the frame)
AppearanceCheck = Callable[[NDArray[np.uint8], tuple[float, float, float, float]], float]


class SmokeWatcher:
    """The smoke stage of one camera: a :class:`ViewWatcher` per preset; frames in, confirmed plumes out.

    ``appearance`` (optional): a second opinion asked once per plume when it is confirmed; below
    ``smoke.network_min_score`` the plume stays unconfirmed and is asked again at the next analysis."""

    def __init__(self, cfg: SmokeConfig, appearance: AppearanceCheck | None = None) -> None:
        self.cfg = cfg
        self.appearance = appearance
        self.views: dict[str | None, ViewWatcher] = {}
        self._ids = count(1)
        self.last_analysis: Analysis | None = None

    def view(self, preset: str | None) -> ViewWatcher:
        v = self.views.get(preset)
        if v is None:
            v = ViewWatcher(self.cfg, self._ids)
            self.views[preset] = v
        return v

    def small_wh(self, wh: tuple[int, int]) -> tuple[int, int]:
        w = min(self.cfg.width_px, wh[0])
        return w, max(1, int(round(wh[1] * w / wh[0])))

    def observe(self, frame: Frame) -> list[Plume]:
        """One frame of this camera: analysed when its view's ``interval_s`` has passed; the confirmed plumes."""
        view = self.view(frame.pose.preset)
        t = frame.t_capture
        wh = frame.wh
        small_wh = self.small_wh(wh)
        self.last_analysis = None
        if t - view.t_last_analysis >= self.cfg.interval_s or t < view.t_last_analysis:
            self.last_analysis = view.analyse(frame.resized_bgr(small_wh), t)
            if self.appearance is not None and self.cfg.network_min_score > 0:
                self._ask_network(view, frame, t, wh, small_wh)
        return view.plumes(t, wh, small_wh)

    def _ask_network(self, view: ViewWatcher, frame: Frame, t: float, wh: tuple[int, int],
                     small_wh: tuple[int, int]) -> None:
        assert self.appearance is not None
        by_id = {c.id: c for c in view.candidates}
        for plume in view.plumes(t, wh, small_wh):
            cand = by_id[plume.candidate_id]
            if cand.appearance_score is not None and cand.appearance_score >= self.cfg.network_min_score:
                continue  # asked once, and it agreed
            cand.appearance_score = self.appearance(frame.image_bgr, plume.xyxy)
            if cand.appearance_score < self.cfg.network_min_score:
                cand.confirmed = False  # asked again when it confirms at a later analysis


def plumes_to_detections(plumes: list[Plume]) -> Detections:
    if not plumes:
        return Detections()
    return Detections(
        np.asarray([p.xyxy for p in plumes], np.float32).reshape(-1, 4),
        np.asarray([p.score for p in plumes], np.float32),
        np.full(len(plumes), SMOKE_ID, np.int32),
    )

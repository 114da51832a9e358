"""ByteTrack-style tracking of one camera at one preset, written in numpy.

Each :meth:`Tracker.update` (one analysed frame of this preset):

1. every live track predicts its box one frame ahead (constant velocity; a stationary track stays put);
2. high-score detections (``score >= high_score``) are matched to all live tracks of the same class by IoU
   (greedy, best overlap first, at least ``match_iou``);
3. low-score detections are matched to the tracks still unmatched that were seen in the previous frame
   (at least ``low_match_iou``): a machine half hidden by dust keeps its track instead of losing it;
4. unmatched high-score detections start new tracks;
5. a track is *confirmed* once it was matched in ``confirm_hits`` of the last ``confirm_window`` frames and
   stays confirmed; an unconfirmed track unseen for more than ``confirm_window - confirm_hits`` frames is
   dropped (it can no longer be confirmed); a confirmed track survives ``lost_frames`` unseen frames
   (``lost_frames_stationary`` when it is stationary: a parked machine may be hidden for longer).

Time is counted in frames *of this preset*, so while a patrol looks elsewhere the tracks wait unchanged
and a parked excavator keeps its id when the patrol comes back. Greedy assignment instead of the
Hungarian method: with a handful of objects per frame and class-gated IoU the two agree (and no scipy).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from pipeline.boxes import iou_matrix
from pipeline.config import TrackConfig
from pipeline.track.kalman import BoxKalman
from pipeline.types import CLASSES, Detections

T = TypeVar("T")


def greedy_match(score: NDArray[np.float64], min_score: float) -> list[tuple[int, int]]:
    """Pairs (row, col) taken best score first, each row and column once, score ≥ ``min_score``."""
    if score.size == 0:
        return []
    rows, cols = np.nonzero(score >= min_score)
    order = np.argsort(-score[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


@dataclass
class Track:
    """One tracked object. ``xyxy``/``score`` are those of its latest detection (the prediction while lost)."""

    track_id: int
    class_id: int
    xyxy: NDArray[np.float64]
    score: float
    t_first_s: float
    t_last_s: float
    preset: str | None = None
    best_score: float = 0.0
    confirmed: bool = False
    seen: bool = True  # matched in the latest update of its tracker
    det_index: int = -1  # index of its detection in the latest update's Detections (-1 when unseen)
    lost_frames: int = 0  # consecutive updates unseen
    stationary: bool = False
    hits: deque[bool] = field(default_factory=deque)
    centres_xy: deque[tuple[float, float, float]] = field(default_factory=deque)  # (cx, cy, diagonal)
    ground_en_m: tuple[float, float] | None = None  # smoothed ground position (local metres of the caller)
    ground_n: int = 0
    kalman: BoxKalman = field(init=False)  # starts at the first box

    def __post_init__(self) -> None:
        self.kalman = BoxKalman(self.xyxy)

    @property
    def class_name(self) -> str:
        return CLASSES[self.class_id]

    @property
    def bottom_centre_xy(self) -> tuple[float, float]:
        return float((self.xyxy[0] + self.xyxy[2]) / 2), float(self.xyxy[3])

    def observe_ground(self, east_m: float, north_m: float, alpha: float) -> tuple[float, float]:
        """Blend a new ground fix into the smoothed position and return it.

        Moving: exponential smoothing with weight ``alpha``. Stationary: the running mean of the fixes
        since it stopped (weight 1/n, never below ``alpha / 10``). The uncertainty is not reduced by
        averaging: fixes of one camera share its pose error.
        """
        if self.ground_en_m is None:
            self.ground_en_m, self.ground_n = (east_m, north_m), 1
            return self.ground_en_m
        self.ground_n = self.ground_n + 1 if self.stationary else 1
        weight = max(1.0 / self.ground_n, alpha / 10.0) if self.stationary else alpha
        e0, n0 = self.ground_en_m
        self.ground_en_m = (e0 + weight * (east_m - e0), n0 + weight * (north_m - n0))
        return self.ground_en_m


class Tracker:
    """Tracks of one camera at one preset. Not thread-safe: one analysis thread owns it."""

    def __init__(
        self,
        cfg: TrackConfig | None = None,
        confirm_hits: int = 3,
        confirm_window: int = 5,
        preset: str | None = None,
        ids: Iterator[int] | None = None,
    ) -> None:
        if not 1 <= confirm_hits <= confirm_window:
            raise ValueError(f"need 1 ≤ confirm_hits ({confirm_hits}) ≤ confirm_window ({confirm_window})")
        self.cfg = cfg or TrackConfig.model_validate({})
        self.confirm_hits = confirm_hits
        self.confirm_window = confirm_window
        self.preset = preset
        self._ids = ids if ids is not None else itertools.count(1)
        self.tracks: list[Track] = []
        self.frames = 0

    def update(self, dets: Detections, t_s: float) -> list[Track]:
        """Associate one frame's detections; returns every live track (seen or not, confirmed or not)."""
        self.frames += 1
        cfg = self.cfg
        for track in self.tracks:
            track.kalman.predict(still=track.stationary)
        prev_seen = [t.seen for t in self.tracks]
        n_det = len(dets)
        det_xyxy = np.asarray(dets.xyxy, dtype=np.float64).reshape(-1, 4)
        det_cls = np.asarray(dets.class_id, dtype=np.int64)
        det_score = np.asarray(dets.score, dtype=np.float64)
        pred_xyxy = (
            np.stack([t.kalman.xyxy for t in self.tracks if t.kalman is not None]) if self.tracks else np.zeros((0, 4))
        )
        trk_cls = np.array([t.class_id for t in self.tracks], dtype=np.int64)
        iou = iou_matrix(pred_xyxy, det_xyxy)
        iou = np.where(trk_cls[:, None] == det_cls[None, :], iou, 0.0)  # never across classes

        matched: dict[int, int] = {}  # track index → detection index
        high = det_score >= cfg.high_score
        # pass 1: high-score detections against every live track
        masked = np.where(high[None, :], iou, -1.0)
        for r, c in greedy_match(masked, cfg.match_iou):
            matched[r] = c
        # pass 2: low-score detections against tracks seen last frame and still unmatched
        free_rows = np.array([i not in matched and prev_seen[i] for i in range(len(self.tracks))], dtype=bool)
        used_dets = np.zeros(n_det, dtype=bool)
        used_dets[list(matched.values())] = True
        masked = np.where(free_rows[:, None] & (~high & ~used_dets)[None, :], iou, -1.0)
        for r, c in greedy_match(masked, cfg.low_match_iou):
            matched[r] = c
            used_dets[c] = True

        survivors: list[Track] = []
        for i, track in enumerate(self.tracks):
            if i in matched:
                self._hit(track, matched[i], det_xyxy, det_score, t_s)
            else:
                self._miss(track)
            if self._alive(track):
                survivors.append(track)
        # pass 3: unmatched high-score detections start tracks
        for k in np.flatnonzero(high & ~used_dets).tolist():
            survivors.append(self._start(k, det_xyxy, det_cls, det_score, t_s))
        self.tracks = survivors
        return list(self.tracks)

    # --------------------------------------------------------------------------------------------- steps

    def _start(
        self,
        c: int,
        det_xyxy: NDArray[np.float64],
        det_cls: NDArray[np.int64],
        det_score: NDArray[np.float64],
        t_s: float,
    ) -> Track:
        xyxy = det_xyxy[c].copy()
        track = Track(
            track_id=next(self._ids),
            class_id=int(det_cls[c]),
            xyxy=xyxy,
            score=float(det_score[c]),
            best_score=float(det_score[c]),
            t_first_s=t_s,
            t_last_s=t_s,
            preset=self.preset,
            det_index=c,
            hits=deque([True], maxlen=self.confirm_window),
            centres_xy=deque(maxlen=self.cfg.stationary_window),
        )
        self._note_centre(track)
        track.confirmed = self.confirm_hits <= 1
        return track

    def _hit(
        self, track: Track, c: int, det_xyxy: NDArray[np.float64], det_score: NDArray[np.float64], t_s: float
    ) -> None:
        track.kalman.update(det_xyxy[c])
        track.xyxy = det_xyxy[c].copy()
        track.score = float(det_score[c])
        track.best_score = max(track.best_score, track.score)
        track.t_last_s = t_s
        track.seen = True
        track.det_index = c
        track.lost_frames = 0
        track.hits.append(True)
        if sum(track.hits) >= self.confirm_hits:
            track.confirmed = True
        self._note_centre(track)

    def _miss(self, track: Track) -> None:
        track.seen = False
        track.det_index = -1
        track.lost_frames += 1
        track.hits.append(False)
        track.xyxy = track.kalman.xyxy if not track.stationary else track.xyxy

    def _alive(self, track: Track) -> bool:
        if not track.confirmed:
            return track.lost_frames <= self.confirm_window - self.confirm_hits
        limit = self.cfg.lost_frames_stationary if track.stationary else self.cfg.lost_frames
        return track.lost_frames <= limit

    def _note_centre(self, track: Track) -> None:
        x1, y1, x2, y2 = (float(v) for v in track.xyxy)
        track.centres_xy.append(((x1 + x2) / 2, (y1 + y2) / 2, float(np.hypot(x2 - x1, y2 - y1))))
        if len(track.centres_xy) < self.cfg.stationary_window:
            track.stationary = False
            return
        xs = [c[0] for c in track.centres_xy]
        ys = [c[1] for c in track.centres_xy]
        extent = math.hypot(max(xs) - min(xs), max(ys) - min(ys))
        track.stationary = extent < self.cfg.stationary_move_frac * statistics.median(c[2] for c in track.centres_xy)


def per_track(tracks: Sequence[Track], per_detection: Sequence[T]) -> list[T | None]:
    """One value per track from one per detection of the latest update (None for a track unseen in it)."""
    return [
        per_detection[tr.det_index] if tr.seen and 0 <= tr.det_index < len(per_detection) else None for tr in tracks
    ]


class PresetTrackers:
    """One :class:`Tracker` per preset of one camera, with track ids unique across its presets."""

    def __init__(self, cfg: TrackConfig | None = None, confirm_hits: int = 3, confirm_window: int = 5,
                 ids: Iterator[int] | None = None) -> None:
        self.cfg = cfg or TrackConfig.model_validate({})
        self.confirm_hits = confirm_hits
        self.confirm_window = confirm_window
        #: track ids; pass another PresetTrackers' ``ids`` to keep ids unique across both (the smoke stage)
        self.ids: Iterator[int] = ids if ids is not None else itertools.count(1)
        self.by_preset: dict[str | None, Tracker] = {}

    def tracker(self, preset: str | None) -> Tracker:
        tracker = self.by_preset.get(preset)
        if tracker is None:
            tracker = Tracker(self.cfg, self.confirm_hits, self.confirm_window, preset, self.ids)
            self.by_preset[preset] = tracker
        return tracker

    def update(self, preset: str | None, dets: Detections, t_s: float) -> list[Track]:
        return self.tracker(preset).update(dets, t_s)

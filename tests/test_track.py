"""Tracker: association, N-of-M confirmation, flicker, stationary objects, presets, ground smoothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.config import TrackConfig
from pipeline.track import PresetTrackers, Track, Tracker, greedy_match
from pipeline.types import CLASS_INDEX, Detections

EXC, TRUCK = CLASS_INDEX["excavator"], CLASS_INDEX["truck"]


def dets(*boxes: tuple[float, float, float, float, float, int]) -> Detections:
    """Boxes as (x1, y1, x2, y2, score, class_id)."""
    return Detections.from_rows(boxes)


def box(x: float, y: float = 100.0, w: float = 80.0, h: float = 60.0, score: float = 0.8, cls: int = EXC) -> Any:
    return (x, y, x + w, y + h, score, cls)


def cfg(**kw: Any) -> TrackConfig:
    return TrackConfig.model_validate(kw)


def ids(tracks: list[Track], seen_only: bool = True) -> list[int]:
    return sorted(t.track_id for t in tracks if t.seen or not seen_only)


def test_greedy_match_takes_best_first() -> None:
    score = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(score, 0.2)) == [(0, 0)]  # row 1's only good column is taken; 0.1 is too low
    assert sorted(greedy_match(score, 0.05)) == [(0, 0), (1, 1)]
    assert greedy_match(np.zeros((0, 0)), 0.1) == []


def test_moving_object_keeps_its_id() -> None:
    tracker = Tracker(cfg(), confirm_hits=3, confirm_window=5)
    seen: set[int] = set()
    for k in range(20):
        tracks = tracker.update(dets(box(100 + 15 * k)), float(k))  # 15 px per frame, box 80 px wide
        seen.update(ids(tracks))
    assert len(seen) == 1
    assert tracker.tracks[0].confirmed and not tracker.tracks[0].stationary


def test_kalman_prediction_bridges_a_gap_in_fast_motion() -> None:
    """40 px per frame with an 80 px box: after two missed frames the object is 120 px on; without motion
    prediction IoU with the last box would be 0."""
    tracker = Tracker(cfg(), 3, 5)
    for k in range(8):
        tracker.update(dets(box(100 + 40 * k)), float(k))
    tracker.update(dets(), 8.0)
    tracker.update(dets(), 9.0)
    tracks = tracker.update(dets(box(100 + 40 * 10)), 10.0)
    assert ids(tracks) == [1]


def test_two_objects_two_ids_and_classes_never_mix() -> None:
    tracker = Tracker(cfg(), 1, 1)
    tracker.update(dets(box(100, cls=EXC), box(300, cls=TRUCK)), 0.0)
    # both move 10 px
    tracks = tracker.update(dets(box(110, cls=EXC), box(310, cls=TRUCK)), 1.0)
    assert {t.class_name: t.track_id for t in tracks if t.seen} == {"excavator": 1, "truck": 2}
    # the excavator is hidden and a truck stands exactly where it was: a new truck, not the excavator's id
    tracks = tracker.update(dets(box(120, cls=TRUCK), box(320, cls=TRUCK)), 2.0)
    assert {t.track_id for t in tracks if t.seen} == {2, 3}
    assert [t.track_id for t in tracks if not t.seen] == [1]


@pytest.mark.parametrize(
    ("pattern", "hits", "window", "confirmed_at"),
    [
        ("111", 3, 5, 2),
        ("1101", 3, 5, 3),
        ("10101", 3, 5, 4),
        ("1001001", 3, 5, None),  # never 3 in any 5
        ("1", 1, 1, 0),
        ("11011", 2, 2, 1),
        ("10111", 3, 3, 4),  # the miss drops the young track (N = M); the second run confirms a new track
    ],
)
def test_n_of_m_confirmation(pattern: str, hits: int, window: int, confirmed_at: int | None) -> None:
    tracker = Tracker(cfg(), hits, window)
    first_confirmed: int | None = None
    for k, ch in enumerate(pattern):
        tracks = tracker.update(dets(box(100)) if ch == "1" else dets(), float(k))
        if first_confirmed is None and any(t.confirmed for t in tracks):
            first_confirmed = k
    assert first_confirmed == confirmed_at


def test_a_single_false_detection_dies_unconfirmed() -> None:
    tracker = Tracker(cfg(), 3, 5)
    tracker.update(dets(box(100)), 0.0)
    assert len(tracker.tracks) == 1 and not tracker.tracks[0].confirmed
    for k in range(1, 4):
        tracker.update(dets(), float(k))
    assert tracker.tracks == []


def test_flicker_keeps_the_id_and_lost_too_long_gets_a_new_one() -> None:
    tracker = Tracker(cfg(lost_frames=4, stationary_window=50), 3, 5)  # never stationary here
    for k in range(5):
        tracker.update(dets(box(100)), float(k))
    for k in range(5, 8):  # three frames missing
        tracks = tracker.update(dets(), float(k))
        assert ids(tracks, seen_only=False) == [1] and not tracks[0].seen
    assert ids(tracker.update(dets(box(101)), 8.0)) == [1]
    for k in range(9, 13):  # four frames missing: still there
        tracker.update(dets(), float(k))
    assert ids(tracker.tracks, seen_only=False) == [1]
    tracker.update(dets(), 13.0)  # the fifth: more than lost_frames
    assert tracker.tracks == []
    assert ids(tracker.update(dets(box(101)), 14.0)) == [2]


def test_stationary_state_and_longer_life() -> None:
    tracker = Tracker(cfg(stationary_window=6, lost_frames=2, lost_frames_stationary=20), 3, 5)
    rng = np.random.default_rng(0)
    for k in range(8):
        jitter = rng.uniform(-1.0, 1.0, 2)  # box jitter of a parked machine: ±1 px, box diagonal 100 px
        tracks = tracker.update(dets(box(300 + jitter[0], 200 + jitter[1])), float(k))
        assert tracks[0].stationary is (k >= 5)
    for k in range(8, 20):  # hidden for 12 frames: more than lost_frames, fewer than lost_frames_stationary
        tracker.update(dets(), float(k))
    assert ids(tracker.update(dets(box(300, 200)), 20.0)) == [1]


def test_slow_truck_is_not_stationary() -> None:
    tracker = Tracker(cfg(stationary_window=6, stationary_move_frac=0.05), 3, 5)
    for k in range(10):
        tracks = tracker.update(dets(box(100 + 3 * k, cls=TRUCK)), float(k))  # 15 px over 6 frames > 5 px
    assert not tracks[0].stationary


def test_low_score_detections_keep_but_never_start_tracks() -> None:
    tracker = Tracker(cfg(high_score=0.5), 2, 3)
    assert tracker.update(dets(box(100, score=0.3)), 0.0) == []  # too faint to start a track
    tracker.update(dets(box(100, score=0.9)), 1.0)
    for k in range(2, 10):
        tracks = tracker.update(dets(box(100 + k, score=0.3)), float(k))  # dust: only faint detections
        assert ids(tracks) == [1]
    assert tracks[0].best_score == pytest.approx(0.9) and tracks[0].score == pytest.approx(0.3)


def test_low_score_detection_needs_more_overlap() -> None:
    tracker = Tracker(cfg(high_score=0.5, match_iou=0.2, low_match_iou=0.5), 1, 1)
    tracker.update(dets(box(100)), 0.0)
    tracks = tracker.update(dets(box(140, score=0.3)), 1.0)  # IoU 1/3: enough for high, not for low
    assert ids(tracks) == []


def test_det_index_points_into_the_frames_detections() -> None:
    tracker = Tracker(cfg(), 1, 1)
    tracker.update(dets(box(100), box(400, cls=TRUCK)), 0.0)
    tracks = tracker.update(dets(box(402, cls=TRUCK), box(500, cls=TRUCK), box(101)), 1.0)
    by_id = {t.track_id: t.det_index for t in tracks}
    assert by_id[1] == 2 and by_id[2] == 0 and by_id[3] == 1


def test_presets_have_their_own_tracks_and_unique_ids() -> None:
    trackers = PresetTrackers(cfg(lost_frames=3), 2, 3)
    a = trackers.update("A", dets(box(100)), 0.0)
    trackers.update("A", dets(box(100)), 1.0)
    b = trackers.update("B", dets(box(100)), 2.0)  # same pixels, other view: another object
    assert a[0].track_id != b[0].track_id and b[0].preset == "B"
    for k in range(3, 50):  # the patrol looks at B for a long time
        trackers.update("B", dets(), float(k))
    back = trackers.update("A", dets(box(102)), 50.0)  # A's frames did not count B's time
    assert ids(back) == [a[0].track_id]


def test_ground_smoothing_moving_and_stationary() -> None:
    track = Track(track_id=1, class_id=EXC, xyxy=np.zeros(4), score=0.9, t_first_s=0.0, t_last_s=0.0)
    assert track.observe_ground(0.0, 0.0, alpha=0.5) == (0.0, 0.0)
    assert track.observe_ground(10.0, 0.0, alpha=0.5) == pytest.approx((5.0, 0.0))  # moving: EMA
    track.stationary = True
    fixes = [(20.0, 4.0), (18.0, -4.0), (22.0, 0.0)]
    for e, n in fixes:
        out = track.observe_ground(e, n, alpha=0.5)
    # parked: running mean of the fixes since it stopped (the EMA value counts as the first of them)
    assert out == pytest.approx(((5.0 + 20 + 18 + 22) / 4, 0.0))

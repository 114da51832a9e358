"""Alert metrics: labelled events, true/false alerts, time to alert, duplicates, location error."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.eval.alerts import AlertRecord, ClipResult, evaluate_alerts, labelled_events
from pipeline.eval.labels import ClipLabels, FrameLabels
from pipeline.types import CLASS_INDEX

FIRE = CLASS_INDEX["fire"]
SMOKE = CLASS_INDEX["smoke"]
WH = (100, 100)
BOX_NORM = (0.5, 0.5, 0.4, 0.4)  # → xyxy (30, 30, 70, 70) in a 100×100 frame
BOX_PX = (30.0, 30.0, 70.0, 70.0)


def clip_labels(frames: dict[int, list[tuple[int, tuple[float, float, float, float]]]],
                latlon: tuple[float, float] | None = None) -> ClipLabels:
    out = {}
    for index, boxes in frames.items():
        n = len(boxes)
        ll = np.full((n, 2), np.nan) if latlon is None else np.tile(np.asarray(latlon, float), (n, 1))
        out[index] = FrameLabels(np.asarray([b for _, b in boxes], float).reshape(-1, 4),
                                 np.asarray([c for c, _ in boxes], np.int32), ll)
    return ClipLabels("test", 5.0, out, max(out) + 1 if out else 0)


def fire_frames(indices: list[int]) -> dict[int, list[tuple[int, tuple[float, float, float, float]]]]:
    return {i: [(FIRE, BOX_NORM)] for i in indices}


def alert(alert_id: str, cls: int, index: int, xyxy=BOX_PX, t_end_s: float | None = None, fps: float = 5.0,
          fixes=()) -> AlertRecord:
    return AlertRecord("test", alert_id, cls, index / fps, index, xyxy, WH, t_end_s, list(fixes))


@pytest.mark.parametrize(
    ("indices", "gap_s", "expected"),
    [
        ([0, 1, 2, 3], 1.0, [(0, 3)]),
        ([0, 1, 2, 8, 9], 1.0, [(0, 2), (8, 9)]),  # 6 frames apart at 5 fps = 1.2 s > 1 s
        ([0, 1, 2, 7, 8], 1.0, [(0, 8)]),  # 5 frames apart = 1.0 s: bridged
        ([0, 2, 4], 0.2, [(0, 0), (2, 2), (4, 4)]),  # 0.2 s: only neighbouring frames join
        ([5], 1.0, [(5, 5)]),
        ([], 1.0, []),
    ],
)
def test_labelled_events_runs(indices: list[int], gap_s: float, expected: list[tuple[int, int]]) -> None:
    events = labelled_events("test", clip_labels(fire_frames(indices)) if indices else
                             ClipLabels("t", 5.0, {}), 5.0, gap_s)
    assert [(e.first_index, e.last_index) for e in events] == expected
    for e in events:
        assert e.t_start_s == pytest.approx(e.first_index / 5.0)
        assert e.t_end_s == pytest.approx(e.last_index / 5.0)


def test_events_are_per_class() -> None:
    frames = {0: [(FIRE, BOX_NORM), (SMOKE, BOX_NORM)], 1: [(SMOKE, BOX_NORM)], 2: [(FIRE, BOX_NORM)]}
    events = labelled_events("test", clip_labels(frames), 5.0, 0.2)
    assert sorted((e.class_id, e.first_index, e.last_index) for e in events) == [
        (FIRE, 0, 0), (FIRE, 2, 2), (SMOKE, 0, 1)]


def run(labels: ClipLabels, alerts: list[AlertRecord], duration_s: float = 10.0, **kw):
    return evaluate_alerts([ClipResult("test", 5.0, duration_s, labels, alerts)], **kw)


def test_caught_with_time_to_alert() -> None:
    m = run(clip_labels(fire_frames(list(range(2, 12)))), [alert("a", FIRE, 5)])
    fire = m.per_class["fire"]
    assert (fire.n_events, fire.n_caught, fire.n_true_alerts, fire.n_false_alerts) == (1, 1, 1, 0)
    assert fire.time_to_alert_s == [pytest.approx(0.6)]  # frame 5 − frame 2 at 5 fps


@pytest.mark.parametrize(
    ("case", "a", "false"),
    [
        ("other_class", alert("s", SMOKE, 5), True),  # no smoke is labelled
        ("elsewhere_in_frame", alert("f", FIRE, 5, xyxy=(80.0, 80.0, 99.0, 99.0)), True),
        ("before_event", alert("f", FIRE, 0), True),  # labels start at frame 2
        ("within_grace", alert("f", FIRE, 20), False),  # last label frame 11 (2.2 s); 4.0 s ≤ 2.2 + 2
        ("after_grace", alert("f", FIRE, 25), True),  # 5.0 s > 4.2 s
    ],
)
def test_false_alerts(case: str, a: AlertRecord, false: bool) -> None:
    m = run(clip_labels(fire_frames(list(range(2, 12)))), [a])
    name = "smoke" if a.class_id == SMOKE else "fire"
    assert m.per_class[name].n_false_alerts == int(false)
    assert [x.alert_id for x in m.false_alerts] == ([a.alert_id] if false else [])
    assert m.per_class["fire"].n_caught == int(not false)


def test_false_alerts_per_camera_hour() -> None:
    m = run(clip_labels(fire_frames([2, 3])), [alert("s1", SMOKE, 1), alert("s2", SMOKE, 30)], duration_s=360.0)
    d = m.per_class["smoke"].as_dict(m.hours)
    assert d["n_false_alerts"] == 2
    assert d["false_alerts_per_camera_hour"] == pytest.approx(20.0)  # 2 in 0.1 h


def test_alert_open_from_an_earlier_event_catches_the_next_one() -> None:
    frames = fire_frames([0, 1, 2, 3] + [20, 21, 22])  # two events, 3.4 s apart
    m = run(clip_labels(frames), [alert("a", FIRE, 2)])  # still open at the clip's end
    fire = m.per_class["fire"]
    assert (fire.n_events, fire.n_caught) == (2, 2)
    assert fire.time_to_alert_s == [pytest.approx(0.4), 0.0]


def test_ended_alert_does_not_catch_the_next_event() -> None:
    frames = fire_frames([0, 1, 2, 3] + [40, 41, 42])
    m = run(clip_labels(frames), [alert("a", FIRE, 2, t_end_s=2.0)])
    fire = m.per_class["fire"]
    assert (fire.n_events, fire.n_caught) == (2, 1)
    assert [e[2] for e in m.events] == [pytest.approx(0.4), None]


def test_duplicates_are_counted_not_false() -> None:
    m = run(clip_labels(fire_frames(list(range(0, 10)))), [alert("a", FIRE, 3), alert("b", FIRE, 6)])
    fire = m.per_class["fire"]
    assert (fire.n_caught, fire.n_true_alerts, fire.n_false_alerts, fire.n_duplicates) == (1, 2, 0, 1)
    assert fire.time_to_alert_s == [pytest.approx(0.6)]


def test_location_error_where_positions_are_labelled() -> None:
    labels = clip_labels(fire_frames(list(range(0, 10))), latlon=(38.700, 111.600))
    fixes = [(4, 38.701, 111.600, BOX_PX), (6, 38.700, 111.600, BOX_PX)]
    m = run(labels, [alert("a", FIRE, 3, fixes=fixes)])
    errors = m.per_class["fire"].location_error_m
    assert len(errors) == 2
    assert errors[0] == pytest.approx(111.0, rel=0.01)  # 0.001° of latitude
    assert errors[1] == pytest.approx(0.0, abs=1e-6)


def test_no_location_error_without_labelled_positions() -> None:
    m = run(clip_labels(fire_frames(list(range(0, 10)))), [alert("a", FIRE, 3, fixes=[(4, 38.7, 111.6, BOX_PX)])])
    assert m.per_class["fire"].location_error_m == []

"""Open events across a restart: the state an event's messages leave in the outbox brings it back under
its alert id (a sighting continues it with `update`), or ends it with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.alerts.outbox import Message, Outbox
from pipeline.events.persist import event_state, state_event
from pipeline.types import AlertEvent
from tests.test_events_lifecycle import CAMERA, IN_MINE, ZONES, Run, manager


def restarted(events: list[AlertEvent], t: float, **alerts: object) -> Run:
    """A fresh EventManager (a new daemon process) given back what the outbox kept of the open events."""
    mgr = manager(alerts=dict(alerts) or None)
    for event in events:
        assert mgr.restore(state_event(event.alert_id, event_state(event))) is None
    run = Run(mgr)
    run.t = t
    return run


def test_an_event_open_at_a_crash_continues_under_its_id() -> None:
    before = Run(manager())
    [new] = before.repeat(3, [IN_MINE])
    assert new.type == "new"
    after = restarted([new], before.t + 20.0)  # the daemon died and came back 20 s later
    out = after.repeat(6, [IN_MINE])  # the excavator is still there: a new track of the same site
    assert [e.type for e in out] and {e.type for e in out} == {"update"}, [e.type for e in out]
    assert {e.alert_id for e in out} == {new.alert_id}
    assert out[0].t_first == new.t_first and out[0].zone is not None and out[0].zone.id == "mine"


def test_an_event_open_at_a_crash_ends_with_a_reason_when_not_seen_again() -> None:
    before = Run(manager(alerts={"end_after_s": 5}))
    [new] = before.repeat(3, [IN_MINE])
    after = restarted([new], before.t + 20.0, end_after_s=5)
    out = after.repeat(14)  # the camera looks at the site for 7 s and sees nothing
    assert [(e.type, e.alert_id, e.extra.get("end_reason")) for e in out] == [("end", new.alert_id,
                                                                                "restart_unseen")]


def test_an_event_in_a_removed_zone_ends_at_once() -> None:
    before = Run(manager())
    [new] = before.repeat(3, [IN_MINE])
    mgr = manager(zones=[z for z in ZONES if z.id != "mine"])
    end = mgr.restore(state_event(new.alert_id, event_state(new)))
    assert end is not None and end.type == "end" and end.extra["end_reason"] == "zone_removed"
    assert mgr.events == []


def test_clean_end_reasons() -> None:
    run = Run(manager(alerts={"end_after_s": 5}))
    [new] = run.repeat(3, [IN_MINE])
    [end] = run.repeat(14)
    assert end.extra["end_reason"] == "unseen"
    run = Run(manager())
    run.repeat(3, [IN_MINE])
    [end] = run.mgr.close_all(run.t, "stopped")
    assert end.extra["end_reason"] == "stopped"


def test_the_outbox_keeps_open_events_until_their_end(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    run = Run(manager())
    [new] = run.repeat(3, [IN_MINE])
    msg = Message("event", "p/b/events", b"{}", None, 2)
    box.add(new.alert_id, 1, "new", [msg], (CAMERA.id, event_state(new)))
    box.close()
    box = Outbox(tmp_path / "o.sqlite")  # a restart
    [(alert_id, text)] = box.open_events()
    assert alert_id == new.alert_id
    back = state_event(alert_id, text)
    assert (back.class_name, back.rule, back.t_first, back.fix) == (new.class_name, new.rule, new.t_first, new.fix)
    box.add(new.alert_id, 2, "end", [msg])
    assert box.open_events() == []
    box.close()


@pytest.mark.parametrize("text", ["{", '{"camera_id": "t1"}', '{"xyxy": [1, 2], "camera_id": "t1"}'])
def test_a_damaged_state_is_refused(text: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        state_event("a1", text)

"""The SQLite outbox: durability settings, ordering, the size policy, corrupt files."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from pipeline.alerts.outbox import Message, Outbox
from pipeline.errors import UserError


def event(n: int = 100, topic: str = "p/b/events", file: str | None = None) -> Message:
    return Message("event", topic, b"{" + b"x" * (n - 2) + b"}", file, n)


def snap(path: str, n: int = 1000) -> Message:
    return Message("snapshot", "p/b/snapshots/a", None, path, n)


def test_wal_and_full_sync(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    conn = box._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()


def test_rows_survive_reopen_in_order_and_delete_only_what_is_acked(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    ids_a = box.add("a", 1, "new", [snap("/s/a-1.jpg"), event(file="/s/a-1.jpg")])
    ids_b = box.add("b", 1, "new", [event()])
    box.close()
    box = Outbox(path)  # a restart
    rows = box.pending(10)
    assert [r.id for r in rows] == ids_a + ids_b
    assert [(r.alert_id, r.kind) for r in rows] == [("a", "snapshot"), ("a", "event"), ("b", "event")]
    assert box.pending(10, exclude=ids_a) == rows[2:]
    assert box.delete([ids_a[0], 999999]) == 1
    assert box.pending_count() == 2
    assert box.referenced_files() == {"/s/a-1.jpg"}
    stats = box.stats()
    assert (stats["committed"], stats["acked"], stats["pending"]) == (3, 1, 2)
    box.close()


def test_seq_continues_after_restart_and_is_forgotten_after_end(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    assert box.last_seq("a") == 0
    box.add("a", 1, "new", [event()])
    box.add("a", 2, "update", [event()])
    box.close()
    box = Outbox(path)
    assert box.last_seq("a") == 2
    box.add("a", 3, "end", [event()])
    assert box.last_seq("a") == 0
    box.close()


def test_bad_type_is_rejected(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(ValueError, match="new, update or end"):
        box.add("a", 1, "start", [event()])
    box.close()


# (rows already in the outbox, incoming type, incoming messages, max messages, max bytes,
#  expected (alert_id, kind) left afterwards in order, expected counters)
POLICY = [
    pytest.param([("u1", "update", 100), ("n1", "new", 100), ("u2", "update", 100)], "new", 1, 3, 10**6,
                 [("n1", "event"), ("u2", "event"), ("x", "event")], {"dropped_update": 1},
                 id="oldest-update-goes-first"),
    pytest.param([("n1", "new", 100), ("e1", "end", 100)], "update", 1, 2, 10**6,
                 [("n1", "event"), ("e1", "event")], {"dropped_update": 1},
                 id="incoming-update-dropped-when-only-new-end-left"),
    pytest.param([("n1", "new", 100), ("e1", "end", 100)], "new", 1, 2, 10**6,
                 [("e1", "event"), ("x", "event")], {"dropped_event": 1},
                 id="new-end-dropped-only-as-last-resort"),
    pytest.param([("n1", "new+snap", 5000), ("n2", "new", 100)], "new", 1, 100, 5250,
                 [("n1", "event"), ("n2", "event"), ("x", "event")], {"dropped_snapshot": 1},
                 id="bytes-cap-drops-snapshots-before-events"),
    pytest.param([("n1", "new", 100)], "new", 2, 100, 3000,
                 [("n1", "event"), ("x", "event")], {"dropped_snapshot": 1},
                 id="incoming-snapshot-too-big-goes-event-stays"),
    pytest.param([("n1", "new", 100)], "new", 2, 100, 10**6,
                 [("n1", "event"), ("x", "snapshot"), ("x", "event")], {}, id="fits-nothing-dropped"),
]


@pytest.mark.parametrize(("existing", "type_", "n_in", "max_messages", "max_bytes", "left", "counters"), POLICY)
def test_size_policy(tmp_path: Path, caplog: pytest.LogCaptureFixture, existing: list[tuple[str, str, int]],
                     type_: str, n_in: int, max_messages: int, max_bytes: int, left: list[tuple[str, str]],
                     counters: dict[str, int]) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_messages=10**6, max_bytes=10**9)
    for alert_id, kind, nbytes in existing:
        if kind == "new+snap":
            box.add(alert_id, 1, "new", [snap(f"/s/{alert_id}.jpg", nbytes), event()])
        else:
            box.add(alert_id, 1, kind, [event(nbytes)])
    box.set_limits(max_messages, max_bytes)
    incoming = [event()] if n_in == 1 else [snap("/s/x.jpg", 4000), event()]
    with caplog.at_level(logging.WARNING, logger="minewatch"):
        box.add("x", 1, type_, incoming)
    assert [(r.alert_id, r.kind) for r in box.pending(100)] == left
    stats = box.stats()
    for name in ("dropped_update", "dropped_snapshot", "dropped_event"):
        assert stats[name] == counters.get(name, 0), name
    drops = [r for r in caplog.records if "outbox full" in r.getMessage()]
    assert bool(drops) == bool(counters)  # every drop is logged (never silent)
    if "dropped_event" in counters:
        assert drops[0].levelno == logging.ERROR
    box.close()


def test_drop_counters_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, max_messages=1)
    box.add("u1", 2, "update", [event()])
    box.add("u2", 2, "update", [event()])
    box.close()
    assert Outbox(path).stats()["dropped_update"] == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad-page"])
def test_corrupt_file_is_moved_aside_with_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                        damage: str) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    for i in range(200):
        box.add(f"a{i}", 1, "new", [event(500)])
    box.close()
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file so that damage hits real pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"this is not an sqlite file at all" * 100)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    else:
        page = 4096
        path.write_bytes(data[: 2 * page] + b"\xff" * page + data[3 * page:])
    with caplog.at_level(logging.INFO, logger="minewatch"):
        box = Outbox(path)
    lines = [r for r in caplog.records if r.name.startswith("minewatch.alerts.outbox")]
    assert len(lines) == 2 and all(r.levelno == logging.ERROR for r in lines)
    message = lines[0].getMessage()
    assert "moved aside" in message and str(path) in message and "\n" not in message
    # these rows are not JSON events: nothing valid to salvage, and the line says so
    assert "nothing could be salvaged" in lines[1].getMessage() and "\n" not in lines[1].getMessage()
    assert box.moved_aside_to is not None and box.moved_aside_to.exists()
    assert box.moved_aside_to.name.startswith("o.sqlite.corrupt-")
    assert box.pending_count() == 0 and box.stats()["moved_aside"] == 1
    box.add("fresh", 1, "new", [event()])  # and it keeps working
    assert [r.alert_id for r in box.pending(5)] == ["fresh"]
    box.close()


def test_unwritable_location_is_a_user_error_not_a_move(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="alerts.outbox_path"):
        Outbox(blocker / "sub" / "o.sqlite")


def json_event(alert_id: str, pad: int = 400) -> Message:
    body = json.dumps({"alert_id": alert_id, "type": "new", "pad": "x" * pad}).encode()
    return Message("event", "p/b/events", body, None, len(body))


def test_rows_of_a_corrupt_outbox_are_salvaged_and_sent_again(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A damaged page in the middle of the table: the rows on it are lost, every other pending row is
    copied into the new outbox (same alert id, seq, payload, order) and counted in one log line."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    for i in range(300):
        box.add(f"a{i:03d}", 2, "new", [json_event(f"a{i:03d}")])
    box.delete(range(1, 51))  # the first 50 were acknowledged already
    before = {r.alert_id: r for r in box.pending(1000)}
    box.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    hit = data.index(b'"alert_id": "a150"') // page  # the leaf page holding alert a150
    data[hit * page:(hit + 1) * page] = b"\xff" * page
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="minewatch"):
        box = Outbox(path)
    after = box.pending(1000)
    lost = set(before) - {r.alert_id for r in after}
    assert "a150" in lost and len(lost) <= 10, sorted(lost)  # one page of rows, no more
    assert [r.alert_id for r in after] == sorted(r.alert_id for r in after)  # in their order
    for row in after:
        old = before[row.alert_id]
        assert (row.seq, row.kind, row.type, row.topic, row.payload) == (old.seq, old.kind, old.type, old.topic,
                                                                         old.payload)
        assert box.last_seq(row.alert_id) == 2  # a restart continues the sequence
    assert box.stats()["salvaged"] == len(after) and box.salvaged == len(after)
    lines = [r.getMessage() for r in caplog.records if "salvaged" in r.getMessage() and "outbox:" in r.getMessage()]
    assert len(lines) == 1 and f"salvaged {len(after)} message(s) of {len(after)} alert(s)" in lines[0], lines
    assert "lost" in lines[0]
    box.close()

"""Snapshot retention: quota and age, oldest first, never a snapshot an unsent alert still needs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline.alerts.outbox import Message, Outbox
from pipeline.alerts.retention import SnapshotRetention, prune_snapshots

NOW = time.time()
DAY = 86400.0


def make_files(root: Path, ages_days: list[float], size: int = 1000) -> list[Path]:
    paths = []
    for i, age in enumerate(ages_days):
        path = root / f"2026010{i % 3}" / f"a{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"j" * size)
        os.utime(path, (NOW - age * DAY, NOW - age * DAY))
        paths.append(path)
    return paths


# ages of the files (days), quota in files of 1000 B, max age days, indices referenced, indices expected to remain
CASES = [
    pytest.param([5, 4, 3, 2, 1], 3, 30, set(), {2, 3, 4}, id="quota-oldest-first"),
    pytest.param([5, 4, 3, 2, 1], 10, 3.5, set(), {2, 3, 4}, id="age"),
    pytest.param([5, 4, 3, 2, 1], 3, 30, {0}, {0, 3, 4}, id="quota-skips-unsent"),
    pytest.param([50, 40, 1], 10, 30, {0, 1}, {0, 1, 2}, id="age-skips-unsent"),
    pytest.param([5, 4, 3], 0, 30, set(), set(), id="zero-quota-empties"),
]


@pytest.mark.parametrize(("ages", "quota_files", "max_age_days", "refs", "remain"), CASES)
def test_prune(tmp_path: Path, ages: list[float], quota_files: int, max_age_days: float, refs: set[int],
               remain: set[int]) -> None:
    files = make_files(tmp_path, ages)
    result = prune_snapshots(tmp_path, quota_files * 1000, max_age_days * DAY, {str(files[i]) for i in refs}, NOW)
    assert {i for i, p in enumerate(files) if p.exists()} == remain
    assert result.removed_files == len(files) - len(remain)
    assert result.removed_bytes == 1000 * result.removed_files


def test_empty_day_folders_go(tmp_path: Path) -> None:
    make_files(tmp_path, [40, 40, 40])
    prune_snapshots(tmp_path, 10**9, 30 * DAY, set(), NOW)
    assert list(tmp_path.iterdir()) == []


def test_retention_asks_the_outbox_what_is_unsent(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    files = make_files(snaps, [40, 39])
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.add("a0", 1, "new", [Message("snapshot", "t", None, str(files[0]), 1000),
                                Message("event", "e", b"{}", str(files[0]), 2)])
    clock = iter([0.0, 5.0, 20.0])
    retention = SnapshotRetention(snaps, 1.0, 30.0, 10.0, outbox, clock=lambda: next(clock))
    assert retention.maybe_run() is not None  # first call runs
    assert files[0].exists() and not files[1].exists()
    assert retention.maybe_run() is None  # 5 s later: not yet
    outbox.delete(r.id for r in outbox.pending(10))  # acknowledged: no longer protected
    result = retention.maybe_run()
    assert result is not None and result.removed_files == 1 and not files[0].exists()
    outbox.close()

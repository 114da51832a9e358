"""Snapshot retention: a quota in megabytes and an age in days; oldest first; never an unsent snapshot."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.alerts.outbox import Outbox
from pipeline.logs import get_logger

log = get_logger("alerts.retention")


@dataclass(slots=True)
class PruneResult:
    removed_files: int = 0
    removed_bytes: int = 0
    kept_files: int = 0
    kept_bytes: int = 0
    protected_files: int = 0  # would have gone, but an unsent outbox row still needs them


def prune_snapshots(
    snapshot_dir: Path,
    quota_bytes: int,
    max_age_s: float,
    referenced: set[str],
    now_s: float | None = None,
) -> PruneResult:
    """Delete ``*.jpg`` under ``snapshot_dir``: first those older than ``max_age_s``, then the oldest until the
    rest fits in ``quota_bytes``. Files in ``referenced`` (resolved paths) are never deleted; empty day folders go.
    """
    now = time.time() if now_s is None else now_s
    result = PruneResult()
    files: list[tuple[float, int, Path]] = []
    for path in snapshot_dir.rglob("*.jpg"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort()  # oldest first
    total = sum(size for _, size, _ in files)
    refs = {os.path.realpath(r) for r in referenced}
    for mtime, size, path in files:
        too_old = now - mtime > max_age_s
        if not too_old and total <= quota_bytes:
            result.kept_files += 1
            result.kept_bytes += size
            continue
        if os.path.realpath(path) in refs:
            result.protected_files += 1
            result.kept_files += 1
            result.kept_bytes += size
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        total -= size
        result.removed_files += 1
        result.removed_bytes += size
    for folder in sorted((p for p in snapshot_dir.glob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
    return result


class SnapshotRetention:
    """Runs :func:`prune_snapshots` at most every ``interval_s`` (called from the alert sink)."""

    def __init__(self, snapshot_dir: Path, quota_mb: float, max_age_days: float, interval_s: float,
                 outbox: Outbox | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.snapshot_dir = snapshot_dir
        self.quota_bytes = int(quota_mb * 2**20)
        self.max_age_s = max_age_days * 86400.0
        self.interval_s = interval_s
        self.outbox = outbox
        self.clock = clock
        self._last = -float("inf")
        self.last_result: PruneResult | None = None

    def maybe_run(self) -> PruneResult | None:
        now = self.clock()
        if now - self._last < self.interval_s:
            return None
        return self.run(now)

    def run(self, now: float | None = None) -> PruneResult:
        self._last = self.clock() if now is None else now
        referenced = self.outbox.referenced_files() if self.outbox is not None else set()
        if not self.snapshot_dir.is_dir():
            self.last_result = PruneResult()
            return self.last_result
        result = prune_snapshots(self.snapshot_dir, self.quota_bytes, self.max_age_s, referenced)
        self.last_result = result
        if result.removed_files or result.protected_files:
            log.info("snapshots: removed %d (%.1f MB), kept %d (%.1f MB), %d kept only because still unsent",
                     result.removed_files, result.removed_bytes / 2**20, result.kept_files,
                     result.kept_bytes / 2**20, result.protected_files)
        return result

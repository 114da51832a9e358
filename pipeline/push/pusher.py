"""Routing, delivery with backoff, and escalation of unacknowledged cases.

``submit(notice)`` opens the case on every route that matches its township, zone kind and priority and
queues level 0 of each; ``ack(case_id)`` stops its escalation; ``step(now)`` escalates what waited too long
and delivers what is due. ``run(stop)`` calls ``step`` in a thread. Retry delays double from
``retry_min_s`` up to ``retry_max_s`` (±20 %, fixed per push), forever: a push is never given up; ``minewatch
push status`` shows what waits and why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pipeline.logs import get_logger
from pipeline.push.config import PushConfig, RouteConfig, TargetConfig, resolve_secret, resolve_url
from pipeline.push.formats import CaseNotice, delivered, render, sign
from pipeline.push.outbox import PushOutbox, PushRow

log = get_logger("push")


def push_id(case_id: str, event: str, level: int, target_id: str) -> str:
    return "p-" + hashlib.sha256(f"{case_id}|{event}|{level}|{target_id}".encode()).hexdigest()[:20]


def _matches(route: RouteConfig, n: CaseNotice) -> bool:
    return ((not route.townships or (n.township or "") in route.townships)
            and (not route.zone_kinds or (n.zone_kind or "") in route.zone_kinds)
            and n.priority >= route.min_priority)


class Pusher:
    def __init__(self, cfg: PushConfig, base: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.targets: dict[str, tuple[TargetConfig, str, str | None]] = {
            t.id: (t, resolve_url(t, base), resolve_secret(t, base)) for t in cfg.targets}
        self.outbox = PushOutbox(cfg.outbox_path)
        self._wake = threading.Event()

    def close(self) -> None:
        self.outbox.close()

    # -- queueing -------------------------------------------------------------------------------------------
    def _enqueue_level(self, n: CaseNotice, route: RouteConfig, now: float) -> int:
        added = 0
        for tid in route.levels[n.level].targets:
            target = self.targets[tid][0]
            pid = push_id(n.case_id, n.event, n.level, tid)
            body = render(target.format, n, pid, self.cfg.map_link, mention=target.mention_responsible)
            added += self.outbox.enqueue(pid, tid, n.case_id, n.event, n.level, body, now)
        return added

    def submit(self, notice: CaseNotice, now: float | None = None) -> int:
        """Queue a new case for every matching route (level 0); returns how many pushes were queued."""
        now = self.clock() if now is None else now
        n = dataclasses.replace(notice, event="new", level=0)
        added = 0
        for i, route in enumerate(self.cfg.routes):
            if _matches(route, n):
                self.outbox.open_case(n.case_id, i, n.to_json(), now)
                added += self._enqueue_level(n, route, now)
        if not added:
            log.debug("case %s: no new push (no route matches, or pushed before)", n.case_id)
        self._wake.set()
        return added

    def update(self, notice: CaseNotice, tag: str, now: float | None = None) -> int:
        """Tell level 0 of every matching route about a change of the case (``tag`` makes it unique, e.g.
        ``priority-100``); the escalation carries the new notice from then on."""
        now = self.clock() if now is None else now
        n = dataclasses.replace(notice, event="update", level=0)
        added = 0
        for i, route in enumerate(self.cfg.routes):
            if _matches(route, n):
                self.outbox.open_case(n.case_id, i, notice.to_json(), now)
                self.outbox.set_notice(n.case_id, i, dataclasses.replace(notice, event="new", level=0).to_json())
                for tid in route.levels[0].targets:
                    target = self.targets[tid][0]
                    pid = push_id(n.case_id, f"update:{tag}", 0, tid)
                    body = render(target.format, n, pid, self.cfg.map_link, mention=target.mention_responsible)
                    added += self.outbox.enqueue(pid, tid, n.case_id, "update", 0, body, now)
        self._wake.set()
        return added

    def ack(self, case_id: str, by: str, now: float | None = None) -> bool:
        """The case was taken by someone: no more escalation."""
        return self.outbox.ack(case_id, by, self.clock() if now is None else now)

    def escalate(self, now: float) -> int:
        added = 0
        for row in self.outbox.unacked():
            if row.route >= len(self.cfg.routes):
                continue
            route = self.cfg.routes[row.route]
            nxt = row.level + 1
            if nxt >= len(route.levels) or now < row.level_s + route.levels[nxt].after_minutes * 60:
                continue
            notice = CaseNotice(**{**row.notice, "event": "escalation", "level": nxt})
            added += self._enqueue_level(notice, route, now)
            self.outbox.set_level(row.case_id, row.route, nxt, now)
            log.warning("case %s not acknowledged: escalated to level %d (%s)", row.case_id, nxt,
                        ", ".join(route.levels[nxt].targets))
        return added

    # -- delivery -------------------------------------------------------------------------------------------
    def _post(self, row: PushRow, now: float) -> tuple[bool, str]:
        target, url, secret = self.targets[row.target_id]
        signed_url, body = sign(target.format, url, row.body, secret, now)
        req = urllib.request.Request(signed_url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Idempotency-Key": row.push_id,
            "User-Agent": "minewatch-push"})
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                return delivered(target.format, resp.status, resp.read(65536))
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            return False, f"{type(reason).__name__}: {reason}"[:200]

    def _backoff(self, row: PushRow) -> float:
        base = min(self.cfg.retry_max_s, self.cfg.retry_min_s * 2 ** min(row.attempts, 30))
        jitter = 0.8 + 0.4 * (int(hashlib.sha256(row.push_id.encode()).hexdigest()[:4], 16) / 0xFFFF)
        return min(self.cfg.retry_max_s, base * jitter)

    def deliver(self, now: float) -> tuple[int, int]:
        sent = failed = 0
        for row in self.outbox.due(now):
            ok, why = self._post(row, now)
            if ok:
                self.outbox.mark_sent(row, self.clock())
                sent += 1
                log.info("push %s (case %s, %s level %d) delivered to %s", row.push_id, row.case_id, row.event,
                         row.level, row.target_id)
            else:
                delay = self._backoff(row)
                self.outbox.mark_failed(row, now + delay, why)
                failed += 1
                log.warning("push %s to %s failed (%s): retry in %.0f s (attempt %d)", row.push_id, row.target_id,
                            why, delay, row.attempts + 1)
        return sent, failed

    def step(self, now: float | None = None) -> tuple[int, int]:
        now = self.clock() if now is None else now
        self.escalate(now)
        return self.deliver(now)

    def run(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        last_prune = 0.0
        while not stop.is_set():
            try:
                self.step()
                now = self.clock()
                if now - last_prune > 3600:
                    self.outbox.prune_sent(now - self.cfg.sent_keep_days * 86400)
                    last_prune = now
            except Exception:  # keep pushing whatever one step met; the outbox keeps the rows
                log.exception("push step failed")
            self._wake.wait(poll_s)
            self._wake.clear()

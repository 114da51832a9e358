"""Fused cases → ``minewatch push``: every open case is pushed once to the routes that match its township,
zone kind and priority; a case that reaches priority 100 (power anomaly and machinery at a closed mine) is
pushed again as an update; an operator's acknowledgement (``POST /api/cases/<id>/ack``) stops escalation.

The pusher's outbox makes this idempotent (stable push ids, a ledger of delivered ids), so the bridge can
simply look at every open case each ``fusion.push_poll_s``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pipeline.console.clues import ClueRegister
from pipeline.console.db import Database
from pipeline.logs import get_logger
from pipeline.push.formats import CaseNotice
from pipeline.push.pusher import Pusher

log = get_logger("console.casepush")


def notice_for(case: dict[str, Any], db: Database, console_url: str | None,
               zones: dict[str, dict[str, Any]] | None = None) -> CaseNotice:
    """What a push says about a fused case (with its clues in ``case["clue_list"]``)."""
    clues = case.get("clue_list", [])
    base = (console_url or "").rstrip("/")
    responsible: dict[str, Any] = {}
    snapshot = None
    zone_name = None
    for c in clues:
        if c["kind"] == "camera":
            alert_id = c["detail"].get("alert_id")
            zone_name = zone_name or c["detail"].get("zone_name")
            with db.tx(write=False) as cur:
                row = cur.one("SELECT payload FROM alerts WHERE alert_id = ?", (alert_id,))
            payload = json.loads(row["payload"]) if row else {}
            responsible = responsible or ((payload.get("zone") or {}).get("responsible") or {})
            if snapshot is None and base:
                snapshot = f"{base}/snapshots/{alert_id}.jpg"
    zone = (zones or {}).get(case.get("zone_id") or "", {})
    zone_name = zone_name or zone.get("name")
    responsible = responsible or (zone.get("responsible") or {})
    kinds = {c["kind"] for c in clues}
    title = {frozenset({"camera", "power"}): "用电异常与机械同现", frozenset({"power"}): "用电异常",
             frozenset({"tipoff"}): "群众举报"}.get(frozenset(kinds), "发现疑似非法开采")
    if case["priority"] >= 100:
        title = "关闭矿区：用电异常 + 机械作业"
    return CaseNotice(
        case_id=case["case_id"], event="new", level=0, title=title, t=case["t_first"], priority=int(case["priority"]),
        township=case.get("township"), zone_id=case.get("zone_id"), zone_name=zone_name,
        zone_kind=case.get("zone_kind"), responsible_name=responsible.get("name"),
        responsible_phone=responsible.get("phone"), lat=case.get("lat"), lon=case.get("lon"),
        snapshot_url=snapshot, case_url=f"{base}/#case={case['case_id']}" if base else None,
        clues=[c["label"] for c in clues])


class CasePushBridge:
    def __init__(self, register: ClueRegister, pusher: Pusher, console_url: str | None,
                 zones: dict[str, dict[str, Any]] | None = None) -> None:
        self.register, self.pusher, self.console_url, self.zones = register, pusher, console_url, zones

    def step(self, now: float | None = None) -> int:
        """Queue what is new, stop escalating what was taken, deliver; returns pushes queued."""
        self.register.sync_alerts()
        queued = 0
        for summary in self.register.cases("open"):
            if summary.get("acked_by"):
                self.pusher.ack(summary["case_id"], summary["acked_by"], now)
                continue
            case = self.register.case(summary["case_id"])
            if case is None:
                continue
            notice = notice_for(case, self.register.db, self.console_url, self.zones)
            before = self.pusher.outbox.case_notice(notice.case_id)
            if before is None:
                queued += self.pusher.submit(notice, now)
            elif int(before.get("priority", 0)) < 100 <= notice.priority:
                queued += self.pusher.update(notice, "priority-100", now)
        self.pusher.step(now)
        return queued

    def run(self, stop: threading.Event, poll_s: float) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # the register or an endpoint failed this round: try again next round
                log.exception("case push round failed")
            stop.wait(poll_s)

"""The case register as CSV, and the rows of the public notice (公示), with personal data shown, masked or hidden."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.console.cases import STEP_LABELS_ZH, STEPS
from pipeline.console.labels import CLASS_LABELS_ZH, RULE_LABELS_ZH, zh
from pipeline.console.store import AlertListRow, Store

CSV_HEAD = [
    "alert_id",
    "box_id",
    "camera_id",
    "class",
    "rule",
    "score",
    "township",
    "zone_kind",
    "zone_id",
    "zone_name",
    "responsible_name",
    "responsible_phone",
    "lat",
    "lon",
    "t_first_utc",
    "t_last_utc",
    "event",
    "case_status",
    "case_step",
]
#: times in the CSV are UTC, ISO 8601 with "Z"; the column names say so (a spreadsheet does not read the Z)
STEP_COLS = ["t_done_utc", "actor", "note", "author", "t_recorded_utc"]


def mask_name(name: str) -> str:
    """张三丰 → 张**; Li Wei → L*****."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678; short numbers lose all their digits."""
    digits = phone.strip()
    if len(digits) >= 8:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * len(digits)


def personal(value: str | None, mode: str, phone: bool = False) -> str:
    if not value:
        return ""
    if mode == "hide":
        return ""
    if mode == "mask":
        return mask_phone(value) if phone else mask_name(value)
    return value


def _responsible(alert: AlertListRow) -> tuple[str, str]:
    zone = alert["payload"].get("zone") or {}
    resp = zone.get("responsible") or {}
    return str(resp.get("name") or ""), str(resp.get("phone") or "")


def defuse(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe;
    numbers stay numbers. Zone names, notes and actors are typed by people: this keeps ``=HYPERLINK(…)`` inert."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def cases_csv(store: Store, mode: str) -> str:
    """One row per case; for each step its time, actor, note, author and recording time. UTF-8 with BOM."""
    logs = store.cases.logs()
    head = CSV_HEAD + [f"{s}_{c}" for s in STEPS for c in STEP_COLS] + ["dismissed_or_reopened"]
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(head)
    for a in sorted(store.list_alerts(limit=10**9), key=lambda r: (r["t_first"], r["alert_id"])):
        name, phone = _responsible(a)
        row: list[Any] = [
            a["alert_id"],
            a["box_id"],
            a["camera_id"],
            a["class"],
            a["rule"],
            a["score"],
            a["township"] or "",
            a["zone_kind"] or "",
            a["zone_id"] or "",
            a["zone_name"] or "",
            personal(name, mode),
            personal(phone, mode, phone=True),
            a["lat"],
            a["lon"],
            a["t_first"],
            a["t_last"],
            a["event_type"],
            a["case_status"],
            a["case_step"],
        ]
        entries = logs.get(a["alert_id"], [])
        latest = {e["action"]: e for e in entries if e["action"] in STEPS}  # after a reopen: the latest of each
        for step in STEPS:
            e = latest.get(step)
            if e is None:
                row += [""] * len(STEP_COLS)
            else:
                actor = e["actor"] if step == "discovered" else personal(e["actor"], mode)
                row += [e["t_done"], actor, e["note"], e["author"], e["t_recorded"]]
        other = [
            f"{e['action']} {e['t_recorded']} by {e['author']}: {e['note']}"
            for e in entries
            if e["action"] in ("dismissed", "reopened")
        ]
        row.append(" | ".join(other))
        writer.writerow([defuse(v) for v in row])
    return buf.getvalue()


def local_time(iso_z: str, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``2026-11-29T01:04:00.000Z`` → ``2026-11-29 09:04`` in Asia/Shanghai; unparsable text is returned as is."""
    try:
        t = datetime.fromisoformat(iso_z.replace("Z", "+00:00"))
    except ValueError:
        return iso_z
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(ZoneInfo(tz)).strftime(fmt)


def notice_rows(store: Store, mode: str, include_open: bool = True, tz: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    """Cases for the public notice: every case an operator has reviewed (a step after 发现 discovered) and not
    dismissed; closed ones only with include_open=False. A detection nobody has looked at is not published."""
    logs = store.cases.logs()
    rows = []
    for a in sorted(store.list_alerts(limit=10**9), key=lambda r: (r["t_first"], r["alert_id"])):
        if a["case_status"] == "dismissed" or (not include_open and a["case_status"] != "closed"):
            continue
        if a["case_step"] == "discovered":  # not reviewed yet
            continue
        name, phone = _responsible(a)
        latest = {e["action"]: e for e in logs.get(a["alert_id"], []) if e["action"] in STEPS}
        rows.append(
            {
                "alert_id": a["alert_id"],
                "t_first": local_time(a["t_first"], tz),
                "township": a["township"] or "",
                "zone_name": a["zone_name"] or "",
                "class": a["class"],
                "rule": a["rule"],
                "class_zh": zh(CLASS_LABELS_ZH, a["class"]),
                "rule_zh": zh(RULE_LABELS_ZH, a["rule"]),
                "lat": a["lat"],
                "lon": a["lon"],
                "case_status": a["case_status"],
                "case_step": a["case_step"],
                "step_zh": STEP_LABELS_ZH.get(a["case_step"], a["case_step"]),
                "steps": [
                    (STEP_LABELS_ZH[s], local_time(latest[s]["t_done"], tz, "%Y-%m-%d"), latest[s]["note"])
                    for s in STEPS
                    if s in latest
                ],
                "responsible": " ".join(x for x in (personal(name, mode), personal(phone, mode, phone=True)) if x),
            }
        )
    return rows

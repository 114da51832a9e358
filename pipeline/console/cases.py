"""The case workflow: the county's enforcement steps on an alert, each a row of ``case_log`` with its author.

Case steps, in order: 发现 discovered → 制止 stopped → 报告 reported → 移送 transferred → 查处 investigated →
整改 rectified. ``discovered`` is recorded when the alert arrives (by the register); an operator records each
further step in order; ``rectified`` closes the case. A case can also be dismissed (false alarm) and
reopened, each with its author and reason. Every change is also a row of ``changes`` (the live page's feed).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypedDict

from pipeline.console.db import Cursor, Database, now_iso

STEPS: tuple[str, ...] = ("discovered", "stopped", "reported", "transferred", "investigated", "rectified")
STEP_LABELS_ZH: dict[str, str] = {
    "discovered": "发现",
    "stopped": "制止",
    "reported": "报告",
    "transferred": "移送",
    "investigated": "查处",
    "rectified": "整改",
}
STATUSES: tuple[str, ...] = ("open", "closed", "dismissed")
#: a step's time may be this much before the alert was first seen or received (clocks of box and console differ)
STEP_BEFORE_ALERT_S = 3600.0
#: and this much after the console's now (the operator's clock)
STEP_AFTER_NOW_S = 600.0


class CaseError(Exception):
    """A case change that does not fit the case's state (wrong next step, closed case, unknown alert).

    ``conflict`` is True when the case moved on meanwhile (another operator was first)."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


class CaseLogEntry(TypedDict):
    """One row of ``case_log``: a step, a dismissal, a reopening or a note."""

    id: int
    alert_id: str
    action: str  # a step of STEPS, "dismissed", "reopened" or "note"
    actor: str  # who did it on site (steps); the camera for "discovered"
    note: str
    t_done: str  # when it was done (ISO 8601 UTC)
    author: str  # the operator who recorded it ("minewatch" for "discovered")
    t_recorded: str


def next_step(step: str) -> str | None:
    """The step after ``step`` (None after ``rectified``)."""
    i = STEPS.index(step) if step in STEPS else -1
    return STEPS[i + 1] if 0 <= i < len(STEPS) - 1 else None


def log_action(
    cur: Cursor, alert_id: str, action: str, actor: str, note: str, t_done: str, author: str, now: str
) -> None:
    """Append a case_log row (actor and note bounded) and announce the change, inside ``cur``'s transaction."""
    cur.execute(
        "INSERT INTO case_log (alert_id, action, actor, note, t_done, author, t_recorded) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (alert_id, action, actor[:200], note[:4000], t_done, author, now),
    )
    cur.execute("INSERT INTO changes (alert_id, kind, t) VALUES (?, 'case', ?)", (alert_id, now))


def _parse_z(t: str) -> datetime:
    d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _check_step_time(t_done: str, alert_t: str) -> None:
    """A step is done after its alert was seen and not in the future (1970 or 2099 are typing mistakes)."""
    try:
        done = _parse_z(t_done)
    except ValueError:
        raise CaseError(f"t_done: expected an ISO 8601 time, found {t_done[:40]!r}") from None
    earliest = _parse_z(alert_t) - timedelta(seconds=STEP_BEFORE_ALERT_S)
    latest = datetime.now(UTC) + timedelta(seconds=STEP_AFTER_NOW_S)
    if not earliest <= done <= latest:
        raise CaseError(
            f"t_done: expected a time between the alert ({earliest:%Y-%m-%d %H:%M} UTC) and now, found {t_done[:40]}"
        )


class CaseWorkflow:
    """Operators' changes to cases. Thread-safe: each call is one transaction on its own pooled connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_step(
        self, alert_id: str, step: str, author: str, actor: str = "", note: str = "", t_done: str | None = None
    ) -> None:
        """Record the next enforcement step of an open case. Steps go in order; ``rectified`` closes it."""
        if step not in STEPS or step == "discovered":
            raise CaseError(f"unknown step {step!r}: expected one of {', '.join(STEPS[1:])}")
        previous = STEPS[STEPS.index(step) - 1]
        now = now_iso()
        with self.db.tx() as cur:
            row = cur.one(
                "SELECT case_step, case_status, t_first, received_at FROM alerts WHERE alert_id = ?", (alert_id,)
            )
            if row is None:
                raise CaseError(f"no alert {alert_id!r}")
            if row["case_status"] == "open" and row["case_step"] == previous:  # else: the conflict below
                if not actor.strip():
                    raise CaseError(f"actor: expected who did {step} (a name), found nothing")
                if t_done is not None:
                    _check_step_time(t_done, min(str(row["t_first"]), str(row["received_at"])))
            status = "closed" if step == "rectified" else "open"
            n = cur.execute(
                "UPDATE alerts SET case_step = ?, case_status = ?, updated_at = ?"
                " WHERE alert_id = ? AND case_step = ? AND case_status = 'open'",
                (step, status, now, alert_id, previous),
            )
            if n == 0:
                if row["case_status"] != "open":
                    raise CaseError(f"case {alert_id} is {row['case_status']}: reopen it first", conflict=True)
                raise CaseError(
                    f"case {alert_id} is at {row['case_step']}; the next step is "
                    f"{next_step(row['case_step']) or 'none'}, not {step}",
                    conflict=True,
                )
            log_action(cur, alert_id, step, actor, note, t_done or now, author, now)

    def dismiss(self, alert_id: str, author: str, note: str) -> None:
        """Close an open case as a false alarm (the reason is required)."""
        self._set_status(alert_id, "dismissed", ("open",), author, note, "dismissed")

    def reopen(self, alert_id: str, author: str, note: str) -> None:
        """Open a dismissed or closed case again (reason required). A closed case goes back before 整改
        rectified (the site was not put right), so that rectification is recorded again; the log keeps both."""
        self._set_status(alert_id, "open", ("closed", "dismissed"), author, note, "reopened")

    def _set_status(
        self, alert_id: str, status: str, from_statuses: tuple[str, ...], author: str, note: str, action: str
    ) -> None:
        if not note.strip():
            raise CaseError(f"{action}: a reason is required")
        now = now_iso()
        marks = ", ".join("?" for _ in from_statuses)
        with self.db.tx() as cur:
            row = cur.one("SELECT case_status FROM alerts WHERE alert_id = ?", (alert_id,))
            if row is None:
                raise CaseError(f"no alert {alert_id!r}")
            n = cur.execute(
                "UPDATE alerts SET case_status = ?, updated_at = ?,"
                " case_step = CASE WHEN case_step = 'rectified' THEN 'investigated' ELSE case_step END"
                f" WHERE alert_id = ? AND case_status IN ({marks})",
                (status, now, alert_id, *from_statuses),
            )
            if n == 0:
                raise CaseError(f"case {alert_id} is {row['case_status']}: cannot be {action}", conflict=True)
            log_action(cur, alert_id, action, "", note, now, author, now)

    def add_note(self, alert_id: str, author: str, note: str) -> None:
        if not note.strip():
            raise CaseError("note: text is required")
        now = now_iso()
        with self.db.tx() as cur:
            if cur.one("SELECT alert_id FROM alerts WHERE alert_id = ?", (alert_id,)) is None:
                raise CaseError(f"no alert {alert_id!r}")
            cur.execute("UPDATE alerts SET updated_at = ? WHERE alert_id = ?", (now, alert_id))
            log_action(cur, alert_id, "note", "", note, now, author, now)

    def log(self, alert_id: str) -> list[CaseLogEntry]:
        """One case's log, oldest first."""
        with self.db.tx(write=False) as cur:
            return cur.rows(CaseLogEntry, "SELECT * FROM case_log WHERE alert_id = ? ORDER BY id", (alert_id,))

    def logs(self) -> dict[str, list[CaseLogEntry]]:
        """Every case's log, by alert_id, oldest first."""
        with self.db.tx(write=False) as cur:
            rows = cur.rows(CaseLogEntry, "SELECT * FROM case_log ORDER BY alert_id, id")
        out: dict[str, list[CaseLogEntry]] = {}
        for r in rows:
            out.setdefault(r["alert_id"], []).append(r)
        return out

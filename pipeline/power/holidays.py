"""Chinese public holidays (国务院办公厅 notices) and the make-up working days (调休) that go with them.

A holiday is compared against the meter's Sunday profile; a make-up working day against its Wednesday
profile (any ordinary working day would do). Years outside the built-in table need ``--holidays FILE``
(CSV ``date,kind`` with kind ``holiday`` or ``workday``); ``power check`` says so when the readings reach
such a year.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from pipeline.errors import UserError


def _span(first: str, last: str) -> list[str]:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


#: date → "holiday" | "workday" (调休 make-up working day)
_TABLE: dict[str, str] = {}
_HOLIDAYS = [
    # 2024
    ("2024-01-01", "2024-01-01"), ("2024-02-10", "2024-02-17"), ("2024-04-04", "2024-04-06"),
    ("2024-05-01", "2024-05-05"), ("2024-06-08", "2024-06-10"), ("2024-09-15", "2024-09-17"),
    ("2024-10-01", "2024-10-07"),
    # 2025
    ("2025-01-01", "2025-01-01"), ("2025-01-28", "2025-02-04"), ("2025-04-04", "2025-04-06"),
    ("2025-05-01", "2025-05-05"), ("2025-05-31", "2025-06-02"), ("2025-10-01", "2025-10-08"),
    # 2026
    ("2026-01-01", "2026-01-03"), ("2026-02-15", "2026-02-23"), ("2026-04-04", "2026-04-06"),
    ("2026-05-01", "2026-05-05"), ("2026-06-19", "2026-06-21"), ("2026-09-25", "2026-09-27"),
    ("2026-10-01", "2026-10-07"),
]
_WORKDAYS = [
    "2024-02-04", "2024-02-18", "2024-04-07", "2024-04-28", "2024-05-11", "2024-09-14", "2024-09-29", "2024-10-12",
    "2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11",
    "2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10",
]
for _a, _b in _HOLIDAYS:
    for _d in _span(_a, _b):
        _TABLE[_d] = "holiday"
for _d in _WORKDAYS:
    _TABLE[_d] = "workday"
#: years the built-in table covers
BUILTIN_YEARS = frozenset({2024, 2025, 2026})


class Calendar:
    """Day types: ``holiday``, ``workday`` (make-up working day) or ``None`` (an ordinary day)."""

    def __init__(self, extra: dict[str, str] | None = None) -> None:
        self.table = dict(_TABLE)
        self.table.update(extra or {})
        self.years = set(BUILTIN_YEARS) | {int(d[:4]) for d in (extra or {})}

    def day_type(self, day: dt.date) -> str | None:
        return self.table.get(day.isoformat())

    def effective_weekday(self, day: dt.date) -> int:
        """Monday=0 … Sunday=6; a holiday counts as a Sunday, a make-up working day as a Wednesday."""
        kind = self.table.get(day.isoformat())
        if kind == "holiday":
            return 6
        if kind == "workday":
            return 2
        return day.weekday()

    def is_holiday(self, day: dt.date) -> bool:
        return self.table.get(day.isoformat()) == "holiday"


def load_holidays(path: Path) -> dict[str, str]:
    """``date,kind`` rows (kind ``holiday`` or ``workday``); a bad row is a one-line error (exit 2)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(str(path), None, "a readable CSV file", exc) from None
    out: dict[str, str] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or (n == 1 and row[0].strip().lower() == "date"):
            continue
        if len(row) != 2 or row[1].strip() not in ("holiday", "workday"):
            raise UserError(f"{path}:{n}", "kind", "date,holiday or date,workday", ",".join(row))
        try:
            day = dt.date.fromisoformat(row[0].strip())
        except ValueError:
            raise UserError(f"{path}:{n}", "date", "a date YYYY-MM-DD", row[0]) from None
        out[day.isoformat()] = row[1].strip()
    return out

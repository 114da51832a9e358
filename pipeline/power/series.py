"""Interval readings → one hourly series per meter (UTC hours, NaN where nothing usable was read).

- **Duplicates** (same meter, same instant; a clock set back, an export run twice): identical ones are
  dropped; different ones keep the row that comes last in the file and are counted as conflicts.
- **Clock changes**: every time carries its offset and is turned into UTC first, so a daylight-saving or
  offset change neither doubles nor drops an hour; hour-of-week is then taken in the profile's time zone.
- **Interval**: the most common step between a meter's readings (15 min, 30 min or 1 h); a reading's time
  is the **start** of its interval. An hour with fewer than half of its intervals is missing; one with at
  least half is scaled up to the full hour (a gap costs precision, not a false drop).
- **Meter resets**: a meter whose values almost never fall is taken as a register (cumulative kWh) and is
  differenced; a fall (a reset or roll-over) makes that interval unknown and is counted. An hour above
  ``MAX_KWH_PER_HOUR`` (100 MWh) is an export error and is dropped (counted as implausible).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from pipeline.power.io import MAX_KWH_PER_HOUR, Reading

#: share of non-decreasing steps above which a series is taken as a cumulative register
CUMULATIVE_SHARE = 0.95


@dataclass
class HourlySeries:
    meter_id: str
    start_h: int  # first hour, in hours since the epoch (UTC)
    kwh: np.ndarray  # float64 per hour, NaN = missing
    interval_s: int
    cumulative: bool = False
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def end_h(self) -> int:
        return self.start_h + len(self.kwh)


def _interval(ts: np.ndarray) -> int:
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if steps.size == 0:
        return 3600
    common = Counter(steps.tolist()).most_common(1)[0][0]
    for candidate in (900, 1800, 3600):
        if abs(common - candidate) <= 60:
            return candidate
    return int(min(max(common, 60), 3600))


def to_hourly(readings: Iterable[Reading]) -> tuple[dict[str, HourlySeries], Counter[str]]:
    """Hourly series per meter, and counters: duplicates, conflicting duplicates, resets, partial hours."""
    by_meter: dict[str, dict[int, float]] = defaultdict(dict)
    counts: Counter[str] = Counter()
    for r in readings:  # file order: a later duplicate wins
        seen = by_meter[r.meter_id]
        if r.t_utc_s in seen:
            counts["duplicates"] += 1
            if seen[r.t_utc_s] != r.kwh:
                counts["conflicting_duplicates"] += 1
        seen[r.t_utc_s] = r.kwh
    out: dict[str, HourlySeries] = {}
    for meter_id, values in by_meter.items():
        ts = np.array(sorted(values), dtype=np.int64)
        kwh = np.array([values[t] for t in ts.tolist()], dtype=np.float64)
        step = _interval(ts)
        stats: dict[str, int] = {}
        cumulative = False
        if kwh.size >= 24:
            d = np.diff(kwh)
            cumulative = bool(np.mean(d >= 0) >= CUMULATIVE_SHARE and np.mean(d > 0) > 0.5)
        if cumulative:
            d = np.diff(kwh)
            gaps = np.diff(ts)
            usable = (d >= 0) & (gaps == step)
            stats["resets"] = int(np.sum(d < 0))
            ts, kwh = ts[:-1][usable], d[usable]
        per_hour = 3600 // step if step <= 3600 and 3600 % step == 0 else 1
        hours = ts // 3600
        start_h, end_h = int(hours.min()), int(hours.max()) + 1
        sums = np.zeros(end_h - start_h)
        n = np.zeros(end_h - start_h)
        np.add.at(sums, hours - start_h, kwh)
        np.add.at(n, hours - start_h, 1)
        n_eff = np.minimum(n, per_hour)
        with np.errstate(invalid="ignore", divide="ignore"):
            hourly = np.where(n_eff * 2 >= per_hour, sums / np.maximum(n, 1) * per_hour, np.nan)
        implausible = hourly > MAX_KWH_PER_HOUR
        stats["implausible_hours"] = int(np.sum(implausible))
        hourly[implausible] = np.nan
        stats["partial_hours"] = int(np.sum((n_eff > 0) & (n_eff < per_hour) & (n_eff * 2 >= per_hour)))
        stats["missing_hours"] = int(np.sum(np.isnan(hourly)))
        out[meter_id] = HourlySeries(meter_id, start_h, hourly, step, cumulative, stats)
        counts["resets"] += stats.get("resets", 0)
        counts["missing_hours"] += stats["missing_hours"]
        counts["implausible_hours"] += stats["implausible_hours"]
    return out, counts

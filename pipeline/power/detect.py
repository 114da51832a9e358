"""The four kinds of power anomaly, found on hourly series against a robust week profile.

Baseline (meters other than ``closed_mine``): for every hour, the median of the same hour-of-week over the
last ``baseline_weeks`` weeks (holidays count as Sundays, make-up working days as Wednesdays, so that the
Spring Festival does not look like a factory stopping and a make-up Saturday not like night work), and a
spread ``σ = max(1.4826·MAD of those values, pooled relative noise × median, sigma_floor_frac × meter
scale)``. Hours that look anomalous (``z ≥ baseline_exclude_z``) or belong to a step do not enter the
baseline, so an anomaly does not teach the baseline to accept itself — unless the same hour-of-week was
kept out ``baseline_min_samples`` weeks in a row: then it is the new normal (else a bin could stay stuck).
A season pushes use up faster than a six-week median follows (greenhouse lights in December), so the
median is raised (never lowered) by the median ratio of the last seven days' same hour of the day to its
baseline (at most × 2) where night and holiday use is judged (steps are judged against the plain median,
or the raise would absorb them).
The meter's *scale* is its 95th percentile hourly kWh: every "how much" threshold is a share of it, so one
set of thresholds fits a 5 kW shop and a 2 MW plant.

- ``use_at_closed_site``: a ``closed_mine`` meter draws more than its standby (20th percentile, capped at
  ``closed_standby_max_kwh_h``) plus ``max(closed_min_excess_kwh_h, closed_z·σ_standby)`` for at least
  ``closed_min_hours`` hours.
- ``night_or_holiday_use``: night hours (``night_start_hour``–``night_end_hour``, local) or holiday hours
  with ``z ≥ night_z`` and an excess of at least ``night_min_excess_frac`` of the scale, for at least
  ``night_min_hours`` hours (one missing or quiet hour may interrupt a run).
- ``step_change``: on ``step_confirm_days`` consecutive ordinary days the day's median z is ``≥ step_z``
  and the median excess ``≥ step_min_excess_frac`` of the scale; it starts at the first hour of the rise
  and ends when a day's median z falls under ``step_z/2``, or after ``step_absorb_days`` when the new level
  becomes the baseline.
- ``sudden_return``: after at least ``idle_days`` idle (≤ ``max(idle_kwh_h, idle_frac·scale)``; holiday
  hours do not count, so the Spring Festival stop and the restart after it are not a return; a stop that
  long with holidays still makes the baseline restart), the meter
  draws more for ``return_min_hours`` of the next 24 hours. The baseline restarts from there.

The detection needs ``baseline_min_samples`` weeks of history before it judges night use or steps.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.power.holidays import Calendar
from pipeline.power.io import Meter
from pipeline.power.series import HourlySeries

KINDS = ("use_at_closed_site", "night_or_holiday_use", "step_change", "sudden_return")


class PowerThresholds(BaseModel):
    """Every knob of ``minewatch power check`` (``--thresholds FILE.yaml`` overrides any of them)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field("Asia/Shanghai", description="Time zone of the week profile, the night and the holidays.")
    baseline_weeks: int = Field(
        6, ge=2, le=26,
        description="Weeks of the same hour-of-week behind the median. Too low: one odd week moves the baseline"
        " (false anomalies); too high: a slow legitimate change (season, new shift) takes long to be learnt.")
    baseline_min_samples: int = Field(
        3, ge=2, le=26,
        description="Weeks of history needed before night use and steps are judged. Too low: a noisy first"
        " weeks' baseline gives false anomalies; too high: a new meter is blind for longer.")
    baseline_exclude_z: float = Field(
        3.0, ge=2.0, le=20.0,
        description="Hours with z at or above this never enter the baseline. Too low: normal peaks are thrown"
        " away and the baseline sinks (false anomalies); too high: anomalies teach the baseline to accept them.")
    sigma_floor_frac: float = Field(
        0.02, ge=0.0, le=0.5,
        description="Smallest spread, as a share of the meter's scale. Too low: a very steady meter flags tiny"
        " wobbles; too high: small anomalies on big meters are missed.")
    night_start_hour: int = Field(22, ge=0, le=23, description="First night hour (local).")
    night_end_hour: int = Field(6, ge=0, le=23, description="First hour after the night (local).")
    night_z: float = Field(
        5.0, ge=1.0, le=50.0,
        description="z an hour needs at night or on a holiday. Too low: ordinary night-to-night variation is"
        " reported; too high: modest night work (a pump, lights and a small crusher) is missed.")
    night_min_excess_frac: float = Field(
        0.08, ge=0.0, le=2.0,
        description="Excess an hour needs at night, as a share of the meter's scale. Too low: a very regular"
        " meter reports small noise; too high: loads small next to the meter's day use are missed.")
    night_min_hours: int = Field(
        2, ge=1, le=24,
        description="Hours a night or holiday run needs. Too low: single-hour spikes (a motor start, a meter"
        " glitch) are reported; too high: short night work is missed.")
    step_z: float = Field(
        2.5, ge=1.0, le=50.0,
        description="Median z of a day for it to count towards a step. Too low: busy days and weather give"
        " false steps; too high: a new load small next to the day's use is missed.")
    step_min_excess_frac: float = Field(
        0.05, ge=0.0, le=2.0,
        description="Median excess of a step day, as a share of the scale. Too low: tiny drifts count; too"
        " high: a pump small next to a big plant's use is missed.")
    step_confirm_days: int = Field(
        2, ge=1, le=14,
        description="Consecutive ordinary days a step needs. Too low: one overtime day is a step; too high:"
        " the step is reported days later and short ones are missed.")
    step_absorb_days: int = Field(
        14, ge=2, le=365,
        description="Days after which a step becomes the new normal. Too low: a long illegal load is learnt"
        " as normal quickly (and its later night work with it); too high: a legitimate new line stays"
        " 'anomalous' and hides other anomalies on that meter for longer.")
    idle_kwh_h: float = Field(
        0.5, ge=0.0, le=1e4,
        description="kWh per hour at or below which a meter is idle (with idle_frac). Too low: standby loads"
        " (a guard's lamp) prevent idleness from ever being seen; too high: low-level use counts as idle.")
    idle_frac: float = Field(0.05, ge=0.0, le=1.0, description="Idle level as a share of the meter's scale.")
    idle_days: float = Field(
        7.0, ge=0.5, le=365,
        description="Idle days before use counts as a sudden return. Too low: a long holiday or a maintenance"
        " week followed by the restart is reported; too high: a short stop then illegal reuse is missed.")
    return_min_hours: int = Field(
        2, ge=1, le=24, description="Active hours in the first 24 h a return needs. Too low: single glitches"
        " count; too high: a brief night of reuse is missed.")
    closed_standby_max_kwh_h: float = Field(
        5.0, ge=0.0, le=1e4,
        description="Most standby a closed site may have (kWh per hour). Too low: a guard house's heater is"
        " reported; too high: a closed site that runs all the time is learnt as standby.")
    closed_min_excess_kwh_h: float = Field(
        2.0, ge=0.0, le=1e4,
        description="Least excess over standby at a closed site (kWh per hour). Too low: standby"
        " fluctuations are reported; too high: a small pump is missed.")
    closed_z: float = Field(5.0, ge=1.0, le=50.0, description="z over the standby spread a closed site's hour needs.")
    closed_min_hours: int = Field(
        2, ge=1, le=48, description="Hours a closed-site run needs. Too low: single glitches are reported;"
        " too high: short use is missed.")


@dataclass(frozen=True, slots=True)
class Anomaly:
    meter_id: str
    zone_id: str | None
    start_h: int  # first hour (hours since the epoch, UTC)
    end_h: int  # one past the last hour
    kind: str
    kwh_excess: float
    score: float

    def as_dict(self, tz: ZoneInfo) -> dict[str, object]:
        def iso(h: int) -> str:
            return dt.datetime.fromtimestamp(h * 3600, tz).isoformat()

        return {"meter_id": self.meter_id, "zone_id": self.zone_id, "t_start": iso(self.start_h),
                "t_end": iso(self.end_h), "kind": self.kind, "kwh_excess": round(self.kwh_excess, 1),
                "score": round(self.score, 2)}

    def json(self, tz: ZoneInfo) -> str:
        return json.dumps(self.as_dict(tz), ensure_ascii=False)


class HourCalendar:
    """Local hour, effective weekday, day number, holiday flag per UTC hour, cached."""

    def __init__(self, tz: ZoneInfo, cal: Calendar, th: PowerThresholds) -> None:
        self.tz, self.cal, self.th = tz, cal, th
        self._cache: dict[int, tuple[int, int, int, bool, bool]] = {}
        self.years: set[int] = set()

    def info(self, start_h: int, n: int) -> dict[str, np.ndarray]:
        rows = [self._one(h) for h in range(start_h, start_h + n)]
        arr = np.array(rows, dtype=np.int64).reshape(n, 5)
        return {"key": arr[:, 0], "hour": arr[:, 1], "day": arr[:, 2], "holiday": arr[:, 3].astype(bool),
                "night": arr[:, 4].astype(bool)}

    def _one(self, h: int) -> tuple[int, int, int, bool, bool]:
        got = self._cache.get(h)
        if got is None:
            t = dt.datetime.fromtimestamp(h * 3600, self.tz)
            day = t.date()
            self.years.add(day.year)
            wd = self.cal.effective_weekday(day)
            a, b = self.th.night_start_hour, self.th.night_end_hour
            night = (t.hour >= a or t.hour < b) if a > b else (a <= t.hour < b)
            got = (wd * 24 + t.hour, t.hour, day.toordinal(), self.cal.is_holiday(day), night)
            self._cache[h] = got
        return got


def _runs(mask: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) of runs of True, joined across at most ``max_gap`` False in between."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out: list[tuple[int, int]] = []
    a = prev = int(idx[0])
    for i in idx[1:].tolist():
        if i - prev - 1 > max_gap:
            out.append((a, prev + 1))
            a = i
        prev = i
    out.append((a, prev + 1))
    return out


def _scale(x: np.ndarray) -> float:
    v = x[np.isfinite(x)]
    return float(np.percentile(v, 95)) if v.size else 0.0


def detect_closed(meter: Meter, s: HourlySeries, th: PowerThresholds) -> list[Anomaly]:
    x = s.kwh
    v = x[np.isfinite(x)]
    if v.size == 0:
        return []
    standby = min(float(np.percentile(v, 20)), th.closed_standby_max_kwh_h)
    low = v[v <= max(standby * 2, standby + th.closed_min_excess_kwh_h / 2)]
    sigma = 1.4826 * float(np.median(np.abs(low - np.median(low)))) if low.size >= 24 else 0.0
    thr = standby + max(th.closed_min_excess_kwh_h, th.closed_z * sigma)
    hot = np.nan_to_num(x, nan=-1.0) > thr
    out = []
    for a, b in _runs(hot, 1):
        n_hot = int(hot[a:b].sum())
        if n_hot < th.closed_min_hours:
            continue
        seg = x[a:b]
        excess = float(np.nansum(np.clip(seg - standby, 0, None)))
        z = float(np.nanmedian((seg[hot[a:b]] - standby) / max(sigma, th.closed_min_excess_kwh_h / th.closed_z)))
        out.append(Anomaly(meter.meter_id, meter.zone_id, s.start_h + a, s.start_h + b, "use_at_closed_site",
                           excess, z))
    return out


def detect_profile(meter: Meter, s: HourlySeries, hc: HourCalendar, th: PowerThresholds,
                   debug: dict[str, object] | None = None) -> list[Anomaly]:
    """Night/holiday use, steps and sudden returns on a meter with a working profile."""
    x = s.kwh
    n = len(x)
    if n == 0:
        return []
    info = hc.info(s.start_h, n)
    key, day, holiday, night = info["key"], info["day"], info["holiday"], info["night"]
    scale = _scale(x)
    idle_thr = max(th.idle_kwh_h, th.idle_frac * scale)
    sigma_floor = max(th.sigma_floor_frac * scale, 1e-3)
    med = np.full(n, np.nan)
    sig = np.full(n, np.nan)
    adjs = np.ones(n)
    hist: list[deque[float]] = [deque(maxlen=th.baseline_weeks) for _ in range(168)]
    pool: deque[float] = deque(maxlen=24 * 28)
    # recent level of each hour of the day against its baseline (last 7 days): follows seasons upwards
    hod = info["hour"]
    ratio_hist: list[deque[float]] = [deque(maxlen=7) for _ in range(24)]
    in_step = np.zeros(n, dtype=bool)
    in_return = np.zeros(n, dtype=bool)
    anomalies: list[Anomaly] = []
    idle_hours = 0.0  # idle hours outside holidays
    idle_all = 0.0  # idle hours, holidays included
    excluded_weeks = np.zeros(168, dtype=int)  # consecutive weeks an hour-of-week was kept out of its baseline
    step_start: int | None = None
    step_days = 0
    cand_days: list[tuple[int, int]] = []
    finite = np.isfinite(x)

    def close_step(end: int) -> None:
        nonlocal step_start
        assert step_start is not None
        seg = slice(step_start, end)
        ex = np.nansum(np.clip(x[seg] - med[seg], 0, None))
        z = (x[seg] - med[seg]) / sig[seg]
        score = float(np.nanmedian(z)) if np.isfinite(z).any() else 0.0
        anomalies.append(Anomaly(meter.meter_id, meter.zone_id, s.start_h + step_start, s.start_h + end,
                                 "step_change", float(ex), score))
        step_start = None

    bounds = np.flatnonzero(np.diff(day)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), n]
    return_until = -1
    for a, b in zip(starts, ends, strict=True):
        # -- hour by hour: idle / sudden return, then the baseline for the hour ---------------------------
        for i in range(a, b):
            if finite[i]:
                if x[i] <= idle_thr or i < return_until:
                    if i >= return_until:
                        idle_all += 1
                        idle_hours += 0 if holiday[i] else 1  # a holiday stop is expected: not counted
                elif idle_all >= th.idle_days * 24:
                    # idle long enough (holidays included): the profile is stale, relearn it; report a return
                    # only when the idle days outside holidays are enough (not the Spring Festival restart)
                    ahead = x[i:i + 24]
                    if int(np.sum(np.nan_to_num(ahead, nan=0.0) > idle_thr)) >= th.return_min_hours:
                        end = i
                        quiet = 0
                        for j in range(i, min(n, i + 72)):
                            if finite[j] and x[j] > idle_thr:
                                end, quiet = j + 1, 0
                            else:
                                quiet += 1
                                if quiet > 12:
                                    break
                        if idle_hours >= th.idle_days * 24:
                            ex = float(np.nansum(np.clip(x[i:end] - idle_thr, 0, None)))
                            anomalies.append(Anomaly(meter.meter_id, meter.zone_id, s.start_h + i, s.start_h + end,
                                                     "sudden_return", ex, float(idle_hours / 24.0)))
                            in_return[i:end] = True
                        return_until = end
                        for h in hist + ratio_hist:
                            h.clear()
                        pool.clear()
                        if step_start is not None:
                            close_step(i)
                        cand_days.clear()
                        idle_hours = idle_all = 0
                    # a blip shorter than return_min_hours: still idle
                else:
                    idle_hours = idle_all = 0
            values = hist[key[i]]
            if len(values) >= th.baseline_min_samples:
                arr = np.fromiter(values, float)
                m = float(np.median(arr))
                mad = 1.4826 * float(np.median(np.abs(arr - m)))
                rel = 1.4826 * float(np.median(pool)) if len(pool) >= 48 else 0.1
                ratios = ratio_hist[hod[i]]
                adj = min(max(float(np.median(ratios)), 1.0), 2.0) if len(ratios) >= 3 else 1.0
                adjs[i] = adj
                med[i] = m
                sig[i] = max(mad, rel * max(m, sigma_floor), sigma_floor)
        z = (x[a:b] - med[a:b]) / sig[a:b]
        ok = np.isfinite(z)
        # -- day end: steps --------------------------------------------------------------------------------
        ordinary = not bool(holiday[a]) and int(ok.sum()) >= 18 and not in_return[a:b].any()
        if not ordinary and not bool(holiday[a]):
            cand_days.clear()  # an ordinary day that cannot be judged breaks the run (a holiday does not)
        if ordinary:
            mz = float(np.median(z[ok]))
            mex = float(np.median((x[a:b] - med[a:b])[ok]))
            if step_start is None:
                if mz >= th.step_z and mex >= th.step_min_excess_frac * scale:
                    cand_days.append((a, b))
                else:
                    cand_days.clear()
                if len(cand_days) >= th.step_confirm_days:
                    first = cand_days[0][0]
                    j = first
                    while j - 1 >= max(0, first - 24):
                        zj = (x[j - 1] - med[j - 1]) / sig[j - 1]
                        if not (np.isfinite(zj) and zj >= th.step_z / 2):
                            break
                        j -= 1
                    step_start, step_days = j, 0
                    in_step[j:b] = True
                    cand_days.clear()
            else:
                step_days += 1
                if mz < th.step_z / 2:
                    close_step(a)
                elif step_days >= th.step_absorb_days:
                    close_step(b)
                    seg = np.arange(max(a - 7 * 24 * th.baseline_weeks, 0), b)
                    seg = seg[in_step[seg] & finite[seg]]
                    for h in hist:
                        h.clear()
                    for i in seg.tolist():
                        hist[key[i]].append(float(x[i]))
                    in_step[a:b] = True
                    continue
        if step_start is not None:
            in_step[max(a, step_start):b] = True
        # -- day end: learn the day's ordinary hours -------------------------------------------------------
        for i in range(a, b):
            if not finite[i] or in_step[i]:
                continue
            # learning uses the season-raised median, so a season's rise is learnt (not thrown away)
            zi = (x[i] - med[i] * adjs[i]) / (sig[i] * adjs[i]) if np.isfinite(med[i]) else 0.0
            if zi >= th.baseline_exclude_z and excluded_weeks[key[i]] < th.baseline_min_samples:
                excluded_weeks[key[i]] += 1  # kept out; after baseline_min_samples weeks in a row: the new normal
                continue
            excluded_weeks[key[i]] = 0
            hist[key[i]].append(float(x[i]))
            if np.isfinite(med[i]):
                pool.append(abs(float(x[i]) - med[i]) / max(med[i], sigma_floor))
                if med[i] > sigma_floor:
                    ratio_hist[hod[i]].append(float(x[i]) / med[i])
    if step_start is not None:
        close_step(n)
    # -- night and holiday use ------------------------------------------------------------------------------
    # night and holiday hours are judged against the season-raised median (steps against the plain one)
    medn = med * adjs
    with np.errstate(invalid="ignore"):
        zall = (x - medn) / (sig * adjs)
        cand = (night | holiday) & (zall >= th.night_z) & (x - medn >= th.night_min_excess_frac * scale)
    cand &= ~in_step & ~in_return
    for a, b in _runs(cand, 1):
        if int(cand[a:b].sum()) < th.night_min_hours:
            continue
        ex = float(np.nansum(np.clip(x[a:b] - medn[a:b], 0, None)))
        anomalies.append(Anomaly(meter.meter_id, meter.zone_id, s.start_h + a, s.start_h + b,
                                 "night_or_holiday_use", ex, float(np.nanmedian(zall[a:b][cand[a:b]]))))
    anomalies.sort(key=lambda an: an.start_h)
    if debug is not None:
        debug.update(med=med, sig=sig, in_step=in_step, in_return=in_return, scale=scale)
    return anomalies


def detect(meters: dict[str, Meter], series: dict[str, HourlySeries], th: PowerThresholds,
           cal: Calendar | None = None) -> tuple[list[Anomaly], HourCalendar]:
    hc = HourCalendar(ZoneInfo(th.timezone), cal or Calendar(), th)
    out: list[Anomaly] = []
    for meter_id in sorted(series):
        meter = meters.get(meter_id) or Meter(meter_id, "", 0.0, 0.0)
        s = series[meter_id]
        if meter.kind == "closed_mine":
            out += detect_closed(meter, s, th)
        else:
            out += detect_profile(meter, s, hc, th)
    return out, hc

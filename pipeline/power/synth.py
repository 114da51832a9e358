"""Realistic load curves for tests and for the evaluation of ``power check`` (``scripts/eval_power.py``).

Meters of four habits: single-shift and two-shift factories (weekday shifts, half-day Saturdays for some,
Sundays and Chinese public holidays off, overtime into the evening on some days), continuous plants (24 h,
a mild daily cycle), greenhouses (``facility_agriculture``: irrigation pumps morning and evening, lights in
winter evenings, every day of the week) and closed mines (a guard's standby load or nothing). On top: a
day-to-day factor, a seasonal drift, multiplicative and additive noise, short motor-start spikes, missing
intervals and multi-hour gaps, duplicated rows, a few malformed rows, a register (cumulative) export with a
reset, one meter exported in UTC (``Z``) instead of +08:00, and a mix of 15-minute and hourly meters.

Injected anomalies (the truth): ``night_or_holiday_use`` (an extra load of 30–100 % of the meter's peak for
3–8 night hours, or through a holiday's daytime), ``step_change`` (+20–60 % of the peak, day and night, for
5–30 days), ``sudden_return`` (10–30 days idle, then the usual profile again), ``use_at_closed_site``
(20–200 kW at a closed mine for 4–12 night hours or 1–3 whole days).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from pipeline.power.holidays import Calendar
from pipeline.power.io import Meter, write_meters

TZ = ZoneInfo("Asia/Shanghai")
STEP_S = 900
STARTS = ("2025-09-01", "2025-11-01", "2026-01-01", "2026-03-01")


@dataclass(frozen=True, slots=True)
class Injected:
    meter_id: str
    kind: str
    start_s: int  # UTC seconds
    end_s: int


@dataclass
class Dataset:
    meters: list[Meter]
    truth: list[Injected]
    t0_s: int
    n_steps: int  # 15-minute steps
    kw: dict[str, np.ndarray]  # per meter, kW per 15-minute step (the clean truth, anomalies included)


def _calendar_arrays(t0_s: int, n: int, cal: Calendar) -> dict[str, np.ndarray]:
    hours = np.zeros(n)
    wd = np.zeros(n, dtype=int)
    hol = np.zeros(n, dtype=bool)
    doy = np.zeros(n)
    dayidx = np.zeros(n, dtype=int)
    d0 = dt.datetime.fromtimestamp(t0_s, TZ).date()
    for i in range(0, n, 4):
        t = dt.datetime.fromtimestamp(t0_s + i * STEP_S, TZ)
        sl = slice(i, i + 4)
        hours[sl] = t.hour + np.arange(min(4, n - i)) * 0.25
        wd[sl] = cal.effective_weekday(t.date())
        hol[sl] = cal.is_holiday(t.date())
        doy[sl] = t.timetuple().tm_yday
        dayidx[sl] = (t.date() - d0).days
    return {"hour": hours, "wd": wd, "holiday": hol, "doy": doy, "day": dayidx}


def _smooth_on(hour: np.ndarray, start: float, end: np.ndarray | float) -> np.ndarray:
    """1 between start and end (hours), ramps of one hour at both ends."""
    up = np.clip(hour - start + 1.0, 0, 1)
    down = np.clip(np.asarray(end) - hour, 0, 1)
    return up * down


def _profile(kind: str, rng: np.random.Generator, c: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    n = c["hour"].size
    hour, wd, hol = c["hour"], c["wd"], c["holiday"]
    ndays = int(c["day"].max()) + 1
    dayf = np.exp(rng.normal(0, 0.06, ndays))[c["day"]]
    season = 1 + rng.uniform(0.03, 0.12) * np.sin(2 * np.pi * (c["doy"] - rng.uniform(0, 365)) / 365)
    if kind in ("single_shift", "two_shift"):
        peak = float(np.exp(rng.uniform(np.log(30), np.log(600))))
        base = rng.uniform(0.04, 0.15) * peak
        start = 8.0 if kind == "single_shift" else 6.0
        end0 = 18.0 if kind == "single_shift" else 22.0
        overtime = np.where(rng.random(ndays) < 0.05, rng.uniform(0.5, 3.0, ndays), 0.0)[c["day"]]
        end = np.minimum(end0 + overtime, 22.0)
        on = _smooth_on(hour, start, end)
        lunch = 1 - 0.25 * ((hour >= 12) & (hour < 13))
        saturday = rng.random() < 0.5
        workday = (wd <= 4) | ((wd == 5) & saturday)
        level = np.where(wd == 5, 0.6, 1.0) * workday
        load = base + (peak - base) * on * lunch * level * dayf
    elif kind == "continuous":
        peak = float(np.exp(rng.uniform(np.log(80), np.log(1500))))
        load = peak * (0.8 + 0.12 * np.sin(2 * np.pi * (hour - 9) / 24)) * dayf
        load = load * np.where(hol, rng.uniform(0.75, 1.0), 1.0)
    elif kind == "greenhouse":
        peak = float(np.exp(rng.uniform(np.log(10), np.log(120))))
        pumps = _smooth_on(hour, 7.0, 9.0) + _smooth_on(hour, 17.0, 19.0)
        winter = np.clip(np.cos(2 * np.pi * (c["doy"] - 15) / 365), 0, 1)
        lights = _smooth_on(hour, 18.0, 23.0) * winter
        load = peak * (0.08 + 0.6 * pumps + 0.35 * lights) * dayf
    else:  # closed mine
        peak = float(rng.uniform(0.0, 2.0))
        load = np.full(n, peak)
        return np.clip(load + rng.normal(0, 0.05 * peak + 0.02, n), 0, None), peak
    load = load * season
    load = load * np.exp(rng.normal(0, 0.05, n)) + rng.normal(0, 0.01 * peak, n)
    spikes = rng.random(n) < 0.002
    load = load + spikes * rng.uniform(0.2, 0.6, n) * peak
    return np.clip(load, 0, None), peak


KIND_OF_HABIT = {"single_shift": "enterprise", "two_shift": "enterprise", "continuous": "enterprise",
                 "greenhouse": "facility_agriculture", "closed": "closed_mine"}


def generate(seed: int, n_meters: int = 40, months: float = 4.0, *, start: str | None = None,
             inject: bool = True) -> Dataset:
    rng = np.random.default_rng(seed)
    cal = Calendar()
    day0 = dt.date.fromisoformat(start or STARTS[seed % len(STARTS)])
    t0_s = int(dt.datetime(day0.year, day0.month, day0.day, tzinfo=TZ).timestamp())
    n = int(months * 30.44 * 96)
    c = _calendar_arrays(t0_s, n, cal)
    habits = ["single_shift", "two_shift", "continuous", "greenhouse", "closed"]
    weights = np.array([0.3, 0.2, 0.15, 0.15, 0.2])
    meters: list[Meter] = []
    kw: dict[str, np.ndarray] = {}
    truth: list[Injected] = []
    peaks: dict[str, float] = {}
    habit_of: dict[str, str] = {}
    for k in range(n_meters):
        habit = habits[int(rng.choice(len(habits), p=weights))]
        mid = f"M{seed:03d}-{k:03d}"
        load, peak = _profile(habit, rng, c)
        meters.append(Meter(mid, f"{habit} {k}", 38.6 + rng.uniform(0, 0.3), 111.5 + rng.uniform(0, 0.3),
                            f"zone-{k % 7}", KIND_OF_HABIT[habit]))
        kw[mid], peaks[mid], habit_of[mid] = load, peak, habit
    if inject:
        warm = 5 * 7 * 96  # the detector needs weeks of history: inject after five weeks
        busy: dict[str, list[tuple[int, int]]] = {m.meter_id: [] for m in meters}

        def free(mid: str, a: int, b: int) -> bool:
            return all(b + 7 * 96 <= x or a >= y + 7 * 96 for x, y in busy[mid])

        for m in meters:
            mid, habit, load, peak = m.meter_id, habit_of[m.meter_id], kw[m.meter_id], peaks[m.meter_id]
            for _ in range(int(rng.integers(0, 3))):
                for _try in range(20):
                    if habit == "closed":
                        kind = "use_at_closed_site"
                    else:
                        kind = str(rng.choice(["night_or_holiday_use", "step_change", "sudden_return"],
                                              p=[0.5, 0.25, 0.25]))
                    a = int(rng.integers(warm, n - 3 * 96))
                    if kind in ("night_or_holiday_use", "use_at_closed_site"):
                        a -= a % 96  # midnight local of that day (t0 is a local midnight)
                        holidays = np.flatnonzero(c["holiday"][warm:] & (c["hour"][warm:] == 8.0)) + warm
                        if kind == "night_or_holiday_use" and holidays.size and rng.random() < 0.3:
                            a = int(rng.choice(holidays))
                            b = a + int(rng.integers(6, 11)) * 4
                        elif kind == "use_at_closed_site" and rng.random() < 0.3:
                            b = a + int(rng.integers(1, 4)) * 96
                        else:
                            a += int(rng.integers(-2, 2)) * 4 - (8 * 4 if rng.random() < 0.5 else 0)
                            a = max(a, warm)
                            a += (22 * 4 - a % 96) % 96 if a % 96 > 6 * 4 else 0
                            b = a + int(rng.integers(3, 9)) * 4
                        amp = (rng.uniform(0.3, 1.0) * peak if kind == "night_or_holiday_use"
                               else rng.uniform(20, 200))
                    elif kind == "step_change":
                        b = a + int(rng.integers(5, 31)) * 96
                        amp = rng.uniform(0.2, 0.6) * peak
                    else:  # sudden_return: idle for 10-30 days, then the profile comes back
                        idle = int(rng.integers(10, 31)) * 96
                        a = max(a, warm + idle)
                        b = a + 96
                        amp = 0.0
                    b = min(b, n)
                    if b - a < 8 or not free(mid, a - (idle if kind == "sudden_return" else 0), b):
                        continue
                    if kind == "sudden_return":
                        # resume at the start of a working day, as a restarted site would
                        while a < n - 96 and (load[a] <= max(0.5, 0.05 * peak) * 1.0001 or c["hour"][a] < 6):
                            a += 1
                        start_idle = a - idle
                        load[start_idle:a] = rng.uniform(0.0, 0.02 * peak, a - start_idle)
                        b = min(a + 96, n)
                        busy[mid].append((start_idle, b))
                    else:
                        load[a:b] += amp * np.exp(rng.normal(0, 0.05, b - a))
                        busy[mid].append((a, b))
                    truth.append(Injected(mid, kind, t0_s + a * STEP_S, t0_s + b * STEP_S))
                    break
    return Dataset(meters, truth, t0_s, n, kw)


def _iso(t_s: int, utc: bool) -> str:
    t = dt.datetime.fromtimestamp(t_s, dt.UTC if utc else TZ)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if utc else t.isoformat()


def write_readings(ds: Dataset, path: Path, seed: int, *, dirty: bool = True) -> dict[str, int]:
    """Write the readings CSV (15-min or hourly per meter, with the export's blemishes); returns counts."""
    rng = np.random.default_rng(seed + 7919)
    counts = {"rows": 0, "bad_rows": 0, "duplicates": 0}
    rows: list[list[str]] = []
    for k, m in enumerate(ds.meters):
        load = ds.kw[m.meter_id]
        hourly = k % 2 == 1
        utc = dirty and k == 3
        register = dirty and k == 5
        if hourly:
            kwh = load[: ds.n_steps - ds.n_steps % 4].reshape(-1, 4).sum(axis=1) * 0.25
            step = 3600
        else:
            kwh = load * 0.25
            step = STEP_S
        keep = np.ones(kwh.size, dtype=bool)
        if dirty:
            keep &= rng.random(kwh.size) > 0.01
            if rng.random() < 0.5:
                g = int(rng.integers(0, kwh.size - 200))
                keep[g:g + int(rng.integers(6, 48)) * 3600 // step] = False
        values = np.round(kwh, 2)
        if register:
            values = np.round(np.cumsum(kwh) + 10000.0, 2)
            reset = kwh.size // 2
            values[reset:] -= values[reset - 1]
        for i in np.flatnonzero(keep).tolist():
            t = ds.t0_s + i * step
            row = [m.meter_id, _iso(t, utc), f"{values[i]:.2f}"]
            rows.append(row)
            if dirty and rng.random() < 0.002:
                rows.append(list(row))
                counts["duplicates"] += 1
    if dirty:
        for bad in (["M-unknown", _iso(ds.t0_s, False), "1.0"], [ds.meters[0].meter_id, "2026-13-01T00:00", "1"],
                    [ds.meters[0].meter_id, _iso(ds.t0_s, False), "abc"], [ds.meters[0].meter_id, "x"],
                    [ds.meters[0].meter_id, "2026-01-01T00:00:00", "2.0"],
                    [ds.meters[0].meter_id, _iso(ds.t0_s, False), "-5"]):
            rows.insert(int(rng.integers(0, len(rows))), bad)
            counts["bad_rows"] += 1
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["meter_id", "t", "kwh"])
        w.writerows(rows)
    counts["rows"] = len(rows)
    return counts


def write_dataset(ds: Dataset, folder: Path, seed: int, *, dirty: bool = True) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    meters, readings = folder / "meters.csv", folder / "readings.csv"
    write_meters(meters, ds.meters)
    write_readings(ds, readings, seed, dirty=dirty)
    return meters, readings

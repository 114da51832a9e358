"""Power-use anomalies: CSV parsing (bad rows counted, never fatal), hourly series (duplicates, clock
changes, register resets, 15-min), the four kinds on generated load curves, and ``minewatch power check``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.power import synth
from pipeline.power.cli import run_check
from pipeline.power.detect import PowerThresholds
from pipeline.power.evaluate import score
from pipeline.power.holidays import Calendar
from pipeline.power.io import Meter, Reading, read_meters, read_readings
from pipeline.power.series import to_hourly

TZ8 = dt.timezone(dt.timedelta(hours=8))
METERS_CSV = "meter_id,name,lat,lon,zone_id,kind\nm1,厂一,38.7,111.6,z1,enterprise\nm2,矿,38.71,111.61,z2,closed_mine\n"


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [
        ("m9,2026-01-01T00:00:00+08:00,1.0", "meter_id", "a meter listed in the meters file"),
        ("m1,2026-01-01T00:00:00,1.0", "t", "a UTC offset"),
        ("m1,2026-13-01T00:00:00+08:00,1.0", "t", "ISO 8601"),
        ("m1,yesterday,1.0", "t", "ISO 8601"),
        ("m1,2026-01-01T00:00:00+08:00,abc", "kwh", "a number"),
        ("m1,2026-01-01T00:00:00+08:00,-3", "kwh", "≥ 0"),
        ("m1,2026-01-01T00:00:00+08:00,nan", "kwh", "a number"),
        ("m1,2026-01-01T00:00:00+08:00,1e11", "kwh", "at most"),
        ("m1,2026-01-01T00:00:00+08:00", "row", "as many cells"),
        ("m 1,2026-01-01T00:00:00+08:00,1", "meter_id", "1-64 characters"),
    ],
)
def test_bad_reading_rows_are_counted_with_their_row_number(tmp_path: Path, row: str, field: str,
                                                           expected: str) -> None:
    meters, bad_m = read_meters(_write(tmp_path, "m.csv", METERS_CSV))
    assert not bad_m
    text = "meter_id,t,kwh\nm1,2026-01-01T01:00:00+08:00,2.5\n" + row + "\nm1,2026-01-01T02:00:00Z,3\n"
    readings, bad = read_readings(_write(tmp_path, "r.csv", text), meters)
    assert len(readings) == 2 and len(bad) == 1
    assert bad[0].row == 3 and bad[0].field == field and expected in bad[0].expected
    assert bad[0].line().startswith(f"{tmp_path / 'r.csv'}:3: {field}: expected ")


@pytest.mark.parametrize(
    ("row", "field"),
    [("m3,x,91,111.6,,enterprise", "lat"), ("m3,x,38.7,abc,,", "lon"), ("m1,again,38.7,111.6,,", "meter_id"),
     ("m3,x,38.7,111.6,z,Closed Mine", "kind")],
)
def test_bad_meter_rows_are_counted(tmp_path: Path, row: str, field: str) -> None:
    meters, bad = read_meters(_write(tmp_path, "m.csv", METERS_CSV + row + "\n"))
    assert set(meters) == {"m1", "m2"} and meters["m2"].kind == "closed_mine" and meters["m1"].zone_id == "z1"
    assert [(b.row, b.field) for b in bad] == [(4, field)]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "an empty file"), ("meter_id,kwh\nm1,2\n", "columns meter_id,t,kwh")],
)
def test_unreadable_readings_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     text: str, message: str) -> None:
    m = _write(tmp_path, "m.csv", METERS_CSV)
    r = _write(tmp_path, "r.csv", text)
    assert main(["power", "check", "--meters", str(m), "--readings", str(r)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "r.csv" in err[0]


def test_bad_threshold_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = _write(tmp_path, "m.csv", METERS_CSV)
    r = _write(tmp_path, "r.csv", "meter_id,t,kwh\n")
    th = _write(tmp_path, "th.yaml", "night_z: 0.1\n")
    assert main(["power", "check", "--meters", str(m), "--readings", str(r), "--thresholds", str(th)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "night_z" in err[0]


def _reading(meter: str, t: dt.datetime, kwh: float) -> Reading:
    return Reading(meter, int(t.timestamp()), kwh, 0)


def test_duplicates_clock_change_and_quarter_hours() -> None:
    t0 = dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # CET, DST starts at 02:00
    rows = []
    for q in range(16):  # four hours of 15-min readings; the offset changes after 02:00 CET (01:00 UTC)
        t = t0 + dt.timedelta(minutes=15 * q)
        if t >= dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC):
            t = t.astimezone(dt.timezone(dt.timedelta(hours=2)))
        rows.append(_reading("m1", t, 1.0))
    rows.append(rows[5])  # identical duplicate
    rows.append(Reading("m1", rows[6].t_utc_s, 9.0, 0))  # conflicting: the later row wins
    del rows[12:14]  # two quarters of hour 3 missing: still half, scaled up
    del rows[8:11]  # three quarters of hour 2 missing: unknown
    series, counts = to_hourly(rows)
    s = series["m1"]
    assert s.interval_s == 900 and counts["duplicates"] == 2 and counts["conflicting_duplicates"] == 1
    assert len(s.kwh) == 4 and s.kwh[0] == 4.0 and s.kwh[1] == 12.0 and np.isnan(s.kwh[2]) and s.kwh[3] == 4.0


def test_register_export_is_differenced_and_a_reset_counted() -> None:
    t0 = dt.datetime(2026, 1, 5, tzinfo=TZ8)
    reg, rows = 5000.0, []
    for h in range(48):
        reg = 0.0 if h == 30 else reg + 2.0
        rows.append(_reading("m1", t0 + dt.timedelta(hours=h), reg))
    series, counts = to_hourly(rows)
    s = series["m1"]
    assert s.cumulative and counts["resets"] == 1
    assert np.nanmax(s.kwh) == 2.0 and np.nanmin(s.kwh) == 2.0 and np.isnan(s.kwh).sum() == 1 and len(s.kwh) == 47


def _factory_rows(weeks: int, *, extra: dict[int, float] | None = None, idle: range | None = None,
                  meter: str = "m1", seed: int = 0) -> list[Reading]:
    """Hourly readings of a single-shift factory (8-18 h on weekdays) from Mon 2025-11-03, +extra kWh per hour index."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2025, 11, 3, tzinfo=TZ8)
    rows = []
    for h in range(weeks * 168):
        t = t0 + dt.timedelta(hours=h)
        work = t.weekday() < 5 and 8 <= t.hour < 18 and not Calendar().is_holiday(t.date())
        kwh = (100.0 if work else 10.0) * float(np.exp(rng.normal(0, 0.05))) + (extra or {}).get(h, 0.0)
        if idle is not None and h in idle:
            kwh = 0.1
        rows.append(_reading(meter, t, kwh))
    return rows


def _kinds(rows: list[Reading], kind: str = "enterprise") -> list[tuple[str, int, int]]:
    meters = {"m1": Meter("m1", "", 38.7, 111.6, "z1", kind)}
    anomalies, _, _ = run_check(meters, rows, PowerThresholds())
    first = rows[0].t_utc_s // 3600
    return [(a.kind, a.start_h - first, a.end_h - first) for a in anomalies]


def test_each_kind_on_a_plain_factory() -> None:
    assert _kinds(_factory_rows(8)) == []
    night = {h: 60.0 for h in range(6 * 168 + 2 * 24 - 1, 6 * 168 + 2 * 24 + 4)}  # Wed 23:00 → Thu 04:00
    assert _kinds(_factory_rows(8, extra=night)) == [("night_or_holiday_use", 6 * 168 + 47, 6 * 168 + 52)]
    step = {h: 40.0 for h in range(5 * 168 + 24 + 14, 7 * 168)}  # from Tue 14:00, for ten days
    found = _kinds(_factory_rows(8, extra=step))
    assert [k for k, _, _ in found] == ["step_change"] and abs(found[0][1] - (5 * 168 + 38)) <= 2
    back = _kinds(_factory_rows(9, idle=range(4 * 168, 6 * 168 + 8)))  # two idle weeks, back on Mon 08:00
    assert [k for k, _, _ in back] == ["sudden_return"] and back[0][1] == 6 * 168 + 8
    closed = _kinds([Reading("m1", r.t_utc_s, 0.3 + (50.0 if 500 <= i < 506 else 0.0), 0)
                     for i, r in enumerate(_factory_rows(4))], "closed_mine")
    assert closed == [("use_at_closed_site", 500, 506)]


def test_spring_festival_is_not_night_work_and_holiday_work_is() -> None:
    # 2026-02-15..23 is the Spring Festival; a factory stopping then is normal, one running at night is not
    t0 = dt.datetime(2026, 1, 5, tzinfo=TZ8)
    hol = int((dt.datetime(2026, 2, 17, 9, tzinfo=TZ8) - t0).total_seconds() // 3600)
    rows = _factory_rows(8)
    rows = [Reading("m1", r.t_utc_s + int((t0 - dt.datetime(2025, 11, 3, tzinfo=TZ8)).total_seconds()), r.kwh, 0)
            for r in rows]
    cal = Calendar()
    quiet = [Reading(r.meter_id, r.t_utc_s, 10.0 if cal.is_holiday(dt.datetime.fromtimestamp(r.t_utc_s, TZ8).date())
                     else r.kwh, 0) for r in rows]
    assert _kinds(quiet) == []
    busy = [Reading(r.meter_id, r.t_utc_s, r.kwh + (80.0 if hol <= i < hol + 8 else 0.0), 0)
            for i, r in enumerate(quiet)]
    assert _kinds(busy) == [("night_or_holiday_use", hol, hol + 8)]


def test_generated_curves_with_dirty_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = 11
    ds = synth.generate(seed, n_meters=10, months=3.0)
    mpath, rpath = synth.write_dataset(ds, tmp_path, seed)
    assert main(["power", "check", "--meters", str(mpath), "--readings", str(rpath), "--json"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(set(d) == {"meter_id", "zone_id", "t_start", "t_end", "kind", "kwh_excess", "score"}
                         for d in lines)
    assert all(dt.datetime.fromisoformat(d["t_start"]) < dt.datetime.fromisoformat(d["t_end"]) for d in lines)
    bad_lines = [e for e in err.splitlines() if "readings.csv:" in e]
    assert len(bad_lines) == 6 and all(": expected " in e for e in bad_lines)
    assert "6 bad rows" in err and "1 meter resets" in err
    meters, _ = read_meters(mpath)
    readings, _ = read_readings(rpath, meters)
    anomalies, _, _ = run_check(meters, readings, PowerThresholds())
    series, _ = to_hourly(readings)
    sc = score(anomalies, ds.truth, float(sum(len(s.kwh) for s in series.values())), series)
    assert sc.injected >= 8 and sc.rate >= 0.85 and sc.false_per_meter_month <= 1.0

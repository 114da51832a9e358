"""``minewatch power``: power-use anomalies from a utility's interval readings.

    minewatch power check --meters M.csv --readings R.csv [--json] [--thresholds T.yaml] [--holidays H.csv]
    minewatch power check --meters M.csv --db power.sqlite [--json]      readings received by `power serve`
    minewatch power serve --meters M.csv --db power.sqlite [--http HOST:PORT] [--mqtt-host H --mqtt-topic T]
    minewatch power synth --seed N --out DIR [--meters 40 --months 4]    generated load curves and truth.json

Anomalies go to stdout (JSON lines with --json, else one line each); bad rows go to stderr, one line
each with the row number, and are counted in the summary; they never stop the run. docs/POWER.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from pipeline.errors import UserError
from pipeline.power.detect import Anomaly, PowerThresholds, detect
from pipeline.power.holidays import Calendar, load_holidays
from pipeline.power.io import BadRow, Meter, Reading, read_meters, read_readings
from pipeline.power.series import to_hourly

#: at most this many bad-row lines per file on stderr; the rest are counted
MAX_BAD_LINES = 200


def load_thresholds(path: Path | None) -> PowerThresholds:
    if path is None:
        return PowerThresholds()
    from pipeline.config import read_yaml, validation_error_to_user_error

    data = read_yaml(path)
    try:
        th = PowerThresholds.model_validate(data or {})
    except ValidationError as exc:
        raise validation_error_to_user_error(str(path), exc, data) from None
    try:
        ZoneInfo(th.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(str(path), "timezone", "an IANA time zone such as Asia/Shanghai", th.timezone) from None
    return th


def run_check(meters: dict[str, Meter], readings: list[Reading], th: PowerThresholds,
              cal: Calendar | None = None) -> tuple[list[Anomaly], Counter[str], set[int]]:
    series, counts = to_hourly(readings)
    anomalies, hc = detect(meters, series, th, cal)
    counts["meters_with_readings"] = len(series)
    return anomalies, counts, hc.years


def _print_bad(bad: list[BadRow]) -> None:
    for b in bad[:MAX_BAD_LINES]:
        print(b.line(), file=sys.stderr)
    if len(bad) > MAX_BAD_LINES:
        print(f"… and {len(bad) - MAX_BAD_LINES} more bad rows", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    th = load_thresholds(args.thresholds)
    cal = Calendar(load_holidays(args.holidays) if args.holidays else None)
    meters, bad_m = read_meters(args.meters)
    _print_bad(bad_m)
    if args.db is not None:
        from pipeline.power.stream import ReadingStore

        store = ReadingStore(args.db)
        readings, bad_r = store.all_readings(), list[BadRow]()
        store.close()
    else:
        readings, bad_r = read_readings(args.readings, meters)
    _print_bad(bad_r)
    anomalies, counts, years = run_check(meters, readings, th, cal)
    tz = ZoneInfo(th.timezone)
    for an in anomalies:
        if args.json:
            print(an.json(tz))
        else:
            d = an.as_dict(tz)
            print(f"{d['kind']:<22} {d['meter_id']:<16} zone={d['zone_id'] or '-'} {d['t_start']} → {d['t_end']}"
                  f" excess={d['kwh_excess']} kWh score={d['score']}")
    kinds = Counter(a.kind for a in anomalies)
    print(f"power check: {len(meters)} meters ({len(bad_m)} bad rows), {len(readings)} readings"
          f" ({len(bad_r)} bad rows, {counts['duplicates']} duplicates of which {counts['conflicting_duplicates']}"
          f" conflicting, {counts['resets']} meter resets, {counts['missing_hours']} missing hours);"
          f" {len(anomalies)} anomalies " + json.dumps(dict(kinds)), file=sys.stderr)
    uncovered = sorted(y for y in years if y not in cal.years)
    if uncovered:
        print(f"power check: no holiday table for {uncovered}: holidays there count as ordinary days"
              " (give --holidays FILE)", file=sys.stderr)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from pipeline.power import synth

    ds = synth.generate(args.seed, args.n_meters, args.months)
    m, r = synth.write_dataset(ds, args.out, args.seed)
    truth = [{"meter_id": t.meter_id, "kind": t.kind, "start_s": t.start_s, "end_s": t.end_s} for t in ds.truth]
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1))
    print(f"wrote {m}, {r} and {args.out / 'truth.json'} ({len(truth)} injected anomalies)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pipeline.power.stream import serve_main

    return serve_main(args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minewatch power", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = p.add_subparsers(dest="sub", required=True)
    c = sub.add_parser("check", help="find anomalies in readings", allow_abbrev=False)
    c.add_argument("--meters", type=Path, required=True, help="meters CSV: meter_id,name,lat,lon[,zone_id][,kind]")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--readings", type=Path, help="readings CSV: meter_id,t,kwh")
    src.add_argument("--db", type=Path, help="readings received by `minewatch power serve`")
    c.add_argument("--json", action="store_true", help="JSON lines on stdout")
    c.add_argument("--thresholds", type=Path, help="YAML overriding thresholds (docs/POWER.md)")
    c.add_argument("--holidays", type=Path, help="CSV date,kind (holiday|workday) added to the built-in table")
    s = sub.add_parser("serve", help="receive readings over HTTP POST and/or MQTT", allow_abbrev=False)
    s.add_argument("--meters", type=Path, required=True)
    s.add_argument("--db", type=Path, required=True, help="SQLite file the valid readings go to")
    s.add_argument("--http", metavar="HOST:PORT", help="listen for POST /readings (JSON or CSV)")
    s.add_argument("--mqtt-host", help="broker host; with --mqtt-topic")
    s.add_argument("--mqtt-port", type=int, default=1883)
    s.add_argument("--mqtt-topic", default="minewatch/power/readings")
    g = sub.add_parser("synth", help="write generated load curves with injected anomalies", allow_abbrev=False)
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--meters", dest="n_meters", type=int, default=40)
    g.add_argument("--months", type=float, default=4.0)
    return p


def cli_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.sub == "check":
        return _check(args)
    if args.sub == "serve":
        return _serve(args)
    return _synth(args)

"""Detection rate and false anomalies per meter-month of ``minewatch power check`` on generated load curves.

    .venv/bin/python scripts/eval_power.py --seeds 100-109            # held-out seeds (docs/POWER.md)
    .venv/bin/python scripts/eval_power.py --seeds 0-4 --verbose      # the seeds the thresholds were set on

Each seed writes its meters and readings CSV (with the export's blemishes) to a temporary folder, parses
them as ``power check`` does, detects, and scores against the injected truth (pipeline/power/evaluate.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.power import synth  # noqa: E402
from pipeline.power.cli import run_check  # noqa: E402
from pipeline.power.detect import PowerThresholds  # noqa: E402
from pipeline.power.evaluate import Score, score  # noqa: E402
from pipeline.power.io import read_meters, read_readings  # noqa: E402
from pipeline.power.series import to_hourly  # noqa: E402


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="100-109")
    p.add_argument("--meters", type=int, default=40)
    p.add_argument("--months", type=float, default=4.0)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", help="override a threshold")
    args = p.parse_args()
    th = PowerThresholds.model_validate({k: v for k, _, v in (kv.partition("=") for kv in args.set)})
    total = Score()
    for seed in _seeds(args.seeds):
        ds = synth.generate(seed, args.meters, args.months)
        with tempfile.TemporaryDirectory() as tmp:
            mpath, rpath = synth.write_dataset(ds, Path(tmp), seed)
            meters, _ = read_meters(mpath)
            readings, bad = read_readings(rpath, meters)
        anomalies, _, _ = run_check(meters, readings, th)
        series, _ = to_hourly(readings)
        hours = float(sum(len(s.kwh) for s in series.values()))
        sc = score(anomalies, ds.truth, hours, series)
        total.add(sc)
        print(f"seed {seed}: start {synth.STARTS[seed % len(synth.STARTS)]}, found {sc.found}/{sc.injected}"
              f" ({sc.unobservable} more fell in data gaps),"
              f" false {sc.false} over {sc.meter_months:.1f} meter-months, {len(bad)} bad rows", flush=True)
        if args.verbose:
            for t in ds.truth:
                hit = [a for a in anomalies if a.meter_id == t.meter_id and a.start_h * 3600 < t.end_s
                       and a.end_h * 3600 > t.start_s]
                if not any(a.kind == t.kind for a in hit):
                    print("  missed", t, [(a.kind, a.score) for a in hit])
            for a in anomalies:
                if not any(a.meter_id == t.meter_id and a.start_h * 3600 < t.end_s and a.end_h * 3600 > t.start_s
                           for t in ds.truth):
                    print("  false", a)
    print(json.dumps({"thresholds": args.set, "injected": total.injected, "unobservable": total.unobservable,
                      "found": total.found, "rate": round(total.rate, 3),
                      "found_any_kind": total.found_any_kind, "false": total.false,
                      "meter_months": round(total.meter_months, 1),
                      "false_per_meter_month": round(total.false_per_meter_month, 3),
                      "by_kind": total.by_kind, "false_by_kind": dict(total.false_by_kind)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

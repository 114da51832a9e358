"""Score detected anomalies against injected ones (``scripts/eval_power.py`` and the tests).

An injected anomaly is **found** when a detection of the same meter and the same kind overlaps its time
span; an injected anomaly of which less than half the hours were read (a data gap) is counted apart as
**unobservable** and left out of the rate; a detection that overlaps no injected anomaly of its meter (of
any kind) is **false**. Meter-months are the hours the readings cover, summed over meters, over 730.5.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.power.detect import Anomaly
from pipeline.power.series import HourlySeries
from pipeline.power.synth import Injected


@dataclass
class Score:
    injected: int = 0
    unobservable: int = 0
    found: int = 0
    found_any_kind: int = 0
    false: int = 0
    meter_months: float = 0.0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind → [injected, found]
    false_by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.found / self.injected if self.injected else 1.0

    @property
    def false_per_meter_month(self) -> float:
        return self.false / self.meter_months if self.meter_months else 0.0

    def add(self, other: Score) -> None:
        self.injected += other.injected
        self.unobservable += other.unobservable
        self.found += other.found
        self.found_any_kind += other.found_any_kind
        self.false += other.false
        self.meter_months += other.meter_months
        for k, (a, b) in other.by_kind.items():
            cur = self.by_kind.setdefault(k, [0, 0])
            cur[0] += a
            cur[1] += b
        self.false_by_kind.update(other.false_by_kind)


def observable(t: Injected, series: Mapping[str, HourlySeries]) -> bool:
    s = series.get(t.meter_id)
    if s is None:
        return False
    a, b = t.start_s // 3600 - s.start_h, -(-t.end_s // 3600) - s.start_h
    seg = s.kwh[max(a, 0):max(b, 0)]
    return seg.size > 0 and float(np.mean(np.isfinite(seg))) >= 0.5 and b - a <= 2 * seg.size


def score(detected: Sequence[Anomaly], truth: Sequence[Injected], meter_hours: float,
          series: Mapping[str, HourlySeries] | None = None) -> Score:
    sc = Score(meter_months=meter_hours / 730.5)

    def overlaps(a: Anomaly, t: Injected) -> bool:
        return a.meter_id == t.meter_id and a.start_h * 3600 < t.end_s and a.end_h * 3600 > t.start_s

    for t in truth:
        hit = [a for a in detected if overlaps(a, t)]
        if series is not None and not hit and not observable(t, series):
            sc.unobservable += 1
            continue
        ok = any(a.kind == t.kind for a in hit)
        sc.injected += 1
        sc.found += ok
        sc.found_any_kind += bool(hit)
        cur = sc.by_kind.setdefault(t.kind, [0, 0])
        cur[0] += 1
        cur[1] += ok
    for a in detected:
        if not any(overlaps(a, t) for t in truth):
            sc.false += 1
            sc.false_by_kind[a.kind] += 1
    return sc

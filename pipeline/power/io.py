"""The utility's files: a meters CSV and interval readings CSV, parsed row by row.

A bad row never stops the run: it becomes one :class:`BadRow` (file, row number, field, what was expected,
what was found), printed as one line and counted. A missing file or a missing header column is a
:class:`~pipeline.errors.UserError` (exit 2): nothing can be read then.

    meters:   meter_id,name,lat,lon[,zone_id][,kind]     kind: enterprise, facility_agriculture, closed_mine, …
    readings: meter_id,t,kwh                             t: ISO 8601 with offset (2026-03-01T08:15:00+08:00)
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

METER_KINDS = ("enterprise", "facility_agriculture", "closed_mine", "other")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_KIND_RE = re.compile(r"^[a-z_]{1,32}$")
#: the largest value one reading may hold (a register of a big plant); an hour above MAX_KWH_PER_HOUR after
#: differencing is dropped as implausible by ``series``
MAX_KWH = 1e10
MAX_KWH_PER_HOUR = 1e5


@dataclass(frozen=True, slots=True)
class Meter:
    meter_id: str
    name: str
    lat: float
    lon: float
    zone_id: str | None = None
    kind: str = "enterprise"


@dataclass(frozen=True, slots=True)
class Reading:
    meter_id: str
    t_utc_s: int  # seconds since the epoch, UTC
    kwh: float
    row: int  # row number in its file (1 = header), 0 for streamed rows


@dataclass(frozen=True, slots=True)
class BadRow:
    source: str
    row: int
    field: str
    expected: str
    found: str

    def line(self) -> str:
        found = self.found if len(self.found) <= 60 else self.found[:59] + "…"
        return f"{self.source}:{self.row}: {self.field}: expected {self.expected}, found {found!r}"


class RowError(ValueError):
    """One field of one row is wrong."""

    def __init__(self, field: str, expected: str, found: object) -> None:
        super().__init__(f"{field}: expected {expected}, found {found!r}")
        self.field, self.expected, self.found = field, expected, "" if found is None else str(found)


def _float(value: str | None, field: str, lo: float, hi: float) -> float:
    try:
        x = float(str(value).strip())
    except (TypeError, ValueError):
        raise RowError(field, f"a number in [{lo:g}, {hi:g}]", value) from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise RowError(field, f"a number in [{lo:g}, {hi:g}]", value)
    return x


def parse_time(value: object) -> int:
    """ISO 8601 with an explicit offset (``Z`` or ``+08:00``) → epoch seconds UTC; naive times are refused
    (they are ambiguous around clock changes)."""
    if not isinstance(value, str) or not value.strip():
        raise RowError("t", "an ISO 8601 time with offset, e.g. 2026-03-01T08:15:00+08:00", value)
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RowError("t", "an ISO 8601 time with offset, e.g. 2026-03-01T08:15:00+08:00", value) from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise RowError("t", "a UTC offset (Z or +08:00) on the time", value)
    if not 2000 <= t.year <= 2100:
        raise RowError("t", "a year in 2000..2100", value)
    return int(t.timestamp())


def parse_reading(fields: Mapping[str, object], meters: Mapping[str, Meter] | None, row: int = 0) -> Reading:
    """Validate one reading (a CSV row or a streamed JSON object); raises :class:`RowError`."""
    meter_id = fields.get("meter_id")
    if not isinstance(meter_id, str) or not _ID_RE.match(meter_id.strip()):
        raise RowError("meter_id", "1-64 characters A-Z a-z 0-9 _ . : -", meter_id)
    meter_id = meter_id.strip()
    if meters is not None and meter_id not in meters:
        raise RowError("meter_id", "a meter listed in the meters file", meter_id)
    t_s = parse_time(fields.get("t"))
    raw = fields.get("kwh")
    if isinstance(raw, bool) or raw is None:
        raise RowError("kwh", f"a number in [0, {MAX_KWH:g}]", raw)
    kwh = _float(str(raw), "kwh", -math.inf, math.inf)
    if kwh < 0:
        raise RowError("kwh", "a number ≥ 0 (a negative reading: meter reset or export error)", raw)
    if kwh > MAX_KWH:
        raise RowError("kwh", f"at most {MAX_KWH:g} kWh in one reading", raw)
    return Reading(meter_id, t_s, kwh, row)


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str], int]]:
    """(row number, fields by header name, number of cells) for each data row; the header is row 1."""
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UserError(str(path), None, "a readable CSV file", exc) from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise UserError(str(path), "header", "a header row with " + ",".join(required), "an empty file") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UserError(str(path), "header", "a UTF-8 CSV header row", exc) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise UserError(str(path), "header", "columns " + ",".join(required), ",".join(header))
        n = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                n += 1
                yield n, {"__error__": str(exc)}, -1
                continue
            n = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            yield n, dict(zip(header, cells, strict=False)), len(cells) if len(cells) != len(header) else 0


def read_meters(path: Path) -> tuple[dict[str, Meter], list[BadRow]]:
    meters: dict[str, Meter] = {}
    bad: list[BadRow] = []
    for n, f, _ in _rows(path, ("meter_id", "name", "lat", "lon")):
        try:
            if "__error__" in f:
                raise RowError("row", "a CSV row", f["__error__"])
            meter_id = (f.get("meter_id") or "").strip()
            if not _ID_RE.match(meter_id):
                raise RowError("meter_id", "1-64 characters A-Z a-z 0-9 _ . : -", meter_id)
            if meter_id in meters:
                raise RowError("meter_id", "a meter_id not listed before", meter_id)
            lat = _float(f.get("lat"), "lat", -90, 90)
            lon = _float(f.get("lon"), "lon", -180, 180)
            zone_id = (f.get("zone_id") or "").strip() or None
            kind = (f.get("kind") or "").strip() or "enterprise"
            if not _KIND_RE.match(kind):
                raise RowError("kind", "a kind such as " + ", ".join(METER_KINDS), kind)
            meters[meter_id] = Meter(meter_id, (f.get("name") or "").strip(), lat, lon, zone_id, kind)
        except RowError as exc:
            bad.append(BadRow(str(path), n, exc.field, exc.expected, exc.found))
    return meters, bad


def read_readings(path: Path, meters: Mapping[str, Meter] | None) -> tuple[list[Reading], list[BadRow]]:
    readings: list[Reading] = []
    bad: list[BadRow] = []
    for n, f, ncells in _rows(path, ("meter_id", "t", "kwh")):
        try:
            if "__error__" in f:
                raise RowError("row", "a CSV row", f["__error__"])
            if ncells:
                raise RowError("row", "as many cells as the header", f"{ncells} cells")
            readings.append(parse_reading(f, meters, n))
        except RowError as exc:
            bad.append(BadRow(str(path), n, exc.field, exc.expected, exc.found))
    return readings, bad


def write_meters(path: Path, meters: Iterable[Meter]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["meter_id", "name", "lat", "lon", "zone_id", "kind"])
        for m in meters:
            w.writerow([m.meter_id, m.name, f"{m.lat:.6f}", f"{m.lon:.6f}", m.zone_id or "", m.kind])

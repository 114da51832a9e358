"""Zones: geofences in world coordinates, read from ``zones/*.geojson``.

A zone file is a GeoJSON FeatureCollection in WGS84 (lon, lat order, RFC 7946); each Feature is one zone
with a Polygon or MultiPolygon geometry and these properties (docs/ZONES.md is the full reference):

``id`` (required, unique across all files), ``name`` (required), ``kind`` (required: ``closed_mine``,
``illegal_site``, ``licensed_area`` or ``fire_watch``), ``township``, ``responsible`` (``{name, phone}`` of the
grid supervisor), ``classes`` (which detected classes trigger it; default by kind), ``buffer_m``
(licensed_area only: the band outside the licence where activity is ``beyond_boundary``), ``min_dwell_s``,
``schedule`` (time-of-day windows in local time when the zone is watched), ``permits`` (date ranges that
silence the zone). Other properties are kept in :attr:`Zone.properties`.

:func:`load_zones` turns every mistake into a one-line :class:`~pipeline.errors.UserError` naming the file,
the feature (index and id), what was expected and what was found.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shapely import MultiPolygon, Polygon
from shapely.validation import explain_validity

from pipeline.errors import UserError
from pipeline.types import CLASSES, RuleName, ZoneRef
from pipeline.zones.geojson import is_position, polygon_geometry

ZONE_KINDS: tuple[str, ...] = ("closed_mine", "illegal_site", "licensed_area", "fire_watch")

#: Classes that trigger a zone when its file does not list ``classes``.
DEFAULT_CLASSES: dict[str, tuple[str, ...]] = {
    "closed_mine": ("excavator", "truck"),
    "illegal_site": ("excavator", "truck"),
    "licensed_area": ("excavator", "truck"),
    "fire_watch": ("fire", "smoke"),
}

#: The rule an alert in a zone of this kind carries (licensed areas alert only beyond their boundary).
RULE_OF_KIND: dict[str, RuleName] = {
    "closed_mine": "closed_mine",
    "illegal_site": "illegal_site",
    "licensed_area": "beyond_boundary",
    "fire_watch": "fire_watch",
}

DEFAULT_TZ = "Asia/Shanghai"

#: ``crs`` names (old GeoJSON) accepted as WGS84; CGCS2000 geographic coordinates differ from WGS84 by
#: centimetres, far below any camera's accuracy, so EPSG:4490 is accepted as is.
_WGS84_NAMES = {
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:epsg::4326",
    "epsg:4326",
    "crs84",
    "urn:ogc:def:crs:epsg::4490",
    "epsg:4490",
}

#: every property a zone may have, in the order zone files are written (pipeline/zones/io.py).
PROPERTY_ORDER: tuple[str, ...] = (
    "id",
    "name",
    "kind",
    "township",
    "responsible",
    "classes",
    "buffer_m",
    "min_dwell_s",
    "schedule",
    "permits",
)
_KNOWN_PROPERTIES = set(PROPERTY_ORDER)
_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A time-of-day window in local time; ``end`` before ``start`` wraps past midnight (22:00-06:00)."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        if self.start == self.end:  # 00:00-00:00 (or 08:00-08:00): the whole day
            return True
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Permit:
    """A permit (or stop order lifted, inspection, licensed work…) that silences the zone on these dates.

    ``from_date`` and ``to_date`` are local calendar dates, both included.
    """

    from_date: date
    to_date: date
    note: str = ""

    def covers(self, day: date) -> bool:
        return self.from_date <= day <= self.to_date


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a zone is watched: local time-of-day windows (none = all day) in time zone ``tz``
    (None: the box's configured ``zones.tz``, passed in as ``default_tz``)."""

    windows: tuple[TimeWindow, ...] = ()
    tz: str | None = None

    def tz_name(self, default_tz: str = DEFAULT_TZ) -> str:
        return self.tz or default_tz

    def local(self, t_utc_s: float, default_tz: str = DEFAULT_TZ) -> datetime:
        return datetime.fromtimestamp(t_utc_s, UTC).astimezone(ZoneInfo(self.tz_name(default_tz)))

    def watched_at(self, t_utc_s: float, default_tz: str = DEFAULT_TZ) -> bool:
        if not self.windows:
            return True
        now = self.local(t_utc_s, default_tz).time()
        return any(w.contains(now) for w in self.windows)


@dataclass(frozen=True, slots=True, eq=False)
class Zone:
    """One geofence. ``polygon`` is a shapely (Multi)Polygon in WGS84 ``(lon, lat)``.

    Compared and hashed by identity (usable as a dict key); zones are named by ``id``.
    """

    id: str
    name: str
    kind: str
    polygon: Polygon | MultiPolygon
    township: str = ""
    responsible: Mapping[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    buffer_m: float = 0.0
    min_dwell_s: float = 0.0
    schedule: Schedule = field(default_factory=Schedule)
    permits: tuple[Permit, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)  # every property of the feature, as written
    source: str = ""  # file the zone came from (for messages)

    @property
    def rule(self) -> RuleName:
        """The rule name alerts in this zone carry."""
        return RULE_OF_KIND[self.kind]

    def triggers(self, class_name: str) -> bool:
        return class_name in self.classes

    def permit_at(self, t_utc_s: float, default_tz: str = DEFAULT_TZ) -> Permit | None:
        """The permit that silences the zone at this time, if any (by local date)."""
        if not self.permits:
            return None
        day = self.schedule.local(t_utc_s, default_tz).date()
        for permit in self.permits:
            if permit.covers(day):
                return permit
        return None

    def silenced_why(self, t_utc_s: float, default_tz: str = DEFAULT_TZ) -> str | None:
        """Why the zone raises no alert at this time (``None``: it is watched).

        ``default_tz``: time zone of schedules and permit dates for zones that name none (``zones.tz``).
        """
        if not self.schedule.watched_at(t_utc_s, default_tz):
            windows = ", ".join(str(w) for w in self.schedule.windows)
            return f"outside its schedule ({windows} {self.schedule.tz_name(default_tz)})"
        permit = self.permit_at(t_utc_s, default_tz)
        if permit is not None:
            note = f": {permit.note}" if permit.note else ""
            return f"permit {permit.from_date}..{permit.to_date}{note}"
        return None

    def watched_at(self, t_utc_s: float, default_tz: str = DEFAULT_TZ) -> bool:
        return self.silenced_why(t_utc_s, default_tz) is None

    def outline_lonlat(self) -> list[list[tuple[float, float]]]:
        """Exterior rings as ``[(lon, lat), …]`` (one per polygon part), for overlays and maps."""
        parts = self.polygon.geoms if isinstance(self.polygon, MultiPolygon) else [self.polygon]
        return [[(float(x), float(y)) for x, y in part.exterior.coords] for part in parts]


def zone_to_ref(zone: Zone, distance_to_boundary_m: float | None = None) -> ZoneRef:
    """The part of a zone an alert carries (``distance_to_boundary_m``: >0 inside, <0 outside)."""
    return ZoneRef(
        id=zone.id,
        name=zone.name,
        kind=zone.kind,
        township=zone.township,
        responsible=dict(zone.responsible),
        distance_to_boundary_m=distance_to_boundary_m,
    )


# ---------------------------------------------------------------------------------------------- loading


def zone_files(dir_or_files: str | Path | Iterable[str | Path]) -> list[Path]:
    """``*.geojson`` (and ``*.json``) files of a folder, sorted; or the given files as they are."""
    items = [dir_or_files] if isinstance(dir_or_files, str | Path) else list(dir_or_files)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in (".geojson", ".json")))
        elif path.exists():
            files.append(path)
        else:
            raise UserError(str(path), None, "a zone file or a folder of *.geojson files", "no such file")
    return files


def load_zones(dir_or_files: str | Path | Iterable[str | Path], default_tz: str | None = None) -> list[Zone]:
    """Read and validate every zone in a folder (``*.geojson``) or the given files.

    Raises :class:`UserError` on the first mistake (one line: file, feature index and id, expected, found).
    An empty folder gives an empty list (a box may watch for fire anywhere without zones).
    ``default_tz`` fixes the time zone of zones that name none; left None, the rules apply ``zones.tz``.
    """
    if default_tz is not None:
        _check_tz(default_tz, "zones", "tz")
    zones: list[Zone] = []
    seen: dict[str, str] = {}
    for path in zone_files(dir_or_files):
        for zone in load_zone_file(path, default_tz):
            if zone.id in seen:
                raise UserError(
                    str(path),
                    f"features (id={zone.id}).properties.id",
                    "a zone id used once across all zone files",
                    f"{zone.id!r} also in {seen[zone.id]}",
                )
            seen[zone.id] = str(path)
            zones.append(zone)
    return zones


def load_zone_file(path: str | Path, default_tz: str | None = None) -> list[Zone]:
    """Zones of one GeoJSON file (ids unique within it)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(source, None, "an existing zone file", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(source, None, "a readable UTF-8 file", exc) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(source, f"line {exc.lineno}, column {exc.colno}", "valid JSON", exc.msg) from None
    return parse_feature_collection(data, source, default_tz)


def parse_feature_collection(data: Any, source: str, default_tz: str | None = None) -> list[Zone]:
    """Zones of a parsed GeoJSON document (a FeatureCollection, or a single Feature)."""
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = {"type": "FeatureCollection", "features": [data]}
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise UserError(source, "type", "a GeoJSON FeatureCollection", found)
    _check_crs(data.get("crs"), source)
    features = data.get("features")
    if not isinstance(features, list):
        raise UserError(source, "features", "a list of Features", type(features).__name__)
    zones: list[Zone] = []
    ids: dict[str, int] = {}
    for index, feature in enumerate(features):
        zone = parse_feature(feature, index, source, default_tz)
        if zone.id in ids:
            raise UserError(
                source,
                f"features[{index}] (id={zone.id}).properties.id",
                "a zone id used once",
                f"{zone.id!r} again (first at features[{ids[zone.id]}])",
            )
        ids[zone.id] = index
        zones.append(zone)
    return zones


def _check_crs(crs: Any, source: str) -> None:
    if crs is None:
        return
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) else crs
    if not isinstance(name, str) or name.strip().lower() not in _WGS84_NAMES:
        raise UserError(
            source,
            "crs",
            "WGS84 lon/lat (RFC 7946; convert other systems with `minewatch zones import`)",
            name,
        )


def _check_tz(tz: str, source: str, where: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(source, where, "an IANA time zone such as Asia/Shanghai", tz) from None


def parse_feature(feature: Any, index: int, source: str, default_tz: str | None = None) -> Zone:
    """One Feature → :class:`Zone` (``index`` names it in messages)."""
    where = f"features[{index}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        found = feature.get("type") if isinstance(feature, dict) else type(feature).__name__
        raise UserError(source, f"{where}.type", "a GeoJSON Feature", found)
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise UserError(source, f"{where}.properties", "an object with id, name and kind", type(props).__name__)
    raw_id = props.get("id", feature.get("id"))
    if raw_id is None:
        raise UserError(source, f"{where}.properties.id", "this required property (a unique zone id)", "nothing")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or not str(raw_id).strip():
        raise UserError(source, f"{where}.properties.id", "a non-empty string", raw_id)
    zone_id = str(raw_id).strip()
    where = f"features[{index}] (id={zone_id})"
    p = f"{where}.properties"

    def fail(name: str, expected: str, found: object) -> UserError:
        return UserError(source, f"{p}.{name}" if name else p, expected, found)

    name = props.get("name")
    if name is None:
        raise fail("name", "this required property (the zone's name)", "nothing")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "a non-empty string", repr(name))
    kind = props.get("kind")
    if kind is None:
        raise fail("kind", f"this required property (one of {', '.join(ZONE_KINDS)})", "nothing")
    if kind not in ZONE_KINDS:
        raise fail("kind", f"one of {', '.join(ZONE_KINDS)}", kind)
    township = props.get("township", "")
    if township is None:
        township = ""
    if not isinstance(township, str):
        raise fail("township", "a string", township)
    responsible = _parse_responsible(props.get("responsible"), fail)
    classes = _parse_classes(props.get("classes"), kind, fail)
    buffer_m = _number(props.get("buffer_m", 0.0), "buffer_m", 0.0, 10_000.0, fail)
    if buffer_m > 0 and kind != "licensed_area":
        raise fail("buffer_m", "buffer_m only on licensed_area zones (0 or absent here)", buffer_m)
    min_dwell_s = _number(props.get("min_dwell_s", 0.0), "min_dwell_s", 0.0, 86_400.0, fail)
    schedule = _parse_schedule(props.get("schedule"), default_tz, source, p, fail)
    permits = _parse_permits(props.get("permits"), fail)
    polygon = _parse_geometry(feature.get("geometry"), source, f"{where}.geometry")
    return Zone(
        id=zone_id,
        name=name.strip(),
        kind=kind,
        polygon=polygon,
        township=township,
        responsible=responsible,
        classes=classes,
        buffer_m=buffer_m,
        min_dwell_s=min_dwell_s,
        schedule=schedule,
        permits=permits,
        properties=dict(props),
        source=source,
    )


FailFn = Callable[[str, str, object], UserError]


def _parse_responsible(value: Any, fail: FailFn) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("responsible", "an object {name, phone} (the grid supervisor)", value)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise fail(f"responsible.{key}", "a string", item)
        out[str(key)] = str(item)
    return out


def _parse_classes(value: Any, kind: str, fail: FailFn) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_CLASSES[kind]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail("classes", f"a non-empty list of classes out of {', '.join(CLASSES)}", value)
    for item in value:
        if item not in CLASSES:
            raise fail("classes", f"classes out of {', '.join(CLASSES)}", item)
    return tuple(dict.fromkeys(value))


def _number(value: Any, name: str, low: float, high: float, fail: FailFn) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(name, f"a number from {low:g} to {high:g}", value)
    if not low <= value <= high:
        raise fail(name, f"a number from {low:g} to {high:g}", value)
    return float(value)


def _parse_window(value: Any, name: str, fail: FailFn) -> TimeWindow:
    match = _WINDOW_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise fail(name, 'a time-of-day window "HH:MM-HH:MM" (local time)', value)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2 == 0:
        h2 = 0
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise fail(name, "hours 00-23 (24:00 as an end) and minutes 00-59", value)
    return TimeWindow(time(h1, m1), time(h2, m2))


def _parse_schedule(value: Any, default_tz: str | None, source: str, p: str, fail: FailFn) -> Schedule:
    if value is None:
        return Schedule((), default_tz)
    tz = default_tz
    windows_raw: Any = value
    if isinstance(value, dict):
        unknown = set(value) - {"windows", "tz"}
        if unknown:
            raise fail("schedule", "an object with windows and tz only", f"unknown key {sorted(unknown)[0]!r}")
        if "tz" in value:
            tz = value["tz"]
            if not isinstance(tz, str):
                raise fail("schedule.tz", "an IANA time zone such as Asia/Shanghai", tz)
            _check_tz(tz, source, f"{p}.schedule.tz")
        windows_raw = value.get("windows", [])
    if isinstance(windows_raw, str):
        windows_raw = [windows_raw]
    if not isinstance(windows_raw, list):
        raise fail("schedule", 'a list of "HH:MM-HH:MM" windows or {"windows": [...], "tz": ...}', value)
    windows = tuple(_parse_window(w, f"schedule.windows[{i}]", fail) for i, w in enumerate(windows_raw))
    return Schedule(windows, tz)


def _parse_date(value: Any, name: str, fail: FailFn) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise fail(name, "a date YYYY-MM-DD (local)", value)


def _parse_permits(value: Any, fail: FailFn) -> tuple[Permit, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise fail("permits", "a list of {from, to, note}", value)
    permits: list[Permit] = []
    for i, item in enumerate(value):
        name = f"permits[{i}]"
        if not isinstance(item, dict):
            raise fail(name, "an object {from, to, note}", item)
        unknown = set(item) - {"from", "to", "note"}
        if unknown:
            raise fail(name, "only from, to and note", f"unknown key {sorted(unknown)[0]!r}")
        if "from" not in item or "to" not in item:
            missing = "from" if "from" not in item else "to"
            raise fail(f"{name}.{missing}", "this required date (YYYY-MM-DD)", "nothing")
        start = _parse_date(item["from"], f"{name}.from", fail)
        end = _parse_date(item["to"], f"{name}.to", fail)
        if end < start:
            raise fail(f"{name}.to", f"a date on or after from ({start})", str(end))
        note = item.get("note", "")
        if not isinstance(note, str):
            raise fail(f"{name}.note", "a string", note)
        permits.append(Permit(start, end, note))
    return tuple(permits)


def _parse_ring(ring: Any, source: str, where: str) -> list[tuple[float, float]]:
    if not isinstance(ring, list) or len(ring) < 4:
        found = f"{len(ring)} positions" if isinstance(ring, list) else type(ring).__name__
        raise UserError(source, where, "a linear ring of at least 4 [lon, lat] positions", found)
    points: list[tuple[float, float]] = []
    for j, pos in enumerate(ring):
        if not is_position(pos):
            raise UserError(source, f"{where}[{j}]", "a position [lon, lat] of two numbers", pos)
        lon, lat = float(pos[0]), float(pos[1])
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise UserError(
                source,
                f"{where}[{j}]",
                "[lon, lat] with lon in -180..180 and lat in -90..90 (GeoJSON puts longitude first)",
                [lon, lat],
            )
        points.append((lon, lat))
    if points[0] != points[-1]:
        raise UserError(
            source, where, "a closed ring (last position equal to the first)", f"{points[0]} … {points[-1]}"
        )
    return points


def _parse_polygon(coords: Any, source: str, where: str) -> Polygon:
    if not isinstance(coords, list) or not coords:
        raise UserError(source, where, "a list of linear rings (exterior first)", coords)
    rings = [_parse_ring(ring, source, f"{where}[{k}]") for k, ring in enumerate(coords)]
    return Polygon(rings[0], rings[1:])


def _parse_geometry(geometry: Any, source: str, where: str) -> Polygon | MultiPolygon:
    gtype, coords = polygon_geometry(geometry, source, where)
    polygon: Polygon | MultiPolygon
    if gtype == "Polygon":
        polygon = _parse_polygon(coords, source, f"{where}.coordinates")
    else:
        if not isinstance(coords, list) or not coords:
            raise UserError(source, f"{where}.coordinates", "a list of polygons", coords)
        parts: Sequence[Polygon] = [
            _parse_polygon(c, source, f"{where}.coordinates[{k}]") for k, c in enumerate(coords)
        ]
        polygon = MultiPolygon(parts)
    if not polygon.is_valid:
        raise UserError(
            source, where, "a valid polygon (no self-intersection, rings not crossing)", explain_validity(polygon)
        )
    if polygon.area <= 0:
        raise UserError(source, where, "a polygon with a non-zero area", "zero area")
    return polygon

"""Zone files: loading, defaults, schedules, permits, and one-line errors for every kind of mistake."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import UserError
from pipeline.zones.model import DEFAULT_CLASSES, Zone, load_zone_file, load_zones, zone_to_ref

SQUARE = [[111.60, 38.70], [111.61, 38.70], [111.61, 38.71], [111.60, 38.71], [111.60, 38.70]]


def feature(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "z1", "name": "Zone one", "kind": "closed_mine"}
    base.update(props)
    for key in [k for k, v in base.items() if v is _DROP]:
        del base[key]
    return {"type": "Feature", "properties": base, "geometry": {"type": "Polygon", "coordinates": [SQUARE]}}


_DROP = object()


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def write(tmp_path: Path, data: Any, name: str = "zones.geojson") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_loads_all_properties(tmp_path: Path) -> None:
    f = feature(
        kind="licensed_area",
        township="Gaojiahui",
        responsible={"name": "Wang Li", "phone": "13800000000"},
        classes=["excavator"],
        buffer_m=50,
        min_dwell_s=30,
        schedule={"windows": ["20:00-06:00"], "tz": "Asia/Urumqi"},
        permits=[{"from": "2026-06-01", "to": "2026-06-03", "note": "survey"}],
        area_ha=12.5,
    )
    [zone] = load_zones(write(tmp_path, collection(f)))
    assert zone.id == "z1" and zone.name == "Zone one" and zone.kind == "licensed_area"
    assert zone.township == "Gaojiahui"
    assert zone.responsible == {"name": "Wang Li", "phone": "13800000000"}
    assert zone.classes == ("excavator",)
    assert zone.buffer_m == 50.0 and zone.min_dwell_s == 30.0
    assert zone.schedule.tz == "Asia/Urumqi" and [str(w) for w in zone.schedule.windows] == ["20:00-06:00"]
    assert zone.permits[0].from_date == date(2026, 6, 1) and zone.permits[0].note == "survey"
    assert zone.properties["area_ha"] == 12.5
    assert zone.rule == "beyond_boundary"
    assert zone.polygon.bounds == (111.60, 38.70, 111.61, 38.71)
    assert zone.outline_lonlat()[0][0] == (111.60, 38.70)


@pytest.mark.parametrize("kind", sorted(DEFAULT_CLASSES))
def test_default_classes_by_kind(tmp_path: Path, kind: str) -> None:
    [zone] = load_zones(write(tmp_path, collection(feature(kind=kind))))
    assert zone.classes == DEFAULT_CLASSES[kind]
    assert zone.schedule.windows == () and zone.permits == () and zone.min_dwell_s == 0.0


def test_folder_loads_sorted_files_and_multipolygon(tmp_path: Path) -> None:
    second = [[[lon + 0.05, lat] for lon, lat in SQUARE]]
    multi = feature(id="m1")
    multi["geometry"] = {"type": "MultiPolygon", "coordinates": [[SQUARE], second]}
    write(tmp_path, collection(multi), "b.geojson")
    write(tmp_path, collection(feature(id="a1", kind="fire_watch")), "a.geojson")
    write(tmp_path, "not a zone file", "notes.txt")
    zones = load_zones(tmp_path)
    assert [z.id for z in zones] == ["a1", "m1"]
    assert zones[1].polygon.geom_type == "MultiPolygon" and len(zones[1].outline_lonlat()) == 2


def test_empty_folder_has_no_zones(tmp_path: Path) -> None:
    assert load_zones(tmp_path) == []


def test_single_feature_document_and_numeric_id(tmp_path: Path) -> None:
    [zone] = load_zone_file(write(tmp_path, feature(id=17)))
    assert zone.id == "17"


def test_zone_to_ref(tmp_path: Path) -> None:
    [zone] = load_zones(write(tmp_path, collection(feature(township="T", responsible={"name": "N", "phone": "1"}))))
    ref = zone_to_ref(zone, 12.5)
    assert (ref.id, ref.name, ref.kind, ref.township) == ("z1", "Zone one", "closed_mine", "T")
    assert ref.responsible == {"name": "N", "phone": "1"} and ref.distance_to_boundary_m == 12.5
    ref.responsible["name"] = "changed"
    assert zone.responsible["name"] == "N"  # the ref is a copy


def _utc(local: str, tz: str = "Asia/Shanghai") -> float:
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC).timestamp()


@pytest.mark.parametrize(
    ("windows", "local_time", "watched"),
    [
        ([], "2026-06-01T12:00", True),
        (["08:00-18:00"], "2026-06-01T07:59", False),
        (["08:00-18:00"], "2026-06-01T08:00", True),
        (["08:00-18:00"], "2026-06-01T18:00", False),  # end excluded
        (["20:00-06:00"], "2026-06-01T23:30", True),  # wraps midnight
        (["20:00-06:00"], "2026-06-02T05:59", True),
        (["20:00-06:00"], "2026-06-02T12:00", False),
        (["06:00-08:00", "18:00-24:00"], "2026-06-01T23:59", True),
        (["06:00-08:00", "18:00-24:00"], "2026-06-01T12:00", False),
        (["00:00-00:00"], "2026-06-01T03:00", True),  # whole day
    ],
)
def test_schedule_windows_in_local_time(tmp_path: Path, windows: list[str], local_time: str, watched: bool) -> None:
    [zone] = load_zones(write(tmp_path, collection(feature(schedule=windows))))
    assert zone.watched_at(_utc(local_time)) is watched
    assert (zone.silenced_why(_utc(local_time)) is None) is watched


def test_schedule_uses_configured_default_tz(tmp_path: Path) -> None:
    path = write(tmp_path, collection(feature(schedule=["08:00-18:00"])))
    t = _utc("2026-06-01T09:00", "Asia/Shanghai")  # 09:00 in Shanghai is 01:00 UTC
    assert load_zones(path)[0].watched_at(t)
    assert not load_zones(path)[0].watched_at(t, "UTC")  # the box's zones.tz
    assert not load_zones(path, default_tz="UTC")[0].watched_at(t)  # fixed at load time
    own = write(tmp_path, collection(feature(schedule={"windows": ["08:00-18:00"], "tz": "Asia/Shanghai"})))
    assert load_zones(own)[0].watched_at(t, "UTC")  # a zone's own tz wins
    no_tz = write(tmp_path, collection(feature(schedule={"windows": ["08:00-18:00"]})))
    assert load_zones(no_tz)[0].schedule.tz is None


@pytest.mark.parametrize(
    ("local_time", "silenced"),
    [
        ("2026-05-31T23:59", False),
        ("2026-06-01T00:00", True),  # local midnight, though still 31 May in UTC
        ("2026-06-03T23:59", True),  # last day included
        ("2026-06-04T00:00", False),
    ],
)
def test_permit_silences_by_local_date(tmp_path: Path, local_time: str, silenced: bool) -> None:
    f = feature(permits=[{"from": "2026-06-01", "to": "2026-06-03", "note": "reclamation work"}])
    [zone] = load_zones(write(tmp_path, collection(f)))
    why = zone.silenced_why(_utc(local_time))
    assert (why is not None) is silenced
    if silenced:
        assert "reclamation work" in str(why)


def _geom(coords: Any, gtype: str = "Polygon") -> dict[str, Any]:
    f = feature()
    f["geometry"] = {"type": gtype, "coordinates": coords}
    return f


BOWTIE = [[111.60, 38.70], [111.61, 38.71], [111.61, 38.70], [111.60, 38.71], [111.60, 38.70]]

# (name, document, where the message points, what it says was expected, what it says was found)
ERRORS: list[tuple[str, Any, str, str, str]] = [
    ("not json", "{oops", "line 1, column 2", "valid JSON", "Expecting property name"),
    ("not a collection", {"type": "Polygon"}, ": type", "a GeoJSON FeatureCollection", "Polygon"),
    ("features not a list", {"type": "FeatureCollection", "features": {}}, ": features", "a list of Features", "dict"),
    ("feature not a feature", collection({"type": "Point"}), "features[0].type", "a GeoJSON Feature", "Point"),
    ("missing id", collection(feature(id=_DROP)), "features[0].properties.id", "this required property", "nothing"),
    ("missing name", collection(feature(name=_DROP)), "features[0] (id=z1).properties.name", "required", "nothing"),
    ("missing kind", collection(feature(kind=_DROP)), "(id=z1).properties.kind", "this required property", "nothing"),
    ("unknown kind", collection(feature(kind="quarry")), "(id=z1).properties.kind", "one of closed_mine", "quarry"),
    ("empty name", collection(feature(name="  ")), "properties.name", "a non-empty string", "' '"),
    (
        "duplicate id",
        collection(feature(), feature(name="Other")),
        "features[1] (id=z1).properties.id",
        "a zone id used once",
        "again (first at features[0])",
    ),
    ("unknown class", collection(feature(classes=["bulldozer"])), "properties.classes", "classes out of", "bulldozer"),
    ("empty classes", collection(feature(classes=[])), "properties.classes", "a non-empty list", "[]"),
    ("buffer on mine", collection(feature(buffer_m=30)), "properties.buffer_m", "only on licensed_area", "30.0"),
    (
        "negative buffer",
        collection(feature(kind="licensed_area", buffer_m=-5)),
        "properties.buffer_m",
        "a number from 0 to 10000",
        "-5",
    ),
    ("dwell not a number", collection(feature(min_dwell_s="ten")), "properties.min_dwell_s", "a number", "ten"),
    (
        "responsible a string",
        collection(feature(responsible="Wang")),
        "properties.responsible",
        "{name, phone}",
        "Wang",
    ),
    ("bad window", collection(feature(schedule=["8-18"])), "schedule.windows[0]", "HH:MM-HH:MM", "8-18"),
    ("hour 25", collection(feature(schedule=["25:00-06:00"])), "schedule.windows[0]", "hours 00-23", "25:00-06:00"),
    (
        "unknown tz",
        collection(feature(schedule={"windows": ["08:00-18:00"], "tz": "Asia/Beijing"})),
        "properties.schedule.tz",
        "an IANA time zone",
        "Asia/Beijing",
    ),
    (
        "permit bad date",
        collection(feature(permits=[{"from": "2026-13-01", "to": "2026-12-31"}])),
        "permits[0].from",
        "a date YYYY-MM-DD",
        "2026-13-01",
    ),
    (
        "permit ends first",
        collection(feature(permits=[{"from": "2026-06-05", "to": "2026-06-01"}])),
        "permits[0].to",
        "on or after from (2026-06-05)",
        "2026-06-01",
    ),
    (
        "permit missing to",
        collection(feature(permits=[{"from": "2026-06-05"}])),
        "permits[0].to",
        "this required date",
        "nothing",
    ),
    (
        "no geometry",
        collection({"type": "Feature", "properties": {"id": "z1", "name": "n", "kind": "closed_mine"}}),
        "(id=z1).geometry",
        "a Polygon or MultiPolygon geometry",
        "nothing",
    ),
    (
        "point geometry",
        collection(_geom([111.6, 38.7], "Point")),
        "(id=z1).geometry.type",
        "Polygon or MultiPolygon",
        "Point",
    ),
    (
        "lat out of range",
        collection(_geom([[[111.60, 38.70], [111.61, 95.0], [111.62, 38.70], [111.60, 38.70]]])),
        "(id=z1).geometry.coordinates[0][1]",
        "lat in -90..90",
        "[111.61, 95.0]",
    ),
    (
        "lat and lon swapped",
        collection(_geom([[[38.70, 111.60], [38.71, 111.60], [38.71, 111.61], [38.70, 111.60]]])),
        "geometry.coordinates[0][0]",
        "GeoJSON puts longitude first",
        "[38.7, 111.6]",
    ),
    (
        "not a position",
        collection(_geom([[[111.6], [111.6, 38.7], [111.7, 38.7], [111.6]]])),
        "geometry.coordinates[0][0]",
        "a position [lon, lat]",
        "[111.6]",
    ),
    ("too few points", collection(_geom([SQUARE[:3]])), "geometry.coordinates[0]", "at least 4", "3 positions"),
    (
        "ring not closed",
        collection(_geom([SQUARE[:4] + [[111.60, 38.705]]])),
        "geometry.coordinates[0]",
        "a closed ring",
        "(111.6, 38.7) … (111.6, 38.705)",
    ),
    ("self-intersection", collection(_geom([BOWTIE])), "(id=z1).geometry", "a valid polygon", "Self-intersection"),
    (
        "projected crs",
        {**collection(feature()), "crs": {"type": "name", "properties": {"name": "EPSG:4547"}}},
        ": crs",
        "WGS84 lon/lat",
        "EPSG:4547",
    ),
]


@pytest.mark.parametrize(("name", "doc", "where", "expected", "found"), ERRORS, ids=[e[0] for e in ERRORS])
def test_zone_file_errors_are_one_line(
    tmp_path: Path, name: str, doc: Any, where: str, expected: str, found: str
) -> None:
    path = write(tmp_path, copy.deepcopy(doc))
    with pytest.raises(UserError) as info:
        load_zones(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path) + ":"), message
    assert where in message, message
    assert f"expected {expected}" in message or expected in message.split("expected", 1)[1], message
    assert found in message.split(", found", 1)[1], message


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    write(tmp_path, collection(feature()), "a.geojson")
    write(tmp_path, collection(feature(kind="fire_watch")), "b.geojson")
    with pytest.raises(
        UserError,
        match=r"b\.geojson: features \(id=z1\)\.properties\.id: expected a zone id used once"
        r" across all zone files, found 'z1' also in .*a\.geojson",
    ):
        load_zones(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_zones(tmp_path / "nope.geojson")


def test_wgs84_crs_names_accepted(tmp_path: Path) -> None:
    doc = {**collection(feature()), "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}}
    assert [z.id for z in load_zones(write(tmp_path, doc))] == ["z1"]


def test_zone_is_frozen(tmp_path: Path) -> None:
    [zone] = load_zones(write(tmp_path, collection(feature())))
    assert isinstance(zone, Zone)
    with pytest.raises(AttributeError):
        zone.kind = "fire_watch"  # type: ignore[misc]
    assert {zone: 1}[zone] == 1  # hashable: a dict key

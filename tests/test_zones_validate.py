"""Zone validation: a table of broken zones with their messages, safe repairs, areas, and camera visibility."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import LineString, shape

from pipeline.config import CameraConfig
from pipeline.errors import UserError
from pipeline.geo.camera import CameraModel
from pipeline.geo.coords import LocalFrame
from pipeline.zones.model import load_zones, parse_feature
from pipeline.zones.validate import Problem, area_m2, check_folder, fixed_texts, seen_by

LAT0, LON0 = 38.70, 111.60
FRAME = LocalFrame(LAT0, LON0)


def lonlat(points_en: list[tuple[float, float]]) -> list[list[float]]:
    """East/north metres around the tower → [lon, lat] positions."""
    out = []
    for e, n in points_en:
        lat, lon = FRAME.to_wgs84(e, n)
        out.append([lon, lat])
    return out


def square(e0: float, n0: float, size: float) -> list[tuple[float, float]]:
    return [(e0, n0), (e0 + size, n0), (e0 + size, n0 + size), (e0, n0 + size), (e0, n0)]


def feature(ring_en: list[tuple[float, float]] | None = None, raw: list[list[float]] | None = None,
            **props: Any) -> dict[str, Any]:
    base = {"id": "z1", "name": "Pit", "kind": "closed_mine"} | props
    base = {k: v for k, v in base.items() if v is not None}
    coords = raw if raw is not None else lonlat(ring_en or square(100, -50, 100))
    return {"type": "Feature", "properties": base, "geometry": {"type": "Polygon", "coordinates": [coords]}}


def write(folder: Path, name: str, *features: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}), encoding="utf-8")
    return path


BOWTIE = [(0.0, 0.0), (200.0, 200.0), (200.0, 0.0), (0.0, 200.0), (0.0, 0.0)]


def bowtie_crossing() -> tuple[float, float]:
    ring = lonlat(BOWTIE)
    p = LineString([ring[0], ring[1]]).intersection(LineString([ring[2], ring[3]]))
    return p.x, p.y


CASES: list[tuple[str, Callable[[], dict[str, Any]], str, str]] = [
    ("self-intersection", lambda: feature(BOWTIE), "error",
     r"features\[0\] \(id=z1\)\.geometry: error: expected a valid polygon \(no self-intersection\) \(--fix can repair"
     r" it with make_valid\), found Self-intersection at lon 111\.\d{8}, lat 38\.\d{8}"),
    ("ring not closed", lambda: feature(raw=lonlat(square(100, -50, 100))[:-1]), "warning",
     r"geometry\.coordinates\[0\]: warning: expected closed rings without repeats, RFC 7946 orientation, found"
     r" closed the ring"),
    ("repeated point", lambda: feature(raw=(lambda r: r[:2] + [r[1]] + r[2:])(lonlat(square(100, -50, 100)))),
     "warning", r"found dropped 1 repeated point\(s\) at index 2"),
    ("clockwise exterior", lambda: feature(square(100, -50, 100)[::-1]), "warning",
     r"found reversed the exterior ring to counter-clockwise \(RFC 7946\)"),
    ("unknown kind", lambda: feature(kind="quarry"), "error",
     r"features\[0\] \(id=z1\)\.properties\.kind: error: expected one of closed_mine, illegal_site, licensed_area,"
     r" fire_watch, found quarry"),
    ("missing name", lambda: feature(name=None), "error",
     r"properties\.name: error: expected this required property \(the zone's name\), found nothing"),
    ("missing id", lambda: feature(id=None), "error",
     r"features\[0\]\.properties\.id: error: expected this required property \(a unique zone id\), found nothing"),
    ("tiny", lambda: feature(square(100, 0, 5)), "warning",
     r"geometry: warning: expected an area from 100 m² to 1000\.000 km² \(wrong CRS or units\?\), found 25 m²"),
    ("huge", lambda: feature(square(-20000, -20000, 40000)), "warning",
     r"found 1[56]\d\d\.\d{3} km²"),
    ("projected metres", lambda: feature(raw=[[37552194.8, 4285371.1], [37552294.8, 4285371.1],
                                               [37552294.8, 4285471.1], [37552194.8, 4285371.1]]), "error",
     r"geometry: error: expected WGS84 \[lon, lat\] degrees \(projected metres: use `minewatch zones import --crs`\),"
     r" found \[3\.75522e\+07, 4\.28537e\+06\]"),
    ("two distinct points", lambda: feature(raw=lonlat([(0, 0), (10, 0), (0, 0), (10, 0)])), "error",
     r"error: expected a ring of at least 3 distinct points, found 2"),
    ("buffer on a closed mine", lambda: feature(buffer_m=50), "error",
     r"properties\.buffer_m: error: expected buffer_m only on licensed_area zones"),
]


@pytest.mark.parametrize(("case", "make", "severity", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_problem_table(tmp_path: Path, case: str, make: Callable[[], dict[str, Any]], severity: str,
                       pattern: str) -> None:
    write(tmp_path, "z.geojson", make())
    report = check_folder(tmp_path)
    lines = [p.line() for p in report.problems]
    matching = [p for p in report.problems if re.search(pattern, p.line())]
    assert matching, lines
    assert matching[0].severity == severity
    assert all(line.startswith(str(tmp_path / "z.geojson")) for line in lines)
    assert (len(report.errors) > 0) == (severity == "error")


def test_self_intersection_is_located_where_the_edges_cross(tmp_path: Path) -> None:
    write(tmp_path, "z.geojson", feature(BOWTIE))
    (problem,) = check_folder(tmp_path).errors
    lon, lat = (float(v) for v in re.findall(r"lon (\S+), lat (\S+)", problem.found)[0])
    want_lon, want_lat = bowtie_crossing()
    assert math.hypot((lon - want_lon) * 87_000, (lat - want_lat) * 111_000) < 0.01  # within a centimetre


def test_byte_order_mark_is_an_error_fix_removes_it(tmp_path: Path) -> None:
    path = write(tmp_path, "z.geojson", feature())
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.raises(UserError):
        load_zones(tmp_path)  # what the daemon would do with it
    (problem,) = check_folder(tmp_path).errors
    assert problem.line() == f"{path}: error: expected UTF-8 without a byte-order mark (the daemon refuses it;" \
        " --fix removes it), found a byte-order mark"
    report = check_folder(tmp_path, fix=True)
    assert not report.errors
    assert [p.line() for p in report.fixes] == [f"{path}: fixed: removed the UTF-8 byte-order mark"]
    for target, text in fixed_texts(report).items():
        target.write_text(text, encoding="utf-8")
    assert [z.id for z in load_zones(tmp_path)] == ["z1"]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.geojson", feature())
    write(tmp_path, "b.geojson", feature(square(400, 0, 80)))
    errors = check_folder(tmp_path).errors
    assert [e.line() for e in errors] == [
        f"{tmp_path / 'b.geojson'}: (id=z1).properties.id: error: expected a zone id used once across all files,"
        f" found 'z1' also in {tmp_path / 'a.geojson'}"
    ]


def test_fix_repairs_and_says_what_it_changed(tmp_path: Path) -> None:
    open_ring = lonlat(square(100, -50, 100))[:-1]
    write(tmp_path, "a.geojson", feature(BOWTIE, id="bow"), feature(raw=open_ring, id="open"))
    write(tmp_path, "b.geojson", feature(square(300, 0, 60)[::-1], id="cw"))
    write(tmp_path, "c.geojson", feature(square(500, 0, 60), id="fine"))
    before_c = (tmp_path / "c.geojson").read_text()
    report = check_folder(tmp_path, fix=True)
    assert not report.errors
    fixed = [p.line() for p in report.fixes]
    assert any("features[0] (id=bow).geometry: fixed: Self-intersection at lon" in f and "MultiPolygon" in f
               for f in fixed), fixed
    assert any("features[1] (id=open).geometry.coordinates[0]: fixed: closed the ring" in f for f in fixed)
    assert any("(id=cw).geometry.coordinates[0]: fixed: reversed the exterior ring" in f for f in fixed)
    texts = fixed_texts(report)
    assert sorted(p.name for p in texts) == ["a.geojson", "b.geojson"]  # the good file is left alone
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    again = check_folder(tmp_path)
    assert not again.errors and not again.warnings, [p.line() for p in again.problems]
    zones = {z.id: z for z in load_zones(tmp_path)}
    # the bow tie became its two triangles: 2 × ½ × 200 × 100 m²
    assert zones["bow"].polygon.geom_type == "MultiPolygon"
    assert area_m2(zones["bow"].polygon) == pytest.approx(20_000, rel=1e-3)
    assert (tmp_path / "c.geojson").read_text() == before_c


def test_problem_dict_for_json() -> None:
    p = Problem("f.geojson", "features[0]", "x", "y", "warning")
    assert p.as_dict() == {"file": "f.geojson", "feature": "features[0]", "severity": "warning", "expected": "x",
                           "found": "y", "fixed": None}


@pytest.mark.parametrize("size_m", [10.0, 1000.0])
def test_area_in_equal_area_projection(size_m: float) -> None:
    poly = shape({"type": "Polygon", "coordinates": [lonlat(square(2000, 3000, size_m))]})
    assert area_m2(poly) == pytest.approx(size_m**2, rel=1e-4)


# --------------------------------------------------------------------------------------------- visibility


def camera(**extra: Any) -> CameraConfig:
    base = {"id": "t1", "source": "x.mp4", "lat": LAT0, "lon": LON0, "mast_height_m": 25, "pan_deg": 90,
            "tilt_deg": -8, "hfov_deg": 60}
    return CameraConfig.model_validate(base | extra)


def zone_at(ring_en: list[tuple[float, float]]) -> Any:
    return parse_feature(feature(ring_en), 0, "mem")


VISIBILITY = [
    ("in front", square(150, -50, 100), [("t1", None)]),
    ("behind the tower", square(-250, -50, 100), []),
    ("beside, outside the field of view", square(-50, 300, 100), []),
    ("beyond the range", square(6000, -50, 100), []),
    ("around the tower, filling the view", square(-3000, -3000, 6000), [("t1", None)]),
]


@pytest.mark.parametrize(("case", "ring", "seen"), VISIBILITY, ids=[v[0] for v in VISIBILITY])
def test_seen_by_fixed_camera(case: str, ring: list[tuple[float, float]], seen: list[tuple[str, None]]) -> None:
    cam = camera()
    assert seen_by(zone_at(ring), [cam], {"t1": CameraModel.from_config(cam)}, max_range_m=5000) == seen


def test_seen_by_presets() -> None:
    cam = camera(patrol={"driver": "simulated", "presets": [
        {"name": "east", "pan_deg": 90, "tilt_deg": -8},
        {"name": "north", "pan_deg": 0, "tilt_deg": -8, "hfov_deg": 30},
        {"name": "west", "pan_deg": 270, "tilt_deg": -8},
    ]})
    models = {"t1": CameraModel.from_config(cam)}
    assert seen_by(zone_at(square(-50, 150, 100)), [cam], models) == [("t1", "north")]
    assert seen_by(zone_at(square(-250, -50, 100)), [cam], models) == [("t1", "west")]
    # a long strip along the east-north diagonal is in two presets
    strip = [(100.0, 100.0), (2000.0, 150.0), (2000.0, 300.0), (150.0, 2000.0), (100.0, 100.0)]
    assert seen_by(zone_at(strip), [cam], models) == [("t1", "east"), ("t1", "north")]


def test_not_seen_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "z.geojson", feature(square(-250, -50, 100)))
    cam = camera()
    models = {"t1": CameraModel.from_config(cam)}
    report = check_folder(tmp_path, visibility=lambda z: seen_by(z, [cam], models))
    assert [p.line() for p in report.warnings] == [
        f"{tmp_path / 'z.geojson'}: (id=z1): warning: expected a zone at least one camera or preset sees, found none"
        " sees it (check the cameras' pan, tilt, hfov and range)"
    ]
    assert not report.errors
    assert shapely.is_valid(report.zones[0].polygon)

"""Zone readers and writers: every format and CRS against pyproj, normal form, broken files, atomic writes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import shapefile
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon

from pipeline.errors import Problems, UserError
from pipeline.zones import io

LAT0, LON0 = 38.70, 111.60  # Kelan County, Shanxi: CGCS2000 3° GK zone 37 (CM 111°E), 6° zone 19 (CM 111°E)
M_PER_DEG_LAT = 111_000.0

# a 300 m × 200 m quadrilateral with a hole, in WGS84 lon/lat
RING = [(111.600, 38.700), (111.6035, 38.7001), (111.6034, 38.7019), (111.6002, 38.7017)]
HOLE = [(111.6010, 38.7005), (111.6010, 38.7010), (111.6020, 38.7010), (111.6020, 38.7005)]


def lonlat_to(crs: str, ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return [tuple(tr.transform(x, y)) for x, y in ring]


def expected_wgs84(crs: str, ring_in_crs: list[tuple[float, float]]) -> np.ndarray:
    """pyproj's own answer for the input coordinates, the yardstick of every import."""
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return np.array([tr.transform(x, y) for x, y in ring_in_crs])


def error_m(a_lonlat: np.ndarray, b_lonlat: np.ndarray) -> float:
    d = a_lonlat - b_lonlat
    return float(np.max(np.hypot(d[:, 0] * M_PER_DEG_LAT * np.cos(np.radians(LAT0)), d[:, 1] * M_PER_DEG_LAT)))


def imported_rings(path: Path, crs: str) -> list[np.ndarray]:
    features, _ = io.read_features(path)
    geom = io.to_wgs84(features[0].geometry, io.parse_crs(crs), str(path), features[0].label)
    normal = io.normal_geometry(geom)
    return [np.array(r, dtype=float) for r in normal["coordinates"]]


def same_ring(got: np.ndarray, want: np.ndarray) -> float:
    """Largest distance (m) between a written closed ring and the expected (open) ring, any start and direction."""
    got = got[:-1]
    best = np.inf
    for cand in (want, want[::-1]):
        for shift in range(len(cand)):
            rolled = np.roll(cand, shift, axis=0)
            if len(rolled) == len(got):
                best = min(best, error_m(got, rolled))
    return best


# --------------------------------------------------------------------------------------------- writers of inputs


def write_geojson(path: Path, crs: str | None, ring: list, hole: list, props: dict) -> None:
    rings = [[*map(list, ring), list(ring[0])], [*map(list, hole), list(hole[0])]]
    doc: dict = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": rings}}
    ]}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.split(':')[1]}"}}
    path.write_text(json.dumps(doc), encoding="utf-8")


def kml_doc(ring: list, hole: list, name: str, extra: dict) -> str:
    coords = " ".join(f"{x},{y},0" for x, y in [*ring, ring[0]])
    hole_c = " ".join(f"{x},{y},0" for x, y in [*hole, hole[0]])
    data = "".join(f'<Data name="{k}"><value>{v}</value></Data>' for k, v in extra.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        f"<Placemark><name>{name}</name><ExtendedData>{data}</ExtendedData><Polygon>"
        f"<outerBoundaryIs><LinearRing><coordinates>{coords}</coordinates></LinearRing></outerBoundaryIs>"
        f"<innerBoundaryIs><LinearRing><coordinates>{hole_c}</coordinates></LinearRing></innerBoundaryIs>"
        "</Polygon></Placemark></Document></kml>"
    )


def write_shapefile(path: Path, crs: str | None, ring: list, hole: list, props: dict, encoding: str = "utf-8") -> None:
    with shapefile.Writer(str(path), shapeType=shapefile.POLYGON, encoding=encoding) as w:
        for key in props:
            w.field(key, "C", 80)
        # shapefile rings: exterior clockwise, holes counter-clockwise
        ext = [*ring, ring[0]]
        if Polygon(ext).exterior.is_ccw:
            ext = ext[::-1]
        inner = [*hole, hole[0]]
        if not Polygon(inner).exterior.is_ccw:
            inner = inner[::-1]
        w.poly([ext, inner])
        w.record(*props.values())
    if crs:
        path.with_suffix(".prj").write_text(CRS.from_user_input(crs).to_wkt("WKT1_ESRI"))


# --------------------------------------------------------------------------------------------- formats × CRS

CRSS = ["EPSG:4326", "EPSG:4490", "EPSG:4525", "EPSG:4546", "EPSG:4497", "EPSG:4508"]


@pytest.mark.parametrize(
    ("fmt", "crs"), [("geojson", c) for c in CRSS] + [("shp", c) for c in CRSS] + [("zip", "EPSG:4525")]
)
def test_import_format_and_crs_matches_pyproj_to_a_millimetre(tmp_path: Path, fmt: str, crs: str) -> None:
    ring, hole = lonlat_to(crs, RING), lonlat_to(crs, HOLE)
    props = {"id": "z1", "name": "东沟 pit"}
    if fmt == "geojson":
        path = tmp_path / "in.geojson"
        write_geojson(path, crs, ring, hole, props)
    else:
        path = tmp_path / "in.shp"
        write_shapefile(path, crs, ring, hole, props)
        if fmt == "zip":
            zpath = tmp_path / "in.zip"
            with zipfile.ZipFile(zpath, "w") as zf:
                for suffix in (".shp", ".shx", ".dbf", ".prj"):
                    zf.write(path.with_suffix(suffix), f"parcel{suffix}")
            path = zpath
    features, declared = io.read_features(path)
    assert CRS.from_user_input(declared).equals(CRS.from_user_input(crs))  # the file's own CRS is found
    assert features[0].properties["name"] == "东沟 pit"
    rings = imported_rings(path, crs)
    assert same_ring(rings[0], expected_wgs84(crs, ring)) < 1e-3
    assert same_ring(rings[1], expected_wgs84(crs, hole)) < 1e-3
    # and it is where we started (pyproj round trip)
    assert same_ring(rings[0], np.array(RING)) < 1e-3


@pytest.mark.parametrize("fmt", ["kml", "kmz"])
def test_import_kml_and_kmz(tmp_path: Path, fmt: str) -> None:
    text = kml_doc(RING, HOLE, "矿区 A", {"id": "c140001", "township": "城关镇"})
    if fmt == "kml":
        path = tmp_path / "in.kml"
        path.write_text(text, encoding="utf-8")
    else:
        path = tmp_path / "in.kmz"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("doc.kml", text)
    features, declared = io.read_features(path)
    assert declared == "EPSG:4326"
    assert features[0].properties == {"name": "矿区 A", "id": "c140001", "township": "城关镇"}
    rings = imported_rings(path, "EPSG:4326")
    assert same_ring(rings[0], np.array(RING)) < 1e-3
    assert same_ring(rings[1], np.array(HOLE)) < 1e-3


def test_shapefile_gbk_attributes_without_cpg(tmp_path: Path) -> None:
    path = tmp_path / "gbk.shp"
    write_shapefile(path, "EPSG:4490", RING, HOLE, {"KQMC": "东沟矿区"}, encoding="gbk")
    features, _ = io.read_features(path)
    assert features[0].properties["KQMC"] == "东沟矿区"


def test_multipolygon_kml(tmp_path: Path) -> None:
    other = [(x + 0.01, y) for x, y in RING]
    polys = "".join(
        "<Polygon><outerBoundaryIs><LinearRing><coordinates>"
        + " ".join(f"{x},{y}" for x, y in [*r, r[0]])
        + "</coordinates></LinearRing></outerBoundaryIs></Polygon>"
        for r in (RING, other)
    )
    path = tmp_path / "multi.kml"
    path.write_text(f'<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>m</name><MultiGeometry>{polys}'
                    "</MultiGeometry></Placemark></kml>")
    features, _ = io.read_features(path)
    assert features[0].geometry is not None and features[0].geometry.geom_type == "MultiPolygon"
    assert io.normal_geometry(features[0].geometry)["type"] == "MultiPolygon"


# --------------------------------------------------------------------------------------------- normal form


def test_normal_form_is_stable_ordered_and_rfc7946() -> None:
    clockwise = Polygon([RING[0], RING[3], RING[2], RING[1]], [HOLE[::-1]])
    props = {"zzz": 1, "kind": "closed_mine", "responsible": {"phone": "1", "name": "王"}, "id": "a", "name": "n"}
    text = io.collection_text([io.zone_feature(props, clockwise)])
    again = io.collection_text([io.zone_feature(json.loads(text)["features"][0]["properties"],
                                                json.loads(text)["features"][0]["geometry"])])
    assert text == again  # the same zone always gives the same bytes
    feat = json.loads(text)["features"][0]
    assert list(feat["properties"]) == ["id", "name", "kind", "responsible", "zzz"]
    assert list(feat["properties"]["responsible"]) == ["name", "phone"]
    ext, hole = feat["geometry"]["coordinates"]
    assert shapely.LinearRing(ext).is_ccw and not shapely.LinearRing(hole).is_ccw
    assert ext[0] == ext[-1]
    assert '[111.6, 38.7],' in text  # one position per line, shortest fixed-precision numbers
    assert "王" in text  # names stay readable in the diff


def test_rounding_is_fixed_precision() -> None:
    poly = Polygon([(111.123456789123, 38.1), (111.2, 38.1), (111.2, 38.2)])
    coords = io.normal_geometry(poly)["coordinates"][0]
    assert [111.12345679, 38.1] in coords


def test_kml_export_round_trip(tmp_path: Path) -> None:
    props = {"id": "z9", "name": "Pit & <co>", "kind": "illegal_site", "responsible": {"name": "李", "phone": "139"},
             "classes": ["excavator"]}
    feat = io.zone_feature(props, Polygon(RING, [HOLE]))
    path = tmp_path / "out.kml"
    path.write_text(io.kml_text([feat]), encoding="utf-8")
    features, _ = io.read_features(path)
    back = features[0]
    assert back.properties["name"] == "Pit & <co>"
    assert json.loads(back.properties["responsible"]) == {"name": "李", "phone": "139"}
    assert back.feature_id == "z9"
    got = io.normal_geometry(back.geometry)
    assert got == feat["geometry"]


# --------------------------------------------------------------------------------------------- broken inputs


def _broken_geojson(tmp: Path, doc: object, raw: str | None = None) -> Path:
    path = tmp / "bad.geojson"
    path.write_text(raw if raw is not None else json.dumps(doc), encoding="utf-8")
    return path


def _feature(geometry: object, props: dict | None = None) -> dict:
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": props or {"id": "q"},
                                                       "geometry": geometry}]}


BROKEN = [
    ("not json", lambda t: _broken_geojson(t, None, '{"type": "FeatureCollection",'),
     "bad.geojson: line 1, column 30: expected valid JSON"),
    ("point", lambda t: _broken_geojson(t, _feature({"type": "Point", "coordinates": [1, 2]})),
     "bad.geojson: feature[0] (id=q).geometry.type: expected Polygon or MultiPolygon, found Point"),
    ("null geometry", lambda t: _broken_geojson(t, _feature(None)),
     "bad.geojson: feature[0] (id=q).geometry: expected a Polygon or MultiPolygon geometry, found nothing"),
    ("short ring", lambda t: _broken_geojson(t, _feature({"type": "Polygon", "coordinates": [[[1, 2], [3, 4]]]})),
     "expected Polygon coordinates, found a ring of 2 position(s) at [0]"),
    ("text coordinate", lambda t: _broken_geojson(
        t, _feature({"type": "Polygon", "coordinates": [[[1, 2], [3, "x"], [5, 6], [1, 2]]]})),
     "found [3, 'x'] at [0][1]"),
    ("not a feature", lambda t: _broken_geojson(t, {"type": "FeatureCollection", "features": [{"type": "Thing"}]}),
     "bad.geojson: feature[0]: expected a GeoJSON Feature, found Thing"),
    ("kml line", lambda t: _write(t / "bad.kml", '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>r'
                                  "</name><LineString><coordinates>1,2 3,4</coordinates></LineString>"
                                  "</Placemark></kml>"),
     "bad.kml: feature[0]: expected a Polygon or a MultiGeometry of Polygons, found LineString"),
    ("kml xml", lambda t: _write(t / "bad.kml", "<kml><Placemark></kml>"),
     "bad.kml: line 1, column 19: expected well-formed KML (XML), found mismatched tag"),
    ("kml coords", lambda t: _write(t / "bad.kml", "<kml><Placemark><Polygon><outerBoundaryIs><LinearRing><coordinates>"
                                    "1,2 3;4 5,6 1,2</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
                                    "</kml>"),
     "bad.kml: feature[0].coordinates: expected lon,lat[,alt] tuples, found 3;4"),
    ("kmz empty", lambda t: _zip(t / "bad.kmz", {"readme.txt": "x"}),
     "bad.kmz: expected a KMZ holding a .kml file, found readme.txt"),
    ("shp points", lambda t: _points_shp(t / "pts.shp"),
     "pts.shp: feature[0] (id=p): expected a Polygon shape, found POINT"),
    ("zip two shp", lambda t: _zip(t / "two.zip", {"a.shp": "", "b.shp": ""}),
     "two.zip: expected a zip holding exactly one .shp, found 2 .shp files"),
    ("suffix", lambda t: _write(t / "zones.csv", "a,b"),
     "zones.csv: expected a file ending in one of .geojson, .json, .kml, .kmz, .shp, .zip, found .csv"),
]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _points_shp(path: Path) -> Path:
    with shapefile.Writer(str(path), shapeType=shapefile.POINT) as w:
        w.field("id", "C", 10)
        w.point(1, 2)
        w.record("p")
    return path


@pytest.mark.parametrize(("case", "make", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_files_one_line_each(tmp_path: Path, case: str, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(UserError) as err:
        io.read_features(path)
    text = str(err.value)
    assert "\n" not in text
    assert message in text, text


def test_several_broken_features_all_reported(tmp_path: Path) -> None:
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "a"}, "geometry": {"type": "Point", "coordinates": [0, 0]}},
        {"type": "Feature", "properties": {"id": "b"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 0]]]}},
        {"type": "Feature", "properties": {"id": "c"}, "geometry": None},
    ]}
    path = _broken_geojson(tmp_path, doc)
    with pytest.raises(Problems) as err:
        io.read_features(path)
    assert [e.field for e in err.value.errors] == ["feature[0] (id=a).geometry.type", "feature[2] (id=c).geometry"]


WRONG_CRS = [
    # projected metres declared as degrees
    ("EPSG:4525", "EPSG:4326", "expected lon/lat degrees in EPSG:4326 (projected metres need a projected --crs"),
    # latitude first
    ("swap:EPSG:4326", "EPSG:4326", "(latitude first? positions are lon, lat), found (38.700, 111.600)"),
    # a survey table's X (northing) first
    ("swap:EPSG:4525", "EPSG:4525", "(the first value looks like a northing: positions are easting, northing)"),
    # eastings with the zone prefix 37, CRS without prefix: the hint names the right one
    ("EPSG:4525", "EPSG:4546", "the eastings carry a zone prefix 37: try --crs EPSG:4525"),
    # eastings without a prefix, CRS with one (zone 25): the points land far outside its area
    ("EPSG:4546", "EPSG:4513", "expected points inside the area of EPSG:4513 (lon 73.62..76.5"),
]


@pytest.mark.parametrize(("real", "given", "message"), WRONG_CRS)
def test_wrong_crs_is_caught(real: str, given: str, message: str) -> None:
    swap = real.startswith("swap:")
    ring = lonlat_to(real.removeprefix("swap:"), RING)
    geom = Polygon([(y, x) for x, y in ring] if swap else ring)
    with pytest.raises(UserError) as err:
        io.to_wgs84(geom, io.parse_crs(given), "in.shp", "feature[0]")
    assert message in str(err.value)
    assert str(err.value).startswith("in.shp: feature[0]: ")


def test_unknown_crs() -> None:
    with pytest.raises(UserError, match="--crs: expected a CRS pyproj knows"):
        io.parse_crs("EPSG:99999999")


# --------------------------------------------------------------------------------------------- atomic writes


def test_write_files_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "keep.geojson").write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        io.write_files(tmp_path, {"keep.geojson": "new\n", "b.geojson": "bad \udc80"}, remove=["keep.geojson"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.geojson"]  # no temp files left behind
    assert (tmp_path / "keep.geojson").read_text() == "old\n"
    io.write_files(tmp_path, {"keep.geojson": "new\n", "b.geojson": "b\n"})
    assert (tmp_path / "keep.geojson").read_text() == "new\n" and (tmp_path / "b.geojson").read_text() == "b\n"

"""Zone files in and out: GeoJSON, KML/KMZ and Shapefile readers, CRS conversion, normalised GeoJSON writer.

Readers return :class:`RawFeature` objects (geometry still in the file's CRS, properties as found).
:func:`to_wgs84` converts a geometry from any CRS pyproj knows (WGS84, CGCS2000 ``EPSG:4490``, the CGCS2000
Gauss-Krüger 3°/6° zones ``EPSG:4491``–``EPSG:4554``) to WGS84 lon/lat and checks that the result lies where
that CRS is used, so a wrong ``--crs`` or a missing zone prefix is caught instead of imported.

The normalised form written to ``zones/`` is one FeatureCollection with one Feature per file, named
``<id>.geojson``: WGS84 lon/lat rounded to :data:`COORD_DECIMALS` decimals (about 1 mm), exterior rings
counter-clockwise and holes clockwise (RFC 7946), rings closed, no repeated points, properties in a fixed
order, one position per line. The same zone always gives the same bytes, so git diffs show what changed.
Files are replaced atomically (temp file in the same folder, fsync, ``os.replace``).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from pipeline.errors import Problems, UserError, raise_all  # noqa: F401  (Problems: re-exported)
from pipeline.zones.geojson import coords_depth, coords_problem, polygon_geometry
from pipeline.zones.model import PROPERTY_ORDER  # written first, in this order; others follow sorted

#: decimals of a written lon/lat: 1e-8° is 1.1 mm of latitude.
COORD_DECIMALS = 8
RESPONSIBLE_ORDER: tuple[str, ...] = ("name", "phone")
#: file suffixes each reader takes.
FORMATS: dict[str, str] = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".kml": "kml",
    ".kmz": "kmz",
    ".shp": "shapefile",
    ".zip": "shapefile",
}
WGS84 = "EPSG:4326"
#: how far (degrees) converted coordinates may lie outside a CRS's published area of use.
AREA_OF_USE_MARGIN_DEG = 0.5


@dataclass
class RawFeature:
    """One feature as read from a file: geometry in the file's CRS, properties as found."""

    source: str  # the file it came from
    index: int  # position in the file, from 0
    geometry: BaseGeometry | None
    properties: dict[str, Any] = field(default_factory=dict)
    feature_id: str | None = None  # GeoJSON Feature.id, KML Placemark id

    @property
    def label(self) -> str:
        ident = self.properties.get("id", self.feature_id)
        return f"feature[{self.index}]" + (f" (id={ident})" if ident not in (None, "") else "")


# --------------------------------------------------------------------------------------------- readers


def read_features(path: Path, encoding: str | None = None) -> tuple[list[RawFeature], str | None]:
    """Every feature of a GeoJSON, KML, KMZ or Shapefile (``.shp`` or a ``.zip`` holding one).

    Returns the features and the CRS the file declares (``None`` when it declares none).
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(str(path), None, f"a file ending in one of {', '.join(FORMATS)}", path.suffix or "no suffix")
    if not path.is_file():
        raise UserError(str(path), None, "an existing file", "no such file")
    if fmt == "geojson":
        return read_geojson(path)
    if fmt == "kml":
        return read_kml(path.read_bytes(), str(path)), WGS84
    if fmt == "kmz":
        return read_kmz(path), WGS84
    return read_shapefile(path, encoding)


def _geojson_crs(data: Mapping[str, Any]) -> str | None:
    """The old-style GeoJSON ``crs`` member (``urn:ogc:def:crs:EPSG::4490``) as ``EPSG:4490``."""
    crs = data.get("crs")
    if not isinstance(crs, dict):
        return None
    name = (crs.get("properties") or {}).get("name")
    if not isinstance(name, str):
        return None
    if name.endswith("CRS84"):
        return WGS84
    return name


def read_geojson(path: Path) -> tuple[list[RawFeature], str | None]:
    data = load_json(path)
    src = str(path)
    if not isinstance(data, dict):
        raise UserError(src, None, "a GeoJSON object", type(data).__name__)
    kind = data.get("type")
    if kind == "FeatureCollection":
        items = data.get("features")
        if not isinstance(items, list):
            raise UserError(src, "features", "a list of features", type(items).__name__)
    elif kind == "Feature":
        items = [data]
    elif isinstance(kind, str) and "coordinates" in data:
        items = [{"type": "Feature", "properties": {}, "geometry": data}]
    else:
        raise UserError(src, "type", "FeatureCollection, Feature or a geometry", kind)
    features: list[RawFeature] = []
    errors: list[UserError] = []
    for i, item in enumerate(items):
        try:
            features.append(_geojson_feature(src, i, item))
        except UserError as exc:
            errors.append(exc)
    raise_all(errors)
    return features, _geojson_crs(data)


def _geojson_feature(src: str, index: int, item: Any) -> RawFeature:
    if not isinstance(item, dict) or item.get("type") != "Feature":
        found = item.get("type") if isinstance(item, dict) else type(item).__name__
        raise UserError(src, f"feature[{index}]", "a GeoJSON Feature", found)
    props = item.get("properties") or {}
    if not isinstance(props, dict):
        raise UserError(src, f"feature[{index}].properties", "an object", type(props).__name__)
    raw = RawFeature(src, index, None, dict(props), None if item.get("id") is None else str(item["id"]))
    raw.geometry = geometry_from_geojson(src, raw.label, item.get("geometry"))
    return raw


def geometry_from_geojson(src: str, label: str, geom: Any) -> BaseGeometry:
    """A GeoJSON geometry object as shapely, with a one-line error naming the feature."""
    kind, coords = polygon_geometry(geom, src, f"{label}.geometry")
    problem = coords_problem(coords, coords_depth(kind))
    if problem:
        raise UserError(src, f"{label}.geometry.coordinates", f"{kind} coordinates", problem)
    try:
        return shape(geom)
    except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
        raise UserError(src, f"{label}.geometry.coordinates", f"{kind} coordinates", exc) from None


def load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(str(path), None, "a readable UTF-8 file", exc) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(str(path), f"line {exc.lineno}, column {exc.colno}", "valid JSON", exc.msg) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _descendants(elem: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [c for c in elem.iter() if _local(c.tag) == name]


def _kml_ring(src: str, label: str, elem: ElementTree.Element) -> list[tuple[float, float]]:
    coords = _descendants(elem, "coordinates")
    if not coords or not (coords[0].text or "").strip():
        raise UserError(src, f"{label}.LinearRing", "<coordinates>lon,lat[,alt] …</coordinates>", "none")
    points: list[tuple[float, float]] = []
    for token in (coords[0].text or "").split():
        parts = token.split(",")
        try:
            points.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            raise UserError(src, f"{label}.coordinates", "lon,lat[,alt] tuples", token) from None
    if len(points) < 3:
        raise UserError(src, f"{label}.coordinates", "a ring of at least 3 points", f"{len(points)} point(s)")
    return points


def _kml_polygon(src: str, label: str, elem: ElementTree.Element) -> Polygon:
    outer = [r for b in _children(elem, "outerBoundaryIs") for r in _children(b, "LinearRing")]
    if not outer:
        raise UserError(src, f"{label}.Polygon", "an outerBoundaryIs/LinearRing", "none")
    holes = [_kml_ring(src, label, r) for b in _children(elem, "innerBoundaryIs") for r in _children(b, "LinearRing")]
    return Polygon(_kml_ring(src, label, outer[0]), holes)


def read_kml(data: bytes, src: str) -> list[RawFeature]:
    """Placemarks with Polygon or MultiGeometry-of-Polygons; name, description and ExtendedData as properties."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        line, col = exc.position
        reason = str(exc).split(":")[0]
        raise UserError(src, f"line {line}, column {col + 1}", "well-formed KML (XML)", reason) from None
    features: list[RawFeature] = []
    errors: list[UserError] = []
    for index, mark in enumerate(_descendants(root, "Placemark")):
        props: dict[str, Any] = {}
        for key in ("name", "description"):
            found = _children(mark, key)
            if found and (found[0].text or "").strip():
                props[key] = (found[0].text or "").strip()
        for ext in _children(mark, "ExtendedData"):
            for item in _descendants(ext, "Data"):
                values = _children(item, "value")
                if item.get("name") and values:
                    props[str(item.get("name"))] = (values[0].text or "").strip()
            for item in _descendants(ext, "SimpleData"):
                if item.get("name"):
                    props[str(item.get("name"))] = (item.text or "").strip()
        raw = RawFeature(src, index, None, props, mark.get("id"))
        try:
            polygons = [_kml_polygon(src, raw.label, p) for p in _descendants(mark, "Polygon")]
            if not polygons:
                others = sorted({_local(c.tag) for c in mark.iter()} & {"Point", "LineString", "LinearRing", "Model"})
                raise UserError(src, raw.label, "a Polygon or a MultiGeometry of Polygons", ", ".join(others) or "none")
            raw.geometry = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
            features.append(raw)
        except UserError as exc:
            errors.append(exc)
    raise_all(errors)
    if not features:
        raise UserError(src, None, "at least one Placemark with a Polygon", "none")
    return features


def read_kmz(path: Path) -> list[RawFeature]:
    src = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".kml")]
            if not names:
                raise UserError(src, None, "a KMZ holding a .kml file", ", ".join(zf.namelist()) or "an empty zip")
            name = "doc.kml" if "doc.kml" in names else names[0]
            return read_kml(zf.read(name), f"{src}!{name}")
    except zipfile.BadZipFile as exc:
        raise UserError(src, None, "a KMZ (zip) file", exc) from None


def read_shapefile(path: Path, encoding: str | None = None) -> tuple[list[RawFeature], str | None]:
    """A Shapefile via pyshp: ``.shp`` beside its ``.dbf``/``.prj``/``.cpg``, or a ``.zip`` holding them.

    Attribute text is decoded with ``encoding``, else the ``.cpg``'s, else UTF-8, falling back to GBK (the
    usual encoding of Chinese land-registry exports).
    """
    import shapefile  # pyshp

    src = str(path)
    prj_text: str | None = None
    cpg: str | None = None
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                shp = [n for n in names if n.lower().endswith(".shp")]
                if len(shp) != 1:
                    raise UserError(src, None, "a zip holding exactly one .shp", f"{len(shp)} .shp files")
                stem = shp[0][:-4]
                for name in names:
                    if name.lower() == f"{stem}.prj".lower():
                        prj_text = zf.read(name).decode("utf-8", "replace")
                    if name.lower() == f"{stem}.cpg".lower():
                        cpg = zf.read(name).decode("ascii", "replace").strip()
        except zipfile.BadZipFile as exc:
            raise UserError(src, None, "a zip file holding a Shapefile", exc) from None
    else:
        for suffix in (".prj", ".PRJ"):
            if path.with_suffix(suffix).is_file():
                prj_text = path.with_suffix(suffix).read_text(encoding="utf-8", errors="replace")
        for suffix in (".cpg", ".CPG"):
            if path.with_suffix(suffix).is_file():
                cpg = path.with_suffix(suffix).read_text(encoding="ascii", errors="replace").strip()
    encodings = [encoding] if encoding else ([cpg] if cpg else ["utf-8", "gbk"])
    last: Exception | None = None
    for enc in encodings:
        try:
            with shapefile.Reader(src, encoding=enc, encodingErrors="strict") as reader:
                fields = [f[0] for f in reader.fields[1:]]
                rows = [(sr.shape, dict(zip(fields, list(sr.record), strict=True))) for sr in reader.iterShapeRecords()]
            break
        except (UnicodeDecodeError, LookupError) as exc:
            last = exc
        except (shapefile.ShapefileException, OSError, ValueError, struct.error) as exc:
            if "decode" in str(exc):  # pyshp wraps UnicodeDecodeError in its own exception
                last = exc
                continue
            raise UserError(src, None, "a readable Shapefile (.shp with .shx and .dbf)", exc) from None
    else:
        raise UserError(src, "attributes", f"text in {' or '.join(encodings)} (give --encoding)", last)
    features: list[RawFeature] = []
    errors: list[UserError] = []
    for index, (shp_shape, record) in enumerate(rows):
        props = {k: _plain(v) for k, v in record.items()}
        raw = RawFeature(src, index, None, props)
        if shp_shape.shapeType not in (shapefile.POLYGON, shapefile.POLYGONZ, shapefile.POLYGONM):
            errors.append(UserError(src, raw.label, "a Polygon shape", shp_shape.shapeTypeName))
            continue
        try:
            raw.geometry = geometry_from_geojson(src, raw.label, dict(shp_shape.__geo_interface__))
            features.append(raw)
        except UserError as exc:
            errors.append(exc)
    raise_all(errors)
    declared = None
    if prj_text:
        try:
            crs = CRS.from_wkt(prj_text)
            epsg = crs.to_epsg(min_confidence=70)
            declared = f"EPSG:{epsg}" if epsg else crs.to_wkt()
        except CRSError:
            declared = None
    return features, declared


def _plain(value: Any) -> Any:
    """A dbf value as plain JSON: dates as ISO text, bytes decoded, numbers kept."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value.strip() if isinstance(value, str) else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------------------------- CRS


def parse_crs(text: str, source: str = "--crs") -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError:
        raise UserError(
            source, None, "a CRS pyproj knows, e.g. EPSG:4326, EPSG:4490 or EPSG:4527 (CGCS2000 3° GK zone 39)", text
        ) from None


def crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def gauss_kruger_hint(crs: CRS, xy: NDArray[np.float64]) -> str:
    """What probably went wrong with projected coordinates that do not fit ``crs``: eastings with a zone
    prefix (e.g. 37 552 194) given a CRS without one, or northing and easting swapped (Chinese survey
    tables list X = northing first)."""
    if crs.is_geographic or not len(xy):
        return ""
    x_med, y_med = float(np.median(xy[:, 0])), float(np.median(xy[:, 1]))
    if y_med >= 10_000_000 > x_med and x_med > 1_000_000:
        return " (the first value looks like a northing: positions are easting, northing)"
    zone = int(float(xy[:, 0].max()) // 1_000_000)
    if 25 <= zone <= 45:
        return f" (the eastings carry a zone prefix {zone}: try --crs EPSG:{4513 + zone - 25})"
    if 13 <= zone <= 23:
        return f" (the eastings carry a zone prefix {zone}: try --crs EPSG:{4491 + zone - 13})"
    return ""


@lru_cache(maxsize=32)
def _to_wgs84_transformer(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(crs_wkt), WGS84, always_xy=True)


def to_wgs84(geom: BaseGeometry, crs: CRS, src: str, label: str) -> BaseGeometry:
    """``geom`` from ``crs`` to WGS84 lon/lat, checked against the CRS's area of use."""
    xy = shapely.get_coordinates(geom)
    if crs.is_geographic:
        bad = (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
        if bad.any():
            x, y = xy[np.argmax(bad)]
            hint = (
                "latitude first? positions are lon, lat" if abs(x) <= 90 < abs(y) <= 180
                else "projected metres need a projected --crs, e.g. EPSG:4527"
            )
            raise UserError(src, label, f"lon/lat degrees in {crs_label(crs)} ({hint})", f"({x:.3f}, {y:.3f})")
    transformer = _to_wgs84_transformer(crs.to_wkt())

    def convert(points: NDArray[np.float64]) -> NDArray[np.float64]:
        lon, lat = transformer.transform(points[:, 0], points[:, 1])
        return np.stack([lon, lat], axis=1)

    out = shapely.transform(geom, convert)
    lonlat = shapely.get_coordinates(out)
    area = crs.area_of_use
    bad = ~np.isfinite(lonlat).all(axis=1)
    if area is not None:
        m = AREA_OF_USE_MARGIN_DEG
        with np.errstate(invalid="ignore"):
            bad |= (
                (lonlat[:, 0] < area.west - m)
                | (lonlat[:, 0] > area.east + m)
                | (lonlat[:, 1] < area.south - m)
                | (lonlat[:, 1] > area.north + m)
            )
    if bad.any():
        i = int(np.argmax(bad))
        where = (
            f"lon {area.west:g}..{area.east:g}, lat {area.south:g}..{area.north:g}" if area is not None else "its area"
        )
        finite = bool(np.isfinite(lonlat[i]).all())
        landed = f"lon {lonlat[i, 0]:.5f}, lat {lonlat[i, 1]:.5f}" if finite else "outside the projection"
        raise UserError(
            src,
            label,
            f"points inside the area of {crs_label(crs)} ({where}){gauss_kruger_hint(crs, xy)}",
            f"({xy[i, 0]:.3f}, {xy[i, 1]:.3f}) → {landed}",
        )
    return out


# --------------------------------------------------------------------------------------------- normal form


def orient_rfc7946(geom: BaseGeometry) -> BaseGeometry:
    """Exterior rings counter-clockwise, holes clockwise."""
    return shapely.orient_polygons(geom, exterior_cw=False) if hasattr(shapely, "orient_polygons") else _orient(geom)


def _orient(geom: BaseGeometry) -> BaseGeometry:
    from shapely.geometry.polygon import orient

    if isinstance(geom, Polygon):
        return orient(geom, 1.0)
    if isinstance(geom, MultiPolygon):
        return MultiPolygon([orient(p, 1.0) for p in geom.geoms])
    return geom


def _round_ring(coords: Iterable[tuple[float, ...]]) -> list[list[float]]:
    out: list[list[float]] = []
    for point in coords:
        pos = [round(float(point[0]), COORD_DECIMALS), round(float(point[1]), COORD_DECIMALS)]
        if not out or pos != out[-1]:
            out.append(pos)
    if out and out[0] != out[-1]:
        out.append(list(out[0]))
    return out


def normal_geometry(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON geometry of a WGS84 (Multi)Polygon in normal form (see module doc)."""
    geom = orient_rfc7946(geom)
    polys = [geom] if isinstance(geom, Polygon) else list(getattr(geom, "geoms", []))
    rings = [[_round_ring(p.exterior.coords)] + [_round_ring(r.coords) for r in p.interiors] for p in polys]
    if len(rings) == 1:
        return {"type": "Polygon", "coordinates": rings[0]}
    return {"type": "MultiPolygon", "coordinates": rings}


def ordered_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """Properties in :data:`PROPERTY_ORDER`, then the rest by name; ``responsible`` as name, phone, rest."""
    out: dict[str, Any] = {}
    for key in PROPERTY_ORDER:
        if key in props:
            out[key] = props[key]
    for key in sorted(k for k in props if k not in out):
        out[key] = props[key]
    resp = out.get("responsible")
    if isinstance(resp, dict):
        out["responsible"] = {k: resp[k] for k in RESPONSIBLE_ORDER if k in resp} | {
            k: resp[k] for k in sorted(resp) if k not in RESPONSIBLE_ORDER
        }
    return out


def zone_feature(props: Mapping[str, Any], geometry: dict[str, Any] | BaseGeometry) -> dict[str, Any]:
    geo = geometry if isinstance(geometry, dict) else normal_geometry(geometry)
    return {"type": "Feature", "properties": ordered_properties(props), "geometry": geo}


def collection_text(features: list[dict[str, Any]]) -> str:
    """A FeatureCollection as text: 2-space indent, positions on one line each, UTF-8 names as they are."""
    return _dump({"type": "FeatureCollection", "features": features}, 0) + "\n"


def _number(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return json.dumps(value)
    text = f"{value:.{COORD_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _dump(obj: Any, level: int) -> str:
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dump(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list):
        if not obj:
            return "[]"
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in obj):
            return "[" + ", ".join(_number(v) for v in obj) + "]"
        if all(isinstance(v, str) for v in obj) and sum(len(v) for v in obj) < 80:
            return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        return "[\n" + ",\n".join(f"{inner}{_dump(v, level + 1)}" for v in obj) + f"\n{pad}]"
    return json.dumps(obj, ensure_ascii=False)


def zone_filename(zone_id: str) -> str:
    return f"{zone_id}.geojson"


def geometry_of(feature: Mapping[str, Any]) -> BaseGeometry:
    return shape(feature["geometry"])


def feature_mapping(geom: BaseGeometry) -> dict[str, Any]:
    return dict(mapping(geom))


# --------------------------------------------------------------------------------------------- writing


def write_files(folder: Path, texts: Mapping[str, str], remove: Iterable[str] = ()) -> None:
    """Write every ``name → text`` into ``folder`` and delete ``remove``, as nearly all-or-nothing as a
    filesystem allows: every new file is written and fsynced to a temp file first (a failure there leaves
    ``folder`` untouched), then each is renamed over its target, then the removed files go."""
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, text in texts.items():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            temps.append((Path(tmp_name), folder / name))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in temps:
        os.replace(tmp, target)
    for name in remove:
        if name not in texts:
            (folder / name).unlink(missing_ok=True)
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------------------------- KML out


#: outline colour of each zone kind in exported KML (RRGGBB; the same as the previews).
KML_KIND_RGB: dict[str, str] = {
    "closed_mine": "e62828",
    "illegal_site": "ff8c00",
    "licensed_area": "28be3c",
    "fire_watch": "c83cc8",
}


def _kml_coords(ring: list[list[float]]) -> str:
    return " ".join(f"{_number(float(x))},{_number(float(y))},0" for x, y in ring)


def kml_text(features: list[dict[str, Any]], document_name: str = "minewatch zones") -> str:
    """Zones as KML 2.2 for Google Earth: one Placemark per zone, properties as ExtendedData."""
    from xml.sax.saxutils import escape, quoteattr

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<kml xmlns="http://www.opengis.net/kml/2.2">',
        "<Document>",
        f"  <name>{escape(document_name)}</name>",
    ]
    for kind, rgb in KML_KIND_RGB.items():
        bgr = rgb[4:6] + rgb[2:4] + rgb[0:2]
        lines.append(
            f'  <Style id="{kind}"><LineStyle><color>ff{bgr}</color><width>2</width></LineStyle>'
            f"<PolyStyle><color>59{bgr}</color></PolyStyle></Style>"
        )
    for feat in features:
        props = feat["properties"]
        geom = feat["geometry"]
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        lines.append(f"  <Placemark id={quoteattr(str(props.get('id', '')))}>")
        lines.append(f"    <name>{escape(str(props.get('name') or props.get('id', '')))}</name>")
        if props.get("kind") in KML_KIND_RGB:
            lines.append(f"    <styleUrl>#{props['kind']}</styleUrl>")
        lines.append("    <ExtendedData>")
        for key, value in props.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"      <Data name={quoteattr(key)}><value>{escape(text)}</value></Data>")
        lines.append("    </ExtendedData>")
        if len(polys) > 1:
            lines.append("    <MultiGeometry>")
        for rings in polys:
            lines.append("    <Polygon>")
            lines.append(
                f"      <outerBoundaryIs><LinearRing><coordinates>{_kml_coords(rings[0])}</coordinates>"
                "</LinearRing></outerBoundaryIs>"
            )
            for hole in rings[1:]:
                lines.append(
                    f"      <innerBoundaryIs><LinearRing><coordinates>{_kml_coords(hole)}</coordinates>"
                    "</LinearRing></innerBoundaryIs>"
                )
            lines.append("    </Polygon>")
        if len(polys) > 1:
            lines.append("    </MultiGeometry>")
        lines.append("  </Placemark>")
    lines += ["</Document>", "</kml>", ""]
    return "\n".join(lines)

"""Check zone files and repair what is safe to repair.

:func:`check_folder` reads every ``*.geojson`` of the zones folder and reports, per feature, one
:class:`Problem` per mistake: rings not closed, repeated points, rings the wrong way round (RFC 7946),
invalid or self-intersecting rings (with the coordinates of the crossing, from shapely's
``explain_validity``), duplicate ids, unknown kinds and missing or malformed properties (the rules of
:func:`pipeline.zones.model.parse_feature`, the daemon's own loader), implausible areas, and zones no camera
can see. With ``fix=True`` the repairable ones (closing rings, dropping repeated points, orienting rings,
``make_valid``) are applied to a copy of the document and reported as fixed; the caller writes the copies.

Areas are computed in a Lambert azimuthal equal-area projection centred on the zone (exact areas,
whatever the zone's size or latitude).

:func:`seen_by` says which cameras (and presets) see a zone: some part of it, within the camera's range,
projects inside the frame (:meth:`pipeline.geo.camera.CameraModel.project`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity, make_valid

from pipeline.config import CameraConfig
from pipeline.errors import UserError
from pipeline.types import Pose
from pipeline.zones import io
from pipeline.zones.geojson import POLYGON_TYPES, coords_depth, coords_problem
from pipeline.zones.model import Zone, _check_crs, parse_feature, zone_files

#: below this a zone is probably a typo, a wrong unit or a point digitised as a polygon (m²).
MIN_PLAUSIBLE_AREA_M2 = 100.0
#: above this a zone is probably in the wrong CRS or a whole county drawn by mistake (m²; 1000 km²).
MAX_PLAUSIBLE_AREA_M2 = 1.0e9
#: default horizontal range beyond which a camera is not counted as seeing a zone (m).
DEFAULT_MAX_RANGE_M = 5000.0
#: default frame size used to decide what falls inside a view when the config gives none.
DEFAULT_IMAGE_WH = (1920, 1080)


@dataclass
class Problem:
    """One finding about one feature (or one file)."""

    source: str
    where: str | None  # "features[2] (id=x).geometry" or None for the whole file
    expected: str
    found: str
    severity: str = "error"  # "error" (the daemon would refuse it) | "warning"
    fixed: str | None = None  # what --fix changed, when it did

    def line(self) -> str:
        loc = f"{self.source}: {self.where}" if self.where else self.source
        if self.fixed:
            return f"{loc}: fixed: {self.fixed}"
        return f"{loc}: {self.severity}: expected {self.expected}, found {self.found}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "feature": self.where,
            "severity": "fixed" if self.fixed else self.severity,
            "expected": self.expected,
            "found": self.found,
            "fixed": self.fixed,
        }

    @classmethod
    def from_user_error(cls, exc: UserError, severity: str = "error") -> Problem:
        return cls(exc.source, exc.field, exc.expected, str(exc).split(", found ", 1)[-1], severity)


@dataclass
class FileReport:
    path: Path
    document: Any  # the parsed (and, with fix, repaired) JSON document
    zones: list[Zone] = field(default_factory=list)
    changed: bool = False


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error" and not p.fixed]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning" and not p.fixed]

    @property
    def fixes(self) -> list[Problem]:
        return [p for p in self.problems if p.fixed]

    @property
    def zones(self) -> list[Zone]:
        return [z for f in self.files for z in f.zones]


# --------------------------------------------------------------------------------------------- areas


def area_m2(geom: BaseGeometry) -> float:
    """Area of a WGS84 lon/lat (Multi)Polygon in m², in an equal-area projection centred on it."""
    if geom.is_empty:
        return 0.0
    c = geom.centroid
    laea = f"+proj=laea +lat_0={c.y:.8f} +lon_0={c.x:.8f} +datum=WGS84 +units=m +no_defs"
    tr = Transformer.from_crs("EPSG:4326", laea, always_xy=True)

    def fwd(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.stack([x, y], axis=1)

    return float(shapely.transform(geom, fwd).area)


def _fmt_area(a_m2: float) -> str:
    return f"{a_m2 / 1e6:.3f} km²" if a_m2 >= 1e6 else f"{a_m2:.0f} m²"


# --------------------------------------------------------------------------------------------- geometry


def _ring_fixes(ring: list[Any], where: str, fixes: list[str], errors: list[str]) -> list[list[float]]:
    """A ring with repeated consecutive positions dropped and closed; what was changed goes into fixes."""
    pts = [[float(p[0]), float(p[1])] for p in ring]
    out: list[list[float]] = []
    dropped = []
    for j, p in enumerate(pts):
        if out and p == out[-1] and j != len(pts) - 1:
            dropped.append(j)
            continue
        if out and p == out[-1] and j == len(pts) - 1 and len(out) > 1 and out[0] != p:
            dropped.append(j)  # a repeated last point that is not the closing one
            continue
        out.append(p)
    if dropped:
        fixes.append(f"{where}: dropped {len(dropped)} repeated point(s) at index {', '.join(map(str, dropped[:5]))}")
    if out[0] != out[-1]:
        fixes.append(f"{where}: closed the ring (appended the first point {out[0]})")
        out.append(list(out[0]))
    distinct = len({(p[0], p[1]) for p in out})
    if distinct < 3:
        errors.append(f"{where}: a ring of at least 3 distinct points, found {distinct}")
    return out


def _repair_geometry(geom: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """Closing, de-duplicating and orienting rings. Returns (geometry, fixes, errors)."""
    fixes: list[str] = []
    errors: list[str] = []
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    new_polys = []
    for k, rings in enumerate(polys):
        prefix = f"{where}.coordinates" + (f"[{k}]" if geom["type"] == "MultiPolygon" else "")
        new_rings = [_ring_fixes(r, f"{prefix}[{i}]", fixes, errors) for i, r in enumerate(rings)]
        if not errors:
            for i, ring in enumerate(new_rings):
                ccw = shapely.LinearRing(ring).is_ccw
                if ccw != (i == 0):
                    fixes.append(
                        f"{prefix}[{i}]: reversed the {'exterior' if i == 0 else 'hole'} ring to"
                        f" {'counter-clockwise' if i == 0 else 'clockwise'} (RFC 7946)"
                    )
                    ring.reverse()
        new_polys.append(new_rings)
    out = {"type": geom["type"], "coordinates": new_polys[0] if geom["type"] == "Polygon" else new_polys}
    return out, fixes, errors


def where_invalid(polygon: BaseGeometry) -> str:
    """``explain_validity`` with the position spelled out: 'Self-intersection at lon 111.6 lat 38.7'."""
    text = explain_validity(polygon)
    if "[" in text:
        reason, _, pos = text.partition("[")
        nums = pos.rstrip("]").split()
        if len(nums) >= 2:
            return f"{reason.strip()} at lon {float(nums[0]):.8f}, lat {float(nums[1]):.8f}"
    return text


def polygonal(geom: BaseGeometry) -> Polygon | MultiPolygon:
    """The polygon parts of a make_valid result (lines and points a bow-tie leaves behind are dropped)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    parts: list[Polygon] = []
    for g in getattr(geom, "geoms", []):
        if isinstance(g, Polygon):
            parts.append(g)
        elif isinstance(g, MultiPolygon):
            parts.extend(g.geoms)
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


# --------------------------------------------------------------------------------------------- checking


def check_folder(
    folder: Path,
    fix: bool = False,
    visibility: Callable[[Zone], list[tuple[str, str | None]]] | None = None,
) -> Report:
    """Every problem of every zone file in ``folder`` (see module doc)."""
    report = Report()
    try:
        files = zone_files(folder)
    except UserError as exc:
        report.problems.append(Problem.from_user_error(exc))
        return report
    for path in files:
        report.files.append(check_file(path, report.problems, fix))
    first: dict[str, str] = {}
    for f in report.files:
        for zone in f.zones:
            if zone.id in first:
                report.problems.append(
                    Problem(str(f.path), f"(id={zone.id}).properties.id", "a zone id used once across all files",
                            f"{zone.id!r} also in {first[zone.id]}")
                )
            else:
                first[zone.id] = str(f.path)
    if visibility is not None:
        for f in report.files:
            for zone in f.zones:
                if not visibility(zone):
                    report.problems.append(
                        Problem(str(f.path), f"(id={zone.id})", "a zone at least one camera or preset sees",
                                "none sees it (check the cameras' pan, tilt, hfov and range)", "warning")
                    )
    return report


def check_file(path: Path, problems: list[Problem], fix: bool = False) -> FileReport:
    src = str(path)
    try:
        data = io.load_json(path)
    except UserError as exc:
        problems.append(Problem.from_user_error(exc))
        return FileReport(path, None)
    report = FileReport(path, copy.deepcopy(data))
    try:
        bom = path.read_bytes().startswith(b"\xef\xbb\xbf")
    except OSError:
        bom = False
    if bom:  # Windows editors add one; the daemon's loader (plain UTF-8 JSON) refuses the file
        fixed = "removed the UTF-8 byte-order mark" if fix else None
        expected = "UTF-8 without a byte-order mark (the daemon refuses it; --fix removes it)"
        problems.append(Problem(src, None, expected, "a byte-order mark", "error", fixed))
        report.changed = fix
    doc = report.document
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = report.document = {"type": "FeatureCollection", "features": [doc]}
        report.changed = fix
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        found = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        problems.append(Problem(src, "type", "a GeoJSON FeatureCollection with a features list", str(found)))
        return report
    if doc.get("crs") is not None:
        try:
            _check_crs(doc.get("crs"), src)
        except UserError as exc:
            problems.append(Problem.from_user_error(exc))
            return report
    for index, feature in enumerate(doc["features"]):
        zone = check_feature(src, index, feature, problems, fix)
        if zone is not None:
            report.zones.append(zone)
        if fix and isinstance(feature, dict) and feature.get("_changed"):
            del feature["_changed"]
            report.changed = True
    return report


def _label(index: int, feature: Any) -> str:
    ident = None
    if isinstance(feature, dict):
        props = feature.get("properties")
        ident = props.get("id") if isinstance(props, dict) else None
        ident = feature.get("id") if ident is None else ident
    return f"features[{index}]" + (f" (id={ident})" if ident is not None else "")


def check_feature(src: str, index: int, feature: Any, problems: list[Problem], fix: bool) -> Zone | None:
    """Problems of one feature; with ``fix`` the repairs are made in ``feature`` (marked ``_changed``)."""
    label = _label(index, feature)
    geom = feature.get("geometry") if isinstance(feature, dict) else None
    geom_ok = (
        isinstance(geom, dict)
        and geom.get("type") in POLYGON_TYPES
        and coords_problem(geom.get("coordinates"), coords_depth(str(geom.get("type")))) is None
    )
    if not geom_ok:  # the loader's own message says what is wrong with it
        try:
            parse_feature(feature, index, src)
        except UserError as exc:
            problems.append(Problem.from_user_error(exc))
        return None
    assert isinstance(geom, dict) and isinstance(feature, dict)
    where = f"{label}.geometry"
    xy = np.asarray(shapely.get_coordinates(shape(geom)))
    out_of_range = (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
    if out_of_range.any():
        x, y = xy[np.argmax(out_of_range)]
        problems.append(
            Problem(src, where, "WGS84 [lon, lat] degrees (projected metres: use `minewatch zones import --crs`)",
                    f"[{x:g}, {y:g}]")
        )
        return None
    repaired, fixes, ring_errors = _repair_geometry(geom, where)
    for text in ring_errors:
        w, _, rest = text.partition(": ")
        exp, _, found = rest.partition(", found ")
        problems.append(Problem(src, w, exp, found))
    if ring_errors:
        return None
    for text in fixes:
        w, _, what = text.partition(": ")
        problems.append(Problem(src, w, "closed rings without repeats, RFC 7946 orientation", what, "warning",
                                what if fix else None))
    polygon = shape(repaired)
    if not polygon.is_valid:
        reason = where_invalid(polygon)
        valid = polygonal(make_valid(polygon))
        safe = not valid.is_empty and valid.area > 0
        after = area_m2(valid) if safe else 0.0
        if fix and safe:
            problems.append(
                Problem(src, where, "a valid polygon", reason, "error",
                        f"{reason}: make_valid → {valid.geom_type} of {_fmt_area(after)}")
            )
            repaired = io.normal_geometry(valid)
            polygon = shape(repaired)
        else:
            hint = " (--fix can repair it with make_valid)" if safe else ""
            problems.append(Problem(src, where, f"a valid polygon (no self-intersection){hint}", reason))
            return None
    if fix and repaired != geom:
        feature["geometry"] = repaired
        feature["_changed"] = True
    candidate = {k: v for k, v in feature.items() if k != "_changed"} | {"geometry": repaired}
    try:
        zone = parse_feature(candidate, index, src)
    except UserError as exc:
        problems.append(Problem.from_user_error(exc))
        return None
    area = area_m2(zone.polygon)
    if not MIN_PLAUSIBLE_AREA_M2 <= area <= MAX_PLAUSIBLE_AREA_M2:
        problems.append(
            Problem(src, f"{label}.geometry", f"an area from {_fmt_area(MIN_PLAUSIBLE_AREA_M2)} to"
                    f" {_fmt_area(MAX_PLAUSIBLE_AREA_M2)} (wrong CRS or units?)", _fmt_area(area), "warning")
        )
    return zone


def fixed_texts(report: Report) -> dict[Path, str]:
    """The repaired documents to write (files --fix changed), in normal form."""
    out: dict[Path, str] = {}
    for f in report.files:
        if f.changed and isinstance(f.document, dict):
            feats = [io.zone_feature(ft.get("properties") or {}, ft["geometry"]) for ft in f.document["features"]]
            out[f.path] = io.collection_text(feats)
    return out


# --------------------------------------------------------------------------------------------- visibility


def camera_poses(cam: CameraConfig) -> list[Pose]:
    """The poses a camera takes (the daemon's own :func:`preset_pose`): its patrol presets, else its fixed pose."""
    from pipeline.sources.patrol import preset_pose

    if cam.patrol is not None:
        return [preset_pose(cam, p) for p in cam.patrol.presets]
    return [Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg, None)]


def sample_points_lonlat(
    polygon: BaseGeometry, centre_lat: float, centre_lon: float, max_range_m: float, step_m: float
) -> np.ndarray:
    """Points (N, 2) lon/lat of the part of ``polygon`` within ``max_range_m`` of the centre: its boundary
    every ``step_m`` and a grid inside, so that big zones filling a whole view are still found."""
    aeqd = f"+proj=aeqd +lat_0={centre_lat:.8f} +lon_0={centre_lon:.8f} +datum=WGS84 +units=m +no_defs"
    fwd = Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)
    inv = Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)

    def to_m(xy: np.ndarray) -> np.ndarray:
        return np.stack(fwd.transform(xy[:, 0], xy[:, 1]), axis=1)

    local = shapely.transform(polygon, to_m)
    part = local.intersection(shapely.Point(0, 0).buffer(max_range_m, quad_segs=64))
    if part.is_empty:
        return np.zeros((0, 2))
    step = max(step_m, math.sqrt(part.area) / 40.0, part.length / 2000.0)
    boundary = shapely.segmentize(part.boundary, step)
    pts = [shapely.get_coordinates(boundary)]
    minx, miny, maxx, maxy = part.bounds
    gx, gy = np.meshgrid(np.arange(minx, maxx, step), np.arange(miny, maxy, step))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    if len(grid):
        inside = shapely.contains_xy(part, grid[:, 0], grid[:, 1])
        pts.append(grid[inside])
    xy = np.concatenate(pts)
    lon, lat = inv.transform(xy[:, 0], xy[:, 1])
    return np.stack([lon, lat], axis=1)


def seen_by(
    zone: Zone,
    cameras: Sequence[CameraConfig],
    models: dict[str, Any],
    max_range_m: float = DEFAULT_MAX_RANGE_M,
    image_wh: tuple[int, int] = DEFAULT_IMAGE_WH,
    step_m: float = 25.0,
) -> list[tuple[str, str | None]]:
    """(camera id, preset) pairs whose frame shows some part of ``zone`` within ``max_range_m``."""
    seen: list[tuple[str, str | None]] = []
    for cam in cameras:
        model = models.get(cam.id)
        if model is None:
            continue
        rng = float(getattr(cam, "max_range_m", None) or max_range_m)
        lonlat = sample_points_lonlat(zone.polygon, cam.lat, cam.lon, rng, step_m)
        if not len(lonlat):
            continue
        for pose in camera_poses(cam):
            if in_frame(model, pose, image_wh, lonlat).any():
                seen.append((cam.id, pose.preset))
    return seen


def in_frame(model: Any, pose: Pose, image_wh: tuple[int, int], lonlat: np.ndarray) -> np.ndarray:
    """Which lon/lat ground points project inside the frame (in front of the camera)."""
    xy = np.asarray(model.project(pose, image_wh, lonlat[:, 1], lonlat[:, 0]), dtype=np.float64)
    w, h = image_wh
    ok = np.isfinite(xy).all(axis=1)
    ok &= (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return np.asarray(ok)


def zone_mapping(polygon: BaseGeometry) -> dict[str, Any]:
    return dict(mapping(polygon))


def all_lines(problems: Iterable[Problem]) -> list[str]:
    return [p.line() for p in problems]

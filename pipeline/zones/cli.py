"""``minewatch zones …``: list, show, import, validate, edit, preview, test and export zones.

Every command reads ``--config`` (default ``cameras.yaml``) for the zones folder and the cameras; without
a config file, ``--zones-dir`` alone is enough for the commands that need no camera. Tables are for people,
``--json`` is for scripts. A mistake in the input is one line (file, feature, expected, found) on stderr
and exit code 2; a command that fails changes nothing in the zones folder (every change is checked with
the daemon's own loader first, then written to temp files and renamed into place). docs/ZONES_CLI.md has
an example of each command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from pipeline.config import CameraConfig, Config, load_config
from pipeline.errors import Problems, UserError
from pipeline.types import CLASSES
from pipeline.zones import io
from pipeline.zones.model import (
    ZONE_KINDS,
    Zone,
    load_zones,
)
from pipeline.zones.tables import display_width, fmt_area, fmt_seen, table
from pipeline.zones.validate import (
    DEFAULT_IMAGE_WH,
    DEFAULT_MAX_RANGE_M,
    area_m2,
    camera_poses,
    check_folder,
    fixed_texts,
    seen_by,
)
from pipeline.zones.workspace import Workspace, zone_filename

PROG = "minewatch zones"
#: properties ``set`` accepts besides those a zone already has (``responsible.*`` too).
SETTABLE = ("id", "name", "kind", "township", "classes", "buffer_m", "min_dwell_s", "schedule", "permits")
REQUIRED = ("id", "name", "kind")


def out(text: str = "") -> None:
    """CLI output (stdout)."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    sys.stderr.write(f"{PROG}: {text}\n")


# --------------------------------------------------------------------------------------------- context


@dataclass
class Context:
    config_path: Path
    zones_dir_arg: Path | None
    as_json: bool
    max_range_m: float
    image_wh: tuple[int, int]
    _config: Config | None = None
    _config_loaded: bool = False
    _models: dict[str, Any] | None = None

    def config(self, required: bool = True) -> Config | None:
        if not self._config_loaded:
            self._config_loaded = True
            if self.config_path.is_file() or required or self.zones_dir_arg is None:
                self._config = load_config(self.config_path)
        if required and self._config is None:
            raise UserError(str(self.config_path), None, "a config file with cameras (give --config)", "none")
        return self._config

    @property
    def zones_dir(self) -> Path:
        if self.zones_dir_arg is not None:
            return self.zones_dir_arg
        config = self.config(required=False)
        assert config is not None
        return config.zones.dir

    @property
    def tz(self) -> str:
        config = self.config(required=False)
        return config.zones.tz if config is not None else "Asia/Shanghai"

    def cameras(self) -> list[CameraConfig]:
        config = self.config(required=False)
        return [c for c in config.cameras if c.enabled] if config is not None else []

    def models(self) -> dict[str, Any]:
        if self._models is None:
            from pipeline.geo.camera import CameraModel

            terrain = self.terrain()
            self._models = {cam.id: CameraModel.from_config(cam, terrain) for cam in self.cameras()}
        return self._models

    def terrain(self) -> Any:
        """The ground model of the config (flat, or its DEM), shared by every camera."""
        from pipeline.geo.terrain import Terrain

        config = self.config(required=False)
        return Terrain.from_config(config.terrain if config is not None else None)

    def seen(self, zone: Zone) -> list[tuple[str, str | None]]:
        cams = self.cameras()
        if not cams:
            return []
        return seen_by(zone, cams, self.models(), self.max_range_m, self.image_wh)

    def load(self) -> list[Zone]:
        return load_zones(self.zones_dir, self.tz)


def print_json(obj: Any) -> None:
    out(json.dumps(obj, ensure_ascii=False, indent=2))


def zone_summary(ctx: Context, zone: Zone) -> dict[str, Any]:
    seen = ctx.seen(zone)
    return {
        "id": zone.id,
        "name": zone.name,
        "kind": zone.kind,
        "township": zone.township,
        "responsible": dict(zone.responsible),
        "area_m2": round(area_m2(zone.polygon), 1),
        "seen_by": [{"camera": c, "preset": p} for c, p in seen],
        "file": zone.source,
    }


# --------------------------------------------------------------------------------------------- list, show


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    zones = ctx.load()
    rows = [zone_summary(ctx, z) for z in zones]
    if ctx.as_json:
        print_json(rows)
        return 0
    if not rows:
        out(f"no zones in {ctx.zones_dir}")
        return 0
    out(
        table(
            ["ID", "KIND", "NAME", "TOWNSHIP", "RESPONSIBLE", "AREA", "SEEN BY"],
            [
                [
                    r["id"],
                    r["kind"],
                    r["name"],
                    r["township"] or "-",
                    " ".join(v for v in (r["responsible"].get("name"), r["responsible"].get("phone")) if v) or "-",
                    fmt_area(r["area_m2"]),
                    fmt_seen([(s["camera"], s["preset"]) for s in r["seen_by"]]),
                ]
                for r in rows
            ],
        )
    )
    if not ctx.cameras():
        note(f"no cameras ({ctx.config_path} not found): SEEN BY is empty")
    return 0


def find_zone(zones: Sequence[Zone], zone_id: str, folder: Path) -> Zone:
    for zone in zones:
        if zone.id == zone_id:
            return zone
    known = ", ".join(z.id for z in zones[:10]) + (" …" if len(zones) > 10 else "")
    raise UserError(str(folder), f"zone {zone_id}", f"the id of a zone ({known or 'there are none'})", zone_id)


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    zones = ctx.load()
    zone = find_zone(zones, args.id, ctx.zones_dir)
    info = zone_summary(ctx, zone)
    c = zone.polygon.centroid
    minx, miny, maxx, maxy = zone.polygon.bounds
    info |= {
        "classes": list(zone.classes),
        "buffer_m": zone.buffer_m,
        "min_dwell_s": zone.min_dwell_s,
        "schedule": {"windows": [str(w) for w in zone.schedule.windows], "tz": zone.schedule.tz},
        "permits": [{"from": str(p.from_date), "to": str(p.to_date), "note": p.note} for p in zone.permits],
        "centroid": {"lat": round(c.y, 8), "lon": round(c.x, 8)},
        "bounds": {"west": minx, "south": miny, "east": maxx, "north": maxy},
        "vertices": sum(len(r) for r in zone.outline_lonlat()),
        "cameras": camera_distances(ctx, zone),
        "properties": {k: v for k, v in zone.properties.items() if k not in io.PROPERTY_ORDER},
    }
    if ctx.as_json:
        print_json(info)
        return 0
    resp = zone.responsible
    lines = [
        ("id", zone.id),
        ("name", zone.name),
        ("kind", f"{zone.kind} (rule {zone.rule})"),
        ("township", zone.township or "-"),
        ("responsible", " ".join(v for v in (resp.get("name"), resp.get("phone")) if v) or "-"),
        ("area", fmt_area(info["area_m2"])),
        ("classes", ", ".join(zone.classes)),
        ("buffer", f"{zone.buffer_m:g} m"),
        ("min dwell", f"{zone.min_dwell_s:g} s"),
        ("schedule", (", ".join(info["schedule"]["windows"]) or "all day") + f" ({zone.schedule.tz})"),
        ("permits", "; ".join(f"{p['from']}..{p['to']} {p['note']}".strip() for p in info["permits"]) or "-"),
        ("centroid", f"lat {c.y:.6f}, lon {c.x:.6f}"),
        ("vertices", str(info["vertices"])),
        ("file", zone.source),
        ("seen by", fmt_seen([(s["camera"], s["preset"]) for s in info["seen_by"]])),
    ]
    for key, value in info["properties"].items():
        lines.append((key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
    pad = max(display_width(k) for k, _ in lines)
    for key, value in lines:
        out(f"{key}{' ' * (pad - display_width(key))}  {value}")
    if info["cameras"]:
        out("")
        out(
            table(
                ["CAMERA", "DISTANCE", "BEARING", "INSIDE RANGE"],
                [
                    [d["camera"], f"{d['distance_m']:,.0f} m", f"{d['bearing_deg']:.1f}°",
                     "yes" if d["distance_m"] <= ctx.max_range_m else "no"]
                    for d in info["cameras"]
                ],
            )
        )
    return 0


def camera_distances(ctx: Context, zone: Zone) -> list[dict[str, Any]]:
    """Nearest distance and bearing of the zone from each tower (0 when the tower stands inside it)."""
    from shapely.ops import nearest_points

    from pipeline.geo.coords import LocalFrame
    from pipeline.zones.preview import zone_local

    rows = []
    for cam in ctx.cameras():
        frame = LocalFrame(cam.lat, cam.lon)
        local = zone_local(zone, frame)
        origin = shapely.Point(0.0, 0.0)
        near = nearest_points(local, origin)[0]
        dist = float(local.distance(origin))
        bearing = float(np.degrees(np.arctan2(near.x, near.y)) % 360.0) if dist > 0 else 0.0
        rows.append({"camera": cam.id, "distance_m": round(dist, 1), "bearing_deg": round(bearing, 1)})
    return rows


# --------------------------------------------------------------------------------------------- values


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_value(key: str, text: str, source: str) -> Any:
    """A KEY=VALUE value as the zone file stores it (checked again by the loader afterwards)."""
    if key in ("buffer_m", "min_dwell_s"):
        try:
            return float(text)
        except ValueError:
            raise UserError(source, key, "a number", text) from None
    if key == "classes":
        value = _json_or_text(text)
        items = value if isinstance(value, list) else [c.strip() for c in text.split(",") if c.strip()]
        for item in items:
            if item not in CLASSES:
                raise UserError(source, key, f"classes out of {', '.join(CLASSES)} (comma-separated)", item)
        return items
    if key == "schedule":
        value = _json_or_text(text)
        return value if isinstance(value, list | dict) else [w.strip() for w in text.split(",") if w.strip()]
    if key == "permits":
        value = _json_or_text(text)
        if isinstance(value, list):
            return value
        permits = []
        for item in text.split(","):
            span, _, note_text = item.strip().partition(" ")
            start, sep, end = span.partition("..")
            if not sep:
                raise UserError(source, key, 'FROM..TO [note] (dates YYYY-MM-DD), comma-separated, or JSON', item)
            permit = {"from": start, "to": end}
            if note_text.strip():
                permit["note"] = note_text.strip()
            permits.append(permit)
        return permits
    if key == "kind" and text not in ZONE_KINDS:
        raise UserError(source, key, f"one of {', '.join(ZONE_KINDS)}", text)
    if key in ("id", "name", "kind", "township") or key.startswith("responsible."):
        return text
    return _json_or_text(text)


def apply_assignment(props: dict[str, Any], assignment: str, source: str, allow_new: bool) -> str:
    """``KEY=VALUE`` into ``props`` (``KEY=`` removes an optional key). Returns the key."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(source, assignment, "KEY=VALUE", assignment)
    known = key in SETTABLE or key.startswith("responsible.") or key in props
    if not known and not allow_new:
        raise UserError(
            source, key, f"one of {', '.join(SETTABLE)}, responsible.name, responsible.phone"
            " (--new adds another property)", key
        )
    if text == "":
        if key in REQUIRED:
            raise UserError(source, key, "a value (id, name and kind are required)", "empty")
        if key.startswith("responsible."):
            resp = dict(props.get("responsible") or {})
            resp.pop(key.split(".", 1)[1], None)
            props["responsible"] = resp
            if not resp:
                del props["responsible"]
        else:
            props.pop(key, None)
        return key
    value = parse_value(key, text, source)
    if key.startswith("responsible."):
        resp = dict(props.get("responsible") or {})
        resp[key.split(".", 1)[1]] = value
        props["responsible"] = resp
    else:
        props[key] = value
    return key


# --------------------------------------------------------------------------------------------- import


STRUCTURED = ("responsible", "classes", "schedule", "permits")


def import_properties(raw: io.RawFeature, args: argparse.Namespace) -> dict[str, Any]:
    src = raw.properties
    fields = ", ".join(sorted(src)) or "none"
    props: dict[str, Any] = {}
    if args.id_field:
        if src.get(args.id_field) in (None, ""):
            raise UserError(raw.source, f"{raw.label}.{args.id_field}", f"an id in field {args.id_field!r}"
                            f" (fields: {fields})", "nothing")
        zone_id = src[args.id_field]
    else:
        zone_id = src.get("id", raw.feature_id)
    if zone_id in (None, ""):
        raise UserError(raw.source, raw.label, f"an id: a property `id` or --id-field FIELD (fields: {fields})",
                        "nothing")
    if isinstance(zone_id, float) and zone_id.is_integer():
        zone_id = int(zone_id)  # a numeric dbf field read as a float: 1401, not 1401.0
    props["id"] = f"{args.id_prefix or ''}{str(zone_id).strip()}"
    name_field = args.name_field or "name"
    if name_field not in src and args.name_field:
        raise UserError(raw.source, f"{raw.label}.{args.name_field}", f"a name in field {args.name_field!r}"
                        f" (fields: {fields})", "nothing")
    props["name"] = str(src.get(name_field) or props["id"])
    if args.kind:
        props["kind"] = args.kind
    elif src.get("kind") not in (None, ""):
        props["kind"] = src["kind"]
    else:
        raise UserError(raw.source, f"{raw.label}.kind", f"a kind: --kind {'|'.join(ZONE_KINDS)}", "nothing")
    used = {args.id_field, name_field, "id", "name", "kind"}
    for key, value in src.items():
        if key in used or value in (None, ""):
            continue
        if key in STRUCTURED and isinstance(value, str):
            value = _json_or_text(value)  # KML ExtendedData carries JSON text
        elif key in ("buffer_m", "min_dwell_s") and isinstance(value, str):
            value = _json_or_text(value)
        props[key] = value
    for assignment in args.set or []:
        apply_assignment(props, assignment, "--set", allow_new=True)
    return props


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    path = Path(args.file)
    features, declared = io.read_features(path, args.encoding)
    crs_text = args.crs or declared or (io.WGS84 if io.FORMATS.get(path.suffix.lower()) == "geojson" else None)
    if crs_text is None:
        raise UserError(str(path), "crs", "--crs EPSG:XXXX (the file declares no CRS; e.g. EPSG:4326, EPSG:4490,"
                        " EPSG:4527)", "none")
    crs = io.parse_crs(crs_text, "--crs" if args.crs else str(path))
    if args.crs and declared and path.suffix.lower() not in (".kml", ".kmz"):
        declared_crs = io.parse_crs(declared, str(path))
        if not declared_crs.equals(crs, ignore_axis_order=True):
            raise UserError(str(path), "crs", f"the CRS given with --crs ({io.crs_label(crs)})",
                            f"the file declares {io.crs_label(declared_crs)}")
    ws = Workspace.open(ctx.zones_dir, ctx.tz)
    errors: list[UserError] = []
    fixes: list[str] = []
    ids: dict[str, str] = {}
    for raw in features:
        try:
            props = import_properties(raw, args)
            if props["id"] in ids:
                raise UserError(raw.source, f"{raw.label}.id", "ids used once in the file",
                                f"{props['id']!r} again (first at {ids[props['id']]})")
            ids[props["id"]] = raw.label
            assert raw.geometry is not None
            geom = io.to_wgs84(raw.geometry, crs, raw.source, raw.label)
            geom = repair_or_refuse(geom, raw, args.fix, fixes)
            ws.put(io.zone_feature(props, geom), replace=args.replace)
        except UserError as exc:
            errors.append(exc)
    io.raise_all(errors)
    zones = [z for z in ws.check() if z.id in ids]
    warnings = import_warnings(ctx, zones)
    if args.dry_run:
        done = [f"would write {len(zones)} zone(s) (dry run): " + ", ".join(z.id for z in zones)]
    else:
        done = ws.commit()
    if ctx.as_json:
        print_json({"imported": [z.id for z in zones], "crs": io.crs_label(crs), "fixes": fixes, "done": done,
                    "warnings": warnings, "dry_run": bool(args.dry_run)})
    else:
        for line in fixes + warnings + done:
            out(line)
        out(f"imported {len(zones)} zone(s) from {path} ({io.crs_label(crs)} → WGS84) into {ctx.zones_dir}")
    return 0


def import_warnings(ctx: Context, zones: Sequence[Zone]) -> list[str]:
    """Implausible areas and zones no camera sees, as `validate` reports them (not fatal)."""
    from pipeline.zones.validate import MAX_PLAUSIBLE_AREA_M2, MIN_PLAUSIBLE_AREA_M2

    lines = []
    cameras = ctx.cameras()
    for zone in zones:
        area = area_m2(zone.polygon)
        if not MIN_PLAUSIBLE_AREA_M2 <= area <= MAX_PLAUSIBLE_AREA_M2:
            lines.append(f"{zone.source}: (id={zone.id}): warning: area {fmt_area(area)} is implausible"
                         " (wrong CRS or units?)")
        if cameras and not ctx.seen(zone):
            lines.append(f"{zone.source}: (id={zone.id}): warning: no camera or preset sees it")
    return lines


def repair_or_refuse(geom: BaseGeometry, raw: io.RawFeature, fix: bool, fixes: list[str]) -> BaseGeometry:
    """A WGS84 geometry as is when valid; repaired with make_valid when ``fix``; else the error."""
    from shapely.validation import make_valid

    from pipeline.zones.validate import polygonal, where_invalid

    if geom.is_valid and geom.area > 0:
        return geom
    reason = where_invalid(geom) if not geom.is_valid else "zero area"
    if fix and not geom.is_valid:
        valid = polygonal(make_valid(geom))
        if not valid.is_empty and valid.area > 0:
            fixes.append(f"{raw.source}: {raw.label}: fixed: {reason}: make_valid → {valid.geom_type}"
                         f" of {fmt_area(area_m2(valid))}")
            return valid
    hint = " (--fix repairs it with make_valid)" if not geom.is_valid else ""
    raise UserError(raw.source, f"{raw.label}.geometry", f"a valid polygon{hint}", reason)


# --------------------------------------------------------------------------------------------- validate


def cmd_validate(ctx: Context, args: argparse.Namespace) -> int:
    visibility: Callable[[Zone], list[tuple[str, str | None]]] | None = ctx.seen if ctx.cameras() else None
    report = check_folder(ctx.zones_dir, fix=args.fix, visibility=visibility)
    written: list[str] = []
    if args.fix and not report.errors:
        texts = fixed_texts(report)
        if texts:
            io.write_files(ctx.zones_dir, {p.name: t for p, t in texts.items()})
            written = [str(p) for p in texts]
    n_zones = len(report.zones)
    if ctx.as_json:
        print_json({
            "zones": n_zones,
            "errors": [p.as_dict() for p in report.errors],
            "warnings": [p.as_dict() for p in report.warnings],
            "fixed": [p.as_dict() for p in report.fixes] if args.fix else [],
            "written": written,
        })
    else:
        for p in report.errors + report.warnings:
            (sys.stderr if p.severity == "error" else sys.stdout).write(p.line() + "\n")
        if args.fix:
            for p in report.fixes:
                out(p.line())
            if report.errors and report.fixes:
                out(f"nothing written: {len(report.errors)} error(s) need a hand fix first")
            for path in written:
                out(f"updated {path}")
        out(
            f"{n_zones} zone(s) in {ctx.zones_dir}: {len(report.errors)} error(s), {len(report.warnings)}"
            f" warning(s)" + (f", {len(report.fixes)} fixed" if args.fix else "")
            + ("" if visibility else " (no cameras: visibility not checked)")
        )
    return 2 if report.errors else 0


# --------------------------------------------------------------------------------------------- edits


def parse_coords(text: str, source: str) -> list[tuple[float, float]]:
    """``"x,y x,y …"`` or ``"x y, x y, …"`` → positions."""
    text = text.strip()
    tokens = text.split()
    if all(t.count(",") == 1 for t in tokens):  # KML style: "x,y x,y"
        pairs = [t.split(",") for t in tokens]
    else:  # "x y, x y"
        pairs = [p.split() for p in text.split(",")]
    points = []
    for pair in pairs:
        try:
            points.append((float(pair[0]), float(pair[1])))
        except (ValueError, IndexError):
            raise UserError(source, None, '"lon,lat lon,lat …" (or "x,y …" in --crs)', " ".join(pair)) from None
    if len(points) < 3:
        raise UserError(source, None, "at least 3 points", f"{len(points)}")
    return points


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    from shapely import wkt as shapely_wkt
    from shapely.errors import ShapelyError
    from shapely.geometry import Polygon

    source = "add"
    if bool(args.coords) == bool(args.wkt):
        raise UserError(source, "geometry", "one of --coords or --wkt", "both" if args.coords else "neither")
    if args.coords:
        geom: BaseGeometry = Polygon(parse_coords(args.coords, "--coords"))
    else:
        try:
            geom = shapely_wkt.loads(args.wkt)
        except (ShapelyError, ValueError) as exc:
            raise UserError("--wkt", None, "a WKT POLYGON or MULTIPOLYGON", exc) from None
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise UserError("--wkt", None, "a WKT POLYGON or MULTIPOLYGON", geom.geom_type)
    crs = io.parse_crs(args.crs)
    geom = io.to_wgs84(geom, crs, "--coords" if args.coords else "--wkt", args.id)
    raw = io.RawFeature(source, 0, geom, {"id": args.id})
    fixes: list[str] = []
    geom = repair_or_refuse(geom, raw, args.fix, fixes)
    props: dict[str, Any] = {"id": args.id, "name": args.name or args.id, "kind": args.kind}
    if args.township:
        props["township"] = args.township
    for assignment in args.set or []:
        apply_assignment(props, assignment, "--set", allow_new=True)
    ws = Workspace.open(ctx.zones_dir, ctx.tz)
    ws.put(io.zone_feature(props, geom), replace=args.replace)
    done = ws.commit()
    if ctx.as_json:
        print_json({"added": args.id, "area_m2": round(area_m2(geom), 1), "done": done, "fixes": fixes})
    else:
        for line in fixes + done:
            out(line)
        out(f"added {args.id} ({args.kind}, {fmt_area(area_m2(geom))})")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    ws = Workspace.open(ctx.zones_dir, ctx.tz)
    for zone_id in args.ids:
        ws.drop(zone_id)
    done = ws.commit()
    if ctx.as_json:
        print_json({"removed": args.ids, "done": done})
    else:
        for line in done:
            out(line)
    return 0


def cmd_set(ctx: Context, args: argparse.Namespace) -> int:
    ws = Workspace.open(ctx.zones_dir, ctx.tz)
    feat = ws.feature(args.id)
    path = ws.touch(args.id)
    props = dict(feat.get("properties") or {})
    changes = []
    for assignment in args.assignments:
        key = apply_assignment(props, assignment, f"{path}: {args.id}", allow_new=args.new)
        changes.append(key)
    new_id = str(props["id"])
    if new_id != args.id and ws.locate(new_id) is not None:
        raise UserError(f"{path}: {args.id}", "id", "an id no other zone has", new_id)
    feat["properties"] = props
    # a one-zone file named after its id follows the new id
    if new_id != args.id and len(ws.docs[path]["features"]) == 1 and path.name == zone_filename(args.id):
        new_path = ws.folder / zone_filename(new_id)
        ws.docs[new_path] = ws.docs.pop(path)
        ws.changed.discard(path)
        ws.changed.add(new_path)
        ws.removed.add(path)
    done = ws.commit()
    if ctx.as_json:
        print_json({"zone": new_id, "changed": changes, "properties": props, "done": done})
    else:
        for line in done or [f"{args.id}: nothing changed"]:
            out(line)
    return 0


# --------------------------------------------------------------------------------------------- export


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    zones = ctx.load()
    feats = [io.zone_feature(dict(z.properties) | {"id": z.id}, io.normal_geometry(z.polygon)) for z in zones]
    text = io.collection_text(feats) if args.format == "geojson" else io.kml_text(feats)
    if args.out in (None, "-"):
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    io.write_files(target.parent if str(target.parent) else Path("."), {target.name: text})
    note(f"wrote {len(zones)} zone(s) to {target} ({args.format})")
    return 0


# --------------------------------------------------------------------------------------------- preview


def pick_pose(cam: CameraConfig, preset: str | None) -> Any:
    poses = camera_poses(cam)
    if preset is None:
        return poses[0]
    for pose in poses:
        if pose.preset == preset:
            return pose
    names = ", ".join(p.preset for p in poses if p.preset) or "none: a fixed camera"
    raise UserError("--preset", cam.id, f"a preset of camera {cam.id} ({names})", preset)


def pick_camera(ctx: Context, camera_id: str) -> CameraConfig:
    config = ctx.config()
    assert config is not None
    try:
        return config.camera(camera_id)
    except KeyError:
        ids = ", ".join(c.id for c in config.cameras)
        raise UserError(str(ctx.config_path), "cameras", f"a camera id ({ids})", camera_id) from None


def cmd_preview(ctx: Context, args: argparse.Namespace) -> int:
    from pipeline.zones import preview

    zones = ctx.load()
    if args.map:
        if args.camera:
            raise UserError("preview", "--map", "no CAMERA with --map (the map shows every camera)", args.camera)
        image, _ = preview.draw_map(zones, ctx.cameras(), ctx.max_range_m, args.size_px, args.fill_alpha)
        target = Path(args.out or "zones-map.png")
        preview.write_png(target, image)
        result: dict[str, Any] = {"file": str(target), "zones": [z.id for z in zones],
                                  "cameras": [c.id for c in ctx.cameras()]}
    else:
        if not args.camera:
            raise UserError("preview", "CAMERA", "a camera id (or --map)", "nothing")
        cam = pick_camera(ctx, args.camera)
        pose = pick_pose(cam, args.preset)
        if args.frame:
            frame = preview.read_frame(Path(args.frame), args.at_s)
        elif args.blank:
            w, h = ctx.image_wh
            frame = np.full((h, w, 3), 96, np.uint8)
        else:
            frame = preview.grab_frame(cam.source, args.at_s, f"camera {cam.id} source {cam.source_redacted}")
        image, drawn = preview.draw_zones_on_frame(
            frame, ctx.models()[cam.id], cam, pose, zones, ctx.max_range_m, args.fill_alpha
        )
        target = Path(args.out or f"preview-{cam.id}{'-' + pose.preset if pose.preset else ''}.png")
        preview.write_png(target, image)
        result = {"file": str(target), "camera": cam.id, "preset": pose.preset, "zones": drawn,
                  "image_wh": [int(frame.shape[1]), int(frame.shape[0])]}
    if ctx.as_json:
        print_json(result)
    else:
        out(f"wrote {result['file']} ({len(result['zones'])} zone(s): {', '.join(result['zones']) or 'none in view'})")
    return 0


# --------------------------------------------------------------------------------------------- test


def cmd_test(ctx: Context, args: argparse.Namespace) -> int:
    """Replay a video through the daemon's own chain (detector, tiled as the camera says → Analyzer:
    tracks, fixes, rules, events); see :mod:`pipeline.zones.replay`."""
    import time

    from pipeline.zones.replay import replay

    config = ctx.config()
    assert config is not None
    cam = pick_camera(ctx, args.camera)
    pose = pick_pose(cam, args.preset)
    zones = ctx.load()
    fps = args.fps or cam.analysis_fps
    t0 = time.time() if args.start is None else args.start
    result = replay(config, cam, pose, zones, ctx.terrain(), Path(args.footage), fps, args.max_frames, t0,
                    args.near_m)
    frames, detections, events = result.frames, result.detections, result.events
    if frames == 0:
        raise UserError(args.footage, None, "at least one decodable frame", "none")
    summary = {"camera": cam.id, "preset": pose.preset, "footage": args.footage, "frames": frames,
               "detections": len(detections), "in_zones": sum(1 for d in detections if any(z["inside"]
                                                                                             for z in d["zones"])),
               "alerts": len({e["alert_id"] for e in events})}
    from pipeline.coverage.advice import row_line, size_check  # the numbers `minewatch coverage` gives

    floor, size_rows = size_check(config, cam, [pose], zones, ctx.terrain(), ctx.config_path)
    if ctx.as_json:
        print_json({"summary": summary, "detections": detections, "events": events,
                    "size_check": {"floor_source": floor.source, "rows": [r.as_dict() for r in size_rows]}})
        return 0
    out(f"{args.footage}: {frames} frame(s) at {fps:g} fps as camera {cam.id}"
        + (f" preset {pose.preset}" if pose.preset else "") + f", {len(zones)} zone(s)")
    rows = []
    for d in detections:
        loc = d["location"]
        where = f"{loc['range_m']:.0f} m @ {loc['bearing_deg']:.0f}°" if loc else "no ground fix"
        zone_txt = "; ".join(
            f"{z['id']} {'in' if z['inside'] else 'out'} {abs(z['distance_to_boundary_m']):.0f} m"
            f" (p={z['probability_inside']:.2f})" for z in d["zones"]
        ) or "-"
        rows.append([f"{d['t_s']:.1f}", d["class"], f"{d['score']:.2f}", where, zone_txt])
    if rows:
        out(table(["T_S", "CLASS", "SCORE", "LOCATION", "ZONES (distance to boundary)"], rows))
    else:
        out("no detections")
    out("")
    if events:
        out(table(["T_S", "EVENT", "ALERT_ID", "CLASS", "RULE", "ZONE", "DIST_M"],
                  [[f"{e['t_s']:.1f}", e["type"], e["alert_id"], e["class"], e["rule"], e["zone"] or "-",
                    "-" if e["distance_to_boundary_m"] is None else f"{e['distance_to_boundary_m']:.0f}"]
                   for e in events]))
    else:
        out("no alerts would have been raised")
    out(f"{summary['detections']} detection(s), {summary['in_zones']} inside a zone, {summary['alerts']} alert(s)")
    out("")
    out(f"size check at this preset (floor from {floor.source}; `minewatch coverage` for every preset):")
    for row in size_rows:
        out(f"  {row_line(row)}")
    if not size_rows:
        out("  no zone in view")
    return 0


# --------------------------------------------------------------------------------------------- parser


def _wh(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{2,5})x(\d{2,5})", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, found {text!r}")
    return int(m.group(1)), int(m.group(2))


def _common(sub_level: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command's name. Below the command the defaults
    are suppressed, so that ``zones --config X list`` keeps X (argparse would reset it to the default)."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if sub_level else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=default("cameras.yaml"), help="cameras.yaml: zones folder and cameras")
    common.add_argument("--zones-dir", type=Path, default=default(None),
                        help="zones folder (default: zones.dir of the config)")
    common.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    common.add_argument("--max-range-m", type=float, default=default(DEFAULT_MAX_RANGE_M),
                        help=f"a camera sees a zone only within this range (default {DEFAULT_MAX_RANGE_M:g} m)")
    common.add_argument("--image-wh", type=_wh, default=default(DEFAULT_IMAGE_WH),
                        help="frame size used for visibility when no frame is at hand (default 1920x1080)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(sub_level=True)
    parser = argparse.ArgumentParser(prog=PROG, description="List, import, validate, edit, preview, test and export"
                                     " zones (docs/ZONES_CLI.md).", parents=[_common(sub_level=False)])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[Context, argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add("list", cmd_list, "the zones: kind, township, responsible person, area, cameras that see them")
    p = add("show", cmd_show, "one zone in full, with distances and bearings from each tower")
    p.add_argument("id")

    p = add("import", cmd_import, "import GeoJSON, KML/KMZ or Shapefile zones into the zones folder")
    p.add_argument("file", help=".geojson/.json, .kml, .kmz, .shp or a .zip holding a Shapefile")
    p.add_argument("--crs", help="CRS of the file's coordinates, e.g. EPSG:4326, EPSG:4490, EPSG:4527"
                   " (default: what the file declares; KML is always WGS84)")
    p.add_argument("--kind", choices=ZONE_KINDS, help="kind of every imported zone (else the `kind` field)")
    p.add_argument("--id-field", help="attribute holding the zone id (default `id`)")
    p.add_argument("--id-prefix", help="text put before every imported id, e.g. kelan-")
    p.add_argument("--name-field", help="attribute holding the zone name (default `name`, else the id)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="property for every zone (repeatable)")
    p.add_argument("--encoding", help="Shapefile attribute encoding (default .cpg, else UTF-8, else GBK)")
    p.add_argument("--replace", action="store_true", help="replace zones whose id exists already")
    p.add_argument("--fix", action="store_true", help="repair self-intersecting polygons with make_valid")
    p.add_argument("--dry-run", action="store_true", help="check everything, write nothing")

    p = add("validate", cmd_validate, "check every zone file; --fix repairs what is safe to repair")
    p.add_argument("--fix", action="store_true",
                   help="close rings, drop repeated points, orient rings, make_valid; say what changed")

    p = add("add", cmd_add, "add a zone from coordinates")
    p.add_argument("id")
    p.add_argument("--kind", required=True, choices=ZONE_KINDS)
    p.add_argument("--name", help="name shown to operators (default: the id)")
    p.add_argument("--township")
    p.add_argument("--coords", help='"lon,lat lon,lat …" (or x,y in --crs)')
    p.add_argument("--wkt", help="WKT POLYGON/MULTIPOLYGON (x y order in --crs)")
    p.add_argument("--crs", default="EPSG:4326", help="CRS of the coordinates (default %(default)s)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="another property (repeatable)")
    p.add_argument("--replace", action="store_true", help="replace the zone if the id exists")
    p.add_argument("--fix", action="store_true", help="repair a self-intersecting polygon with make_valid")

    p = add("remove", cmd_remove, "remove zones by id")
    p.add_argument("ids", nargs="+", metavar="ID")

    p = add("set", cmd_set, "change properties: KEY=VALUE (KEY= removes an optional one)")
    p.add_argument("id")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.add_argument("--new", action="store_true", help="allow a property the zone does not have and minewatch"
                   " does not know")

    p = add("preview", cmd_preview, "PNG of a camera's frame with the zones projected in, or --map")
    p.add_argument("camera", nargs="?")
    p.add_argument("--preset", help="patrol preset (default: the first)")
    p.add_argument("--frame", help="image or video file to draw on (default: grab a frame from the camera)")
    p.add_argument("--at-s", type=float, default=0.0, help="time of the frame in a video (s)")
    p.add_argument("--blank", action="store_true", help="draw on a grey frame of --image-wh")
    p.add_argument("--map", action="store_true", help="a map of zones, towers and view sectors instead")
    p.add_argument("--size-px", type=int, default=1200, help="map size (px)")
    p.add_argument("--fill-alpha", type=float, default=0.35, help="opacity of zone fills (0-1)")
    p.add_argument("--out", help="PNG to write (default preview-CAMERA[-PRESET].png or zones-map.png)")

    p = add("test", cmd_test, "replay footage through the pipeline: detections in zones and the alerts raised")
    p.add_argument("--footage", required=True, help="video file to replay")
    p.add_argument("--camera", required=True, help="camera whose pose and zones apply")
    p.add_argument("--preset", help="patrol preset the footage was taken at (default: the first)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many analysed frames (0: all)")
    p.add_argument("--fps", type=float, help="analysed frames per second (default: the camera's analysis_fps)")
    p.add_argument("--start", type=float, help="UTC unix time of the first frame (schedules, permits; default now)")
    p.add_argument("--near-m", type=float, default=50.0, help="also list zones this close to a detection (m)")

    p = add("export", cmd_export, "all zones as one GeoJSON or KML file (QGIS, Google Earth)")
    p.add_argument("--format", choices=("geojson", "kml"), default="geojson")
    p.add_argument("--out", help="file to write (default: stdout)")
    return parser


def cli_main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    ctx = Context(Path(args.config), args.zones_dir, args.json, args.max_range_m, args.image_wh)
    try:
        return int(args.func(ctx, args))
    except Problems as exc:
        for err in exc.errors:
            sys.stderr.write(f"{PROG}: {err}\n")
        return exc.exit_code

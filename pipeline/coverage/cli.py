"""``minewatch coverage``: is every zone really watched? And where should new towers go?

    minewatch coverage --config cameras.yaml [--json] [--map coverage.png]
    minewatch coverage --config cameras.yaml --candidates sites.csv --select 2 [--hfov-deg 4] [--map sites.png]

Prints, for every zone × camera × patrol preset, the range and bearing, the share of the zone in the frame and
the share of that in line of sight (DEM ray casting, Earth curvature), the pixel height of a 3 m machine and a
20 m plume there, and a verdict against the detector's size floor; then each zone's verdict, and per preset
the widest field of view that keeps its zones' targets above the floor (with how many presets a tour needs at
that zoom). docs/COVERAGE.md explains each figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import CameraConfig, Config, load_config
from pipeline.coverage.analysis import PresetZoom, ZoneCoverage, cover_zones, preset_zoom
from pipeline.coverage.floor import SizeFloor, size_floor
from pipeline.errors import UserError
from pipeline.geo.camera import CameraModel
from pipeline.geo.terrain import Terrain

PROG = "minewatch coverage"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded by display width (Chinese characters count two)."""
    widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _km(m: float) -> str:
    return f"{m / 1000:.2f} km" if m >= 1000 else f"{m:.0f} m"


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


class Survey:
    """Config, zones, terrain and camera models of one coverage run (loaded once, shared by every figure)."""

    def __init__(self, config: Config, config_path: Path | None, zones_dir: Path | None = None,
                 dem: Path | None = None) -> None:
        from pipeline.zones.model import load_zones

        self.config = config
        terrain_cfg = config.terrain if dem is None else config.terrain.model_copy(update={"dem_path": dem})
        self.terrain = Terrain.from_config(terrain_cfg)
        self.cameras: list[CameraConfig] = [c for c in config.cameras if c.enabled]
        self.models = {c.id: CameraModel.from_config(c, self.terrain) for c in self.cameras}
        self.zones = load_zones(zones_dir or config.zones.dir, config.zones.tz)
        self.floor: SizeFloor = size_floor(config, config_path)
        self.coverage: list[ZoneCoverage] = cover_zones(self.zones, self.cameras, self.models, config.coverage,
                                                        self.floor)
        self.zoom: list[PresetZoom] = preset_zoom(self.coverage, self.cameras, self.models, config.coverage)

    def unwatched(self) -> list[ZoneCoverage]:
        return [zc for zc in self.coverage if zc.verdict != "watched"]


def survey_lines(s: Survey) -> list[str]:
    cov = s.config.coverage
    floor = ", ".join(f"{k} {v:g} px" for k, v in s.floor.px.items())
    lines = [f"size floor: {floor} (from {s.floor.source})",
             f"frame {cov.image_wh_px[0]}×{cov.image_wh_px[1]} px; objects: "
             + ", ".join(f"{k} {v:g} m" for k, v in cov.object_height_m.items()), ""]
    rows = []
    for zc in s.coverage:
        for r in zc.rows:
            rows.append([zc.zone.id, r.camera, r.preset or "-", f"{r.hfov_deg:g}°", _km(r.range_m),
                         f"{r.bearing_deg:.1f}°", _pct(r.in_view_share), _pct(r.visible_share),
                         f"{r.machine_px:.1f}", f"{r.plume_px:.0f}", r.verdict_text])
    if rows:
        lines.append(table(["zone", "camera", "preset", "hfov", "range", "bearing", "in view", "visible",
                            "3 m machine px", "20 m plume px", "verdict"], rows))
    else:
        lines.append("no zone" if not s.zones else "no enabled camera")
    lines += ["", table(["zone", "kind", "classes", "watched share", "verdict", "best"],
                        [[zc.zone.id, zc.zone.kind, ",".join(zc.zone.classes), _pct(zc.watched_share), zc.verdict,
                          "-" if zc.best is None else f"{zc.best.camera}/{zc.best.preset or '-'}"]
                         for zc in s.coverage])]
    zoom_rows = []
    for z in s.zoom:
        need = ", ".join(f"{k}: {v}" for k, v in z.presets_needed.items()) or "-"
        sugg = "-" if z.suggested_hfov_deg is None else f"{z.suggested_hfov_deg:.1f}°"
        zoom_rows.append([z.camera, z.preset or "-", f"{z.hfov_deg:g}°", sugg, "yes" if z.too_wide else "no", need])
    if zoom_rows:
        lines += ["", "zoom per preset (widest hfov that keeps every zone it watches above the floor):",
                  table(["camera", "preset", "hfov now", "widest ok", "too wide", "presets needed per zone"],
                        zoom_rows)]
    return lines


def cli_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cameras.yaml", help="the cameras, zones folder, DEM and floor defaults")
    ap.add_argument("--zones-dir", type=Path, help="zones folder (default: the config's zones.dir)")
    ap.add_argument("--dem", type=Path, help="DEM GeoTIFF (default: the config's terrain.dem_path)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--map", type=Path, help="write a PNG map: zones by verdict, towers, sectors, hidden ground")
    ap.add_argument("--candidates", type=Path, help="CSV of candidate tower sites: id,lat,lon,mast_height_m")
    ap.add_argument("--select", type=int, default=1, help="how many candidate sites to pick (default 1)")
    ap.add_argument("--hfov-deg", type=float, default=4.0,
                    help="narrowest field of view a candidate's PTZ zooms to (default 4°)")
    args = ap.parse_args(list(argv))
    if args.select < 1:
        raise UserError("--select", None, "a count ≥ 1", args.select)
    if not 0.1 < args.hfov_deg < 180:
        raise UserError("--hfov-deg", None, "a field of view in (0.1, 180) degrees", args.hfov_deg)
    config_path = Path(args.config)
    config = load_config(config_path)
    survey = Survey(config, config_path, args.zones_dir, args.dem)
    result: dict[str, Any] = {
        "floor": {"px": survey.floor.px, "source": survey.floor.source},
        "zones": [zc.as_dict() for zc in survey.coverage],
        "presets": [z.as_dict() for z in survey.zoom],
    }
    lines = survey_lines(survey)
    siting = None
    candidates = []
    if args.candidates is not None:
        from pipeline.coverage.siting import read_candidates, site_towers

        candidates = read_candidates(args.candidates)
        siting = site_towers(candidates, args.select, survey.coverage, survey.terrain, config.coverage,
                             survey.floor, args.hfov_deg)
        result["siting"] = siting.as_dict() | {"hfov_deg": args.hfov_deg}
        lines += ["", f"siting: {len(siting.picks)} of {len(candidates)} candidate(s) at hfov {args.hfov_deg:g}°"
                  f" ({siting.method}); key-zone area {siting.total_m2 / 1e6:.3f} km², watched now"
                  f" {_pct(siting.before_m2 / siting.total_m2 if siting.total_m2 else 0.0)}, with the picks"
                  f" {_pct(siting.after_m2 / siting.total_m2 if siting.total_m2 else 0.0)}",
                  table(["#", "site", "lat", "lon", "mast", "adds"],
                        [[str(i + 1), p.candidate.id, f"{p.candidate.lat:.5f}", f"{p.candidate.lon:.5f}",
                          f"{p.candidate.mast_height_m:g} m", f"{p.gain_m2 / 1e6:.3f} km²"]
                         for i, p in enumerate(siting.picks)])]
    if args.map is not None:
        from pipeline.coverage.picture import draw_coverage_map
        from pipeline.zones.preview import write_png

        image = draw_coverage_map(survey.coverage, survey.cameras, min(config.terrain.max_range_m, 20_000.0),
                                  candidates, siting)
        write_png(args.map, image)
        result["map"] = str(args.map)
        lines += ["", f"map: {args.map}"]
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0

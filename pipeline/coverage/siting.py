"""Siting new towers: pick N candidate sites that together watch the most key-zone area at the detector's floor.

A candidate (``id,lat,lon,mast_height_m[,ground_elevation_m]`` in a CSV) is a PTZ camera that can turn to any
zone and zoom in to ``hfov_deg`` (its narrowest field of view). It watches a zone's sample point when the point
is in line of sight (the same ray casting as :mod:`pipeline.coverage.analysis`, on the config's DEM) and within
the distance at which every class the zone alerts on reaches its floor at that zoom. Points already watched by
the config's cameras count as covered. The pick maximises the newly watched area: exhaustively when there are
at most ``EXHAUSTIVE_MAX`` combinations, else greedily (each step adds the site with the largest gain; within
1 − 1/e of the best, as for any monotone submodular cover).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.config import CoverageConfig
from pipeline.coverage.analysis import ZoneCoverage, look, object_heights
from pipeline.coverage.floor import SizeFloor
from pipeline.errors import UserError
from pipeline.geo.camera import CameraModel, focal_px
from pipeline.geo.terrain import Terrain

#: up to this many combinations of N out of the candidates are tried one by one; beyond it, greedy.
EXHAUSTIVE_MAX = 20_000


@dataclass(frozen=True)
class Candidate:
    id: str
    lat: float
    lon: float
    mast_height_m: float
    ground_elevation_m: float | None = None


def read_candidates(path: Path) -> list[Candidate]:
    """Candidates from a CSV with a header: id, lat, lon, mast_height_m (and optionally ground_elevation_m)."""
    source = str(path)
    if not path.is_file():
        raise UserError(source, None, "an existing CSV file of candidate sites", "no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in ("id", "lat", "lon", "mast_height_m") if c not in header]
            if missing:
                raise UserError(source, "header", "columns id, lat, lon, mast_height_m", ", ".join(header) or "none")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(source, None, "a readable UTF-8 CSV file", exc) from None
    out: list[Candidate] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=2):
        where = f"line {i}"
        cid = row["id"]
        if not cid or cid in seen:
            raise UserError(source, f"{where}: id", "a unique, non-empty id", cid or "empty")
        seen.add(cid)
        vals: dict[str, float] = {}
        for key, lo, hi in (("lat", -90, 90), ("lon", -180, 180), ("mast_height_m", 0, 500),
                            ("ground_elevation_m", -500, 9000)):
            text = row.get(key, "")
            if key == "ground_elevation_m" and not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise UserError(source, f"{where}: {key}", "a number", text or "empty") from None
            if not (math.isfinite(value) and lo <= value <= hi):
                raise UserError(source, f"{where}: {key}", f"a number in [{lo}, {hi}]", text)
            vals[key] = value
        out.append(Candidate(cid, vals["lat"], vals["lon"], vals["mast_height_m"], vals.get("ground_elevation_m")))
    if not out:
        raise UserError(source, None, "at least one candidate site", "none")
    return out


def candidate_model(c: Candidate, terrain: Terrain) -> CameraModel:
    """The candidate as a camera model: its foot on the DEM (unless the CSV gives the elevation)."""
    ground = c.ground_elevation_m
    if ground is None:
        z = float(terrain.elevation(c.lat, c.lon))
        ground = z if math.isfinite(z) else 0.0
    return CameraModel(c.id, c.lat, c.lon, ground, c.mast_height_m, terrain)


def watched_by_site(
    model: CameraModel, coverage: Sequence[ZoneCoverage], cov: CoverageConfig, floor: SizeFloor, hfov_deg: float
) -> NDArray[np.bool_]:
    """Over all zones' sample points (concatenated): which the site watches at ``hfov_deg``."""
    parts = []
    focal = focal_px(hfov_deg, cov.image_wh_px[0])
    heights = object_heights(cov)
    for zc in coverage:
        tl = look(model, zc.samples.lat, zc.samples.lon, cov.above_ground_m)
        big = np.ones(len(tl.slant_m), bool)
        for c in zc.zone.classes:
            big &= focal * heights[c] / np.maximum(tl.slant_m, 1e-6) >= floor.of(c)
        parts.append(tl.visible & big)
    return np.concatenate(parts) if parts else np.zeros(0, bool)


@dataclass
class Pick:
    candidate: Candidate
    gain_m2: float  # area newly watched when this site was added (in the order picked)


@dataclass
class Siting:
    picks: list[Pick]
    method: str  # "exhaustive" | "greedy"
    total_m2: float  # key-zone area
    before_m2: float  # watched by the config's cameras
    after_m2: float  # watched with the picks
    per_site_m2: dict[str, float] = field(default_factory=dict)  # each candidate alone (new area)
    watched: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "key_zone_area_m2": round(self.total_m2, 1),
            "watched_before_m2": round(self.before_m2, 1),
            "watched_after_m2": round(self.after_m2, 1),
            "picks": [
                {"id": p.candidate.id, "lat": p.candidate.lat, "lon": p.candidate.lon,
                 "mast_height_m": p.candidate.mast_height_m, "gain_m2": round(p.gain_m2, 1)}
                for p in self.picks
            ],
            "alone_m2": {k: round(v, 1) for k, v in self.per_site_m2.items()},
        }


def select_sites(
    candidates: Sequence[Candidate],
    masks: NDArray[np.bool_],  # (C, P): which points each candidate watches
    weights: NDArray[np.float64],  # (P,) area per point
    covered: NDArray[np.bool_],  # (P,) already watched
    n: int,
) -> tuple[list[int], str]:
    """Indices of the ``n`` candidates whose union of new watched area is largest, and the method used."""
    n = min(n, len(candidates))
    new = masks & ~covered[None, :]
    if math.comb(len(candidates), n) <= EXHAUSTIVE_MAX:
        best: tuple[float, tuple[int, ...]] = (-1.0, ())
        for combo in itertools.combinations(range(len(candidates)), n):
            area = float(weights[np.any(new[list(combo)], axis=0)].sum()) if combo else 0.0
            if area > best[0] + 1e-9:
                best = (area, combo)
        # report in greedy order (largest gain first) so that gains read naturally
        order: list[int] = []
        have = np.zeros(len(weights), bool)
        rest = list(best[1])
        while rest:
            k = max(rest, key=lambda i: float(weights[new[i] & ~have].sum()))
            order.append(k)
            have |= new[k]
            rest.remove(k)
        return order, "exhaustive"
    chosen: list[int] = []
    have = np.zeros(len(weights), bool)
    for _ in range(n):
        gains = [(-1.0 if i in chosen else float(weights[new[i] & ~have].sum()), i) for i in range(len(candidates))]
        _, k = max(gains)
        chosen.append(k)
        have |= new[k]
    return chosen, "greedy"


def site_towers(
    candidates: Sequence[Candidate],
    n: int,
    coverage: Sequence[ZoneCoverage],
    terrain: Terrain,
    cov: CoverageConfig,
    floor: SizeFloor,
    hfov_deg: float,
) -> Siting:
    """Pick ``n`` of ``candidates`` (see the module's docstring)."""
    weights = np.concatenate([zc.samples.weight_m2 for zc in coverage]) if coverage else np.zeros(0)
    covered = np.concatenate([zc.watched_mask for zc in coverage]) if coverage else np.zeros(0, bool)
    masks = np.stack([watched_by_site(candidate_model(c, terrain), coverage, cov, floor, hfov_deg)
                      for c in candidates]) if candidates else np.zeros((0, len(weights)), bool)
    idx, method = select_sites(candidates, masks, weights, covered, n)
    have = covered.copy()
    picks = []
    for k in idx:
        gain = float(weights[masks[k] & ~have].sum())
        have |= masks[k]
        picks.append(Pick(candidates[k], gain))
    alone = {c.id: float(weights[masks[i] & ~covered].sum()) for i, c in enumerate(candidates)}
    return Siting(picks, method, float(weights.sum()), float(weights[covered].sum()), float(weights[have].sum()),
                  alone, have)

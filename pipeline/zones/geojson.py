"""The one check of a GeoJSON polygon geometry's shape, shared by the zone loader (model.py, WGS84, strict),
the importer (io.py, any CRS) and ``zones validate``.

Checked here: a geometry object of type Polygon or MultiPolygon, coordinates nested to the right depth,
rings of at least 3 positions, positions of two or three finite numbers. Not here (the callers' business):
the coordinate ranges of a CRS, closed rings, validity and area.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.errors import UserError

POLYGON_TYPES = ("Polygon", "MultiPolygon")


def polygon_geometry(geom: Any, src: str, where: str) -> tuple[str, Any]:
    """``(type, coordinates)`` of a Polygon or MultiPolygon geometry object; a one-line UserError otherwise."""
    if not isinstance(geom, dict):
        raise UserError(src, where, "a Polygon or MultiPolygon geometry", "nothing" if geom is None else geom)
    kind = geom.get("type")
    if kind not in POLYGON_TYPES:
        raise UserError(src, f"{where}.type", "Polygon or MultiPolygon", kind)
    return str(kind), geom.get("coordinates")


def coords_depth(kind: str) -> int:
    """How deeply a geometry's coordinates nest: Polygon 3 (rings, positions, numbers), MultiPolygon 4."""
    return 3 if kind == "Polygon" else 4


def is_position(pos: Any) -> bool:
    """A GeoJSON position: a list of two (or more) finite numbers, ``[x, y]`` or ``[lon, lat]`` first."""
    return (
        isinstance(pos, list | tuple)
        and len(pos) >= 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        and all(math.isfinite(float(v)) for v in pos)
    )


def coords_problem(coords: Any, depth: int, where: str = "") -> str | None:
    """Why a nested coordinate list is not ``depth`` levels deep with numeric positions (None: it is)."""
    if depth == 1:
        return None if is_position(coords) else f"{coords!r} at {where or '[]'} (a position is [lon, lat])"
    if not isinstance(coords, list | tuple) or not coords:
        return f"{'empty' if coords == [] else repr(coords)[:40]} at {where or 'top'}"
    if depth == 2 and len(coords) < 3:
        return f"a ring of {len(coords)} position(s) at {where} (needs at least 4 with the closing one)"
    for i, item in enumerate(coords):
        problem = coords_problem(item, depth - 1, f"{where}[{i}]")
        if problem:
            return problem
    return None

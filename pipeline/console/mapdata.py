"""What the map draws besides alerts: each box's zones (GeoJSON, WGS84) and towers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.console.config import ConsoleConfig
from pipeline.errors import UserError

ZONE_KINDS = ("closed_mine", "illegal_site", "licensed_area", "fire_watch")


def _zone_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in (".geojson", ".json"))
    if path.is_file():
        return [path]
    raise UserError(str(path), "boxes[].zones", "an existing GeoJSON file or folder", "nothing there")


def load_zone_features(files: list[Path], box_id: str) -> list[dict[str, Any]]:
    """The Polygon/MultiPolygon features of the files, with ``box_id`` added to their properties."""
    out: list[dict[str, Any]] = []
    for src in files:
        for file in _zone_files(src):
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(str(file), None, "a readable GeoJSON file", exc) from None
            features = data.get("features") if isinstance(data, dict) else None
            if isinstance(data, dict) and data.get("type") == "Feature":
                features = [data]
            if not isinstance(features, list):
                raise UserError(str(file), "features", "a GeoJSON FeatureCollection or Feature", type(data).__name__)
            for i, feat in enumerate(features):
                geom = feat.get("geometry") if isinstance(feat, dict) else None
                if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
                    kind = geom.get("type") if isinstance(geom, dict) else geom
                    raise UserError(str(file), f"features[{i}].geometry", "a Polygon or MultiPolygon", kind)
                props = dict(feat.get("properties") or {})
                if props.get("kind") not in ZONE_KINDS:
                    raise UserError(
                        str(file), f"features[{i}].properties.kind", " | ".join(ZONE_KINDS), props.get("kind")
                    )
                props["box_id"] = box_id
                out.append({"type": "Feature", "properties": props, "geometry": geom})
    return out


def to_gcj02_features(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The features with every [lon, lat] shifted to GCJ-02 (for AMap/Tencent tiles)."""
    import numpy as np

    from pipeline.geo.coords import wgs84_to_gcj02

    def shift(coords: Any) -> Any:
        arr = np.asarray(coords, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] >= 2:
            lat, lon = wgs84_to_gcj02(arr[:, 1], arr[:, 0])
            return np.stack([lon, lat], axis=1).tolist()
        return [shift(c) for c in coords]

    out = []
    for f in features:
        geom = dict(f["geometry"])
        geom["coordinates"] = shift(geom["coordinates"])
        out.append({**f, "geometry": geom})
    return out


def to_gcj02_point(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    if lat is None or lon is None:
        return lat, lon
    from pipeline.geo.coords import wgs84_to_gcj02

    g_lat, g_lon = wgs84_to_gcj02(float(lat), float(lon))
    return float(g_lat), float(g_lon)


def configured_towers(config: ConsoleConfig) -> list[dict[str, Any]]:
    """Towers from each box's cameras.yaml and its ``towers:`` list."""
    towers: list[dict[str, Any]] = []
    for box in config.boxes:
        if box.cameras_config is not None:
            from pipeline.config import load_config

            for cam in load_config(box.cameras_config).cameras:
                towers.append(
                    {
                        "box_id": box.id,
                        "camera_id": cam.id,
                        "name": cam.name,
                        "lat": cam.lat,
                        "lon": cam.lon,
                        "pan_deg": cam.pan_deg,
                        "hfov_deg": cam.hfov_deg,
                    }
                )
        for t in box.towers:
            towers.append(
                {
                    "box_id": box.id,
                    "camera_id": t.id,
                    "name": t.name,
                    "lat": t.lat,
                    "lon": t.lon,
                    "pan_deg": t.pan_deg,
                    "hfov_deg": t.hfov_deg,
                }
            )
    return towers


def merge_towers(configured: list[dict[str, Any]], seen: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Configured towers, updated by what events and status messages said (pose, status)."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {(t["box_id"], t["camera_id"]): dict(t) for t in configured}
    for row in seen:
        key = (str(row["box_id"]), str(row["camera_id"]))
        tower = by_key.setdefault(key, {"box_id": key[0], "camera_id": key[1]})
        for k in ("name", "lat", "lon", "pan_deg", "hfov_deg", "status", "status_t"):
            if row.get(k) not in (None, ""):
                tower[k] = row[k]
    return [t for t in by_key.values() if t.get("lat") is not None and t.get("lon") is not None] + [
        t for t in by_key.values() if t.get("lat") is None or t.get("lon") is None
    ]

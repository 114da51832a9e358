"""An offline base map for the console: a hillshade of the county DEM (issue 18.7).

The DEM is the GeoTIFF the edge boxes use (``terrain.dem_path``), read the same way (rasterio, through
:class:`pipeline.geo.terrain.Terrain`: any CRS, north-up). It is resampled onto a regular WGS84 latitude /
longitude grid (at most ``max_side_px`` cells a side) so that Leaflet can stretch it over its bounds as an
image overlay, and shaded with the usual Lambert model: brightness = cos of the angle between the ground's
normal and the direction of the sun (``azimuth_deg`` clockwise from north, the direction the light comes
from; ``altitude_deg`` above the horizon). Cells outside the DEM are transparent.

Stretching a lat/lon grid over Web Mercator bounds bends it by the change of the Mercator scale across the
image: over a county (50 km north-south at 38° N) that is under 0.1 % of the height, a few metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.errors import UserError

F64 = NDArray[np.float64]
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0


@dataclass(frozen=True)
class Hillshade:
    """The shaded image (PNG, grey with alpha) and where it lies: ``bounds`` = ((south, west), (north, east))."""

    png: bytes
    bounds: tuple[tuple[float, float], tuple[float, float]]
    shape_hw: tuple[int, int]


def shade(height_m: F64, step_east_m: float, step_north_m: float, azimuth_deg: float = 315.0,
          altitude_deg: float = 45.0) -> F64:
    """Brightness 0–1 of a north-up grid (row 0 = north) lit from ``azimuth_deg`` at ``altitude_deg``; NaN
    where the height is NaN."""
    d_row, d_col = np.gradient(height_m)
    dz_east = d_col / step_east_m
    dz_north = -d_row / step_north_m  # rows run southwards
    az, alt = math.radians(azimuth_deg), math.radians(altitude_deg)
    light = (math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt))  # east, north, up
    lit = (-dz_east * light[0] - dz_north * light[1] + light[2]) / np.sqrt(1.0 + dz_east**2 + dz_north**2)
    return np.clip(lit, 0.0, 1.0)


def dem_bounds_wgs84(path: Path) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the GeoTIFF in WGS84 degrees."""
    import pyproj
    import rasterio

    with rasterio.open(path) as ds:
        b, crs = ds.bounds, ds.crs
    tr = pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(crs.to_wkt()), "EPSG:4326", always_xy=True)
    west, south, east, north = tr.transform_bounds(b.left, b.bottom, b.right, b.top, densify_pts=21)
    return float(west), float(south), float(east), float(north)


def render(dem_path: Path, max_side_px: int = 2048, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
           field: str = "web.hillshade.dem_path") -> Hillshade:
    """Read the DEM, resample it onto a WGS84 grid and shade it. Bad input raises :class:`UserError`."""
    import cv2

    from pipeline.geo.terrain import Terrain

    try:
        terrain = Terrain(dem_path=dem_path)
        west, south, east, north = dem_bounds_wgs84(dem_path)
    except UserError as exc:
        raise UserError(str(dem_path), field, exc.expected, exc.found) from None
    lat_mid = (south + north) / 2
    height_m = (north - south) * M_PER_DEG_LAT
    width_m = (east - west) * M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat_mid))
    scale = max_side_px / max(height_m, width_m)
    h_px, w_px = max(2, round(height_m * scale)), max(2, round(width_m * scale))
    lats = north - (north - south) * (np.arange(h_px) + 0.5) / h_px
    lons = west + (east - west) * (np.arange(w_px) + 0.5) / w_px
    lon_g, lat_g = np.meshgrid(lons, lats)
    z = terrain.elevation(lat_g, lon_g).reshape(h_px, w_px)
    if not np.isfinite(z).any():
        raise UserError(str(dem_path), field, "a DEM with heights", "no valid cell")
    bright = shade(z, width_m / w_px, height_m / h_px, azimuth_deg, altitude_deg)
    grey = np.nan_to_num(bright * 255.0, nan=0.0).astype(np.uint8)
    alpha = np.where(np.isfinite(bright), 255, 0).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.dstack([grey, grey, grey, alpha]))
    assert ok
    return Hillshade(bytes(buf.tobytes()), ((south, west), (north, east)), (h_px, w_px))


def page_layer(h: Hillshade) -> dict[str, Any]:
    """What the page needs to draw it."""
    return {"url": "/map/hillshade.png", "bounds": [list(h.bounds[0]), list(h.bounds[1])]}

"""Coordinates: a local metric frame, GCJ-02 for Chinese web maps, and the CRSs of Chinese land registries.

* :class:`LocalFrame` — east/north metres on an azimuthal equidistant projection (WGS84 ellipsoid) centred on
  an origin (a tower, a box's centroid). Distances and bearings from the origin are exact on the ellipsoid;
  away from it the scale error grows like ``(d / R)² / 3`` (≈ 0.1 mm at 1 km, ≈ 0.8 cm at 10 km,
  ≈ 3 cm at 20 km between two points 20 km out), far below anything a camera resolves.
* :func:`wgs84_to_gcj02` / :func:`gcj02_to_wgs84` — the "Mars coordinates" obfuscation that Gaode/AMap,
  Tencent and Google-China maps use. The forward formula is the widely published one (same constants as
  the eviltransform and coordtransform libraries); the inverse iterates the forward one to sub-millimetre.
  Outside China's bounding box both return the input unchanged, as the maps do.
* CGCS2000 (EPSG:4490) and its Gauss-Krüger projections (verified against pyproj's EPSG database):
  6° zones with zone prefix EPSG:4491–4501 (zones 13–23, CM 75°E–135°E), 6° without prefix 4502–4512,
  3° zones with prefix EPSG:4513–4533 (zones 25–45, CM 75°E–135°E), 3° without prefix 4534–4554.
  :func:`transform_to_wgs84` converts (x, y) in any CRS pyproj knows to WGS84 lon/lat. CGCS2000 and WGS84
  agree to a few centimetres, so EPSG:4490 ↔ 4326 is an identity in PROJ (documented in docs/GEO.md).

Every function is vectorised: pass floats or numpy arrays (any shape); arrays in, arrays out.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, overload

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray
from pyproj.enums import TransformDirection

from pipeline.errors import UserError

F64 = NDArray[np.float64]

#: EPSG code of CGCS2000 geographic coordinates (lat/lon on the CGCS2000 ellipsoid).
CGCS2000_EPSG = 4490
WGS84_EPSG = 4326


# ----------------------------------------------------------------------------------------------- local frame
class LocalFrame:
    """East/north metres around ``(lat0, lon0)`` (azimuthal equidistant on WGS84).

    ``to_local_m`` and ``to_wgs84`` accept floats or arrays of any (matching) shape. Safe to share between
    threads (pyproj ≥ 3.1 transformers are thread-safe).
    """

    def __init__(self, lat0: float, lon0: float) -> None:
        if not (-90.0 <= lat0 <= 90.0 and -180.0 <= lon0 <= 180.0) or not math.isfinite(lat0 + lon0):
            raise ValueError(f"origin out of range: lat0={lat0}, lon0={lon0}")
        self.lat0 = float(lat0)
        self.lon0 = float(lon0)
        self.proj4 = f"+proj=aeqd +lat_0={self.lat0!r} +lon_0={self.lon0!r} +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
        # a bare PROJ pipeline (lon/lat degrees → aeqd metres): 0.1 ms to build, where from_crs takes ~30 ms
        self._tr = pyproj.Transformer.from_pipeline(
            f"+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad +step {self.proj4}"
        )

    def __repr__(self) -> str:
        return f"LocalFrame(lat0={self.lat0}, lon0={self.lon0})"

    def _transformer(self) -> pyproj.Transformer:
        return self._tr

    @overload
    def to_local_m(self, lat: float, lon: float) -> tuple[float, float]: ...
    @overload
    def to_local_m(self, lat: NDArray[Any], lon: NDArray[Any]) -> tuple[F64, F64]: ...
    def to_local_m(self, lat: Any, lon: Any) -> tuple[Any, Any]:
        """WGS84 degrees → (east_m, north_m) relative to the origin."""
        east, north = self._transformer().transform(_f64(lon), _f64(lat))
        return _out(east, lat), _out(north, lat)

    @overload
    def to_wgs84(self, east_m: float, north_m: float) -> tuple[float, float]: ...
    @overload
    def to_wgs84(self, east_m: NDArray[Any], north_m: NDArray[Any]) -> tuple[F64, F64]: ...
    def to_wgs84(self, east_m: Any, north_m: Any) -> tuple[Any, Any]:
        """(east_m, north_m) relative to the origin → WGS84 (lat, lon) degrees."""
        lon, lat = self._transformer().transform(_f64(east_m), _f64(north_m), direction=TransformDirection.INVERSE)
        return _out(lat, east_m), _out(lon, east_m)


def _f64(value: Any) -> Any:
    return float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)


def _out(value: Any, like: Any) -> Any:
    return float(value) if np.ndim(like) == 0 else np.asarray(value, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------- GCJ-02
_GCJ_A = 6378245.0  # Krasovsky 1940 semi-major axis, as used by the GCJ-02 formula
_GCJ_EE = 0.00669342162296594323  # its first eccentricity squared


def out_of_china(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.bool_]:
    """True where GCJ-02 leaves coordinates unchanged (the rough bounding box all implementations use)."""
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    return np.asarray((lon_a < 72.004) | (lon_a > 137.8347) | (lat_a < 0.8293) | (lat_a > 55.8271))


def _delta(lat: F64, lon: F64) -> tuple[F64, F64]:
    x = lon - 105.0
    y = lat - 35.0
    sq = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sq
    dlat += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sq
    dlon += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _GCJ_EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlat, dlon


@overload
def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lat: NDArray[Any], lon: NDArray[Any]) -> tuple[F64, F64]: ...
def wgs84_to_gcj02(lat: Any, lon: Any) -> tuple[Any, Any]:
    """WGS84 → GCJ-02 (lat, lon) degrees; unchanged outside China. Offsets are typically 100–700 m."""
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    dlat, dlon = _delta(lat_a, lon_a)
    outside = out_of_china(lat_a, lon_a)
    g_lat = np.where(outside, lat_a, lat_a + dlat)
    g_lon = np.where(outside, lon_a, lon_a + dlon)
    return _out(g_lat, lat), _out(g_lon, lat)


@overload
def gcj02_to_wgs84(lat: float, lon: float, tol_deg: float = ...) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lat: NDArray[Any], lon: NDArray[Any], tol_deg: float = ...) -> tuple[F64, F64]: ...
def gcj02_to_wgs84(lat: Any, lon: Any, tol_deg: float = 1e-10) -> tuple[Any, Any]:
    """GCJ-02 → WGS84 by fixed-point iteration of the forward formula (≈1e-5 m after a few steps).

    ``tol_deg`` is the stopping tolerance in degrees (1e-10° ≈ 0.01 mm); at most 30 iterations.
    """
    g_lat = np.asarray(lat, dtype=np.float64)
    g_lon = np.asarray(lon, dtype=np.float64)
    w_lat, w_lon = g_lat.copy(), g_lon.copy()
    for _ in range(30):
        f_lat, f_lon = wgs84_to_gcj02(w_lat, w_lon)
        e_lat, e_lon = np.asarray(f_lat) - g_lat, np.asarray(f_lon) - g_lon
        w_lat = w_lat - e_lat
        w_lon = w_lon - e_lon
        if float(np.max(np.abs(e_lat), initial=0.0)) < tol_deg and float(np.max(np.abs(e_lon), initial=0.0)) < tol_deg:
            break
    return _out(w_lat, lat), _out(w_lon, lat)


# ------------------------------------------------------------------------------------------------ CGCS2000 CRS
def cgcs2000_gk_epsg(lon: float, zone_width_deg: int = 3, zone_prefix: bool = True) -> int:
    """EPSG code of the CGCS2000 Gauss-Krüger projection whose zone contains ``lon`` (75°E–135°E).

    3° zones are centred on multiples of 3° (zone n: CM = 3n); 6° zones on 6n − 3 (zone n covers
    6(n−1)…6n). ``zone_prefix`` selects the variant whose false easting carries the zone number
    (e.g. 38 500 000 m) rather than the bare 500 000 m.
    """
    if zone_width_deg == 3:
        zone = int(math.floor(lon / 3.0 + 0.5))
        if not 25 <= zone <= 45:
            raise ValueError(f"longitude {lon} is outside the CGCS2000 3° zones 25–45 (73.5°E–136.5°E)")
        return (4513 if zone_prefix else 4534) + zone - 25
    if zone_width_deg == 6:
        zone = int(math.floor(lon / 6.0)) + 1
        if not 13 <= zone <= 23:
            raise ValueError(f"longitude {lon} is outside the CGCS2000 6° zones 13–23 (72°E–138°E)")
        return (4491 if zone_prefix else 4502) + zone - 13
    raise ValueError(f"zone_width_deg must be 3 or 6, not {zone_width_deg}")


def is_cgcs2000_gk(epsg: int) -> bool:
    """True for the 66 CGCS2000 Gauss-Krüger codes EPSG:4491–4554."""
    return 4491 <= epsg <= 4554


@lru_cache(maxsize=64)
def _to_wgs84_transformer(crs_text: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(crs_text), "EPSG:4326", always_xy=True)


def parse_crs(crs: str | int, source: str = "crs") -> pyproj.CRS:
    """A CRS from ``"EPSG:4549"``, ``4549``, a GeoJSON ``urn:ogc:def:crs:EPSG::4549`` or WKT/PROJ text.

    Raises :class:`UserError` (one line, naming ``source``) when pyproj does not know it.
    """
    text = f"EPSG:{crs}" if isinstance(crs, int) else str(crs).strip()
    try:
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError:
        raise UserError(source, "crs", "a CRS pyproj knows (e.g. EPSG:4326, EPSG:4490, EPSG:4549)", text) from None


def transform_to_wgs84(xy: ArrayLike, crs: str | int | pyproj.CRS) -> F64:
    """(N, 2) coordinates in ``crs`` (x/east/lon first, as GeoJSON) → (N, 2) WGS84 ``(lon, lat)`` degrees.

    Axis order is always x-then-y (``always_xy``): lon/lat for geographic CRSs, easting/northing for
    projected ones, whatever the EPSG axis order says.
    """
    arr = np.asarray(xy, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"expected (N, 2) coordinates, got shape {arr.shape}")
    key = crs.to_wkt() if isinstance(crs, pyproj.CRS) else (f"EPSG:{crs}" if isinstance(crs, int) else str(crs))
    x, y = _to_wgs84_transformer(key).transform(arr[:, 0], arr[:, 1])
    return np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1)


def transform_from_wgs84(lonlat: ArrayLike, crs: str | int | pyproj.CRS) -> F64:
    """(N, 2) WGS84 ``(lon, lat)`` → (N, 2) ``(x, y)`` in ``crs`` (x first); the inverse of the above."""
    arr = np.asarray(lonlat, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"expected (N, 2) coordinates, got shape {arr.shape}")
    key = crs.to_wkt() if isinstance(crs, pyproj.CRS) else (f"EPSG:{crs}" if isinstance(crs, int) else str(crs))
    x, y = _to_wgs84_transformer(key).transform(arr[:, 0], arr[:, 1], direction=TransformDirection.INVERSE)
    return np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1)

"""pipeline/geo/coords.py: local frame, GCJ-02 against published points, CGCS2000 Gauss-Krüger CRSs."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from pipeline.errors import UserError
from pipeline.geo.coords import (
    LocalFrame,
    cgcs2000_gk_epsg,
    gcj02_to_wgs84,
    is_cgcs2000_gk,
    out_of_china,
    parse_crs,
    transform_from_wgs84,
    transform_to_wgs84,
    wgs84_to_gcj02,
)

GEOD = pyproj.Geod(ellps="WGS84")


# --------------------------------------------------------------------------------------------------- LocalFrame
@pytest.mark.parametrize(
    ("azimuth_deg", "distance_m"),
    [(0.0, 1000.0), (90.0, 2500.0), (225.0, 12_000.0), (333.0, 19_999.0), (10.0, 0.5)],
)
def test_local_frame_distance_and_bearing_from_origin_are_geodesic(azimuth_deg: float, distance_m: float) -> None:
    lat0, lon0 = 26.5, 107.6
    lon, lat, _ = GEOD.fwd(lon0, lat0, azimuth_deg, distance_m)
    east, north = LocalFrame(lat0, lon0).to_local_m(lat, lon)
    assert np.hypot(east, north) == pytest.approx(distance_m, abs=1e-3)
    assert np.degrees(np.arctan2(east, north)) % 360 == pytest.approx(azimuth_deg % 360, abs=1e-6)


def test_local_frame_round_trip_vectorised_and_scalar() -> None:
    frame = LocalFrame(39.9, 116.4)
    rng = np.random.default_rng(0)
    east = rng.uniform(-20_000, 20_000, (7, 3))
    north = rng.uniform(-20_000, 20_000, (7, 3))
    lat, lon = frame.to_wgs84(east, north)
    assert lat.shape == (7, 3)
    e2, n2 = frame.to_local_m(lat, lon)
    assert np.max(np.abs(e2 - east)) < 1e-6 and np.max(np.abs(n2 - north)) < 1e-6
    e, n = frame.to_local_m(39.9, 116.4)
    assert isinstance(e, float) and abs(e) < 1e-9 and abs(n) < 1e-9


@pytest.mark.parametrize(("lat0", "lon0"), [(91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0)])
def test_local_frame_rejects_bad_origin(lat0: float, lon0: float) -> None:
    with pytest.raises(ValueError, match="origin"):
        LocalFrame(lat0, lon0)


# ------------------------------------------------------------------------------------------------------ GCJ-02
# Published WGS84 → GCJ-02 pairs:
#  * wandergis/coordtransform, test/app.js: wgs84togcj02(116.404, 39.915) = [116.41024449916938, 39.91640428150164]
#  * googollee/eviltransform test table (also larryli/eviltransform tests): Shanghai, Shenzhen, Beijing
#  * Jun Cai, geoChina (R) tests: (39.90734, 116.39089) → (39.90874107, 116.39713094); the same point through
#    the AMap web API gave (39.90874539, 116.39713623), i.e. the formula is within ~0.6 m of the official service.
GCJ_REFERENCE = [
    ("coordtransform Beijing", 39.915, 116.404, 39.91640428150164, 116.41024449916938, 1e-9),
    ("eviltransform Shanghai", 31.1774276, 121.5272106, 31.17530398364597, 121.531541859215, 1e-9),
    ("eviltransform Shenzhen", 22.543847, 113.912316, 22.540796131694766, 113.9171764808363, 1e-9),
    ("eviltransform Beijing", 39.911954, 116.377817, 39.91334545536069, 116.38404722455657, 1e-9),
    ("geoChina Tiananmen", 39.90734, 116.39089, 39.90874107, 116.39713094, 1e-8),
    ("geoChina via AMap API", 39.90734, 116.39089, 39.90874539, 116.39713623, 1e-5),
]


@pytest.mark.parametrize(("name", "lat", "lon", "g_lat", "g_lon", "tol_deg"), GCJ_REFERENCE, ids=lambda v: str(v))
def test_gcj02_matches_published_points(
    name: str, lat: float, lon: float, g_lat: float, g_lon: float, tol_deg: float
) -> None:
    out_lat, out_lon = wgs84_to_gcj02(lat, lon)
    assert out_lat == pytest.approx(g_lat, abs=tol_deg), name
    assert out_lon == pytest.approx(g_lon, abs=tol_deg), name


def test_gcj02_inverse_round_trip_over_china_to_a_millimetre() -> None:
    lat, lon = np.meshgrid(np.linspace(18.5, 53.0, 12), np.linspace(74.0, 134.5, 12))
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    offset_m = np.hypot((g_lat - lat) * 111_000, (g_lon - lon) * 111_000 * np.cos(np.radians(lat)))
    assert offset_m.min() > 20 and offset_m.max() < 1500  # it really moves points, by tens to hundreds of m
    w_lat, w_lon = gcj02_to_wgs84(g_lat, g_lon)
    assert np.max(np.abs(w_lat - lat)) * 111_000 < 1e-3
    assert np.max(np.abs(w_lon - lon)) * 111_000 < 1e-3


@pytest.mark.parametrize(("lat", "lon"), [(51.5, -0.12), (35.68, 139.76), (-33.9, 151.2), (0.0, 0.0)])
def test_gcj02_leaves_points_outside_china_unchanged(lat: float, lon: float) -> None:
    assert bool(out_of_china(lat, lon))
    assert wgs84_to_gcj02(lat, lon) == (lat, lon)
    assert gcj02_to_wgs84(lat, lon) == (lat, lon)


# ------------------------------------------------------------------------------------------- CGCS2000 / GK
@pytest.mark.parametrize(
    ("lon", "width", "prefix", "epsg", "cm", "false_easting"),
    [
        (116.4, 3, True, 4527, 117, 39_500_000),
        (116.4, 3, False, 4548, 117, 500_000),
        (116.4, 6, True, 4498, 117, 20_500_000),
        (116.4, 6, False, 4509, 117, 500_000),
        (107.6, 3, True, 4524, 108, 36_500_000),
        (75.0, 3, True, 4513, 75, 25_500_000),
        (135.0, 3, False, 4554, 135, 500_000),
        (72.5, 6, True, 4491, 75, 13_500_000),
        (134.0, 6, False, 4512, 135, 500_000),
    ],
)
def test_gk_zone_codes_match_the_epsg_database(
    lon: float, width: int, prefix: bool, epsg: int, cm: float, false_easting: float
) -> None:
    assert cgcs2000_gk_epsg(lon, width, prefix) == epsg
    assert is_cgcs2000_gk(epsg)
    crs = pyproj.CRS.from_epsg(epsg)
    assert crs.coordinate_operation is not None
    params = {p.name: p.value for p in crs.coordinate_operation.params}
    assert params["Longitude of natural origin"] == cm
    assert params["False easting"] == false_easting
    assert "CGCS2000" in crs.name


@pytest.mark.parametrize(("lon", "width"), [(60.0, 3), (140.0, 6), (116.0, 4)])
def test_gk_zone_codes_errors(lon: float, width: int) -> None:
    with pytest.raises(ValueError):
        cgcs2000_gk_epsg(lon, width)


@pytest.mark.parametrize("epsg", [4527, 4548, 4498, 4509, 4545, 4502, 4554])
def test_gk_round_trip_and_against_pyproj_to_a_millimetre(epsg: int) -> None:
    crs = pyproj.CRS.from_epsg(epsg)
    assert crs.coordinate_operation is not None
    cm = float({p.name: p.value for p in crs.coordinate_operation.params}["Longitude of natural origin"])
    rng = np.random.default_rng(epsg)
    lonlat = np.stack([cm + rng.uniform(-1.4, 1.4, 50), rng.uniform(18, 50, 50)], axis=1)
    xy = transform_from_wgs84(lonlat, epsg)
    independent = pyproj.Transformer.from_crs("EPSG:4490", crs, always_xy=True)
    x_ref, y_ref = independent.transform(lonlat[:, 0], lonlat[:, 1])
    assert np.max(np.abs(xy[:, 0] - x_ref)) < 1e-3 and np.max(np.abs(xy[:, 1] - y_ref)) < 1e-3
    back = transform_to_wgs84(xy, f"EPSG:{epsg}")
    assert np.max(np.abs(back - lonlat)) * 111_000 < 1e-3


def test_gk_northing_on_the_central_meridian_is_the_meridian_arc() -> None:
    """Hand check independent of the projection code: on the CM, x = false easting and y = arc length."""
    arc_m = pyproj.Geod(ellps="GRS80").inv(117.0, 0.0, 117.0, 40.0)[2]  # CGCS2000 ≈ GRS80 (f differs 1e-11)
    xy = transform_from_wgs84([[117.0, 40.0]], 4527)
    assert xy[0, 0] == pytest.approx(39_500_000.0, abs=1e-3)
    assert xy[0, 1] == pytest.approx(arc_m, abs=1e-3)


def test_cgcs2000_geographic_is_wgs84_in_proj() -> None:
    lonlat = np.array([[107.6, 26.5], [116.4, 39.9]])
    assert np.max(np.abs(transform_to_wgs84(lonlat, "EPSG:4490") - lonlat)) < 1e-12
    assert np.max(np.abs(transform_to_wgs84(lonlat, 4326) - lonlat)) < 1e-12


@pytest.mark.parametrize("bad", ["EPSG:999999", "not a crs", ""])
def test_parse_crs_error_is_one_line(bad: str) -> None:
    with pytest.raises(UserError) as err:
        parse_crs(bad, "zones/site.geojson")
    assert "\n" not in str(err.value) and "zones/site.geojson" in str(err.value)


def test_parse_crs_accepts_ogc_urn() -> None:
    assert parse_crs("urn:ogc:def:crs:EPSG::4549").to_epsg() == 4549


@pytest.mark.parametrize("shape", [(3,), (3, 1), (2, 2, 2)])
def test_transform_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="expected"):
        transform_to_wgs84(np.zeros(shape), 4490)

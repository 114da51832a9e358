"""Issue 17 item 12: fixes far out over high ground, checked against an independent forward model.

The forward model uses none of minewatch's geometry: pyproj's WGS84 ECEF conversion, the ellipsoid normal at
the camera as "up", and a straight ray (refraction off). A target 6 km out on ground 1500 m above sea level is
put on the optical axis; minewatch must locate it (and project it back to the image centre) to a few
decimetres. The flat-tangent-frame error this guards against is range × elevation / R = 1.4 m.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyproj
import pytest

from pipeline.config import PoseSigma
from pipeline.geo import synthetic as syn
from pipeline.geo.camera import CameraModel
from pipeline.geo.terrain import Terrain
from pipeline.types import Pose

WH = (1920, 1080)
NO_SIGMA = PoseSigma(pan_deg=0.0, tilt_deg=0.0, pixel_px=0.0, height_m=0.0)
GROUND_M = 1500.0
MAST_M = 400.0  # a steep enough line of sight that the ellipsoid's own radius (vs the mean R) costs < 0.1 m
GEOD = pyproj.Geod(ellps="WGS84")
TO_ECEF = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


def enu_direction(lat0: float, lon0: float, h0: float, lat: float, lon: float, h: float) -> np.ndarray:
    """Unit vector camera → target in the east/north/up frame of the ellipsoid normal at the camera."""
    a = np.array(TO_ECEF.transform(lon0, lat0, h0))
    b = np.array(TO_ECEF.transform(lon, lat, h))
    p, lam = math.radians(lat0), math.radians(lon0)
    east = np.array([-math.sin(lam), math.cos(lam), 0.0])
    north = np.array([-math.sin(p) * math.cos(lam), -math.sin(p) * math.sin(lam), math.cos(p)])
    up = np.array([math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p)])
    v = b - a
    d = np.array([v @ east, v @ north, v @ up])
    return d / np.linalg.norm(d)


def target(range_m: float, azimuth_deg: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(syn.ORIGIN_LON, syn.ORIGIN_LAT, azimuth_deg, range_m)
    return float(lat), float(lon)


@pytest.fixture(scope="module")
def high_dem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dem")
    return syn.write_dem(d / "high.tif", half_m=8000, step_m=50, height_fn=lambda e, n: 0 * e + GROUND_M)


def model_for(kind: str, high_dem: Path) -> CameraModel:
    kw = {"curvature": True, "refraction_k": 0.0, "vertical_sigma_m": 0.0, "max_range_m": 7500.0}
    terrain = Terrain(high_dem, **kw) if kind == "dem" else Terrain(**kw)  # type: ignore[arg-type]
    return CameraModel("far", syn.ORIGIN_LAT, syn.ORIGIN_LON, GROUND_M, MAST_M, terrain)


@pytest.mark.parametrize("kind", ["flat", "dem"])
@pytest.mark.parametrize(("range_m", "azimuth_deg"), [(6000.0, 45.0), (3000.0, 225.0), (7000.0, 135.0)])
def test_fix_over_high_ground_matches_an_independent_forward_model(
    high_dem: Path, kind: str, range_m: float, azimuth_deg: float
) -> None:
    model = model_for(kind, high_dem)
    lat, lon = target(range_m, azimuth_deg)
    d = enu_direction(syn.ORIGIN_LAT, syn.ORIGIN_LON, GROUND_M + MAST_M, lat, lon, GROUND_M)
    pose = Pose(math.degrees(math.atan2(d[0], d[1])), math.degrees(math.asin(d[2])), 5.0)
    fix = model.locate(pose, WH, [[960.0, 540.0]], NO_SIGMA)[0]
    assert fix is not None
    _, _, error_m = GEOD.inv(lon, lat, fix.lon, fix.lat)
    bug_m = range_m * GROUND_M / 6_371_000.0  # what reading tangent metres as surface metres costs
    assert bug_m > 0.7
    assert error_m < 0.25, f"fix {error_m:.2f} m from the truth (tangent-frame error would be {bug_m:.2f} m)"
    assert fix.range_m == pytest.approx(range_m, abs=0.25)
    # the mirror: the true point projects onto the optical axis
    px = model.project(pose, WH, lat, lon, GROUND_M)[0]
    assert px == pytest.approx([960.0, 540.0], abs=0.05)

"""A synthetic tower camera over analytic hills, for tests and ``scripts/bench_geo.py``.

The terrain is an analytic function of local east/north (valley floor, two ridges, rolling hills), written
to a GeoTIFF in a CGCS2000 Gauss-Krüger projection (EPSG:4545, 3° zone CM 108°E) so that the DEM path
(rasterio → reprojection → local grid) is exercised exactly as in production. Targets are points of that
DEM at known lat/lon; the "camera" projects them to pixels with the exact pose, adds pixel noise, and the
model locates them back with a noisy pose. Nothing here is used by the daemon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyproj
from numpy.typing import NDArray

from pipeline.config import PoseSigma
from pipeline.geo.camera import CHI2_2D_90, CameraModel
from pipeline.geo.coords import LocalFrame
from pipeline.geo.terrain import Terrain
from pipeline.types import GroundFix, Pose

F64 = NDArray[np.float64]

#: Where the synthetic world sits (Guizhou-like karst hills, 3° Gauss-Krüger zone 36, CM 108°E).
ORIGIN_LAT = 26.50
ORIGIN_LON = 107.60
DEM_EPSG = 4545


#: Karst cones (fengcong) south-east of the tower: (east km, north km, height m, radius km). Their flanks are
#: 30–40° steep, like the quarried limestone hills where much illegal mining happens.
KARST_CONES: tuple[tuple[float, float, float, float], ...] = (
    (2.0, -2.6, 220.0, 0.30),
    (2.9, -1.9, 260.0, 0.35),
    (3.4, -3.1, 240.0, 0.32),
    (4.3, -2.2, 280.0, 0.38),
    (2.4, -4.0, 200.0, 0.28),
    (4.8, -3.6, 250.0, 0.34),
    (3.7, -4.6, 230.0, 0.30),
    (5.6, -2.8, 270.0, 0.36),
    (1.6, -3.4, 180.0, 0.26),
    (5.2, -4.9, 240.0, 0.33),
    (6.1, -1.6, 220.0, 0.31),
    (4.0, -1.2, 190.0, 0.27),
)


def dem_error_m(east_m: F64, north_m: F64, sigma_m: float = 5.0, seed: int = 5) -> F64:
    """A smooth error field (RMS ``sigma_m``, wavelengths 0.3–2 km) to add to :func:`hills_m`: a DEM's error."""
    rng = np.random.default_rng(seed)
    e = np.asarray(east_m, np.float64)
    n = np.asarray(north_m, np.float64)
    z = np.zeros(np.broadcast(e, n).shape)
    k = 12
    for _ in range(k):
        wavelength = rng.uniform(300.0, 2000.0)
        angle = rng.uniform(0, 2 * math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        z = z + np.sin(2 * math.pi * (e * math.cos(angle) + n * math.sin(angle)) / wavelength + phase)
    return np.asarray(z * sigma_m * math.sqrt(2.0 / k), np.float64)


def hills_m(east_m: F64, north_m: F64) -> F64:
    """Analytic terrain (m above sea level) around the origin: 300–900 m; rolling hills with slopes up to
    ~20° and, to the south-east, a field of karst cones with 30–40° flanks."""
    e = np.asarray(east_m, np.float64) / 1000.0
    n = np.asarray(north_m, np.float64) / 1000.0
    z = 450.0 + 8.0 * e - 5.0 * n
    z = z + 380.0 * np.exp(-((e - 0.0) ** 2 + (n - 0.0) ** 2) / 1.2)  # the tower's hill
    z = z + 420.0 * np.exp(-((e - 5.5) ** 2 / 2.0 + (n - 3.0) ** 2 / 0.8))  # a ridge to the north-east
    z = z + 300.0 * np.exp(-((e + 4.0) ** 2 / 1.5 + (n + 5.0) ** 2 / 3.0))  # hills to the south-west
    z = z + 60.0 * np.sin(e * 1.3 + 0.4) * np.cos(n * 0.9 - 0.3)  # rolling ground
    z = z + 25.0 * np.sin(e * 3.1) * np.sin(n * 2.7 + 1.0)
    for ce, cn, height, radius in KARST_CONES:
        z = z + height * np.exp(-((e - ce) ** 2 + (n - cn) ** 2) / (radius * radius))
    return np.asarray(z, np.float64)


def write_dem(
    path: Path,
    half_m: float = 12_000.0,
    step_m: float = 30.0,
    epsg: int = DEM_EPSG,
    height_fn: Callable[[F64, F64], F64] = hills_m,
    with_crs: bool = True,
) -> Path:
    """Write ``height_fn(east_m, north_m)`` (origin frame) as a float32 GeoTIFF in ``epsg``, ±``half_m`` around it."""
    import rasterio
    from rasterio.transform import Affine

    frame = LocalFrame(ORIGIN_LAT, ORIGIN_LON)
    to_proj = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    x0, y0 = to_proj.transform(ORIGIN_LON, ORIGIN_LAT)
    n = int(math.ceil(2 * half_m / step_m)) + 1
    xs = x0 - half_m + step_m * (np.arange(n) + 0.5)
    ys = y0 + half_m - step_m * (np.arange(n) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = to_proj.transform(gx.ravel(), gy.ravel(), direction=pyproj.enums.TransformDirection.INVERSE)
    east, north = frame.to_local_m(np.asarray(lat), np.asarray(lon))
    heights = height_fn(east, north).reshape(n, n).astype(np.float32)
    transform = Affine(step_m, 0.0, x0 - half_m, 0.0, -step_m, y0 + half_m)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=n,
        width=n,
        count=1,
        dtype="float32",
        crs=f"EPSG:{epsg}" if with_crs else None,
        transform=transform,
        nodata=-9999.0,
    ) as ds:
        ds.write(heights, 1)
    return path


@dataclass
class Tower:
    camera_id: str
    east_m: float  # position in the origin's local frame
    north_m: float
    mast_height_m: float = 30.0


@dataclass
class Trial:
    """One target seen from one tower with a noisy pose."""

    camera_id: str
    target_en: F64  # truth in the origin frame
    range_m: float
    fix: GroundFix | None
    error_m: float  # horizontal distance truth → fix (NaN without a fix)
    mahalanobis2: float  # of the truth under the fix's covariance
    depression_deg: float  # of the line of sight below the horizontal
    incidence_deg: float  # angle between the line of sight and the ground surface at the target (≤ 90°)


@dataclass
class World:
    terrain: Terrain
    frame: LocalFrame = field(default_factory=lambda: LocalFrame(ORIGIN_LAT, ORIGIN_LON))

    def model(self, tower: Tower, ground_elevation_m: float | None = None) -> CameraModel:
        lat, lon = self.frame.to_wgs84(tower.east_m, tower.north_m)
        ground = float(self.terrain.elevation(lat, lon)) if ground_elevation_m is None else ground_elevation_m
        return CameraModel(tower.camera_id, lat, lon, ground, tower.mast_height_m, self.terrain)

    def truth_height_m(self, east_m: F64, north_m: F64) -> F64:
        lat, lon = self.frame.to_wgs84(np.asarray(east_m, np.float64), np.asarray(north_m, np.float64))
        return self.terrain.elevation(lat, lon)


def view_for(model: CameraModel, frame: LocalFrame, target_en: F64, target_z: float, rng: np.random.Generator) -> Pose:
    """A PTZ pose that has the target in view, zoomed so the frame spans ~400 m at the target's range."""
    lat, lon = frame.to_wgs84(float(target_en[0]), float(target_en[1]))
    e, n = model.frame.to_local_m(lat, lon)
    rng_m = math.hypot(e, n)
    drop = model.terrain.drop_m(rng_m)
    bearing = math.degrees(math.atan2(e, n))
    elev = math.degrees(math.atan2(target_z - float(drop) - model.camera_z_m, rng_m))
    hfov = float(np.clip(math.degrees(2 * math.atan(200.0 / max(rng_m, 1.0))), 2.0, 60.0))
    vfov = math.degrees(2 * math.atan(math.tan(math.radians(hfov) / 2) * 9 / 16))
    return Pose(
        bearing + rng.uniform(-0.35, 0.35) * hfov,
        elev + rng.uniform(-0.35, 0.35) * vfov,
        hfov,
    )


def run_trials(
    world: World,
    tower: Tower,
    targets_en: F64,
    sigma: PoseSigma,
    rng: np.random.Generator,
    image_wh: tuple[int, int] = (1920, 1080),
    truth: World | None = None,
) -> list[Trial]:
    """Locate each visible target once with a pose perturbed by ``sigma`` (pan, tilt) and pixel noise.

    ``truth``: the real ground, when the DEM the model uses (``world``) is only an approximation of it; the
    camera stands on the real ground either way.
    """
    truth_model = (truth or world).model(tower)
    model = world.model(tower, truth_model.ground_elevation_m) if truth is not None else truth_model
    trials: list[Trial] = []
    lats, lons = world.frame.to_wgs84(targets_en[:, 0], targets_en[:, 1])
    # truth on the tower's own grid of the real ground, so that "exact pose → exact point" holds to the mm
    zt = truth_model.ground_height_m(*model.frame.to_local_m(lats, lons))
    for (e, n), lat, lon, z in zip(targets_en, lats.tolist(), lons.tolist(), zt.tolist(), strict=True):
        if not math.isfinite(z):
            continue
        pose = view_for(model, world.frame, np.array([e, n]), float(z), rng)
        px = model.project(pose, image_wh, lat, lon, float(z))[0]
        if not np.isfinite(px).all():
            continue
        te, tn = model.frame.to_local_m(lat, lon)
        ray = model.rays(pose, image_wh, px[None, :])
        t_hit = truth_model.intersect(ray)[0]
        hit_en = truth_model.ground_en(ray, t_hit)[0]
        if not math.isfinite(float(t_hit[0])) or math.hypot(hit_en[0] - te, hit_en[1] - tn) > 1.0:
            continue  # hidden behind nearer ground: not visible from this tower
        noisy = Pose(
            pose.pan_deg + rng.normal(0, sigma.pan_deg), pose.tilt_deg + rng.normal(0, sigma.tilt_deg), pose.hfov_deg
        )
        pix = px + rng.normal(0, sigma.pixel_px, 2)
        fix = model.locate(noisy, image_wh, pix[None, :], sigma)[0]
        rng_m = math.hypot(te, tn)
        dep = -math.degrees(math.atan2(float(z) - model.camera_z_m, rng_m))
        inc = incidence_deg(truth_model, ray[0], te, tn)
        if fix is None:
            trials.append(Trial(tower.camera_id, np.array([e, n]), rng_m, None, math.nan, math.inf, dep, inc))
            continue
        trials.append(
            Trial(
                tower.camera_id,
                np.array([e, n]),
                rng_m,
                fix,
                _err(model, fix, te, tn),
                mahalanobis2(model.frame, fix, lat, lon),
                dep,
                inc,
            )
        )
    return trials


def incidence_deg(model: CameraModel, ray: F64, east_m: float, north_m: float, h_m: float = 5.0) -> float:
    """Grazing angle (degrees) between a ray and the ground surface at a local point."""
    e = np.array([east_m - h_m, east_m + h_m, east_m, east_m])
    n = np.array([north_m, north_m, north_m - h_m, north_m + h_m])
    z = model.ground_height_m(e, n)
    normal = np.array([-(z[1] - z[0]) / (2 * h_m), -(z[3] - z[2]) / (2 * h_m), 1.0])
    normal /= np.linalg.norm(normal)
    return math.degrees(math.asin(min(1.0, abs(float(ray @ normal)))))


def _err(model: CameraModel, fix: GroundFix, te: float, tn: float) -> float:
    fe, fn = model.frame.to_local_m(fix.lat, fix.lon)
    return math.hypot(fe - te, fn - tn)


def mahalanobis2(frame: LocalFrame, fix: GroundFix, lat: float, lon: float) -> float:
    """Squared Mahalanobis distance of the true point (lat, lon) from the fix under its covariance."""
    fe, fn = frame.to_local_m(fix.lat, fix.lon)
    te, tn = frame.to_local_m(lat, lon)
    d = np.array([te - fe, tn - fn])
    cov = np.asarray(fix.cov_en_m2, np.float64).reshape(2, 2) + 1e-6 * np.eye(2)
    return float(d @ np.linalg.solve(cov, d))


def inside_90(trials: list[Trial]) -> float:
    """Fraction of located trials whose truth lies inside the reported 90 % ellipse."""
    located = [t for t in trials if t.fix is not None]
    return float(np.mean([t.mahalanobis2 <= CHI2_2D_90 for t in located])) if located else math.nan


def ring_targets(
    rng: np.random.Generator, n: int, r_min_m: float, r_max_m: float, centre_en: tuple[float, float] = (0.0, 0.0)
) -> F64:
    """``n`` points uniform in range (not area) between r_min and r_max around ``centre_en``."""
    r = rng.uniform(r_min_m, r_max_m, n)
    a = rng.uniform(0, 2 * math.pi, n)
    return np.stack([centre_en[0] + r * np.sin(a), centre_en[1] + r * np.cos(a)], axis=1)


#: The benchmark's towers: A on the 830 m hill at the origin, B on the ridge to the north-east (5.9 km away).
A_TOWER = Tower("A", 0.0, 0.0, 30.0)
B_TOWER = Tower("B", 5200.0, 3000.0, 30.0)


def box_targets(rng: np.random.Generator, n: int, east_m: tuple[float, float], north_m: tuple[float, float]) -> F64:
    """``n`` points uniform in an east/north box (origin frame)."""
    return np.stack([rng.uniform(*east_m, n), rng.uniform(*north_m, n)], axis=1)


#: The karst-cone field (east, north) box in metres, origin frame.
CONE_FIELD_EN = ((1200.0, 6600.0), (-5600.0, -800.0))

"""Tower camera model: pixel → ray → ground point (with a 90 % ellipse), and world point → pixel.

Conventions (see docs/GEO.md):

* World: the tower's local frame (:class:`~pipeline.geo.coords.LocalFrame`) — east, north in metres from the
  tower's foot, up = metres above sea level. The camera sits at ``ground_elevation_m + mast_height_m``.
* Pose: ``pan_deg`` clockwise from true north; ``tilt_deg`` elevation of the optical axis (negative looks
  down); ``roll_deg`` positive turns the camera's right-hand side down (the picture turns anticlockwise);
  ``hfov_deg`` the horizontal field of view. Pinhole with square pixels, principal point at the image centre,
  so vfov = 2·atan(tan(hfov/2)·h/w). Optional radial distortion k1, k2 (OpenCV convention).
* Pixels: continuous coordinates, (0, 0) the top-left corner of the top-left pixel, x right, y down.
* Ground: :class:`~pipeline.geo.terrain.Terrain` (flat at the tower's foot, or a DEM), lowered by Earth
  curvature and refraction. The ray is straight.

Uncertainty: pan, tilt (``PoseSigma``), the pixel position (x and y, ``pixel_px``) and the vertical error
(the ground model's ``terrain.vertical_sigma_m`` and the camera's own height, ``pose_sigma.height_m``, which
move a hit identically and so combine as one source of √(σ_g² + σ_t²)) are independent sources.
Each is probed at ±k σ with k = √χ²₂(0.90) = 2.146 (where the 90 % ellipse's
edge lies along that source); the longer of the two ground displacements, divided by k, is that source's
column cᵢ of σ·J, and ``cov = Σ cᵢ cᵢᵀ``. For a linear error this is exactly first-order propagation; for the
skewed range error of grazing rays it makes the ellipse reach the far tail instead of averaging it away. When
a ±k σ probe leaves the ground (near the horizon, past a ridge), that source falls back to ±1 σ, one-sided if
needed; if even ±1 σ misses on both sides the fix is dropped ("near_horizon": its range is unbounded). The
90 % ellipse scales the covariance's eigen-axes by 2.146.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.config import CameraConfig, PoseSigma
from pipeline.geo.coords import LocalFrame
from pipeline.geo.terrain import EARTH_RADIUS_M, LocalGrid, Terrain
from pipeline.logs import get_logger
from pipeline.types import GroundFix, Pose

F64 = NDArray[np.float64]

#: χ² quantile of 2 degrees of freedom at 0.90: a 2-D Gaussian lies inside √(this)·σ-axes with 90 % probability.
CHI2_2D_90 = 4.605170185988091
ELLIPSE_90_SCALE = math.sqrt(CHI2_2D_90)
#: Error sources are probed at ±PROBE_K σ (the 90 % ellipse's edge along one source) and scaled back by it,
#: so that a skewed error (grazing rays) gets an ellipse that reaches its far tail; linear errors are unchanged.
PROBE_K = ELLIPSE_90_SCALE

#: Why a pixel gave no ground fix.
MISS_REASONS: dict[str, str] = {
    "above_horizon": "the ray points above the horizon and never meets the ground",
    "beyond_max_range": "the ray meets the ground only beyond terrain.max_range_m (or not at all within it)",
    "outside_dem": "the ray leaves the DEM's coverage (or a no-data hole) before meeting the ground",
    "near_horizon": "the point is so close to the horizon that a 1 σ change of pose loses it: range unbounded",
}
_MISS_CODE = {name: i + 1 for i, name in enumerate(MISS_REASONS)}
_CODE_MISS = {i: name for name, i in _MISS_CODE.items()}


@dataclass(frozen=True)
class Axes:
    """Camera axes in the local east/north/up frame (unit vectors)."""

    right: F64
    down: F64
    forward: F64


def camera_axes(pan_deg: float, tilt_deg: float, roll_deg: float = 0.0) -> Axes:
    p, t, r = math.radians(pan_deg), math.radians(tilt_deg), math.radians(roll_deg)
    forward = np.array([math.sin(p) * math.cos(t), math.cos(p) * math.cos(t), math.sin(t)])
    right0 = np.array([math.cos(p), -math.sin(p), 0.0])
    up0 = np.array([-math.sin(t) * math.sin(p), -math.sin(t) * math.cos(p), math.cos(t)])  # right0 × forward
    right = math.cos(r) * right0 - math.sin(r) * up0
    up = math.sin(r) * right0 + math.cos(r) * up0
    return Axes(right, -up, forward)


def focal_px(hfov_deg: float, width_px: int) -> float:
    """Focal length in pixels of a pinhole whose image ``width_px`` wide spans ``hfov_deg``."""
    return (width_px / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def vfov_deg(hfov_deg: float, image_wh: tuple[int, int]) -> float:
    """Vertical field of view of the pinhole with square pixels: 2·atan(tan(hfov/2)·h/w)."""
    w, h = image_wh
    return math.degrees(2.0 * math.atan(math.tan(math.radians(hfov_deg) / 2.0) * h / max(w, 1)))


def box_bearing_deg(pose: Pose, image_wh: tuple[int, int], x_px: float) -> float:
    """Bearing of image column ``x_px`` (pinhole, roll ignored): for sightings without a ground fix."""
    w = max(image_wh[0], 1)
    return (pose.pan_deg + math.degrees(math.atan2(x_px - w / 2.0, focal_px(pose.hfov_deg, w)))) % 360.0


def in_vertical_view(
    pose: Pose, image_wh: tuple[int, int], eye_elevation_m: float, target_elevation_m: float, range_m: float
) -> bool:
    """Does a point ``range_m`` away at ``target_elevation_m`` lie within the frame's vertical field of view?

    Compares its elevation angle seen from ``eye_elevation_m`` with the tilt (roll and curvature ignored)."""
    depression_deg = math.degrees(math.atan2(target_elevation_m - eye_elevation_m, range_m))
    return abs(depression_deg - pose.tilt_deg) <= vfov_deg(pose.hfov_deg, image_wh) / 2.0


def hfov_for_zoom(table: Sequence[tuple[float, float]], zoom: float) -> float:
    """Horizontal fov at ``zoom`` from (zoom, hfov_deg) pairs: linear in focal length, clamped at the ends."""
    if not table:
        raise ValueError("empty zoom → hfov table")
    pairs = sorted(table)
    zooms = np.array([z for z, _ in pairs])
    focal = np.array([1.0 / math.tan(math.radians(h) / 2.0) for _, h in pairs])
    f = float(np.interp(zoom, zooms, focal))
    return math.degrees(2.0 * math.atan(1.0 / f))


def distort(xn: F64, yn: F64, k1: float, k2: float) -> tuple[F64, F64]:
    r2 = xn * xn + yn * yn
    factor = 1.0 + k1 * r2 + k2 * r2 * r2
    return xn * factor, yn * factor


def undistort(xd: F64, yd: F64, k1: float, k2: float, iterations: int = 20) -> tuple[F64, F64]:
    """Inverse of :func:`distort` by fixed-point iteration (converges for the mild distortion of PTZ lenses)."""
    if k1 == 0.0 and k2 == 0.0:
        return xd, yd
    xu, yu = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = xu * xu + yu * yu
        factor = 1.0 + k1 * r2 + k2 * r2 * r2
        xu, yu = xd / factor, yd / factor
    return xu, yu


class CameraModel:
    """One tower camera: where it stands, its lens, and the ground it looks at."""

    def __init__(
        self,
        camera_id: str,
        lat: float,
        lon: float,
        ground_elevation_m: float = 0.0,
        mast_height_m: float = 20.0,
        terrain: Terrain | None = None,
        distortion_k1: float = 0.0,
        distortion_k2: float = 0.0,
        zoom_hfov: Sequence[tuple[float, float]] = (),
        pose_sigma: PoseSigma | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.lat = float(lat)
        self.lon = float(lon)
        self.ground_elevation_m = float(ground_elevation_m)
        self.mast_height_m = float(mast_height_m)
        self.camera_z_m = self.ground_elevation_m + self.mast_height_m
        self.terrain = terrain if terrain is not None else Terrain()
        self.k1 = float(distortion_k1)
        self.k2 = float(distortion_k2)
        self.zoom_hfov = list(zoom_hfov)
        self.pose_sigma = pose_sigma or PoseSigma.model_validate({})
        self.frame = LocalFrame(self.lat, self.lon)
        self.grid: LocalGrid | None = self.terrain.local_grid(self.frame)
        self.miss_counts: dict[str, int] = {name: 0 for name in MISS_REASONS}
        self._log = get_logger("geo", camera_id)
        self._logged: set[str] = set()
        if self.grid is not None:
            foot = float(self.grid.height(np.zeros(1), np.zeros(1))[0])
            if math.isfinite(foot) and abs(foot - self.ground_elevation_m) > 20.0:
                self._log.warning(
                    "ground_elevation_m %.1f differs from the DEM at the tower (%.1f m): check the config",
                    self.ground_elevation_m,
                    foot,
                )

    @classmethod
    def from_config(cls, cam: CameraConfig, terrain: Terrain | None = None) -> CameraModel:
        return cls(
            cam.id,
            cam.lat,
            cam.lon,
            cam.ground_elevation_m,
            cam.mast_height_m,
            terrain,
            cam.distortion_k1,
            cam.distortion_k2,
            [(float(z), float(h)) for z, h in cam.zoom_hfov],
            cam.pose_sigma,
        )

    def hfov_for_zoom(self, zoom: float) -> float:
        """The horizontal field of view at a PTZ zoom value, from the camera's calibration table."""
        return hfov_for_zoom(self.zoom_hfov, zoom)

    # ------------------------------------------------------------------------------------------ geometry
    def rays(self, pose: Pose, image_wh: tuple[int, int], xy_px: ArrayLike) -> F64:
        """(N, 3) unit ray directions (east, north, up) through pixels ``xy_px`` (N, 2)."""
        xy = np.asarray(xy_px, dtype=np.float64).reshape(-1, 2)
        w, h = image_wh
        f = focal_px(pose.hfov_deg, w)
        xn, yn = undistort((xy[:, 0] - w / 2.0) / f, (xy[:, 1] - h / 2.0) / f, self.k1, self.k2)
        ax = camera_axes(pose.pan_deg, pose.tilt_deg, pose.roll_deg)
        d = ax.forward[None, :] + xn[:, None] * ax.right[None, :] + yn[:, None] * ax.down[None, :]
        return np.asarray(d / np.linalg.norm(d, axis=1, keepdims=True), dtype=np.float64)

    def ground_height_m(self, east_m: F64, north_m: F64) -> F64:
        """Terrain elevation (m) at local points: the DEM, or the tower's foot elevation when flat."""
        if self.grid is None:
            return np.full(np.shape(east_m), self.ground_elevation_m)
        return self.grid.height(np.asarray(east_m, np.float64), np.asarray(north_m, np.float64))

    def intersect(self, dirs: F64, dz_m: F64 | None = None) -> tuple[F64, NDArray[np.int8]]:
        """Distance along each ray (N,) to the ground raised by ``dz_m`` (N,); NaN + a miss code where none."""
        dirs = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
        dz = np.zeros(len(dirs)) if dz_m is None else np.asarray(dz_m, dtype=np.float64)
        if self.grid is None:
            return self._intersect_flat(dirs, dz)
        return self._intersect_dem(dirs, dz, self.grid)

    def _curv(self) -> float:
        return (1.0 - self.terrain.refraction_k) / (2.0 * EARTH_RADIUS_M) if self.terrain.curvature else 0.0

    def vertical_sigma_m(self, sigma: PoseSigma | None = None) -> float:
        """1 σ of the camera's height above the ground it sees: the ground model's and the tower's own error."""
        sig = sigma or self.pose_sigma
        return math.hypot(self.terrain.vertical_sigma_m, sig.height_m)

    def _surface_scale(self, elevation_m: F64) -> F64:
        """Tangent-frame horizontal metres → surface (sea-level geodesic) metres at ``elevation_m``: R/(R+h).

        A point h metres above sea level at horizontal distance x in the tower's tangent frame lies at the
        central angle x/(R+h), i.e. x·R/(R+h) along the sea-level surface that the local frame (azimuthal
        equidistant on the ellipsoid) measures: 1.4 m at 6 km over ground 1500 m high. 1 without curvature.
        """
        h = np.asarray(elevation_m, dtype=np.float64)
        if not self.terrain.curvature:
            return np.ones_like(h)
        return np.asarray(EARTH_RADIUS_M / (EARTH_RADIUS_M + h), dtype=np.float64)

    def ground_en(self, dirs: F64, t: F64) -> F64:
        """(N, 2) local-frame east/north (surface metres, as :class:`LocalFrame` measures) of the points at
        distances ``t`` (N,) along rays ``dirs`` (N, 3), e.g. where :meth:`intersect` met the ground."""
        dirs = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
        t = np.asarray(t, dtype=np.float64)
        horiz = t[:, None] * dirs[:, :2]
        s2 = horiz[:, 0] ** 2 + horiz[:, 1] ** 2
        elevation = self.camera_z_m + t * dirs[:, 2] + self._curv() * s2  # the ground's height at the hit
        return np.asarray(horiz * self._surface_scale(elevation)[:, None], dtype=np.float64)

    def _intersect_flat(self, dirs: F64, dz: F64) -> tuple[F64, NDArray[np.int8]]:
        h2 = dirs[:, 0] ** 2 + dirs[:, 1] ** 2
        a = self._curv() * h2
        b = dirs[:, 2]
        c = self.camera_z_m - (self.ground_elevation_m + dz)
        disc = b * b - 4.0 * a * c
        hit = (b < 0) & (disc >= 0) & (c > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(hit, 2.0 * c / (-b + np.sqrt(np.maximum(disc, 0.0))), np.nan)
        t = np.where(c <= 0, 0.0, t)  # camera at or below the ground: the foot of the tower
        code = np.zeros(len(dirs), np.int8)
        code[np.isnan(t)] = _MISS_CODE["above_horizon"]
        far = np.sqrt(h2) * np.nan_to_num(t, nan=0.0) > self.terrain.max_range_m
        code[far] = _MISS_CODE["beyond_max_range"]
        t[far] = np.nan
        return t, code

    def _intersect_dem(self, dirs: F64, dz: F64, grid: LocalGrid, chunk: int = 96) -> tuple[F64, NDArray[np.int8]]:
        n_rays = len(dirs)
        curv = self._curv()
        hor = np.hypot(dirs[:, 0], dirs[:, 1])
        s_max = min(self.terrain.max_range_m, grid.half_size_m)
        dt = grid.step_m / np.maximum(np.maximum(hor, np.abs(dirs[:, 2])), 1e-9)
        t_max = s_max / np.maximum(hor, 1e-9)
        # a descending ray is certainly underground once below the lowest DEM cell (lowered at s_max)
        floor = grid.min_height_m + np.minimum(dz, 0.0) - curv * s_max * s_max
        with np.errstate(divide="ignore"):
            t_floor = np.where(dirs[:, 2] < 0, (self.camera_z_m - floor) / np.maximum(-dirs[:, 2], 1e-12), np.inf)
        # a rising ray is certainly clear once above the highest DEM cell
        ceiling = float(np.nanmax(grid.heights_m)) + np.maximum(dz, 0.0)
        with np.errstate(divide="ignore"):
            t_ceiling = np.where(
                dirs[:, 2] > 0, np.maximum(ceiling - self.camera_z_m, 0.0) / np.maximum(dirs[:, 2], 1e-12), np.inf
            )
        t_end = np.minimum(np.minimum(t_max, t_floor + dt), t_ceiling + dt)
        n_steps = np.ceil(t_end / dt).astype(np.int64)
        lo = np.full(n_rays, np.nan)
        hi = np.full(n_rays, np.nan)
        g_lo = np.full(n_rays, np.nan)
        g_hi = np.full(n_rays, np.nan)
        code = np.zeros(n_rays, np.int8)
        active = np.arange(n_rays)
        k0 = 0
        while active.size:
            ks = np.arange(k0, k0 + chunk + 1, dtype=np.float64)
            t = ks[None, :] * dt[active, None]
            g = self._clearance(dirs[active], dz[active], t, grid, curv)
            valid = ks[None, :] <= n_steps[active, None]
            nan_at = np.isnan(g) & valid
            cross = (g[:, :-1] > 0) & (g[:, 1:] <= 0) & valid[:, 1:]
            first_cross = np.where(cross.any(axis=1), cross.argmax(axis=1), chunk + 1)
            first_nan = np.where(nan_at[:, 1:].any(axis=1), nan_at[:, 1:].argmax(axis=1), chunk + 1)
            done_hit = first_cross < first_nan
            done_nan = (first_nan < first_cross) & (first_nan <= chunk)
            rows = np.arange(active.size)
            idx = active[done_hit]
            lo[idx] = t[rows[done_hit], first_cross[done_hit]]
            hi[idx] = t[rows[done_hit], first_cross[done_hit] + 1]
            g_lo[idx] = g[rows[done_hit], first_cross[done_hit]]
            g_hi[idx] = g[rows[done_hit], first_cross[done_hit] + 1]
            code[active[done_nan]] = _MISS_CODE["outside_dem"]
            exhausted = (k0 + chunk >= n_steps[active]) & ~done_hit & ~done_nan
            code[active[exhausted]] = self._why_no_hit(dirs[active[exhausted]], grid)
            active = active[~(done_hit | done_nan | exhausted)]
            k0 += chunk
        hit = ~np.isnan(lo)
        if hit.any():
            a, b, ga, gb = lo[hit], hi[hit], g_lo[hit], g_hi[hit]
            d, z = dirs[hit], dz[hit]
            for _ in range(12):  # bisection to step/4096 (7 mm for 30 m cells) …
                mid = 0.5 * (a + b)
                gm = self._clearance(d, z, mid[:, None], grid, curv)[:, 0]
                above = gm > 0
                a, ga = np.where(above, mid, a), np.where(above, gm, ga)
                b, gb = np.where(above, b, mid), np.where(above, gb, gm)
            # … then a last linear interpolation: the clearance is smooth within a cell, so this is sub-mm
            frac = np.clip(ga / np.maximum(ga - gb, 1e-12), 0.0, 1.0)
            lo[hit] = a + frac * (b - a)
        return lo, code

    def _clearance(self, dirs: F64, dz: F64, t: F64, grid: LocalGrid, curv: float) -> F64:
        """Height of the ray above the (curvature-lowered, dz-raised) ground at parameters ``t`` (N, K)."""
        east = t * dirs[:, 0:1]
        north = t * dirs[:, 1:2]
        s2 = east * east + north * north
        z_ray = self.camera_z_m + t * dirs[:, 2:3]
        scale = self._surface_scale(z_ray + curv * s2)  # the grid is in surface metres, the ray in tangent ones
        ground = grid.height(east * scale, north * scale) + dz[:, None] - curv * s2
        return np.asarray(z_ray - ground, dtype=np.float64)

    def _why_no_hit(self, dirs: F64, grid: LocalGrid) -> NDArray[np.int8]:
        """A ray that met no DEM cell: above the horizon of the lowest ground, or just too far."""
        b = dirs[:, 2]
        a = self._curv() * (dirs[:, 0] ** 2 + dirs[:, 1] ** 2)
        c = self.camera_z_m - grid.min_height_m
        misses = (b >= 0) | (b * b - 4 * a * c < 0)
        return np.where(misses, _MISS_CODE["above_horizon"], _MISS_CODE["beyond_max_range"]).astype(np.int8)

    # ---------------------------------------------------------------------------------------------- API
    def locate(
        self,
        pose: Pose,
        image_wh: tuple[int, int],
        xy_px: ArrayLike,
        sigma: PoseSigma | None = None,
    ) -> list[GroundFix | None]:
        """Ground fixes of pixels ``xy_px`` (N, 2), usually box bottom centres; None where no ground is met."""
        xy = np.asarray(xy_px, dtype=np.float64).reshape(-1, 2)
        n = len(xy)
        if n == 0:
            return []
        sig = sigma or self.pose_sigma
        # raising the camera by δ moves every hit exactly as lowering the ground by δ does, so the tower's own
        # height error and the ground model's are one source of σ √(σ_ground² + σ_tower²)
        sigmas = np.array(
            [sig.pan_deg, sig.tilt_deg, sig.pixel_px, sig.pixel_px, self.vertical_sigma_m(sig)]
        )
        active = np.flatnonzero(sigmas > 0)
        # pass 1: the fix itself and ±k σ of every error source (k = 2.146: where the 90 % ellipse's edge lies)
        steps = [np.zeros(5)]
        for j in active:
            for sign in (1.0, -1.0):
                step = np.zeros(5)
                step[j] = sign * PROBE_K * sigmas[j]
                steps.append(step)
        pts, codes = self._probe(pose, image_wh, xy, np.array(steps))
        base = pts[0]
        fixes: list[GroundFix | None] = [None] * n
        ok = ~np.isnan(base[:, 0])
        cols = np.zeros((len(active), n, 2))
        bad = np.zeros(n, bool)
        for c, j in enumerate(active):
            d_plus = (pts[1 + 2 * c] - base) / PROBE_K
            d_minus = (base - pts[2 + 2 * c]) / PROBE_K
            both = ~np.isnan(d_plus[:, 0]) & ~np.isnan(d_minus[:, 0])
            # the longer side: the ellipse must reach the far tail of a skewed (grazing) error
            longer = np.where((np.hypot(*d_plus.T) >= np.hypot(*d_minus.T))[:, None], d_plus, d_minus)
            cols[c] = np.where(both[:, None], longer, 0.0)
            retry = np.flatnonzero(ok & ~both)
            if retry.size:  # k σ leaves the ground (near the horizon or a ridge): fall back to ±1 σ
                step = np.zeros((3, 5))
                step[1, j], step[2, j] = sigmas[j], -sigmas[j]
                near, _ = self._probe(pose, image_wh, xy[retry], step)
                dp, dm = near[1] - near[0], near[0] - near[2]
                p_ok, m_ok = ~np.isnan(dp[:, 0]), ~np.isnan(dm[:, 0])
                longer_1 = np.where((np.hypot(*dp.T) >= np.hypot(*dm.T))[:, None], dp, dm)
                one = np.where((p_ok & m_ok)[:, None], longer_1, np.where(p_ok[:, None], dp, dm))
                cols[c, retry] = np.where((p_ok | m_ok)[:, None], np.nan_to_num(one), 0.0)
                bad[retry] |= ~p_ok & ~m_ok
        cov = np.einsum("jni,jnk->nik", cols, cols)  # (n, 2, 2)
        occluded = np.zeros(n, bool)
        if self.grid is not None and self.terrain.occlusion_clearance_m > 0 and (ok & ~bad).any():
            sel = np.flatnonzero(ok & ~bad)
            col, flag = self._occlusion_column(self.rays(pose, image_wh, xy[sel]), base[sel], self.grid)
            cov[sel] += np.einsum("ni,nk->nik", col, col)
            occluded[sel] = flag
        lat, lon = self.frame.to_wgs84(base[:, 0], base[:, 1]) if ok.any() else (np.zeros(n), np.zeros(n))
        elev = self.ground_height_m(base[:, 0], base[:, 1])
        for i in range(n):
            if not ok[i]:
                self._miss(_CODE_MISS.get(int(codes[0, i]), "above_horizon"))
                continue
            if bad[i]:
                self._miss("near_horizon")
                continue
            e, nn = float(base[i, 0]), float(base[i, 1])
            fixes[i] = fix_from_cov(
                float(lat[i]),
                float(lon[i]),
                float(elev[i]),
                math.hypot(e, nn),
                math.degrees(math.atan2(e, nn)) % 360.0,
                cov[i],
                (self.camera_id,),
                occlusion_possible=bool(occluded[i]),
            )
        return fixes

    def _occlusion_column(self, dirs: F64, hit_en: F64, grid: LocalGrid) -> tuple[F64, NDArray[np.bool_]]:
        """For located rays that graze a brow: a covariance column along the line of sight and a flag.

        The positions consistent with a ray, give or take ``c = terrain.occlusion_clearance_m`` metres, run
        from where the ground raised by c meets it (``s_lo``) to where the ray lifted by c at the hit meets the
        ground (``s_hi``). When ground hidden from the camera by more than c (a shadow behind a brow) lies in
        that interval, an object standing there would show its bottom at this very pixel: the fix is flagged
        and the ellipse stretched to reach both ends (the longer side over k, as for the other sources).
        """
        c = self.terrain.occlusion_clearance_m
        n = len(dirs)
        hor = np.hypot(dirs[:, 0], dirs[:, 1])
        s1 = np.hypot(hit_en[:, 0], hit_en[:, 1])
        s_max = min(self.terrain.max_range_m, grid.half_size_m)
        elev = np.arctan2(dirs[:, 2], hor) + c / np.maximum(s1, 1.0)
        az = dirs[:, :2] / np.maximum(hor, 1e-12)[:, None]
        up = np.concatenate([az * np.cos(elev)[:, None], np.sin(elev)[:, None]], axis=1)
        # one march for both: the ray against the ground raised by c, and the ray lifted by c at the hit
        t_both, _ = self.intersect(np.concatenate([dirs, up]), np.concatenate([np.full(n, c), np.zeros(n)]))
        t_lo, t_hi = t_both[:n], t_both[n:]
        s_lo = np.where(np.isnan(t_lo), s1, t_lo * hor)
        s_hi = np.where(np.isnan(t_hi), s_max, t_hi * np.hypot(up[:, 0], up[:, 1]))
        col = np.zeros((n, 2))
        flag = np.zeros(n, bool)
        curv = self._curv()
        for i in range(n):
            if s_hi[i] - s_lo[i] <= 2.0 * grid.step_m:
                continue
            s = np.arange(grid.step_m, s_hi[i] + grid.step_m, grid.step_m / 2.0)
            en = s[:, None] * az[i][None, :]
            h = grid.height(en[:, 0], en[:, 1])  # surface metres ≈ tangent metres here (R/(R+h) ~ 1e-4)
            slope = np.where(np.isnan(h), -np.inf, (h - curv * s * s - self.camera_z_m) / s)
            # how far each point lies below the skyline over nearer ground (0 where the DEM has no data)
            hidden_m = np.where(np.isnan(h), 0.0, (np.maximum.accumulate(slope) - slope) * s)
            inside = (s >= s_lo[i]) & (s <= s_hi[i])
            if inside.any() and float(hidden_m[inside].max()) > c:
                flag[i] = True
                reach = max(s1[i] - s_lo[i], s_hi[i] - s1[i])
                col[i] = az[i] * reach / PROBE_K
        return col, flag

    def _probe(self, pose: Pose, image_wh: tuple[int, int], xy: F64, steps: F64) -> tuple[F64, NDArray[np.int8]]:
        """Ground points (S, N, 2) east/north for pose/pixel/ground perturbations ``steps`` (S, 5): d_pan,
        d_tilt, d_x, d_y (pixels), d_ground (m). NaN where the ray misses; also the miss codes (S, N)."""
        n, s = len(xy), len(steps)
        # every perturbed ray in one numpy pass (the formulas of ``rays`` and ``camera_axes``, per step)
        w, h = image_wh
        f = focal_px(pose.hfov_deg, w)
        xd = (xy[None, :, 0] + steps[:, 2:3] - w / 2.0) / f  # (S, N)
        yd = (xy[None, :, 1] + steps[:, 3:4] - h / 2.0) / f
        xn_flat, yn_flat = undistort(xd.ravel(), yd.ravel(), self.k1, self.k2)
        xn, yn = xn_flat.reshape(s, n), yn_flat.reshape(s, n)
        p, tl = np.radians(pose.pan_deg + steps[:, 0]), np.radians(pose.tilt_deg + steps[:, 1])
        r = math.radians(pose.roll_deg)
        sp, cp, st, ct = np.sin(p), np.cos(p), np.sin(tl), np.cos(tl)
        forward = np.stack([sp * ct, cp * ct, st], axis=1)  # (S, 3)
        right0 = np.stack([cp, -sp, np.zeros(s)], axis=1)
        up0 = np.stack([-st * sp, -st * cp, ct], axis=1)
        right = math.cos(r) * right0 - math.sin(r) * up0
        down = -(math.sin(r) * right0 + math.cos(r) * up0)
        d = forward[:, None, :] + xn[..., None] * right[:, None, :] + yn[..., None] * down[:, None, :]
        dirs = (d / np.linalg.norm(d, axis=2, keepdims=True)).reshape(-1, 3)
        t, code = self.intersect(dirs, np.repeat(steps[:, 4], n))
        return self.ground_en(dirs, t).reshape(len(steps), n, 2), code.reshape(len(steps), n)

    def _miss(self, reason: str) -> None:
        self.miss_counts[reason] = self.miss_counts.get(reason, 0) + 1
        if reason not in self._logged:
            self._logged.add(reason)
            self._log.warning(
                "no ground fix: %s (%s); logged once, counted in miss_counts", reason, MISS_REASONS.get(reason, "")
            )

    def project(
        self,
        pose: Pose,
        image_wh: tuple[int, int],
        lat: ArrayLike,
        lon: ArrayLike,
        elevation_m: ArrayLike | None = None,
    ) -> F64:
        """(N, 2) pixel positions of WGS84 points (NaN behind the camera). Elevation: the ground's when None."""
        lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        lon_a = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        east, north = self.frame.to_local_m(lat_a, lon_a)
        if elevation_m is None:
            z = self.ground_height_m(east, north)
        else:
            z = np.broadcast_to(np.asarray(elevation_m, dtype=np.float64), east.shape).astype(np.float64)
        return self.project_local(pose, image_wh, east, north, z)

    def vectors_to(self, east_m: ArrayLike, north_m: ArrayLike, z_m: ArrayLike) -> F64:
        """(…, 3) straight-ray vectors camera → local points (surface metres east/north, z above sea level), in
        the tangent frame the rays of :meth:`rays` and :meth:`intersect` live in (curvature and refraction as
        there): their direction is the ray that meets the point, their length its distance along that ray."""
        z = np.asarray(z_m, np.float64)
        inv_scale = 1.0 / self._surface_scale(z)  # surface metres → the tangent frame's (R+h)/R
        east = np.asarray(east_m, np.float64) * inv_scale
        north = np.asarray(north_m, np.float64) * inv_scale
        up = z - self._curv() * (east * east + north * north) - self.camera_z_m
        return np.stack(np.broadcast_arrays(east, north, up), axis=-1).astype(np.float64)

    def project_local(self, pose: Pose, image_wh: tuple[int, int], east_m: F64, north_m: F64, z_m: F64) -> F64:
        """As :meth:`project`, for points in the tower's local frame (metres; z above sea level)."""
        v = self.vectors_to(east_m, north_m, z_m)
        ax = camera_axes(pose.pan_deg, pose.tilt_deg, pose.roll_deg)
        zc = v @ ax.forward
        with np.errstate(invalid="ignore", divide="ignore"):
            xn = np.where(zc > 0, (v @ ax.right) / zc, np.nan)
            yn = np.where(zc > 0, (v @ ax.down) / zc, np.nan)
        xd, yd = distort(xn, yn, self.k1, self.k2)
        w, h = image_wh
        f = focal_px(pose.hfov_deg, w)
        return np.stack([w / 2.0 + f * xd, h / 2.0 + f * yd], axis=-1)


def ellipse_90(cov_en: Any) -> tuple[float, float, float]:
    """(semi_major_m, semi_minor_m, orientation_deg) of the 90 % ellipse of a 2×2 east/north covariance.

    Orientation is the azimuth of the major axis, clockwise from north, in [0, 180).
    """
    c = np.asarray(cov_en, dtype=np.float64).reshape(2, 2)
    c = 0.5 * (c + c.T)
    vals, vecs = np.linalg.eigh(c)
    major = vecs[:, 1]
    orientation = math.degrees(math.atan2(float(major[0]), float(major[1]))) % 180.0
    return (
        ELLIPSE_90_SCALE * math.sqrt(max(float(vals[1]), 0.0)),
        ELLIPSE_90_SCALE * math.sqrt(max(float(vals[0]), 0.0)),
        orientation,
    )


def fix_from_cov(
    lat: float,
    lon: float,
    elevation_m: float,
    range_m: float,
    bearing_deg: float,
    cov_en: Any,
    cameras: tuple[str, ...],
    occlusion_possible: bool = False,
) -> GroundFix:
    """A :class:`GroundFix` whose ellipse and ``cov_en_m2`` come from a 2×2 east/north covariance (m²)."""
    c = np.asarray(cov_en, dtype=np.float64).reshape(2, 2)
    c = 0.5 * (c + c.T)
    major, minor, orient = ellipse_90(c)
    return GroundFix(
        lat=lat,
        lon=lon,
        elevation_m=elevation_m,
        range_m=range_m,
        bearing_deg=bearing_deg,
        semi_major_m=major,
        semi_minor_m=minor,
        orientation_deg=orient,
        cov_en_m2=(float(c[0, 0]), float(c[0, 1]), float(c[1, 0]), float(c[1, 1])),
        cameras=cameras,
        occlusion_possible=occlusion_possible,
    )

"""Two-tower fixes: two cameras that see the same class at the same place fuse into one smaller ellipse.

A single tower knows the bearing well (pan σ ≈ 0.1° → 17 m at 10 km) but the range badly at grazing angles
(tilt σ 0.1° at 1° depression → ≈ 10 % of range), so its 90 % ellipse is long and thin along the line of
sight. Two such ellipses from towers whose lines of sight cross at a decent angle overlap in a small patch.
The default fusion is a weighted least-squares intersection of the two lines of sight, solved in each
tower's (bearing, 1/range) coordinates — where a tilt error is close to Gaussian (on flat ground
1/range = tan(depression)/height) — with each fix's covariance carried into those coordinates; errors of
different towers are independent. Covariance intersection (``method="ci"``, in east/north) is available when
they might not be.

Gating (all must hold, else :func:`fuse_fixes` returns None):

* different cameras;
* lines of sight crossing at ≥ ``min_crossing_deg`` (near-parallel bearings add nothing);
* the two fixes agree: the χ² of the bearing intersection's residual (2 degrees of freedom) ≤ ``gate_chi2``
  (default 18.4, the 99.99 % point of χ²₂, ``fusion.gate_quantile``; for ``ci`` the Mahalanobis distance² of
  ``xa − xb`` under ``Pa + Pb``);
* the fused point lies inside both cameras' views when their views are given (pan ± hfov/2 seen from each
  tower) and in front of both towers.

:class:`FusionBuffer` keeps the latest fix of each (camera, class, key) for ``window_s`` and finds, for a new
fix, the best partner from another camera.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyproj
from numpy.typing import NDArray

from pipeline.geo.angles import abs_angle_diff_deg
from pipeline.geo.camera import fix_from_cov
from pipeline.geo.coords import LocalFrame
from pipeline.types import GroundFix

F64 = NDArray[np.float64]
_GEOD = pyproj.Geod(ellps="WGS84")


def chi2_2d_quantile(q: float) -> float:
    """The ``q`` quantile of χ² with 2 degrees of freedom: −2·ln(1 − q) (closed form for 2 dof)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), not {q}")
    return -2.0 * math.log1p(-q)


#: χ²₂ at 0.99: two fixes of one object disagree by more than this only 1 % of the time (if all were Gaussian).
GATE_CHI2_99 = chi2_2d_quantile(0.99)
#: χ²₂ at 0.999 (13.8).
GATE_CHI2_999 = chi2_2d_quantile(0.999)
#: The default gate, χ²₂ at 0.9999 (18.4): true pairs' residuals have heavier tails than Gaussian (pose errors
#: at grazing angles, the skew the probes only approximate); measured by ``scripts/bench_geo.py --fusion-gate``
#: this turns away ~0.3 % of true pairs, where 0.99 turns away ~2 % and 0.999 ~0.7 % (docs/GEO.md).
GATE_QUANTILE = 0.9999
GATE_CHI2 = chi2_2d_quantile(GATE_QUANTILE)


def cov_of(fix: GroundFix, floor_m2: float = 1e-4) -> F64:
    """The fix's 2×2 east/north covariance, with a tiny floor so that it can be inverted."""
    c = np.asarray(fix.cov_en_m2, dtype=np.float64).reshape(2, 2)
    return 0.5 * (c + c.T) + floor_m2 * np.eye(2)


def tower_of(fix: GroundFix) -> tuple[float, float]:
    """(lat, lon) of the tower that produced a single-camera fix (from its range and bearing, on WGS84)."""
    if fix.range_m <= 0:
        return fix.lat, fix.lon
    back = (fix.bearing_deg + 180.0) % 360.0
    lon, lat = fix.lon, fix.lat
    for _ in range(3):  # the back azimuth at the target differs from bearing+180 by the meridian convergence
        lon, lat, _ = _GEOD.fwd(fix.lon, fix.lat, back, fix.range_m)
        fwd_az, _, _ = _GEOD.inv(lon, lat, fix.lon, fix.lat)
        back += fix.bearing_deg - fwd_az
    return float(lat), float(lon)


@dataclass(frozen=True)
class View:
    """What a camera saw when it made a fix: pan and horizontal field of view (degrees)."""

    pan_deg: float
    hfov_deg: float

    def contains(self, bearing_deg: float, margin_deg: float = 0.0) -> bool:
        return abs_angle_diff_deg(bearing_deg, self.pan_deg) <= self.hfov_deg / 2.0 + margin_deg


def _polar(p: F64, tower: F64) -> tuple[F64, F64]:
    """(bearing rad, 1/range) of local point ``p`` seen from ``tower``, and its 2×2 Jacobian w.r.t. (e, n)."""
    de, dn = float(p[0] - tower[0]), float(p[1] - tower[1])
    r2 = de * de + dn * dn
    r = math.sqrt(r2)
    z = np.array([math.atan2(de, dn), 1.0 / r])
    jac = np.array([[dn / r2, -de / r2], [-de / (r2 * r), -dn / (r2 * r)]])
    return z, jac


def _polar_fusion(a: GroundFix, b: GroundFix, frame: LocalFrame, xa: F64, xb: F64) -> tuple[F64, F64, float]:
    """Gauss-Newton bearing intersection in (bearing, 1/range) space: (point, covariance, χ² of the residual)."""
    ca, cb = cov_of(a), cov_of(b)
    ia, ib = np.linalg.inv(ca), np.linalg.inv(cb)
    meas = []
    for xf, cf, f in ((xa, ca, a), (xb, cb, b)):
        t = np.array(frame.to_local_m(*tower_of(f)))
        z, jac = _polar(xf, t)
        meas.append((z, np.linalg.inv(jac @ cf @ jac.T), t))
    x: F64 = np.linalg.inv(ia + ib) @ (ia @ xa + ib @ xb)  # start: the east/north information fusion
    info = ia + ib
    chi2 = math.inf
    for _ in range(20):
        info = np.zeros((2, 2))
        grad = np.zeros(2)
        chi2 = 0.0
        for z, w_inv, t in meas:
            h, jac = _polar(x, t)
            res = z - h
            res[0] = (res[0] + math.pi) % (2 * math.pi) - math.pi
            info += jac.T @ w_inv @ jac
            grad += jac.T @ w_inv @ res
            chi2 += float(res @ w_inv @ res)
        step = np.linalg.solve(info, grad)
        x = x + step
        if float(np.hypot(*step)) < 1e-4:
            break
    return x, np.linalg.inv(info), chi2


def fusion_chi2(a: GroundFix, b: GroundFix) -> float:
    """How well two fixes fit one point: χ² (2 degrees of freedom) of the bearing intersection's residual."""
    frame = LocalFrame((a.lat + b.lat) / 2.0, (a.lon + b.lon) / 2.0)
    xa = np.array(frame.to_local_m(a.lat, a.lon))
    xb = np.array(frame.to_local_m(b.lat, b.lon))
    return _polar_fusion(a, b, frame, xa, xb)[2]


def _fuse_points(a: GroundFix, b: GroundFix, frame: LocalFrame, xa: F64, xb: F64, gate_chi2: float,
                 method: str) -> tuple[Any, Any] | None:
    """The fused east/north point and covariance, or None when the two fixes fail the χ² gate."""
    ca, cb = cov_of(a), cov_of(b)
    ia, ib = np.linalg.inv(ca), np.linalg.inv(cb)
    if method == "ci":
        d = xa - xb
        if float(d @ np.linalg.solve(ca + cb, d)) > gate_chi2:
            return None
        best: tuple[float, float] = (math.inf, 0.5)
        for w in np.linspace(0.0, 1.0, 51):
            det = float(np.linalg.det(np.linalg.inv(w * ia + (1.0 - w) * ib)))
            if det < best[0]:
                best = (det, float(w))
        ia, ib = best[1] * ia, (1.0 - best[1]) * ib
        cov = np.linalg.inv(ia + ib)
        x = cov @ (ia @ xa + ib @ xb)
    else:
        x, cov, chi2 = _polar_fusion(a, b, frame, xa, xb)
        if chi2 > gate_chi2:
            return None
    return x, cov


def fuse_fixes(
    a: GroundFix,
    b: GroundFix,
    *,
    view_a: View | None = None,
    view_b: View | None = None,
    min_crossing_deg: float = 5.0,
    gate_chi2: float = GATE_CHI2,
    method: Literal["independent", "ci"] = "independent",
) -> GroundFix | None:
    """One fix from two cameras' fixes of the same object, or None when they do not fit together.

    ``independent`` (default) solves the bearing intersection in each tower's (bearing, 1/range) space by
    Gauss-Newton: a tilt error is nearly Gaussian in inverse range (on flat ground 1/range = tan(depression)/H)
    but strongly skewed in range, so this keeps both the fused point and the χ² gate honest at grazing angles.
    ``ci`` is covariance intersection in east/north (for errors that may be correlated): never overconfident,
    less gain. The result's ``range_m``/``bearing_deg`` are from ``a``'s tower; ``cameras`` lists both.
    """
    if set(a.cameras) & set(b.cameras) or a.range_m <= 0 or b.range_m <= 0:
        return None
    crossing = abs_angle_diff_deg(a.bearing_deg, b.bearing_deg) % 180.0
    crossing = min(crossing, 180.0 - crossing)
    if crossing < min_crossing_deg:
        return None
    frame = LocalFrame((a.lat + b.lat) / 2.0, (a.lon + b.lon) / 2.0)
    xa = np.array(frame.to_local_m(a.lat, a.lon))
    xb = np.array(frame.to_local_m(b.lat, b.lon))
    try:
        fused = _fuse_points(a, b, frame, xa, xb, gate_chi2, method)
    except np.linalg.LinAlgError:  # degenerate geometry (near-parallel sightlines, zero covariance): no fix
        return None
    if fused is None:
        return None
    x, cov = fused
    lat, lon = frame.to_wgs84(float(x[0]), float(x[1]))
    ta, tb = tower_of(a), tower_of(b)
    az_a, _, range_a = _GEOD.inv(ta[1], ta[0], lon, lat)
    az_b, _, _ = _GEOD.inv(tb[1], tb[0], lon, lat)
    # in front of both towers: the fused point's bearing is close to each camera's own
    for az, fix in ((az_a, a), (az_b, b)):
        if abs_angle_diff_deg(az, fix.bearing_deg) > 45.0:
            return None
    if view_a is not None and not view_a.contains(az_a):
        return None
    if view_b is not None and not view_b.contains(az_b):
        return None
    wa, wb = 1.0 / float(np.trace(cov_of(a))), 1.0 / float(np.trace(cov_of(b)))
    elevation = (wa * a.elevation_m + wb * b.elevation_m) / (wa + wb)
    cameras = tuple(dict.fromkeys((*a.cameras, *b.cameras)))
    return fix_from_cov(lat, lon, elevation, float(range_a), float(az_a) % 360.0, cov, cameras,
                        occlusion_possible=a.occlusion_possible or b.occlusion_possible)


@dataclass
class _Entry:
    t_s: float
    camera_id: str
    class_name: str
    fix: GroundFix
    view: View | None


def _may_overlap(a: GroundFix, b: GroundFix, k: float = 3.0) -> bool:
    """False when the two points are further apart than ``k`` times their ellipses' major semi-axes together
    (equirectangular distance: plenty at these ranges), so the exact fusion need not be tried."""
    north_m = (a.lat - b.lat) * 110_540.0
    east_m = (a.lon - b.lon) * 111_320.0 * math.cos(math.radians((a.lat + b.lat) / 2.0))
    return math.hypot(east_m, north_m) <= k * (a.semi_major_m + b.semi_major_m) + 1.0


class FusionBuffer:
    """Recent fixes of all cameras, to fuse a new fix with another camera's sighting of the same class.

    Thread-safe (one lock); bounded: at most ``max_entries`` are kept (the oldest go first), and entries
    older than ``window_s`` before the newest time seen are dropped.

    ``window_s``: too low and two towers that look at a site a few seconds apart (patrol tours) never fuse;
    too high and a machine that moved is fused with where it was.
    """

    def __init__(
        self,
        window_s: float = 10.0,
        gate_chi2: float = GATE_CHI2,
        min_crossing_deg: float = 5.0,
        max_entries: int = 2000,
        method: Literal["independent", "ci"] = "independent",
    ) -> None:
        self.window_s = float(window_s)
        self.gate_chi2 = float(gate_chi2)
        self.min_crossing_deg = float(min_crossing_deg)
        self.max_entries = int(max_entries)
        self.method: Literal["independent", "ci"] = method
        self._entries: dict[tuple[str, str, object], _Entry] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._next_prune_s = -math.inf
        self.fused = 0  # how many fused fixes were handed out

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self,
        camera_id: str,
        class_name: str,
        t_s: float,
        fix: GroundFix,
        key: object = None,
        view: View | None = None,
    ) -> None:
        """Remember a single-camera fix. ``key`` (e.g. a track id) replaces that object's previous fix."""
        with self._lock:
            if key is None:
                self._counter += 1
                key = ("#", self._counter)
            self._entries[(camera_id, class_name, key)] = _Entry(t_s, camera_id, class_name, fix, view)
            self._prune_locked(t_s)

    def query(
        self,
        camera_id: str,
        class_name: str,
        t_s: float,
        fix: GroundFix,
        view: View | None = None,
    ) -> GroundFix | None:
        """The best fused fix of ``fix`` with another camera's fix of the same class within the window."""
        with self._lock:
            candidates = [
                e
                for e in self._entries.values()
                if e.camera_id != camera_id and e.class_name == class_name and abs(e.t_s - t_s) <= self.window_s
            ]
        best: GroundFix | None = None
        best_area = math.inf
        for e in candidates:
            if not _may_overlap(fix, e.fix):  # cheap gate first: most pairs are far apart
                continue
            fused = fuse_fixes(
                fix,
                e.fix,
                view_a=view,
                view_b=e.view,
                min_crossing_deg=self.min_crossing_deg,
                gate_chi2=self.gate_chi2,
                method=self.method,
            )
            if fused is not None and fused.semi_major_m * fused.semi_minor_m < best_area:
                best, best_area = fused, fused.semi_major_m * fused.semi_minor_m
        if best is not None:
            self.fused += 1
        return best

    def add_and_fuse(
        self,
        camera_id: str,
        class_name: str,
        t_s: float,
        fix: GroundFix,
        key: object = None,
        view: View | None = None,
    ) -> GroundFix:
        """Remember ``fix`` and return the fused fix when another camera agrees, else ``fix`` itself."""
        fused = self.query(camera_id, class_name, t_s, fix, view)
        self.add(camera_id, class_name, t_s, fix, key, view)
        return fused if fused is not None else fix

    def prune(self, now_s: float) -> None:
        with self._lock:
            self._prune_locked(now_s, force=True)

    def _prune_locked(self, now_s: float, force: bool = False) -> None:
        # a full pass at most 4 times per window (queries apply the window themselves, so an entry kept a
        # little longer is never used); was one pass per added fix
        if not force and len(self._entries) <= self.max_entries and now_s < self._next_prune_s:
            return
        self._next_prune_s = now_s + self.window_s / 4.0
        old = [k for k, e in self._entries.items() if e.t_s < now_s - self.window_s]
        for k in old:
            del self._entries[k]
        if len(self._entries) > self.max_entries:
            by_age = sorted(self._entries, key=lambda k: self._entries[k].t_s)
            for k in by_age[: len(self._entries) - self.max_entries]:
                del self._entries[k]

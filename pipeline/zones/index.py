"""Zones in local metres around a camera (or the box), with an STRtree, signed distances and the
probability that an uncertain ground point lies in a zone.

The probability integrates the 2-D Gaussian of a fix (``GroundFix.cov_en_m2``) over the polygon with a fixed,
deterministic set of :data:`N_SAMPLES` points: a "sunflower" of standard-normal points (radii from the
Rayleigh quantiles of equal-probability rings, angles by the golden angle), mapped through the Cholesky
factor of the covariance. The same fix always gives the same answer, the work is one vectorised
``shapely.contains_xy`` call, and the resolution is 1/N_SAMPLES.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely import MultiPolygon, Polygon, STRtree
from shapely.geometry.base import BaseGeometry

from pipeline.geo.coords import LocalFrame
from pipeline.zones.model import Zone

N_SAMPLES = 256


def _unit_samples(n: int) -> NDArray[np.float64]:
    """(n, 2) deterministic points that stand for a standard 2-D normal, each carrying weight 1/n."""
    i = np.arange(n, dtype=np.float64)
    u = (i + 0.5) / n  # probability inside radius r of a standard 2-D normal: 1 - exp(-r²/2)
    r = np.sqrt(-2.0 * np.log1p(-u))
    theta = i * math.pi * (3.0 - math.sqrt(5.0))  # golden angle: no two rings line up
    pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    # whiten: exactly zero mean and unit covariance, so the samples carry the fix's covariance exactly
    pts -= pts.mean(axis=0)
    root = np.linalg.cholesky(np.cov(pts.T, bias=True))
    return np.asarray(np.linalg.solve(root, pts.T).T, dtype=np.float64)


UNIT_SAMPLES_EN: NDArray[np.float64] = _unit_samples(N_SAMPLES)
#: Largest sample radius in σ: a zone farther than this many σ from the mean gets probability 0.
SAMPLE_REACH_SIGMA = float(np.max(np.hypot(UNIT_SAMPLES_EN[:, 0], UNIT_SAMPLES_EN[:, 1])))


def cov_matrix(cov_en_m2: Sequence[float]) -> NDArray[np.float64]:
    """Row-major ``(ee, en, ne, nn)`` → symmetric 2×2 matrix."""
    c = np.asarray(cov_en_m2, dtype=np.float64).reshape(2, 2)
    return (c + c.T) / 2.0


def _cov_terms(cov_en_m2: Sequence[float]) -> tuple[float, float, float]:
    ee, en, ne, nn = (float(v) for v in cov_en_m2)
    return max(ee, 0.0), (en + ne) / 2.0, max(nn, 0.0)


def cov_sqrt(cov_en_m2: Sequence[float]) -> NDArray[np.float64]:
    """Symmetric square root R (R Rᵀ = cov) of a 2×2 covariance, closed form: (M + √det I) / √(tr + 2√det).

    Degenerate (rank-1 or zero) covariances are fine.
    """
    a, b, c = _cov_terms(cov_en_m2)
    s = math.sqrt(max(a * c - b * b, 0.0))
    t = math.sqrt(a + c + 2.0 * s)
    if t == 0.0:
        return np.zeros((2, 2))
    return np.array([[(a + s) / t, b / t], [b / t, (c + s) / t]])


def sample_points_en(mean_en_m: tuple[float, float], cov_en_m2: Sequence[float]) -> NDArray[np.float64]:
    """(N_SAMPLES, 2) east/north points standing for the Gaussian ``N(mean, cov)``."""
    root = cov_sqrt(cov_en_m2)
    return np.asarray(mean_en_m, dtype=np.float64) + UNIT_SAMPLES_EN @ root.T


def reach_m(cov_en_m2: Sequence[float]) -> float:
    """Farthest any sample lies from the mean (metres): the reach in σ times the major axis's σ."""
    a, b, c = _cov_terms(cov_en_m2)
    largest = (a + c) / 2.0 + math.hypot((a - c) / 2.0, b)
    return SAMPLE_REACH_SIGMA * math.sqrt(max(largest, 0.0))


def _to_local(geom: Polygon | MultiPolygon, frame: LocalFrame) -> Polygon | MultiPolygon:
    def ring(coords: Sequence[tuple[float, ...]]) -> list[tuple[float, float]]:
        lonlat = np.asarray(coords, dtype=np.float64)[:, :2]
        east, north = frame.to_local_m(lonlat[:, 1], lonlat[:, 0])
        return list(zip(np.asarray(east, np.float64).tolist(), np.asarray(north, np.float64).tolist(), strict=True))

    def poly(p: Polygon) -> Polygon:
        return Polygon(ring(p.exterior.coords), [ring(h.coords) for h in p.interiors])

    if isinstance(geom, MultiPolygon):
        return MultiPolygon([poly(p) for p in geom.geoms])
    return poly(geom)


class ZoneIndex:
    """Zones as polygons in local metres (east, north) around ``(origin_lat, origin_lon)``.

    ``reach_en[i]`` is zone i's polygon grown by its ``buffer_m`` (licensed areas); the STRtree holds those,
    so a query finds licensed areas whose buffer band is near the point too.
    """

    def __init__(self, zones: Sequence[Zone], origin_lat: float, origin_lon: float) -> None:
        self.zones: list[Zone] = list(zones)
        self.frame = LocalFrame(origin_lat, origin_lon)
        self.polygons_en: list[Polygon | MultiPolygon] = [_to_local(z.polygon, self.frame) for z in self.zones]
        self.reach_en: list[BaseGeometry] = [
            p.buffer(z.buffer_m) if z.buffer_m > 0 else p for z, p in zip(self.zones, self.polygons_en, strict=True)
        ]
        for geom in (*self.polygons_en, *self.reach_en):
            shapely.prepare(geom)
        self.tree = STRtree(self.reach_en)
        self._by_id = {z.id: i for i, z in enumerate(self.zones)}

    def __len__(self) -> int:
        return len(self.zones)

    def index_of(self, zone_id: str) -> int:
        return self._by_id[zone_id]

    def to_local_m(self, lat: float, lon: float) -> tuple[float, float]:
        east, north = self.frame.to_local_m(lat, lon)
        return float(east), float(north)

    def query(self, east_m: float, north_m: float, radius_m: float = 0.0) -> list[int]:
        """Indices (into :attr:`zones`) of zones whose polygon, grown by its buffer, lies within
        ``radius_m`` of the point, in ascending order."""
        point = shapely.Point(east_m, north_m)
        hits = self.tree.query(point, predicate="dwithin", distance=max(float(radius_m), 0.0))
        return sorted(int(i) for i in hits)

    def signed_distance_m(self, index: int, east_m: float, north_m: float) -> float:
        """Distance to zone ``index``'s boundary: positive inside, negative outside (metres)."""
        polygon = self.polygons_en[index]
        point = shapely.Point(east_m, north_m)
        distance = float(polygon.boundary.distance(point))
        return distance if polygon.contains(point) else -distance

    def probability_inside(self, index: int, mean_en_m: tuple[float, float], cov_en_m2: Sequence[float]) -> float:
        """Probability that a point ``N(mean, cov)`` lies inside zone ``index``'s polygon."""
        return self.fraction_inside(index, sample_points_en(mean_en_m, cov_en_m2))

    def probability_in_buffer(self, index: int, mean_en_m: tuple[float, float], cov_en_m2: Sequence[float]) -> float:
        """Probability that the point lies outside zone ``index`` but within its ``buffer_m`` band."""
        return self.fraction_in_buffer(index, sample_points_en(mean_en_m, cov_en_m2))

    def fraction_inside(self, index: int, pts_en: NDArray[np.float64]) -> float:
        """Fraction of the (N, 2) points (from :func:`sample_points_en`) inside zone ``index``."""
        return float(np.count_nonzero(shapely.contains_xy(self.polygons_en[index], pts_en[:, 0], pts_en[:, 1]))) / len(
            pts_en
        )

    def fraction_in_buffer(self, index: int, pts_en: NDArray[np.float64]) -> float:
        """Fraction of the points outside zone ``index`` but within its ``buffer_m`` band."""
        inside = shapely.contains_xy(self.polygons_en[index], pts_en[:, 0], pts_en[:, 1])
        grown = shapely.contains_xy(self.reach_en[index], pts_en[:, 0], pts_en[:, 1])
        return float(np.count_nonzero(grown & ~inside)) / len(pts_en)

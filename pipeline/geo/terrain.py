"""The ground that camera rays meet: flat (each tower's foot elevation) or a DEM GeoTIFF.

Earth curvature and refraction are folded into the ground, not the ray: in a tower's local east/north/up
frame a straight ray meets a surface lowered by ``(1 − k) s² / (2 R)`` at horizontal distance ``s``
(the surveyors' combined curvature-and-refraction correction, R = 6 371 km, k ≈ 0.13). That is exact to
first order in s/R and well below a metre of error at 20 km.

A DEM is read once (rasterio, imported only when a DEM is configured) and, for each tower, resampled onto a
square grid in the tower's local frame (:class:`LocalGrid`) so that ray marching is pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
from numpy.typing import NDArray

from pipeline.config import TerrainConfig
from pipeline.errors import UserError
from pipeline.geo.coords import LocalFrame
from pipeline.logs import get_logger

F64 = NDArray[np.float64]

#: Mean Earth radius used for the curvature correction (metres).
EARTH_RADIUS_M = 6_371_000.0
#: Most cells of one tower's resampled DEM grid (per side); bounds memory at 16 M cells (64 MB float32).
MAX_GRID_SIDE = 4000


def bilinear(grid: NDArray[np.floating[Any]], col: F64, row: F64) -> F64:
    """Bilinear samples of ``grid[row, col]`` at fractional indices (NaN outside or next to a NaN)."""
    rows, cols = grid.shape
    c0 = np.floor(col)
    r0 = np.floor(row)
    fc = col - c0
    fr = row - r0
    inside = (c0 >= 0) & (r0 >= 0) & (c0 <= cols - 2) & (r0 <= rows - 2)
    ci = np.where(inside, c0, 0).astype(np.intp)
    ri = np.where(inside, r0, 0).astype(np.intp)
    g = grid
    v = (
        g[ri, ci] * (1 - fc) * (1 - fr)
        + g[ri, ci + 1] * fc * (1 - fr)
        + g[ri + 1, ci] * (1 - fc) * fr
        + g[ri + 1, ci + 1] * fc * fr
    )
    return np.where(inside, v, np.nan).astype(np.float64)


@dataclass
class LocalGrid:
    """Heights (m above sea level) on a square grid in one tower's local frame; cell (0, 0) is at (−r, −r)."""

    heights_m: NDArray[np.float32]  # (n, n), row = north index, col = east index
    step_m: float
    half_size_m: float

    def height(self, east_m: F64, north_m: F64) -> F64:
        col = (np.asarray(east_m) + self.half_size_m) / self.step_m
        row = (np.asarray(north_m) + self.half_size_m) / self.step_m
        return bilinear(self.heights_m, col, row)

    @property
    def min_height_m(self) -> float:
        return float(np.nanmin(self.heights_m))


class Terrain:
    """Ground model shared by all cameras: curvature/refraction, vertical σ, optional DEM."""

    def __init__(
        self,
        dem_path: Path | str | None = None,
        vertical_sigma_m: float = 5.0,
        curvature: bool = True,
        refraction_k: float = 0.13,
        max_range_m: float = 20_000.0,
        dem_step_m: float | None = None,
        occlusion_clearance_m: float = 3.0,
    ) -> None:
        self.dem_path = Path(dem_path) if dem_path is not None else None
        self.vertical_sigma_m = float(vertical_sigma_m)
        self.curvature = bool(curvature)
        self.refraction_k = float(refraction_k)
        self.max_range_m = float(max_range_m)
        self.dem_step_m = dem_step_m
        self.occlusion_clearance_m = float(occlusion_clearance_m)
        self._log = get_logger("geo")
        self._dem: NDArray[np.float64] | None = None
        self._inv_affine: Any = None
        self._dem_crs: pyproj.CRS | None = None
        self._from_wgs84: pyproj.Transformer | None = None  # built on first use (the caller's thread)
        self._native_step_m = 30.0
        if self.dem_path is not None:
            self._read_dem(self.dem_path)

    @classmethod
    def from_config(cls, cfg: TerrainConfig | None) -> Terrain:
        cfg = cfg or TerrainConfig.model_validate({})
        return cls(
            cfg.dem_path,
            cfg.vertical_sigma_m,
            cfg.curvature,
            cfg.refraction_k,
            cfg.max_range_m,
            cfg.dem_step_m,
            cfg.occlusion_clearance_m,
        )

    @property
    def is_flat(self) -> bool:
        return self._dem is None

    def drop_m(self, s_m: F64 | float) -> F64:
        """How far the ground falls below the local horizontal plane at horizontal distance ``s_m``."""
        s = np.asarray(s_m, dtype=np.float64)
        if not self.curvature:
            return np.zeros_like(s)
        return (1.0 - self.refraction_k) * s * s / (2.0 * EARTH_RADIUS_M)

    # ----------------------------------------------------------------------------------------------- DEM
    def _read_dem(self, path: Path) -> None:
        src_name = str(path)
        if not path.is_file():
            raise UserError(src_name, "terrain.dem_path", "an existing GeoTIFF file", "no such file")
        try:
            import rasterio  # lazily: only deployments with a DEM need it
        except ImportError:  # pragma: no cover - rasterio is a runtime dependency
            raise UserError(
                src_name, "terrain.dem_path", "rasterio installed (pip install rasterio)", "not installed"
            ) from None
        try:
            with rasterio.open(path) as ds:
                band = ds.read(1, masked=True)
                crs = ds.crs
                affine = ds.transform
        except Exception as exc:  # rasterio raises its own RasterioIOError and friends
            raise UserError(src_name, "terrain.dem_path", "a readable GeoTIFF", exc) from None
        if not crs:
            raise UserError(src_name, "terrain.dem_path", "a GeoTIFF with a coordinate reference system", "none")
        if affine.b != 0 or affine.d != 0:
            raise UserError(src_name, "terrain.dem_path", "a north-up GeoTIFF (no rotation)", affine)
        self._dem = np.ma.filled(band.astype(np.float64), np.nan)
        self._inv_affine = ~affine
        self._dem_crs = pyproj.CRS.from_user_input(crs.to_wkt())
        res = abs(float(affine.a))
        self._native_step_m = res * 111_320.0 if self._dem_crs.is_geographic else res
        self._log.info(
            "DEM %s: %dx%d cells, %.1f m, CRS %s",
            path.name,
            band.shape[1],
            band.shape[0],
            self._native_step_m,
            self._dem_crs.to_string(),
        )

    def elevation(self, lat: F64 | float, lon: F64 | float) -> F64:
        """Ground elevation (m) at WGS84 points: DEM bilinear (NaN outside it); NaN everywhere when flat."""
        lat_a = np.asarray(lat, dtype=np.float64)
        lon_a = np.asarray(lon, dtype=np.float64)
        if self._dem is None or self._dem_crs is None:
            return np.full(np.broadcast(lat_a, lon_a).shape, np.nan)
        if self._from_wgs84 is None:
            self._from_wgs84 = pyproj.Transformer.from_crs("EPSG:4326", self._dem_crs, always_xy=True)
        x, y = self._from_wgs84.transform(lon_a, lat_a)
        return self._sample_native(np.asarray(x, np.float64), np.asarray(y, np.float64))

    def _sample_native(self, x: F64, y: F64) -> F64:
        assert self._dem is not None
        inv = self._inv_affine
        col = inv.a * x + inv.b * y + inv.c
        row = inv.d * x + inv.e * y + inv.f
        # pixel-is-area: cell centres sit at half-integer affine coordinates
        return bilinear(self._dem, np.asarray(col, np.float64) - 0.5, np.asarray(row, np.float64) - 0.5)

    def local_grid(self, frame: LocalFrame) -> LocalGrid | None:
        """The DEM resampled around ``frame``'s origin out to ``max_range_m`` (None when flat)."""
        if self._dem is None or self._dem_crs is None:
            return None
        half = self.max_range_m
        step = float(self.dem_step_m or min(max(self._native_step_m, 1.0), 200.0))
        step = max(step, 2 * half / MAX_GRID_SIDE)
        n = int(math.ceil(2 * half / step)) + 1
        half = (n - 1) * step / 2
        axis = -half + step * np.arange(n, dtype=np.float64)
        east, north = np.meshgrid(axis, axis)
        tr = pyproj.Transformer.from_crs(pyproj.CRS.from_proj4(frame.proj4), self._dem_crs, always_xy=True)
        x, y = tr.transform(east.ravel(), north.ravel())
        heights = self._sample_native(np.asarray(x, np.float64), np.asarray(y, np.float64)).reshape(n, n)
        if not np.isfinite(heights).any():
            raise UserError(
                str(self.dem_path),
                "terrain.dem_path",
                f"a DEM covering the tower at {frame.lat0}, {frame.lon0}",
                "no data within max_range_m of it",
            )
        return LocalGrid(heights.astype(np.float32), step, half)

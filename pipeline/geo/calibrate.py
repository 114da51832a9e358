"""Pan/tilt/roll offsets of a camera from landmarks: the cure for the tilt bias that dominates range errors.

A PTZ head's reported tilt is typically off by a fixed amount per head (mounting, levelling) or per preset;
σ_tilt = 0.1° is already ~10 % of range at 1° depression (docs/GEO.md). Given a few landmarks visible in one
frame — pixel position and surveyed (or map) lat/lon/elevation: a pylon foot, a road junction, a building
corner — :func:`fit_pose_offset` finds the pan, tilt (and optionally roll) offsets that make the model
project them where they are seen, by Gauss-Newton on the pixel residuals. Add the offsets to the poses the
head reports (per preset if they differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pipeline.geo.camera import CameraModel
from pipeline.types import Pose


@dataclass(frozen=True)
class PoseOffset:
    """What to add to the reported pose, and how well the landmarks then agree."""

    pan_deg: float
    tilt_deg: float
    roll_deg: float
    rms_px: float  # pixel residual after the fit (root mean square over landmarks and axes)
    landmarks: int

    def apply(self, pose: Pose) -> Pose:
        return Pose(
            pose.pan_deg + self.pan_deg,
            pose.tilt_deg + self.tilt_deg,
            pose.hfov_deg,
            pose.roll_deg + self.roll_deg,
            pose.preset,
        )


def fit_pose_offset(
    model: CameraModel,
    pose: Pose,
    image_wh: tuple[int, int],
    xy_px: ArrayLike,
    lat: ArrayLike,
    lon: ArrayLike,
    elevation_m: ArrayLike | None = None,
    fit_roll: bool = True,
    iterations: int = 20,
) -> PoseOffset:
    """Offsets (degrees) that best map landmarks (lat, lon, elevation — the ground's when None) to ``xy_px``.

    Needs at least 2 landmarks (3 are better: the fit then has residuals to show a bad landmark), all in front
    of the camera. Raises ValueError otherwise.
    """
    xy = np.asarray(xy_px, dtype=np.float64).reshape(-1, 2)
    lat_a = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon_a = np.asarray(lon, dtype=np.float64).reshape(-1)
    if len(xy) < 2 or len(lat_a) != len(xy) or len(lon_a) != len(xy):
        raise ValueError(
            f"need ≥ 2 landmarks with matching pixels and lat/lon, got {len(xy)}/{len(lat_a)}/{len(lon_a)}"
        )
    elev = None if elevation_m is None else np.asarray(elevation_m, dtype=np.float64).reshape(-1)
    n_par = 3 if fit_roll else 2
    params = np.zeros(n_par)

    def residual(p: np.ndarray) -> np.ndarray:
        trial = Pose(
            pose.pan_deg + p[0],
            pose.tilt_deg + p[1],
            pose.hfov_deg,
            pose.roll_deg + (p[2] if fit_roll else 0.0),
            pose.preset,
        )
        return (model.project(trial, image_wh, lat_a, lon_a, elev) - xy).ravel()

    r = residual(params)
    if not np.isfinite(r).all():
        raise ValueError("a landmark is behind the camera (or off the DEM) at the reported pose")
    h = 1e-4  # degrees, for the numeric Jacobian
    for _ in range(iterations):
        jac = np.stack([(residual(params + h * np.eye(n_par)[k]) - r) / h for k in range(n_par)], axis=1)
        step, *_ = np.linalg.lstsq(jac, -r, rcond=None)
        params = params + step
        r = residual(params)
        if not np.isfinite(r).all():
            raise ValueError("the fit moved a landmark behind the camera: check the landmarks")
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return PoseOffset(
        float(params[0]),
        float(params[1]),
        float(params[2]) if fit_roll else 0.0,
        float(math.sqrt(np.mean(r * r))),
        len(xy),
    )

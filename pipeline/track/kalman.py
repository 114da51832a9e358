"""A constant-velocity Kalman filter of one box, ``(cx, cy, w, h)`` and their velocities per analysed frame.

As in ByteTrack/SORT: process and measurement noise scale with the box size, so a large nearby truck and
a small distant excavator are treated alike. Time is counted in analysed frames of one preset.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_STD_POSITION = 1.0 / 20.0  # of the box size, per frame
_STD_VELOCITY = 1.0 / 160.0

_F = np.eye(8, dtype=np.float64)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8, dtype=np.float64)


def xyxy_to_cxcywh(xyxy: NDArray[np.floating]) -> NDArray[np.float64]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)], dtype=np.float64)


def cxcywh_to_xyxy(cxcywh: NDArray[np.floating]) -> NDArray[np.float64]:
    cx, cy, w, h = (float(v) for v in cxcywh[:4])
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)


class BoxKalman:
    """State ``mean`` (8,) and ``cov`` (8, 8) of one box."""

    def __init__(self, xyxy: NDArray[np.floating]) -> None:
        z = xyxy_to_cxcywh(xyxy)
        self.mean: NDArray[np.float64] = np.concatenate([z, np.zeros(4)])
        size = np.array([z[2], z[3], z[2], z[3]])
        std = np.concatenate([2 * _STD_POSITION * size, 10 * _STD_VELOCITY * size])
        self.cov: NDArray[np.float64] = np.diag(std**2)

    def _size(self) -> NDArray[np.float64]:
        w, h = max(self.mean[2], 1e-3), max(self.mean[3], 1e-3)
        return np.array([w, h, w, h])

    def predict(self, still: bool = False) -> None:
        """One frame ahead. ``still``: a stationary object; its velocity is dropped instead of extrapolated."""
        if still:
            self.mean[4:] = 0.0
        size = self._size()
        q = np.diag(np.concatenate([_STD_POSITION * size, _STD_VELOCITY * size]) ** 2)
        self.mean = _F @ self.mean
        self.cov = _F @ self.cov @ _F.T + q

    def update(self, xyxy: NDArray[np.floating]) -> None:
        z = xyxy_to_cxcywh(xyxy)
        r = np.diag((_STD_POSITION * self._size()) ** 2)
        s = _H @ self.cov @ _H.T + r
        gain = np.linalg.solve(s, _H @ self.cov).T
        self.mean = self.mean + gain @ (z - _H @ self.mean)
        self.cov = self.cov - gain @ s @ gain.T

    @property
    def xyxy(self) -> NDArray[np.float64]:
        return cxcywh_to_xyxy(self.mean)

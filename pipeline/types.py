"""Data that flows between the stages.

Names follow the design: boxes are ``xyxy`` in pixels of the original frame,
angles end in ``_deg``, distances in ``_m``, times in ``_s`` (or are UTC unix
seconds when named ``t_*``). ``lat``/``lon`` are WGS84.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: minewatch's own classes; a detector's class names are mapped onto these by config.
CLASSES: tuple[str, ...] = ("excavator", "truck", "fire", "smoke", "person")
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}


@dataclass(frozen=True, slots=True)
class Pose:
    """Where the camera pointed when a frame was taken."""

    pan_deg: float  # azimuth of the optical axis, clockwise from true north
    tilt_deg: float  # elevation of the optical axis; negative looks down
    hfov_deg: float  # horizontal field of view
    roll_deg: float = 0.0
    preset: str | None = None  # preset name of the patrol tour, None for a fixed camera


@dataclass(slots=True)
class Frame:
    """One decoded frame handed from a source to the analysis."""

    camera_id: str
    seq: int  # increasing per camera, counts decoded frames handed on
    t_capture: float  # UTC unix seconds (stream timestamp where the stream has one)
    image_bgr: NDArray[np.uint8]  # (H, W, 3)
    pose: Pose
    t_received: float = 0.0  # UTC unix seconds when the reader got it (monotonic-free wall clock)

    @property
    def wh(self) -> tuple[int, int]:
        return int(self.image_bgr.shape[1]), int(self.image_bgr.shape[0])


@dataclass(slots=True)
class Detections:
    """Detections of one frame, as parallel arrays."""

    xyxy: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (N, 4)
    score: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0,), np.float32))  # (N,)
    class_id: NDArray[np.int32] = field(default_factory=lambda: np.zeros((0,), np.int32))  # (N,) CLASSES

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def class_names(self) -> list[str]:
        return [CLASSES[int(c)] for c in self.class_id]

    def bottom_centre_xy(self) -> NDArray[np.float32]:
        """(N, 2) bottom centre of each box: where an object touches the ground."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)

    def subset(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> Detections:
        return Detections(self.xyxy[keep], self.score[keep], self.class_id[keep])


@dataclass(frozen=True, slots=True)
class GroundFix:
    """A located point on the ground, with its 90 % uncertainty ellipse."""

    lat: float
    lon: float
    elevation_m: float
    range_m: float  # horizontal distance from the tower
    bearing_deg: float  # clockwise from true north, seen from the tower
    semi_major_m: float  # 90 % ellipse
    semi_minor_m: float
    orientation_deg: float  # azimuth of the major axis, clockwise from north
    cov_en_m2: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # 2x2 east/north covariance, row-major
    cameras: tuple[str, ...] = ()  # which cameras contributed (two for a fused fix)


@dataclass(slots=True)
class ZoneRef:
    """The zone an alert is about, with the properties operators need (as in the zone file)."""

    id: str
    name: str
    kind: str  # closed_mine | illegal_site | licensed_area | fire_watch | (view: no zone, fire anywhere)
    township: str = ""
    responsible: dict[str, str] = field(default_factory=dict)  # {"name": …, "phone": …}
    distance_to_boundary_m: float | None = None  # >0 inside, <0 outside (signed)


@dataclass(slots=True)
class AlertEvent:
    """One event message: ``new`` when confirmed, ``update`` while it lasts, ``end`` when it is gone.

    The same ``alert_id`` is used for every message of one event and for every re-send.
    """

    type: str  # "new" | "update" | "end"
    alert_id: str
    camera_id: str
    class_name: str  # one of CLASSES
    rule: str  # closed_mine | illegal_site | beyond_boundary | fire_watch | fire_in_view
    score: float  # best detector score so far
    xyxy: tuple[float, float, float, float]  # box in the frame of the snapshot
    t_first: float  # UTC unix seconds of the first confirmed sighting
    t_last: float  # UTC unix seconds of the latest sighting
    zone: ZoneRef | None = None
    fix: GroundFix | None = None
    probability_in_zone: float | None = None  # how sure we are that the object is inside the zone
    track_id: int | None = None
    preset: str | None = None
    cameras: tuple[str, ...] = ()  # cameras that contributed (two-tower fixes)
    frame: Frame | None = None  # the frame to snapshot (not serialised)
    extra: dict[str, object] = field(default_factory=dict)  # stage-specific additions (documented in docs/MQTT.md)

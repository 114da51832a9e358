"""Data that flows between the stages.

Names follow the design: boxes are ``xyxy`` in pixels of the original frame,
angles end in ``_deg``, distances in ``_m``, times in ``_s`` (or are UTC unix
seconds when named ``t_*``). ``lat``/``lon`` are WGS84.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import numpy as np
from numpy.typing import NDArray

#: minewatch's own class names; a detector's class names are mapped onto these by config.
ClassName = Literal["excavator", "truck", "fire", "smoke", "person"]
#: the classes in class-id order (``Detections.class_id`` indexes this): derived from :data:`ClassName`
CLASSES: tuple[ClassName, ...] = get_args(ClassName)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}


@dataclass(frozen=True, slots=True)
class Pose:
    """Where the camera pointed when a frame was taken."""

    pan_deg: float  # azimuth of the optical axis, clockwise from true north
    tilt_deg: float  # elevation of the optical axis; negative looks down
    hfov_deg: float  # horizontal field of view
    roll_deg: float = 0.0
    preset: str | None = None  # preset name of the patrol tour, None for a fixed camera


class Picture(Protocol):
    """A decoded picture not yet converted to BGR (PyAV's ``VideoFrame`` is one)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def to_ndarray(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(slots=True)
class Frame:
    """One decoded frame handed from a source to the analysis.

    ``pixels`` is a BGR array, or the decoder's picture as it came out (YUV, owned by the decoder's buffer
    pool): a reader hands the picture on unconverted, so a frame that is replaced in its camera's slot
    before the detector takes it never costs a colour conversion. :attr:`image_bgr` converts on first use,
    once, on whichever thread asks (the inference worker).
    """

    camera_id: str
    seq: int  # increasing per camera, counts decoded frames handed on
    t_capture: float  # UTC unix seconds (stream timestamp where the stream has one)
    pixels: NDArray[np.uint8] | Picture  # (H, W, 3) BGR, or a decoded picture converted on first use
    pose: Pose
    t_received: float = 0.0  # UTC unix seconds when the reader got it (monotonic-free wall clock)

    @property
    def image_bgr(self) -> NDArray[np.uint8]:
        """(H, W, 3) BGR uint8."""
        px = self.pixels
        if isinstance(px, np.ndarray):
            return px
        from pipeline.sources.scaler import picture_to_bgr

        image = picture_to_bgr(px)
        self.pixels = image  # the decoder's buffer goes back to its pool
        return image

    def resized_bgr(self, wh: tuple[int, int]) -> NDArray[np.uint8]:
        """The image scaled to ``wh`` (area-averaged when shrinking), BGR. A decoded picture is scaled and
        converted in one pass of the decoder's scaler, straight from YUV (a 720p picture to 320×180 in
        about 0.4 ms, against 2.9 ms for the full BGR conversion and a resize), and stays unconverted for
        whoever needs the full image later (a snapshot)."""
        px = self.pixels
        if not isinstance(px, np.ndarray):
            from pipeline.sources.scaler import picture_to_bgr  # one scaler context per thread, kept

            return picture_to_bgr(px, wh, "AREA" if wh[0] < px.width else "BILINEAR")
        from pipeline.detect.letterbox import resize_to

        return resize_to(px, wh)

    @property
    def wh(self) -> tuple[int, int]:
        px = self.pixels
        if isinstance(px, np.ndarray):
            return int(px.shape[1]), int(px.shape[0])
        return int(px.width), int(px.height)


@dataclass(slots=True)
class Detections:
    """Detections of one frame, as parallel arrays."""

    xyxy: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (N, 4)
    score: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0,), np.float32))  # (N,)
    class_id: NDArray[np.int32] = field(default_factory=lambda: np.zeros((0,), np.int32))  # (N,) CLASSES

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float]] | NDArray[np.floating]) -> Detections:
        """From rows ``(x1, y1, x2, y2, score, class_id)`` (tests, benchmarks, hand-made detections)."""
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        return cls(arr[:, :4].astype(np.float32), arr[:, 4].astype(np.float32), arr[:, 5].astype(np.int32))

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def class_names(self) -> list[str]:
        return [CLASSES[int(c)] for c in self.class_id]

    def bottom_centre_xy(self) -> NDArray[np.float32]:
        """(N, 2) bottom centre of each box: where an object touches the ground."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)

    def subset(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> Detections:
        return Detections(self.xyxy[keep], self.score[keep], self.class_id[keep])

    def at_or_above(self, score_per_class: Sequence[float] | NDArray[np.floating]) -> Detections:
        """Only the detections whose score reaches their class's threshold (``score_per_class[class_id]``,
        indexed like :data:`CLASSES`): the one per-class threshold filter."""
        return self.subset(self.score >= np.asarray(score_per_class, np.float32)[self.class_id])


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
    # the line of sight grazes a brow: the object may stand in hidden ground behind it (ellipse stretched over it)
    occlusion_possible: bool = False


@dataclass(slots=True)
class ZoneRef:
    """The zone an alert is about, with the properties operators need (as in the zone file)."""

    id: str
    name: str
    kind: str  # closed_mine | illegal_site | licensed_area | fire_watch | (view: no zone, fire anywhere)
    township: str = ""
    responsible: dict[str, str] = field(default_factory=dict)  # {"name": …, "phone": …}
    distance_to_boundary_m: float | None = None  # >0 inside, <0 outside (signed)


#: the messages of one alert event
EventType = Literal["new", "update", "end"]
#: the rule an alert is raised under: one per zone kind (docs/ZONES.md), and ``fire_in_view`` without a zone
RuleName = Literal["closed_mine", "illegal_site", "beyond_boundary", "fire_watch", "fire_in_view"]


@dataclass(slots=True)
class AlertEvent:
    """One event message: ``new`` when confirmed, ``update`` while it lasts, ``end`` when it is gone.

    The same ``alert_id`` is used for every message of one event and for every re-send.
    """

    type: EventType
    alert_id: str
    camera_id: str
    class_name: str  # one of CLASSES
    rule: RuleName
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
    #: the zone's outline in the snapshot frame's pixels, one (N, 2) array per polygon part (the Analyzer
    #: projects it with the camera model; drawn on the snapshot, not sent)
    zone_outline_xy: list[NDArray[np.float32]] | None = None
    #: size of the frame ``xyxy`` was seen in (also for messages without a frame, such as ``end``)
    image_wh: tuple[int, int] | None = None
    #: UTC unix seconds of the analysis step that made this message: the capture time of the frame that
    #: caused it, or the clock of the check that ended it by time; None: the sink takes its own clock
    t_event: float | None = None
    #: bearing of the object from the tower (degrees from north), kept so that a restart can continue an
    #: event that has no ground fix (pipeline/events/persist.py); not sent
    bearing_deg: float | None = None

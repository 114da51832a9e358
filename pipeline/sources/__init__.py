"""Camera sources: readers (recorded file, RTSP), latest-frame slots, patrol and the view check.

``make_source(cam, on_status)`` builds the right reader for a camera of ``cameras.yaml``:
an :class:`RtspSource` for ``rtsp://`` URLs, else a :class:`FileSource`; with a
:class:`PatrolController` when the camera has a ``patrol:`` tour (a fixed camera is a tour of one
preset), and a :class:`ViewGuard` when reference images are given. See docs/INGESTION.md.
"""

from __future__ import annotations

from pipeline.config import CameraConfig
from pipeline.sources.base import STATUSES, FrameGate, Source, StatusCallback
from pipeline.sources.file_source import FileSource
from pipeline.sources.patrol import (
    LOOK_PRESET,
    LookRequest,
    PatrolController,
    Pointing,
    PtzDriver,
    SimulatedDriver,
    preset_pose,
)
from pipeline.sources.rtsp import RtspSource
from pipeline.sources.slot import LatestFrameSlot
from pipeline.sources.view_check import ViewChecker, ViewGuard, load_reference
from pipeline.types import Pose

__all__ = [
    "LOOK_PRESET",
    "LookRequest",
    "STATUSES",
    "FileSource",
    "FrameGate",
    "LatestFrameSlot",
    "PatrolController",
    "Pointing",
    "PtzDriver",
    "RtspSource",
    "SimulatedDriver",
    "Source",
    "ViewChecker",
    "ViewGuard",
    "make_pointing",
    "make_source",
    "make_view_guard",
]


def make_pointing(cam: CameraConfig, driver: PtzDriver | None = None) -> Pointing:
    """A fixed pose, or a patrol controller with the configured (or the given) driver."""
    if cam.patrol is None:
        return Pointing(Pose(cam.pan_deg, cam.tilt_deg, cam.hfov_deg, cam.roll_deg, None))
    if driver is None:
        if cam.patrol.driver == "simulated":
            driver = SimulatedDriver(cam.patrol.simulated_speed_deg_s, hfov_deg=cam.hfov_deg)
        else:
            from pipeline.sources.onvif_driver import OnvifDriver

            driver = OnvifDriver(cam)
    look = cam.patrol.look
    return PatrolController(cam, cam.patrol.presets, driver, cam.patrol.move_timeout_s,
                            look.max_per_tour if look.enabled else 0)


def make_view_guard(cam: CameraConfig) -> ViewGuard | None:
    """Reference images of the presets (or of the fixed view); None when there are none."""
    checkers: dict[str | None, ViewChecker] = {}
    if cam.patrol is None:
        if cam.view_reference_path is not None:
            ref = load_reference(cam.view_reference_path, f"cameras (id={cam.id}).view_reference_path")
            checkers[None] = ViewChecker(ref, cam.hfov_deg, cam.view_check)
    else:
        for i, preset in enumerate(cam.patrol.presets):
            if preset.reference_image is not None:
                field = f"cameras (id={cam.id}).patrol.presets[{i}].reference_image"
                ref = load_reference(preset.reference_image, field)
                checkers[preset.name] = ViewChecker(ref, preset_pose(cam, preset).hfov_deg, cam.view_check)
    return ViewGuard(checkers, cam.view_check) if checkers else None


def make_source(cam: CameraConfig, on_status: StatusCallback | None = None,
                driver: PtzDriver | None = None) -> Source:
    """The reader for one camera (not started: call ``.start()``)."""
    pointing = make_pointing(cam, driver)
    guard = make_view_guard(cam)
    if cam.is_rtsp:
        return RtspSource(cam, pointing, on_status, guard)
    return FileSource(cam, pointing, on_status, guard)

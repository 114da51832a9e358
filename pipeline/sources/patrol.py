"""Where the camera points: a fixed pose, or a patrol tour driven through its presets.

The patrol controller runs on its own thread (PTZ commands take hundreds of milliseconds and must not
hold up the reader). For each preset it moves the camera (``moving``), waits until the driver says the
move has ended, waits ``settle_s`` (``settling``), then ``dwelling`` for ``dwell_s``. The reader asks
:meth:`Pointing.pose_at` for every decoded frame: only frames captured after the dwell began get a pose;
the others (taken while moving or settling) are not analysed. A fixed camera is a tour of one preset.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.config import CameraConfig, PresetConfig
from pipeline.geo.angles import abs_angle_diff_deg
from pipeline.logs import get_logger
from pipeline.types import Pose

PointingStatus = Callable[[str, dict[str, Any]], None]


class PtzDriver(Protocol):
    """Moves a camera. ``goto`` starts a move and returns; ``is_moving`` polls it (GetStatus)."""

    def goto(self, preset: PresetConfig) -> None: ...

    def is_moving(self) -> bool: ...

    def close(self) -> None: ...


def preset_pose(cam: CameraConfig, preset: PresetConfig) -> Pose:
    return Pose(
        pan_deg=preset.pan_deg,
        tilt_deg=preset.tilt_deg,
        hfov_deg=preset.hfov_deg if preset.hfov_deg is not None else cam.hfov_deg,
        roll_deg=cam.roll_deg,
        preset=preset.name,
    )


class Pointing:
    """A fixed camera: always dwelling at its one pose (visit 1)."""

    def __init__(self, pose: Pose) -> None:
        self.pose = pose
        self._status: PointingStatus | None = None

    def set_status_callback(self, callback: PointingStatus) -> None:
        self._status = callback

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def pose_at(self, t_capture: float) -> tuple[Pose, int] | None:
        """The pose of a frame captured at ``t_capture`` and the visit number, or None (not analysed)."""
        return self.pose, 1

    def health(self) -> dict[str, Any]:
        return {"preset": self.pose.preset, "patrol_state": "fixed"}


@dataclass(frozen=True, slots=True)
class PatrolState:
    state: str  # moving | settling | dwelling | failed
    preset: str
    since: float  # wall clock when this state began
    visit: int  # increases with every dwell
    pose: Pose | None  # set while dwelling


class PatrolController(Pointing):
    """Drives a camera through its tour; see the module docstring."""

    POLL_S = 0.1

    def __init__(self, cam: CameraConfig, presets: Sequence[PresetConfig], driver: PtzDriver,
                 move_timeout_s: float = 30.0) -> None:
        super().__init__(preset_pose(cam, presets[0]))
        self.cam = cam
        self.presets = list(presets)
        self.poses = [preset_pose(cam, p) for p in self.presets]
        self.driver = driver
        self.move_timeout_s = move_timeout_s
        self.log = get_logger("patrol", cam.id)
        self._state = PatrolState("moving", self.presets[0].name, time.time(), 0, None)
        self.history: deque[PatrolState] = deque(maxlen=1000)  # for health and tests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.move_failures = 0
        self.move_timeouts = 0

    # -- the reader's side ----------------------------------------------------------------------------
    def pose_at(self, t_capture: float) -> tuple[Pose, int] | None:
        st = self._state  # one atomic read of an immutable state
        if st.state != "dwelling" or st.pose is None or t_capture < st.since:
            return None
        return st.pose, st.visit

    @property
    def state(self) -> PatrolState:
        return self._state

    def health(self) -> dict[str, Any]:
        st = self._state
        return {
            "preset": st.preset,
            "patrol_state": st.state,
            "patrol_visits": st.visit,
            "move_failures": self.move_failures,
            "move_timeouts": self.move_timeouts,
        }

    # -- the controller's thread ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"patrol-{self.cam.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        try:
            self.driver.close()
        except Exception:
            self.log.exception("closing the PTZ driver failed")

    def _enter(self, state: str, preset: str, visit: int, pose: Pose | None) -> None:
        self._state = PatrolState(state, preset, time.time(), visit, pose)
        self.history.append(self._state)

    def _loop(self) -> None:
        visit = 0
        i = 0
        failures_in_row = 0
        while not self._stop.is_set():
            preset, pose = self.presets[i], self.poses[i]
            self._enter("moving", preset.name, visit, None)
            if self._status is not None and len(self.presets) > 1:
                self._status("moving", {"preset": preset.name})
            if not self._move(preset):
                failures_in_row += 1
                self._enter("failed", preset.name, visit, None)
                # the pose is unknown after a failed move: analyse nothing, try again after a pause
                if self._stop.wait(min(30.0, 1.0 * 2 ** min(failures_in_row, 5))):
                    return
                continue
            failures_in_row = 0
            self._enter("settling", preset.name, visit, None)
            if self._stop.wait(preset.settle_s):
                return
            visit += 1
            self._enter("dwelling", preset.name, visit, pose)
            if self._status is not None and len(self.presets) > 1:
                self._status("online", {"preset": preset.name})
            if len(self.presets) == 1:
                self._stop.wait()  # a tour of one preset: stay there
                return
            if self._stop.wait(preset.dwell_s):
                return
            i = (i + 1) % len(self.presets)

    def _move(self, preset: PresetConfig) -> bool:
        try:
            self.driver.goto(preset)
            deadline = time.monotonic() + self.move_timeout_s
            while self.driver.is_moving():
                if time.monotonic() > deadline:
                    self.move_timeouts += 1
                    self.log.warning("move to preset %s did not end in %.0f s; going on", preset.name,
                                     self.move_timeout_s)
                    break
                if self._stop.wait(self.POLL_S):
                    return False
            return True
        except Exception as exc:  # network errors, SOAP faults: log, count, retry later
            self.move_failures += 1
            self.log.warning("move to preset %s failed: %s", preset.name, exc)
            return False


class SimulatedDriver:
    """A PTZ driver without a camera: a move takes (largest of pan and tilt travel) / speed seconds.

    Records every move as ``(preset, t_start, t_end)`` (wall clock) so tests can check that no frame
    captured during a move reached the analysis.
    """

    def __init__(self, speed_deg_s: float = 60.0, min_move_s: float = 0.2,
                 clock: Callable[[], float] = time.time) -> None:
        self.speed_deg_s = speed_deg_s
        self.min_move_s = min_move_s
        self._clock = clock
        self.pan_deg: float | None = None
        self.tilt_deg = 0.0
        self._until = 0.0
        self.moves: list[tuple[str, float, float]] = []
        self.fail_next = 0  # tests: make the next N gotos raise

    def goto(self, preset: PresetConfig) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("simulated PTZ failure")
        now = self._clock()
        travel = 0.0 if self.pan_deg is None else max(
            abs_angle_diff_deg(self.pan_deg, preset.pan_deg), abs(self.tilt_deg - preset.tilt_deg))
        duration = max(self.min_move_s, travel / self.speed_deg_s)
        self._until = now + duration
        self.pan_deg, self.tilt_deg = preset.pan_deg, preset.tilt_deg
        self.moves.append((preset.name, now, self._until))

    def is_moving(self) -> bool:
        return self._clock() < self._until

    def close(self) -> None:
        pass

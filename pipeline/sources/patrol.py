"""Where the camera points: a fixed pose, or a patrol tour driven through its presets.

The patrol controller runs on its own thread (PTZ commands take hundreds of milliseconds and must not
hold up the reader). For each preset it moves the camera (``moving``), waits until the driver says the
move has ended, waits ``settle_s`` (``settling``), then ``dwelling`` for ``dwell_s``. The reader asks
:meth:`Pointing.pose_at` for every decoded frame: only frames captured after the dwell began get a pose;
the others (taken while moving or settling) are not analysed. A fixed camera is a tour of one preset.

Look closer (docs/PATROL.md): while dwelling, the analysis may ask for one look (:meth:`PatrolController.
request_look`); the controller leaves the preset for the look's pose (preset name ``~look``), settles,
dwells until the analysis ends the look (:meth:`PatrolController.end_look`) or ``max_dwell_s`` passes, then
goes back to the interrupted preset for the rest of its dwell and carries on with the tour. At most
``patrol.look.max_per_tour`` looks per tour; every look is logged and counted in :meth:`health`.
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


#: The preset name frames taken during a look carry (not a valid preset name, so it never clashes).
LOOK_PRESET = "~look"


@dataclass(frozen=True, slots=True)
class LookRequest:
    """One look closer, asked by the analysis: where to point and how long it may take."""

    look_id: int
    pan_deg: float
    tilt_deg: float
    hfov_deg: float
    zoom: float | None  # ONVIF zoom for hfov_deg (None: the driver leaves the zoom alone)
    settle_s: float
    max_dwell_s: float
    reason: str = ""


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
                 move_timeout_s: float = 30.0, max_looks_per_tour: int = 0) -> None:
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
        # look closer: one request at a time, from the analysis thread
        self.max_looks_per_tour = max_looks_per_tour
        self._wake = threading.Event()
        self._look_lock = threading.Lock()
        self._look_req: LookRequest | None = None
        self._look_active: int | None = None
        self._look_outcome: str | None = None
        self.looks_this_tour = 0
        self.tours = 0
        self.look_counts: dict[str, int] = {"started": 0, "confirmed": 0, "rejected": 0, "timed_out": 0,
                                            "move_failed": 0, "refused": 0}
        #: (look_id, outcome, t_start, t_end) of every finished look, for health and tests
        self.looks: deque[tuple[int, str, float, float]] = deque(maxlen=100)

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
            "tours_total": self.tours,
            "looks_total": self.look_counts["started"],
            "looks_confirmed_total": self.look_counts["confirmed"],
            "looks_rejected_total": self.look_counts["rejected"],
            "looks_timed_out_total": self.look_counts["timed_out"],
            "looks_refused_total": self.look_counts["refused"],
            "look_candidates_total": self.look_counts.get("candidates", 0),
            "looks_skipped_cooldown_total": self.look_counts.get("skipped_cooldown", 0),
            "looks_skipped_alert_open_total": self.look_counts.get("skipped_alert_open", 0),
        }

    # -- look closer (called from the analysis thread) --------------------------------------------------
    def request_look(self, req: LookRequest) -> str | None:
        """Ask for one look; None when accepted, else why not (``busy``, ``not_dwelling``, ``tour_limit``)."""
        with self._look_lock:
            st = self._state
            if self._look_req is not None or self._look_active is not None or st.preset == LOOK_PRESET:
                why: str | None = "busy"
            elif st.state != "dwelling":
                why = "not_dwelling"
            elif self.looks_this_tour >= self.max_looks_per_tour:
                why = "tour_limit"
            else:
                why = None
                self._look_req = req
                self.looks_this_tour += 1
            if why is not None:
                self.look_counts["refused"] += 1
        if why is None:
            self._wake.set()
        return why

    def end_look(self, look_id: int, outcome: str) -> bool:
        """The analysis has decided (``confirmed`` / ``rejected``): the controller goes back to its tour."""
        with self._look_lock:
            if self._look_active != look_id or self._look_outcome is not None:
                return False
            self._look_outcome = outcome
        self._wake.set()
        return True

    @property
    def active_look(self) -> int | None:
        return self._look_active

    # -- the controller's thread ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"patrol-{self.cam.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
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

    def _pause(self, seconds: float) -> bool:
        """Wait up to ``seconds`` or until woken (a look asked or ended); True when stopped."""
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()
        return self._stop.is_set()

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
            # a tour of one preset stays there (each dwell_s counts as a tour for the look limit)
            remaining = preset.dwell_s
            while True:
                t0 = time.monotonic()
                if self._pause(remaining):
                    return
                remaining -= time.monotonic() - t0
                with self._look_lock:
                    req, self._look_req = self._look_req, None
                if req is None:
                    if remaining > 0:
                        continue  # woken for nothing (a late end_look)
                    if len(self.presets) == 1:
                        self._tour_done()
                        remaining = preset.dwell_s
                        continue
                    break
                visit = self._look(req, preset, visit)
                if self._stop.is_set():
                    return
                if remaining <= 0.0 and len(self.presets) > 1:
                    break
                # back to the interrupted preset for the rest of its dwell (and its zoom)
                self._enter("moving", preset.name, visit, None)
                if not self._move(self._with_zoom(preset, pose)):
                    break
                self._enter("settling", preset.name, visit, None)
                if self._stop.wait(preset.settle_s):
                    return
                visit += 1
                self._enter("dwelling", preset.name, visit, pose)
                if self._status is not None:
                    self._status("online", {"preset": preset.name})
                remaining = max(remaining, 0.0) if len(self.presets) > 1 else preset.dwell_s
            i = (i + 1) % len(self.presets)
            if i == 0:
                self._tour_done()

    def _with_zoom(self, preset: PresetConfig, pose: Pose) -> PresetConfig:
        """The preset with an explicit zoom, so that a move back from a look undoes the look's zoom (an
        ONVIF AbsoluteMove without Zoom leaves it where the look put it)."""
        if preset.zoom is not None or preset.onvif_preset_token or not self.cam.zoom_hfov:
            return preset
        from pipeline.look.geometry import zoom_for_hfov

        return preset.model_copy(update={"zoom": zoom_for_hfov(self.cam.zoom_hfov, pose.hfov_deg)})

    def _tour_done(self) -> None:
        with self._look_lock:
            self.tours += 1
            self.looks_this_tour = 0

    def _look(self, req: LookRequest, preset: PresetConfig, visit: int) -> int:
        """One look: move, settle, dwell until ended or ``max_dwell_s``; returns the visit counter."""
        t_start = time.time()
        self.look_counts["started"] += 1
        self.log.info("look %d from preset %s: pan %.2f° tilt %.2f° hfov %.2f°%s (%s)", req.look_id, preset.name,
                      req.pan_deg, req.tilt_deg, req.hfov_deg,
                      "" if req.zoom is None else f" zoom {req.zoom:.3f}", req.reason)
        target = PresetConfig(name="look", pan_deg=req.pan_deg % 360.0, tilt_deg=max(-90.0, min(90.0, req.tilt_deg)),
                              hfov_deg=req.hfov_deg, zoom=req.zoom, settle_s=req.settle_s,
                              dwell_s=req.max_dwell_s)
        pose = Pose(target.pan_deg, target.tilt_deg, req.hfov_deg, self.cam.roll_deg, LOOK_PRESET)
        with self._look_lock:
            self._look_active, self._look_outcome = req.look_id, None
        outcome = "move_failed"
        try:
            self._enter("moving", LOOK_PRESET, visit, None)
            if self._status is not None:
                self._status("moving", {"preset": LOOK_PRESET, "look": req.look_id})
            if not self._move(target):
                return visit
            self._enter("settling", LOOK_PRESET, visit, None)
            if self._stop.wait(req.settle_s):
                return visit
            visit += 1
            self._enter("dwelling", LOOK_PRESET, visit, pose)
            deadline = time.monotonic() + req.max_dwell_s
            while True:
                with self._look_lock:
                    decided = self._look_outcome
                left = deadline - time.monotonic()
                if decided is not None or left <= 0:
                    outcome = decided or "timed_out"
                    return visit
                if self._pause(left):
                    outcome = "stopped"
                    return visit
        finally:
            with self._look_lock:
                self._look_active = None
                self._look_outcome = None
            if outcome in self.look_counts:
                self.look_counts[outcome] += 1
            self.looks.append((req.look_id, outcome, t_start, time.time()))
            self.log.info("look %d %s after %.1f s; back to preset %s", req.look_id, outcome,
                          time.time() - t_start, preset.name)

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
    """A PTZ driver without a camera: a move takes (largest of pan and tilt travel) / speed seconds, or
    ``min_move_s`` when longer (zooming included).

    Records every move as ``(preset, t_start, t_end)`` (wall clock) so tests can check that no frame
    captured during a move reached the analysis, and knows where the head points at any time
    (:meth:`view_at`, interpolated during a move), which is what a virtual camera renders
    (tests/virtual_tower.py).
    """

    def __init__(self, speed_deg_s: float = 60.0, min_move_s: float = 0.2,
                 clock: Callable[[], float] = time.time, hfov_deg: float = 60.0) -> None:
        self.speed_deg_s = speed_deg_s
        self.min_move_s = min_move_s
        self._clock = clock
        self.pan_deg: float | None = None
        self.tilt_deg = 0.0
        self.hfov_deg = hfov_deg
        self.default_hfov_deg = hfov_deg  # a preset without hfov_deg: the lens's own (zoom restored)
        self._from = (0.0, 0.0, hfov_deg)
        self._since = 0.0
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
        self._from = self.view_at(now) if self.pan_deg is not None else (preset.pan_deg, preset.tilt_deg,
                                                                         self.hfov_deg)
        self._since, self._until = now, now + duration
        self.pan_deg, self.tilt_deg = preset.pan_deg, preset.tilt_deg
        self.hfov_deg = preset.hfov_deg if preset.hfov_deg is not None else self.default_hfov_deg
        self.moves.append((preset.name, now, self._until))

    def view_at(self, t: float) -> tuple[float, float, float]:
        """(pan_deg, tilt_deg, hfov_deg) the head shows at wall-clock ``t``: linear between the start and
        the end of the current move (pan the short way round, the field of view in log scale)."""
        end = (self.pan_deg if self.pan_deg is not None else 0.0, self.tilt_deg, self.hfov_deg)
        if t >= self._until or self._until <= self._since:
            return end
        a = max(0.0, (t - self._since) / (self._until - self._since))
        d_pan = (end[0] - self._from[0] + 180.0) % 360.0 - 180.0
        hfov = self._from[2] * (end[2] / self._from[2]) ** a
        return ((self._from[0] + a * d_pan) % 360.0, self._from[1] + a * (end[1] - self._from[1]), hfov)

    def is_moving(self) -> bool:
        return self._clock() < self._until

    def close(self) -> None:
        pass

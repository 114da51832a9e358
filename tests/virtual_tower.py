"""A virtual tower: a PTZ camera that renders its view by pan, tilt and zoom, served over real RTSP.

* The backdrop is a large still (a real HPWREN tower frame from ``../shared/data`` when present, else a
  synthetic landscape) spread over a range of azimuth and elevation (equal degrees per pixel both ways);
  each output pixel's ray (the exact formulas of :class:`pipeline.geo.camera.CameraModel`) picks its
  backdrop pixel. The backdrop is scenery only: its hills are not where the flat ground model puts them.
* Objects stand at known ground positions (east/north metres from the tower's foot, on the flat ground at
  ``ground_elevation_m``). Each is a rectangular photograph crop (a sprite, with its own background) drawn
  with its bottom centre at the pixel :meth:`CameraModel.project_local` gives for its foot and its height
  from the projection of its top, so a box's bottom centre located by the project's own geolocation lands
  on the object's ground position (to the pixel rounding of the drawing).
* :class:`TowerStream` renders the view the PTZ head shows *now* (``view()`` → pan, tilt, hfov; e.g.
  :meth:`pipeline.sources.patrol.SimulatedDriver.view_at`, or the ipycam ONVIF camera's position) at a
  few frames a second and pipes the raw frames into ``scripts/rtsp_server.py --stdin-raw`` (GStreamer
  appsrc → x264 → RTSP), so the pipeline reads it like any camera, while it moves.

Sprites come from the Ultralytics wheel's sample pictures (``zidane.jpg``), read at run time: the shipped
detector finds people in them at ~100 px, not tower-scale machines, so a person stands in for a machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.config import CameraConfig
from pipeline.geo.camera import CameraModel
from pipeline.types import Pose
from tests.conftest import SHARED_DATA, free_port, wait_port
from tests.rtsp_fixture import SERVER_SCRIPT, SYSTEM_PYTHON

HPWREN_FRAME = SHARED_DATA / "tower_smoke" / "hpwren-rm-w-20180728" / "-02400.jpg"

#: Crops of Ultralytics' zidane.jpg (x1, y1, x2, y2), found by a search over random crops (docs/PATROL.md).
#: PERSON: a man's head and shoulders that models/minewatch-starter.onnx scores "person" 0.18 (HPWREN
#: backdrop) / 0.34 (synthetic) at 12 px tall and 0.91 at 120 px. MOSAIC_OF: another man, painted as a
#: board of 12 rows of coloured squares (:func:`mosaic`): at 12 px it is the picture ("person" 0.11 / 0.23),
#: at 120 px a grid of squares (0.01-0.02). Scores measured on renders without H.264.
PERSON_XYXY = (734, 123, 1071, 410)
MOSAIC_OF_XYXY = (558, 156, 867, 611)
MOSAIC_ROWS = 12

U8 = NDArray[np.uint8]


def ultralytics_asset(name: str) -> Path:
    """A sample picture of the installed Ultralytics wheel, found without importing it (torch is slow)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the ultralytics package is not installed (dev extra)")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def sprite(xyxy: tuple[int, int, int, int], picture: str = "zidane.jpg") -> U8:
    image = cv2.imread(str(ultralytics_asset(picture)))
    if image is None:
        raise FileNotFoundError(picture)
    x1, y1, x2, y2 = xyxy
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def mosaic(image: U8, rows: int) -> U8:
    """The picture as a board of ``rows`` rows of flat squares (the same size as the picture)."""
    cols = max(1, round(rows * image.shape[1] / image.shape[0]))
    small = cv2.resize(image, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST))


def synthetic_backdrop(width: int = 1920, height: int = 1440, seed: int = 0) -> U8:
    """A landscape without shared data: hazy sky, a far ridge, light dry ground with darker scrub patches
    (numbers, not a photo; its tones follow the HPWREN frame's)."""
    rng = np.random.default_rng(seed)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    image = np.zeros((height, width, 3), np.float32)
    image[:] = (160.0, 150.0, 140.0)  # BGR haze
    ridge = height * (0.25 + 0.03 * np.sin(x / 97.0 + rng.uniform(0, 6)) + 0.015 * np.sin(x / 23.0))
    ground = np.broadcast_to(y >= ridge, (height, width))
    scrub = cv2.resize(rng.normal(0, 1, (height // 24, width // 24)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    dirt = np.array((105.0, 125.0, 140.0), np.float32)  # dry ground
    bush = np.array((55.0, 70.0, 75.0), np.float32)  # scrub
    mix = np.clip(0.5 + 0.6 * scrub, 0, 1)[..., None]
    # fine texture (stones, shrubs) at a third of the resolution: without it the shipped detector finds
    # nothing at all at 12 px on this backdrop (measured: 0.0 smooth, 0.34 with it)
    fine = cv2.resize(rng.normal(0, 12, (height // 3, width // 3)).astype(np.float32), (width, height))
    land = dirt * (1 - mix) + bush * mix + fine[..., None]
    image = np.where(ground[..., None], land, image)
    return np.clip(image, 0, 255).astype(np.uint8)


def load_backdrop() -> tuple[U8, str]:
    """The HPWREN frame (read from shared data at run time, never copied) or the synthetic landscape
    (also when ``MW_VIRTUAL_TOWER_BACKDROP=synthetic``, to run what CI without shared data runs)."""
    if HPWREN_FRAME.is_file() and os.environ.get("MW_VIRTUAL_TOWER_BACKDROP") != "synthetic":
        image = cv2.imread(str(HPWREN_FRAME))
        if image is not None:
            return image, "hpwren"
    return synthetic_backdrop(), "synthetic"


@dataclass(frozen=True)
class Backdrop:
    """A still spread over azimuth [az_left_deg, …) and elevation (… , el_top_deg], ``deg_per_px`` both ways."""

    image: U8
    az_left_deg: float
    el_top_deg: float
    deg_per_px: float


@dataclass
class SceneObject:
    """A sprite standing on the flat ground at (east_m, north_m) of the tower's local frame, height_m tall."""

    name: str
    image: U8
    east_m: float
    north_m: float
    height_m: float
    visible: bool = True

    @property
    def width_m(self) -> float:
        return self.height_m * self.image.shape[1] / self.image.shape[0]


@dataclass
class VirtualTower:
    cam: CameraConfig
    backdrop: Backdrop
    objects: list[SceneObject] = field(default_factory=list)
    wh: tuple[int, int] = (320, 180)

    def __post_init__(self) -> None:
        self.model = CameraModel.from_config(self.cam)  # flat ground at the tower's foot, as the pipeline's
        self._maps: dict[tuple[float, float, float], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
        self.lock = threading.Lock()

    def pose(self, pan_deg: float, tilt_deg: float, hfov_deg: float) -> Pose:
        return Pose(pan_deg, tilt_deg, hfov_deg, self.cam.roll_deg)

    def _remap(self, pose: Pose) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        key = (round(pose.pan_deg, 4), round(pose.tilt_deg, 4), round(pose.hfov_deg, 5))
        maps = self._maps.get(key)
        if maps is None:
            w, h = self.wh
            xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
            dirs = self.model.rays(pose, self.wh, np.stack([xs.ravel(), ys.ravel()], axis=1))
            az = np.degrees(np.arctan2(dirs[:, 0], dirs[:, 1]))
            el = np.degrees(np.arcsin(np.clip(dirs[:, 2], -1, 1)))
            b = self.backdrop
            map_x = (((az - b.az_left_deg + 180.0) % 360.0 - 180.0) / b.deg_per_px).reshape(h, w)
            map_y = ((b.el_top_deg - el) / b.deg_per_px).reshape(h, w)
            maps = (map_x.astype(np.float32), map_y.astype(np.float32))
            if len(self._maps) > 256:
                self._maps.clear()
            self._maps[key] = maps
        return maps

    def object_box(self, obj: SceneObject, pose: Pose) -> tuple[float, float, float, float] | None:
        """Where ``obj`` is drawn in a view: (x1, y1, x2, y2) pixels (continuous), None when not in front."""
        z = self.cam.ground_elevation_m
        pts = self.model.project_local(pose, self.wh, np.array([obj.east_m, obj.east_m]),
                                       np.array([obj.north_m, obj.north_m]), np.array([z, z + obj.height_m]))
        if not np.isfinite(pts).all():
            return None
        (fx, fy), (_, hy) = pts
        h_px = fy - hy
        if h_px <= 0:
            return None
        w_px = h_px * obj.image.shape[1] / obj.image.shape[0]
        return fx - w_px / 2, fy - h_px, fx + w_px / 2, fy

    def render(self, pan_deg: float, tilt_deg: float, hfov_deg: float) -> U8:
        pose = self.pose(pan_deg, tilt_deg, hfov_deg)
        map_x, map_y = self._remap(pose)
        frame = cv2.remap(self.backdrop.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        w, h = self.wh
        with self.lock:
            objects = [o for o in self.objects if o.visible]
        for obj in objects:
            box = self.object_box(obj, pose)
            if box is None:
                continue
            x1, y1, x2, y2 = box
            bw, bh = max(1, round(x2 - x1)), max(1, round(y2 - y1))
            left, top = round((x1 + x2) / 2 - bw / 2), round(y2) - bh
            if left >= w or top >= h or left + bw <= 0 or top + bh <= 0 or bh > 4 * h:
                continue
            interp = cv2.INTER_AREA if bh < obj.image.shape[0] else cv2.INTER_LINEAR
            patch = cv2.resize(obj.image, (bw, bh), interpolation=interp)
            cx1, cy1, cx2, cy2 = max(left, 0), max(top, 0), min(left + bw, w), min(top + bh, h)
            frame[cy1:cy2, cx1:cx2] = patch[cy1 - top:cy2 - top, cx1 - left:cx2 - left]
        return frame


class TowerStream:
    """Renders ``view()`` at ``fps`` into ``scripts/rtsp_server.py --stdin-raw``: ``start()``, ``url``, ``stop()``."""

    def __init__(self, tower: VirtualTower, view: Callable[[], tuple[float, float, float]], fps: int = 5,
                 mount: str = "/tower") -> None:
        self.tower = tower
        self.view = view
        self.fps = fps
        self.mount = mount
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def start(self, timeout_s: float = 20.0) -> TowerStream:
        w, h = self.tower.wh
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--mount", self.mount, "--stdin-raw",
                "--width", str(w), "--height", str(h), "--fps", str(self.fps), "--gop", str(self.fps)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"rtsp_server.py --stdin-raw did not start: {line!r}")
        wait_port(self.port, timeout_s)
        self._thread = threading.Thread(target=self._feed, name="virtual-tower", daemon=True)
        self._thread.start()
        return self

    def _feed(self) -> None:
        period = 1.0 / self.fps
        next_t = time.monotonic()
        assert self.proc is not None and self.proc.stdin is not None
        while not self._stop.is_set():
            frame = self.tower.render(*self.view())
            try:
                self.proc.stdin.write(frame.tobytes())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            self.frames_sent += 1
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None


# -- the test scene: three presets, a person standing in for a machine, and a false candidate (a mosaic) -----------
TOWER = {"lat": 38.7, "lon": 111.6, "ground_elevation_m": 1000.0, "mast_height_m": 20.0}
WH = (320, 180)
WIDE_HFOV_DEG = 30.0
TOUR = [  # name, pan_deg: the false candidate stands in B's view, the truth in C's
    ("A", 80.0), ("B", 110.0), ("C", 140.0)]
FALSE_BEARING_DEG, FALSE_RANGE_M = 113.0, 149.0  # 3 m tall: 12 px at the wide preset
TRUTH_BEARING_DEG, TRUTH_RANGE_M = 137.0, 149.0  # 3 m tall: 12 px


def at(bearing_deg: float, range_m: float) -> tuple[float, float]:
    """(east, north) metres of a ground point at this bearing and range from the tower's foot."""
    b = math.radians(bearing_deg)
    return range_m * math.sin(b), range_m * math.cos(b)


def scene_objects() -> list[SceneObject]:
    te, tn = at(TRUTH_BEARING_DEG, TRUTH_RANGE_M)
    fe, fn = at(FALSE_BEARING_DEG, FALSE_RANGE_M)
    return [SceneObject("truth", sprite(PERSON_XYXY), te, tn, 3.0),
            SceneObject("false", mosaic(sprite(MOSAIC_OF_XYXY), MOSAIC_ROWS), fe, fn, 3.0)]


def make_tower(cam: CameraConfig, objects: list[SceneObject] | None = None) -> tuple[VirtualTower, str]:
    """The tower over the HPWREN frame (or the synthetic backdrop): 0.06°/px, its ground rows in view."""
    image, kind = load_backdrop()
    backdrop = Backdrop(image, az_left_deg=45.0, el_top_deg=53.0, deg_per_px=0.06)
    return VirtualTower(cam, backdrop, scene_objects() if objects is None else objects, WH), kind

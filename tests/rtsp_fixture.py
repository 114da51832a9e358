"""A real RTSP server for tests: Debian's gst-rtsp-server via ``scripts/rtsp_server.py`` on a free port.

Test clips are encoded in-process with PyAV (its wheel bundles libx264): a textured, slowly scrolling
scene with a moving bar, so that ORB finds features and frames differ. Import the fixtures in a test
module (``from tests.rtsp_fixture import rtsp_clip_fixture, rtsp_server_fixture  # noqa: F401``); they are
named ``rtsp_clip`` and ``rtsp_server``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from pipeline.config import CameraConfig
from pipeline.types import Frame
from tests.conftest import ROOT, free_port, wait_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = ROOT / "scripts" / "rtsp_server.py"


def scene(width: int = 320, height: int = 240, seed: int = 0) -> NDArray[np.uint8]:
    """A textured still: random grey blocks and coloured rectangles (plenty of ORB corners)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1), dtype=np.uint8)
    grey = np.kron(blocks, np.ones((8, 8), np.uint8))[:height, :width]
    image = np.repeat(grey[:, :, None], 3, axis=2).copy()
    for _ in range(12):
        x, y = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
        image[y:y + int(rng.integers(8, 30)), x:x + int(rng.integers(8, 30))] = rng.integers(0, 256, 3)
    return image


def make_clip(path: Path, seconds: float = 60.0, fps: int = 25, width: int = 320, height: int = 240,
              gop: int = 25, seed: int = 0, faststart: bool = True) -> Path:
    """An H.264 MP4 (yuv420p, key frame every ``gop`` frames) of :func:`scene` with a moving bar."""
    base = scene(width, height, seed)
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                          "bf": "0"}
        for i in range(int(seconds * fps)):
            image = base.copy()
            x = (i * 4) % (width - 8)
            image[:, x:x + 8] = (0, 0, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def garble_clip(clip: Path, out: Path, every_bytes: int = 150_000, garbage_bytes: int = 2_000,
                seed: int = 1) -> Path:
    """``clip`` with ``garbage_bytes`` of random bytes every ``every_bytes`` of its media data (the header
    and the first 50 kB of frames are spared, so that the file opens): a stream with bit errors."""
    data = bytearray(clip.read_bytes())
    start = data.find(b"mdat") + 8 + 50_000
    rng = np.random.default_rng(seed)
    for offset in range(start, len(data) - garbage_bytes, every_bytes):
        data[offset:offset + garbage_bytes] = rng.integers(0, 256, garbage_bytes, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


@dataclass
class RtspServer:
    """One gst-rtsp-server process: ``start()``, ``kill()`` (SIGKILL), ``freeze()``/``thaw()`` (SIGSTOP/CONT)."""

    file: Path | None = None
    port: int = field(default_factory=free_port)
    mount: str = "/cam"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def start(self, file: Path | None = None, timeout_s: float = 20.0) -> RtspServer:
        if file is not None:
            self.file = file
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--mount", self.mount]
        args += ["--file", str(self.file)] if self.file is not None else ["--pattern"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()  # "ready …" once it listens (GStreamer scans plugins first)
        if not line.startswith("ready"):
            self.kill()
            raise RuntimeError(f"rtsp_server.py did not start: {line!r}")
        wait_port(self.port, timeout_s)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


def rtsp_server_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="session", name="rtsp_clip")
def rtsp_clip_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 90 s 320×240 25 fps clip (key frame every second), made once per test session."""
    return make_clip(tmp_path_factory.mktemp("rtsp") / "clip.mp4", seconds=90.0)


@pytest.fixture(name="rtsp_server")
def rtsp_server_fixture(rtsp_clip: Path) -> Iterator[RtspServer]:
    """A gst-rtsp-server serving ``rtsp_clip`` on a free loopback port."""
    if not rtsp_server_available():
        pytest.fail("gst-rtsp-server is not installed: run `bash scripts/setup.sh --dev` (installs it with apt-get)")
    server = RtspServer(rtsp_clip).start()
    try:
        yield server
    finally:
        server.kill()


def wait_until(predicate: object, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s`` passed; returns its last value."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())




# -- helpers shared by the source tests ---------------------------------------------------------------
FAST = {"stall_s": 1.0, "open_timeout_s": 2.0, "backoff_initial_s": 0.2, "backoff_max_s": 1.0}


class Statuses:
    """Records on_status calls (from the reader and patrol threads)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, camera_id: str, status: str, detail: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((time.monotonic(), status, detail))

    def seen(self, status: str, after: float = 0.0) -> bool:
        with self._lock:
            return any(s == status and t >= after for t, s, _ in self.events)

    def first(self, status: str, after: float = 0.0) -> float | None:
        with self._lock:
            return next((t for t, s, _ in self.events if s == status and t >= after), None)

    def names(self) -> list[str]:
        with self._lock:
            return [s for _, s, _ in self.events]


PRESETS: list[dict[str, Any]] = [
    {"name": "north", "pan_deg": 0.0, "tilt_deg": -3.0, "hfov_deg": 40.0, "settle_s": 0.4, "dwell_s": 1.2},
    {"name": "east", "pan_deg": 90.0, "tilt_deg": -6.0, "hfov_deg": 20.0, "settle_s": 0.4, "dwell_s": 1.2},
]


def patrol_camera(url: str, presets: list[dict[str, Any]], **kw: Any) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "ptz1", "source": url, "lat": 38.7, "lon": 111.6, "hfov_deg": 55.0, "analysis_fps": 10.0,
        "reader": FAST, "patrol": {"driver": "simulated", "presets": presets}, **kw})


def collect(src: Any, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        f = src.slot.get(0.05)
        if f is not None:
            frames.append(f)
    return frames


if __name__ == "__main__":  # make a clip by hand: python -m tests.rtsp_fixture out.mp4 [seconds]
    make_clip(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 60.0)

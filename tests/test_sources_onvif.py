"""The ONVIF driver against a real ONVIF SOAP service on loopback (PyPI `ipycam`'s virtual camera).

ipycam implements the device, media and PTZ services (WS-Security UsernameToken, AbsoluteMove,
GotoPreset); its GetStatus answer does not parse (an invalid element name), like some camera firmwares,
which exercises the driver's timed fallback.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import CameraConfig
from pipeline.sources import PatrolController, make_pointing
from pipeline.sources.onvif_driver import OnvifDriver
from tests.conftest import free_port

ipycam = pytest.importorskip("ipycam", reason="dev extra: ipycam (virtual ONVIF camera) not installed")
pytest.importorskip("onvif", reason="extra `onvif` (onvif-zeep-async) not installed")


class VirtualOnvifCamera:
    def __init__(self, port: int, user: str, password: str) -> None:
        from ipycam.config import CameraConfig as IpyConfig
        from ipycam.http import IPCameraHTTPHandler
        from ipycam.onvif import ONVIFService
        from ipycam.ptz import PTZController

        cfg = IpyConfig()
        cfg.onvif_port, cfg.local_ip, cfg.username, cfg.password = port, "127.0.0.1", user, password
        self.ptz = PTZController()
        self.onvif = ONVIFService(cfg, self.ptz)
        self.config = cfg
        IPCameraHTTPHandler.camera = self
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), IPCameraHTTPHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.ptz.stop()


@pytest.fixture
def onvif_camera(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[VirtualOnvifCamera, int]]:
    monkeypatch.chdir(tmp_path)  # ipycam keeps its presets in ./ptz_presets.json
    monkeypatch.setenv("MW_TEST_ONVIF_PW", "pw-onvif-123")
    port = free_port()
    cam = VirtualOnvifCamera(port, "admin", "pw-onvif-123")
    try:
        yield cam, port
    finally:
        cam.close()


def camera(port: int, presets: list[dict[str, Any]], **onvif: Any) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "ptz", "source": "rtsp://127.0.0.1/none", "lat": 38.7, "lon": 111.6,
        "onvif": {"host": "127.0.0.1", "port": port, "username": "admin", "password_env": "MW_TEST_ONVIF_PW",
                  "pan_zero_azimuth_deg": 0.0, "pan_deg_at_minus1": -180.0, "pan_deg_at_plus1": 180.0,
                  "tilt_deg_at_minus1": -90.0, "tilt_deg_at_plus1": 90.0, "blind_move_s": 0.5, **onvif},
        "patrol": {"driver": "onvif", "presets": presets}})


def test_absolute_move_reaches_the_camera_in_its_own_coordinates(
    onvif_camera: tuple[VirtualOnvifCamera, int], caplog: pytest.LogCaptureFixture
) -> None:
    virtual, port = onvif_camera
    cam = camera(port, [{"name": "east", "pan_deg": 90.0, "tilt_deg": -45.0, "zoom": 0.25}])
    assert cam.patrol is not None
    driver = OnvifDriver(cam)
    try:
        driver.goto(cam.patrol.presets[0])
        state = virtual.ptz.get_status()
        assert (state["pan"], state["tilt"], state["zoom"]) == pytest.approx((0.5, -0.5, 0.25))
        assert driver.is_moving()  # GetStatus unusable: timed with blind_move_s
        assert driver.status_broken
        time.sleep(0.6)
        assert not driver.is_moving()
    finally:
        driver.close()
    assert "pw-onvif-123" not in caplog.text


def test_goto_preset_token(onvif_camera: tuple[VirtualOnvifCamera, int]) -> None:
    virtual, port = onvif_camera
    virtual.ptz.absolute_move(-0.25, 0.1, 0.5)
    virtual.ptz.set_preset("7", "quarry")
    virtual.ptz.absolute_move(0.0, 0.0, 0.0)
    cam = camera(port, [{"name": "quarry", "onvif_preset_token": "7", "pan_deg": -45.0, "tilt_deg": 9.0}])
    assert cam.patrol is not None
    driver = OnvifDriver(cam)
    try:
        driver.goto(cam.patrol.presets[0])
    finally:
        driver.close()
    state = virtual.ptz.get_status()
    assert (state["pan"], state["tilt"], state["zoom"]) == pytest.approx((-0.25, 0.1, 0.5))


def test_wrong_password_is_a_failed_move_not_a_crash(onvif_camera: tuple[VirtualOnvifCamera, int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = onvif_camera
    monkeypatch.setenv("MW_TEST_ONVIF_PW", "wrong-password")
    cam = camera(port, [{"name": "a", "pan_deg": 10.0, "settle_s": 0.1, "dwell_s": 1.0},
                        {"name": "b", "pan_deg": 20.0, "settle_s": 0.1, "dwell_s": 1.0}])
    pointing = make_pointing(cam)
    assert isinstance(pointing, PatrolController)
    pointing.start()
    try:
        deadline = time.monotonic() + 10
        while pointing.move_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pointing.move_failures >= 1
        assert pointing.pose_at(time.time()) is None  # pose unknown: nothing would be analysed
    finally:
        pointing.stop()


def test_patrol_tour_over_onvif(onvif_camera: tuple[VirtualOnvifCamera, int]) -> None:
    virtual, port = onvif_camera
    cam = camera(port, [{"name": "a", "pan_deg": -90.0, "settle_s": 0.1, "dwell_s": 0.6},
                        {"name": "b", "pan_deg": 90.0, "settle_s": 0.1, "dwell_s": 0.6}])
    pointing = make_pointing(cam)
    assert isinstance(pointing, PatrolController)
    seen: dict[str, float] = {}
    pointing.start()
    try:
        deadline = time.monotonic() + 15
        while len(seen) < 2 and time.monotonic() < deadline:
            aim = pointing.pose_at(time.time())
            if aim is not None and aim[0].preset is not None:
                seen[aim[0].preset] = virtual.ptz.get_status()["pan"]
            time.sleep(0.05)
    finally:
        pointing.stop()
    assert seen == pytest.approx({"a": -0.5, "b": 0.5})  # dwelling where the camera was sent

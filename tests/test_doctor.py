"""``minewatch doctor`` against a reachable and an unreachable broker, and its CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import MqttConfig
from pipeline.doctor import check_broker, check_camera
from tests.conftest import Broker, free_port
from tests.daemon_helpers import ROOT, sample_clip, write_config


def test_broker_reachable(broker: Broker) -> None:
    result = check_broker(MqttConfig(host="127.0.0.1", port=broker.port))
    assert result.status == "ok", result
    assert f"127.0.0.1:{broker.port}: connected" in result.detail


def test_broker_unreachable_says_where_and_what_to_do() -> None:
    port = free_port()
    result = check_broker(MqttConfig(host="127.0.0.1", port=port), timeout_s=2)
    assert result.status == "FAIL"
    assert f"127.0.0.1:{port}: cannot connect" in result.detail
    assert "start the broker" in result.fix


def test_broker_wrong_password_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "edge", "right-password"], check=True)
    b = Broker(tmp_path / "b", extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n").start()
    try:
        monkeypatch.setenv("MW_DOCTOR_PW", "wrong-password")
        cfg = MqttConfig(host="127.0.0.1", port=b.port, username="edge", password_env="MW_DOCTOR_PW")
        result = check_broker(cfg, timeout_s=3)
        assert result.status == "FAIL" and "refused" in result.detail
        assert "wrong-password" not in result.detail
        monkeypatch.setenv("MW_DOCTOR_PW", "right-password")
        assert check_broker(cfg, timeout_s=3).status == "ok"
    finally:
        b.stop()


def test_camera_file_checks(tmp_path: Path) -> None:
    from pipeline.config import CameraConfig

    ok = check_camera(CameraConfig(id="c", source=str(sample_clip(tmp_path)), lat=1, lon=1))
    assert ok.status == "ok" and "1280x720" in ok.detail
    missing = check_camera(CameraConfig(id="c", source=str(tmp_path / "none.mp4"), lat=1, lon=1))
    assert missing.status == "FAIL"


def test_broker_not_required_is_a_warning() -> None:
    port = free_port()
    result = check_broker(MqttConfig(host="127.0.0.1", port=port, required=False), timeout_s=2)
    assert result.status == "warn"
    assert f"127.0.0.1:{port}: cannot connect" in result.detail and "alerts wait in the outbox" in result.detail


@pytest.mark.parametrize(("broker_up", "required"), [(True, True), (False, True), (False, False)])
def test_doctor_cli_exit_code_follows_the_broker(tmp_path: Path, broker_up: bool, required: bool) -> None:
    b = Broker(tmp_path / "b")
    if broker_up:
        b.start()
    try:
        config = write_config(tmp_path, b.port, source=sample_clip(tmp_path))
        config.write_text(config.read_text().replace("mqtt:\n", f"mqtt:\n  required: {str(required).lower()}\n"))
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "doctor", "--config", str(config)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        b.stop()
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = {line.split()[1]: line.split()[0] for line in proc.stdout.splitlines() if line and not line.startswith(" ")}
    assert lines["model"] == "ok", proc.stdout
    assert "rectangular input" in proc.stdout and "inference worker(s)" in proc.stdout, proc.stdout
    assert lines["zones"] == "ok", proc.stdout
    assert lines["broker"] == ("ok" if broker_up else "FAIL" if required else "warn"), proc.stdout
    assert proc.returncode == (0 if broker_up or not required else 1), proc.stdout

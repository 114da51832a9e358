"""``minewatch doctor``: check the environment a config needs, and say what to fix.

Each check prints one line, ``ok``/``FAIL``/``warn``, and for a failure what to do about it. Exit code 0 when
nothing failed, 1 otherwise (2 for an unreadable config, as everywhere).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from pipeline.config import CameraConfig, Config, MqttConfig, load_config
from pipeline.errors import UserError
from pipeline.redact import redact


@dataclass
class Check:
    name: str
    status: str  # ok | FAIL | warn
    detail: str
    fix: str = ""


def check_providers(config: Config) -> Check:
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = [p for p in config.detector.providers if p in available]
    if not wanted:
        return Check("execution providers", "FAIL", f"none of {config.detector.providers} is available "
                     f"(onnxruntime has {available})", "add CPUExecutionProvider to detector.providers")
    missing = [p for p in config.detector.providers if p not in available]
    detail = f"{wanted[0]} will run" + (f"; not available: {', '.join(missing)}" if missing else "")
    fix = "for a GPU: pip install 'minewatch[gpu]' (onnxruntime-gpu) with a matching CUDA" if missing else ""
    return Check("execution providers", "ok", detail, fix)


def check_model(config: Config) -> Check:
    from pipeline.detect.onnx_detector import OnnxDetector

    try:
        det = OnnxDetector(config.detector)
    except UserError as exc:
        return Check("model", "FAIL", str(exc), "point detector.model_path at a YOLO detection ONNX export")
    from pipeline.detect.workers import plan_workers, usable_cores

    names = ", ".join(det.names.values())
    cores = usable_cores()
    workers, threads = plan_workers(config.detector, det.provider != "CPUExecutionProvider", cores)
    shape = "rectangular" if det.rect else "square"
    return Check("model", "ok", f"{config.detector.model_path.name}: {det.input_size_px}px ({shape} input) on"
                 f" {det.provider}, {workers} inference worker(s) × {threads} thread(s) on {cores} core(s);"
                 f" classes {names}")


def check_zones(config: Config) -> Check:
    from pipeline.zones.model import load_zones

    try:
        zones = load_zones(config.zones.dir)
    except UserError as exc:
        return Check("zones", "FAIL", str(exc), "`minewatch zones validate --fix` repairs what is safe")
    if not zones:
        return Check("zones", "warn", f"no zone in {config.zones.dir}: only fire/smoke in view can alert",
                     "`minewatch zones import FILE --crs EPSG:4490`")
    return Check("zones", "ok", f"{len(zones)} zone(s) in {config.zones.dir}")


def check_coverage(config: Config, config_path: Path | None = None) -> Check:
    """Zones no camera watches at the detector's floor (terrain, presets, pixels: `minewatch coverage`)."""
    from pipeline.coverage.cli import Survey

    try:
        survey = Survey(config, config_path)
    except UserError as exc:
        return Check("coverage", "FAIL", str(exc), "fix the zones or terrain.dem_path")
    if not survey.coverage:
        return Check("coverage", "ok", "no zone to watch")
    bad = survey.unwatched()
    if not bad:
        return Check("coverage", "ok", f"every zone ({len(survey.coverage)}) is watched by some camera and preset")
    listed = "; ".join(f"{zc.zone.id}: {zc.verdict}" for zc in bad[:8]) + ("; …" if len(bad) > 8 else "")
    return Check("coverage", "warn", f"{len(bad)} of {len(survey.coverage)} zone(s) not watched: {listed}",
                 "`minewatch coverage --config …` shows why (terrain, presets, zoom) and where a tower would help")


def check_broker(mqtt: MqttConfig, timeout_s: float = 5.0) -> Check:
    """Connect with the configured TLS and credentials and wait for the CONNACK."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    address = f"{mqtt.host}:{mqtt.port}"
    if not mqtt.enabled:
        return Check("broker", "warn", "mqtt.enabled is false: alerts stay in the outbox")
    try:
        password = mqtt.password()
    except UserError as exc:
        return Check("broker", "FAIL", str(exc), "set the variable or file that mqtt.password_* names")
    done = threading.Event()
    result: dict[str, str] = {}

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: object, _p: object = None) -> None:
        result["reason"] = str(reason)
        result["failure"] = "1" if getattr(reason, "is_failure", False) else ""
        done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"minewatch-doctor-{mqtt.box_id}",
                         protocol=paho.MQTTv5)
    if mqtt.username:
        client.username_pw_set(mqtt.username, password)
    if mqtt.tls is not None:
        client.tls_set(ca_certs=str(mqtt.tls.ca_file) if mqtt.tls.ca_file else None,
                       certfile=str(mqtt.tls.cert_file) if mqtt.tls.cert_file else None,
                       keyfile=str(mqtt.tls.key_file) if mqtt.tls.key_file else None)
        client.tls_insecure_set(mqtt.tls.insecure)
    client.on_connect = on_connect
    # mqtt.required false: no broker is a warning (the sample runs without one), a refused login still fails
    missing = "FAIL" if mqtt.required else "warn"
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return Check("broker", missing, f"{address}: cannot connect: {redact(str(exc))}; alerts wait in the outbox",
                     "start the broker, or fix mqtt.host/mqtt.port (alerts wait in the outbox meanwhile)")
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return Check("broker", missing, f"{address}: no CONNACK within {timeout_s:g} s",
                         "check TLS settings (port 8883 wants mqtt.tls) and the network")
    finally:
        client.disconnect()
        client.loop_stop()
    if result.get("failure"):
        return Check("broker", "FAIL", f"{address}: refused: {result['reason']}",
                     "check mqtt.username and the password in mqtt.password_env/password_file")
    return Check("broker", "ok", f"{address}: connected{' with TLS' if mqtt.tls else ''}"
                 f"{' as ' + mqtt.username if mqtt.username else ''}")


def check_broker_queue(mqtt: MqttConfig) -> Check:
    """Does the broker keep a burst of alerts for a console that is away? (Mosquitto's default drops beyond 1000.)"""
    from pipeline.alerts.broker_probe import probe_queue_limit

    if not mqtt.enabled or not port_open(mqtt.host, mqtt.port):
        return Check("broker_queue", "warn", "not checked: no broker reachable")
    probe = probe_queue_limit(mqtt, mqtt.topic_prefix)
    fix = "install scripts/mosquitto/minewatch.conf as /etc/mosquitto/conf.d/minewatch.conf (docs/RELIABILITY.md)"
    return Check("broker_queue", "ok" if probe.status == "ok" else "warn", probe.detail, fix)


def check_camera(cam: CameraConfig, timeout_s: float = 8.0) -> Check:
    from pipeline.sources.video import open_video

    name = f"camera {cam.id}"
    if not cam.enabled:
        return Check(name, "warn", "disabled")
    if not cam.is_rtsp and "://" not in cam.source and not Path(cam.source).is_file():
        return Check(name, "FAIL", f"{cam.source_redacted}: no such file", "fix cameras[].source")
    try:
        with open_video(cam.source, timeout_s, cam.source_redacted) as (container, stream):
            frame = next(container.decode(stream), None)
            if frame is None:
                raise UserError(cam.source_redacted, None, "a decodable frame", "none")
            return Check(name, "ok", f"{cam.source_redacted}: {frame.width}x{frame.height} "
                         f"{stream.codec_context.name} {float(stream.average_rate or 0):.3g} fps")
    except UserError as exc:  # its text names the source (credentials masked) and what PyAV said
        return Check(name, "FAIL", str(exc),
                     "check the camera's address, credentials and that port 554 is reachable")


def run_checks(config: Config, skip_cameras: bool = False, config_path: Path | None = None) -> list[Check]:
    checks: list[Callable[[], Check]] = [
        lambda: check_providers(config),
        lambda: check_model(config),
        lambda: check_zones(config),
        lambda: check_coverage(config, config_path),
        lambda: check_broker(config.mqtt),
        lambda: check_broker_queue(config.mqtt),
    ]
    if not skip_cameras:
        checks += [partial(check_camera, cam) for cam in config.cameras]
    results = []
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # a doctor must report, not crash
            results.append(Check("internal", "FAIL", redact(f"{type(exc).__name__}: {exc}")))
    return results


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="minewatch doctor", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--config", default="cameras.yaml")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--skip-cameras", action="store_true", help="do not open the cameras")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    results = run_checks(config, args.skip_cameras, Path(args.config))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False))
    else:
        for r in results:
            print(f"{r.status:<4}  {r.name:<20} {r.detail}")
            if r.fix and r.status != "ok":
                print(f"{'':<26}→ {r.fix}")
    return 1 if any(r.status == "FAIL" for r in results) else 0

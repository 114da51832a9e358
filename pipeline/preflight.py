"""What ``minewatch run`` would refuse, found before any camera or broker is opened.

``minewatch config check`` runs every check (it loads the model and the terrain, as the daemon would);
the daemon runs the cheap ones (files, footage, zones, reference images) and leaves the model and the
terrain to the constructors that load them next. Each problem is one line (a :class:`UserError`); all
of them are reported together (:class:`Problems`), so that one round of fixes is enough.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pipeline.config import CameraConfig, Config
from pipeline.errors import Problems, UserError


def check_model(config: Config) -> None:
    """The detector loads the model as the daemon would (one thread, no summary line)."""
    from pipeline.detect.onnx_detector import OnnxDetector

    OnnxDetector(config.detector, intra_op_threads=1, announce=False)


def check_model_file(config: Config, config_path: str) -> None:
    if not config.detector.model_path.is_file():
        raise UserError(config_path, "detector.model_path", "an existing ONNX model file",
                        str(config.detector.model_path))


def check_footage(cam: CameraConfig, index: int, config_path: str) -> None:
    """A file source exists and holds a decodable video track (a README or an audio file does not)."""
    import av
    import av.error

    field = f"cameras[{index}] (id={cam.id}).source"
    if cam.is_rtsp or "://" in cam.source:
        return
    if not Path(cam.source).is_file():
        raise UserError(config_path, field, "an rtsp:// URL or an existing video file", cam.source)
    try:
        with av.open(cam.source) as container:
            if not container.streams.video:
                raise UserError(config_path, field, "a video file (it has no video track)", cam.source)
            next(container.decode(container.streams.video[0]))
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UserError(config_path, field, "a video file", f"{cam.source} ({reason})") from None
    except StopIteration:
        raise UserError(config_path, field, "a video file with frames", f"{cam.source} (no frame decodes)") from None


def check_zones(config: Config) -> None:
    from pipeline.zones.model import load_zones

    load_zones(config.zones.dir)


def check_references(cam: CameraConfig) -> None:
    from pipeline.sources import make_view_guard

    make_view_guard(cam)


def check_terrain(config: Config) -> None:
    from pipeline.geo.terrain import Terrain

    Terrain.from_config(config.terrain)


def check_mqtt(config: Config) -> None:
    """TLS files and the password's source (the broker itself is `doctor`'s business)."""
    mq = config.mqtt
    if not mq.enabled:
        return
    if mq.tls is not None:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(mq.tls, name)
            if path is not None and not Path(path).is_file():
                raise UserError(str(path), f"mqtt.tls.{name}", "an existing PEM file", "no such file")
    if mq.username:
        mq.password()


def check_outbox(config: Config) -> None:
    """The outbox's folder exists and is writable, or can be made (nothing is created here)."""
    folder = config.alerts.outbox_path.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(str(config.alerts.outbox_path), "alerts.outbox_path", "a folder that can be written",
                        f"{probe} is not writable")


def find_problems(config: Config, config_path: str, *, load: bool) -> list[UserError]:
    """Every problem ``run`` would refuse; ``load`` also loads the model and the terrain."""
    checks: list[Callable[[], None]] = [
        partial(check_model, config) if load else partial(check_model_file, config, config_path)]
    for i, cam in enumerate(config.cameras):
        if cam.enabled:
            checks += [partial(check_footage, cam, i, config_path), partial(check_references, cam)]
    checks += [partial(check_zones, config), partial(check_mqtt, config), partial(check_outbox, config)]
    if load:
        checks.append(partial(check_terrain, config))
    problems: list[UserError] = []
    for check in checks:
        try:
            check()
        except UserError as exc:
            problems.append(exc)
        except Problems as exc:
            problems.extend(exc.errors)
    return problems

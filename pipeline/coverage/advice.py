"""The coverage figures for one camera and preset, as `minewatch zones test` and the daemon's patrol use them:
the same rows as `minewatch coverage` (pixels on target, verdict, the widest hfov that keeps the zones'
targets above the detector's floor), computed for just the presets at hand."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import CameraConfig, Config
from pipeline.coverage.analysis import Row, look, sample_zone, zone_row
from pipeline.coverage.floor import SizeFloor, size_floor
from pipeline.geo.camera import CameraModel
from pipeline.logs import get_logger
from pipeline.types import Pose
from pipeline.zones.model import Zone
from pipeline.zones.validate import camera_poses


def size_check(
    config: Config,
    cam: CameraConfig,
    poses: Sequence[Pose],
    zones: Sequence[Zone],
    terrain: Any,
    config_path: Path | None = None,
    floor: SizeFloor | None = None,
) -> tuple[SizeFloor, list[Row]]:
    """Rows (zone × pose) of the zones each pose has in view (see :mod:`pipeline.coverage.analysis`)."""
    floor = floor or size_floor(config, config_path)
    model = CameraModel.from_config(cam, terrain)
    cov = config.coverage
    rows: list[Row] = []
    for zone in zones:
        samples = sample_zone(zone, cov.sample_step_m)
        tl = look(model, samples.lat, samples.lon, cov.above_ground_m)
        for pose in poses:
            row = zone_row(samples, model, tl, pose, cov, floor)
            if row.verdict != "not in view":
                rows.append(row)
    return floor, rows


def row_line(row: Row) -> str:
    """One line a person reads: zone, pixels at the far end of its watched part, verdict."""
    sizes = ", ".join(f"{c} {px:.1f} px" for c, px in row.px.items())
    where = f"preset {row.preset}: " if row.preset else ""
    return (f"{where}zone {row.zone_id}: {sizes} at {row.distance_m / 1000:.2f} km (hfov {row.hfov_deg:g}°,"
            f" {row.visible_share * 100:.0f} % of the part in view visible) → {row.verdict_text}")


def log_patrol_advice(
    config: Config, zones: Sequence[Zone], terrain: Any, config_path: Path | None = None
) -> threading.Thread:
    """Warn, once at start-up, about every preset whose zones are too small for the detector at its zoom
    (or hidden by terrain). Runs on its own thread: it casts rays over every zone and must not delay the
    cameras; a failure is logged, never raised."""
    log = get_logger("coverage")

    def work() -> None:
        try:
            floor = size_floor(config, config_path)
            for cam in config.cameras:
                if not cam.enabled:
                    continue
                _, rows = size_check(config, cam, camera_poses(cam), zones, terrain, config_path, floor)
                for row in rows:
                    if row.verdict in ("too small", "occluded"):
                        log.warning("camera %s %s (floor from %s)", cam.id, row_line(row), floor.source)
        except Exception as exc:  # advice only: never let it stop the daemon
            log.warning("coverage advice skipped: %s: %s", type(exc).__name__, exc)

    thread = threading.Thread(target=work, name="coverage-advice", daemon=True)
    thread.start()
    return thread

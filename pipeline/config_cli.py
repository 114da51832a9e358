"""``minewatch config check FILE``."""

from __future__ import annotations

import argparse

from pipeline.config import Config, load_config
from pipeline.errors import raise_all
from pipeline.preflight import find_problems


def summary(config: Config) -> str:
    lines = [f"{len(config.cameras)} camera(s):"]
    for cam in config.cameras:
        lines.append(
            f"  {cam.id:<12} {cam.name or '-':<20} {cam.source_redacted}  tower {cam.lat:.5f},{cam.lon:.5f}"
            f" +{cam.mast_height_m:g} m  pan {cam.pan_deg:g}° tilt {cam.tilt_deg:g}° hfov {cam.hfov_deg:g}°"
            f"  {cam.analysis_fps:g} fps{'' if cam.enabled else '  (disabled)'}"
        )
    det = config.detector
    lines.append(
        f"detector: {det.model_path}  providers {', '.join(det.providers)}"
        f"  batch ≤{det.batch_max or 'auto'}  workers {det.workers or 'auto'}"
        f"  thresholds default {det.score_threshold.default:g}"
    )
    mq = config.mqtt
    auth = f" user {mq.username}" if mq.username else ""
    lines.append(
        f"mqtt: {'on' if mq.enabled else 'off'}  {mq.host}:{mq.port}  topics {mq.topic_prefix}/{mq.box_id}/…"
        f"  qos {mq.qos}{'  tls' if mq.tls else ''}{auth}"
    )
    al = config.alerts
    lines.append(
        f"alerts: confirm {al.confirm_hits} of {al.confirm_window} frames, end after {al.end_after_s:g} s,"
        f" outbox {al.outbox_path}, snapshots {al.snapshot_dir}"
    )
    lines.append(f"zones: {config.zones.dir}")
    return "\n".join(lines)


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="minewatch config", description="Check a config file.")
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate FILE and the files it names (model, footage, zones, reference"
                           " images, terrain) and print a summary; exit 2 on a mistake")
    check.add_argument("file", help="cameras.yaml")
    args = parser.parse_args(argv)
    config = load_config(args.file)
    # everything `run` would refuse (model, footage, zones, reference images, terrain, TLS files), together
    raise_all(find_problems(config, args.file, load=True))
    print(f"{args.file}: OK")
    print(summary(config))
    return 0

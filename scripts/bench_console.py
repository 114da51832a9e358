#!/usr/bin/env python3
"""Measure the console's ingest: events (+ snapshots) per second into the register, and publish→stored latency.

    .venv/bin/python scripts/bench_console.py --events 1000 --consoles 1 2 --snapshot-kb 50

Starts its own Mosquitto on a free loopback port (Debian's `mosquitto`), one or more console Ingestors of one
share group on one SQLite register, publishes N event messages (and N JPEG-sized snapshots) at QoS 1 as fast
as paho takes them, and waits until the register holds them all. Prints one line per run and, with --json,
the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.console.config import ConsoleMqttConfig  # noqa: E402
from pipeline.console.ingest import Ingestor  # noqa: E402
from pipeline.console.store import Store  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event(i: int, t: float) -> dict[str, Any]:
    return {
        "schema": "minewatch.event/1",
        "type": "new",
        "alert_id": f"bench-{i}",
        "seq": 1,
        "box_id": f"edge-{i % 8}",
        "camera": {
            "id": "cam1",
            "name": "bench",
            "lat": 38.7,
            "lon": 111.6,
            "preset": None,
            "pan_deg": 0.0,
            "tilt_deg": -5.0,
            "hfov_deg": 60.0,
        },
        "class": "excavator",
        "rule": "closed_mine",
        "score": 0.9,
        "xyxy": [1, 2, 3, 4],
        "image_wh": [1920, 1080],
        "zone": {
            "id": "z",
            "name": "z",
            "kind": "closed_mine",
            "township": "t",
            "responsible": {"name": "n", "phone": "p"},
            "distance_to_boundary_m": 3.0,
        },
        "location": {
            "lat": 38.71,
            "lon": 111.61,
            "lat_gcj02": 38.71,
            "lon_gcj02": 111.61,
            "elevation_m": 0.0,
            "range_m": 500.0,
            "bearing_deg": 10.0,
            "ellipse_90": {"semi_major_m": 30.0, "semi_minor_m": 8.0, "orientation_deg": 10.0},
            "probability_in_zone": 0.9,
            "cameras": ["cam1"],
        },
        "t_first": iso(t),
        "t_last": iso(t),
        "t_event": iso(t),
        "snapshot": None,
    }


def run(n_events: int, n_consoles: int, snapshot_kb: int, workdir: Path, rate: float = 0.0) -> dict[str, Any]:
    port = free_port()
    (workdir / "persist").mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n")
    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    url = f"sqlite:///{workdir / 'register.sqlite'}"
    consoles = []
    try:
        for k in range(n_consoles):
            cfg = ConsoleMqttConfig(
                host="127.0.0.1",
                port=port,
                client_id=f"bench-console-{k}",
                topic_prefix="bench",
                share_group="bench",
                reconnect_max_s=1,
                check_queue=False,  # the queue probe's 1050 messages would load the broker during the run
            )
            ing = Ingestor(cfg, Store(url))
            ing.start()
            if not ing.connected.wait(10):
                raise RuntimeError("console did not connect")
            consoles.append(ing)
        time.sleep(0.3)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
        pub.max_queued_messages_set(0)
        pub.max_inflight_messages_set(100)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        jpeg = b"\xff\xd8" + b"\x00" * (snapshot_kb * 1024)
        sent: dict[str, float] = {}
        t0 = time.monotonic()
        infos = []
        for i in range(n_events):
            if rate > 0:  # paced: latency without a backlog
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            t = time.time()
            sent[f"bench-{i}"] = t
            infos.append(pub.publish(f"bench/edge-{i % 8}/events", json.dumps(event(i, t)), qos=1))
            if snapshot_kb:
                infos.append(pub.publish(f"bench/edge-{i % 8}/snapshots/bench-{i}", jpeg, qos=1))
        for info in infos:
            info.wait_for_publish(60)
        publish_s = time.monotonic() - t0
        store = consoles[0].store
        want = {"alerts": n_events, "messages": n_events, "snapshots": n_events if snapshot_kb else 0}
        deadline = time.monotonic() + 600
        while store.counts() != want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"stored {store.counts()} of {want}")
            time.sleep(0.05)
        total_s = time.monotonic() - t0
        with store.db.tx(write=False) as cur:
            rows = cur.all("SELECT alert_id, received_at FROM messages")
        lat_ms = sorted(
            (datetime.fromisoformat(r["received_at"].replace("Z", "+00:00")).timestamp() - sent[r["alert_id"]]) * 1e3
            for r in rows
        )
        pub.loop_stop()
        return {
            "events": n_events,
            "consoles": n_consoles,
            "snapshot_kb": snapshot_kb,
            "rate": rate or "max",
            "per_console": [c.stats.events for c in consoles],
            "publish_s": round(publish_s, 2),
            "all_stored_s": round(total_s, 2),
            "events_per_s": round(n_events / total_s, 1),
            "latency_ms_p50": round(statistics.median(lat_ms), 1),
            "latency_ms_p95": round(lat_ms[int(0.95 * (len(lat_ms) - 1))], 1),
        }
    finally:
        for c in consoles:
            c.stop()
        broker.terminate()
        broker.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--consoles", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--snapshot-kb", type=int, default=50, help="size of each snapshot message; 0 sends none")
    ap.add_argument("--rate", type=float, default=0.0, help="events per second to publish; 0 = as fast as possible")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for n in args.consoles:
        with tempfile.TemporaryDirectory(prefix="mw-bench-console-") as tmp:
            r = run(args.events, n, args.snapshot_kb, Path(tmp), args.rate)
        results.append(r)
        print(
            f"{r['consoles']} console(s), {r['events']} events + {r['snapshot_kb']} KiB snapshots at rate"
            f" {r['rate']}: all stored in"
            f" {r['all_stored_s']} s ({r['events_per_s']} events/s), publish→stored p50 {r['latency_ms_p50']} ms,"
            f" p95 {r['latency_ms_p95']} ms, split {r['per_console']}"
        )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

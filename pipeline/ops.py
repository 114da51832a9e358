"""Operations: ``/health`` (JSON) and ``/metrics`` (Prometheus) over HTTP, and systemd notification.

The counters live where the work happens (sources, detector loop, sink, relay); this module only reads
them at scrape time through a custom collector, so the hot path pays nothing for metrics.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.logs import get_logger

log = get_logger("ops")

#: health() snapshot keys of a source that become per-camera counters/gauges, when the source reports them.
CAMERA_COUNTERS = {
    "frames_in_total": "Frames received from the camera.",
    "frames_analysed_total": "Frames handed to the detector.",
    "frames_dropped_total": "Frames overwritten in the latest-frame slot before the detector took them.",
    "reconnects_total": "Reconnections to the camera.",
    "stalls_total": "Times the watchdog found the stream stalled.",
    "decode_errors_total": "Packets the decoder could not decode.",
    "frames_concealed_total": "Frames the decoder concealed (or predicted from one): never analysed.",
    "tours_total": "Patrol tours completed (all presets visited once).",
    "looks_total": "Looks closer started (docs/PATROL.md).",
    "looks_confirmed_total": "Looks closer that confirmed their candidate with an alert.",
    "looks_rejected_total": "Looks closer that found no alert in their frames.",
    "looks_timed_out_total": "Looks closer ended by max_dwell_s before the analysis decided.",
    "looks_refused_total": "Looks asked while the patrol could not take one (busy, moving, tour limit).",
    "look_candidates_total": "Frames with a candidate for a look closer.",
    "looks_skipped_cooldown_total": "Candidates not looked at: a look at the same place within cooldown_s.",
    "looks_skipped_alert_open_total": "Candidates not looked at: an alert of the camera was open.",
}
CAMERA_GAUGES = {
    "fps_in": "Current input frames per second.",
    "fps_analysed": "Current analysed frames per second.",
    "lag_s": "Age of the latest analysed frame when the detector took it, seconds.",
}


def _number(value: object) -> float | None:
    """A health value as a sample, or None when the camera has not reported it yet (None, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class PipelineCollector(Collector):
    """Reads the live counters of a running :class:`~pipeline.daemon.Daemon` at scrape time."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snap = self._snapshot()
        for key, help_ in CAMERA_COUNTERS.items():
            fam = CounterMetricFamily(f"minewatch_camera_{key.removesuffix('_total')}", help_, labels=["camera"])
            for cam, health in snap["cameras"].items():
                value = _number(health.get(key))
                if value is not None:
                    fam.add_metric([cam], value)
            yield fam
        for key, help_ in CAMERA_GAUGES.items():
            fam_g = GaugeMetricFamily(f"minewatch_camera_{key}", help_, labels=["camera"])
            for cam, health in snap["cameras"].items():
                value = _number(health.get(key))
                if value is not None:  # no frame yet (lag_s None): no sample, as Prometheus wants
                    fam_g.add_metric([cam], value)
            yield fam_g
        online = GaugeMetricFamily("minewatch_camera_online", "1 when the camera delivers frames.", labels=["camera"])
        for cam, health in snap["cameras"].items():
            online.add_metric([cam], 1.0 if health.get("status") == "online" else 0.0)
        yield online
        alerts = CounterMetricFamily("minewatch_alert_events", "Alert events raised.", labels=["camera", "type"])
        for (cam, kind), count in sorted(snap["events"].items()):
            alerts.add_metric([cam, kind], float(count))
        yield alerts
        yield GaugeMetricFamily("minewatch_outbox_depth", "Messages waiting in the outbox for a PUBACK.",
                                value=math.nan if snap["outbox_depth"] is None else float(snap["outbox_depth"]))
        yield GaugeMetricFamily("minewatch_broker_connected", "1 while connected to the MQTT broker.",
                                value=1.0 if snap["broker_connected"] else 0.0)
        yield CounterMetricFamily("minewatch_frames_analysed", "Frames analysed, all cameras.",
                                  value=float(snap["frames"]))


class Metrics:
    """The histograms the hot path observes directly (cheap: one bucket increment)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.inference_s = Histogram(
            "minewatch_inference_seconds", "Detector time per batch.", registry=registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))
        self.batch_size = Histogram("minewatch_batch_size", "Frames per inference batch.", registry=registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64))
        self.frame_lag_s = Histogram(
            "minewatch_frame_lag_seconds", "Age of a frame (since its capture) when its detections are ready.",
            registry=registry, buckets=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0))
        self.alert_latency_s = Histogram(
            "minewatch_alert_latency_seconds",
            "From the capture of the frame behind an alert (its t_last) to the broker's PUBACK of its"
            " new/update message; messages re-sent after an outage count their whole wait.",
            registry=registry, buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 60.0))


class OpsServer:
    """``GET /health`` → JSON (HTTP 200 when healthy, 503 when not); ``GET /metrics`` → Prometheus text."""

    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any]],
                 registry: CollectorRegistry) -> None:
        registry_ = registry
        health_ = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                try:
                    if path == "/metrics":
                        body, ctype, code = generate_latest(registry_), "text/plain; version=0.0.4", 200
                    elif path in ("/health", "/healthz"):
                        report = health_()
                        body = json.dumps(report, indent=2, ensure_ascii=False).encode()
                        ctype, code = "application/json", 200 if report.get("healthy") else 503
                    else:
                        body, ctype, code = b"not found: try /health or /metrics\n", "text/plain", 404
                except Exception as exc:  # a bug in a reader: answer 500 and log one line, never drop the socket
                    log.error("%s failed: %s: %s", path, type(exc).__name__, exc)
                    body, ctype, code = f"internal error: {type(exc).__name__}\n".encode(), "text/plain", 500
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
                log.debug("http %s", format % args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ops-http", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("health and metrics on http://%s:%d/health and /metrics", self.httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SystemdNotifier:
    """``sd_notify`` without a dependency: READY=1 once, WATCHDOG=1 from the analysis loop, STOPPING=1."""

    def __init__(self) -> None:
        self._addr = os.environ.get("NOTIFY_SOCKET")
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_interval_s = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._last = 0.0

    def _send(self, message: str) -> None:
        if not self._addr:
            return
        addr = "\0" + self._addr[1:] if self._addr.startswith("@") else self._addr
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), addr)
            except OSError as exc:
                log.warning("systemd notify failed: %s", exc)

    def ready(self) -> None:
        self._send("READY=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        """Call from the analysis loop: a hung loop stops the pings and systemd restarts the daemon."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last >= self.watchdog_interval_s:
            self._last = now
            self._send("WATCHDOG=1")

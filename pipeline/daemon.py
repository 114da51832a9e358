"""``minewatch run``: wire the stages together and run until SIGINT/SIGTERM.

Threads: one reader per camera (pipeline.sources), the inference workers (batcher → detector, one
onnxruntime session each: pipeline.detect.workers), this analysis loop (results in batch order → analyzer
→ alert sink, all per-camera state on this one thread), and the MQTT relay (paho's network loop plus the
outbox thread). Alerts wait only in the SQLite outbox: a clean stop leaves unsent ones there for the
next start.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline.config import Config, load_config
from pipeline.errors import UserError, raise_all
from pipeline.logs import get_logger, setup_logging
from pipeline.types import AlertEvent, Detections, Frame

log = get_logger("daemon")

#: an inference call running longer than this counts as hung: the daemon stops its systemd watchdog pings
#: (the unit's WatchdogSec=60 then restarts it) and /health reports the detector stalled
INFERENCE_HUNG_S = 30.0


@dataclass
class Stats:
    batches: int = 0
    frames: int = 0
    events: int = 0
    analysis_errors: int = 0
    inference_s: float = 0.0
    started_s: float = field(default_factory=time.monotonic)
    #: recent (capture → analysed, received → analysed) ages in seconds, for /health and the benchmarks
    lag_s: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))


def check_inputs(config: Config, config_path: str) -> None:
    """What the run cannot start without, all of it, one line each (exit 2), before anything is opened;
    the model and the terrain are checked by the constructors that load them next."""
    from pipeline.preflight import find_problems

    raise_all(find_problems(config, config_path, load=False))


class Daemon:
    """The running pipeline. ``run()`` blocks until ``stop()`` or, for recorded files, their end."""

    def __init__(self, config: Config, config_path: str = "cameras.yaml", *, exit_at_eof: bool = True) -> None:
        from pipeline.alerts import AlertSink, Outbox, Relay
        from pipeline.analyzer import Analyzer
        from pipeline.detect.batcher import Batcher
        from pipeline.detect.workers import InferencePool, make_detectors
        from pipeline.sources import make_source
        from pipeline.zones.model import load_zones

        check_inputs(config, config_path)
        self.config = config
        self.config_path = config_path
        self.exit_at_eof = exit_at_eof
        self.stop_event = threading.Event()
        self.stats = Stats()
        self.zones = load_zones(config.zones.dir)
        log.info("%d zone(s) loaded from %s", len(self.zones), config.zones.dir)
        self.detectors = make_detectors(config.detector)
        self.detector = self.detectors[0]
        self.outbox = Outbox(config.alerts.outbox_path)
        self._outbox_errors: set[str] = set()  # reasons the outbox depth could not be read, logged once each
        self.sink = AlertSink(config, self.outbox)
        self.relay: Any = Relay(config.mqtt, self.outbox) if config.mqtt.enabled else None
        self.analyzer = Analyzer(config, self.zones)
        if self.zones and any(c.enabled and c.patrol is not None for c in config.cameras):
            from pipeline.coverage.advice import log_patrol_advice  # presets too wide for their zones: warn

            log_patrol_advice(config.model_copy(update={"cameras": [c for c in config.cameras if c.patrol]}),
                              self.zones, self.analyzer.terrain, Path(config_path))
        self._restored_ends = self._restore_open_events()
        from pipeline.detect.path import InferencePath

        self.path = InferencePath(config.cameras, config.detector.iou_threshold,
                                  {cid: st.model for cid, st in self.analyzer.cameras.items()}, self.zones)
        harvest = config.harvest
        self.harvester: Any = None
        self.score_floor: float | None = None
        if harvest.enabled:
            from pipeline.detect.harvest import Harvester

            self.harvester = Harvester(harvest, config.detector.score_threshold)
            if harvest.low_score:
                self.score_floor = harvest.low_score_min
        self.sources = {
            cam.id: make_source(cam, on_status=self._on_status) for cam in config.cameras if cam.enabled
        }
        self.lookers = self._make_lookers()
        if self.lookers:  # candidates below the alert thresholds must reach the look-closer
            floor = min(lk.cfg.look_score for lk in self.lookers.values())
            self.score_floor = floor if self.score_floor is None else min(self.score_floor, floor)
        from prometheus_client import CollectorRegistry

        from pipeline.ops import Metrics, PipelineCollector, SystemdNotifier

        self.registry = CollectorRegistry()
        self.registry.register(PipelineCollector(self.snapshot))
        self.metrics = Metrics(self.registry)
        if self.relay is not None:
            self.relay.on_ack_latency = self.metrics.alert_latency_s.observe
        self.notifier = SystemdNotifier()
        self.ops_server: Any = None
        self.event_counts: dict[tuple[str, str], int] = {}
        on_cpu = self.detector.provider == "CPUExecutionProvider"
        self.batch_max = config.detector.batch_max or (1 if on_cpu else 8)
        self.batcher = Batcher(
            {cid: src.slot for cid, src in self.sources.items()},
            self.batch_max,
            config.detector.batch_wait_ms / 1000.0,
        )
        self.pool = InferencePool(self.batcher, [partial(self._detect, d) for d in self.detectors],
                                  self.stop_event)

    def _make_lookers(self) -> dict[str, Any]:
        """A look-closer for every patrolling camera with ``patrol.look.enabled`` (docs/PATROL.md)."""
        from pipeline.look import LookCloser
        from pipeline.sources import PatrolController

        lookers: dict[str, Any] = {}
        thresholds = self.config.detector.score_threshold
        for cid, src in self.sources.items():
            cam = src.cam
            if cam.patrol is None or not cam.patrol.look.enabled or not isinstance(src.pointing, PatrolController):
                continue
            lookers[cid] = LookCloser(cam, cam.patrol.look, src.pointing, self.analyzer.cameras[cid].model,
                                      thresholds.for_class, self.config.alerts.confirm_hits)
        return lookers

    # -- health and metrics (read from the HTTP thread; plain reads of counters, no locks needed) ----------
    def snapshot(self) -> dict[str, Any]:
        cameras = {}
        for cid, src in self.sources.items():
            try:
                cameras[cid] = dict(src.health())
            except Exception as exc:  # a source must never break /metrics
                cameras[cid] = {"status": "unknown", "error": str(exc)}
        return {
            "cameras": cameras,
            "events": dict(self.event_counts),
            "outbox_depth": self._pending(),
            "broker_connected": bool(getattr(self.relay, "connected", False)),
            "frames": self.stats.frames,
        }

    def health(self) -> dict[str, Any]:
        snap = self.snapshot()
        stale_s = self.config.ops.stale_frame_s
        cams = {}
        for cid, h in snap["cameras"].items():
            age = h.get("last_frame_age_s")
            ok = h.get("status") == "online" and (age is None or age <= stale_s)
            cams[cid] = {"ok": ok, **h}
        broker = {"enabled": self.relay is not None, "required": self.config.mqtt.required,
                  "connected": snap["broker_connected"]}
        if self.relay is not None:
            broker["address"] = f"{self.config.mqtt.host}:{self.config.mqtt.port}"
        longest_run_s = self.pool.longest_run_s()
        healthy = all(c["ok"] or c.get("status") == "finished" for c in cams.values()) and (
            self.relay is None or snap["broker_connected"] or not self.config.mqtt.required
        ) and longest_run_s < INFERENCE_HUNG_S and snap["outbox_depth"] is not None
        return {
            "healthy": healthy,
            "cameras": cams,
            "detector": {"model": str(self.config.detector.model_path), "provider": self.detector.provider,
                         "input_size_px": self.detector.input_size_px, "batches": self.stats.batches,
                         "workers": self.pool.workers, "threads_per_worker": self.detector.intra_op_threads,
                         "batch_max": self.batch_max, "longest_run_s": round(longest_run_s, 3)},
            "broker": broker,
            "outbox_depth": snap["outbox_depth"],
            "zones": len(self.zones),
            "uptime_s": round(time.monotonic() - self.stats.started_s, 1),
        }

    # -- callbacks from other threads ---------------------------------------------------------------
    def _on_status(self, camera_id: str, status: str, detail: dict[str, Any]) -> None:
        if self.relay is not None:
            self.relay.publish_status(camera_id, status, detail)

    # -- lifecycle -----------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    def reload_zones(self) -> bool:
        """Load the zone files again; a bad file is rejected with one line and the old zones stay."""
        from pipeline.zones.model import load_zones

        try:
            zones = load_zones(self.config.zones.dir)
        except UserError as exc:
            log.error("zones not reloaded, the old ones stay in force: %s", exc)
            return False
        self.zones = zones
        self.analyzer.reload_zones(zones)
        self.path.set_zones(zones)
        log.info("zones reloaded: %d zone(s)", len(zones))
        return True

    def _restore_open_events(self) -> list[AlertEvent]:
        """The events the last run left open (it died): open again under their ids (a sighting continues
        them), or their ``end`` when their camera or zone is gone (emitted once the run starts)."""
        from pipeline.events.persist import state_event

        events: list[AlertEvent] = []
        for alert_id, text in self.outbox.open_events():
            try:
                events.append(state_event(alert_id, text))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("open event %s of the last run cannot be read back (%s): forgotten", alert_id, exc)
                self.outbox.forget_open_event(alert_id)
        ends = self.analyzer.restore(events)
        if events:
            log.info("%d event(s) were open when the last run stopped: %d continue under their ids until"
                     " seen or ended, %d end now (camera or zone gone)", len(events), len(events) - len(ends),
                     len(ends))
        return ends

    def _emit(self, events: list[AlertEvent]) -> None:
        for event in events:
            alert_id = self.sink.submit(event)
            self.stats.events += 1
            key = (event.camera_id, event.type)
            self.event_counts[key] = self.event_counts.get(key, 0) + 1
            if self.config.alerts.print_alerts:
                zone = event.zone.id if event.zone else "-"
                where = f"{event.fix.lat:.6f},{event.fix.lon:.6f}" if event.fix else "no ground fix"
                get_logger("alerts", event.camera_id).info(
                    "ALERT %s %s %s rule=%s zone=%s score=%.2f at %s", event.type, alert_id, event.class_name,
                    event.rule, zone, event.score, where)
        if events and self.relay is not None:
            self.relay.wake()

    def _detect(self, detector: Any, batch: list[Frame]) -> list[Detections]:
        """One inference call for the batch, on an inference worker's thread with its own detector;
        cameras with ``tiling`` are sliced into tiles in the same call (only where a key zone lies in the
        view with ``tiling.zones_only``): :class:`pipeline.detect.path.InferencePath`, shared with the evaluation.

        With low-score harvesting on, untiled batches keep detections down to ``harvest.low_score_min``
        (the analyzer still sees only those above the thresholds)."""
        return self.path.run(detector, batch, score_floor=self.score_floor)

    def _analyse(self, frame: Frame, dets: Detections, all_dets: Detections | None = None) -> list[AlertEvent]:
        """One frame through the analyzer (and the look-closer, which sees ``all_dets``, the low scores
        too); a fault in it costs that frame, never the daemon (logged, counted)."""
        try:
            events = self.analyzer.process(frame, dets)
            looker = self.lookers.get(frame.camera_id)
            if looker is not None:
                state = self.analyzer.cameras[frame.camera_id]
                looker.observe(frame, dets if all_dets is None else all_dets, events, len(state.events.events),
                               state.events.rules)
        except Exception:
            self.stats.analysis_errors += 1
            if self.stats.analysis_errors <= 3 or self.stats.analysis_errors % 100 == 0:
                get_logger("analyzer", frame.camera_id).exception(
                    "analysis of frame %d failed (%d so far); the daemon carries on", frame.seq,
                    self.stats.analysis_errors)
            return []
        self._emit(events)
        return events

    def _for_harvest(self, det: Detections, shown: Detections) -> Detections:
        """What the harvester is owed: its own low-score floor, not the look-closer's lower one."""
        if not self.lookers:
            return det
        harvest = self.config.harvest
        return det.subset(det.score >= harvest.low_score_min) if harvest.low_score else shown

    def _sources_done(self) -> bool:
        return all(src.finished for src in self.sources.values())

    def _all_done(self) -> bool:
        """Every recorded file ended and every frame taken from it has been analysed."""
        with self.batcher.lock:
            return self._sources_done() and self.pool.drained()

    def _consume(self, frames: list[Frame], dets: list[Detections], inference_s: float) -> None:
        """One batch's detections through the per-camera analysis (this thread only)."""
        self.stats.inference_s += inference_s
        self.metrics.inference_s.observe(inference_s)
        self.metrics.batch_size.observe(len(frames))
        done = time.time()
        for frame in frames:
            lag = done - frame.t_capture
            self.stats.lag_s.append((lag, done - (frame.t_received or frame.t_capture)))
            self.metrics.frame_lag_s.observe(lag)
        self.stats.batches += 1
        self.stats.frames += len(frames)
        for frame, det in zip(frames, dets, strict=True):
            shown = self.detector.above_threshold(det) if self.score_floor is not None else det
            events = self._analyse(frame, shown, det)
            if self.harvester is not None:
                self.harvester.consider(frame, self._for_harvest(det, shown), events)

    def run(self) -> int:
        if self.config.ops.http_port is not None:
            from pipeline.ops import OpsServer

            try:
                self.ops_server = OpsServer(self.config.ops.http_host, self.config.ops.http_port, self.health,
                                            self.registry).start()
            except OSError as exc:  # the port is taken: run on, without the endpoints
                log.error("no /health and /metrics: cannot listen on %s:%s (%s); change ops.http_port",
                          self.config.ops.http_host, self.config.ops.http_port, exc.strerror or exc)
        if self.relay is not None:
            self.relay.start()
        for src in self.sources.values():
            src.start()
        log.info("running: %d camera(s), detector %s on %s", len(self.sources), self.detector.input_size_px,
                 self.detector.provider)
        last_tick = time.monotonic()
        hung_logged = False
        self.notifier.ready()
        self._emit(self._restored_ends)
        try:
            self.pool.start()
            while not self.stop_event.is_set():
                result = self.pool.next_result(0.25)
                if result is not None:
                    if result.error is not None:  # as fatal as it was on this thread: systemd restarts us
                        raise result.error
                    self._consume(result.frames, result.dets, result.inference_s)
                hung_s = self.pool.longest_run_s()
                if hung_s < INFERENCE_HUNG_S:
                    self.notifier.watchdog()
                    hung_logged = False
                elif not hung_logged:
                    hung_logged = True
                    log.error("an inference call has not returned for %.0f s: systemd watchdog pings stop (the"
                              " unit restarts the daemon)", hung_s)
                now = time.monotonic()
                if now - last_tick >= 1.0:
                    last_tick = now
                    self._emit(self.analyzer.tick(time.time()))
                if result is None and self.exit_at_eof and self._all_done():
                    log.info("all recorded sources ended")
                    self._emit(self.analyzer.finish(time.time()))
                    break
            else:  # a clean stop (SIGINT/SIGTERM): every open event ends, its `end` waits in the outbox
                self._emit(self.analyzer.finish(time.time(), reason="stopped"))
        finally:
            self.stop_event.set()
            self.notifier.stopping()
            self.pool.join(timeout_s=5.0)
            for src in self.sources.values():
                src.stop()
            if self.relay is not None:
                self.relay.stop(drain_timeout_s=3.0)
            pending = self._pending()
            self.outbox.close()
            if self.ops_server is not None:
                self.ops_server.stop()
            elapsed = time.monotonic() - self.stats.started_s
            log.info("stopped: %d frames analysed in %d batches (%.1f frames/s), %d alert events, %s message(s)"
                     " pending in the outbox", self.stats.frames, self.stats.batches,
                     self.stats.frames / max(elapsed, 1e-9), self.stats.events,
                     "unknown" if pending is None else pending)
        return 0

    def _pending(self) -> int | None:
        return outbox_depth(self.outbox, self._outbox_errors)


def outbox_depth(outbox: Any, reported: set[str]) -> int | None:
    """Messages waiting in the outbox; None (and one WARNING per distinct reason, noted in ``reported``) when
    it cannot be read: /metrics shows NaN and /health turns unhealthy instead of a made-up depth."""
    try:
        return int(outbox.pending_count())
    except Exception as exc:  # /metrics and /health must answer whatever the database does
        reason = f"{type(exc).__name__}: {exc}"
        if reason not in reported:
            reported.add(reason)
            log.warning("outbox depth unknown: %s", reason)
        return None


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="minewatch run", description="Run the daemon until SIGINT/SIGTERM.")
    parser.add_argument("--config", default="cameras.yaml", help="config file (default: cameras.yaml)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    parser.add_argument("--forever", action="store_true",
                        help="keep running when recorded files end (default: stop once every file has ended)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_json)
    config = load_config(args.config)
    daemon = Daemon(config, args.config, exit_at_eof=not args.forever)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping (pending alerts stay in the outbox)", signal.Signals(signum).name)
        daemon.stop()

    def _hup(_signum: int, _frame: FrameType | None) -> None:
        daemon.reload_zones()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _hup)
    return daemon.run()

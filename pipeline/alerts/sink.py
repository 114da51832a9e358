"""``AlertSink``: an AlertEvent becomes a snapshot on disk and messages committed in the outbox.

Called on the analysis thread. Nothing is published here: the relay takes committed rows from the
outbox. Order of durability: the JPEG is fsynced first, then the outbox transaction commits the snapshot
message and the event message together, so a crash leaves either nothing or both.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from pipeline.alerts.outbox import Message, Outbox
from pipeline.alerts.payload import SnapshotRef, build_event, encode, events_topic, snapshot_topic
from pipeline.alerts.retention import SnapshotRetention
from pipeline.alerts.snapshot import beside, outlines_xy, render, write_jpeg
from pipeline.config import CameraConfig, Config
from pipeline.events.persist import event_state
from pipeline.logs import get_logger
from pipeline.types import AlertEvent

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


class AlertSink:
    """``submit(event) -> alert_id``: snapshot (when the event carries a frame), payload, outbox commit."""

    def __init__(self, config: Config, outbox: Outbox) -> None:
        self.config = config
        self.outbox = outbox
        alerts = config.alerts
        outbox.set_limits(alerts.outbox_max_messages, int(alerts.outbox_max_mb * 2**20))
        self.snapshot_dir = Path(alerts.snapshot_dir)
        self.retention = SnapshotRetention(self.snapshot_dir, alerts.snapshot_quota_mb, alerts.snapshot_max_age_days,
                                           alerts.retention_interval_s, outbox)
        self._seq: dict[str, int] = {}
        self._image_wh: dict[str, tuple[int, int]] = {}
        self.submitted = 0

    def _camera(self, camera_id: str) -> CameraConfig:
        try:
            return self.config.camera(camera_id)
        except KeyError:  # an event from a camera not in the config: keep it, with what we know
            return CameraConfig.model_validate({"id": camera_id, "source": "unknown", "lat": 0.0, "lon": 0.0})

    def _next_seq(self, alert_id: str) -> int:
        last = self._seq.get(alert_id)
        if last is None:
            last = self.outbox.last_seq(alert_id)
        return last + 1

    def submit(self, event: AlertEvent) -> str:
        log = get_logger("alerts", event.camera_id)
        mqtt = self.config.mqtt
        seq = self._next_seq(event.alert_id)
        # the analysis time of the message (its frame's capture time): recorded footage keeps its own clock
        t_event_s = event.t_event if event.t_event is not None else time.time()
        image_wh: tuple[int, int] | None = None
        snap: SnapshotRef | None = None
        messages: list[Message] = []
        if event.frame is not None:
            image_wh = event.frame.wh
            label = f"{event.class_name} {event.score:.2f}" + (f" {event.zone.name}" if event.zone else "")
            drawn = render(event.frame.image_bgr, event.xyxy, label, outlines_xy(event.zone_outline_xy))
            wide = event.extra.pop("look_wide_bgr", None)  # the picture goes in the snapshot, not the message
            if isinstance(wide, np.ndarray) and wide.ndim == 3:  # a look closer: the wide view on the right
                look = event.extra.get("look")
                box = look.get("wide_xyxy") if isinstance(look, dict) else None
                wide_xyxy = tuple(float(v) for v in box) if isinstance(box, tuple | list) else (0.0, 0.0, 0.0, 0.0)
                drawn = beside(drawn, render(wide, wide_xyxy, "wide view"))
            day = time.strftime("%Y%m%d", time.gmtime(event.frame.t_capture))  # the day the picture was taken
            path = self.snapshot_dir / day / f"{_SAFE_ID.sub('_', event.alert_id)}-{seq:04d}.jpg"
            try:
                written = write_jpeg(path, drawn, self.config.alerts.snapshot_jpeg_quality)
            except OSError as exc:  # a full or read-only disk must not cost the alert itself
                log.error("snapshot %s not written (%s): the alert goes out without it", path, exc)
            else:
                snap = SnapshotRef(snapshot_topic(mqtt, event.alert_id), str(written.path), written.nbytes,
                                   written.sha256)
                messages.append(Message("snapshot", snap.topic, None, snap.file, snap.nbytes))
        else:  # the size of the frame the box was last seen in (remembered here for hand-made events)
            image_wh = event.image_wh or self._image_wh.get(event.alert_id)
        payload = encode(build_event(event, seq, camera=self._camera(event.camera_id), box_id=mqtt.box_id,
                                     snapshot=snap, image_wh=image_wh, t_event_s=t_event_s))
        messages.append(Message("event", events_topic(mqtt), payload, snap.file if snap else None, len(payload)))
        state = None if event.type == "end" else (event.camera_id, event_state(event))
        self.outbox.add(event.alert_id, seq, event.type, messages, state)
        self.submitted += 1
        if event.type == "end":
            self._seq.pop(event.alert_id, None)
            self._image_wh.pop(event.alert_id, None)
        else:
            self._seq[event.alert_id] = seq
            if image_wh:
                self._image_wh[event.alert_id] = image_wh
        self.retention.maybe_run()
        return event.alert_id


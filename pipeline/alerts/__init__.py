"""Alerts: snapshot + payload → durable SQLite outbox (commit) → MQTT relay (QoS 1, delete on PUBACK).

See docs/MQTT.md for the topic tree and payloads, docs/RELIABILITY.md for the delivery guarantees.
"""

from pipeline.alerts.outbox import Message, Outbox, OutboxRow
from pipeline.alerts.relay import Relay, broker_name
from pipeline.alerts.sink import AlertSink

__all__ = ["AlertSink", "Message", "Outbox", "OutboxRow", "Relay", "broker_name"]

"""Does the broker keep a burst of alerts for a subscriber that is away or slow?

Mosquitto keeps at most ``max_queued_messages`` (default **1000**) QoS 1 messages per client session beyond
those in flight, and drops the rest silently — after acknowledging them to the publisher, so the edge box's
outbox has already let them go. A burst of 2000 alerts to a console that is down or busy lost 952 that way.
This probe measures the limit as a subscriber would meet it: a throw-away persistent session subscribes to a
probe topic, goes away, ``count`` small QoS 1 messages are published, the session comes back and counts what
it gets. The session is then dropped (expiry 0). scripts/mosquitto/minewatch.conf is the recommended
configuration (docs/RELIABILITY.md, "Broker").
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pipeline.config import TlsConfig

#: messages published by the probe: above Mosquitto's default limit (1000). Each is a change of the broker's
#: state: a broker that saves on every change (the recommended one) writes its file this many times.
PROBE_MESSAGES = 1050
#: the queue is taken as handed out when nothing more arrives for this long
QUIET_S = 3.0
#: Mosquitto's max_queued_messages when nothing sets it
MOSQUITTO_DEFAULT_QUEUE = 1000


class BrokerSettings(Protocol):
    """What the edge box's ``mqtt`` and the console's ``mqtt`` sections both have."""

    host: str
    port: int
    username: str | None
    tls: TlsConfig | None

    def password(self) -> str | None: ...


@dataclass(frozen=True)
class QueueProbe:
    status: str  # ok | warn (the broker drops a burst) | unknown (could not check)
    published: int
    received: int
    detail: str


def _client(broker: BrokerSettings, client_id: str, password: str | None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    if broker.username:
        client.username_pw_set(broker.username, password)
    if broker.tls is not None:
        client.tls_set(
            ca_certs=str(broker.tls.ca_file) if broker.tls.ca_file else None,
            certfile=str(broker.tls.cert_file) if broker.tls.cert_file else None,
            keyfile=str(broker.tls.key_file) if broker.tls.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(broker.tls.insecure)
    return client


def _connect(client: paho.Client, broker: BrokerSettings, clean_start: bool, expiry_s: int, timeout_s: float) -> None:
    done = threading.Event()
    failure: list[str] = []

    def on_connect(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            failure.append(str(reason))
        done.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    client.connect(broker.host, broker.port, keepalive=30, clean_start=clean_start, properties=props)
    client.loop_start()
    if not done.wait(timeout_s):
        raise TimeoutError(f"no CONNACK within {timeout_s:g} s")
    if failure:
        raise ConnectionError(f"refused: {failure[0]}")


def _stop(client: paho.Client, drop_session: bool = False) -> None:
    props = None
    if drop_session:
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
    client.disconnect(properties=props)
    client.loop_stop()


def probe_queue_limit(
    broker: BrokerSettings, topic_prefix: str, count: int = PROBE_MESSAGES, timeout_s: float = 20.0
) -> QueueProbe:
    """Publish ``count`` QoS 1 messages to an absent persistent subscriber; how many does it get back?"""
    address = f"{broker.host}:{broker.port}"
    probe_id = uuid.uuid4().hex[:12]
    topic = f"{topic_prefix}/_probe/{probe_id}"
    password = broker.password()
    sub = _client(broker, f"minewatch-probe-sub-{probe_id}", password)
    pub = _client(broker, f"minewatch-probe-pub-{probe_id}", password)
    received: list[int] = []
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_message = lambda _c, _u, _m: received.append(1)
    try:
        _connect(sub, broker, clean_start=True, expiry_s=300, timeout_s=timeout_s)
        sub.subscribe(topic, qos=1)
        if not subscribed.wait(timeout_s):
            return QueueProbe("unknown", 0, 0, f"{address}: no SUBACK for {topic}")
        _stop(sub)  # away: the broker queues for the session
        _connect(pub, broker, clean_start=True, expiry_s=0, timeout_s=timeout_s)
        infos = [pub.publish(topic, b"minewatch queue probe", qos=1) for _ in range(count)]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        published = sum(1 for info in infos if info.is_published())
        _stop(pub)
        if published < count:
            return QueueProbe("unknown", published, 0, f"{address}: only {published} of {count} probe messages acked")
        _connect(sub, broker, clean_start=False, expiry_s=300, timeout_s=timeout_s)
        # a broker that saves on every change (the recommended one) hands a queue out slowly: wait while it flows
        last, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 3 * timeout_s
        while time.monotonic() < deadline and len(received) < count:
            if len(received) != last:
                last, quiet_since = len(received), time.monotonic()
            elif time.monotonic() - quiet_since > QUIET_S:
                break
            time.sleep(0.05)
        _stop(sub, drop_session=True)
    except (OSError, TimeoutError, ConnectionError) as exc:
        return QueueProbe("unknown", 0, 0, f"{address}: could not check the queue limit ({exc})")
    got = len(received)
    if got >= count:
        return QueueProbe("ok", count, got, f"{address}: keeps a burst of {count} QoS 1 messages for an absent client")
    return QueueProbe(
        "warn",
        count,
        got,
        f"{address}: kept {got} of {count} QoS 1 messages for an absent client — a burst of alerts beyond"
        f" max_queued_messages (Mosquitto's default {MOSQUITTO_DEFAULT_QUEUE}) is dropped after the box let it go;"
        " use scripts/mosquitto/minewatch.conf (docs/RELIABILITY.md)",
    )

"""A publisher process for the fault tests: AlertSink + Outbox + Relay wired exactly as pipeline.daemon does.

``python -m tests.mqtt_publisher CONFIG --count N --prefix ID [--wait-go]``: starts the relay, prints
``READY`` once connected (or at once when the broker is unreachable), waits for a ``go`` line on stdin
with ``--wait-go``, submits N ``new`` alerts ``<ID>-<i>`` (each with a snapshot), prints
``SUBMITTED <n>``, then relays until SIGTERM/SIGKILL (SIGTERM: clean stop, pending rows stay).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from pipeline.alerts import AlertSink, Outbox, Relay
from pipeline.config import load_config
from pipeline.logs import setup_logging
from tests.mqtt_helpers import make_event, make_frame


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--prefix", default="a")
    parser.add_argument("--wait-go", action="store_true")
    args = parser.parse_args(argv)
    setup_logging("INFO")
    config = load_config(args.config)
    outbox = Outbox(config.alerts.outbox_path)
    sink = AlertSink(config, outbox)
    relay = Relay(config.mqtt, outbox)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    relay.start()
    relay.wait_connected(3.0)
    print(f"READY connected={relay.connected} pending={outbox.pending_count()}", flush=True)
    if args.wait_go:
        sys.stdin.readline()
    for i in range(args.count):
        sink.submit(make_event(f"{args.prefix}-{i:04d}", frame=make_frame(seed=i)))
        relay.wake()
    print(f"SUBMITTED {args.count}", flush=True)
    while not stop.wait(0.1):
        pass
    relay.stop()
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

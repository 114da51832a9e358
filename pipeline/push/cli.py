"""``minewatch push``: check the push config, see what waits, send a test push, deliver the outbox.

    minewatch push check  --config push.yaml                validate targets and routes (URLs never printed)
    minewatch push status --config push.yaml                what waits in the outbox, last errors (JSON)
    minewatch push test   --config push.yaml --target ID    queue a test case for one target and deliver it
    minewatch push run    --config push.yaml                deliver and escalate until SIGTERM / Ctrl-C
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import threading
from pathlib import Path
from types import FrameType

from pipeline.errors import UserError
from pipeline.logs import setup_logging
from pipeline.push.config import load_push_config
from pipeline.push.formats import CaseNotice
from pipeline.push.pusher import Pusher


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minewatch push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("sub", choices=["check", "status", "test", "run"])
    p.add_argument("--config", type=Path, required=True, help="push.yaml (docs/PUSH.md)")
    p.add_argument("--target", help="test: the target id")
    return p


def cli_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_logging("INFO")
    cfg = load_push_config(args.config)
    base = args.config.resolve().parent
    pusher = Pusher(cfg, base)
    try:
        if args.sub == "check":
            for t in cfg.targets:
                print(f"target {t.id}: {t.format}" + (" (signed)" if pusher.targets[t.id][2] else ""))
            for i, r in enumerate(cfg.routes):
                chain = " → ".join(f"+{lv.after_minutes:g} min: {','.join(lv.targets)}" for lv in r.levels)
                print(f"route {i}: townships={r.townships or 'all'} zone_kinds={r.zone_kinds or 'all'}"
                      f" min_priority={r.min_priority}: {chain}")
            return 0
        if args.sub == "status":
            print(json.dumps(pusher.outbox.status(), ensure_ascii=False, indent=1))
            return 0
        if args.sub == "test":
            if args.target not in pusher.targets:
                raise UserError("minewatch push test", "--target", f"one of {sorted(pusher.targets)}", args.target)
            now = dt.datetime.now(dt.UTC)
            notice = CaseNotice(case_id=f"test-{now:%Y%m%dT%H%M%S}", event="new", level=0, title="测试推送 test push",
                                t=now.isoformat(timespec="seconds"))
            from pipeline.push.formats import render
            from pipeline.push.pusher import push_id

            target = pusher.targets[args.target][0]
            pid = push_id(notice.case_id, "new", 0, target.id)
            pusher.outbox.enqueue(pid, target.id, notice.case_id, "new", 0,
                                  render(target.format, notice, pid, cfg.map_link), now.timestamp())
            sent, failed = pusher.deliver(now.timestamp())
            print(f"test push {pid} to {target.id}: " + ("delivered" if sent else "failed, kept in the outbox"
                                                           " (see `minewatch push status`)"))
            return 0 if sent else 1
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        pusher.run(stop)
        return 0
    finally:
        pusher.close()

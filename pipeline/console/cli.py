"""``minewatch console``: run the control-room console, and manage its operators.

    minewatch console --config console.yaml                 run (MQTT ingest + web page)
    minewatch console check --config console.yaml           validate the config and the zone files
    minewatch console adduser --config console.yaml NAME    add an operator (password from a prompt,
                                                            --password-env VAR or --password-file FILE)
    minewatch console passwd --config console.yaml NAME     set an operator's password
    minewatch console users --config console.yaml           list operators (with their roles)
    minewatch console role --config console.yaml NAME ROLE  viewer, operator, supervisor or admin
``--database-url`` may replace ``--config`` for the operator commands. Passwords are never taken from argv.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline.console.config import ConsoleConfig, load_console_config, url_has_password
from pipeline.errors import UserError
from pipeline.logs import get_logger, setup_logging

log = get_logger("console")
SUBCOMMANDS = ("check", "adduser", "passwd", "users", "role")


def _parser(sub: str | None) -> argparse.ArgumentParser:
    prog = "minewatch console" + (f" {sub}" if sub else "")
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    if sub in ("adduser", "passwd", "users", "role"):
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--config", type=Path, help="console.yaml (its database_url is used)")
        src.add_argument("--database-url", help="sqlite:///path or postgresql://… instead of --config")
    else:
        p.add_argument("--config", type=Path, required=True, help="console.yaml")
    if sub in ("adduser", "passwd"):
        p.add_argument("username", help="operator's login name")
        pw = p.add_mutually_exclusive_group()
        pw.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
        pw.add_argument("--password-file", type=Path, metavar="FILE", help="read it from the first line of FILE")
    if sub == "adduser":
        p.add_argument("--name", default="", help="display name (e.g. 张三), shown in case logs")
    if sub == "role":
        from pipeline.console.roles import ROLES

        p.add_argument("username", help="operator's login name")
        p.add_argument("role", choices=ROLES, help="viewer, operator, supervisor or admin (docs/CONSOLE.md)")
    if sub is None:
        p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _read_password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise UserError(
                "minewatch console", "--password-env", f"environment variable {args.password_env} set", "unset"
            )
        return value
    if args.password_file:
        try:
            return args.password_file.read_text(encoding="utf-8").splitlines()[0].rstrip("\r\n")
        except (OSError, IndexError) as exc:
            raise UserError(
                str(args.password_file), "--password-file", "a readable file with a password line", exc
            ) from None
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UserError("stdin", None, "a password line (or --password-env / --password-file)", "nothing")
        return line
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("prompt", "password", "the same password twice", "two different ones")
    return first


def _store_from(args: argparse.Namespace) -> tuple[object, ConsoleConfig | None]:
    from pipeline.console.store import Store

    if getattr(args, "database_url", None):
        url = str(args.database_url)
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise UserError("minewatch console", "--database-url", "sqlite:///… or postgresql://…", url.split(":")[0])
        if url_has_password(url):
            raise UserError(
                "minewatch console",
                "--database-url",
                "no password in the URL (use PGPASSWORD or ~/.pgpass)",
                "a password",
            )
        return Store(url), None
    config = load_console_config(args.config)
    return Store(config.database_url), config


def _operators(sub: str, args: argparse.Namespace) -> int:
    from pipeline.console import auth
    from pipeline.console.cases import CaseError
    from pipeline.console.store import Store

    store, _ = _store_from(args)
    assert isinstance(store, Store)
    try:
        from pipeline.console.roles import Roles

        roles = Roles(store.db)
        if sub == "users":
            for op in store.operators.all():
                print(f"{op['username']:<24} {op['display_name']:<24} {roles.get(op['username']):<10}"
                      f" since {op['created_at']}")
            return 0
        if sub == "role":
            if store.operators.get(args.username) is None:
                raise CaseError(f"no operator {args.username!r}")
            roles.set(args.username, args.role, "command line")
            print(f"role of {args.username} set to {args.role}")
            return 0
        password = _read_password(args)
        if sub == "adduser":
            auth.add_operator(store, args.username, password, args.name)
            print(f"operator {args.username} added")
        else:
            auth.set_password(store, args.username, password)
            print(f"password of {args.username} set")
        return 0
    except ValueError as exc:
        raise UserError("minewatch console", sub, str(exc).split(": ", 1)[-1], str(exc).split(":", 1)[0]) from None
    except CaseError as exc:
        raise UserError(
            "minewatch console",
            args.username,
            "a free user name" if sub == "adduser" else "an existing operator",
            str(exc),
        ) from None
    finally:
        store.close()


def _check(config: ConsoleConfig) -> int:
    from pipeline.console.mapdata import configured_towers, load_zone_features

    zones = sum(len(load_zone_features(b.zones, b.id)) for b in config.boxes)
    towers = len(configured_towers(config))
    from pipeline.console.ingest import topic_filters

    print(f"database: {config.database_url.split('@')[-1]}")
    print(f"broker: {config.mqtt.host}:{config.mqtt.port} as {config.mqtt.effective_client_id()}")
    for topic, shared in topic_filters(config.mqtt):
        print(f"  subscribe {topic}{'  (shared)' if shared else ''}")
    print(f"boxes: {len(config.boxes)}, zones: {zones}, towers: {towers}")
    print(f"web: http://{config.web.host}:{config.web.port}/")
    return 0


def _start_case_pushes(config: ConsoleConfig, store: Any, stop: threading.Event) -> Any:
    """With ``fusion.push_config``: a thread pushing fused cases (docs/PUSH.md); returns the pusher or None."""
    if config.fusion.push_config is None:
        return None
    from pipeline.console.casepush import CasePushBridge
    from pipeline.console.clues import ClueRegister
    from pipeline.console.clues_web import zone_index
    from pipeline.console.mapdata import load_zone_features
    from pipeline.push.config import load_push_config
    from pipeline.push.pusher import Pusher

    path = config.fusion.push_config
    push_cfg = load_push_config(path)
    pusher = Pusher(push_cfg, path.resolve().parent)
    zones: list[dict[str, Any]] = []
    for box in config.boxes:
        zones += load_zone_features(box.zones, box.id)
    bridge = CasePushBridge(ClueRegister(store.db, config.fusion), pusher, push_cfg.console_url, zone_index(zones))
    threading.Thread(target=bridge.run, args=(stop, config.fusion.push_poll_s), name="case-push", daemon=True).start()
    log.info("pushing fused cases with %s", path)
    return pusher


def _run(config: ConsoleConfig) -> int:
    from werkzeug.serving import make_server

    from pipeline.console.ingest import Ingestor
    from pipeline.console.store import Store
    from pipeline.console.web import create_app

    store = Store(config.database_url)
    ingestor = Ingestor(config.mqtt, store)
    app = create_app(config, store, ingestor.status)
    if not store.operators.all():
        log.warning("no operator yet: add one with `minewatch console adduser --config … NAME`")
    try:
        # werkzeug exits the process on a busy port; find out first, to say it in one line
        with socket.create_server((config.web.host, config.web.port), reuse_port=False):
            pass
        server = make_server(config.web.host, config.web.port, app, threaded=True)
    except OSError as exc:
        raise UserError("console.yaml", "web.port", f"a free port on {config.web.host}", exc) from None
    ingestor.start()
    stop = threading.Event()
    pusher = _start_case_pushes(config, store, stop)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("web page on http://%s:%s/", config.web.host, server.port)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        ingestor.stop()
        stop.set()
        if pusher is not None:
            pusher.close()
        store.close()
        s = ingestor.stats
        log.info(
            "stopped: %d events, %d duplicates, %d snapshots, %d invalid",
            s.events,
            s.duplicates,
            s.snapshots,
            s.invalid,
        )
    return 0


def cli_main(argv: list[str]) -> int:
    sub = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = _parser(sub).parse_args(argv[1:] if sub else argv)
    if sub in ("adduser", "passwd", "users", "role"):
        return _operators(sub, args)
    config = load_console_config(args.config)
    if sub == "check":
        return _check(config)
    setup_logging(args.log_level)
    # werkzeug logs every request (the page polls /api/health every 5 s): only its problems unless DEBUG
    logging.getLogger("werkzeug").setLevel(logging.DEBUG if args.log_level == "DEBUG" else logging.WARNING)
    return _run(config)

"""``minewatch`` command line. Each subcommand lives in its stage's module and is imported lazily,
so that ``minewatch zones list`` does not load onnxruntime and nothing here loads torch (``config check``
does: it loads the model as ``run`` would)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import Problems, UserError

#: subcommand → "module:function"; the function takes the remaining argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("pipeline.daemon:cli_main", "run the daemon on the cameras of a config file"),
    "config": ("pipeline.config_cli:cli_main", "check a config file and print a summary"),
    "zones": ("pipeline.zones.cli:cli_main", "list, import, validate, edit, preview and test zones"),
    "eval": ("pipeline.eval.cli:cli_main", "evaluate a model and the rules on recorded footage"),
    "train": ("pipeline.train.cli:cli_main", "fine-tune a detector on YOLO-labelled folders (needs [train])"),
    "console": ("pipeline.console.cli:cli_main", "run the control-room console"),
    "doctor": ("pipeline.doctor:cli_main", "check the environment and say what to fix"),
    "coverage": ("pipeline.coverage.cli:cli_main", "which zones the towers really watch; where new towers go"),
    "alerts": ("pipeline.alerts.relay:cli_main", "outbox status, or deliver what waits in it (drain)"),
    "power": ("pipeline.power.cli:cli_main", "power-use anomalies from utility meter readings"),
    "push": ("pipeline.push.cli:cli_main", "pushes of cases to WeCom/DingTalk/Feishu robots and webhooks"),
}


def _usage() -> str:
    lines = ["usage: minewatch COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`minewatch COMMAND --help` for each command's options."]
    return "\n".join(lines)


def _load(target: str) -> Callable[[list[str]], int]:
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    func: Callable[[list[str]], int] = getattr(module, func_name)
    return func


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("--version", "version"):
        from pipeline import __version__

        print(f"minewatch {__version__}")
        return 0
    name = args.pop(0)
    if name not in COMMANDS:
        print(f"minewatch: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        func = _load(COMMANDS[name][0])
    except ModuleNotFoundError as exc:
        print(f"minewatch {name}: not available: missing module {exc.name} ({exc})", file=sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        print(f"minewatch {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Problems as exc:  # several mistakes found together: one line each
        for err in exc.errors:
            print(f"minewatch {name}: {err}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

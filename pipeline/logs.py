"""Logging: one logger per stage and camera, secrets masked, optional JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time

from pipeline.errors import UserError
from pipeline.redact import RedactingFilter

#: the levels ``--log-level`` takes (any case)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def get_logger(stage: str, camera_id: str | None = None) -> logging.Logger:
    """``minewatch.<stage>[.<camera>]`` — filter by stage or by camera with ordinary logging config."""
    name = f"minewatch.{stage}" + (f".{camera_id}" if camera_id else "")
    return logging.getLogger(name)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "t": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_format: bool = False) -> None:
    """Configure the root logger once: stderr, redaction on every record. An unknown level is a
    :class:`UserError` (one line, exit 2), raised before anything is changed."""
    if level.upper() not in LEVELS:
        raise UserError("--log-level", None, f"one of {', '.join(LEVELS)}", level)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

"""Keep secrets out of logs, errors and alerts."""

from __future__ import annotations

import logging
import re

# the password runs to the LAST "@" before the path, so an unescaped "@" in it is masked too
_URL_CRED = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^/\s]*)@")
_KV_CRED = re.compile(r"(?P<key>\b(?:password|passwd|pwd|pass)=)(?P<pw>[^&\s\"']+)", re.IGNORECASE)
_SECRETS: set[str] = set()


def redact_url(text: str) -> str:
    """``rtsp://user:pass@host/x`` → ``rtsp://user:***@host/x`` (every URL in ``text``);
    ``password=x`` → ``password=***``."""
    text = _URL_CRED.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)
    return _KV_CRED.sub(lambda m: f"{m.group('key')}***", text)


def register_secret(secret: str | None) -> None:
    """Remember a secret (an MQTT password, say) so that it is masked wherever it would be logged."""
    if secret and len(secret) >= 3:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    text = redact_url(text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that masks credentials in the final message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            del exc
        return True

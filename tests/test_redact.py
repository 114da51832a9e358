"""Secrets never reach a log line: URL credentials, key=value passwords, registered secrets."""

from __future__ import annotations

import logging

import pytest

from pipeline.redact import RedactingFilter, redact, redact_url, register_secret


@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/Streaming/101", "rtsp://admin:***@10.0.0.5:554/Streaming/101"),
    ("open rtsp://u:p@h/a and rtsp://v:q@k/b", "open rtsp://u:***@h/a and rtsp://v:***@k/b"),
    ("rtsp://user:p@ss@cam.local/x", "rtsp://user:***@cam.local/x"),  # an unescaped @ in the password
    ("mqtts://edge:s3cr3t@broker:8883", "mqtts://edge:***@broker:8883"),
    ("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream"),  # no credentials: unchanged
    ("rtsp://user@cam.local/x", "rtsp://user@cam.local/x"),  # user without password: unchanged
    ("http://cam/onvif?user=a&password=topsecret&x=1", "http://cam/onvif?user=a&password=***&x=1"),
    ("PWD=abc123 next", "PWD=*** next"),
])
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_registered_secret_is_masked_anywhere() -> None:
    register_secret("Zq9-very-secret-mqtt")
    register_secret("ab")  # too short to mask safely: ignored
    assert redact("connect failed, password Zq9-very-secret-mqtt rejected") == "connect failed, password *** rejected"
    assert redact("ab cd") == "ab cd"


def test_filter_masks_args_and_tracebacks() -> None:
    register_secret("Pw-in-args-123")
    record = logging.LogRecord("minewatch.x", logging.ERROR, __file__, 1, "login %s at %s",
                               ("Pw-in-args-123", "rtsp://a:b3@h/"), None)
    try:
        raise RuntimeError("failed with Pw-in-args-123")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "login *** at rtsp://a:***@h/"
    assert record.exc_text is not None and "Pw-in-args-123" not in record.exc_text and "***" in record.exc_text

"""The ``minewatch`` entry point: argument mistakes are one line and exit 2, in every command."""

from __future__ import annotations

import logging

import pytest

from pipeline.cli import main


@pytest.mark.parametrize("argv", [
    ["run", "--log-level", "LOUD"],
    ["alerts", "status", "--log-level", "LOUD"],
    ["eval", "images", "--model", "m.onnx", "--data", "d", "--log-level", "LOUD"],
])
def test_unknown_log_level_is_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"minewatch {argv[0]}: --log-level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, found LOUD"]


def test_log_level_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    """A known level in lower case passes the check (the run then fails on the missing config, exit 2)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["run", "--log-level", "debug", "--config", "/nonexistent/cameras.yaml"]) == 2
        assert "expected an existing config file" in capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

"""User-facing errors: one line, exit code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, zone file, footage, model, command line).

    ``str(err)`` is one line: ``FILE: FIELD: expected …, found …``.
    """

    exit_code = 2

    def __init__(self, source: str, field: str | None, expected: str, found: object) -> None:
        self.source = source
        self.field = field
        self.expected = expected
        self.found = found
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: expected {expected}, found {_short(found)}")


def _short(value: object, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

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


class Problems(Exception):
    """Several user mistakes found together (a zones folder, a config's files); each is one line, the
    ``str`` of a :class:`UserError`; exit code 2 as for one."""

    exit_code = 2

    def __init__(self, errors: list[UserError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def raise_all(errors: list[UserError]) -> None:
    """Nothing when ``errors`` is empty, the one :class:`UserError`, or :class:`Problems` for several."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise Problems(errors)


def _short(value: object, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

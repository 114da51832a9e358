"""Text tables for the zones command: columns padded by display width (Chinese characters count two)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded by display width (Chinese characters count two)."""
    widths = [max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c + " " * (w - display_width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def fmt_area(a_m2: float) -> str:
    return f"{a_m2 / 1e6:.3f} km²" if a_m2 >= 1e6 else f"{a_m2:,.0f} m²"


def fmt_seen(seen: list[tuple[str, str | None]]) -> str:
    if not seen:
        return "-"
    return ", ".join(cam if preset is None else f"{cam}/{preset}" for cam, preset in seen)

"""Write docs/CONFIG.md from the pydantic models of cameras.yaml (every field, its type, default, bounds and
description). ``tests/test_config.py`` fails when the committed file is out of date.

    .venv/bin/python scripts/gen_config_doc.py            # rewrite docs/CONFIG.md
    .venv/bin/python scripts/gen_config_doc.py --check    # exit 1 when it differs
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402

OUT = ROOT / "docs" / "CONFIG.md"


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models(arg)
    return found


def _type(annotation: object) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    for noise in ("typing.", "pipeline.config.", "pathlib."):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def _bounds(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for name, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "len ≥"),
                           ("max_length", "len ≤"), ("pattern", "matches")):
            value = getattr(meta, name, None)
            if value is not None:
                parts.append(f"{sign} `{value}`" if name == "pattern" else f"{sign} {value}")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section defaults)"
        return f"`{value}`"
    return "`null`" if info.default is None or info.default is PydanticUndefined else f"`{info.default}`"


def render() -> str:
    lines = ["# cameras.yaml reference", "",
             "Generated from `pipeline/config.py` by `scripts/gen_config_doc.py`; do not edit by hand.",
             "Relative paths are relative to the config file's folder. Unknown fields are errors.", ""]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("(top level)", Config)]
    while queue:
        path, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## `{path}` — {model.__name__}", ""]
        if model.__doc__:
            lines += [" ".join(model.__doc__.split()), ""]
        lines += ["| field | type | default | bounds | description |", "|---|---|---|---|---|"]
        for name, info in model.model_fields.items():
            desc = " ".join((info.description or "").split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {_type(info.annotation)} | {_default(info)} | {_bounds(info)} | {desc} |")
            for sub in _models(info.annotation):
                prefix = "" if path == "(top level)" else path + "."
                suffix = "[]" if typing.get_origin(info.annotation) is list else ""
                queue.append((f"{prefix}{name}{suffix}", sub))
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        return 0 if OUT.is_file() and OUT.read_text() == text else 1
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

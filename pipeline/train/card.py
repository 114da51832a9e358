"""Model cards: what a model was trained on, how, and how well it does (markdown, no torch)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.types import CLASSES


@dataclass
class CardData:
    title: str
    model_files: Sequence[Path]
    command: str
    base_weights: str
    imgsz: int
    epochs: int
    train_seconds: float
    data_rows: Sequence[Mapping[str, str]]  # {"source", "what", "licence"}
    split: str  # how validation was split
    n_train: int
    n_val: int
    boxes_train: Mapping[str, int]
    boxes_val: Mapping[str, int]
    per_class: Mapping[str, Mapping[str, float]]
    summary: Mapping[str, float]
    augment: Mapping[str, Any]
    notes: Sequence[str] = field(default_factory=list)
    extra_sections: Sequence[tuple[str, str]] = field(default_factory=list)
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _fmt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def per_class_table(per_class: Mapping[str, Mapping[str, float]], boxes_val: Mapping[str, int]) -> str:
    lines = ["| class | val boxes | AP50 | AP50-95 |", "|---|---:|---:|---:|"]
    for name in CLASSES:
        fig = per_class.get(name)
        lines.append(
            f"| {name} | {boxes_val.get(name, 0)} | {_fmt(fig['ap50'] if fig else None)} |"
            f" {_fmt(fig['ap50_95'] if fig else None)} |"
        )
    return "\n".join(lines)


def render(card: CardData) -> str:
    files = ", ".join(f"`{p.name}` ({p.stat().st_size / 1e6:.1f} MB)" for p in card.model_files if p.exists())
    out = [f"# {card.title}", ""]
    out += [
        f"- Files: {files}",
        f"- Date: {card.date}",
        f"- Classes (output order): {', '.join(f'{i} {n}' for i, n in enumerate(CLASSES))}",
        f"- Input: {card.imgsz}×{card.imgsz} letterboxed RGB, dynamic batch; names, imgsz and stride in the ONNX"
        " metadata",
        f"- Base weights: {card.base_weights}",
        f"- Produced by: `{card.command}`",
        "",
        "## Data",
        "",
        "| source | what | licence |",
        "|---|---|---|",
    ]
    out += [f"| {r['source']} | {r['what']} | {r['licence']} |" for r in card.data_rows]
    out += [
        "",
        f"Split: {card.split}. Train: {card.n_train} images, val: {card.n_val} images.",
        "",
        "| boxes | " + " | ".join(CLASSES) + " |",
        "|---|" + "---:|" * len(CLASSES),
        "| train | " + " | ".join(str(card.boxes_train.get(c, 0)) for c in CLASSES) + " |",
        "| val | " + " | ".join(str(card.boxes_val.get(c, 0)) for c in CLASSES) + " |",
        "",
        "## Recipe",
        "",
        f"Ultralytics fine-tuning on CPU, {card.epochs} epochs at {card.imgsz} px, "
        f"{card.train_seconds / 60:.1f} min of training.",
        "Augmentations: " + ", ".join(f"{k}={v}" for k, v in card.augment.items()) + ".",
        "",
        "## Validation (held-out split)",
        "",
        per_class_table(card.per_class, card.boxes_val),
        "",
        f"All classes: mAP50 {_fmt(card.summary.get('map50'))}, mAP50-95 {_fmt(card.summary.get('map50_95'))}.",
    ]
    for title, body in card.extra_sections:
        out += ["", f"## {title}", "", body]
    if card.notes:
        out += ["", "## Limitations and notes", ""] + [f"- {n}" for n in card.notes]
    return "\n".join(out) + "\n"


def write_card(card: CardData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(card), encoding="utf-8")
    return path

"""The detector's size floor per class: the smallest object height (source-frame pixels) it finds with
recall ≥ 0.5. Read from the ONNX model's metadata key ``size_floor_px`` (a JSON object class → pixels, written
by the training/eval tooling from ``minewatch eval`` size bins) when the model has it; otherwise from
``coverage.size_floor_px`` in the config. :class:`SizeFloor` says which source it came from."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config
from pipeline.types import CLASSES

#: the ONNX metadata key holding the floor (JSON: {"excavator": 24, ...}).
METADATA_KEY = "size_floor_px"


@dataclass(frozen=True)
class SizeFloor:
    """Pixels per class, and where they came from (``model metadata …`` or ``config …``)."""

    px: dict[str, float]
    source: str

    def of(self, class_name: str) -> float:
        return self.px[class_name]


def model_metadata(path: Path) -> dict[str, str] | None:
    """The model's custom metadata, or None when the file is missing or not a model onnxruntime reads."""
    if not path.is_file():
        return None
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # onnxruntime raises its own types; an unreadable model simply has no floor
        return None


def parse_floor(text: str) -> dict[str, float] | None:
    """``size_floor_px`` metadata → class → pixels (known classes, finite positive values), or None if unusable."""
    try:
        raw = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    out: dict[str, float] = {}
    for name, value in raw.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if name in CLASSES and numeric and math.isfinite(float(value)) and float(value) > 0:
            out[name] = float(value)
    return out or None


def size_floor(config: Config, config_path: Path | None = None) -> SizeFloor:
    """The floor: the model's ``size_floor_px`` metadata for the classes it lists, the config for the rest."""
    defaults = {str(k): float(v) for k, v in config.coverage.size_floor_px.items()}
    model_path = config.detector.model_path
    if not model_path.is_absolute() and config_path is not None and not model_path.is_file():
        model_path = config_path.parent / model_path
    meta = model_metadata(model_path)
    measured = parse_floor(meta[METADATA_KEY]) if meta and METADATA_KEY in meta else None
    if measured is None:
        why = "no such file" if not model_path.is_file() else f"no usable {METADATA_KEY} in its metadata"
        return SizeFloor(defaults, f"config coverage.size_floor_px (model {model_path.name}: {why})")
    merged = {**defaults, **measured}
    rest = sorted(set(defaults) - set(measured))
    tail = f"; config coverage.size_floor_px for {', '.join(rest)}" if rest else ""
    return SizeFloor(merged, f"model metadata {METADATA_KEY} of {model_path.name}{tail}")

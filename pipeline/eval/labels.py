"""Ground truth for the evaluation: labelled images and labelled clips.

Two clip formats are read:

* the per-frame JSON of ``../shared/data/clips/NAME.labels.json``::

    {"fps": 5, "size": [w, h], "classes": ["fire", "smoke"],
     "frames": [{"index": 0, "boxes": [{"cls": "fire", "cxcywh_norm": [cx, cy, w, h],
                                        "lat": 38.7, "lon": 111.6}]}]}

  ``lat``/``lon`` (WGS84, optional) are the ground-truth position of the object; where present the location
  error of alerts is measured. Frames not listed have no boxes.
* a folder of per-frame YOLO text files (``class cx cy w h`` normalised), one per frame, whose name ends in
  the frame index (``000017.txt``, ``clip_17.txt``); class names come from ``classes.txt`` or ``data.yaml``
  in that folder or from ``--names``. A missing file means a frame without boxes.

Images: a folder with ``images/`` and ``labels/`` (Ultralytics layout, sub-folders allowed), a text file
listing image paths (a split list), or an Ultralytics ``data.yaml`` (its ``val`` split and ``names``).
Labels of an image are found the Ultralytics way: ``/images/`` → ``/labels/``, extension → ``.txt``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from pipeline.errors import UserError
from pipeline.types import CLASS_INDEX, CLASSES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".ts", ".m4v", ".webm")


@dataclass(slots=True)
class FrameLabels:
    """Boxes of one frame or image, in minewatch class ids, normalised ``cxcywh``."""

    cxcywh_norm: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 4)))  # (N, 4)
    class_id: NDArray[np.int32] = field(default_factory=lambda: np.zeros((0,), np.int32))  # (N,)
    latlon: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))  # (N, 2), NaN where unknown

    def __len__(self) -> int:
        return int(self.class_id.shape[0])

    def xyxy_px(self, image_wh: tuple[int, int]) -> NDArray[np.float64]:
        """(N, 4) boxes in pixels of an image of ``image_wh``."""
        w, h = image_wh
        c = self.cxcywh_norm
        return np.stack(
            [(c[:, 0] - c[:, 2] / 2) * w, (c[:, 1] - c[:, 3] / 2) * h,
             (c[:, 0] + c[:, 2] / 2) * w, (c[:, 1] + c[:, 3] / 2) * h],
            axis=1,
        ).reshape(-1, 4)


@dataclass(slots=True)
class ClipLabels:
    """Labels of one recorded clip: frame index → boxes. ``fps`` is the clip's frame rate."""

    source: str
    fps: float | None
    frames: dict[int, FrameLabels]
    n_frames: int | None = None  # frames the labels cover, when the file says so

    def at(self, index: int) -> FrameLabels:
        return self.frames.get(index, FrameLabels())


def class_names_to_ids(names: Sequence[str], source: str, field_name: str) -> list[int]:
    """Dataset class names → minewatch CLASSES indices; UserError for a name minewatch does not know."""
    ids = []
    for i, name in enumerate(names):
        if name not in CLASS_INDEX:
            raise UserError(source, f"{field_name}[{i}]", f"one of {', '.join(CLASSES)}", name)
        ids.append(CLASS_INDEX[name])
    return ids


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(str(path), None, "an existing labels file", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(str(path), None, "a readable UTF-8 file", exc) from None
    except json.JSONDecodeError as exc:
        raise UserError(str(path), f"line {exc.lineno}", "valid JSON", exc.msg) from None


def load_clip_json(path: Path) -> ClipLabels:
    """Read a per-frame JSON labels file (format in the module docstring)."""
    data = _read_json(path)
    src = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise UserError(src, "frames", "a JSON object with a `frames` list", type(data).__name__)
    fps = data.get("fps")
    if fps is not None and (not isinstance(fps, int | float) or fps <= 0):
        raise UserError(src, "fps", "a positive number", fps)
    frames: dict[int, FrameLabels] = {}
    for i, frame in enumerate(data["frames"]):
        where = f"frames[{i}]"
        if not isinstance(frame, dict) or not isinstance(frame.get("index"), int) or frame["index"] < 0:
            raise UserError(src, f"{where}.index", "a frame index ≥ 0", frame.get("index") if isinstance(
                frame, dict) else frame)
        boxes = frame.get("boxes", [])
        if not isinstance(boxes, list):
            raise UserError(src, f"{where}.boxes", "a list of boxes", type(boxes).__name__)
        cxcywh, cls, latlon = [], [], []
        for j, box in enumerate(boxes):
            bwhere = f"{where}.boxes[{j}]"
            if not isinstance(box, dict):
                raise UserError(src, bwhere, "an object with cls and cxcywh_norm", box)
            name = box.get("cls")
            if name not in CLASS_INDEX:
                raise UserError(src, f"{bwhere}.cls", f"one of {', '.join(CLASSES)}", name)
            values = box.get("cxcywh_norm")
            if (
                not isinstance(values, list)
                or len(values) != 4
                or not all(isinstance(v, int | float) for v in values)
                or not all(-0.01 <= v <= 1.01 for v in values)
            ):
                raise UserError(src, f"{bwhere}.cxcywh_norm", "4 numbers in [0, 1]", values)
            lat, lon = box.get("lat"), box.get("lon")
            if (lat is None) != (lon is None) or (
                lat is not None and not (isinstance(lat, int | float) and isinstance(lon, int | float))
            ):
                raise UserError(src, f"{bwhere}.lat/lon", "both numbers (WGS84) or both absent", (lat, lon))
            cxcywh.append([float(v) for v in values])
            cls.append(CLASS_INDEX[name])
            latlon.append([float(lat), float(lon)] if lat is not None else [np.nan, np.nan])  # type: ignore[arg-type]
        frames[int(frame["index"])] = FrameLabels(
            np.asarray(cxcywh, np.float64).reshape(-1, 4),
            np.asarray(cls, np.int32),
            np.asarray(latlon, np.float64).reshape(-1, 2),
        )
    n_frames = max(frames) + 1 if frames else 0
    return ClipLabels(source=src, fps=float(fps) if fps else None, frames=frames, n_frames=n_frames)


def read_yolo_txt(path: Path, class_ids: Sequence[int]) -> FrameLabels:
    """One YOLO label file (``class cx cy w h`` per line) → boxes in minewatch class ids."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FrameLabels()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(str(path), None, "a readable UTF-8 text file", exc) from None
    rows: list[list[float]] = []
    cls: list[int] = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise UserError(str(path), f"line {n}", "5 numbers `class cx cy w h` (boxes, not polygons)", line)
        try:
            k = int(parts[0])
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise UserError(str(path), f"line {n}", "an integer class and 4 numbers", line) from None
        if not 0 <= k < len(class_ids):
            raise UserError(str(path), f"line {n}", f"a class index in 0..{len(class_ids) - 1}", k)
        rows.append(values)
        cls.append(class_ids[k])
    n = len(cls)
    return FrameLabels(np.asarray(rows, np.float64).reshape(-1, 4), np.asarray(cls, np.int32),
                       np.full((n, 2), np.nan))


def names_from_folder(folder: Path) -> list[str] | None:
    """Class names from ``classes.txt`` or ``data.yaml``/``dataset.yaml`` in ``folder`` or its parent."""
    for base in (folder, folder.parent):
        classes_txt = base / "classes.txt"
        if classes_txt.is_file():
            return [line.strip() for line in classes_txt.read_text(encoding="utf-8").splitlines() if line.strip()]
        for name in ("data.yaml", "dataset.yaml"):
            if (base / name).is_file():
                return _names_from_yaml(base / name)
    return None


def _names_from_yaml(path: Path) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(str(path), None, "a readable YAML file", exc) from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise UserError(str(path), "names", "a list or {index: name} mapping of class names", names)


_TRAILING_INT = re.compile(r"(\d+)$")


def load_clip_yolo(folder: Path, names: Sequence[str] | None = None) -> ClipLabels:
    """A folder of per-frame YOLO files → ClipLabels (frame index = the trailing number of each file name)."""
    if not folder.is_dir():
        raise UserError(str(folder), None, "a folder of per-frame YOLO .txt files", "no such folder")
    names = list(names) if names else names_from_folder(folder)
    if not names:
        raise UserError(str(folder), "classes", "classes.txt or data.yaml in the folder, or --names", "none")
    ids = class_names_to_ids(names, str(folder), "names")
    frames: dict[int, FrameLabels] = {}
    for path in sorted(folder.glob("*.txt")):
        if path.name == "classes.txt":
            continue
        match = _TRAILING_INT.search(path.stem)
        if match is None:
            raise UserError(str(path), None, "a file name ending in the frame index (000017.txt)", path.name)
        frames[int(match.group(1))] = read_yolo_txt(path, ids)
    return ClipLabels(source=str(folder), fps=None, frames=frames, n_frames=(max(frames) + 1) if frames else 0)


def load_clip_labels(path: Path, names: Sequence[str] | None = None) -> ClipLabels:
    """JSON file or folder of YOLO files, by what ``path`` is."""
    if path.is_dir():
        return load_clip_yolo(path, names)
    return load_clip_json(path)


def find_clip_labels(labels: Path, clip: Path) -> Path:
    """The labels of ``clip`` under ``labels`` (a file for one clip, or a folder of NAME.labels.json / NAME/)."""
    if labels.is_file():
        return labels
    if not labels.is_dir():
        raise UserError(str(labels), None, "a labels file or folder", "no such file or folder")
    for candidate in (
        labels / f"{clip.stem}.labels.json",
        labels / f"{clip.stem}.json",
        labels / clip.stem,
    ):
        if candidate.exists():
            return candidate
    raise UserError(
        str(labels), clip.name, f"{clip.stem}.labels.json, {clip.stem}.json or a folder {clip.stem}/", "none of them"
    )


@dataclass(slots=True)
class LabelledImage:
    image: Path
    labels: FrameLabels


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def load_image_dataset(data: Path, names: Sequence[str] | None = None) -> tuple[list[LabelledImage], list[str]]:
    """Images and labels from a folder, a split list or a data.yaml; returns them with the class names."""
    if not data.exists():
        raise UserError(str(data), None, "a folder with images/ and labels/, a split list or a data.yaml",
                        "no such file or folder")
    images: list[Path]
    if data.is_dir():
        root = data / "images" if (data / "images").is_dir() else data
        images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        names = list(names) if names else names_from_folder(data)
    elif data.suffix.lower() in (".yaml", ".yml"):
        spec = yaml.safe_load(data.read_text(encoding="utf-8"))
        if not isinstance(spec, dict) or "val" not in spec:
            raise UserError(str(data), "val", "an Ultralytics data.yaml with a `val` entry", spec)
        base = Path(spec.get("path") or data.parent)
        base = base if base.is_absolute() else data.parent / base
        val = spec["val"] if isinstance(spec["val"], list) else [spec["val"]]
        sub: list[Path] = []
        for entry in val:
            p = Path(entry) if Path(entry).is_absolute() else base / entry
            if p.is_dir():
                sub.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES))
            else:
                sub.extend(_read_split_list(p))
        images = sub
        names = list(names) if names else _names_from_yaml(data)
    else:
        images = _read_split_list(data)
        names = list(names) if names else names_from_folder(data.parent)
    if not images:
        raise UserError(str(data), None, "at least one image (" + ", ".join(IMAGE_SUFFIXES) + ")", "none")
    if not names:
        raise UserError(str(data), "names", "class names from data.yaml, classes.txt or --names", "none")
    ids = class_names_to_ids(names, str(data), "names")
    return [LabelledImage(img, read_yolo_txt(_label_path(img), ids)) for img in images], list(names)


def _read_split_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(str(path), None, "a readable split list (one image path a line)", exc) from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line)
        out.append(p if p.is_absolute() else path.parent / p)
    return out

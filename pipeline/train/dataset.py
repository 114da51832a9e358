"""Assemble a YOLO training set from folders of labelled images (no torch here).

A *source* is a folder holding ``images/`` and ``labels/`` (YOLO text files,
``class cx cy w h`` normalised) or images with their ``.txt`` side by side,
and the names of its classes (from ``classes.txt``, ``data.yaml`` or given on
the command line). Each source class is mapped to one of minewatch's
:data:`~pipeline.types.CLASSES` (or dropped).

Frames cut from one video are nearly identical, so the split into train and
validation is made by *group*, never by frame: :func:`group_key` finds the
source video (or the original image of augmented copies) from the file name.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.errors import UserError
from pipeline.types import CLASS_INDEX, CLASSES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# "<video>_mp4-<frame>_jpg.rf.<hash>.jpg" (Roboflow exports of video frames)
_VIDEO_RE = re.compile(r"^(?P<video>.+?)_(?:mp4|avi|mov|mkv|m4v|webm|ts|flv)-\d+", re.IGNORECASE)
# "<original>_jpg.rf.<hash>.jpg" (Roboflow's augmented copies of one image)
_ROBOFLOW_RE = re.compile(r"^(?P<orig>.+?)\.rf\.[0-9a-f]+$", re.IGNORECASE)


def group_key(filename: str) -> str:
    """Which source (video, original image, camera and preset) a training image comes from.

    - ``fire1_mp4-23_jpg.rf.ab12.jpg`` → ``video:fire1`` (frames of one video stay together);
    - ``img_9_jpg.rf.ab12.jpg`` → ``image:img_9_jpg`` (Roboflow's augmented copies stay together);
    - ``cam-1__p2__20260101T000000Z_000042.jpg`` (minewatch harvest) → ``seq:cam-1__p2``;
    - anything else → ``image:<stem>``.
    """
    stem = Path(filename).stem
    match = _VIDEO_RE.match(stem)
    if match:
        return f"video:{match.group('video')}"
    if "__" in stem:
        return "seq:" + stem.rsplit("__", 1)[0]
    match = _ROBOFLOW_RE.match(stem)
    if match:
        return f"image:{match.group('orig')}"
    return f"image:{stem}"


def _stable_fraction(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_groups(
    keys: Sequence[str], val_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices of (train, val): every group lands wholly in one side.

    Groups are ordered by a seeded hash and taken into validation until it holds
    ``val_fraction`` of the images; video groups and image groups are balanced
    separately so that a few long videos cannot swallow the whole validation set.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_group: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_group.setdefault(key, []).append(i)
    val: list[int] = []
    for kind in sorted({k.split(":", 1)[0] for k in by_group}):
        groups = sorted((k for k in by_group if k.split(":", 1)[0] == kind), key=lambda k: _stable_fraction(k, seed))
        target = val_fraction * sum(len(by_group[k]) for k in groups)
        taken = 0
        for k in groups[:-1]:  # the last group always trains
            if taken >= target:
                break
            val.extend(by_group[k])
            taken += len(by_group[k])
    val_set = set(val)
    train = [i for i in range(len(keys)) if i not in val_set]
    return train, sorted(val_set)


@dataclass
class Source:
    """One folder of YOLO-labelled images and how its class ids map onto minewatch's classes."""

    root: Path
    names: list[str]  # the source's class names by id
    class_map: dict[str, str | None] = field(default_factory=dict)  # source name → minewatch name (None drops)
    licence: str = ""  # free text for the model card

    def target_index(self) -> dict[int, int | None]:
        """Source class id → minewatch class id (None: dropped)."""
        out: dict[int, int | None] = {}
        for i, name in enumerate(self.names):
            target = self.class_map.get(name, name if name in CLASS_INDEX else None)
            out[i] = None if target is None else CLASS_INDEX[target]
        return out


def read_class_names(root: Path) -> list[str] | None:
    """Class names of a folder from ``classes.txt`` (one a line) or ``data.yaml`` (``names:``)."""
    txt = root / "classes.txt"
    if txt.is_file():
        return [line.strip() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        path = root / name
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
    return None


def parse_source(spec: str, class_map: dict[str, str | None] | None = None) -> Source:
    """``DIR`` or ``DIR=name0,name1,…`` (names by class id) → :class:`Source`; UserError when unusable."""
    path_text, _, names_text = spec.partition("=")
    root = Path(path_text).expanduser()
    if not root.is_dir():
        raise UserError(path_text, "--data", "a folder of YOLO-labelled images", "no such folder")
    names = [n.strip() for n in names_text.split(",") if n.strip()] if names_text else read_class_names(root)
    if not names:
        raise UserError(
            str(root), "--data", "class names (classes.txt, data.yaml `names:`, or DIR=name0,name1)", "none"
        )
    cmap = dict(class_map or {})
    unknown = [v for v in cmap.values() if v is not None and v not in CLASS_INDEX]
    if unknown:
        raise UserError(str(root), "--map", f"targets among {', '.join(CLASSES)} or 'none'", unknown[0])
    return Source(root=root, names=names, class_map=cmap)


def find_pairs(root: Path) -> list[tuple[Path, Path | None]]:
    """(image, label or None) for every image under ``root`` (``images/``+``labels/`` or side by side)."""
    image_dir = root / "images" if (root / "images").is_dir() else root
    label_dir = root / "labels" if (root / "labels").is_dir() else None
    pairs: list[tuple[Path, Path | None]] = []
    for image in sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        rel = image.relative_to(image_dir).with_suffix(".txt")
        candidates = [label_dir / rel] if label_dir else []
        candidates.append(image.with_suffix(".txt"))
        label = next((c for c in candidates if c.is_file()), None)
        pairs.append((image, label))
    return pairs


def read_labels(path: Path | None, source: str = "") -> list[tuple[int, float, float, float, float]]:
    """YOLO label rows ``(cls, cx, cy, w, h)``; UserError naming the file and line for a malformed row."""
    if path is None:
        return []
    rows: list[tuple[int, float, float, float, float]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 5:
                raise ValueError(f"{len(parts)} values")
            cls = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError as exc:
            raise UserError(str(path), f"line {n}", "`class cx cy w h` (YOLO, normalised)", exc) from None
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
            raise UserError(str(path), f"line {n}", "cx, cy, w, h within [0, 1]", line.strip())
        rows.append((cls, cx, cy, w, h))
    return rows


@dataclass
class Item:
    image: Path
    rows: list[tuple[int, float, float, float, float]]  # in minewatch class ids
    group: str
    source: str


@dataclass
class DatasetInfo:
    root: Path
    yaml_path: Path
    n_train: int
    n_val: int
    groups_train: int
    groups_val: int
    boxes_train: dict[str, int]
    boxes_val: dict[str, int]
    val_groups: list[str]


def collect(sources: Iterable[Source]) -> list[Item]:
    """Read every source and map its labels to minewatch ids (unmapped classes are dropped)."""
    items: list[Item] = []
    for src in sources:
        mapping = src.target_index()
        pairs = find_pairs(src.root)
        if not pairs:
            raise UserError(str(src.root), "--data", "image files (jpg/png) with YOLO labels", "no images")
        for image, label in pairs:
            rows = []
            for cls, cx, cy, w, h in read_labels(label):
                if cls not in mapping:
                    raise UserError(
                        str(label), "class", f"a class id below {len(src.names)} ({', '.join(src.names)})", cls
                    )
                target = mapping[cls]
                if target is not None:
                    rows.append((target, cx, cy, w, h))
            items.append(Item(image, rows, f"{src.root.name}/{group_key(image.name)}", str(src.root)))
    return items


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        import shutil

        shutil.copy2(src, dst)


def write_dataset(items: Sequence[Item], out_dir: Path, val_fraction: float, seed: int = 0,
                  val_items: Sequence[Item] | None = None) -> DatasetInfo:
    """Write ``out_dir/{images,labels}/{train,val}`` (images linked, labels written) and ``data.yaml``.

    With ``val_items`` given, those are the validation set and ``items`` all train.
    """
    if val_items is None:
        train_idx, val_idx = split_groups([it.group for it in items], val_fraction, seed)
        train = [items[i] for i in train_idx]
        val = [items[i] for i in val_idx]
    else:
        train, val = list(items), list(val_items)
    out_dir = out_dir.resolve()
    boxes: dict[str, dict[str, int]] = {}
    for split, part in (("train", train), ("val", val)):
        counts: dict[str, int] = dict.fromkeys(CLASSES, 0)
        for k, it in enumerate(part):
            # unique, readable names: sources may share file names
            name = f"{k:05d}_{it.image.stem}"
            _link(it.image, out_dir / "images" / split / f"{name}{it.image.suffix.lower()}")
            lines = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in it.rows]
            label = out_dir / "labels" / split / f"{name}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
            for c, *_ in it.rows:
                counts[CLASSES[c]] += 1
        boxes[split] = counts
    data = {
        "path": str(out_dir),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASSES)),
    }
    yaml_path = out_dir / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return DatasetInfo(
        root=out_dir,
        yaml_path=yaml_path,
        n_train=len(train),
        n_val=len(val),
        groups_train=len({it.group for it in train}),
        groups_val=len({it.group for it in val}),
        boxes_train=boxes["train"],
        boxes_val=boxes["val"],
        val_groups=sorted({it.group for it in val}),
    )

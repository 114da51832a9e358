"""Label readers: per-frame JSON, per-frame YOLO folders, image folders/split lists/data.yaml, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.eval.labels import (
    find_clip_labels,
    load_clip_json,
    load_clip_labels,
    load_clip_yolo,
    load_image_dataset,
)
from pipeline.types import CLASS_INDEX

GOOD = {
    "fps": 5,
    "size": [608, 608],
    "frames": [
        {"index": 0, "boxes": [{"cls": "fire", "cxcywh_norm": [0.5, 0.5, 0.2, 0.4]}]},
        {"index": 2, "boxes": [{"cls": "smoke", "cxcywh_norm": [0.25, 0.25, 0.5, 0.5], "lat": 38.7, "lon": 111.6}]},
        {"index": 3, "boxes": []},
    ],
}


def write(tmp_path: Path, data: object, name: str = "clip.labels.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_clip_json(tmp_path: Path) -> None:
    labels = load_clip_json(write(tmp_path, GOOD))
    assert labels.fps == 5.0
    assert sorted(labels.frames) == [0, 2, 3]
    assert len(labels.at(1)) == 0  # a frame not listed has no boxes
    np.testing.assert_allclose(labels.at(0).xyxy_px((100, 200)), [[40, 60, 60, 140]])
    assert labels.at(0).class_id.tolist() == [CLASS_INDEX["fire"]]
    assert np.isnan(labels.at(0).latlon).all()
    np.testing.assert_allclose(labels.at(2).latlon, [[38.7, 111.6]])


def frame_with(box: dict) -> dict:
    return {"fps": 5, "frames": [{"index": 0, "boxes": [box]}]}


BAD_JSON = [
    ("not_json", "{oops", "line 1", "valid JSON"),
    ("no_frames", {"fps": 5}, "frames", "a JSON object with a `frames` list"),
    ("bad_fps", {"fps": -1, "frames": []}, "fps", "a positive number"),
    ("bad_index", {"frames": [{"index": -3, "boxes": []}]}, "frames[0].index", "a frame index ≥ 0"),
    ("unknown_class", frame_with({"cls": "cow", "cxcywh_norm": [0.5, 0.5, 0.1, 0.1]}), "frames[0].boxes[0].cls",
     "one of excavator"),
    ("three_numbers", frame_with({"cls": "fire", "cxcywh_norm": [0.5, 0.5, 0.1]}),
     "frames[0].boxes[0].cxcywh_norm", "4 numbers in [0, 1]"),
    ("pixels_not_normalised", frame_with({"cls": "fire", "cxcywh_norm": [300, 200, 50, 50]}),
     "frames[0].boxes[0].cxcywh_norm", "4 numbers in [0, 1]"),
    ("lat_without_lon", frame_with({"cls": "fire", "cxcywh_norm": [0.5, 0.5, 0.1, 0.1], "lat": 38.0}),
     "frames[0].boxes[0].lat/lon", "both numbers"),
]


@pytest.mark.parametrize(("case", "data", "field", "expected"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_clip_json_errors(tmp_path: Path, case: str, data: object, field: str, expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(UserError) as info:
        load_clip_json(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: expected {expected}")


def test_clip_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_clip_json(tmp_path / "nope.labels.json")


def test_clip_yolo_folder(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "classes.txt").write_text("smoke\nfire\n")
    (folder / "clip_000003.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.1 0.1\n")
    (folder / "000007.txt").write_text("")
    labels = load_clip_yolo(folder)
    assert sorted(labels.frames) == [3, 7]
    assert labels.at(3).class_id.tolist() == [CLASS_INDEX["fire"], CLASS_INDEX["smoke"]]
    assert len(labels.at(7)) == 0
    assert labels.fps is None
    # --names overrides classes.txt
    assert load_clip_labels(folder, ["fire", "smoke"]).at(3).class_id.tolist() == [
        CLASS_INDEX["smoke"], CLASS_INDEX["fire"]]


@pytest.mark.parametrize(
    ("case", "content", "expected"),
    [
        ("polygon", "0 0.1 0.1 0.2 0.2 0.3 0.3\n", "5 numbers"),
        ("class_out_of_range", "4 0.5 0.5 0.1 0.1\n", "a class index in 0..1"),
        ("not_numbers", "fire 0.5 0.5 0.1 0.1\n", "an integer class and 4 numbers"),
    ],
)
def test_clip_yolo_errors(tmp_path: Path, case: str, content: str, expected: str) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "000001.txt").write_text(content)
    with pytest.raises(UserError, match=expected):
        load_clip_yolo(folder, ["fire", "smoke"])


def test_clip_yolo_needs_names_and_index(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "000001.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(UserError, match="classes.txt or data.yaml"):
        load_clip_yolo(folder)
    (folder / "frame.txt").write_text("")
    with pytest.raises(UserError, match="ending in the frame index"):
        load_clip_yolo(folder, ["fire"])
    with pytest.raises(UserError, match="one of excavator"):
        load_clip_yolo(folder, ["cow"])


def test_find_clip_labels(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    (tmp_path / "a.labels.json").write_text("{}")
    assert find_clip_labels(tmp_path, clip) == tmp_path / "a.labels.json"
    (tmp_path / "b").mkdir()
    assert find_clip_labels(tmp_path, tmp_path / "b.mp4") == tmp_path / "b"
    with pytest.raises(UserError, match=r"c\.labels\.json"):
        find_clip_labels(tmp_path, tmp_path / "c.mp4")


def make_images(root: Path, n: int = 2) -> list[Path]:
    import cv2

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    paths = []
    for i in range(n):
        img = root / "images" / "val" / f"im{i}.jpg"
        cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
        (root / "labels" / "val" / f"im{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.5 0.5\n")
        paths.append(img)
    return paths


def test_image_folder_split_list_and_yaml(tmp_path: Path) -> None:
    paths = make_images(tmp_path)
    (tmp_path / "data.yaml").write_text("path: .\nval: images/val\nnames: {0: excavator, 1: truck}\n")
    items, names = load_image_dataset(tmp_path)
    assert names == ["excavator", "truck"]
    assert [it.image for it in items] == paths
    assert [it.labels.class_id.tolist() for it in items] == [[CLASS_INDEX["excavator"]], [CLASS_INDEX["truck"]]]
    split = tmp_path / "val.txt"
    split.write_text(f"# held out\nimages/val/im1.jpg\n{paths[0]}\n")
    items, _ = load_image_dataset(split)
    assert [it.image.name for it in items] == ["im1.jpg", "im0.jpg"]
    items, _ = load_image_dataset(tmp_path / "data.yaml")
    assert len(items) == 2


@pytest.mark.parametrize(
    ("case", "names", "expected"),
    [
        ("unknown_name", ["excavator", "cow"], "names\\[1\\]: expected one of"),
        ("no_names", None, "class names"),
    ],
)
def test_image_dataset_errors(tmp_path: Path, case: str, names: list[str] | None, expected: str) -> None:
    make_images(tmp_path)
    with pytest.raises(UserError, match=expected):
        load_image_dataset(tmp_path, names)


def test_image_dataset_missing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or folder"):
        load_image_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="at least one image"):
        load_image_dataset(tmp_path / "empty", ["fire"])

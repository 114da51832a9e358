"""``minewatch train``: dataset assembly, split by source video, and a real (tiny) training run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import DetectorConfig
from pipeline.detect.onnx_detector import OnnxDetector
from pipeline.errors import UserError
from pipeline.train.cli import cli_main, parse_map
from pipeline.train.dataset import collect, group_key, parse_source, read_labels, split_groups
from pipeline.types import CLASS_INDEX, CLASSES


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("fire1_mp4-23_jpg.rf.ae8ce7517eb0.jpg", "video:fire1"),
        ("pexels-alan-w-8365989_mp4-7_jpg.rf.00ff.jpg", "video:pexels-alan-w-8365989"),
        ("img_1018_jpg.rf.8a71236305155fd5.jpg", "image:img_1018_jpg"),  # augmented copies stay together
        ("img_1018_jpg.rf.9fcf1b189752b0e4.jpg", "image:img_1018_jpg"),
        ("cam-1__p2__20260101T000000Z_000042.jpg", "seq:cam-1__p2"),  # minewatch harvest
        ("10.jpg", "image:10"),
    ],
)
def test_group_key(name: str, key: str) -> None:
    assert group_key(name) == key


def test_split_keeps_groups_whole_and_is_seeded() -> None:
    keys = [f"video:v{i % 7}" for i in range(70)] + [f"image:i{i}" for i in range(30)]
    train, val = split_groups(keys, 0.2, seed=3)
    assert sorted(train + val) == list(range(100))
    assert not {keys[i] for i in train} & {keys[i] for i in val}
    assert {keys[i].split(":")[0] for i in val} == {"video", "image"}  # both kinds are validated
    assert 10 <= len(val) <= 40
    assert split_groups(keys, 0.2, seed=3) == (train, val)
    assert split_groups(keys, 0.2, seed=4) != (train, val)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["digger=excavator", "lorry=truck"], {"digger": "excavator", "lorry": "truck"}),
        (["default=none"], {"default": None}),
        ([], {}),
    ],
)
def test_parse_map(items: list[str], expected: dict[str, str | None]) -> None:
    assert parse_map(items) == expected


@pytest.mark.parametrize("bad", ["digger", "=excavator", "digger=bulldozer"])
def test_parse_map_rejects(bad: str) -> None:
    with pytest.raises(UserError, match="--map"):
        parse_map([bad])


@pytest.mark.parametrize(
    ("text", "where"),
    [("0 0.5 0.5 0.2", "line 1"), ("0 0.5 0.5 0.2 0.2\n1 0.5 1.5 0.2 0.2", "line 2"), ("x 0.5 0.5 0.1 0.1", "line 1")],
)
def test_read_labels_rejects_malformed_rows(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "a.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=f"a.txt: {where}: expected"):
        read_labels(path)


def make_folder(root: Path, names: list[str], n_videos: int = 3, frames: int = 3, size: int = 96) -> Path:
    """Frames of a few fake 'videos': a dark block (class 0) on a textured background, YOLO labels."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    (root / "licence.txt").write_text("made by the test\n")
    for v in range(n_videos):
        for f in range(frames):
            img = rng.integers(150, 255, (size, size, 3), dtype=np.uint8)
            x, y = int(rng.integers(5, size // 2)), int(rng.integers(5, size // 2))
            w, h = size // 3, size // 4
            img[y : y + h, x : x + w] = (30, 40, 50)
            stem = f"site{v}_mp4-{f}_jpg.rf.{v}{f}"
            cv2.imwrite(str(root / "images" / f"{stem}.jpg"), img)
            cx, cy = (x + w / 2) / size, (y + h / 2) / size
            (root / "labels" / f"{stem}.txt").write_text(f"0 {cx:.4f} {cy:.4f} {w / size:.4f} {h / size:.4f}\n")
    return root


def test_collect_maps_names_and_drops_unmapped(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", ["digger"], n_videos=1, frames=2)
    mapped = collect([parse_source(str(root), {"digger": "excavator"})])
    assert all(it.rows[0][0] == CLASS_INDEX["excavator"] for it in mapped)
    assert all(not it.rows for it in collect([parse_source(str(root))]))  # "digger" is not a minewatch class
    named = collect([parse_source(f"{root}=smoke")])  # names given after "=" win over classes.txt
    assert all(it.rows[0][0] == CLASS_INDEX["smoke"] for it in named)


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--data", "{missing}", "--weights", "yolov8n.yaml", "--out", "{out}"], "--data"),
        (["--data", "{data}", "--weights", "{missing}.pt", "--out", "{out}"], "--weights"),
        (["--data", "{data}", "--weights", "yolov8n.yaml", "--out", "{out}", "--imgsz", "100"], "--imgsz"),
        (["--data", "{data}", "--weights", "yolov8n.yaml", "--out", "{out}.pt"], "--out"),
        (["--data", "{data}", "--weights", "yolov8n.yaml", "--out", "{out}"], "labels"),  # digger unmapped
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, argv: list[str], field: str) -> None:
    data = make_folder(tmp_path / "d", ["digger"], n_videos=2, frames=1)
    subs = {"{missing}": str(tmp_path / "nope"), "{data}": str(data), "{out}": str(tmp_path / "m.onnx")}
    args = [a for a in argv]
    for k, v in subs.items():
        args = [a.replace(k, v) for a in args]
    with pytest.raises(UserError, match=field.replace("-", r"\-")):
        cli_main(args)


@pytest.mark.slow
def test_train_one_epoch_produces_a_loadable_onnx_and_a_card(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    data = make_folder(tmp_path / "site", ["digger"], n_videos=4, frames=2)
    out = tmp_path / "models" / "site.onnx"
    code = cli_main(
        ["--data", str(data), "--map", "digger=excavator", "--weights", "yolov8n.yaml", "--out", str(out),
         "--work", str(tmp_path / "work"),
         "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--val-fraction", "0.25"]
    )
    assert code == 0
    det = OnnxDetector(DetectorConfig.model_validate({"model_path": out, "providers": ["CPUExecutionProvider"]}))
    assert tuple(det.names.values()) == CLASSES and det.input_size_px == 64 and det.fixed_batch is None
    assert len(det.detect([np.zeros((96, 96, 3), np.uint8)] * 2)) == 2
    card = out.with_suffix(".md").read_text()
    assert "minewatch train" in card and "| excavator |" in card and "made by the test" in card
    # split by source video: one of the 4 videos (2 frames) is validation, named in the card
    assert "Train: 6 images, val: 2 images" in card
    assert "site/video:site" in card


@pytest.mark.parametrize(
    ("box", "overlaps"),
    [
        ((0.5, 0.5, 0.2, 0.2), True),  # the same box: IoU 1
        ((0.55, 0.5, 0.2, 0.2), True),  # 0.15 / 0.25 wide: IoU 0.6
        ((0.65, 0.5, 0.2, 0.2), False),  # 0.05 / 0.35 wide: IoU 1/7
        ((0.9, 0.9, 0.1, 0.1), False),  # apart
    ],
)
def test_pseudo_box_over_a_human_label_is_skipped(box: tuple[float, float, float, float], overlaps: bool) -> None:
    from pipeline.train.pseudo import overlaps_a_label

    rows = [(CLASS_INDEX["excavator"], 0.5, 0.5, 0.2, 0.2)]
    assert overlaps_a_label(box, rows, 0.3) is overlaps
    assert overlaps_a_label(box, [], 0.3) is False

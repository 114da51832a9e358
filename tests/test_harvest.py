"""Hard-example harvesting: which frames are kept, the YOLO labels written, and `minewatch train` taking them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import HarvestConfig, ScoreThresholds
from pipeline.detect.harvest import Harvester, yolo_lines
from pipeline.train.dataset import collect, parse_source
from pipeline.types import CLASS_INDEX, AlertEvent, Detections, Frame, Pose

EXC, FIRE = CLASS_INDEX["excavator"], CLASS_INDEX["fire"]


def frame(camera: str = "cam-1", preset: str | None = "p1", seq: int = 1, t: float = 1_767_225_600.0) -> Frame:
    img = np.full((100, 200, 3), 90, np.uint8)
    img[40:80, 20:60] = (20, 30, 200)
    return Frame(camera, seq, t, img, Pose(0.0, -5.0, 60.0, preset=preset))


def dets(*rows: tuple[int, float, tuple[float, float, float, float]]) -> Detections:
    """Rows as (class_id, score, xyxy)."""
    return Detections.from_rows([(*xyxy, score, cls) for cls, score, xyxy in rows])


def new_alert(camera: str = "cam-1") -> AlertEvent:
    return AlertEvent("new", "a1", camera, "excavator", "closed_mine", 0.8, (20, 40, 60, 80), 0.0, 0.0)


def harvester(tmp_path: Path, **kw: object) -> Harvester:
    cfg = HarvestConfig.model_validate({"enabled": True, "dir": tmp_path / "harvest", "sample_every_s": 0, **kw})
    return Harvester(cfg, ScoreThresholds.model_validate({"default": 0.35, "fire": 0.5}))


CONFIDENT = (EXC, 0.8, (20.0, 40.0, 60.0, 80.0))
HESITANT_FIRE = (FIRE, 0.3, (100.0, 10.0, 120.0, 30.0))  # 0.3 < fire's 0.5 threshold, above low_score_min 0.1
NOISE = (FIRE, 0.05, (0.0, 0.0, 10.0, 10.0))  # under low_score_min: neither a reason nor a label


@pytest.mark.parametrize(
    ("kw", "found", "events", "rule"),
    [
        ({}, [CONFIDENT], [new_alert()], "alert"),
        ({}, [CONFIDENT], [new_alert("other-cam")], None),  # another camera's alert
        ({}, [CONFIDENT], [], None),  # confident and no alert: nothing to learn
        ({}, [CONFIDENT, HESITANT_FIRE], [], "low_score"),
        ({}, [NOISE], [], None),
        ({"low_score": False}, [HESITANT_FIRE], [], None),
        ({"on_alert": False}, [CONFIDENT], [new_alert()], None),
        ({"sample_every_s": 600}, [], [], "sample"),
        ({"enabled": False}, [CONFIDENT], [new_alert()], None),
    ],
)
def test_rules_table(tmp_path: Path, kw: dict[str, object], found: list[tuple[int, float, tuple[float, ...]]],
                     events: list[AlertEvent], rule: str | None) -> None:
    h = harvester(tmp_path, **kw)
    saved = h.consider(frame(), dets(*found), events, now_s=1000.0)  # type: ignore[arg-type]
    if rule is None:
        assert saved is None
    else:
        assert saved is not None and saved.is_file()
        record = json.loads((tmp_path / "harvest" / "harvest.jsonl").read_text().splitlines()[-1])
        assert record["rule"] == rule and record["file"] == saved.name


def test_labels_are_yolo_rows_of_all_boxes_above_low_score_min(tmp_path: Path) -> None:
    h = harvester(tmp_path)
    saved = h.consider(frame(), dets(CONFIDENT, HESITANT_FIRE, NOISE), [], now_s=0.0)
    assert saved is not None and saved.name == "cam-1__p1__20260101T000000Z_000001.jpg"
    label = (tmp_path / "harvest" / "labels" / "cam-1__p1__20260101T000000Z_000001.txt").read_text().splitlines()
    # 200×100 image: (20,40,60,80) → centre (40, 60) / (200, 100), size 40×40
    assert label == ["0 0.200000 0.600000 0.200000 0.400000", "2 0.550000 0.200000 0.100000 0.200000"]
    assert (tmp_path / "harvest" / "classes.txt").read_text().split() == [
        "excavator", "truck", "fire", "smoke", "person"]


def test_rate_limit_per_camera_preset_and_rule(tmp_path: Path) -> None:
    h = harvester(tmp_path, min_interval_s=30, sample_every_s=600)
    alert = [new_alert()]
    assert h.consider(frame(seq=1), dets(CONFIDENT), alert, now_s=0.0) is not None  # alert
    assert h.consider(frame(seq=2), dets(CONFIDENT), alert, now_s=10.0) is not None  # alert limited → sample
    assert h.consider(frame(seq=3), dets(CONFIDENT), alert, now_s=20.0) is None  # both limited
    assert h.consider(frame(seq=4, preset="p2"), dets(CONFIDENT), alert, now_s=20.0) is not None  # other preset
    assert h.consider(frame(seq=5), dets(CONFIDENT), alert, now_s=31.0) is not None  # interval over
    assert h.counts["alert"] == 3 and h.counts["sample"] == 1


def test_stops_at_max_images(tmp_path: Path) -> None:
    h = harvester(tmp_path, max_images=2, min_interval_s=0)
    saved = [h.consider(frame(seq=i), dets(HESITANT_FIRE), [], now_s=float(i)) for i in range(4)]
    assert [s is not None for s in saved] == [True, True, False, False]
    assert h.counts["skipped_full"] == 2
    again = Harvester(h.cfg, ScoreThresholds.model_validate({}))  # counts the images already there
    assert again.consider(frame(seq=9), dets(HESITANT_FIRE), [], now_s=99.0) is None


def test_yolo_lines_clip_to_the_image() -> None:
    assert yolo_lines(dets((1, 0.9, (-10.0, 50.0, 100.0, 150.0))), (200, 100)) == [
        "1 0.250000 0.750000 0.500000 0.500000"]


def test_train_reads_harvest_output_grouped_by_camera_preset(tmp_path: Path) -> None:
    h = harvester(tmp_path, min_interval_s=0)
    for cam in ("cam-1", "cam-2"):
        for preset in ("p1", "p2"):
            for seq in range(2):
                h.consider(frame(cam, preset, seq, t=1_767_225_600.0 + seq), dets(CONFIDENT, HESITANT_FIRE), [],
                           now_s=float(seq))
    items = collect([parse_source(str(tmp_path / "harvest"))])
    assert len(items) == 8
    assert {it.group for it in items} == {f"harvest/seq:{c}__{p}" for c in ("cam-1", "cam-2") for p in ("p1", "p2")}
    assert all([r[0] for r in it.rows] == [EXC, FIRE] for it in items)


@pytest.mark.slow
def test_minewatch_train_accepts_harvest_output(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from pipeline.cli import main

    h = harvester(tmp_path, min_interval_s=0)
    for cam in ("cam-1", "cam-2"):
        for seq in range(3):
            h.consider(frame(cam, "p1", seq, t=1_767_225_600.0 + seq), dets(CONFIDENT), [new_alert(cam)],
                       now_s=float(seq))
    out = tmp_path / "site.onnx"
    code = main(["train", "--data", str(tmp_path / "harvest"), "--weights", "yolov8n.yaml", "--out", str(out),
                 "--work", str(tmp_path / "work"),
                 "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--val-fraction", "0.3"])
    assert code == 0 and out.is_file()
    card = out.with_suffix(".md").read_text()
    assert "Train: 3 images, val: 3 images" in card  # one camera's preset each side, never mixed
    assert "operator owns them" in card  # the harvest folder's licence.txt

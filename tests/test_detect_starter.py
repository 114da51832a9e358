"""Real inference with the committed starter model (models/minewatch-starter.onnx)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from pipeline.config import DetectorConfig
from pipeline.detect.onnx_detector import OnnxDetector
from pipeline.types import CLASS_INDEX, CLASSES

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "models" / "minewatch-starter.onnx"


def cfg(path: Path) -> DetectorConfig:
    return DetectorConfig.model_validate({"model_path": path, "providers": ["CPUExecutionProvider"]})



def test_starter_model_metadata() -> None:
    det = OnnxDetector(cfg(STARTER))
    assert tuple(det.names.values()) == CLASSES
    assert det.fixed_batch is None and det.input_size_px % 32 == 0


def test_starter_model_finds_people_on_the_ultralytics_bus_image() -> None:
    import cv2

    ultralytics = pytest.importorskip("ultralytics")
    bus = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    img: NDArray[np.uint8] = np.asarray(cv2.imread(str(bus)), np.uint8)
    det = OnnxDetector(cfg(STARTER))
    single = det.detect([img])[0]
    people = single.xyxy[single.class_id == CLASS_INDEX["person"]]
    assert len(people) >= 2, single
    # people stand on the road: boxes taller than wide, bottoms in the lower half of the 1080 px image
    assert ((people[:, 3] - people[:, 1]) > (people[:, 2] - people[:, 0])).all()
    assert (people[:, 3] > 540).all()
    # the same image in a batch with another gives the same boxes
    batched = det.detect([img, img[:, ::-1].copy()])[0]
    np.testing.assert_allclose(batched.xyxy, single.xyxy, atol=0.5)


@pytest.mark.shared
def test_starter_model_finds_fire_or_smoke_on_a_real_clip(shared_data: Path) -> None:
    import json

    import av

    clip = shared_data / "clips" / "fire1.mp4"
    labels = json.loads((shared_data / "clips" / "fire1.labels.json").read_text())
    with av.open(str(clip)) as container:
        decoded = zip(range(5), container.decode(video=0), strict=False)
        frames = [np.asarray(f.to_ndarray(format="bgr24"), np.uint8) for _, f in decoded]
    out = OnnxDetector(cfg(STARTER)).detect(frames)
    found = {n for d in out for n in d.class_names()}
    assert found & {"fire", "smoke"}, (found, str(labels)[:200])


def test_starter_card_names_data_licences_and_figures() -> None:
    card = STARTER.with_suffix(".md").read_text(encoding="utf-8")
    for needed in ("Roboflow Universe, custom-thxhn/fire-wrpgm v8", "CC BY 4.0", "educational and research purposes",
                   "AGPL-3.0", "scripts/train_starter.py", "AP50-95", "SOURCE VIDEO"):
        assert needed in card, needed
    size_mb = STARTER.stat().st_size / 1e6
    assert size_mb < 15, size_mb

"""Head transfer: new classes start from pretrained rows, so fine-tuning does not forget people and trucks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import UserError
from pipeline.types import CLASS_INDEX, CLASSES

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")


@pytest.fixture
def pretrained(tmp_path: Path) -> Path:
    """A small 'pretrained' checkpoint with its own class names (random weights: only the rows matter)."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    model.names = {0: "person", 1: "truck", 2: "car"}
    path = tmp_path / "pre.pt"
    torch.save({"model": model.half(), "train_args": {}, "epoch": -1}, str(path))
    return path


def test_rows_are_copied_and_outputs_match(pretrained: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO

    from pipeline.train.headinit import init_from_pretrained

    out = tmp_path / "init.pt"
    used = init_from_pretrained(pretrained, CLASSES, {"person": "person", "excavator": "truck"}, out)
    assert used == {"person": "person", "excavator": "truck"}
    src: Any = YOLO(str(pretrained)).model
    new: Any = YOLO(str(out)).model
    src, new = src.float().eval(), new.float().eval()
    assert new.names == dict(enumerate(CLASSES)) and new.model[-1].nc == len(CLASSES)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y_src, y_new = src(x)[0], new(x)[0]  # (1, 4 + nc, anchors), sigmoid scores
    torch.testing.assert_close(y_new[:, :4], y_src[:, :4], atol=1e-3, rtol=1e-3)  # boxes: untouched
    torch.testing.assert_close(y_new[:, 4 + CLASS_INDEX["person"]], y_src[:, 4 + 0], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(y_new[:, 4 + CLASS_INDEX["excavator"]], y_src[:, 4 + 1], atol=1e-3, rtol=1e-3)
    # fresh rows start at the prior: low and equal everywhere
    fire = y_new[:, 4 + CLASS_INDEX["fire"]]
    assert float(fire.max()) < 0.01


def test_unknown_pretrained_class_is_a_user_error(pretrained: Path, tmp_path: Path) -> None:
    from pipeline.train.headinit import init_from_pretrained

    with pytest.raises(UserError, match="'bulldozer'"):
        init_from_pretrained(pretrained, CLASSES, {"excavator": "bulldozer"}, tmp_path / "x.pt")


@pytest.mark.parametrize("bad", ["person", "lorry=truck", "truck="])
def test_head_from_parser_rejects(bad: str) -> None:
    from pipeline.train.cli import parse_head_from

    with pytest.raises(UserError, match="--head-from"):
        parse_head_from([bad])

"""The regression gate: the starter model's figures on held-out data may not get worse than the committed
baseline (docs/baselines/minewatch-starter.json) beyond its stated tolerances."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.eval.baseline import DEFAULT_BASELINE, TOLERANCES, compare, heldout_split, measure

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "models" / "minewatch-starter.onnx"


def figures() -> dict[str, Any]:
    boxes = {"n_images": 10, "map50": 0.6, "map50_95": 0.3,
             "classes": {"fire": {"n_labels": 5, "ap50": 0.7, "ap50_95": 0.4},
                         "smoke": {"n_labels": 5, "ap50": 0.5, "ap50_95": 0.2}}}
    return {
        "tolerances": dict(TOLERANCES),
        "images": copy.deepcopy(boxes),
        "clips": {"boxes": copy.deepcopy(boxes), "alerts": {"hours": 0.01, "classes": {
            "smoke": {"n_events": 2, "n_caught": 2, "n_false_alerts": 0, "time_to_alert_mean_s": 0.6}}}},
    }


def worse(path: str, value: Any) -> dict[str, Any]:
    current = figures()
    node: Any = current
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return current


@pytest.mark.parametrize(
    ("case", "current", "fails"),
    [
        ("same", figures(), False),
        ("ap_within_tolerance", worse("images.classes.fire.ap50", 0.7 - 0.015), False),
        ("ap_beyond_tolerance", worse("images.classes.fire.ap50", 0.7 - 0.03), True),
        ("ap_better", worse("images.classes.fire.ap50", 0.9), False),
        ("map_beyond_tolerance", worse("clips.boxes.map50_95", 0.25), True),
        ("class_missing", worse("images.classes", {"fire": {"n_labels": 5, "ap50": 0.7, "ap50_95": 0.4}}), True),
        ("event_lost", worse("clips.alerts.classes.smoke.n_caught", 1), True),
        ("false_alert_added", worse("clips.alerts.classes.smoke.n_false_alerts", 1), True),
        ("alert_later_within", worse("clips.alerts.classes.smoke.time_to_alert_mean_s", 0.6 + 0.3), False),
        ("alert_later_beyond", worse("clips.alerts.classes.smoke.time_to_alert_mean_s", 0.6 + 0.5), True),
        ("false_alert_new_class", worse("clips.alerts.classes.fire", {"n_events": 0, "n_caught": 0,
                                                                        "n_false_alerts": 2}), True),
    ],
)
def test_compare_gate(case: str, current: dict[str, Any], fails: bool) -> None:
    problems = compare(figures(), current)
    assert bool(problems) == fails, problems


@pytest.mark.shared
def test_heldout_split_matches_the_model_card(shared_data: Path) -> None:
    """The held-out videos are the ones the starter model's card names as validation videos."""
    images, videos = heldout_split(shared_data)
    assert videos, "no held-out video"
    assert len(images) > 50
    card = STARTER.with_suffix(".md")
    if not card.is_file():
        pytest.skip("models/minewatch-starter.md (model card) not there yet")
    text = card.read_text()
    for video in videos:
        assert video in text, f"held-out video {video} not named in the model card"


@pytest.mark.shared
@pytest.mark.slow
def test_starter_model_not_worse_than_baseline(shared_data: Path) -> None:
    if not STARTER.is_file():
        pytest.skip("models/minewatch-starter.onnx not there")
    if not DEFAULT_BASELINE.is_file():
        pytest.fail(f"{DEFAULT_BASELINE} is missing: run `minewatch eval baseline --out {DEFAULT_BASELINE}`")
    baseline = json.loads(DEFAULT_BASELINE.read_text())
    current = measure(shared_data)
    assert current["split"]["heldout_videos"] == baseline["split"]["heldout_videos"]
    assert current["split"]["n_heldout_images"] == baseline["split"]["n_heldout_images"]
    problems = compare(baseline, current)
    assert not problems, "\n".join(problems)

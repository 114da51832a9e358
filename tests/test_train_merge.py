"""Merging a donor model's classes into a main model (pipeline/train/merge.py), checked through OnnxDetector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_detect_onnx import SIZE, cfg, make_model

from pipeline.detect.onnx_detector import OnnxDetector
from pipeline.train.merge import merge_donor_classes


def test_donor_rows_replace_main_rows(tmp_path: Path) -> None:
    main = make_model(tmp_path / "main.onnx", names={0: "excavator", 1: "smoke"})  # smoke 0.6 at (6,6,10,10)
    head = np.zeros((6, 2), np.float32)
    head[:, 0] = [48, 48, 8, 8, 0.0, 0.0]  # donor class 0 gets the brightness through the mask
    head[:, 1] = [16, 48, 8, 8, 0.0, 0.9]  # donor class 1 ("cloud") at 0.9
    donor = make_model(tmp_path / "donor.onnx", head=head, names={0: "lamp", 1: "cloud"})
    out = merge_donor_classes(main, donor, {1: 1}, tmp_path / "merged.onnx")  # main smoke ← donor cloud
    det = OnnxDetector(cfg(out, class_map={"excavator": "excavator", "smoke": "smoke"}))
    assert det.names == {0: "excavator", 1: "smoke"}
    found = det.detect([np.full((SIZE, SIZE, 3), 255, np.uint8)])[0]
    by_class = dict(zip(found.class_names(), found.xyxy.tolist(), strict=True))
    assert set(by_class) == {"excavator", "smoke"} and len(found) == 2
    np.testing.assert_allclose(by_class["excavator"], [24, 24, 40, 40])  # from the main model
    np.testing.assert_allclose(by_class["smoke"], [12, 44, 20, 52])  # from the donor, not main's (6,6,10,10)
    assert out.stat().st_size > 0

"""The ONE place where the evaluation plugs into the daemon's own stages.

Everything the evaluation runs comes from here: the daemon's detector (``OnnxDetector``), the daemon's
per-frame chain (``Analyzer``: tracks → ground fixes → zones and rules → alert events), the daemon's file
sources (``make_source``) and zone loader. Nothing is re-implemented; the evaluation only feeds recorded
frames in and records what comes out.

Detection thresholds: to measure AP the detector must return low-scoring boxes too, so it runs with a
score floor (``SCORE_FLOOR``, as Ultralytics' ``val`` uses 0.001) and ``Detections.at_or_above`` then keeps,
per class, the boxes at or above the configured ``detector.score_threshold`` before they reach the
Analyzer. With greedy per-class NMS this yields exactly the boxes the daemon's detector returns at the
configured thresholds (a box above its threshold can only be suppressed by a better one, which is above it
too, and the candidate and ``max_det`` caps of the decoder keep the best boxes first);
``tests/test_eval_cli.py::test_operating_point_equals_the_daemons_detector`` checks that on real frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.config import CameraConfig, Config, DetectorConfig, ScoreThresholds
from pipeline.types import CLASSES, Detections, Frame

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer
    from pipeline.detect.onnx_detector import OnnxDetector
    from pipeline.detect.path import InferencePath

#: the score floor the evaluation's detector runs at (below the config's allowed minimum on purpose)
SCORE_FLOOR = 0.001


def make_detector(cfg: DetectorConfig, score_floor: float = SCORE_FLOOR) -> OnnxDetector:
    """The daemon's detector with every class threshold lowered to ``score_floor``."""
    from pipeline.detect.onnx_detector import OnnxDetector

    floor = ScoreThresholds.model_construct(default=score_floor)  # below the config bounds on purpose
    return OnnxDetector(cfg.model_copy(update={"score_threshold": floor}))


def detect_frame(detector: Any, frame: Frame, cam: CameraConfig, iou_threshold: float) -> Detections:
    """One frame through the detector: scaled to the network input straight from the decoded picture, or
    tiled from the full image when the camera has ``tiling`` (every tile: ``tiling.zones_only`` needs the
    zones and the camera model, which :func:`make_path` gives; use that for the daemon's exact path)."""
    if getattr(cam, "tiling", None) is None:
        result: Detections = detector.detect_frames([frame])[0]
        return result
    from pipeline.detect.tiling import detect_frames

    return detect_frames(detector, [frame.image_bgr], [cam.tiling], iou_threshold)[0]


def make_path(config: Config, analyzer: Analyzer, zones: Sequence[Any]) -> InferencePath:
    """The daemon's inference path (whole frame, tiles, zone tiles) for the cameras of ``config``."""
    from pipeline.detect.path import InferencePath

    return InferencePath(config.cameras, config.detector.iou_threshold,
                         {cid: st.model for cid, st in analyzer.cameras.items()}, zones)


def thresholds_by_name(thresholds: ScoreThresholds) -> dict[str, float]:
    return {name: thresholds.for_class(name) for name in CLASSES}


def make_analyzer(config: Config, zones: Sequence[Any]) -> Analyzer:
    """The daemon's Analyzer for the cameras of ``config``."""
    from pipeline.analyzer import Analyzer

    return Analyzer(config, zones)


def load_zones(config: Config) -> list[Any]:
    """The daemon's zone loader; no zone folder → no zones (fire/smoke still alert when fire_anywhere)."""
    from pipeline.zones.model import load_zones as _load

    if not config.zones.dir.exists():
        from pipeline.logs import get_logger

        get_logger("eval").warning("no zone folder %s: evaluating without zones (fire and smoke alert anywhere"
                                   " in view when zones.fire_anywhere is on)", config.zones.dir)
        return []
    return list(_load(config.zones.dir))


def make_file_source(cam: CameraConfig) -> Any:
    """The daemon's source for a recorded file, read as fast as possible and without dropping frames."""
    from pipeline.sources import make_source

    return make_source(cam.model_copy(update={"realtime": False, "loop": False}))

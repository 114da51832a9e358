"""The smoke watcher on procedural tower views: anchored plumes confirm over real time; sky, exposure do not."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.smoke.config import SmokeConfig
from pipeline.smoke.synthetic import PlumeSpec, landscape, with_plume
from pipeline.smoke.watcher import SmokeWatcher, pixel_median
from pipeline.types import Frame, Pose

WH = (640, 360)


def play(frames: list[tuple[float, np.ndarray]], cfg: SmokeConfig | None = None) -> dict[float, list]:
    watcher = SmokeWatcher(cfg or SmokeConfig())
    return {t: watcher.observe(Frame("c", i, t, img, Pose(0, 0, 100))) for i, (t, img) in enumerate(frames)}


def views(seed: int = 2, **kw: bool) -> list[tuple[float, np.ndarray]]:
    return [(float(t), landscape(WH, t, seed=seed, **kw)) for t in range(-1200, 601, 60)]


def first_plume_t(out: dict[float, list]) -> float | None:
    return next((t for t, plumes in out.items() if plumes), None)


def test_anchored_plume_confirms_after_two_sightings() -> None:
    out = play(with_plume(views(), PlumeSpec((0.5, 0.5)), 0.0))
    t = first_plume_t(out)
    assert t is not None and 60 <= t <= 300
    plume = out[t][0]
    assert abs(plume.xyxy[3] - 0.5 * WH[1]) < 0.06 * WH[1]  # bottom = base
    assert all(not plumes for tt, plumes in out.items() if tt <= 0)


def test_a_cloud_in_the_sky_is_not_anchored() -> None:
    """The same plume shape, but its base high in the sky (a growing cloud): never confirmed."""
    out = play(with_plume(views(), PlumeSpec((0.5, 0.22), drift_frac_per_min=0.0), 0.0))
    assert first_plume_t(out) is None


def test_a_global_exposure_jump_is_skipped() -> None:
    frames = views(exposure_jumps=False)
    jumped = [(t, np.clip(img.astype(np.int16) + (40 if t >= 0 else 0), 0, 255).astype(np.uint8))
              for t, img in frames]
    assert first_plume_t(play(jumped)) is None


def test_gaps_shorter_than_the_span_do_not_confirm() -> None:
    """Frames one second apart: the plume is seen often, but not for confirm_min_span_s of real time."""
    frames = with_plume(views(), PlumeSpec((0.5, 0.5)), 0.0)
    fast = [(i * 1.0, img) for i, (_, img) in enumerate(frames)]
    assert first_plume_t(play(fast, SmokeConfig(ref_min_age_s=2, ref_max_age_s=20, history_step_s=1,
                                               interval_s=0, confirm_min_span_s=45))) is None


def test_interval_limits_the_analyses() -> None:
    watcher = SmokeWatcher(SmokeConfig(interval_s=15))
    img = landscape(WH, 0.0)
    analysed = 0
    for i in range(20):
        watcher.observe(Frame("c", i, i * 1.0, img, Pose(0, 0, 100)))
        analysed += watcher.last_analysis is not None
    assert analysed == 2  # t = 0 and t = 15


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_pixel_median(n: int) -> None:
    rng = np.random.default_rng(n)
    images = [rng.normal(size=(5, 7)).astype(np.float32) for _ in range(n)]
    assert np.allclose(pixel_median(images), np.median(np.stack(images), axis=0))


def test_ages_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="ref_max_age_s"):
        SmokeConfig(ref_min_age_s=600, ref_max_age_s=300)


def test_the_base_is_known_to_a_tile() -> None:
    """The plume's ground point carries at least one tile of the smoke grid as its pixel σ (a wider ellipse)."""
    from pipeline.config import Config, PoseSigma
    from pipeline.smoke.stage import SmokeStage
    from pipeline.track import PresetTrackers

    cfg = Config.model_validate({"cameras": [{"id": "c", "source": "x.mp4", "lat": 1, "lon": 1}]})
    stage = SmokeStage(cfg, PresetTrackers())
    sigma = stage.base_sigma((1920, 1080), PoseSigma(pixel_px=2.0))
    assert sigma.pixel_px == pytest.approx(8 * 1920 / 640)
    assert stage.base_sigma((1920, 1080), PoseSigma(pixel_px=40.0)).pixel_px == 40.0


@pytest.mark.parametrize("max_grey, alerts", [(250.0, False), (256.0, True)])
def test_blown_out_glare_is_not_smoke(max_grey: float, alerts: bool) -> None:
    """A growing saturated white disc at ground level (glare creeping with the sun): refused by max_grey,
    found without it (so the rule is what refuses it)."""
    import cv2

    frames = []
    for t, img in views():
        if t > 0:
            img = img.copy()
            cv2.circle(img, (WH[0] // 2, int(0.55 * WH[1])), int(6 + 3 * t / 60), (255, 255, 255), -1)
        frames.append((t, img))
    out = play(frames, SmokeConfig(max_grey=max_grey))
    assert (first_plume_t(out) is not None) == alerts


def test_the_network_can_veto_a_plume() -> None:
    """network_min_score > 0: a plume is confirmed only when the network scores smoke on its crop; asked once
    when it agrees, again at each analysis while it disagrees."""
    frames = with_plume(views(), PlumeSpec((0.5, 0.5)), 0.0)
    cfg = SmokeConfig(network_min_score=0.3)
    free = first_plume_t(play(frames))
    assert free is not None
    for score, expected, asks in ((0.9, free, 1), (0.1, None, None)):
        asked: list[tuple[float, float, float, float]] = []

        def network(image: np.ndarray, xyxy: tuple[float, float, float, float], s: float = score,
                    asked: list[tuple[float, float, float, float]] = asked) -> float:
            asked.append(xyxy)
            assert image.shape[:2] == (WH[1], WH[0])
            return s

        watcher = SmokeWatcher(cfg, network)
        out = {t: watcher.observe(Frame("c", i, t, img, Pose(0, 0, 100))) for i, (t, img) in enumerate(frames)}
        assert first_plume_t(out) == expected
        assert len(asked) == asks if asks is not None else len(asked) > 1


def test_network_check_runs_the_real_model() -> None:
    from pipeline.config import DetectorConfig
    from pipeline.smoke.stage import NetworkCheck
    from tests.conftest import ROOT

    check = NetworkCheck(DetectorConfig(model_path=ROOT / "models" / "minewatch-starter.onnx"))
    score = check(landscape(WH, 0.0), (300.0, 150.0, 340.0, 180.0))
    assert 0.0 <= score <= 1.0


def test_crop_around_is_square_and_clipped() -> None:
    from pipeline.smoke.stage import crop_around

    image = np.zeros((360, 640, 3), np.uint8)
    assert crop_around(image, (300, 150, 320, 170)).shape == (96, 96, 3)
    assert crop_around(image, (0, 0, 60, 30)).shape == (105, 120, 3)  # 180 px square around it, clipped

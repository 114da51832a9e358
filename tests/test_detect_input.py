"""The worker's input path without copies: letterboxed frames written straight into a network input array
kept per thread, decoded pictures scaled by a scaler kept per thread, cheaper reader timestamps — the same
values as the straightforward path, and safe with several inference workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from pipeline.detect.batcher import Batcher
from pipeline.detect.letterbox import blob_into, fitted_wh, place, placement, resize_to, to_blob
from pipeline.detect.onnx_detector import OnnxDetector
from pipeline.detect.workers import BatchResult, InferencePool
from pipeline.sources import LatestFrameSlot
from pipeline.sources.scaler import picture_to_bgr
from pipeline.types import Frame, Pose
from tests.test_detect_onnx import NAMES, cfg, decoded_picture, make_model

CLASS_MAP = {"excavator": "excavator", "smoke": "smoke"}


def noisy(h: int, w: int, seed: int = 0) -> NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("image_wh", "size_px", "canvas_wh"),
    [
        ((1280, 720), 320, (320, 192)),  # 16:9 on the rectangular input
        ((1280, 720), 320, None),  # the same on the square
        ((100, 95), 64, None),  # odd padding (rounds like Ultralytics)
        ((640, 480), 320, (320, 256)),
        ((100, 50), 320, (320, 160)),  # an image smaller than the input: scaled up
        ((64, 64), 64, None),  # no padding at all
    ],
)
def test_blob_into_gives_the_values_of_to_blob_of_the_padded_canvas(
        image_wh: tuple[int, int], size_px: int, canvas_wh: tuple[int, int] | None) -> None:
    img = noisy(image_wh[1], image_wh[0])
    resized = resize_to(img, fitted_wh(image_wh, size_px))
    canvas, lb_ref = place(resized, size_px, image_wh, canvas_wh)
    cw, ch = canvas_wh or (size_px, size_px)
    out = np.full((3, ch, cw), np.nan, np.float32)  # whatever a reused buffer held before
    lb = placement(image_wh, size_px, canvas_wh)
    blob_into(out, resized, lb)
    assert lb == lb_ref
    np.testing.assert_array_equal(out, to_blob([canvas])[0])  # bit for bit


def test_the_kept_input_array_never_leaks_a_previous_batch(tmp_path: Path) -> None:
    """Batches of 2 then 1, bright then dark, other sizes in between: each result is what a fresh detector
    gives (the model's class-0 score is the mean brightness of its input, padding included)."""
    path = make_model(tmp_path / "m.onnx", names=NAMES)
    det = OnnxDetector(cfg(path, class_map=CLASS_MAP))
    bright, dark = np.full((64, 64, 3), 250, np.uint8), np.full((32, 64, 3), 40, np.uint8)
    det.detect([bright, bright])
    det.detect([noisy(20, 64)])
    (again,) = det.detect([dark])
    (fresh,) = OnnxDetector(cfg(path, class_map=CLASS_MAP)).detect([dark])
    np.testing.assert_array_equal(again.score, fresh.score)
    np.testing.assert_array_equal(again.xyxy, fresh.xyxy)


def test_one_detector_on_several_threads_gives_each_its_own_result(tmp_path: Path) -> None:
    """Input arrays are per thread: threads sharing a detector never see each other's frames."""
    path = make_model(tmp_path / "m.onnx", names=NAMES)
    det = OnnxDetector(cfg(path, class_map=CLASS_MAP))
    levels = [60, 120, 180, 240]
    expected = {lv: det.detect([np.full((64, 64, 3), lv, np.uint8)])[0].score.copy() for lv in levels}
    wrong: list[tuple[int, object]] = []

    def loop(level: int) -> None:
        img = np.full((64, 64, 3), level, np.uint8)
        for _ in range(40):
            (d,) = det.detect([img])
            if not np.array_equal(d.score, expected[level]):
                wrong.append((level, d.score))

    threads = [threading.Thread(target=loop, args=(lv,)) for lv in levels]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong


@pytest.mark.parametrize(("wh", "interpolation"), [((80, 40), "AREA"), ((160, 80), None), ((200, 100), "BILINEAR"),
                                                   (None, None)])
def test_kept_scaler_gives_the_pixels_of_to_ndarray(wh: tuple[int, int] | None, interpolation: str | None) -> None:
    picture = decoded_picture(noisy(80, 160, seed=3))
    kwargs: dict[str, object] = {"format": "bgr24"}
    if wh is not None:
        kwargs.update(width=wh[0], height=wh[1])
    if interpolation is not None:
        kwargs["interpolation"] = interpolation
    ref = picture.to_ndarray(**kwargs)  # type: ignore[attr-defined]
    for _ in range(2):  # the second call reuses the thread's scaler
        np.testing.assert_array_equal(picture_to_bgr(picture, wh, interpolation), ref)
    other = decoded_picture(noisy(40, 64, seed=4))  # another geometry on the same thread, then back
    np.testing.assert_array_equal(picture_to_bgr(other, (32, 16), "AREA"),
                                  other.to_ndarray(width=32, height=16, format="bgr24", interpolation="AREA"))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(picture_to_bgr(picture, wh, interpolation), ref)


def test_a_picture_that_is_not_pyav_converts_itself() -> None:
    class Fake:
        width, height = 4, 2

        def to_ndarray(self, **kwargs: object) -> NDArray[np.uint8]:
            assert kwargs == {"format": "bgr24", "width": 2, "height": 1, "interpolation": "AREA"}
            return np.full((1, 2, 3), 7, np.uint8)

    np.testing.assert_array_equal(picture_to_bgr(Fake(), (2, 1), "AREA"), np.full((1, 2, 3), 7, np.uint8))


def test_reader_timestamps_in_seconds_match_the_fraction_arithmetic(tmp_path: Path) -> None:
    from pipeline.config import CameraConfig
    from pipeline.sources import make_source

    cam = CameraConfig.model_validate({"id": "c", "source": "rtsp://127.0.0.1:1/x", "lat": 38.7, "lon": 111.6,
                                       "ground_elevation_m": 1450, "pan_deg": 0, "tilt_deg": -5, "hfov_deg": 60})
    src = make_source(cam)
    with av.open(str(_tiny_clip(tmp_path))) as container:
        stream = container.streams.video[0]
        n = 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            assert src._seconds(stream, packet.pts) == pytest.approx(float(packet.pts * packet.time_base), abs=1e-9)
            for vframe in stream.codec_context.decode(packet):
                assert src._seconds(stream, vframe.pts) == pytest.approx(float(vframe.pts * vframe.time_base),
                                                                        abs=1e-9)
                n += 1
        assert n >= 10
        assert src._seconds(stream, None) is None


def _tiny_clip(tmp_path: Path) -> Path:
    """Twelve 64×64 frames at 25 fps, H.264 in MP4 (time base 1/12800: not a round number of frames)."""
    path = tmp_path / "tiny.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(noisy(64, 64, seed=i), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_real_detectors_on_two_workers_keep_each_cameras_order_and_take_each_frame_once(tmp_path: Path) -> None:
    """Three file-like cameras (each frame waits for the previous one to be taken) through two workers with
    real detectors (the kept input arrays, one per worker thread): every frame comes back exactly once, each
    camera's in capture order, each with its own result; then the pool shuts down."""
    path = make_model(tmp_path / "m.onnx", names=NAMES)
    detectors = [OnnxDetector(cfg(path, class_map=CLASS_MAP)) for _ in range(2)]
    stop = threading.Event()
    cams = ("a", "b", "c")
    slots = {c: LatestFrameSlot(c, wait_when_full=True) for c in cams}
    pool = InferencePool(Batcher(slots, batch_max=2, wait_s=0.0),
                         [lambda batch, d=d: d.detect_frames(batch) for d in detectors], stop)
    n_each = 12

    def level(cam: str, seq: int) -> int:  # a brightness per (camera, frame): its result says which it was
        return 10 + 60 * cams.index(cam) + 3 * seq

    def feed(cam: str) -> None:
        for seq in range(n_each):
            img = np.full((64, 128, 3), level(cam, seq), np.uint8)
            slots[cam].put(Frame(cam, seq, time.time(), img, Pose(0, 0, 60)), stop)

    feeders = [threading.Thread(target=feed, args=(c,), daemon=True) for c in cams]
    for t in feeders:
        t.start()
    pool.start()
    results: list[BatchResult] = []
    deadline = time.monotonic() + 60
    while sum(len(r.frames) for r in results) < n_each * len(cams) and time.monotonic() < deadline:
        r = pool.next_result(0.2)
        if r is not None:
            results.append(r)
    stop.set()
    pool.join(5.0)
    for t in feeders:
        t.join(5.0)
    assert not pool._threads  # every worker ended
    assert [r.seq for r in results] == list(range(len(results)))
    seen: dict[str, list[int]] = {c: [] for c in cams}
    ref = OnnxDetector(cfg(path, class_map=CLASS_MAP))
    for r in results:
        assert r.error is None
        for frame, det in zip(r.frames, r.dets, strict=True):
            seen[frame.camera_id].append(frame.seq)
            (want,) = ref.detect([np.full((64, 128, 3), level(frame.camera_id, frame.seq), np.uint8)])
            np.testing.assert_array_equal(det.score, want.score)
    assert seen == {c: list(range(n_each)) for c in cams}  # each once, in order
    assert pool.frames_out == pool.batcher.taken == n_each * len(cams)

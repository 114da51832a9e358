"""Open a video and decode to BGR: frames and times of a real clip, one-line errors for what PyAV cannot open."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.sources.video import decoded_frames, open_video, to_bgr
from tests.rtsp_fixture import make_clip


def test_frames_of_a_clip_in_order_with_their_times(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=1.0, fps=10, width=64, height=48)
    frames = list(decoded_frames(str(clip)))
    assert len(frames) == 10
    assert [round(float(f.time or 0), 3) for f in frames] == [round(0.1 * i, 3) for i in range(10)]
    image = to_bgr(frames[3])
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    with open_video(str(clip)) as (_, stream):
        assert (stream.width, stream.height) == (64, 48)


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _sound(tmp: Path) -> Path:
    with wave.open(str(tmp / "sound.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    return tmp / "sound.wav"


CANNOT_OPEN = "expected a video file or stream PyAV can open"
UNOPENABLE = {
    "missing": (lambda tmp: tmp / "missing.mp4", CANNOT_OPEN),
    "broken": (_write("broken.mp4", b"not a video at all" * 10), CANNOT_OPEN),
    "audio only": (_sound, "expected a video stream, found none"),
}


@pytest.mark.parametrize(("make", "expected"), UNOPENABLE.values(), ids=UNOPENABLE.keys())
def test_what_pyav_cannot_open_is_one_line(tmp_path: Path, make: Callable[[Path], Path], expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(UserError) as info:
        list(decoded_frames(str(path), label=str(path)))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_credentials_are_masked_in_the_error() -> None:
    with pytest.raises(UserError) as info:
        list(decoded_frames("rtsp://admin:secret@127.0.0.1:9/none", timeout_s=2.0))
    assert "secret" not in str(info.value) and "admin:***@" in str(info.value)

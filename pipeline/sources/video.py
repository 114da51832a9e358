"""Open a video file or stream and decode it to BGR images: the one helper for the commands that look at a few
frames (``zones preview``/``zones test``, ``doctor``, the evaluation's probe). The daemon's readers
(file_source.py, rtsp.py) keep their own loop: they pace, reconnect and hand on YUV pictures.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from numpy.typing import NDArray

from pipeline.errors import UserError
from pipeline.redact import redact, redact_url

OPEN_EXPECTED = "a video file or stream PyAV can open"


def is_stream_url(source: str) -> bool:
    return source.startswith(("rtsp://", "rtsps://"))


@contextmanager
def open_video(
    source: str, timeout_s: float | None = None, label: str | None = None
) -> Iterator[tuple[InputContainer, VideoStream]]:
    """The container and first video stream of a file or an RTSP stream (over TCP), closed on exit.

    A one-line :class:`UserError` naming ``label`` (default: the source, credentials masked) when PyAV cannot
    open it, it has no video stream, or decoding fails inside the ``with`` block."""
    label = label or redact_url(source)
    options = {"rtsp_transport": "tcp"} if is_stream_url(source) else {}
    timeout = None if timeout_s is None else (timeout_s, timeout_s)
    try:
        container = av.open(source, mode="r", options=options, timeout=timeout)
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(label, None, OPEN_EXPECTED, redact(str(exc))) from None
    if not isinstance(container, InputContainer):  # mode "r" always gives one; narrows the type
        container.close()
        raise UserError(label, None, OPEN_EXPECTED, "not an input")
    with container:
        if not container.streams.video:
            raise UserError(label, None, "a video stream", "none")
        try:
            yield container, container.streams.video[0]
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(label, None, OPEN_EXPECTED, redact(str(exc))) from None


def to_bgr(frame: VideoFrame) -> NDArray[np.uint8]:
    """A decoded frame as an (H, W, 3) BGR image."""
    return np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)


def decoded_frames(
    source: str, timeout_s: float | None = None, label: str | None = None
) -> Generator[VideoFrame, None, None]:
    """Every decoded frame of the first video stream (convert the ones you keep with :func:`to_bgr`);
    errors as :func:`open_video`."""
    with open_video(source, timeout_s, label) as (container, stream):
        yield from container.decode(stream)

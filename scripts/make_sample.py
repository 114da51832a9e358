"""Make the bundled sample clip from images shipped inside the ultralytics wheel.

The clip is what a fixed tower camera at the sample site would see: the wheel's ``bus.jpg`` street scene
(people and a bus) placed in a 1280x720 frame with a slow, small camera drift, 12 s at 5 fps, H.264.
Nothing is read from ``../shared``. The wheel is downloaded from PyPI (``pip download --no-deps``) when
ultralytics is not installed. The image is AGPL-3.0 (Ultralytics); so is minewatch.

    python scripts/make_sample.py --out data/sample
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np

log = logging.getLogger("minewatch.sample")
ASSET = "bus.jpg"


def find_asset(name: str, cache_dir: Path) -> Path:
    """The ultralytics wheel's ``assets/NAME``: from the installed package, a cached copy, or a fresh download."""
    spec = importlib.util.find_spec("ultralytics")
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "assets" / name
        if path.is_file():
            return path
    cached = cache_dir / name
    if cached.is_file():
        return cached
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", tmp,
             "ultralytics"],
            check=True,
        )
        wheel = next(Path(tmp).glob("ultralytics-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(zf.read(f"ultralytics/assets/{name}"))
    return cached


def compose_frames(scene_bgr: np.ndarray, n_frames: int, wh: tuple[int, int]) -> list[np.ndarray]:
    """The scene centred in a ``wh`` frame over a blurred widening of itself, drifting a few pixels."""
    width, height = wh
    scale = height / scene_bgr.shape[0]
    fg = cv2.resize(scene_bgr, (round(scene_bgr.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    bg = cv2.GaussianBlur(cv2.resize(scene_bgr, (width + 80, height + 40)), (0, 0), 15)
    frames = []
    for i in range(n_frames):
        dx = int(round(20 * np.sin(2 * np.pi * i / n_frames)))
        canvas = bg[20:20 + height, 40 + dx:40 + dx + width].copy()
        x0 = (width - fg.shape[1]) // 2 + dx
        canvas[:, x0:x0 + fg.shape[1]] = fg
        frames.append(canvas)
    return frames


def write_clip(frames: list[np.ndarray], path: Path, fps: int, gop: int | None = None) -> None:
    """H.264 (libx264) in MP4; a key frame every ``gop`` frames (default two seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": str(gop or fps * 2)}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"), help="output folder")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--force", action="store_true", help="rebuild even when the clip exists")
    args = parser.parse_args(argv)
    clip = args.out / "tower-sample.mp4"
    if clip.is_file() and not args.force:
        log.info("sample clip already there: %s", clip)
        return 0
    asset = find_asset(ASSET, args.out / "assets")
    scene = cv2.imread(str(asset))
    if scene is None:
        log.error("%s: not a readable image", asset)
        return 1
    frames = compose_frames(scene, int(args.seconds * args.fps), (1280, 720))
    write_clip(frames, clip, args.fps)
    cv2.imwrite(str(args.out / "tower-sample-reference.jpg"), frames[0])
    log.info("wrote %s (%d frames at %d fps) from %s", clip, len(frames), args.fps, asset)
    return 0


if __name__ == "__main__":
    sys.exit(main())

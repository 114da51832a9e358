"""Any Ultralytics YOLOv8/YOLO11 detection export, run with onnxruntime.

Reads class names, input size and stride from the ONNX metadata, letterboxes
each frame, runs the frames of several cameras as one batch (a dynamic batch,
or padding for a model exported with a fixed one), decodes the head, applies
per-class thresholds and NMS, and maps the model's class names onto
minewatch's :data:`~pipeline.types.CLASSES` through ``detector.class_map``.
"""

from __future__ import annotations

import ast
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.config import DetectorConfig
from pipeline.detect.decode import decode_yolo
from pipeline.detect.letterbox import Letterbox, blob_into, fitted_wh, placement, rect_canvas_wh, resize_to, to_blob
from pipeline.errors import UserError
from pipeline.logs import get_logger
from pipeline.types import CLASS_INDEX, Detections, Frame

log = get_logger("detect")

_FIELD = "detector.model_path"


def _trt_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "minewatch" / "tensorrt"


def choose_providers(
    wanted: list[str], available: list[str]
) -> tuple[list[str | tuple[str, dict[str, Any]]], list[str]]:
    """Providers to ask onnxruntime for, in the configured order, and a reason for each one skipped."""
    chosen: list[str | tuple[str, dict[str, Any]]] = []
    skipped: list[str] = []
    for name in wanted:
        if name not in available:
            skipped.append(f"{name} not in this onnxruntime build (has {', '.join(available)})")
            continue
        if name == "TensorrtExecutionProvider":
            cache = _trt_cache_dir()
            cache.mkdir(parents=True, exist_ok=True)
            chosen.append(
                (name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), "trt_fp16_enable": True})
            )
        else:
            chosen.append(name)
    return chosen, skipped


def _parse_names(raw: str | None, source: str) -> dict[int, str] | None:
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise UserError(source, "metadata.names", "a dict {id: name} (Ultralytics export)", raw) from None
    if isinstance(value, list):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not all(isinstance(k, int) for k in value):
        raise UserError(source, "metadata.names", "a dict {id: name} (Ultralytics export)", raw)
    return {int(k): str(v) for k, v in value.items()}


def _parse_imgsz(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        return int(max(value))
    return None


def not_onnx_reason(path: Path, exc: Exception) -> str:
    """Why onnxruntime refused a model file, in words (not its protobuf message, which repeats the path)."""
    text = str(exc).strip()
    head = path.read_bytes()[:200] if path.is_file() else b""
    if "INVALID_PROTOBUF" in text or "Protobuf parsing failed" in text:
        sample = head.decode("utf-8", "replace").rstrip("\ufffd")  # a cut multi-byte character at the end
        lines = [line.strip() for line in sample.splitlines() if line.strip()]
        if lines and "\ufffd" not in sample and all(line.isprintable() for line in lines):
            return f"a text file ({lines[0][:40]!r}…), not an ONNX model"
        return f"a file that does not parse as ONNX ({path.stat().st_size if path.is_file() else 0} bytes)"
    first = text.splitlines()[0] if text else type(exc).__name__
    first = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", first)
    return first.replace(f"Load model from {path} failed:", "").replace(str(path), "the file").strip()


class OnnxDetector:
    """Batched detection over frames of several cameras; see the module docstring."""

    def __init__(self, cfg: DetectorConfig, *, intra_op_threads: int | None = None, announce: bool = True) -> None:
        """``intra_op_threads`` overrides ``cfg.intra_op_threads`` (0: onnxruntime chooses); ``announce``
        logs the one-line summary (off for the second and later workers' copies)."""
        import onnxruntime as ort

        self.cfg = cfg
        self._buffers = threading.local()  # network input arrays, per thread: see _input_buffer
        path = Path(cfg.model_path)
        source = str(path)
        if not path.is_file():
            raise UserError(source, _FIELD, "an existing ONNX model file", "no such file")
        available = list(ort.get_available_providers())
        providers, skipped = choose_providers(list(cfg.providers), available)
        if not providers:
            raise UserError(
                "config", "detector.providers", f"at least one available provider ({', '.join(available)})",
                list(cfg.providers),
            )
        options = ort.SessionOptions()
        threads = cfg.intra_op_threads if intra_op_threads is None else intra_op_threads
        if threads:
            options.intra_op_num_threads = threads
        self.intra_op_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
            raise UserError(source, _FIELD, "a valid ONNX model", not_onnx_reason(path, exc)) from None

        active = list(self.session.get_providers())
        for prov in providers:
            name = prov[0] if isinstance(prov, tuple) else prov
            if name not in active:
                skipped.append(f"{name} failed to start (missing libraries or device; see onnxruntime's log)")
        self.provider: str = active[0]

        meta = self.session.get_modelmeta().custom_metadata_map
        task = meta.get("task")
        if task is not None and task != "detect":
            raise UserError(source, "metadata.task", "a detection model (task 'detect')", task)
        self.stride = int(meta.get("stride", "32")) if str(meta.get("stride", "32")).isdigit() else 32

        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            found = [(i.name, i.shape) for i in inputs]
            raise UserError(source, "inputs", "one image input [batch, 3, height, width]", found)
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            found = [(o.name, o.shape) for o in outputs]
            raise UserError(source, "outputs", "one YOLO detection head [batch, 4 + classes, anchors]", found)
        self._input = inputs[0]
        self._input_dtype = np.float16 if "float16" in self._input.type else np.float32
        out_shape = outputs[0].shape

        names = _parse_names(meta.get("names"), source)
        channels = out_shape[1] if isinstance(out_shape[1], int) else None
        if names is None:
            if channels is None or channels < 5:
                raise UserError(source, "outputs", "a YOLO head [batch, 4 + classes, anchors]", out_shape)
            names = {i: f"class{i}" for i in range(channels - 4)}
            log.warning("%s has no class names in its metadata; using class0..class%d", source, channels - 5)
        if sorted(names) != list(range(len(names))):
            raise UserError(source, "metadata.names", "class ids 0..n-1", sorted(names))
        if channels is not None and channels != 4 + len(names):
            raise UserError(
                source, "outputs", f"a YOLO detection head [batch, 4 + {len(names)}, anchors] for its names",
                out_shape,
            )
        self.names: dict[int, str] = names

        # input size: config > static input shape > metadata
        h_dim, w_dim = self._input.shape[2], self._input.shape[3]
        static = h_dim if isinstance(h_dim, int) and isinstance(w_dim, int) else None
        if static is not None and h_dim != w_dim:
            raise UserError(source, "inputs", "a square input", self._input.shape)
        size = cfg.input_size_px or static or _parse_imgsz(meta.get("imgsz")) or 640
        if static is not None and size != static:
            raise UserError("config", "detector.input_size_px", f"{static} (the model's fixed input)", size)
        if size % self.stride:
            raise UserError("config", "detector.input_size_px", f"a multiple of the stride {self.stride}", size)
        self.input_size_px: int = int(size)
        #: rectangular input (pad to a multiple of the stride only), where the model's height and width are
        #: dynamic and the config allows it
        self.rect = bool(cfg.rect_input and static is None)
        batch_dim = self._input.shape[0]
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None

        # model class id → minewatch class id (−1: dropped), and per model class score threshold
        nc = len(names)
        self._to_ours = np.full((nc,), -1, np.int32)
        self._ours_threshold = np.array(cfg.score_threshold.as_array(), np.float32)
        self._thresholds = np.full((nc,), np.inf, np.float32)
        for i, name in names.items():
            ours = cfg.class_map.get(name)
            if ours is not None:
                self._to_ours[i] = CLASS_INDEX[ours]
                self._thresholds[i] = cfg.score_threshold.for_class(ours)
        mapped = {names[i]: cfg.class_map[names[i]] for i in range(nc) if self._to_ours[i] >= 0}
        if not mapped:
            log.warning("no class of %s is mapped by detector.class_map: nothing will be detected", source)

        batch_text = f"fixed batch {self.fixed_batch}" if self.fixed_batch else "dynamic batch"
        if announce:
            log.info(
                "detector: %s on %s (%d classes, %d of them mapped: %s; input %d px, %s)%s",
                path.name, self.provider, nc, len(mapped), ", ".join(f"{k}->{v}" for k, v in mapped.items()),
                self.input_size_px, batch_text, ("; not used: " + "; ".join(skipped)) if skipped else "",
            )

    def _run(self, blob: NDArray[np.float32]) -> NDArray[np.float32]:
        """One or more ``session.run`` calls (a fixed-batch model gets padded chunks)."""
        blob = blob.astype(self._input_dtype, copy=False)
        if self.fixed_batch is None:
            out = self.session.run(None, {self._input.name: blob})[0]
        else:
            fb, n = self.fixed_batch, blob.shape[0]
            parts = []
            for start in range(0, n, fb):
                chunk = blob[start : start + fb]
                if chunk.shape[0] < fb:
                    pad = np.zeros((fb - chunk.shape[0], *chunk.shape[1:]), chunk.dtype)
                    chunk = np.concatenate([chunk, pad])
                parts.append(self.session.run(None, {self._input.name: chunk})[0])
            out = np.concatenate(parts)[:n]
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 3 or out.shape[1] != 4 + len(self.names):
            raise UserError(
                str(self.cfg.model_path), "outputs",
                f"a YOLO detection head [batch, {4 + len(self.names)}, anchors]", list(out.shape),
            )
        return out

    def detect(self, images_bgr: list[NDArray[np.uint8]], score_floor: float | None = None) -> list[Detections]:
        """Detections per image, boxes in that image's pixels, classes in minewatch ids.

        ``score_floor`` lowers every class threshold to it (for hard-example harvesting of near misses);
        then pass the result through :meth:`above_threshold` before the analysis.
        """
        if not images_bgr:
            return []
        for img in images_bgr:
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"expected (H, W, 3) uint8 BGR images, got {img.shape} {img.dtype}")
        sizes = [(int(img.shape[1]), int(img.shape[0])) for img in images_bgr]
        canvas_wh = self.canvas_wh(sizes)
        blob = self._input_buffer(len(images_bgr), canvas_wh)
        boxes: list[Letterbox] = []
        for i, (img, wh) in enumerate(zip(images_bgr, sizes, strict=True)):
            lb = placement(wh, self.input_size_px, canvas_wh)
            blob_into(blob[i], resize_to(img, fitted_wh(wh, self.input_size_px)), lb)
            boxes.append(lb)
        return self._detect_blob(blob, boxes, score_floor)

    def canvas_wh(self, images_wh: list[tuple[int, int]]) -> tuple[int, int]:
        """The network input's (width, height) for a batch of images of these sizes: the smallest multiple
        of the stride that holds them all when :attr:`rect`, else the ``input_size_px`` square."""
        if self.rect and images_wh:
            return rect_canvas_wh(images_wh, self.input_size_px, self.stride)
        return self.input_size_px, self.input_size_px

    def detect_frames(self, frames: Sequence[Frame], score_floor: float | None = None) -> list[Detections]:
        """As :meth:`detect`, for frames: each is scaled to the network input by :meth:`Frame.resized_bgr`
        (a decoded picture goes from YUV to the small BGR image in one pass, and is never converted at
        full size here), and written straight into the network's input array."""
        if not frames:
            return []
        sizes = [frame.wh for frame in frames]
        canvas_wh = self.canvas_wh(sizes)
        blob = self._input_buffer(len(frames), canvas_wh)
        boxes: list[Letterbox] = []
        for i, (frame, wh) in enumerate(zip(frames, sizes, strict=True)):
            lb = placement(wh, self.input_size_px, canvas_wh)
            blob_into(blob[i], frame.resized_bgr(fitted_wh(wh, self.input_size_px)), lb)
            boxes.append(lb)
        return self._detect_blob(blob, boxes, score_floor)

    def _input_buffer(self, n: int, canvas_wh: tuple[int, int]) -> NDArray[np.float32]:
        """The network input ``(n, 3, H, W)`` float32, allocated once per thread and input shape and
        overwritten by every call on that thread (``session.run`` is done with it when it returns)."""
        buffers: dict[tuple[int, int], NDArray[np.float32]] | None = getattr(self._buffers, "by_wh", None)
        if buffers is None:
            buffers = self._buffers.by_wh = {}
        buf = buffers.get(canvas_wh)
        if buf is None or buf.shape[0] < n:
            if len(buffers) >= 8:  # a run of odd sizes (tiles at image edges): keep memory bounded
                buffers.clear()
            buf = buffers[canvas_wh] = np.empty((n, 3, canvas_wh[1], canvas_wh[0]), np.float32)
        return buf[:n]

    def _detect_canvases(self, canvases: list[NDArray[np.uint8]], boxes: list[Letterbox],
                         score_floor: float | None) -> list[Detections]:
        return self._detect_blob(to_blob(canvases), boxes, score_floor)

    def _detect_blob(self, blob: NDArray[np.float32], boxes: list[Letterbox],
                     score_floor: float | None) -> list[Detections]:
        # a floor lowers the thresholds of mapped classes only: a dropped class (inf) stays dropped, or its
        # boxes would come out with class id -1 (read as the last class, "person")
        thresholds = self._thresholds if score_floor is None else np.where(
            np.isinf(self._thresholds), np.inf, np.minimum(self._thresholds, score_floor)).astype(np.float32)
        heads = self._run(blob)
        results: list[Detections] = []
        for head, lb in zip(heads, boxes, strict=True):
            xyxy, score, model_cls = decode_yolo(head, thresholds, self.cfg.iou_threshold, nms_group=self._to_ours)
            xyxy = lb.to_image(xyxy)
            # drop boxes collapsed by clipping (entirely in the padding)
            ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
            results.append(Detections(xyxy[ok], score[ok], self._to_ours[model_cls[ok]].astype(np.int32)))
        return results

    def above_threshold(self, dets: Detections) -> Detections:
        """Only the detections that pass their class's configured threshold."""
        return dets.at_or_above(self._ours_threshold)

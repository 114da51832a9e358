"""Fine-tune with Ultralytics (offline), validate per class, export ONNX with metadata.

The only module family of minewatch that imports torch (through Ultralytics).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.logs import get_logger
from pipeline.types import CLASSES

log = get_logger("train")

#: Augmentations for distant tower views: strong zoom-out (scale), colour washed out by haze
#: (saturation/value), dusk and low light (value), no vertical flips (the sky is up).
TOWER_AUGMENT: dict[str, Any] = {
    "scale": 0.6,
    "translate": 0.1,
    "hsv_h": 0.015,
    "hsv_s": 0.6,
    "hsv_v": 0.5,
    "fliplr": 0.5,
    "flipud": 0.0,
    "degrees": 0.0,
    "mosaic": 1.0,
    "close_mosaic": 2,
}


def offline_env(config_dir: Path | None = None) -> Path:
    """Make Ultralytics work without the network: offline flags, a config dir, a local font."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    if config_dir is None:
        existing = os.environ.get("YOLO_CONFIG_DIR")
        config_dir = Path(existing) if existing else Path(tempfile.gettempdir()) / "minewatch-yolo-config"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        try:
            import matplotlib

            src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
            shutil.copy(src, font)
        except (ImportError, OSError):
            log.warning("no TTF font for Ultralytics; it may try to download Arial.ttf (offline: fails quietly)")
    return config_dir


@dataclass
class TrainResult:
    best_pt: Path
    run_dir: Path
    seconds: float
    epochs: int
    imgsz: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # name → {ap50, ap50_95, n_boxes}
    summary: dict[str, float] = field(default_factory=dict)


def train(
    data_yaml: Path,
    weights: Path,
    out_dir: Path,
    epochs: int,
    imgsz: int,
    batch: int = 16,
    workers: int = 2,
    seed: int = 0,
    augment: dict[str, Any] | None = None,
    name: str = "train",
    cache: bool | str = "ram",
    patience: int = 100,
    keep_head: bool = False,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune ``weights`` on ``data_yaml``; returns the best checkpoint and its per-class figures."""
    offline_env()
    if weights.suffix == ".pt" and not weights.is_file():
        raise UserError(str(weights), "--weights", "a local Ultralytics .pt checkpoint", "no such file")
    from ultralytics import YOLO

    model = YOLO(str(weights))
    t0 = time.monotonic()
    if keep_head:  # weights made by headinit.init_from_pretrained: train that head, do not rebuild it
        from pipeline.train.headinit import keep_head_trainer

        extra = {"trainer": keep_head_trainer(), "warmup_bias_lr": 0.0, **(extra or {})}
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        workers=workers,
        device="cpu",
        project=str(out_dir.resolve()),
        name=name,
        exist_ok=True,
        seed=seed,
        deterministic=True,
        plots=False,
        amp=False,
        cache=cache,
        patience=patience,
        verbose=False,
        **(TOWER_AUGMENT if augment is None else augment),
        **(extra or {}),
    )
    seconds = time.monotonic() - t0
    trainer = model.trainer
    assert trainer is not None
    run_dir = Path(trainer.save_dir)
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        best = run_dir / "weights" / "last.pt"
    per_class, summary = validate(best, data_yaml, imgsz, batch=batch, project=run_dir)
    return TrainResult(best, run_dir, seconds, epochs, imgsz, per_class, summary)


def resume(last_pt: Path, epochs: int, data_yaml: Path, imgsz: int, batch: int = 16) -> TrainResult:
    """Continue an interrupted run from its ``last.pt``, with its schedule set to ``epochs`` in all.

    Shortening the schedule (e.g. when the CPU turned out slower than planned) makes the learning rate
    decay and mosaic close over the remaining epochs; the card must say so.
    """
    offline_env()
    import torch
    from ultralytics import YOLO

    ckpt = torch.load(str(last_pt), map_location="cpu", weights_only=False)
    if ckpt.get("epoch", -1) < 0:
        raise UserError(str(last_pt), "--resume", "the last.pt of an unfinished run", "a finished checkpoint")
    ckpt["train_args"]["epochs"] = epochs
    torch.save(ckpt, str(last_pt))
    t0 = time.monotonic()
    model = YOLO(str(last_pt))
    model.train(resume=True)
    seconds = time.monotonic() - t0
    run_dir = last_pt.parent.parent
    best = run_dir / "weights" / "best.pt"
    per_class, summary = validate(best, data_yaml, imgsz, batch=batch, project=run_dir)
    return TrainResult(best, run_dir, seconds, epochs, imgsz, per_class, summary)


def checkpoint_names(weights: Path) -> list[str]:
    """Class names of an Ultralytics checkpoint, in id order."""
    offline_env()
    from ultralytics import YOLO

    names = YOLO(str(weights)).names
    return [str(names[i]) for i in sorted(names)]


def validate(
    weights: Path, data_yaml: Path, imgsz: int, batch: int = 16, project: Path | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-class AP50 / AP50-95 of ``weights`` on the ``val`` split of ``data_yaml``.

    ``project`` is where Ultralytics writes its val folder (default: a temp dir, never the cwd).
    """
    offline_env()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    project = project or Path(tempfile.mkdtemp(prefix="minewatch-val-"))
    metrics = model.val(data=str(data_yaml), imgsz=imgsz, batch=batch, device="cpu", plots=False,
                        verbose=False, workers=0, project=str(project), name="val", exist_ok=True)
    box = metrics.box
    n_per_class = getattr(metrics, "nt_per_class", None)
    per_class: dict[str, dict[str, float]] = {}
    for k, cls in enumerate(box.ap_class_index):
        name = CLASSES[int(cls)] if int(cls) < len(CLASSES) else str(int(cls))
        per_class[name] = {
            "ap50": float(box.ap50[k]),
            "ap50_95": float(box.ap[k]),
            "n_boxes": float(n_per_class[int(cls)]) if n_per_class is not None else float("nan"),
        }
    summary = {"map50": float(box.map50), "map50_95": float(box.map)}
    return per_class, summary


def export_onnx(weights: Path, out_path: Path, imgsz: int, fp16: bool = False) -> list[Path]:
    """Export ``weights`` to ONNX (fp32, dynamic batch, names/imgsz/stride in metadata); optional fp16 copy."""
    offline_env()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    exported = Path(
        model.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=17, device="cpu")
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(exported), out_path)
    written = [out_path]
    if fp16:
        written.append(convert_fp16(out_path, out_path.with_name(out_path.stem + "-fp16.onnx")))
    return written


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and activations (inputs/outputs stay fp32), for GPU providers; metadata kept."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    half = convert_float_to_float16(model, keep_io_types=True)
    del half.metadata_props[:]
    for key, value in meta.items():
        half.metadata_props.add(key=key, value=value)
    onnx.save(half, str(dst))
    return dst

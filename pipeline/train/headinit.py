"""Start a new-class model from a pretrained one WITHOUT forgetting the classes they share.

Ultralytics re-initialises the classification layer when the number of classes changes, so a COCO
model fine-tuned on a few hundred images of other classes forgets "person" and "truck" (few examples
teach them back). Here the new model's classification rows are copied from the pretrained rows of
the same (or a related) class before training: person ← COCO person, truck ← COCO truck, and e.g.
excavator ← COCO truck as a better start than random. Box regression is class-agnostic and copied whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import UserError


def init_from_pretrained(
    src_pt: Path, names: Sequence[str], rows_from: Mapping[str, str | None], out_pt: Path
) -> dict[str, str]:
    """Write ``out_pt``: ``src_pt``'s model with a ``len(names)``-class head; returns target ← source used.

    ``rows_from`` maps a new class name to the pretrained class whose classification row it starts from
    (missing or None: a fresh row with Ultralytics' prior bias). Everything else, including the hidden
    layers of the classification branch, is the pretrained model's. Train it with
    :class:`KeepHeadTrainer` (``YOLO(out_pt).train(trainer=KeepHeadTrainer, …)``), which keeps this model
    instead of rebuilding a fresh head from the yaml.
    """
    import copy
    import math

    import torch
    from torch import nn
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    if not src_pt.is_file():
        raise UserError(str(src_pt), "--weights", "a local Ultralytics .pt checkpoint", "no such file")
    loaded = YOLO(str(src_pt)).model
    assert isinstance(loaded, DetectionModel)
    model: DetectionModel = copy.deepcopy(loaded).float()
    src_index = {str(v): int(k) for k, v in model.names.items()}
    head = model.model[-1]
    nc = len(names)
    used: dict[str, str] = {}
    with torch.no_grad():
        for scale, branch in enumerate(head.cv3):
            old = branch[-1]
            new = nn.Conv2d(old.in_channels, nc, 1, bias=True)
            stride = float(head.stride[scale]) if hasattr(head, "stride") else 8.0 * 2**scale
            new.weight.zero_()  # fresh rows start at the prior, not at random logits
            new.bias.fill_(math.log(5 / nc / (640 / stride) ** 2))
            for j, name in enumerate(names):
                src_name = rows_from.get(name)
                if src_name is None:
                    continue
                if src_name not in src_index:
                    raise UserError(str(src_pt), "names", f"a class named {src_name!r}", sorted(src_index)[:10])
                i = src_index[src_name]
                new.weight[j] = old.weight[i]
                new.bias[j] = old.bias[i]
                used[name] = src_name
            branch[-1] = new
    head.nc = nc
    head.no = nc + head.reg_max * 4
    model.yaml["nc"] = nc
    model.names = dict(enumerate(names))
    ckpt = {"model": model.half(), "ema": None, "updates": None, "optimizer": None, "epoch": -1,
            "train_args": {}, "date": None, "version": None}
    out_pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, str(out_pt))
    return used


def keep_head_trainer() -> type:
    """A DetectionTrainer that trains the given model as it is when its class count fits the data."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.nn.tasks import DetectionModel

    class KeepHeadTrainer(DetectionTrainer):
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> Any:
            if isinstance(weights, DetectionModel):
                layers: Any = weights.model
                if layers[-1].nc == self.data["nc"]:
                    return weights.float()
            return super().get_model(cfg, weights, verbose)

    return KeepHeadTrainer

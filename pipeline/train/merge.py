"""Merge two YOLO detection ONNX models into one that answers every class from the model that knows it best.

Fine-tuning on a few hundred images forgets classes that the data hardly shows (the starter model lost
COCO's people and trucks). Here a *donor* model (the COCO one) supplies those classes unchanged: both
networks see the same input, the main model's rows of the donated classes are zeroed, the donor's output
is reordered into the main model's class order (its other classes zeroed), and the two are concatenated
along the anchor axis: ``[B, 4 + nc, A_main + A_donor]`` — still a YOLO detection head for any decoder.
It costs both networks' inference time.

Weights can be stored as fp16 with a Cast to fp32 beside each (``weights_fp16``): half the file size,
fp32 arithmetic (onnxruntime folds the casts when it loads the model).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _prefixed(model: onnx.ModelProto, prefix: str) -> onnx.ModelProto:
    from onnx import compose

    return compose.add_prefix(model, prefix)


def merge_donor_classes(
    main_path: Path, donor_path: Path, rows_from_donor: Mapping[int, int], out_path: Path,
    weights_fp16: bool = True, note: str = "",
) -> Path:
    """Write ``out_path``: main model + the donor's classes ``{main class id: donor class id}``."""
    main = onnx.load(str(main_path))
    donor = onnx.load(str(donor_path))
    meta = {p.key: p.value for p in main.metadata_props}
    opset = max(o.version for o in main.opset_import if o.domain in ("", "ai.onnx"))
    m = _prefixed(main, "main_")
    d = _prefixed(donor, "donor_")
    m_in, m_out = m.graph.input[0], m.graph.output[0]
    d_in, d_out = d.graph.input[0], d.graph.output[0]
    nc = int(m_out.type.tensor_type.shape.dim[1].dim_value) - 4
    d_ch = int(d_out.type.tensor_type.shape.dim[1].dim_value)
    if nc <= 0 or d_ch <= 4:
        raise ValueError("both models need a static [batch, 4 + classes, anchors] output")

    nodes = list(m.graph.node) + list(d.graph.node)
    # both networks read the same input
    for node in nodes:
        for k, name in enumerate(node.input):
            if name == d_in.name:
                node.input[k] = m_in.name
    mask = np.ones((1, 4 + nc, 1), np.float32)
    for target in rows_from_donor:
        mask[0, 4 + target, 0] = 0.0
    zero_row_index = d_ch  # the row appended below
    gather = [0, 1, 2, 3] + [4 + rows_from_donor[t] if t in rows_from_donor else zero_row_index for t in range(nc)]
    inits = list(m.graph.initializer) + list(d.graph.initializer) + [
        numpy_helper.from_array(mask, "merge_mask"),
        numpy_helper.from_array(np.array(gather, np.int64), "merge_gather"),
        numpy_helper.from_array(np.array([0], np.int64), "merge_s0"),
        numpy_helper.from_array(np.array([1], np.int64), "merge_s1"),
        numpy_helper.from_array(np.array([1], np.int64), "merge_axis1"),
        numpy_helper.from_array(np.zeros((1,), np.float32), "merge_zero"),
    ]
    nodes += [
        helper.make_node("Mul", [m_out.name, "merge_mask"], ["merge_main"]),
        helper.make_node("Slice", [d_out.name, "merge_s0", "merge_s1", "merge_axis1"], ["merge_row0"]),
        helper.make_node("Mul", ["merge_row0", "merge_zero"], ["merge_zero_row"]),
        helper.make_node("Concat", [d_out.name, "merge_zero_row"], ["merge_donor_ext"], axis=1),
        helper.make_node("Gather", ["merge_donor_ext", "merge_gather"], ["merge_donor"], axis=1),
        helper.make_node("Concat", ["merge_main", "merge_donor"], ["output0"], axis=2),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, "anchors"])
    graph = helper.make_graph(nodes, "merged", [m_in], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=main.ir_version)
    if weights_fp16:
        _weights_to_fp16(model)
    meta["merged_from"] = note or f"{main_path.name} + donor {donor_path.name} rows {dict(rows_from_donor)}"
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    # rename the input to the usual name
    old = model.graph.input[0].name
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = "images"
    model.graph.input[0].name = "images"
    onnx.save(model, str(out_path))
    return out_path


def _weights_to_fp16(model: onnx.ModelProto, min_elements: int = 1024) -> None:
    """Store large fp32 initializers as fp16 followed by a Cast back to fp32."""
    graph = model.graph
    keep: list[onnx.TensorProto] = []
    casts: list[onnx.NodeProto] = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            arr = numpy_helper.to_array(init).astype(np.float16)
            half = numpy_helper.from_array(arr, init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)

"""Fast 8-bit ONNX: every piece quantised once by onnxruntime, calibrated per model.

``quantize_static`` on a whole model costs about a second, most of it in the per-channel weight
quantiser (a Python loop over channels) and in building its calibration session. But weights are
per piece (``_weights``), so a piece's int8 weights and weight scales are the same in every
model that holds it; only what calibration decides depends on the model. So:

- each of the 140 pieces is run once through ``quantize_static`` (same settings: QDQ,
  per-channel int8 weights, int8 activations, MinMax) on stand-in inputs, and kept as a
  *template*: its nodes, int8 weights and weight scales (cached on disk beside the fp32 pieces);
- per model, one fp32 run of the composed model over the calibration inputs (with per-row
  ReduceMin/ReduceMax of every tensor the templates quantise) collects the ranges onnxruntime's
  MinMax calibrator would collect; activation scales and zero points come from onnxruntime's
  ``compute_scale_zp``, and the int32 biases from its rule (scale = input scale x weight scale);
- at a boundary tensor ``t`` the producer piece quantised ``t`` as its graph output and the
  consumer as its graph input; the composition keeps the producer's Q/DQ pair (named as
  ``quantize_static`` names an inner tensor) and drops the consumer's.

The result has the nodes and initializers of ``quantize_static`` run on the whole model, values
equal to float rounding (a test compares them). ``quantizer=whole`` in the exporter
options runs ``quantize_static`` itself per model.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from blox_lat._fs import atomic_write
from blox_lat.exporters._compose import _field_head, _onnx_frame, _onnx_piece, _position, _stage_shape
from blox_lat.exporters._errors import ExportError
from blox_lat.space import Arch

SCHEME = "piece-templates-v1"


def _piece_model(piece: str, src: str, dst: str, batch: int, opset: int, fp32_dir: Path | None):
    import onnx
    from onnx import TensorProto, helper

    graph = onnx.GraphProto()
    graph.ParseFromString(_onnx_piece(piece, src, dst, batch, opset, fp32_dir))
    graph.name = piece.replace("/", "_")
    graph.input.append(helper.make_tensor_value_info(src, TensorProto.FLOAT, [batch, *_stage_shape(piece)]))
    graph.output.append(helper.make_tensor_value_info(dst, TensorProto.FLOAT, None))
    import torch

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch",
                              producer_version=torch.__version__)
    model.ir_version = 8
    return model


def _join_ready(graph, src: str, dst: str, *, first: bool, last: bool):
    """Drop the input's Q/DQ (the producer owns it) and name the output as an inner tensor."""
    import onnx

    drop_nodes = set()
    drop_inits = set()
    if not first:
        q_out = f"{src}_QuantizeLinear_Output"
        for node in graph.node:
            if node.op_type == "QuantizeLinear" and node.input[0] == src:
                drop_nodes.add(node.name)
                drop_inits.update(node.input[1:])
            elif node.op_type == "DequantizeLinear" and node.input[0] == q_out:
                drop_nodes.add(node.name)
        if len(drop_nodes) != 2:
            raise ExportError(f"unexpected quantised boundary at {src!r}: {sorted(drop_nodes)}")
    rename = {} if last else {dst: f"{dst}_DequantizeLinear_Output", f"{dst}_QuantizeLinear_Input": dst}
    out = onnx.GraphProto()
    for node in graph.node:
        if node.name in drop_nodes:
            continue
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
        out.node.append(node)
    for init in graph.initializer:
        if init.name not in drop_inits:
            out.initializer.append(init)
    return out


@lru_cache(maxsize=512)
def _template(piece: str, src: str, dst: str, batch: int, opset: int, cache_dir: str | None) -> "_Template":
    """The piece quantised once (on stand-in calibration data), split into what is the same in
    every model (nodes, int8 weights and their scales) and what calibration decides per model
    (activation scales and zero points, int32 biases)."""
    import onnx
    from onnx import numpy_helper

    cache = Path(cache_dir) if cache_dir is not None else None
    path = None
    if cache is not None:
        path = cache / f"onnx-int8-{SCHEME}-b{batch}-o{opset}" / (piece.replace("/", "_") + ".pb")
    if path is not None and path.exists():
        data = path.read_bytes()
    else:
        data = _quantise_piece(piece, src, dst, batch, opset, cache)
        if path is not None:
            atomic_write(path, data)
    graph = onnx.GraphProto()
    graph.ParseFromString(data)
    fp32 = onnx.GraphProto()
    fp32.ParseFromString(_onnx_piece(piece, src, dst, batch, opset, cache))
    fp32_inits = {init.name: init for init in fp32.initializer}
    rank2 = {o for n in fp32.node if n.op_type in ("Flatten", "Gemm") for o in n.output}
    inits = {init.name: init for init in graph.initializer}
    by_input2 = {n.input[2]: n for n in graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2}
    dq_scale = {n.output[0]: n.input[1] for n in graph.node if n.op_type == "DequantizeLinear"}
    dq_suffix = "_DequantizeLinear_Output"
    activations, biases, dynamic = [], [], set()
    for name in inits:
        if name.endswith("_quantized") and name[: -len("_quantized")] in fp32_inits and name[: -len("_quantized")] in by_input2:
            bias = name[: -len("_quantized")]
            node = by_input2[bias]
            # the scale of the DQ feeding the op (Flatten's output shares its input's scale); the
            # piece input's DQ belongs to the producer piece and is named after the tensor
            act = dq_scale.get(node.input[0], node.input[0][: -len(dq_suffix)] + "_scale")[: -len("_scale")]
            weight_scale = numpy_helper.to_array(inits[node.input[1][: -len(dq_suffix)] + "_scale"])
            biases.append((bias, numpy_helper.to_array(fp32_inits[bias]), act, weight_scale))
            dynamic.update({name, name + "_scale", name + "_zero_point"})
        elif name.endswith("_zero_point") and name[: -len("_zero_point")] not in fp32_inits \
                and not name.endswith("_quantized_zero_point") and name[: -len("_zero_point")] + "_scale" in inits:
            tensor = name[: -len("_zero_point")]
            if tensor + "_quantized" in inits:  # a weight's zero point
                continue
            activations.append((tensor, tensor in rank2 or tensor == "logits"))
            dynamic.update({name, tensor + "_scale"})
    static = onnx.GraphProto()
    static.node.extend(graph.node)
    static.initializer.extend(i for i in graph.initializer if i.name not in dynamic)
    return _Template(static.SerializeToString(), tuple(activations), tuple(biases))


class _PreprocessingHintFilter(logging.Filter):
    """Drops onnxruntime's 'Please consider (to run) pre-processing before quantization'.

    ``quantize_static`` logs it twice per call through the root logger (20 lines for 3 models);
    the pre-processing it suggests (shape inference, fusions) is not what this exporter wants.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("Please consider")
                    and "pre-processing" in record.getMessage()
                    and "onnxruntime" in record.pathname)


_HINT_FILTER = _PreprocessingHintFilter()
_hint_lock = threading.Lock()
_hint_users = 0
_hint_handler: logging.Handler | None = None


@contextlib.contextmanager
def quiet_preprocessing_hint():
    """While quantising, filter that one hint on the root logger (where onnxruntime logs it).

    Scoped and reference-counted (export threads overlap): the filter comes off when the last
    user leaves. ``logging.warning`` also calls ``basicConfig()`` when the root logger has no
    handler, which would configure logging for the whole process as a side effect; a
    ``NullHandler`` stands in for the duration so that it does not.
    """
    global _hint_users, _hint_handler
    root = logging.getLogger()
    with _hint_lock:
        if _hint_users == 0:
            root.addFilter(_HINT_FILTER)
            if not root.handlers:
                _hint_handler = logging.NullHandler()
                root.addHandler(_hint_handler)
        _hint_users += 1
    try:
        yield
    finally:
        with _hint_lock:
            _hint_users -= 1
            if _hint_users == 0:
                root.removeFilter(_HINT_FILTER)
                if _hint_handler is not None:
                    root.removeHandler(_hint_handler)
                    _hint_handler = None


class _Template:
    __slots__ = ("static", "activations", "biases")

    def __init__(self, static: bytes, activations: tuple, biases: tuple):
        self.static, self.activations, self.biases = static, activations, biases


def _quantise_piece(piece: str, src: str, dst: str, batch: int, opset: int, fp32_dir: Path | None) -> bytes:
    """quantize_static of the piece alone, boundary Q/DQ arranged for joining."""
    import tempfile

    import onnx

    from blox_lat.exporters._naive import quantize_int8

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((batch, *_stage_shape(piece)), dtype=np.float32) for _ in range(2)]
    model = _piece_model(piece, src, dst, batch, opset, fp32_dir)
    with tempfile.TemporaryDirectory(prefix="blox-q-") as tmp:
        fp32, int8 = Path(tmp) / "piece.onnx", Path(tmp) / "piece.int8.onnx"
        onnx.save(model, str(fp32))
        with quiet_preprocessing_hint():
            quantize_int8(fp32, int8, inputs, input_name=src)
        quantised = onnx.load(str(int8))
    return _join_ready(quantised.graph, src, dst, first=src == "input", last=dst == "logits").SerializeToString()


def _reduce_nodes(tensors, opset: int) -> bytes:
    """Per-row ReduceMin/ReduceMax of each calibrated tensor, as extra graph nodes and outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = onnx.GraphProto()
    for axes_name, axes in (("blox_axes4", [1, 2, 3]), ("blox_axes2", [1])):
        if opset >= 18:
            g.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), axes_name))
    for tensor, rank2 in tensors:
        axes = [1] if rank2 else [1, 2, 3]
        for op in ("ReduceMin", "ReduceMax"):
            out = f"blox_{op}/{tensor}"
            if opset >= 18:
                node = helper.make_node(op, [tensor, "blox_axes2" if rank2 else "blox_axes4"], [out], keepdims=0)
            else:
                node = helper.make_node(op, [tensor], [out], axes=axes, keepdims=0)
            g.node.append(node)
            g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    return g.SerializeToString()


def int8_bytes(arch: Arch, batch: int, opset: int, calib: list[np.ndarray], held_out: list[np.ndarray],
               cache_dir: Path | None = None) -> tuple[bytes, np.ndarray]:
    """The serialized QDQ int8 ONNX model of ``arch``, and the fp32 logits of its verification rows.

    One fp32 run over ``held_out`` + ``calib`` stacked gives both the agreement baseline (first
    rows) and, per calibrated tensor, the min/max over the calibration rows: onnxruntime's
    MinMax calibration, from which scales, zero points and int32 biases follow exactly as
    ``quantize_static`` computes them.
    """
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

    from blox_lat.exporters import _verify
    from blox_lat.exporters._compose import onnx_bytes

    cache = str(cache_dir) if cache_dir is not None else None
    templates = [_template(p, s, d, batch, opset, cache) for p, s, d in _position(arch)]
    tensors = [pair for tpl in templates for pair in tpl.activations]
    stacked = np.concatenate([*held_out, *calib])
    augmented = onnx_bytes(arch, batch, opset, cache_dir, frame_batch=len(stacked), extra=_reduce_nodes(tensors, opset))
    session = _verify.ort_session(augmented, optimize=True, threads=0)  # one batched run: every core
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(None, {"input": stacked})))
    rows = slice(len(held_out) * batch, None)
    qmin, qmax = get_qmin_qmax_for_qType(onnx.TensorProto.INT8, reduce_range=False, symmetric=False)
    scales: dict[str, np.ndarray] = {}
    extra = onnx.GraphProto()
    for tensor, _rank2 in tensors:
        rmin = np.float32(outs[f"blox_ReduceMin/{tensor}"][rows].min())
        rmax = np.float32(outs[f"blox_ReduceMax/{tensor}"][rows].max())
        zero, scale = compute_scale_zp(rmin, rmax, qmin, qmax, False, None)
        scales[tensor] = np.asarray(scale, np.float32).squeeze()
        extra.initializer.append(numpy_helper.from_array(np.asarray(scales[tensor], np.float32), tensor + "_scale"))
        extra.initializer.append(numpy_helper.from_array(np.asarray(zero, np.int8).squeeze(), tensor + "_zero_point"))
    for tpl in templates:
        for bias, data, act, weight_scale in tpl.biases:
            bias_scale = scales[act] * weight_scale * 1.0
            q = np.clip((np.asarray(data, np.float64) / np.asarray(bias_scale, np.float64)).round(),
                        np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
            extra.initializer.append(numpy_helper.from_array(q.reshape(data.shape), bias + "_quantized"))
            extra.initializer.append(numpy_helper.from_array(np.asarray(bias_scale, data.dtype).reshape(-1),
                                                             bias + "_quantized_scale"))
            extra.initializer.append(numpy_helper.from_array(np.zeros(bias_scale.size, np.int32),
                                                             bias + "_quantized_zero_point"))
    header, frame = _onnx_frame(batch, opset)
    body = [*(t.static for t in templates), extra.SerializeToString(), frame]
    logits = outs["logits"][: len(held_out) * batch]
    return b"".join([header, _field_head(7, sum(map(len, body))), *body]), logits

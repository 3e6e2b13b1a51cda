"""Fast exporters: build each piece once, compose models from pieces.

Every Blox model is stem + three (cell, reduction) stages + head, and each cell is one of 45
blocks. With the per-piece deterministic weights of ``_weights``, a model's exported graph is
exactly the concatenation of its pieces' exported graphs, joined at fixed boundary tensors:

    input -> stem -> t0 -> cell/0/b0 -> t1 -> reduction/0 -> t2 -> ... -> t6 -> head -> logits

So each of the 1 + 135 + 3 + 1 = 140 pieces is emitted once (straight from its modules by
``_emit``, the nodes ``torch.onnx.export`` would write, in milliseconds), its tensors carry a
per-piece prefix, and the ONNX model of any Blox model is assembled by concatenating
serialized protobuf fields (repeated fields of a protobuf message
may be concatenated on the wire). The same idea gives TorchScript (pieces traced and frozen once,
joined by a small scripted module) and a PyTorch reference whose stage prefixes are memoised.
Tests and the benchmark check the results against models built and exported directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

from blox_lat._fs import atomic_write
from blox_lat.exporters._weights import init_piece, piece_names
from blox_lat.space import Arch

BOUNDARIES = ("input", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "logits")
_LOCK = threading.RLock()


def _stage_shape(piece: str) -> tuple[int, int, int]:
    """Input (C, H, W) of a piece."""
    kind, _, rest = piece.partition("/")
    if kind == "stem":
        return (3, 32, 32)
    if kind == "head":
        return (256, 4, 4)
    stage = int(rest.split("/")[0])
    return (32 * 2**stage, 32 // 2**stage, 32 // 2**stage)


@lru_cache(maxsize=None)
def piece_module(piece: str):
    """The eval-mode torch module of a piece, with its deterministic weights (built once)."""
    import torch
    from torch import nn

    from blox_lat.space import STEM_CHANNELS, Cell, ConvBnRelu, Reduction, list_blocks

    kind, _, rest = piece.partition("/")
    if kind == "stem":
        module = ConvBnRelu(3, STEM_CHANNELS, 3, padding=1)
    elif kind == "cell":
        stage, block = (int(v) for v in rest.split("/"))
        module = Cell(list_blocks()[block].digits, 32 * 2**stage)
    elif kind == "reduction":
        stage = int(rest)
        c, hw = 32 * 2**stage, 32 // 2**stage
        module = Reduction(c, 2 * c, hw)
    elif kind == "head":
        linear = init_piece(nn.Linear(256, 100), "head")

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.classifier = linear

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.classifier(torch.flatten(self.pool(x), 1))

        return Head().eval()
    else:
        raise ValueError(piece)
    return init_piece(module, piece)


def _position(arch: Arch) -> list[tuple[str, str, str]]:
    names = piece_names(arch)
    return [(name, BOUNDARIES[i], BOUNDARIES[i + 1]) for i, name in enumerate(names)]


# -- ONNX ---------------------------------------------------------------------------------
def _onnx_piece(piece: str, src: str, dst: str, batch: int, opset: int, cache_dir: Path | None) -> bytes:
    """A piece's serialized GraphProto (nodes + initializers), tensors renamed for its position.

    Kept in memory, and on disk under ``cache_dir`` (written atomically) so that other
    processes and later runs skip ``torch.onnx.export``.
    """
    key = (piece, src, dst, batch, opset, str(cache_dir))  # the bytes name src and dst
    with _LOCK:
        hit = _PIECES.get(key)
    if hit is not None:
        return hit
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"onnx-b{batch}-o{opset}" / f"{piece.replace('/', '_')}.{src}.{dst}.pb"
        if path.exists():
            data = path.read_bytes()
            with _LOCK:
                _PIECES[key] = data
            return data
    data = _export_piece(piece, src, dst, batch, opset)
    if path is not None:
        atomic_write(path, data)
    with _LOCK:
        _PIECES[key] = data
    return data


_PIECES: dict = {}


def _export_piece(piece: str, src: str, dst: str, batch: int, opset: int) -> bytes:
    """The piece's graph, emitted from its modules (:mod:`._emit`); batch-independent."""
    from blox_lat.exporters._emit import emit_piece

    with _LOCK:
        module = piece_module(piece)
    return emit_piece(module, piece.replace("/", "_") + "/", src, dst)


def _export_piece_torch(piece: str, src: str, dst: str, batch: int, opset: int) -> bytes:
    """The same piece through ``torch.onnx.export(dynamo=False)`` (tests compare the two)."""
    import tempfile

    import onnx

    from blox_lat.exporters._naive import INPUT_NAME, OUTPUT_NAME, export_onnx_module

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "piece.onnx"
        with _LOCK:  # torch.onnx.export is not thread-safe
            export_onnx_module(piece_module(piece), path, batch, opset, in_shape=_stage_shape(piece))
        model = onnx.load(str(path))
    prefix = piece.replace("/", "_") + "/"
    rename = {INPUT_NAME: src, OUTPUT_NAME: dst}

    def new(name: str) -> str:
        if not name:
            return name
        return rename.get(name) or prefix + name

    graph = model.graph
    for node in graph.node:
        node.name = prefix + (node.name or node.op_type)
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
    for init in graph.initializer:
        init.name = new(init.name)
    out = onnx.GraphProto()
    out.node.extend(graph.node)
    out.initializer.extend(graph.initializer)
    return out.SerializeToString()


@lru_cache(maxsize=None)
def _onnx_frame(batch: int, opset: int) -> tuple[bytes, bytes]:
    """Serialized (ModelProto header, GraphProto name/input/output) shared by every model."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    header = onnx.ModelProto(ir_version=8, producer_name="pytorch", producer_version=torch.__version__)
    header.opset_import.append(helper.make_opsetid("", opset))
    frame = onnx.GraphProto(name="blox")
    frame.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 32, 32]))
    frame.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 100]))
    return header.SerializeToString(), frame.SerializeToString()


def _field_head(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited protobuf field (the payload follows)."""
    out = bytearray()
    for value in ((number << 3) | 2, length):
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
    return bytes(out)


def onnx_bytes(arch: Arch, batch: int, opset: int = 17, cache_dir: Path | None = None,
               frame_batch: int | None = None, extra: bytes = b"") -> bytes:
    """The serialized fp32 ONNX model of ``arch`` (same graph as a direct export), in one copy.

    ``frame_batch`` declares another batch size on the same pieces (pieces are batch-free), for
    running many inputs in one call; ``extra`` appends serialized GraphProto fields (more nodes
    and outputs).
    """
    header, frame = _onnx_frame(frame_batch or batch, opset)
    parts = [_onnx_piece(p, s, d, batch, opset, cache_dir) for p, s, d in _position(arch)]
    size = sum(map(len, parts)) + len(frame) + len(extra)
    return b"".join([header, _field_head(7, size), *parts, frame, extra])  # ModelProto.graph is field 7


def export_onnx(arch: Arch, path: Path, batch: int, opset: int = 17, cache_dir: Path | None = None) -> bytes:
    """Write the fp32 ONNX model of ``arch`` to ``path``; returns its bytes (callers hash and
    verify them from memory instead of reading the file back)."""
    data = onnx_bytes(arch, batch, opset, cache_dir)
    Path(path).write_bytes(data)
    return data


# -- PyTorch reference ----------------------------------------------------------------------
_MEMO: OrderedDict = OrderedDict()
_MEMO_MAX = 4096


def torch_reference(arch: Arch):
    """``x -> model(x)`` computed by the model's modules stage by stage, memoising prefixes.

    The same modules and kernels as ``seeded_model(arch)``, so the result is the PyTorch
    model's output (a test checks equality); stage outputs shared with earlier models (same
    input, same leading blocks) are reused.
    """
    import hashlib

    import torch

    names = piece_names(arch)

    def run(x: np.ndarray) -> np.ndarray:
        tag = (x.shape, hashlib.sha1(x.tobytes()).hexdigest())
        with torch.no_grad(), _LOCK:
            h = torch.from_numpy(x)
            done = 0
            for end in (7, 5, 3, 1):  # longest memoised prefix first
                key = (tag, tuple(names[:end]))
                if key in _MEMO:
                    h, done = _MEMO[key], end
                    _MEMO.move_to_end(key)
                    break
            for i in range(done, len(names)):
                h = piece_module(names[i])(h)
                if i + 1 in (1, 3, 5) or i + 1 == 7:
                    _MEMO[(tag, tuple(names[: i + 1]))] = h
                    while len(_MEMO) > _MEMO_MAX:
                        _MEMO.popitem(last=False)
            return h.numpy()

    return run


def forget_reference_outputs() -> None:
    """Drop the memoised stage outputs (benchmarks: a warm pass must not reuse the outputs
    of the very models an earlier pass verified)."""
    with _LOCK:
        _MEMO.clear()


# -- TorchScript ----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _ts_piece(piece: str):
    """A piece traced on a 1-image input (traced graphs do not depend on the batch)."""
    import torch

    with torch.no_grad():
        return torch.jit.trace(piece_module(piece), torch.zeros(1, *_stage_shape(piece)), check_trace=False)


def export_torchscript(arch: Arch, path: Path, batch: int) -> None:
    """Traced pieces joined, traced once more and frozen; loads with ``torch.jit.load``.

    The artifact takes any batch; ``batch`` is recorded in the key (the protocol's batch).
    """
    import torch
    from torch import nn

    with _LOCK:
        pieces = nn.Sequential(*[_ts_piece(p) for p in piece_names(arch)]).eval()
        with torch.no_grad():
            traced = torch.jit.trace(pieces, torch.zeros(1, 3, 32, 32), check_trace=False)
            frozen = torch.jit.freeze(traced.eval())
    torch.jit.save(frozen, str(path))

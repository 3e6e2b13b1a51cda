"""Which piece of a Blox model a profiled layer belongs to: stem, a stage's cell (its block) or
reduction, or the head.

The exporters build every model from pieces (``stem``, ``cell/S/B``, ``reduction/S``,
``head``; ``exporters._compose``) and prefix every node of a piece with the piece's name,
``/`` turned into ``_``: ``cell_0_13/Conv_3``. The rules, in order:

1. **name**: the part before the first ``/`` is a piece (``stem``, ``cell_S_B``,
   ``reduction_S``, ``head``);
2. **boundary**: the name starts with a tensor between two pieces (``input``, ``t0`` .. ``t6``,
   ``logits``) followed by ``_`` or nothing. The int8 exporter's quantize/dequantize pairs are
   named after the tensor they sit on (``t1_QuantizeLinear``), onnxruntime's NCHWc rewrite names
   a fused node after its output (``t0_nchwc``): ``tK`` is the output of the K-th piece in data
   flow order, ``input`` belongs to the stem, ``logits`` to the head;
3. **order**: a node the runtime inserted (``Transpose_token_12``, ``ReorderOutput``,
   ``QuantizeLinear_token_252``) takes the piece of the nearest mapped node before it in
   execution order (after it, for nodes before the first mapped one). Pieces run one after
   another, so a node between two of one piece's nodes belongs to that piece.

Layers of a runtime that keeps no names (frozen TorchScript) stay unmapped (``piece`` "").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BOUNDARY_PIECE", "attribute", "block_of_piece", "cell_costs", "cell_ms", "piece_of_name", "pieces_of_blocks"]

_PIECE_RE = re.compile(r"\A(?:(stem)|(head)|cell_([0-2])_([0-9]{1,2})|reduction_([0-2]))\Z")
_BOUNDARY_RE = re.compile(r"\A(input|t[0-6]|logits)(?:_|\Z)")
#: pieces in data-flow order, by position (``cell`` and ``reduction`` of stage s)
_ORDER = ("stem", "cell/0", "reduction/0", "cell/1", "reduction/1", "cell/2", "reduction/2", "head")
#: the boundary tensor -> the position of the piece that writes it (``input`` goes to the stem)
BOUNDARY_PIECE = {"input": 0, **{f"t{k}": k for k in range(7)}, "logits": 7}


def piece_of_name(name: str, blocks: Sequence[int]) -> tuple[str, str]:
    """``(piece, rule)`` of a layer name in a model of ``blocks`` (rule ``name`` or
    ``boundary``), ``("", "")`` when neither rule applies."""
    head = name.split("/", 1)[0]
    match = _PIECE_RE.match(head)
    if match and "/" in name:
        stem, head_, stage, block, reduction = match.groups()
        if stem or head_:
            return (stem or head_), "name"
        if stage is not None:
            return f"cell/{stage}/{int(block)}", "name"
        return f"reduction/{reduction}", "name"
    match = _BOUNDARY_RE.match(name)
    if match:
        return _piece_at(BOUNDARY_PIECE[match.group(1)], blocks), "boundary"
    return "", ""


def _piece_at(position: int, blocks: Sequence[int]) -> str:
    kind = _ORDER[position]
    if kind.startswith("cell/"):
        stage = int(kind[-1])
        return f"cell/{stage}/{int(blocks[stage])}"
    return kind


def block_of_piece(piece: str) -> tuple[int | None, str | None]:
    """``(stage, block)`` of a piece: a cell's block name, ``reduction`` with its stage, ``stem``
    and ``head`` without one; ``(None, None)`` for the unmapped ``""``."""
    if not piece:
        return None, None
    kind, _, rest = piece.partition("/")
    if kind == "cell":
        from blox_lat.space import list_blocks

        stage, block = rest.split("/")
        return int(stage), list_blocks()[int(block)].name
    if kind == "reduction":
        return int(rest), "reduction"
    return None, kind


def attribute(names: Sequence[str], blocks: Sequence[int], *, keeps_names: bool = True) -> list[tuple[str, str]]:
    """``(piece, rule)`` of every layer, ``names`` in execution order (rules in the module
    docstring). ``keeps_names`` False (a runtime whose graph lost them) leaves all unmapped."""
    if not keeps_names:
        return [("", "") for _ in names]
    found = [piece_of_name(n, blocks) for n in names]
    out: list[tuple[str, str]] = []
    last = ""
    for piece, rule in found:
        if piece:
            last = piece
            out.append((piece, rule))
        else:
            out.append((last, "order") if last else ("", ""))
    following = next((p for p, _ in found if p), "")
    return [(following, "order") if not p and following else (p, r) for p, r in out]


def pieces_of_blocks(blocks: Sequence[int]) -> list[str]:
    """The pieces of a model in data-flow order (what block sums are listed by)."""
    return [_piece_at(k, blocks) for k in range(len(_ORDER))]


def cell_ms(record: Any) -> float:
    """The time of a profiled model's cells (the stage-block pieces), in ms."""
    return sum(b.ms for b in record.blocks if b.piece.startswith("cell/"))


def cell_costs(records: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(3, 45) mean profiled time of each stage-block cell over the records holding it (NaN where
    none does), and how many records that is: the block costs a profile measures."""
    sums, counts = np.zeros((3, 45)), np.zeros((3, 45))
    for rec in records:
        for b in rec.blocks:
            if b.piece.startswith("cell/"):
                _, stage, block = b.piece.split("/")
                sums[int(stage), int(block)] += b.ms
                counts[int(stage), int(block)] += 1
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), counts

"""The 45 distinct blocks a stage can hold, with stable human-readable names.

A valid stage configuration ``(op0, op1, prev, input, skip)`` collapses (after dead nodes are
removed, as the reference hash does) to one of seven shapes. With ``a = op0(x)``:

=========  =====================  ============================  =========================
shape      (prev, input, skip)    the stage computes            name
=========  =====================  ============================  =========================
single     (0,1,0) or (0,0,1)     ``op(x)``                     ``conv``
seq        (1,0,0)                ``op1(op0(x))``               ``seq.conv.mbconv``
res        (1,0,1)                ``op1(a) + a``                ``res.conv.mbconv``
par        (0,1,1)                ``op0(x) + op1(x)``           ``par.conv.mbconv`` (sorted)
dense      (1,1,0)                ``op1(a + x)``                ``dense.conv.mbconv``
full       (1,1,1)                ``op1(a + x) + a``            ``full.conv.mbconv``
=========  =====================  ============================  =========================

3 + 9 + 9 + 6 + 9 + 9 = 45. Block ids number the blocks in the order in which the per-stage
enumeration (op0 fastest, then op1, prev, input, skip) first meets them; that order is fixed
by the reference enumeration, so ids and names are stable. Names avoid ``,`` and ``:`` so
they can appear inside model selectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from blox_lat.errors import UnknownModelError
from blox_lat.space._vector import CONFIGS_PER_STAGE, OPS, StageDigits, stage_digits

SHAPES = ("single", "seq", "res", "par", "dense", "full")
_SHAPE_OF_FLAGS = {
    (1, 0, 0): "seq",
    (1, 0, 1): "res",
    (0, 1, 1): "par",
    (1, 1, 0): "dense",
    (1, 1, 1): "full",
}


@dataclass(frozen=True)
class Block:
    """One of the 45 distinct stage blocks; ``digits`` is its first (canonical) configuration."""

    id: int
    name: str
    shape: str
    ops: tuple[str, ...]
    digits: StageDigits


def block_key(digits: StageDigits) -> tuple[str, tuple[int, ...]] | None:
    """Structural key of a stage configuration: equal keys give isomorphic stage graphs."""
    op0, op1, prev, inp, skip = digits
    flags = (prev, inp, skip)
    if flags == (0, 0, 0):
        return None
    if flags == (0, 1, 0):
        return ("single", (op1,))
    if flags == (0, 0, 1):
        return ("single", (op0,))
    shape = _SHAPE_OF_FLAGS[flags]
    ops = tuple(sorted((op0, op1))) if shape == "par" else (op0, op1)
    return (shape, ops)


def _name(shape: str, ops: tuple[int, ...]) -> str:
    names = [OPS[o] for o in ops]
    return names[0] if shape == "single" else ".".join([shape, *names])


@lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[Block, ...], tuple[int, ...]]:
    blocks: list[Block] = []
    id_of_key: dict = {}
    block_of_code: list[int] = []
    for code in range(CONFIGS_PER_STAGE):
        digits = stage_digits(code)
        key = block_key(digits)
        if key is None:
            block_of_code.append(-1)
            continue
        if key not in id_of_key:
            id_of_key[key] = len(blocks)
            shape, ops = key
            blocks.append(Block(len(blocks), _name(shape, ops), shape, tuple(OPS[o] for o in ops), digits))
        block_of_code.append(id_of_key[key])
    return tuple(blocks), tuple(block_of_code)


def list_blocks() -> tuple[Block, ...]:
    """The 45 blocks in id order."""
    return _catalogue()[0]


def block_of_code() -> tuple[int, ...]:
    """Block id of each of the 72 per-stage configuration codes (-1 for an invalid stage)."""
    return _catalogue()[1]


@lru_cache(maxsize=1)
def _by_name() -> dict[str, Block]:
    return {b.name: b for b in list_blocks()}


def get_block(name_or_id: str | int) -> Block:
    """A block by id (0..44) or name (``conv``, ``seq.conv.mbconv``, ``par.mbconv.conv``...)."""
    blocks = list_blocks()
    if isinstance(name_or_id, int):
        if 0 <= name_or_id < len(blocks):
            return blocks[name_or_id]
        raise UnknownModelError(f"block id {name_or_id} is outside 0..{len(blocks) - 1}")
    name = name_or_id.strip().lower()
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "par":  # order of a parallel pair does not matter
        name = ".".join(["par", *sorted(parts[1:], key=_op_rank)])
    try:
        return _by_name()[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown block {name_or_id!r}; a block is an op (conv, mbconv, bconv) or "
            "SHAPE.OP0.OP1 with SHAPE in seq, res, par, dense, full (see `blox-lat space blocks`)"
        ) from None


def _op_rank(op: str) -> int:
    return OPS.index(op) if op in OPS else len(OPS)

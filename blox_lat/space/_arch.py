"""``Arch``: one Blox model, known by its vector, hash and index at once.

Resolve any model name with :func:`resolve`:

- an index ``0..91124`` (int or decimal text);
- a model hash, 32 hex digits;
- an architecture vector, nested lists or JSON text (any raw vector of the model; the Arch keeps
  the canonical one, the first the reference enumeration meets);
- a block string ``B0/B1/B2`` of three block names, e.g. ``seq.conv.conv/full.mbconv.bconv/conv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from blox_lat.errors import UnknownModelError
from blox_lat.space._blocks import Block, block_of_code, get_block, list_blocks
from blox_lat.space._table import space_table
from blox_lat.space._vector import (
    ArchVector,
    format_vector,
    parse_vector,
    raw_codes,
    stage_code,
    stage_digits,
    to_vector,
    vector_to_list,
)

_HASH_RE = re.compile(r"[0-9a-f]{32}")
_INDEX_RE = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class Arch:
    """A model of the space: immutable, hashable, cheap; identity is the model hash."""

    index: int
    hash: str
    blocks: tuple[int, int, int]

    @property
    def vector(self) -> ArchVector:
        """Canonical architecture vector (first one the reference enumeration meets)."""
        codes = raw_codes(int(space_table().first_position[self.index]))
        return to_vector(tuple(stage_digits(c) for c in codes))

    @property
    def vector_list(self) -> list:
        """The canonical vector as nested lists (JSON-ready)."""
        return vector_to_list(self.vector)

    @property
    def vector_text(self) -> str:
        """The canonical vector as compact JSON text."""
        return format_vector(self.vector)

    @property
    def block_objects(self) -> tuple[Block, Block, Block]:
        blocks = list_blocks()
        return tuple(blocks[b] for b in self.blocks)  # type: ignore[return-value]

    @property
    def block_names(self) -> tuple[str, str, str]:
        return tuple(b.name for b in self.block_objects)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """Block string ``B0/B1/B2``: a human-readable name that :func:`resolve` accepts."""
        return "/".join(self.block_names)

    def __str__(self) -> str:
        return f"#{self.index} {self.hash} {self.name}"


def from_index(index: int) -> Arch:
    """The model at ``index`` (0..91,124)."""
    table = space_table()
    if isinstance(index, (bool, np.bool_)) or not 0 <= int(index) < table.num_models:
        raise UnknownModelError(f"model index {index} is outside 0..{table.num_models - 1}")
    index = int(index)
    return Arch(index, table.hashes[index], table.blocks_of(index))


def from_hash(model_hash: str) -> Arch:
    """The model with this hash (32 lowercase hex digits)."""
    key = model_hash.strip().lower()
    index = space_table().index_of_hash.get(key)
    if index is None:
        raise UnknownModelError(f"no Blox model has hash {model_hash!r}; check it against `blox-lat space list`")
    return from_index(index)


def from_vector(vector: Any) -> Arch:
    """The model a (raw or canonical) architecture vector describes."""
    stages = parse_vector(vector)
    lut = block_of_code()
    blocks = (lut[stage_code(stages[0])], lut[stage_code(stages[1])], lut[stage_code(stages[2])])
    table = space_table()
    index = table.index_of(blocks)
    return Arch(index, table.hashes[index], blocks)


def from_blocks(blocks: Any) -> Arch:
    """The model made of three blocks, given as ``"B0/B1/B2"`` or a sequence of names/ids."""
    parts = blocks.split("/") if isinstance(blocks, str) else list(blocks)
    if len(parts) != 3:
        raise UnknownModelError(
            f"a block string names 3 blocks separated by '/', got {blocks!r} "
            "(e.g. seq.conv.conv/full.mbconv.bconv/conv)"
        )
    ids = tuple(get_block(p).id for p in parts)
    table = space_table()
    index = table.index_of(ids)  # type: ignore[arg-type]
    return Arch(index, table.hashes[index], ids)  # type: ignore[arg-type]


def resolve(name: Any) -> Arch:
    """Resolve any model name (index, hash, vector, block string or Arch) to an :class:`Arch`."""
    if isinstance(name, Arch):
        return name
    if isinstance(name, (int, np.integer)) and not isinstance(name, (bool, np.bool_)):
        return from_index(int(name))
    if isinstance(name, (list, tuple)):
        return from_vector(name)
    if not isinstance(name, str):
        raise UnknownModelError(f"cannot name a model with a {type(name).__name__}")
    text = name.strip()
    if _INDEX_RE.fullmatch(text):
        return from_index(int(text))
    if _HASH_RE.fullmatch(text.lower()):
        return from_hash(text)
    if text.startswith("["):
        return from_vector(text)
    if "/" in text:
        return from_blocks(text)
    raise UnknownModelError(
        f"{name!r} does not name a model: use an index (0..91124), a 32-hex-digit hash, "
        "a vector like [[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]] or blocks like "
        "seq.conv.conv/full.mbconv.bconv/conv"
    )

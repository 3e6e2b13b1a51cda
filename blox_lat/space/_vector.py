"""Architecture vectors: parsing, validation, canonical text form and raw enumeration.

A vector has 3 stages, each ``[[op0], [op1, prev, input, skip]]``. The raw enumeration order is
the Blox reference's odometer over the flattened 15 digits with digit 0 (stage 0's ``op0``)
varying fastest; per stage the digits are ``op0, op1, prev, input, skip``.
"""

from __future__ import annotations

import json
from typing import Any

from blox_lat.errors import InvalidArchError

OPS: tuple[str, ...] = ("conv", "mbconv", "bconv")
NUM_STAGES = 3
STAGE_RADICES: tuple[int, ...] = (3, 3, 2, 2, 2)  # op0, op1, prev, input, skip
CONFIGS_PER_STAGE = 72  # 3 * 3 * 2 * 2 * 2
NUM_RAW = CONFIGS_PER_STAGE**NUM_STAGES  # 373,248

#: One stage as flat digits ``(op0, op1, prev, input, skip)``.
StageDigits = tuple[int, int, int, int, int]
#: A whole vector as the nested tuples the reference uses, hashable.
ArchVector = tuple[tuple[tuple[int], tuple[int, int, int, int]], ...]


def stage_code(digits: StageDigits) -> int:
    """Position of a stage configuration in the per-stage odometer (0..71, op0 fastest)."""
    op0, op1, prev, inp, skip = digits
    return op0 + 3 * (op1 + 3 * (prev + 2 * (inp + 2 * skip)))


def stage_digits(code: int) -> StageDigits:
    """Inverse of :func:`stage_code`."""
    op0, code = code % 3, code // 3
    op1, code = code % 3, code // 3
    prev, code = code % 2, code // 2
    inp, skip = code % 2, code // 2
    return (op0, op1, prev, inp, skip)


def stage_is_valid(digits: StageDigits) -> bool:
    """A stage with ``prev = input = skip = 0`` leaves its second node disconnected."""
    return bool(digits[2] or digits[3] or digits[4])


def raw_codes(position: int) -> tuple[int, int, int]:
    """Stage codes of the raw vector at ``position`` in the reference enumeration."""
    if not 0 <= position < NUM_RAW:
        raise InvalidArchError(f"raw position {position} is outside 0..{NUM_RAW - 1}")
    return (
        position % CONFIGS_PER_STAGE,
        (position // CONFIGS_PER_STAGE) % CONFIGS_PER_STAGE,
        position // CONFIGS_PER_STAGE**2,
    )


def to_vector(stages: tuple[StageDigits, ...]) -> ArchVector:
    """Nested reference form ``(((op0,), (op1, prev, input, skip)), ...)`` of flat stages."""
    return tuple(((s[0],), (s[1], s[2], s[3], s[4])) for s in stages)


def vector_to_list(vector: ArchVector) -> list:
    """The JSON/list form the reference prints: ``[[[0],[1,1,1,1]], ...]``."""
    return [[list(a), list(b)] for a, b in vector]


def format_vector(vector: ArchVector) -> str:
    """Canonical text form: compact JSON without spaces, e.g. ``[[[0],[1,1,0,0]],...]``."""
    return json.dumps(vector_to_list(vector), separators=(",", ":"))


def parse_vector(value: Any) -> tuple[StageDigits, ...]:
    """Validate a vector given as text (JSON) or nested lists; return flat stage digits.

    Raises :class:`InvalidArchError` naming the first problem: wrong shape, a digit out of
    range or an invalid stage (``prev = input = skip = 0``).
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except RecursionError:  # "[[[[..." nested deeper than the JSON decoder recurses
            raise InvalidArchError(
                f"architecture vector {value[:40]!r}... nests too deeply; "
                "expected e.g. [[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]]"
            ) from None
        except json.JSONDecodeError as exc:
            raise InvalidArchError(
                f"architecture vector {value!r} is not valid JSON ({exc.msg}); "
                "expected e.g. [[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]]"
            ) from None
    if not isinstance(value, (list, tuple)) or len(value) != NUM_STAGES:
        raise InvalidArchError(
            f"an architecture vector has {NUM_STAGES} stages, got "
            f"{_describe(value)}; expected e.g. [[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]]"
        )
    stages = []
    for i, stage in enumerate(value):
        shape_ok = (
            isinstance(stage, (list, tuple))
            and len(stage) == 2
            and isinstance(stage[0], (list, tuple))
            and len(stage[0]) == 1
            and isinstance(stage[1], (list, tuple))
            and len(stage[1]) == 4
        )
        if not shape_ok:
            raise InvalidArchError(
                f"stage {i} must look like [[op0],[op1,prev,input,skip]], got {json.dumps(stage)}"
            )
        digits = (stage[0][0], *stage[1])
        names = ("op0", "op1", "prev", "input", "skip")
        for name, digit, radix in zip(names, digits, STAGE_RADICES):
            if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit < radix:
                allowed = "0, 1 or 2 (conv, mbconv, bconv)" if radix == 3 else "0 or 1"
                raise InvalidArchError(f"stage {i} {name} must be {allowed}, got {digit!r}")
        if not stage_is_valid(digits):
            raise InvalidArchError(
                f"stage {i} is invalid: prev, input and skip are all 0, so its second node is "
                "disconnected; set at least one of them to 1"
            )
        stages.append(digits)
    return tuple(stages)


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{len(value)} element(s)"
    return type(value).__name__

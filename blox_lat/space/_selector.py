"""Model selectors shared by every command that takes models.

Grammar (items separated by commas; commas inside a ``[...]`` vector do not split)::

    all                  every model, in index order
    A:B                  indices A <= i < B (either side may be omitted: ``:100``, ``91000:``)
    random:N[:SEED]      N distinct models drawn uniformly with SEED (default 0)
    @PATH                items read from a file, one per line; blank lines and ``#`` comments skipped
    NAME                 an index, a hash, a vector or a block string (see ``resolve``)

The result keeps first-seen order and drops duplicates. ``shard(archs, "k/N")`` splits any
selection deterministically (1-based k) for running one selector on N machines.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from blox_lat.errors import BloxLatError, SelectorError
from blox_lat.space._arch import Arch, from_index, resolve
from blox_lat.space._table import space_table

_RANGE_RE = re.compile(r"(\d*):(\d*)")
_RANDOM_RE = re.compile(r"random:(\d+)(?::(\d+))?")
_SHARD_RE = re.compile(r"(\d+)/(\d+)")


def split_items(selector: str) -> list[str]:
    """Split on top-level commas (not inside brackets)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(selector):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(selector[start:i])
            start = i + 1
    items.append(selector[start:])
    return [item.strip() for item in items if item.strip()]


def sample(n: int, seed: int = 0) -> list[Arch]:
    """``n`` distinct models drawn uniformly at random, reproducibly from ``seed``."""
    total = space_table().num_models
    if not 0 <= n <= total:
        raise SelectorError(f"random:{n} asks for more models than the space has ({total})")
    picks = np.random.default_rng(seed).choice(total, size=n, replace=False)
    return [from_index(int(i)) for i in picks]


def select(selector: str, *, _depth: int = 0) -> list[Arch]:
    """Resolve a selector string to a list of :class:`Arch` (see the module docstring)."""
    if not isinstance(selector, str) or not selector.strip():
        raise SelectorError("empty model selector; try 'all', '0:100', 'random:10' or a hash")
    if _depth > 8:
        raise SelectorError("selector files include each other too deeply (more than 8 levels)")
    total = space_table().num_models
    seen: set[int] = set()
    out: list[Arch] = []

    def add(arch: Arch) -> None:
        if arch.index not in seen:
            seen.add(arch.index)
            out.append(arch)

    for item in split_items(selector):
        if item == "all":
            for i in range(total):
                add(from_index(i))
        elif m := _RANGE_RE.fullmatch(item):
            start = int(m.group(1)) if m.group(1) else 0
            stop = int(m.group(2)) if m.group(2) else total
            if start > stop or stop > total:
                raise SelectorError(f"index range {item!r} must satisfy 0 <= A <= B <= {total}")
            for i in range(start, stop):
                add(from_index(i))
        elif m := _RANDOM_RE.fullmatch(item):
            for arch in sample(int(m.group(1)), int(m.group(2) or 0)):
                add(arch)
        elif item.startswith("random"):
            raise SelectorError(f"bad random selector {item!r}; use random:N or random:N:SEED")
        elif item.startswith("@"):
            for arch in _from_file(item[1:], _depth):
                add(arch)
        else:
            try:
                add(resolve(item))
            except BloxLatError as exc:
                raise SelectorError(f"in selector item {item!r}: {exc}") from None
    return out


def _from_file(path: str, depth: int) -> list[Arch]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SelectorError(f"cannot read selector file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SelectorError(f"selector file {path!r} is not UTF-8 text (one model name per line)") from None
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise SelectorError(f"selector file {path!r} names no models")
    out: list[Arch] = []
    for number, line in enumerate(lines, 1):
        try:
            out.extend(select(line, _depth=depth + 1))
        except SelectorError as exc:
            raise SelectorError(f"{path}: line {number}: {exc}") from None
    return out


def parse_shard(spec: str) -> tuple[int, int]:
    """``"k/N"`` -> ``(k, N)`` with 1 <= k <= N."""
    m = _SHARD_RE.fullmatch(spec.strip()) if isinstance(spec, str) else None
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise SelectorError(f"bad shard {spec!r}; use k/N with 1 <= k <= N, e.g. 2/8")
    return int(m.group(1)), int(m.group(2))


def shard(archs: list[Arch], spec: str | None) -> list[Arch]:
    """The k-th of N deterministic slices of a selection (by model index, so every machine
    that resolves the same selector agrees, whatever order it lists models in)."""
    if spec is None:
        return list(archs)
    k, n = parse_shard(spec)
    return [a for a in archs if a.index % n == k - 1]

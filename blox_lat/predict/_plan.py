"""Measurement plans: a balanced design to start from, then the least certain models.

``balanced(N, seed)`` chooses N models so that each stage holds every block ``N // 45`` or
``N // 45 + 1`` times (each stage's column is a run of shuffled permutations of the 45 blocks,
columns shuffled independently): with N = 135 each block appears 3 times per stage, and with
N >= 45 the additive table sees every (stage, block) pair.

``next_models(measured, N)`` picks, one at a time, the unmeasured model whose prediction is least
certain: the largest leverage ``x' G^-1 x`` of its one-hot design against what is measured (the
spread that scales the conformal interval), updating ``G^-1`` after each pick (Sherman-Morrison),
so a pick makes its blocks better known and the next pick goes elsewhere.

A plan is written as a selector file (``#`` comments, one model index per line, its block
string as a comment) that ``blox-lat measure @plan.txt`` reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from blox_lat.predict._errors import PredictError
from blox_lat.predict._features import (
    LEVERAGE_PRIOR,
    NUM_BLOCKS,
    NUM_STAGES,
    ONEHOT_DIM,
    all_blocks,
    gram_inverse,
)
from blox_lat.predict._files import write_out
from blox_lat.predict._model import spread


def seeded(seed: int) -> np.random.Generator:
    """numpy's generator of ``seed``; :class:`PredictError` for a seed numpy refuses (negative)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PredictError(f"seed {seed!r}: a seed must be an integer 0 or more (e.g. 0)")
    return np.random.default_rng(int(seed))


def _index_of(triples: np.ndarray) -> np.ndarray:
    from blox_lat.space import space_table

    t = triples.astype(np.int64)
    return space_table().index_of_triple[t[:, 0] + NUM_BLOCKS * (t[:, 1] + NUM_BLOCKS * t[:, 2])].astype(np.int64)


def balanced(n: int, seed: int = 0) -> list[int]:
    """``n`` distinct model indices with every block equally often in every stage (within one)."""
    total = len(all_blocks())
    if not 1 <= n <= total:
        raise PredictError(f"a plan of {n} models: choose 1..{total}")
    rng = seeded(seed)
    reps = -(-n // NUM_BLOCKS)
    cols = [np.concatenate([rng.permutation(NUM_BLOCKS) for _ in range(reps)])[:n] for _ in range(NUM_STAGES)]
    for s in range(1, NUM_STAGES):
        cols[s] = cols[s][rng.permutation(n)]
    triples = np.stack(cols, axis=1)
    # a repeated triple: swap its last-stage block with another row's (keeps the per-stage counts)
    for _ in range(100 * n):
        idx = _index_of(triples)
        _, first = np.unique(idx, return_index=True)
        dup = np.setdiff1d(np.arange(n), first)
        if not len(dup):
            return idx.tolist()
        i, j = int(dup[0]), int(rng.integers(n))
        s = int(rng.integers(NUM_STAGES))
        triples[[i, j], s] = triples[[j, i], s]
    raise PredictError(f"could not draw {n} distinct balanced models; try another --seed")  # pragma: no cover


def next_models(measured: np.ndarray, n: int, *, seed: int = 0, candidates: np.ndarray | None = None) -> list[int]:
    """The ``n`` unmeasured models whose predictions are least certain (greedy, see module doc);
    ``candidates`` limits the choice (e.g. a balanced subset of models already measured)."""
    blocks = all_blocks()
    total = len(blocks)
    measured = np.unique(np.asarray(measured, dtype=np.int64))
    allowed = np.zeros(total, dtype=bool)
    allowed[np.arange(total) if candidates is None else np.asarray(candidates, dtype=np.int64)] = True
    allowed[measured] = False
    if not 1 <= n <= int(allowed.sum()):
        raise PredictError(f"--next {n}: choose 1..{int(allowed.sum())} (the models not measured yet)")
    ginv = gram_inverse(blocks[measured]) if len(measured) else np.linalg.inv(_prior_gram())
    jitter = seeded(seed).random(total) * 1e-9  # ties broken reproducibly
    picks: list[int] = []
    cols_all = _columns(blocks)
    for _ in range(n):
        h = spread(ginv, blocks) ** 2 + jitter
        h[~allowed] = -np.inf
        k = int(np.argmax(h))
        picks.append(k)
        allowed[k] = False
        x = np.zeros(ONEHOT_DIM)
        x[cols_all[k]] = 1.0
        gx = ginv @ x
        ginv = ginv - np.outer(gx, gx) / (1.0 + x @ gx)
    return picks


def _prior_gram() -> np.ndarray:
    g = np.eye(ONEHOT_DIM) * LEVERAGE_PRIOR
    g[0, 0] = 1.0
    return g


def _columns(blocks: np.ndarray) -> np.ndarray:
    b = blocks.astype(np.int64)
    return np.stack([np.zeros(len(b), dtype=np.int64)] + [1 + NUM_BLOCKS * s + b[:, s] for s in range(NUM_STAGES)],
                    axis=1)


def write_plan(path: str | os.PathLike[str], indices: list[int], header: list[str], *, overwrite: bool = False) -> Path:
    """Write a selector file ``blox-lat measure @PATH`` accepts (refuses to replace one by default)."""
    from blox_lat import space as sp

    lines = [f"# {h}" for h in header]
    lines += [f"{i}  # {sp.from_index(int(i)).name}" for i in indices]
    return write_out(path, "\n".join(lines) + "\n", overwrite=overwrite)

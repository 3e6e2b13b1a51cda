"""What the predictor sees of a model: its block triple, one-hot, and per-stage block descriptors.

A Blox model is stem + three (cell, reduction) stages + head at fixed shapes, so everything a
latency model can know about it is its block triple ``(b0, b1, b2)``. Three views:

- the one-hot design: an intercept plus 3 x 45 indicators (column ``1 + 45 * stage + block``),
  which the additive table is fitted on;
- block structure (``structure()``, 45 x 12): the operation at each position and the connection
  shape, which the ``structured`` families' feature model is fitted on (per stage);
- block descriptors (``descriptors(stage)``, 45 x 7): the block's operations (conv, mbconv,
  bconv counts), its connection pattern (prev, input, skip: together with the op count they
  fix the shape) and its log MACs at that stage's width (parameters follow MACs at a fixed
  resolution). Products of two stages' descriptors are the interaction features (3 x 49): few
  enough that a fit on 1,000 models stays a fraction of a second.

Every feature is a function of the block triple, so any fitted model collapses to lookups in
per-stage and per-stage-pair tables: predicting all 91,125 models is a few array gathers.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

NUM_STAGES = 3
NUM_BLOCKS = 45
ONEHOT_DIM = 1 + NUM_STAGES * NUM_BLOCKS
PAIRS = ((0, 1), (1, 2), (0, 2))
#: bump when descriptors change: a predictor file records it and refuses another
FEATURES_VERSION = 1


@lru_cache(maxsize=1)
def all_blocks() -> np.ndarray:
    """(91125, 3) int16: the block triple of every model, in model-index order."""
    from blox_lat.space import space_table

    t = space_table().triple_of_index.astype(np.int64)
    return np.stack([t % NUM_BLOCKS, (t // NUM_BLOCKS) % NUM_BLOCKS, t // NUM_BLOCKS**2], axis=1).astype(np.int16)


def blocks_of(indices: np.ndarray) -> np.ndarray:
    """(n, 3) block triples of model indices."""
    return all_blocks()[np.asarray(indices, dtype=np.int64)]


def onehot(blocks: np.ndarray) -> np.ndarray:
    """(n, 136) design: intercept, then one indicator per (stage, block)."""
    blocks = np.asarray(blocks, dtype=np.int64)
    x = np.zeros((len(blocks), ONEHOT_DIM))
    x[:, 0] = 1.0
    rows = np.arange(len(blocks))
    for s in range(NUM_STAGES):
        x[rows, 1 + NUM_BLOCKS * s + blocks[:, s]] = 1.0
    return x


@lru_cache(maxsize=NUM_STAGES)
def descriptors(stage: int) -> np.ndarray:
    """(45, D) standardised descriptors of every block at ``stage`` (see the module docstring)."""
    from blox_lat.space import OPS, list_blocks, op_macs

    c, hw = 32 * 2**stage, 32 // 2**stage
    rows = []
    for block in list_blocks():
        op0, op1, prev, use_input, skip = block.digits
        active = ([OPS[op0]] if (prev or skip) else []) + ([OPS[op1]] if (prev or use_input) else [])
        ops = [float(active.count(o)) for o in OPS]
        pattern = [float(prev), float(use_input), float(skip)]
        macs = sum(op_macs(o, c, hw) for o in active)
        rows.append(ops + pattern + [np.log(macs)])
    d = np.asarray(rows)
    std = d.std(axis=0)
    return (d - d.mean(axis=0)) / np.where(std > 0, std, 1.0)


SHAPES = ("single", "seq", "par", "dense", "res", "full")
#: names of the :func:`structure` columns
STRUCTURE_COLUMNS = tuple(f"first:{op}" for op in ("conv", "mbconv", "bconv")) + tuple(
    f"second:{op}" for op in ("conv", "mbconv", "bconv")) + tuple(f"shape:{sh}" for sh in SHAPES)


@lru_cache(maxsize=1)
def structure() -> np.ndarray:
    """(45, 12) 0/1 structure of every block: the operation at each of its two positions (3 + 3
    indicators, none where a position is unused) and its connection shape (6).

    The ``structured`` families fit one coefficient per column and stage (36 in all), so a block
    seen seldom or never still gets what its operations and shape cost at that stage.
    """
    from blox_lat.space import OPS, list_blocks

    rows = []
    for block in list_blocks():
        op0, op1, prev, use_input, skip = block.digits
        first = [float(bool(prev or skip) and op0 == k) for k in range(len(OPS))]
        second = [float(bool(prev or use_input) and op1 == k) for k in range(len(OPS))]
        rows.append(first + second + [float(block.shape == sh) for sh in SHAPES])
    return np.asarray(rows)


def structure_design(blocks: np.ndarray) -> np.ndarray:
    """(n, 3 * 12) each stage's block structure, side by side."""
    blocks = np.asarray(blocks, dtype=np.int64)
    return np.hstack([structure()[blocks[:, s]] for s in range(NUM_STAGES)])


def structure_costs(coef: np.ndarray) -> np.ndarray:
    """(3, 45) per-(stage, block) costs of structure coefficients (3 x 12)."""
    coef = np.asarray(coef, dtype=float).reshape(NUM_STAGES, -1)
    return np.stack([structure() @ coef[s] for s in range(NUM_STAGES)])


def descriptor_dim() -> int:
    return descriptors(0).shape[1]


def cross(blocks: np.ndarray) -> np.ndarray:
    """(n, 3 * D * D) interaction features: for each stage pair, the outer product of descriptors."""
    blocks = np.asarray(blocks, dtype=np.int64)
    parts = []
    for s, t in PAIRS:
        ds, dt = descriptors(s)[blocks[:, s]], descriptors(t)[blocks[:, t]]
        parts.append((ds[:, :, None] * dt[:, None, :]).reshape(len(blocks), -1))
    return np.concatenate(parts, axis=1)


def pair_tables(gamma: np.ndarray) -> list[np.ndarray]:
    """Collapse interaction coefficients into three 45 x 45 tables (one per stage pair)."""
    d = descriptor_dim()
    gamma = np.asarray(gamma, dtype=float).reshape(len(PAIRS), d, d)
    return [descriptors(s) @ g @ descriptors(t).T for (s, t), g in zip(PAIRS, gamma)]


#: prior count of the leverage: a block seen k times in training adds about 1 / (k + 1)
LEVERAGE_PRIOR = 1.0


def gram_inverse(blocks: np.ndarray) -> np.ndarray:
    """``(X'X + prior * P)^-1`` of the one-hot design (P: identity without the intercept)."""
    x = onehot(blocks)
    penalty = np.full(ONEHOT_DIM, LEVERAGE_PRIOR)
    penalty[0] = 0.0
    return np.linalg.inv(x.T @ x + np.diag(penalty))


def uncovered(blocks: np.ndarray) -> list[tuple[int, int]]:
    """(stage, block) pairs that no model of ``blocks`` holds."""
    blocks = np.asarray(blocks, dtype=np.int64)
    out = []
    for s in range(NUM_STAGES):
        seen = np.bincount(blocks[:, s], minlength=NUM_BLOCKS) if len(blocks) else np.zeros(NUM_BLOCKS, int)
        out += [(s, b) for b in range(NUM_BLOCKS) if seen[b] == 0]
    return out


#: the predictor families ``predict fit`` chooses among (their specs: blox_lat.predict._fit);
#: here so that reading a predictor file can name them without importing the fitting code
FAMILY_NAMES = ("additive", "additive-log", "interact", "structured", "structured-log", "structured-interact")

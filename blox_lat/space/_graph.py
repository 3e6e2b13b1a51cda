"""The Blox reference model graph and its Weisfeiler-Lehman MD5 hash, computed the slow way.

This module follows the reference implementation step by step (SPEC section 1, "Model graph
and hash") and is the ground truth: the shipped hash table (``data/hashes.bin``) is generated
from it and a test regenerates the table and compares. Fast lookups live in ``_table``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from blox_lat.space._vector import StageDigits

INPUT_LABEL = -1
OUTPUT_LABEL = -2
REDUCTION_OP = 3


def build_graph(stages: tuple[StageDigits, ...]) -> tuple[np.ndarray, list[int]]:
    """The 11-node float64 adjacency matrix and labels of a raw vector, before minimisation.

    Nodes: input, then per stage (op0, op1, reduction), then output.
    """
    n = 2 + 3 * len(stages)
    matrix = np.zeros((n, n), dtype=np.float64)
    labels = [INPUT_LABEL]
    inp = 0
    outputs = [inp]
    all_outputs = {inp: [inp]}
    node = 0
    for s, (op0, op1, prev, use_input, skip) in enumerate(stages):
        stage_inputs = outputs
        # first operation node
        node += 1
        first = node
        labels.append(op0 + 4 * s)
        for src in outputs:
            matrix[src, first] = 1
        outputs = [first]
        all_outputs[first] = outputs
        # second operation node
        node += 1
        second = node
        labels.append(op1 + 4 * s)
        srcs = (list(outputs) if prev else []) + (list(stage_inputs) if use_input else [])
        for src in srcs:
            matrix[src, second] = 1
        outputs = [second]
        if skip:
            outputs = outputs + all_outputs[first]
        all_outputs[second] = outputs
        # reduction node
        node += 1
        red = node
        labels.append(REDUCTION_OP + 4 * s)
        for src in outputs:
            matrix[src, red] = 1
        outputs = [red]
        all_outputs[red] = outputs
    node += 1
    labels.append(OUTPUT_LABEL)
    for src in outputs:
        matrix[src, node] = 1
    return matrix, labels


def minimise(matrix: np.ndarray, labels: list[int]) -> tuple[np.ndarray, list[int]] | None:
    """Keep only nodes reachable from input (node 0) that can reach output (the last node).

    Returns ``None`` when input and output are disconnected (an invalid vector).
    """
    n = matrix.shape[0]
    adj = matrix != 0
    forward = _reach(adj, 0)
    backward = _reach(adj.T, n - 1)
    keep = [i for i in range(n) if forward[i] and backward[i]]
    if not keep or keep[0] != 0 or keep[-1] != n - 1:
        return None
    return matrix[np.ix_(keep, keep)], [labels[i] for i in keep]


def _reach(adj: np.ndarray, start: int) -> list[bool]:
    seen = [False] * adj.shape[0]
    seen[start] = True
    stack = [start]
    while stack:
        v = stack.pop()
        for w in np.flatnonzero(adj[v]):
            if not seen[w]:
                seen[w] = True
                stack.append(int(w))
    return seen


def wl_hash(matrix: np.ndarray, labels: list[int]) -> str:
    """NAS-Bench-101 style WL hash. Degrees are float sums (printed ``2.0``): that matters."""
    n = matrix.shape[0]
    in_edges = np.sum(matrix, axis=0).tolist()
    out_edges = np.sum(matrix, axis=1).tolist()
    hashes = [
        hashlib.md5(str(h).encode("utf-8")).hexdigest()
        for h in zip(out_edges, in_edges, labels)
    ]
    preds = [[w for w in range(n) if matrix[w, v]] for v in range(n)]
    succs = [[w for w in range(n) if matrix[v, w]] for v in range(n)]
    for _ in range(n):
        hashes = [
            hashlib.md5(
                (
                    "".join(sorted(hashes[w] for w in preds[v]))
                    + "|"
                    + "".join(sorted(hashes[w] for w in succs[v]))
                    + "|"
                    + hashes[v]
                ).encode("utf-8")
            ).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


def reference_hash(stages: tuple[StageDigits, ...]) -> str | None:
    """Model hash of a raw vector exactly as the Blox reference computes it (None if invalid)."""
    pruned = minimise(*build_graph(stages))
    if pruned is None:
        return None
    return wl_hash(*pruned)

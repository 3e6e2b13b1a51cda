"""Numbers behind the figures: rank correlations, the additive block-cost fit, Pareto fronts,
and :func:`sig3`, how every printed number is written (three significant digits).

All functions take numpy arrays and return plain values or small frozen records, so the same
numbers go into the figures and into ``report.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BlockFit", "fit_block_costs", "kendall", "pareto_front", "sig3", "significant", "spearman"]

NUM_STAGES = 3
NUM_BLOCKS = 45


def sig3(value: float) -> str:
    """``value`` with three significant digits, trailing zeros kept and no exponent:
    ``1.10``, ``0.0123``, ``10.0``, ``123``, ``12300``; ``n/a`` for NaN or infinity. Printed
    ratios, latencies and statistics use it (pyperf prints three digits too): more digits than
    the run-to-run noise allows only invite reading meaning into them. JSON keeps full precision."""
    return significant(value, 3)


def significant(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits, as :func:`sig3` writes three."""
    import math

    x = float(value)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    x = float(f"{x:.{digits - 1}e}")  # round first: 9.996 becomes 10.0, so the exponent is the rounded one's
    exponent = math.floor(math.log10(abs(x)))
    return f"{x:.{max(digits - 1 - exponent, 0)}f}"


def rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (``scipy.stats.rankdata``'s default)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    sv = v[order]
    starts = np.flatnonzero(np.concatenate(([True], sv[1:] != sv[:-1])))
    ends = np.concatenate((starts[1:], [sv.size]))
    avg = (starts + ends + 1) / 2.0  # mean of positions start+1 .. end
    ranks = np.empty(v.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 pairs."""
    if len(x) < 3:
        return float("nan")
    rx, ry = rank_average(x), rank_average(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = float(np.sqrt(np.dot(rx, rx) * np.dot(ry, ry)))
    return float(np.dot(rx, ry) / denom) if denom > 0 else float("nan")


def _tie_pairs(sorted_values: np.ndarray) -> int:
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.concatenate((starts, [sorted_values.size]))).astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j] (strictly): a bottom-up merge count, vectorised.

    At each level, every element of a right half counts the elements of its left half above
    it with one global ``searchsorted`` (keys offset by block so blocks never mix), then one
    sort merges the halves. ``values`` are integers in 0..n.
    """
    v = np.asarray(values, dtype=np.int64)
    n = v.size
    pos = np.arange(n)
    total = 0
    width = 1
    while width < n:
        pair = pos // (2 * width)
        right = (pos // width) % 2 == 1
        key = pair * (n + 1) + v  # v is sorted within blocks of `width`
        left_end = np.searchsorted(pair[~right], pair[right], side="right")
        at_most = np.searchsorted(key[~right], key[right], side="right")
        total += int((left_end - at_most).sum())
        v = np.sort(key) - pair * (n + 1)
        width *= 2
    return total


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b in O(n log^2 n) with numpy (ties handled as ``scipy.stats.kendalltau``)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    if n < 3:
        return float("nan")
    # dense integer ranks keep the merge keys exact
    ry = np.unique(y, return_inverse=True)[1].astype(np.int64)
    order = np.lexsort((ry, x))
    xs, ys = x[order], ry[order]
    tot = n * (n - 1) // 2
    xtie = _tie_pairs(xs)
    ytie = _tie_pairs(np.sort(ry))
    joint = np.concatenate(([True], (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])))
    starts = np.flatnonzero(joint)
    counts = np.diff(np.concatenate((starts, [n]))).astype(np.int64)
    ntie = int((counts * (counts - 1) // 2).sum())
    dis = _inversions(ys)
    denom = np.sqrt(float(tot - xtie) * float(tot - ytie))
    return float((tot - xtie - ytie + ntie - 2 * dis) / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class BlockFit:
    """``latency ~ base + sum over stages of cost[stage, block]`` fitted by ridge least squares.

    ``cost`` (3 x 45, ms) is each block's latency above the cheapest block seen at that stage
    (NaN for blocks no measured model uses); ``base_ms`` is the fitted latency of a model made
    of the cheapest blocks. ``r2`` is the coefficient of determination of the fit on the
    models it was fitted to, ``models`` how many, ``parameters`` how many (stage, block)
    pairs were seen: with fewer models than parameters the fit is underdetermined.
    """

    cost: np.ndarray
    base_ms: float
    r2: float
    rmse_ms: float
    models: int
    parameters: int
    ridge: float

    @property
    def determined(self) -> bool:
        return self.models > self.parameters


def fit_block_costs(blocks: np.ndarray, latency_ms: np.ndarray, ridge: float = 1e-3) -> BlockFit:
    """Fit the additive table from (models x 3) block ids and latencies.

    The normal equations are built from counts (no dense one-hot matrix), so 91,125 models
    take milliseconds. ``ridge`` (relative to the mean diagonal) keeps the system solvable
    when a block is never seen or the design is collinear (the stage one-hots each sum to 1).
    """
    blocks = np.asarray(blocks, dtype=np.int64)
    y = np.asarray(latency_ms, dtype=np.float64)
    n = y.size
    p = NUM_STAGES * NUM_BLOCKS
    cols = blocks + NUM_BLOCKS * np.arange(NUM_STAGES)  # feature ids, one per stage
    xtx = np.zeros((p, p))
    for s in range(NUM_STAGES):
        for t in range(NUM_STAGES):
            pair = np.bincount(cols[:, s] * p + cols[:, t], minlength=p * p).reshape(p, p)
            xtx += pair
    ymean = float(y.mean()) if n else 0.0
    yc = y - ymean
    xty = np.zeros(p)
    for s in range(NUM_STAGES):
        xty += np.bincount(cols[:, s], weights=yc, minlength=p)
    seen = np.diag(xtx) > 0
    lam = ridge * max(float(np.mean(np.diag(xtx)[seen])) if seen.any() else 1.0, 1e-12)
    beta = np.linalg.solve(xtx + lam * np.eye(p), xty)
    fitted = ymean + beta[cols].sum(axis=1)
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum(yc**2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    cost = beta.reshape(NUM_STAGES, NUM_BLOCKS)
    mask = seen.reshape(NUM_STAGES, NUM_BLOCKS)
    cost = np.where(mask, cost, np.nan)
    with np.errstate(invalid="ignore"):
        floor = np.nanmin(np.where(mask, cost, np.inf), axis=1)
    floor = np.where(np.isfinite(floor), floor, 0.0)
    return BlockFit(cost=cost - floor[:, None], base_ms=ymean + float(floor.sum()), r2=r2,
                    rmse_ms=float(np.sqrt(ss_res / n)) if n else float("nan"), models=int(n),
                    parameters=int(mask.sum()), ridge=float(lam))


def pareto_front(latency: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Positions of the models no other model beats: lower latency and higher accuracy.

    A model is on the front when every model at least as fast is less accurate (ties in
    latency: only the most accurate; exact duplicates all stay). Returned in latency order.
    """
    latency = np.asarray(latency, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    order = np.lexsort((-accuracy, latency))  # by latency, then best accuracy first
    acc_sorted = accuracy[order]
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], acc_sorted[:-1])))
    keep = acc_sorted > best_before
    # a model with the same latency and accuracy as a front member is also undominated
    lat_sorted = latency[order]
    dup = np.zeros_like(keep)
    dup[1:] = (lat_sorted[1:] == lat_sorted[:-1]) & (acc_sorted[1:] == acc_sorted[:-1])
    for i in np.flatnonzero(dup):
        keep[i] = keep[i - 1]
    return order[keep]

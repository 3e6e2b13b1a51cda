"""How precise a reported latency is: standard errors of the protocol latency and of a level.

The protocol latency is the inter-quartile mean of a model's group means (SPEC section 2), a
25 % trimmed mean. Its standard error follows Tukey and McLaughlin (1963): the standard
deviation of the *winsorized* group means (each clamped to the quartiles) over
``(1 - 2 * 0.25) * sqrt(n)``. It measures how far the reported value would move if the same
set were timed again on the same host state; it does not see a level shift the whole set shares,
which is what the anchors are for.

A set's level is the geometric mean of its anchors' ``latency / reference`` ratios. How well
it stands for *another* model's shift is told by how much the anchors disagree: the scatter of
their log ratios around the set's mean log ratio, pooled over every set of a campaign (three
anchors give a set two degrees of freedom alone: far too few to trust one set's scatter), over
``sqrt(k)``. Relative errors add in quadrature on the log scale, so the corrected latency
``latency / level`` has the relative error ``sqrt(rel_se(latency)^2 + se(log level)^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from blox_lat.harness._protocol import TRIM, trimmed_mean_se

__all__ = ["TRIM", "corrected_relative_se", "level_log_se", "pooled_anchor_scatter", "trimmed_mean_se"]

def pooled_anchor_scatter(sets: Iterable[Sequence[float]]) -> tuple[float, int]:
    """(standard deviation, degrees of freedom) of anchors' log ratios around their set's mean,
    pooled over ``sets`` (each the log ``latency / reference`` of one set's anchors)."""
    ss, dof = 0.0, 0
    for logs in sets:
        k = len(logs)
        if k < 2:
            continue
        mean = math.fsum(logs) / k
        ss += math.fsum((x - mean) ** 2 for x in logs)
        dof += k - 1
    return (math.sqrt(ss / dof), dof) if dof else (0.0, 0)


def level_log_se(scatter: float, anchors: int) -> float:
    """Standard error of ``log(level)`` for a set of ``anchors`` anchors with the pooled ``scatter``."""
    return scatter / math.sqrt(anchors) if anchors > 0 else 0.0


def corrected_relative_se(latency_ms: float, se_ms: float, level_se: float) -> float:
    """Relative standard error of ``latency / level`` (log scale)."""
    return math.hypot(se_ms / latency_ms, level_se)

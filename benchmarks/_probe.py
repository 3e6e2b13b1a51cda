"""A fixed single-thread workload, timed: how fast this (shared, virtual) CPU is right now.

Benchmarks print it beside their figures, so that runs on a host whose speed drifts (other
tenants, throttling) can be told apart from changes in our code: same code, twice the probe,
about twice the time.
"""

from __future__ import annotations

import hashlib
import time


def cpu_probe_s(repeats: int = 3) -> float:
    """Best of ``repeats``: 2 million Python additions plus sha256 of 32 MB, in seconds."""
    data = bytes(32 << 20)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        hashlib.sha256(data).digest()
        best = min(best, time.perf_counter() - t0)
    return round(best, 4)

"""A small thread pool for the parts of one export that can overlap.

Writing and hashing an artifact, the PyTorch reference run and the onnxruntime verification run
all release the GIL, so a model's export runs them side by side on the machine's cores instead
of one after the other. Callers always wait for what they submitted before they publish a file
or remove its temporary directory.
"""

from __future__ import annotations

import os
from concurrent import futures
from typing import Any, Callable

_POOL: futures.ThreadPoolExecutor | None = None


def submit(fn: Callable[..., Any], *args: Any) -> futures.Future:
    global _POOL
    if _POOL is None:
        _POOL = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="blox-lat-export")
    return _POOL.submit(fn, *args)


def _forget_pool() -> None:
    global _POOL
    _POOL = None  # a forked child has the parent's executor but not its threads


os.register_at_fork(after_in_child=_forget_pool)

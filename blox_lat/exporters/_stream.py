"""``stream_artifacts``: export ahead of a consumer, in input order, with bounded look-ahead.

A campaign iterates over the stream and measures each artifact while the next ``lookahead``
ones are being exported in the background (a thread for ``jobs=1``, a pool of ``jobs`` spawned
processes otherwise), so a device never waits for an export and at most ``lookahead``
finished-but-unconsumed artifacts exist. Closing the generator (``break``, ``close()``)
cancels the exports that have not started and waits for the running ones to finish cleanly.
A model that cannot be exported yields an :class:`ExportFailure` (status + reason) and the
stream goes on.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from blox_lat.errors import BloxLatError
from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._export import DEFAULT_STORE, check_batch, export
from blox_lat.exporters._formats import get_format, normalise_options
from blox_lat.exporters._store import ArtifactStore
from blox_lat.exporters._types import Artifact, ExportFailure
from blox_lat.space import Arch, resolve

MAX_JOBS = 64


def _export_one(index: int, fmt: str, batch: int, root: str, max_bytes, options, verify: bool, method: str):
    """Worker body (top level so process pools can pickle it); never raises for one model."""
    arch = resolve(index)
    try:
        return export(arch, fmt, batch=batch, store=ArtifactStore(root, max_bytes), options=options,
                      verify=verify, method=method)
    except BloxLatError as exc:
        return ExportFailure(arch.hash, arch.index, fmt, str(exc))
    except Exception as exc:  # a bug in one model's export must not end a 91k-model campaign
        return ExportFailure(arch.hash, arch.index, fmt, f"{exc.__class__.__name__}: {exc}")


def stream_artifacts(
    archs: Iterable[Arch],
    format: str,
    *,
    batch: int = 1,
    store: ArtifactStore | None = None,
    options: Mapping[str, str] | None = None,
    lookahead: int = 4,
    jobs: int = 1,
    verify: bool = True,
    method: str = "fast",
) -> Iterator[Artifact | ExportFailure]:
    """Yield one :class:`Artifact` or :class:`ExportFailure` per model, in input order."""
    get_format(format)  # bad format / options / batch fail before any work starts
    check_batch(batch)
    normalise_options(get_format(format), options)
    if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 1:
        raise ExportError(f"lookahead must be an integer >= 1, got {lookahead!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise ExportError(f"jobs must be an integer in 1..{MAX_JOBS}, got {jobs!r}")
    store = store if store is not None else ArtifactStore(DEFAULT_STORE)
    return _generate(iter(archs), format, batch, store, dict(options or {}), max(lookahead, jobs), jobs, verify, method)


def _generate(archs, fmt, batch, store, options, lookahead, jobs, verify, method):
    if jobs == 1:
        pool: cf.Executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="blox-export")
    else:
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    pending: collections.deque = collections.deque()
    root = str(Path(store.root).resolve())

    def submit_next() -> bool:
        arch = next(archs, None)
        if arch is None:
            return False
        arch = resolve(arch)
        pending.append(pool.submit(_export_one, arch.index, fmt, batch, root, store.max_bytes, options, verify, method))
        return True

    try:
        while len(pending) < lookahead and submit_next():
            pass
        while pending:
            result = pending.popleft().result()
            submit_next()
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)

"""The timing loop and the in-process model loaders (run inside the worker process).

Every inference is timed inside the process that runs the model, with
:func:`time.perf_counter_ns` around the call and nothing else: the input is created once, the
bound method is looked up once, garbage collection is off while groups run. A warm-up of at
least ``warmup_min_runs`` runs *and* ``warmup_min_s`` seconds precedes the first group.

Runtimes come from the registry in ``_runtimes`` (re-exported here): :func:`load_callable`
asks the named runtime's loader for a zero-argument callable that runs one inference.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from blox_lat._fs import utc_now
from blox_lat.harness._runtime import RuntimeSpec, RuntimeUnavailableError
from blox_lat.harness._runtimes import get_runtime, list_runtimes, register_runtime, unregister_runtime

if TYPE_CHECKING:  # the device runner bundle (_bundle) carries this module without _protocol
    from blox_lat.harness._protocol import TimingProtocol

__all__ = [
    "RawRun",
    "RuntimeSpec",
    "RuntimeUnavailableError",
    "Schedule",
    "get_runtime",
    "list_runtimes",
    "load_callable",
    "register_runtime",
    "time_callable",
    "time_interleaved",
    "unregister_runtime",
]


@dataclass(frozen=True)
class RawRun:
    """What a runner returns: integer nanosecond samples in run order, plus the warm-up."""

    samples_ns: tuple[int, ...]
    warmup_runs: int
    started_at: str
    finished_at: str
    facts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples_ns": list(self.samples_ns),
            "warmup_runs": self.warmup_runs,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "facts": dict(self.facts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RawRun:
        return cls(
            samples_ns=tuple(int(s) for s in data["samples_ns"]),
            warmup_runs=int(data["warmup_runs"]),
            started_at=str(data["started_at"]),
            finished_at=str(data["finished_at"]),
            facts=dict(data.get("facts", {})),
        )


def time_callable(
    run_once: Callable[[], Any],
    *,
    groups: int,
    runs_per_group: int,
    warmup_min_runs: int = 10,
    warmup_min_s: float = 0.5,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> RawRun:
    """Warm up, then time ``groups x runs_per_group`` calls of ``run_once`` (ns each)."""
    warm = _warm_up(run_once, warmup_min_runs, warmup_min_s, clock)
    samples: list[int] = []
    append = samples.append
    gc.collect()
    was_enabled = gc.isenabled()
    started = utc_now("microseconds")
    gc.disable()
    try:
        for _ in range(groups):
            for _ in range(runs_per_group):
                t0 = clock()
                run_once()
                t1 = clock()
                append(t1 - t0)
    finally:
        if was_enabled:
            gc.enable()
    return RawRun(
        samples_ns=tuple(samples),
        warmup_runs=warm,
        started_at=started,
        finished_at=utc_now("microseconds"),
        facts={},
    )


def _warm_up(run_once: Callable[[], Any], min_runs: int, min_s: float, clock: Callable[[], int]) -> int:
    warm = 0
    deadline = clock() + int(min_s * 1e9)
    while warm < min_runs or clock() < deadline:
        run_once()
        warm += 1
    return warm


@dataclass(frozen=True)
class Schedule:
    """What :func:`time_interleaved` needs of a protocol: ``groups`` of ``runs_per_group`` runs
    per model in ``rounds`` rounds, ``rewarm_runs`` untimed runs before every later round, and
    a warm-up of ``warmup_min_runs`` runs and ``warmup_min_s`` seconds first. A
    :class:`~blox_lat.harness.TimingProtocol` has the same fields and can stand in for it;
    this one exists because the device runner bundle carries ``_timing`` without ``_protocol``."""

    groups: int
    runs_per_group: int
    rounds: int = 1
    rewarm_runs: int = 0
    warmup_min_runs: int = 10
    warmup_min_s: float = 0.5


def time_interleaved(
    run_onces: Sequence[Callable[[], Any]],
    protocol: Schedule | TimingProtocol,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
    on_round: Callable[[int, int], None] | None = None,
    first_round: int = 0,
    on_round_raws: Callable[[int, int, list[RawRun]], None] | None = None,
) -> list[RawRun]:
    """Time several models together as ``protocol`` says: each model's ``groups`` split into
    ``rounds`` rounds, round-robin across the models; every group is ``runs_per_group``
    consecutive runs of one model. Each model is warmed up fully (``warmup_min_runs`` and
    ``warmup_min_s``) before the first round and re-warmed with ``rewarm_runs`` untimed runs at
    the start of every later round (its caches were the other models'). Returns one
    :class:`RawRun` per model, samples in that model's run order.

    ``on_round(done, rounds)`` is called after each round, between timed groups, never inside
    one: a set of models takes minutes, and its caller wants to show that it moves.

    ``first_round`` resumes a set whose earlier rounds were kept (the models are warmed up fully
    again first, and only rounds ``first_round + 1 ..`` are timed). ``on_round_raws(done, rounds,
    raws)`` receives each finished round's own samples, one :class:`RawRun` per model whose
    ``warmup_runs`` are the untimed runs before them, so that a caller can keep every round."""
    runs_per_group, rewarm_runs = protocol.runs_per_group, protocol.rewarm_runs
    base, extra = divmod(protocol.groups, protocol.rounds)
    sizes = [base + (1 if i < extra else 0) for i in range(protocol.rounds)]
    if not 0 <= first_round < len(sizes):
        raise ValueError(f"first_round {first_round} is outside 0..{len(sizes) - 1}")
    warm = [_warm_up(f, protocol.warmup_min_runs, protocol.warmup_min_s, clock) for f in run_onces]
    told = [0 for _ in run_onces]  # untimed runs already handed to on_round_raws
    samples: list[list[int]] = [[] for _ in run_onces]
    started: list[str | None] = [None for _ in run_onces]
    finished: list[str] = ["" for _ in run_onces]
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(first_round, len(sizes)):
            size = sizes[r]
            this_round: list[RawRun] = []
            for m, run_once in enumerate(run_onces):
                if r:
                    for _ in range(rewarm_runs):
                        run_once()
                    warm[m] += rewarm_runs
                began = utc_now("microseconds")
                if started[m] is None:
                    started[m] = began
                append = samples[m].append
                for _ in range(size * runs_per_group):
                    t0 = clock()
                    run_once()
                    t1 = clock()
                    append(t1 - t0)
                finished[m] = utc_now("microseconds")
                if on_round_raws is not None:
                    this_round.append(RawRun(tuple(samples[m][-size * runs_per_group:]), warm[m] - told[m],
                                             began, finished[m], {}))
                    told[m] = warm[m]
            if on_round_raws is not None:
                on_round_raws(r + 1, len(sizes), this_round)
            if on_round is not None:
                on_round(r + 1, len(sizes))
    finally:
        if was_enabled:
            gc.enable()
    facts: dict[str, Any] = {"interleaved_with": len(run_onces), "rounds": protocol.rounds, "rewarm_runs": rewarm_runs}
    if first_round:
        facts["first_round"] = first_round
    return [RawRun(samples_ns=tuple(s), warmup_runs=w, started_at=st or "", finished_at=fin, facts=dict(facts))
            for s, w, st, fin in zip(samples, warm, started, finished)]


# -- loading and measuring ----------------------------------------------------------------


def parse_cpus(text: str) -> list[int]:
    """``"0"``, ``"0,2"``, ``"0-3"`` -> CPU numbers (``--affinity``); ValueError when unreadable."""
    cpus: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-", 1)
                cpus.extend(range(int(lo), int(hi) + 1))
            elif part.strip():
                cpus.append(int(part))
    except ValueError:
        raise ValueError(f"{text!r}: give CPU numbers such as 0 or 0,2 or 0-3") from None
    if not cpus:
        raise ValueError("name at least one CPU, e.g. --affinity 0")
    return cpus


def _set_affinity(cpus: Sequence[int] | None) -> list[int] | None:
    if cpus is None:
        return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if not hasattr(os, "sched_setaffinity"):
        raise RuntimeUnavailableError("CPU affinity is not supported on this OS: drop --affinity")
    try:
        os.sched_setaffinity(0, set(int(c) for c in cpus))
    except OSError as exc:
        raise RuntimeUnavailableError(
            f"cannot pin to CPUs {list(cpus)} ({exc}); choose CPUs from {sorted(os.sched_getaffinity(0))}"
        ) from None
    return sorted(os.sched_getaffinity(0))


def load_callable(
    runtime: str, path: str, options: dict[str, Any], *, batch: int, input_size: int
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A zero-argument callable running one inference of the artifact at ``path``, and facts."""
    spec = get_runtime(runtime)
    if spec.load is None:
        raise RuntimeUnavailableError(
            f"runtime {runtime!r} runs through its own device tools, not in a blox-lat worker"
        )
    return spec.load(path, options, batch, input_size)


def measure_request(request: dict[str, Any]) -> RawRun:
    """Load one artifact and time it as ``request`` says (the worker's unit of work)."""
    affinity = _set_affinity(request.get("affinity"))
    run_once, facts = load_callable(
        request["runtime"],
        request["artifact_path"],
        dict(request.get("options", {})),
        batch=int(request.get("batch", 1)),
        input_size=int(request.get("input_size", 32)),
    )
    proto = request["protocol"]
    raw = time_callable(
        run_once,
        groups=int(proto["groups"]),
        runs_per_group=int(proto["runs_per_group"]),
        warmup_min_runs=int(proto.get("warmup_min_runs", 10)),
        warmup_min_s=float(proto.get("warmup_min_s", 0.5)),
    )
    facts["affinity"] = affinity
    facts["pid"] = os.getpid()
    return RawRun(raw.samples_ns, raw.warmup_runs, raw.started_at, raw.finished_at, facts)


def measure_request_many(request: dict[str, Any],
                         on_round: Callable[[int, int], None] | None = None,
                         on_round_raws: Callable[[int, int, list[RawRun]], None] | None = None) -> list[RawRun]:
    """Load every artifact of ``request["artifact_paths"]`` and time them interleaved from
    round ``request["start_round"]`` (default 0) on (``on_round``, ``on_round_raws``: see
    :func:`time_interleaved`)."""
    affinity = _set_affinity(request.get("affinity"))
    loaded = [load_callable(request["runtime"], path, dict(request.get("options", {})),
                            batch=int(request.get("batch", 1)), input_size=int(request.get("input_size", 32)))
              for path in request["artifact_paths"]]
    proto = request["protocol"]
    schedule = Schedule(
        groups=int(proto["groups"]),
        runs_per_group=int(proto["runs_per_group"]),
        rounds=int(proto.get("rounds", 1)),
        rewarm_runs=int(proto.get("rewarm_runs", 0)),
        warmup_min_runs=int(proto.get("warmup_min_runs", 10)),
        warmup_min_s=float(proto.get("warmup_min_s", 0.5)),
    )
    raws = time_interleaved(
        [run_once for run_once, _ in loaded],
        schedule,
        on_round=on_round,
        first_round=int(request.get("start_round", 0)),
        on_round_raws=on_round_raws,
    )
    out = []
    for raw, (_, facts) in zip(raws, loaded):
        facts = {**facts, **raw.facts, "affinity": affinity, "pid": os.getpid()}
        out.append(RawRun(raw.samples_ns, raw.warmup_runs, raw.started_at, raw.finished_at, facts))
    return out

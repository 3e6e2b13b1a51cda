"""Measuring one model, or a set of models together, with re-measurement on noise.

A measurement with ``cv`` above the protocol's threshold is measured again, up to
``max_attempts`` in all; the least noisy attempt is kept and every attempt is summarised in the
attempt log. A set's noisy models are timed together again; a set that fails as a whole (a
crash, a hang, a model that does not load) is measured one model at a time, so only the
culprit fails. A set may also time anchor models (:mod:`blox_lat.harness._anchors`) in every
attempt, after its models: their measurements go to the caller per attempt, never as results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blox_lat.devices import ConnectionLostError
from blox_lat.harness._events import EventSink, Remeasuring, SetFailed, SetProgress, SetResumed
from blox_lat.harness._protocol import Measurement, TimingProtocol
from blox_lat.harness._runners import DeviceLostError, ModelFailedError, ReportsRounds, Runner
from blox_lat.harness._setlog import PartialAttempt, PartialSet, SetLog
from blox_lat.harness._timing import RawRun

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = ["Outcome", "measure_set_with_retries", "measure_with_retries", "time_alone"]

logger = logging.getLogger(__name__)

#: why a model failed when its device stayed unreachable
DEVICE_LOST = "device lost (the link stayed down through every reconnect attempt)"


@dataclass(frozen=True)
class Outcome:
    """The least noisy measurement (None if every attempt failed), each attempt's summary and,
    for a failure, its reason; ``set_attempt``: the attempt of its set that timed ``best``
    (None when it was timed alone)."""

    best: Measurement | None
    log: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    set_attempt: int | None = None


#: hears each timed attempt of a set with anchors: (attempt, models timed, anchor measurements)
AnchorSink = Callable[[int, int, list[Measurement]], None]


def attempt_summary(m: Measurement | None, error: str | None = None) -> dict[str, Any]:
    if m is None:
        return {"status": "failed", "reason": error}
    return {"status": "ok", "latency_ms": m.latency_ms, "cv": m.cv, "rel_iqr": m.rel_iqr,
            "rel_halfwidth": m.rel_halfwidth, "flags": list(m.flags), "started_at": m.started_at}


def measurement_of(raw: RawRun, protocol: TimingProtocol) -> Measurement:
    return Measurement.from_ns(raw.samples_ns, runs_per_group=protocol.runs_per_group,
                               warmup_runs=raw.warmup_runs, started_at=raw.started_at,
                               finished_at=raw.finished_at, cv_threshold=protocol.cv_threshold,
                               halfwidth_threshold=protocol.halfwidth_threshold)


def _timed(runner: Runner, artifact: Any, profile: DeviceProfile, protocol: TimingProtocol) -> Measurement:
    try:
        raw = runner.measure(artifact, profile, protocol)
    except ConnectionLostError as exc:  # a runner without its own reconnect logic
        raise DeviceLostError(str(exc)) from exc
    return measurement_of(raw, protocol)


def time_alone(runner: Runner, artifacts: Sequence[Any], profile: DeviceProfile,
               protocol: TimingProtocol) -> list[Measurement]:
    """Each artifact timed once, one after the other (anchors on a device that measures one
    model at a time); the first failure raises."""
    return [_timed(runner, a, profile, protocol) for a in artifacts]


def measure_with_retries(runner: Runner, artifact: Any, profile: DeviceProfile, protocol: TimingProtocol,
                         max_attempts: int, on_event: EventSink, arch: Any, hand_over: bool = False) -> Outcome:
    """One model, re-measured while noisy. ``hand_over``: a lost device raises
    :class:`DeviceLostError` (a farm gives the model to another device) instead of failing it."""
    best: Measurement | None = None
    log: list[dict[str, Any]] = []
    for attempt in range(1, max_attempts + 1):
        try:
            m = _timed(runner, artifact, profile, protocol)
        except DeviceLostError:
            if hand_over:
                raise
            log.append(attempt_summary(None, DEVICE_LOST))
            return Outcome(best, log, DEVICE_LOST)
        except ModelFailedError as exc:
            logger.info("model %s failed on attempt %d: %s", _name(arch), attempt, exc.reason)
            log.append(attempt_summary(None, exc.reason))
            return Outcome(best, log, exc.reason)  # a crash or timeout repeats; do not burn the device on it
        log.append(attempt_summary(m))
        if best is None or m.rel_halfwidth < best.rel_halfwidth:
            best = m
        if not m.noisy:
            break
        if attempt < max_attempts:
            logger.info("model %s noisy on attempt %d of %d (half-width %.1f %%): measuring it again",
                        _name(arch), attempt, max_attempts, 100 * m.rel_halfwidth)
            on_event(Remeasuring(arch=arch, attempt=attempt, halfwidth=m.rel_halfwidth))
    return Outcome(best, log, None)


def _name(arch: Any) -> str:
    """How a log line names a model: its hash where it has one."""
    return str(getattr(arch, "hash", arch))


def _joined(kept: list[list[RawRun]], new: Sequence[RawRun] | None, width: int) -> list[RawRun]:
    """Each member's raw run from the kept rounds of its set (oldest first) and the rest of the
    set timed since (``new``, None when every round was kept): samples in run order, warm-up
    runs summed, started at its first round."""
    joined = []
    for j in range(width):
        parts = [row[j] for row in kept] + ([new[j]] if new is not None else [])
        joined.append(RawRun(tuple(ns for part in parts for ns in part.samples_ns),
                             sum(part.warmup_runs for part in parts), parts[0].started_at,
                             parts[-1].finished_at, dict(parts[-1].facts)))
    return joined


def _time_set(runner: Any, members: list[Any], hashes: tuple[str, ...], profile: DeviceProfile,
              protocol: TimingProtocol, attempt: int, on_event: EventSink,
              setlog: SetLog | None, kept: PartialAttempt | None, counted: int | None = None) -> list[RawRun]:
    """One attempt of a set: the rounds ``kept`` from a killed run, then the others, each
    finished round kept in ``setlog`` before it is reported (as ``counted`` models: its anchors
    are not counted)."""
    done_rounds = kept.done if kept is not None else []
    rounds = len(protocol.round_sizes())
    if len(done_rounds) >= rounds:
        return _joined(done_rounds, None, len(members))
    if done_rounds:
        on_event(SetResumed(models=len(members), attempt=attempt, rounds_kept=len(done_rounds), rounds=rounds))
    kwargs: dict[str, Any] = {}
    if isinstance(runner, ReportsRounds) and runner.reports_rounds:
        def on_round(done: int, total: int, n: int = counted if counted is not None else len(members),
                     tried: int = attempt) -> None:
            on_event(SetProgress(models=n, round=done, rounds=total, attempt=tried))
        kwargs["on_round"] = on_round
    if setlog is not None:
        def keep(done: int, total: int, raws: list[RawRun]) -> None:
            setlog.append_round(attempt, hashes, done, total, raws)
        kwargs.update(on_round_raws=keep, start_round=len(done_rounds))
    raws = runner.measure_many(members, profile, protocol, **kwargs)
    return _joined(done_rounds, raws, len(members)) if done_rounds else list(raws)


def measure_set_with_retries(runner: Any, items: Sequence[Any], profile: DeviceProfile, protocol: TimingProtocol,
                             max_attempts: int, on_event: EventSink, archs: Sequence[Any],
                             setlog: SetLog | None = None, carried: PartialSet | None = None,
                             anchors: Sequence[tuple[str, Any]] = (), on_anchors: AnchorSink | None = None
                             ) -> list[Outcome]:
    """:func:`measure_with_retries` for a set timed together: each attempt times the models
    still noisy together again (so a re-measurement follows the same interleaved protocol).
    If a set fails, what is left is measured one model at a time. ``setlog`` keeps every
    finished round; ``carried`` holds the rounds a killed run kept of this set, which are not
    timed again. ``anchors`` ((hash, artifact) pairs) are timed after the models in every
    attempt, so that each attempt has its own level; ``on_anchors`` hears their measurements.
    A :class:`DeviceLostError` goes up to the campaign as it is."""
    best: list[Measurement | None] = [None] * len(items)
    best_attempt: list[int | None] = [None] * len(items)
    logs: list[list[dict[str, Any]]] = [[] for _ in items]
    todo = list(range(len(items)))
    prior = {a.attempt: a for a in (carried.attempts if carried is not None else [])}
    anchor_hashes, anchor_items = tuple(h for h, _ in anchors), [a for _, a in anchors]
    for attempt in range(1, max_attempts + 1):
        hashes = tuple(archs[i].hash for i in todo) + anchor_hashes
        kept = prior.get(attempt)
        if kept is not None and kept.members != hashes:
            logger.info("set attempt %d: the %d rounds kept from an earlier run timed other models; "
                        "discarded, timing it afresh", attempt, len(kept.done))
            kept = None  # not this attempt's members: time it afresh
        if not todo or (len(todo) < 2 and kept is None and not anchors):
            break
        try:
            raws = _time_set(runner, [items[i] for i in todo] + anchor_items, hashes, profile, protocol, attempt,
                             on_event, setlog, kept, len(todo))
        except ModelFailedError as exc:
            logger.info("set of %d models failed on attempt %d (%s): measuring them one at a time",
                        len(todo), attempt, exc.reason)
            on_event(SetFailed(models=len(todo), reason=exc.reason))
            break
        if anchors and on_anchors is not None:
            on_anchors(attempt, len(todo), [measurement_of(r, protocol) for r in raws[len(todo):]])
        for i, raw in zip(todo, raws):
            m = measurement_of(raw, protocol)
            logs[i].append(attempt_summary(m))
            if best[i] is None or m.rel_halfwidth < best[i].rel_halfwidth:
                best[i], best_attempt[i] = m, attempt
        todo = [i for i in todo if best[i].noisy and len(logs[i]) < max_attempts]
        if todo:
            logger.info("set attempt %d of %d: %d noisy models timed together again", attempt, max_attempts,
                        len(todo))
        for i in todo:
            on_event(Remeasuring(arch=archs[i], attempt=attempt, halfwidth=best[i].rel_halfwidth))
    return _alone(runner, items, profile, protocol, max_attempts, on_event, archs, todo, best, logs, best_attempt)


def _alone(runner: Any, items: Sequence[Any], profile: DeviceProfile, protocol: TimingProtocol,
           max_attempts: int, on_event: EventSink, archs: Sequence[Any], todo: list[int],
           best: list[Measurement | None], logs: list[list[dict[str, Any]]],
           best_attempt: list[int | None]) -> list[Outcome]:
    """The set's models in ``todo`` (one left, or a set that failed) alone, with the attempts left."""
    reasons: list[str | None] = [None] * len(items)
    for i in todo:
        left = max_attempts - len(logs[i])
        if left < 1:
            continue
        alone = measure_with_retries(runner, items[i], profile, protocol, left, on_event, archs[i])
        logs[i].extend(alone.log)
        reasons[i] = alone.reason
        if alone.best is not None and (best[i] is None or alone.best.rel_halfwidth < best[i].rel_halfwidth):
            best[i], best_attempt[i] = alone.best, None
    return [Outcome(b, log, None if b is not None else r, a)
            for b, log, r, a in zip(best, logs, reasons, best_attempt)]

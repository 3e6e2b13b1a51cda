"""Measuring one model, with re-measurement on noise (sets: :mod:`blox_lat.harness._sets`).

A noisy measurement (its latency's 95 % interval wider than the protocol's threshold) is
measured again, up to ``max_attempts`` in all; the least noisy attempt is kept and every
attempt is summarised in the attempt log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blox_lat.devices import ConnectionLostError
from blox_lat.harness._events import EventSink, Remeasuring
from blox_lat.harness._protocol import Measurement, TimingProtocol
from blox_lat.harness._runners import DeviceLostError, ModelFailedError, Runner
from blox_lat.harness._timing import RawRun

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = ["Outcome", "attempt_summary", "measure_with_retries", "measurement_of", "time_alone"]

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
    #: the kept attempt's set ran through a noise burst that no redo repaired
    burst: bool = False



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

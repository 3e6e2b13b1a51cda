"""Timing a set of models together, with its noisy models re-timed and a burst-hit set redone.

Each attempt of a set times its models interleaved (:meth:`MeasuresMany.measure_many`), then
its anchors (:mod:`blox_lat.harness._anchors`) after them, so that each attempt has its own
level. After an attempt:

- a set *hit by a burst* (:mod:`blox_lat.harness._stability`) is timed again as a whole, all
  its models and anchors, up to ``redo_sets`` times, once ``before_redo`` says the host is quiet
  (the campaign waits for it there, bounded; a host still busy gets no redo, which would be hit
  again): the anchors make the redo comparable with every other set;
- otherwise its models still noisy are timed together again, up to ``max_attempts`` in all.

Each model keeps its least noisy attempt among those not hit by a burst (any attempt when every
one was hit; its outcome then says ``burst``). A set that fails as a whole (a crash, a hang, a
model that does not load) is measured one model at a time, so only the culprit fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blox_lat.harness._attempts import Outcome, attempt_summary, measure_with_retries, measurement_of
from blox_lat.harness._events import EventSink, Remeasuring, SetFailed, SetProgress, SetRedone, SetResumed
from blox_lat.harness._protocol import Measurement, TimingProtocol
from blox_lat.harness._runners import ModelFailedError, ReportsRounds
from blox_lat.harness._setlog import PartialAttempt, PartialSet, SetLog
from blox_lat.harness._stability import SetStability, StabilityJudge
from blox_lat.harness._timing import RawRun

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = ["SetAttempt", "SetJob", "SetResult", "SetTimer", "TimingPolicy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingPolicy:
    """How hard a campaign tries: measurements per noisy model, redos per burst-hit set."""

    max_attempts: int = 1
    redo_sets: int = 0


@dataclass(frozen=True)
class SetJob:
    """One set to time: its models' artifacts and models, the anchors ((hash, artifact) pairs),
    the file keeping its finished rounds and the rounds a killed run kept of it."""

    items: tuple[Any, ...]
    archs: tuple[Any, ...]
    anchors: tuple[tuple[str, Any], ...] = ()
    setlog: SetLog | None = None
    carried: PartialSet | None = None


@dataclass(frozen=True)
class SetAttempt:
    """One timed attempt of a set: how many models it timed (anchors not counted), its anchors'
    measurements and its stability (None when too small to judge)."""

    attempt: int
    timed: int
    anchors: tuple[Measurement, ...]
    stability: SetStability | None
    redo: bool = False


@dataclass(frozen=True)
class SetResult:
    """Each model's outcome (input order), every timed attempt, and the seconds the redos took."""

    outcomes: tuple[Outcome, ...]
    attempts: tuple[SetAttempt, ...]
    redo_s: float = 0.0

    @property
    def redone(self) -> int:
        return sum(a.redo for a in self.attempts)

    @property
    def unrepaired(self) -> bool:
        """Some model kept an attempt that a burst hit."""
        return any(o.burst for o in self.outcomes)


@dataclass
class _Slot:
    """One model of the set across its attempts (mutable while the set is timed)."""

    best: Measurement | None = None
    attempt: int | None = None
    hit: bool = False
    scatter: float = 0.0  # the kept attempt's shared scatter, where a burst hit it
    log: list[dict[str, Any]] = field(default_factory=list)

    def add(self, m: Measurement, attempt: int, stability: SetStability | None) -> None:
        """Keep ``m`` when it is better: not hit by a burst, or less hit, or less noisy."""
        self.log.append(attempt_summary(m))
        hit = stability is not None and stability.hit
        scatter = stability.shared_sd if hit and stability is not None else 0.0
        if self.best is None or (hit, scatter, m.rel_halfwidth) < (self.hit, self.scatter, self.best.rel_halfwidth):
            self.best, self.attempt, self.hit, self.scatter = m, attempt, hit, scatter


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


class SetTimer:
    """Times sets on one device (see the module docstring). ``judge`` (None: no burst
    detection) learns the campaign's typical set; ``before_redo`` runs before each redo and says
    whether the host is quiet enough for it."""

    def __init__(self, runner: Any, profile: DeviceProfile, protocol: TimingProtocol, policy: TimingPolicy,
                 on_event: EventSink, judge: StabilityJudge | None = None,
                 before_redo: Callable[[], bool] | None = None) -> None:
        self.runner, self.profile, self.protocol, self.policy = runner, profile, protocol, policy
        self.on_event, self.judge, self.before_redo = on_event, judge, before_redo

    def measure(self, job: SetJob) -> SetResult:
        slots = [_Slot() for _ in job.items]
        todo = list(range(len(job.items)))
        prior = {a.attempt: a for a in (job.carried.attempts if job.carried is not None else [])}
        attempts: list[SetAttempt] = []
        redos_left, redo_s, redo = self.policy.redo_sets, 0.0, False
        first: SetStability | None = None  # the set's first judgement: its redos are judged as it was
        attempt = 0
        while todo:
            attempt += 1
            hashes = tuple(job.archs[i].hash for i in todo) + tuple(h for h, _ in job.anchors)
            kept = self._kept(prior.get(attempt), hashes)
            if len(todo) < 2 and kept is None and not job.anchors:
                break
            started = time.perf_counter()
            try:
                raws = self._time(job, todo, hashes, attempt, kept)
            except ModelFailedError as exc:
                logger.info("set of %d models failed on attempt %d (%s): measuring them one at a time",
                            len(todo), attempt, exc.reason)
                self.on_event(SetFailed(models=len(todo), reason=exc.reason))
                break
            measured = [measurement_of(r, self.protocol) for r in raws]
            stability = None
            if self.judge is not None:
                stability = self.judge.judge([m.group_means_ms for m in measured],
                                             against=first.threshold if first is not None else None)
                first = first or stability
            attempts.append(SetAttempt(attempt, len(todo), tuple(measured[len(todo):]), stability, redo))
            if redo:
                redo_s += time.perf_counter() - started
            hit = stability is not None and stability.hit
            for i, m in zip(todo, measured):
                slots[i].add(m, attempt, stability)
            redo = False
            if hit and redos_left > 0:
                waiting = time.perf_counter()
                redo = self.before_redo is None or self.before_redo()
                redo_s += time.perf_counter() - waiting
                if not redo:
                    logger.info("set attempt %d ran through a noise burst and the host stayed busy: not timed again",
                                attempt)
            if redo:
                redos_left -= 1
                todo = list(range(len(job.items)))
                logger.info("set attempt %d ran through a noise burst (rounds scatter %.1f %%, typical %.1f %%): "
                            "timing the whole set again", attempt, 100 * stability.shared_sd,
                            100 * stability.threshold / max(self.judge.factor, 1e-9))
                self.on_event(SetRedone(models=len(todo), attempt=attempt, shared_sd=stability.shared_sd))
                continue
            todo = self._still_noisy(job, todo, slots, attempt)
        if self.judge is not None:
            self.judge.learn(self._kept_stability(attempts))
        return SetResult(self._alone(job, todo, slots), tuple(attempts), redo_s)

    @staticmethod
    def _kept_stability(attempts: list[SetAttempt]) -> SetStability | None:
        """The stability of the set's least scattered attempt (the one its models keep)."""
        judged = [a.stability for a in attempts if a.stability is not None]
        return min(judged, key=lambda x: x.shared_sd) if judged else None

    @staticmethod
    def _kept(kept: PartialAttempt | None, hashes: tuple[str, ...]) -> PartialAttempt | None:
        if kept is not None and kept.members != hashes:
            logger.info("the %d rounds kept from an earlier run timed other models; discarded, timing it afresh",
                        len(kept.done))
            return None
        return kept

    def _still_noisy(self, job: SetJob, todo: list[int], slots: list[_Slot], attempt: int) -> list[int]:
        """The models still noisy with attempts left; each is announced as measured again."""
        noisy = [i for i in todo if slots[i].best is not None and slots[i].best.noisy
                 and len(slots[i].log) < self.policy.max_attempts]
        if noisy:
            logger.info("set attempt %d: %d noisy models timed together again", attempt, len(noisy))
        for i in noisy:
            self.on_event(Remeasuring(arch=job.archs[i], attempt=attempt, halfwidth=slots[i].best.rel_halfwidth))
        return noisy

    def _time(self, job: SetJob, todo: list[int], hashes: tuple[str, ...], attempt: int,
              kept: PartialAttempt | None) -> list[RawRun]:
        """One attempt: the rounds ``kept`` from a killed run, then the others, each finished
        round kept in the set's log before it is reported (as ``len(todo)`` models: its anchors
        are not counted)."""
        members = [job.items[i] for i in todo] + [a for _, a in job.anchors]
        done_rounds = kept.done if kept is not None else []
        rounds = len(self.protocol.round_sizes())
        if len(done_rounds) >= rounds:
            return _joined(done_rounds, None, len(members))
        if done_rounds:
            self.on_event(SetResumed(models=len(members), attempt=attempt, rounds_kept=len(done_rounds),
                                     rounds=rounds))
        kwargs: dict[str, Any] = {}
        if isinstance(self.runner, ReportsRounds) and self.runner.reports_rounds:
            def on_round(done: int, total: int, n: int = len(todo), tried: int = attempt) -> None:
                self.on_event(SetProgress(models=n, round=done, rounds=total, attempt=tried))
            kwargs["on_round"] = on_round
        if job.setlog is not None:
            setlog = job.setlog

            def keep(done: int, total: int, raws: list[RawRun]) -> None:
                setlog.append_round(attempt, hashes, done, total, raws)
            kwargs.update(on_round_raws=keep, start_round=len(done_rounds))
        raws = self.runner.measure_many(members, self.profile, self.protocol, **kwargs)
        return _joined(done_rounds, raws, len(members)) if done_rounds else list(raws)

    def _alone(self, job: SetJob, todo: list[int], slots: list[_Slot]) -> tuple[Outcome, ...]:
        """The set's models in ``todo`` (one left, or a set that failed) alone, with the
        attempts left; then every model's outcome."""
        reasons: list[str | None] = [None] * len(job.items)
        for i in todo:
            slot = slots[i]
            left = self.policy.max_attempts - len(slot.log)
            if left < 1:
                continue
            alone = measure_with_retries(self.runner, job.items[i], self.profile, self.protocol, left,
                                         self.on_event, job.archs[i])
            slot.log.extend(alone.log)
            reasons[i] = alone.reason
            if alone.best is not None and (slot.best is None or (False, 0.0, alone.best.rel_halfwidth)
                                           < (slot.hit, slot.scatter, slot.best.rel_halfwidth)):
                slot.best, slot.attempt, slot.hit, slot.scatter = alone.best, None, False, 0.0
        return tuple(Outcome(s.best, s.log, None if s.best is not None else r, s.attempt, burst=s.hit)
                     for s, r in zip(slots, reasons))

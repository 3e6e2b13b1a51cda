"""How a campaign's models reach its devices: one executor per mode.

- :class:`SerialExecutor`: one model at a time on one device, with the anchors timed on their
  own when due and after a thermal wait;
- :class:`InterleavedExecutor`: sets of ``interleave`` models timed together with their
  anchors on one local device (:mod:`blox_lat.harness._sets`), each finished round kept;
- :class:`FarmExecutor`: one thread per device, each running a serial executor on one queue.

Every executor takes the run's shared :class:`RunContext` and journals through its publisher.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blox_lat._fs import utc_now
from blox_lat.errors import BloxLatError
from blox_lat.harness._attempts import Outcome, measure_with_retries, time_alone
from blox_lat.harness._config import CampaignConfig
from blox_lat.harness._events import AnchorsTimed, DeviceLost, EventSink, ThermalWaited
from blox_lat.harness._hostwatch import HostWatch
from blox_lat.harness._plan import CampaignPlan
from blox_lat.harness._publisher import Publisher
from blox_lat.harness._records import AnchorsRecord, EnvironmentRecord, MeasurementRecord
from blox_lat.harness._rules import full_identity
from blox_lat.harness._runners import CoolsDown, DeviceLostError, ModelFailedError, Prefetching, Runner
from blox_lat.harness._schedule import AnchorSchedule
from blox_lat.harness._setlog import PartialSet, SetLog
from blox_lat.harness._sets import SetJob, SetResult, SetTimer, TimingPolicy
from blox_lat.harness._stability import StabilityJudge
from blox_lat.harness._workqueue import WorkQueue

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = ["EXECUTORS", "FarmExecutor", "InterleavedExecutor", "Member", "RunContext", "SerialExecutor", "exported"]

#: a model and its artifact (or its ExportFailure), as the work queue hands them out
Pair = tuple[Any, Any]
#: the measurement flag of a model whose set a noise burst hit and no redo repaired
BURST_FLAG = "burst"


def exported(item: Any) -> bool:
    """False for an :class:`~blox_lat.exporters.ExportFailure` (a model with no artifact)."""
    from blox_lat.exporters import ExportFailure

    return not isinstance(item, ExportFailure)


@dataclass
class Member:
    """One device of the campaign (the only one, or a farm member): its runner and environment."""

    profile: DeviceProfile
    runner: Runner
    env: EnvironmentRecord | None = None


@dataclass(frozen=True)
class RunContext:
    """What every executor of one run shares: the resolved configuration, the plan, the
    devices, the queue of (model, artifact) pairs, the anchors, the publisher, the exporter of
    the anchors, whether finished rounds are kept, the run's env_id and the host's watch (a
    local device: quiet before a redo, ``--on-busy`` between sets)."""

    config: CampaignConfig
    plan: CampaignPlan
    campaign_id: str
    members: tuple[Member, ...]
    queue: WorkQueue[Pair]
    schedule: AnchorSchedule
    publisher: Publisher
    export: Callable[[Sequence[Any]], Iterable[Any]]
    keeps_rounds: bool
    env_id: str
    host: HostWatch | None = None

    @property
    def emit(self) -> EventSink:
        return self.publisher.emit

    @property
    def out(self) -> Path:
        return Path(self.config.out_dir)

    def record(self, member: Member, arch: Any, item: Any, outcome: Outcome | None,
               level: AnchorsRecord | None = None) -> MeasurementRecord:
        """The journal record of one model: its ``outcome`` (with the ``level`` of the set
        attempt that timed it), or (None) its failed export."""
        assert member.env is not None
        config = self.config
        base = {"model_hash": arch.hash, "model_index": arch.index, "device": config.device,
                "unit": member.profile.name, "profile": member.profile.to_dict(),
                "protocol": config.timing.identity(), "env_id": member.env.env_id, "campaign_id": self.campaign_id}
        if outcome is None:
            return MeasurementRecord(**base, status="failed", reason=f"export failed: {item.reason}",
                                     recorded_at=utc_now("microseconds"), attempts=0, measurement=None,
                                     artifact=None, attempt_log=[])
        best = outcome.best
        artifact = {"sha256": item.sha256, "format": item.format, "bytes": getattr(item, "bytes", None)}
        leveled = {}
        if best is not None and level is not None:
            leveled = {"level": level.level, "latency_corrected_ms": best.latency_ms / level.level,
                       "set_id": level.set_id}
        measurement = best.to_dict() if best else None
        if measurement is not None and outcome.burst:
            measurement["flags"] = [*measurement.get("flags", []), BURST_FLAG]
        return MeasurementRecord(**base, status="ok" if best else "failed", reason=None if best else outcome.reason,
                                 recorded_at=utc_now("microseconds"), attempts=len(outcome.log),
                                 measurement=measurement, artifact=artifact, attempt_log=outcome.log, **leveled)


class _Lost(Exception):
    """Internal: this farm member's device is gone; its model was handed back."""


class SerialExecutor:
    """One model at a time on one device (each device of a farm runs one in its own thread)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def run(self, member: Member | None = None) -> None:
        ctx = self.ctx
        member = member or ctx.members[0]
        queue = ctx.queue
        while not queue.stopped:
            pair = queue.take()
            if pair is None:
                return
            if not ctx.config.farm and isinstance(member.runner, Prefetching):
                upcoming = queue.peek()
                if upcoming is not None and exported(upcoming[1]):
                    member.runner.prefetch(upcoming[1])
            try:
                level = self._ready(member) if ctx.schedule and exported(pair[1]) else None
                self._measure_one(member, pair, level)
                ctx.schedule.model_measured()
            except _Lost:
                return
            finally:
                queue.finished()

    def _ready(self, member: Member) -> AnchorsRecord | None:
        """Before a model: time the anchors when due, let the device cool down, and after a
        wait time them again, so that the model follows the anchors of its thermal state (if
        the anchors themselves heat the device past its limit three times running, the model
        goes on with the latest level). Returns the level the model carries."""
        schedule = self.ctx.schedule
        trigger = schedule.due()
        for _ in range(3):
            if trigger is not None:
                schedule.level = self._time_anchors(member, trigger)
            wait = member.runner.cool_down() if isinstance(member.runner, CoolsDown) else None
            if wait is None or not wait.waited:
                break
            self.ctx.emit(ThermalWaited(device=member.profile.name, waited_s=wait.waited_s, cool=wait.cool))
            trigger = "thermal-wait"
        return schedule.level

    def _time_anchors(self, member: Member, trigger: str) -> AnchorsRecord | None:
        """Time the anchors alone and journal their ``anchors`` line at once; None (no level for
        the models up to the next run) when one of them fails."""
        ctx = self.ctx
        assert member.env is not None
        try:
            measured = time_alone(member.runner, [item for _, item in ctx.schedule.pairs(ctx.export)], member.profile,
                                  ctx.config.timing)
        except ModelFailedError:
            ctx.schedule.failed_run()
            ctx.emit(AnchorsTimed(trigger=trigger, level=None))
            return None
        record = ctx.schedule.record(member.env.env_id, 1, 0, measured, trigger=trigger)
        ctx.publisher.line(record.to_dict())
        ctx.emit(AnchorsTimed(trigger=trigger, level=record.level))
        return record

    def _measure_one(self, member: Member, pair: Pair, level: AnchorsRecord | None) -> None:
        """Measure one model and journal it. In a farm, a lost device hands the model back to
        the queue and its worker stops (:class:`_Lost`)."""
        ctx = self.ctx
        arch, item = pair
        check_order(arch, item)
        if not exported(item):
            ctx.publisher.publish(ctx.record(member, arch, item, None))
            return
        try:
            outcome = measure_with_retries(member.runner, item, member.profile, ctx.config.timing,
                                           ctx.config.max_attempts or 1, ctx.emit, arch, hand_over=ctx.config.farm)
        except DeviceLostError as exc:
            ctx.queue.hand_back(pair)
            ctx.publisher.lost(member.profile.name)
            ctx.emit(DeviceLost(device=member.profile.name, reason=exc.reason))
            raise _Lost from None
        ctx.publisher.publish(ctx.record(member, arch, item, outcome, level), outcome)


def check_order(arch: Any, item: Any) -> None:
    if getattr(item, "model_hash", arch.hash) != arch.hash:
        raise BloxLatError(f"artifact stream out of order: got {item.model_hash} for {arch.hash}")


class InterleavedExecutor:
    """Takes ``interleave`` models at a time and times them together with the anchors (first the
    models of a set a killed run left unfinished, which goes on where it stopped)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        config = ctx.config
        self.judge = StabilityJudge()
        self.timer = SetTimer(ctx.members[0].runner, ctx.members[0].profile, config.timing,
                              TimingPolicy(config.max_attempts or 1, config.redo_sets or 0), ctx.emit, self.judge,
                              ctx.host.before_redo if ctx.host is not None else None)

    def run(self, member: Member | None = None) -> None:
        ctx = self.ctx
        member = member or ctx.members[0]
        resumed, first = ctx.plan.carried, True
        while not ctx.queue.stopped:
            if ctx.host is not None and not first and ctx.queue.peek() is not None:
                ctx.host.between_sets()  # (before the first set, the campaign's own check ran)
            first = False
            batch = self._take_batch(len(resumed.models) if resumed is not None else ctx.config.timing.interleave)
            if not batch:
                return
            try:
                self._measure_set(member, batch, resumed)
            finally:
                for _ in batch:
                    ctx.queue.finished()
            resumed = None

    def _take_batch(self, size: int) -> list[Pair]:
        batch: list[Pair] = []
        while len(batch) < size:
            pair = self.ctx.queue.take(wait=not batch)  # the models this worker holds cannot come back
            if pair is None:
                break
            batch.append(pair)
        return batch

    def _setlog(self, hashes: list[str], carry: PartialSet | None, anchors: list[tuple[str, Any]]) -> SetLog | None:
        ctx = self.ctx
        if ctx.keeps_rounds and (len(hashes) > 1 or carry is not None or (hashes and anchors)):
            return SetLog(ctx.out, hashes, full_identity(ctx.config.timing.identity()), ctx.campaign_id, carry,
                          [h for h, _ in anchors])
        return None

    def _measure_set(self, member: Member, batch: list[Pair], resumed: PartialSet | None) -> None:
        """Time a set's exported models together, with the anchors (each finished round kept in
        the partial-set file), then journal the anchors' lines and every model of the batch."""
        ctx = self.ctx
        for arch, item in batch:
            check_order(arch, item)
        ready = [p for p in batch if exported(p[1])]
        hashes = [p[0].hash for p in ready]
        anchors = ctx.schedule.pairs(ctx.export) if ready else []
        carry = resumed.only(hashes) if resumed is not None else None
        if carry is not None and carry.anchors != tuple(h for h, _ in anchors):
            carry = None  # timed with other anchors (the directory's check refuses those anyway)
        setlog = self._setlog(hashes, carry, anchors)
        try:
            job = SetJob(tuple(p[1] for p in ready), tuple(p[0] for p in ready), tuple(anchors), setlog, carry)
            result = self.timer.measure(job) if ready else SetResult((), ())
            levels = self._journal_levels(member, result) if anchors else {}
            done = {id(p): o for p, o in zip(ready, result.outcomes)}
            for pair in batch:
                outcome = done.get(id(pair))
                if outcome is None:
                    ctx.publisher.publish(ctx.record(member, pair[0], pair[1], None))
                    continue
                at = levels.get(outcome.set_attempt) if outcome.set_attempt else None
                ctx.publisher.publish(ctx.record(member, pair[0], pair[1], outcome, at), outcome)
            ctx.publisher.set_timed(result.redone, result.unrepaired, result.redo_s)
            if setlog is not None:  # every model of the set is in the journal now
                setlog.finish()
        finally:
            if setlog is not None:
                setlog.close()

    def _journal_levels(self, member: Member, result: SetResult) -> dict[int, AnchorsRecord]:
        """The ``anchors`` line of each timed attempt, journaled; by attempt."""
        assert member.env is not None
        levels = {a.attempt: self.ctx.schedule.record(member.env.env_id, a.attempt, a.timed, a.anchors,
                                                      stability=a.stability)
                  for a in result.attempts}
        for line in levels.values():
            self.ctx.publisher.line(line.to_dict())
        return levels


class FarmExecutor:
    """One thread per device, all pulling from the queue; the first error stops them all."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def run(self) -> None:
        errors: list[BaseException] = []
        queue = self.ctx.queue
        serial = SerialExecutor(self.ctx)

        def guarded(member: Member) -> None:
            try:
                serial.run(member)
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)
                queue.stop()

        threads = [threading.Thread(target=guarded, args=(m,), name=f"farm-{m.profile.name}", daemon=True)
                   for m in self.ctx.members]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            queue.stop()
            for t in threads:
                t.join()
            raise
        if errors:
            raise errors[0]


#: mode -> executor ("serial", "interleaved", "farm"); :meth:`Campaign` picks the mode
EXECUTORS: dict[str, type[SerialExecutor] | type[InterleavedExecutor] | type[FarmExecutor]] = {
    "serial": SerialExecutor,
    "interleaved": InterleavedExecutor,
    "farm": FarmExecutor,
}

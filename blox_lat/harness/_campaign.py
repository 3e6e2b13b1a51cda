"""Resumable measurement campaigns: many models, one device, one append-only journal.

A campaign directory holds ``journal.jsonl`` (see :mod:`blox_lat.harness._journal`) and a lock
file. Rules:

- Identity: a directory belongs to one device profile and one timing protocol (groups, runs
  per group, warm-up). Rerunning with a different profile or protocol in the same directory is
  refused (:class:`CampaignConflictError`) so that a dataset never mixes settings silently.
- Environment: each run that has models to measure appends its ``environment`` line first (a
  rerun with nothing left to do appends none).
- Resume: a model is done when the journal has an ``ok`` line for it. Models whose last outcome
  was ``failed`` are tried again on a rerun unless ``skip_failed`` is set. A run killed at any
  moment (even SIGKILL) loses at most the model being measured, or with interleaving the round
  of its set in progress: every finished round is kept in ``set.partial.jsonl``
  (:mod:`blox_lat.harness._setlog`) and the next run first continues that set from its next
  round, with the set's models that are still selected (the others are dropped from it and
  measured later in a set of their own). The file goes once the set's records are journaled;
  the torn journal tail, if any, is moved aside on the next run.
- Noise: a noisy measurement (its 95 % interval wider than the protocol's threshold) is
  measured again, up to ``max_attempts`` in all; the least noisy attempt is kept, every
  attempt is summarised in ``attempt_log`` and the count is ``attempts``.
- Bursts: an interleaved set whose rounds scattered together (a burst of other work on the
  host, :mod:`blox_lat.harness._stability`) is timed again as a whole once the host is quiet,
  up to ``redo_sets`` times; a model whose kept attempt a burst hit carries the flag ``burst``
  and the summary counts it (``unrepaired_sets``).
- Artifacts are streamed from the exporters ahead of the device (``lookahead``), in input order.
- Ctrl-C (KeyboardInterrupt) stops after closing the worker; the summary says ``interrupted``.
- Anchors: with ``anchors`` every interleaved set also times the same anchor models
  (:mod:`blox_lat.harness._anchors`); each timed attempt of a set journals an ``anchors`` line
  with its level, relative to the campaign's first anchor run, and each record carries the
  level of the attempt that timed it and its level-corrected latency. A device that measures
  one model at a time times the anchors on their own at the start of a run, every
  ``anchor_every`` models and right after a thermal wait (:class:`~blox_lat.harness.ThermalGuard`),
  each run journaled as an ``anchors`` line at once; every model carries the level of the latest
  run before it. A directory keeps its anchors: resuming with others is refused.

:class:`Campaign` runs one :class:`~blox_lat.harness.CampaignConfig` (``_config``): it opens
the devices and the directory, makes the plan (``_plan``), writes the environment lines, and
hands the queue to the executor of its mode (``_executors``), which journals through the run's
publisher (``_publisher``); sets are timed by ``_sets``, anchors scheduled by ``_schedule``,
the host watched by ``_hostwatch``, the directory's state read by ``_resume``.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blox_lat.errors import BloxLatError
from blox_lat.harness._anchors import CampaignReference
from blox_lat.harness._config import CampaignConfig
from blox_lat.harness._environment import collect_environment
from blox_lat.harness._events import CampaignStarted, EventSink
from blox_lat.harness._executors import EXECUTORS, Member, RunContext
from blox_lat.harness._factory import get_runner
from blox_lat.harness._hostwatch import HostWatch
from blox_lat.harness._journal import JOURNAL_NAME, Journal, JournalError
from blox_lat.harness._plan import CampaignPlan, plan_campaign
from blox_lat.harness._publisher import Publisher
from blox_lat.harness._records import LEVEL_SCHEMA, EnvironmentRecord
from blox_lat.harness._resume import campaign_status, carried_set
from blox_lat.harness._rules import HostBusyError, check_anchors, check_identity
from blox_lat.harness._runners import MeasuresMany, ModelFailedError, Probing, ResumesRounds, Runner
from blox_lat.harness._schedule import AnchorSchedule
from blox_lat.harness._workqueue import WorkQueue

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = [
    "Campaign",
    "CampaignLockedError",
    "CampaignSummary",
    "campaign_status",
    "run_campaign",
]

ArtifactSource = Callable[[Sequence[Any], Any], Iterable[Any]]


class CampaignLockedError(BloxLatError):
    """Another campaign is running in this directory right now."""


@dataclass(frozen=True)
class CampaignSummary:
    """What one campaign run did (the journal has the details); ``records`` are its journal
    lines. ``redone_sets``: set redos after a noise burst, taking ``redo_s`` seconds (waits for
    a quiet host included); ``unrepaired_sets``/``unrepaired_models``: sets a burst hit that no
    redo repaired (their models carry the flag ``burst``); ``stopped``: why the campaign
    stopped early (``--on-busy stop``), or None."""

    out_dir: Path
    journal: Path
    device: str
    campaign_id: str
    env_id: str
    selected: int
    already_done: int
    skipped_failed: int
    measured: int
    failed: int
    noisy: int
    remeasured: int
    interrupted: bool
    wall_s: float
    records: tuple[dict[str, Any], ...] = field(repr=False, default=())
    lost_devices: tuple[str, ...] = ()
    redone_sets: int = 0
    unrepaired_sets: int = 0
    unrepaired_models: int = 0
    redo_s: float = 0.0
    stopped: str | None = None

    @property
    def remaining(self) -> int:
        return self.selected - self.already_done - self.measured - self.skipped_failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "journal": str(self.journal),
            "device": self.device,
            "campaign_id": self.campaign_id,
            "env_id": self.env_id,
            "selected": self.selected,
            "already_done": self.already_done,
            "skipped_failed": self.skipped_failed,
            "measured": self.measured,
            "failed": self.failed,
            "noisy": self.noisy,
            "remeasured": self.remeasured,
            "remaining": self.remaining,
            "interrupted": self.interrupted,
            "wall_s": round(self.wall_s, 3),
            "lost_devices": list(self.lost_devices),
            "redone_sets": self.redone_sets,
            "unrepaired_sets": self.unrepaired_sets,
            "unrepaired_models": self.unrepaired_models,
            "redo_s": round(self.redo_s, 3),
            "stopped": self.stopped,
        }


def _exporter_source(store: Any = None, lookahead: int = 4, jobs: int = 1) -> ArtifactSource:
    def source(archs: Sequence[Any], profile: DeviceProfile) -> Iterable[Any]:
        from blox_lat.exporters import stream_artifacts

        return stream_artifacts(archs, profile.format, batch=profile.batch, store=store,
                                lookahead=lookahead, jobs=jobs)

    return source


def _phased(source: ArtifactSource, chunk: int) -> ArtifactSource:
    """Export a chunk completely, then hand it over: no export competes with a local device."""

    def phased(archs: Sequence[Any], profile: DeviceProfile) -> Iterator[Any]:
        for start in range(0, len(archs), chunk):
            stream = source(archs[start : start + chunk], profile)
            items = list(stream)
            yield from items

    return phased


class _DirLock:
    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / ".lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise CampaignLockedError(
                f"another 'blox-lat measure' is running in {out_dir}; wait for it or use another --out"
            ) from None

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _ignore(event: Any) -> None:
    pass


class Campaign:
    """Measure ``archs`` as ``config`` says, appending to ``config.out_dir/journal.jsonl``;
    resumable (see the module docstring).

    ``config`` is resolved here (:meth:`CampaignConfig.resolved`: every auto value filled and
    every setting checked) before :meth:`run` touches a device or the disk. ``runners``
    replaces the runners the devices would get (one per device; the caller closes them),
    ``artifacts`` the exporters (a function of (models, profile) yielding artifacts in order),
    ``on_event`` hears typed events (:mod:`blox_lat.harness._events`), ``host`` watches a
    local device's host between sets and before a redo (:class:`HostWatch`; default: one
    with the configuration's ``on_busy`` and ``affinity``, for local devices).
    """

    def __init__(self, archs: Sequence[Any], config: CampaignConfig, *, runners: Sequence[Runner] | None = None,
                 artifacts: ArtifactSource | None = None, on_event: EventSink | None = None,
                 host: HostWatch | None = None) -> None:
        self.archs = archs
        self.config = config.resolved()
        self._given = list(runners) if runners is not None else None
        if self._given is not None and len(self._given) != len(self.config.devices):
            raise BloxLatError(f"{len(self.config.devices)} device(s) but {len(self._given)} runner(s)")
        self._artifacts = artifacts or _exporter_source(self.config.store, self.config.lookahead)
        self._emit: EventSink = on_event or _ignore
        local = all(p.transport == "local" for p in self.config.devices)
        self._host = host if host is not None else (HostWatch(self.config.on_busy, self.config.affinity)
                                                    if local else None)

    def run(self) -> CampaignSummary:
        """Measure what is left to measure; Ctrl-C stops cleanly (the summary says so)."""
        members = self._open_runners()
        out = Path(self.config.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            lock = _DirLock(out)
        except BloxLatError:
            self._close_runners(members)
            raise
        interrupted, stopped, ctx, stream = False, None, None, None
        try:
            ctx, stream = self._open(members)
            self._execute(ctx)
        except KeyboardInterrupt:
            interrupted = True
        except HostBusyError as exc:
            stopped = str(exc)
        finally:
            close = getattr(stream, "close", None)  # a generator still exporting
            if callable(close):
                close()
            self._close_runners(members)
            if ctx is not None:
                ctx.publisher.journal.close()
            lock.release()
        return self._summary(ctx, interrupted, stopped, time.perf_counter() - start)

    # -- devices --------------------------------------------------------------------------------

    def _open_runners(self) -> list[Member]:
        """The given runners, or one per device (before touching the disk: an unusable device
        leaves nothing behind)."""
        config = self.config
        runners = self._given
        if runners is None:
            runners = []
            try:
                for profile in config.devices:
                    runners.append(get_runner(profile, timeout_s=config.timeout_s, affinity=config.affinity,
                                              connection=None if config.farm else config.connection))
            except BaseException:
                for r in runners:
                    r.close()
                raise
        return [Member(p, r) for p, r in zip(config.devices, runners)]

    def _close_runners(self, members: list[Member]) -> None:
        if self._given is None:
            for member in members:
                member.runner.close()

    def _mode(self, members: list[Member]) -> str:
        """``farm``, ``interleaved`` (one device whose runner times sets) or ``serial``."""
        if self.config.farm:
            return "farm"
        interleaves = self.config.timing.interleave > 1 and isinstance(members[0].runner, MeasuresMany)
        return "interleaved" if interleaves else "serial"

    def _keeps_rounds(self, members: list[Member]) -> bool:
        """Whether this campaign times sets whose finished rounds are kept (and resumed)."""
        runner = members[0].runner
        return (self._mode(members) == "interleaved" and isinstance(runner, ResumesRounds)
                and bool(runner.resumes_rounds))

    # -- opening --------------------------------------------------------------------------------

    def _open(self, members: list[Member]) -> tuple[RunContext, Iterable[Any]]:
        """Check the directory's identity, make the plan (with the set a killed run left
        unfinished), write the environment lines and open the queue."""
        config = self.config
        out = Path(config.out_dir)
        state = campaign_status(out)
        first = state["first_environment"]
        first_env = EnvironmentRecord.from_dict(first) if first is not None else None
        check_identity(first_env, config.device, config.devices[0], config.timing, out)
        check_anchors(first_env, config.anchor_models, out)
        reference = self._resumed_reference(*state["reference"]) if state["reference"] and config.anchors else None
        campaign_id = (first_env.campaign_id if first_env is not None else None) or uuid.uuid4().hex[:16]
        plan = plan_campaign(self.archs, state["done"], state["failed"], config.skip_failed, config.remeasure)
        if self._keeps_rounds(members):
            plan = plan.carrying(carried_set(out, plan.todo, config.timing, self._emit))
        journal = Journal(out / JOURNAL_NAME)
        publisher = Publisher(journal, self._emit, len(plan.todo))
        env_id = self._write_environments(members, plan, campaign_id, publisher, state["last_environment"])
        self._emit(CampaignStarted(selected=len(plan.unique), todo=len(plan.todo), already_done=len(plan.already),
                                   skipped_failed=len(plan.skipped), env_id=env_id,
                                   devices=[p.name for p in config.devices]))
        stream = self._stream(plan)
        lead = config.devices[0]
        ctx = RunContext(config=config, plan=plan, campaign_id=campaign_id, members=tuple(members),
                         queue=WorkQueue(iter(zip(plan.todo, stream))),
                         schedule=AnchorSchedule(config.anchor_models, config.anchor_every or 1, config.device,
                                                 campaign_id, reference),
                         publisher=publisher, export=lambda archs: self._artifacts(archs, lead),
                         keeps_rounds=self._keeps_rounds(members), env_id=env_id, host=self._host)
        return ctx, stream

    def _resumed_reference(self, reference: CampaignReference, number: int) -> list[float]:
        """The reference latencies of a resumed campaign (its first ``anchors`` line, at line
        ``number``), refused before any work when they are not of this run's anchors."""
        anchors = self.config.anchor_models
        if list(reference.anchors) != [a.hash for a in anchors]:
            raise JournalError(
                f"{Path(self.config.out_dir) / JOURNAL_NAME}:{number}: the campaign's first anchors line names "
                f"{len(reference.anchors)} anchor(s) other than the {len(anchors)} of its environment line; "
                "restore the file from a backup or remove that line")
        return list(reference.reference_ms)

    def _stream(self, plan: CampaignPlan) -> Iterable[Any]:
        """The artifacts of the models to measure, in order, exported ahead or chunk by chunk."""
        config = self.config
        source = self._artifacts
        if not config.overlap_exports:
            source = _phased(source, max(1, config.export_chunk))
        return source(plan.todo, config.devices[0]) if plan.todo else ()

    def _write_environments(self, members: list[Member], plan: CampaignPlan, campaign_id: str,
                            publisher: Publisher, last_env: dict[str, Any] | None) -> str:
        """One environment line per device, unless nothing will be measured (a no-op rerun);
        the env_id the run's records point at."""
        journal = publisher.journal
        for member in members:
            member.env = self._environment(member, plan, campaign_id, journal.repaired_bytes)
        if plan.todo or last_env is None or journal.repaired_bytes:
            for member in members:
                assert member.env is not None
                publisher.line(member.env.to_dict())
            assert members[0].env is not None
            return members[0].env.env_id
        return str(last_env["env_id"])  # a no-op rerun: no record will point at a new environment line

    def _environment(self, member: Member, plan: CampaignPlan, campaign_id: str, repaired: int) -> EnvironmentRecord:
        config = self.config
        runner = member.runner
        try:
            facts = runner.probe() if isinstance(runner, Probing) and plan.todo else {}
        except ModelFailedError as exc:
            if not config.farm:
                raise BloxLatError(f"device {member.profile.name!r} cannot run the runner: {exc.reason}") from None
            facts = {"probe_error": exc.reason}
        extra: dict[str, Any] = {
            "unit": member.profile.name, "profile": member.profile.to_dict(), "protocol": config.timing.to_dict(),
            "selected": len(plan.unique), "todo": len(plan.todo), "max_attempts": config.max_attempts,
            "farm": [p.name for p in config.devices] if config.farm else None, "journal_repaired_bytes": repaired}
        schema = None
        if config.anchors:
            extra["anchors"] = [{"model_hash": a.hash, "model_index": a.index} for a in config.anchor_models]
            if self._mode_of_runner(runner) != "interleaved":
                extra["anchor_every"] = config.anchor_every
            schema = LEVEL_SCHEMA
        if config.redo_sets:
            extra["redo_sets"] = config.redo_sets
        return EnvironmentRecord.from_dict(collect_environment(
            device=config.device, device_facts={**facts, "runner": runner.describe()}, campaign_id=campaign_id,
            extra=extra, host_state=dict(config.host_state) if config.host_state is not None else None,
            **({"schema": schema} if schema else {})))

    def _mode_of_runner(self, runner: Runner) -> str:
        interleaves = not self.config.farm and self.config.timing.interleave > 1 and isinstance(runner, MeasuresMany)
        return "interleaved" if interleaves else "serial"

    # -- measuring and the end --------------------------------------------------------------------

    def _execute(self, ctx: RunContext) -> None:
        """The executor of this campaign's mode runs the queue."""
        EXECUTORS[self._mode(list(ctx.members))](ctx).run()

    def _summary(self, ctx: RunContext | None, interrupted: bool, stopped: str | None,
                 wall_s: float) -> CampaignSummary:
        config = self.config
        if ctx is None:
            empty = CampaignPlan((), (), (), ())
            return CampaignSummary(out_dir=Path(config.out_dir), journal=Path(config.out_dir) / JOURNAL_NAME,
                                   device=config.device, campaign_id="", env_id="", selected=len(empty.unique),
                                   already_done=0, skipped_failed=0, measured=0, failed=0, noisy=0, remeasured=0,
                                   interrupted=interrupted, wall_s=wall_s, stopped=stopped)
        counts, plan = ctx.publisher.counts, ctx.plan
        return CampaignSummary(
            out_dir=Path(config.out_dir), journal=Path(config.out_dir) / JOURNAL_NAME, device=config.device,
            campaign_id=ctx.campaign_id, env_id=ctx.env_id, selected=len(plan.unique),
            already_done=len(plan.already), skipped_failed=len(plan.skipped), measured=counts.measured,
            failed=counts.failed, noisy=counts.noisy, remeasured=counts.remeasured, interrupted=interrupted,
            wall_s=wall_s, records=tuple(ctx.publisher.records), lost_devices=tuple(counts.lost),
            redone_sets=counts.redone_sets, unrepaired_sets=counts.unrepaired_sets,
            unrepaired_models=counts.unrepaired_models, redo_s=counts.redo_s,
            stopped=stopped)


def run_campaign(archs: Sequence[Any], config: CampaignConfig, *, runners: Sequence[Runner] | None = None,
                 artifacts: ArtifactSource | None = None, on_event: EventSink | None = None,
                 host: HostWatch | None = None) -> CampaignSummary:
    """Measure ``archs`` as ``config`` says, appending to its journal; resumable:
    ``Campaign(archs, config, ...).run()`` (see :class:`Campaign`)."""
    return Campaign(archs, config, runners=runners, artifacts=artifacts, on_event=on_event, host=host).run()

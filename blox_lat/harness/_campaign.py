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
- Noise: a measurement with ``cv`` above the protocol's threshold is measured again, up to
  ``max_attempts`` in all; the least noisy attempt is kept, every attempt is summarised in
  ``attempt_log`` and the count is ``attempts``.
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

:class:`Campaign` runs these steps, one method each; the work queue is
:mod:`~blox_lat.harness._workqueue`, re-measurement :mod:`~blox_lat.harness._attempts`, the
refusals :mod:`~blox_lat.harness._rules`, the partial-set file :mod:`~blox_lat.harness._setlog`.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blox_lat.errors import BloxLatError
from blox_lat.harness._anchors import DEFAULT_ANCHOR_EVERY, AnchorError, CampaignReference, choose_anchors, set_level
from blox_lat.harness._attempts import Outcome, measure_set_with_retries, measure_with_retries, time_alone
from blox_lat.harness._environment import collect_environment
from blox_lat.harness._events import (
    AnchorsTimed,
    CampaignStarted,
    DeviceLost,
    EventSink,
    ModelDone,
    SetDiscarded,
    ThermalWaited,
)
from blox_lat.harness._factory import get_runner
from blox_lat.harness._journal import (
    JOURNAL_NAME,
    Journal,
    JournalError,
    check_measurement_line,
    read_journal_lines,
)
from blox_lat.harness._protocol import Measurement, TimingProtocol
from blox_lat.harness._records import (
    ANCHORS,
    ENVIRONMENT,
    LEVEL_SCHEMA,
    MEASUREMENT,
    AnchorsRecord,
    EnvironmentRecord,
    MeasurementRecord,
)
from blox_lat.harness._rules import (
    CampaignConflictError,
    CampaignSetupError,
    check_anchors,
    check_campaign_dir,
    check_farm,
    check_identity,
    check_interleave,
    default_max_attempts,
    full_identity,
)
from blox_lat.harness._runners import (
    CoolsDown,
    DeviceLostError,
    MeasuresMany,
    ModelFailedError,
    Prefetching,
    Probing,
    ResumesRounds,
    Runner,
)
from blox_lat.harness._setlog import PartialSet, SetLog, load_partial_set, remove_partial_set, remove_stale_temps
from blox_lat.harness._workqueue import WorkQueue

if TYPE_CHECKING:
    from blox_lat.devices import DeviceProfile

__all__ = [
    "Campaign",
    "CampaignConflictError",
    "CampaignLockedError",
    "CampaignSetupError",
    "CampaignSummary",
    "campaign_status",
    "run_campaign",
]

ArtifactSource = Callable[[Sequence[Any], Any], Iterable[Any]]
#: a model and its artifact (or its ExportFailure), as the work queue hands them out
Pair = tuple[Any, Any]


class CampaignLockedError(BloxLatError):
    """Another campaign is running in this directory right now."""


@dataclass(frozen=True)
class CampaignSummary:
    """What one campaign run did (the journal has the details); ``records`` are its journal lines."""

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
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


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


def _exported(item: Any) -> bool:
    """False for an :class:`~blox_lat.exporters.ExportFailure` (a model with no artifact)."""
    from blox_lat.exporters import ExportFailure

    return not isinstance(item, ExportFailure)


def campaign_status(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Done / failed model hashes and the recorded settings of a campaign directory."""
    path = Path(out_dir) / JOURNAL_NAME
    done: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    first_env: dict[str, Any] | None = None
    last_env: dict[str, Any] | None = None
    first_anchors: dict[str, Any] | None = None
    reference: tuple[CampaignReference, int] | None = None
    if path.exists():
        for number, record in read_journal_lines(path):
            if record.get("kind") == ENVIRONMENT:
                first_env = first_env or record
                last_env = record
            elif record.get("kind") == ANCHORS and first_anchors is None:
                first_anchors = record
                reference = (check_reference_line(record, path, number), number)
            elif record.get("kind") == MEASUREMENT:
                key = check_measurement_line(record, path, number)
                if record.get("status") == "ok":
                    done.setdefault(key, record)
                    failed.pop(key, None)
                elif key not in done:
                    failed[key] = record
    return {"journal": path, "done": done, "failed": failed, "first_environment": first_env,
            "last_environment": last_env, "first_anchors": first_anchors, "reference": reference}


def check_reference_line(record: dict[str, Any], path: Path, number: int) -> CampaignReference:
    """The reference a campaign's first ``anchors`` line states (the dataset reader's judgement
    of it); :class:`JournalError` naming the file and line when it states none."""
    try:
        return CampaignReference.of_line(record)
    except AnchorError as exc:
        raise JournalError(f"{path}:{number}: the campaign's first anchors line, the reference of its levels, "
                           f"is unusable: {exc}; restore the file from a backup or remove that line") from None


def _carried_set(out: Path, todo: Sequence[Any], protocol: TimingProtocol, emit: EventSink) -> PartialSet | None:
    """The set a killed run left unfinished, restricted to the models still to measure; None
    (and the file removed) when it has none of them or was timed with another protocol."""
    remove_stale_temps(out)
    state = load_partial_set(out)
    wanted = [a.hash for a in todo]
    kept = state.only(wanted) if state is not None and state.protocol == full_identity(protocol.identity()) else None
    if kept is None:
        if state is not None:
            emit(SetDiscarded(models=len(state.models), rounds_kept=state.rounds_kept()))
        remove_partial_set(out)
    return kept


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


class _Lost(Exception):
    """Internal: this farm member's device is gone; its model was handed back."""


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _ignore(event: Any) -> None:
    pass


@dataclass
class _Member:
    """One device of the campaign (the only one, or a farm member): its runner and environment."""

    profile: DeviceProfile
    runner: Runner
    env: EnvironmentRecord | None = None


class Campaign:
    """Measure ``archs`` on ``profile``, appending to ``out_dir/journal.jsonl``; resumable.

    ``profile`` may be a list: a *device farm*. Every member must have the same setting
    (runtime, format, batch, input size, precision, options; connections differ); one worker
    thread per member pulls models from one shared queue and all results go to one journal
    under one device name (``record_as``, default the first member's name), each record naming
    its ``unit`` (the member). A member whose link stays down (:class:`DeviceLostError`) stops
    and leaves its model to the others. Interleaving (``protocol.interleave > 1``) runs on one
    local device only; elsewhere it is refused (:class:`~blox_lat.harness.InterleaveError`).
    ``anchors`` (a count for :func:`~blox_lat.harness.choose_anchors`, or the anchor models)
    are timed in every interleaved set, or on a device measuring one model at a time every
    ``anchor_every`` models and after each thermal wait, and give each record a level (see the
    module docstring); a farm takes none (each member would need its own reference).
    ``max_attempts`` (default :func:`~blox_lat.harness.default_max_attempts`: 1 when
    interleaving, else 3) bounds the measurements of a noisy model.

    ``overlap_exports`` (default: only for remote transports) exports the next ``lookahead``
    artifacts while the device measures. On a local device the exporter would compete with the
    model for the same CPU, so by default chunks of ``export_chunk`` models are exported
    first and then measured with nothing else running. ``on_event`` hears typed events
    (:mod:`blox_lat.harness._events`). Every setting is checked here, before :meth:`run`
    touches a device or the disk.
    """

    def __init__(self, archs: Sequence[Any], profile: DeviceProfile | Sequence[DeviceProfile],
                 protocol: TimingProtocol | None = None, out_dir: str | os.PathLike[str] = "runs/cpu", *,
                 runner: Runner | Sequence[Runner] | None = None, artifacts: ArtifactSource | None = None,
                 store: Any = None, lookahead: int = 4, max_attempts: int | None = None, skip_failed: bool = False,
                 timeout_s: float = 600.0, affinity: Sequence[int] | None = None,
                 overlap_exports: bool | None = None, export_chunk: int = 16, on_event: EventSink | None = None,
                 connection: dict[str, Any] | None = None, record_as: str | None = None,
                 anchors: int | Sequence[Any] | None = None, anchor_every: int | None = None,
                 host_state: dict[str, Any] | None = None) -> None:
        self.archs = archs
        self.host_state = host_state  # what the caller saw of the host before (environment lines)
        self.profiles: list[DeviceProfile] = _as_list(profile)
        self.protocol = protocol or TimingProtocol()
        self.out = Path(out_dir)
        self.device = record_as or self.profiles[0].name
        self.max_attempts = default_max_attempts(self.protocol.interleave) if max_attempts is None else max_attempts
        self.skip_failed = skip_failed
        self._given_runners = None if runner is None else _as_list(runner)
        self._runner_options = {"timeout_s": timeout_s, "affinity": affinity, "connection": connection}
        self._artifacts, self._store, self._lookahead = artifacts, store, lookahead
        self._overlap, self._export_chunk = overlap_exports, export_chunk
        self._emit: EventSink = on_event or _ignore
        self.anchors: list[Any] = self._anchor_archs(anchors)
        self._anchor_items: list[tuple[str, Any]] | None = None
        self._reference: list[float] | None = None
        self.anchor_every = DEFAULT_ANCHOR_EVERY if anchor_every is None else anchor_every
        self._level: AnchorsRecord | None = None  # the latest anchor run of a serial campaign
        self._anchor_runs = 0
        self._since_anchors = 0
        self._check_setup()
        self.members: list[_Member] = []
        self.campaign_id, self.env_id = "", ""
        self.unique: list[Any] = []
        self.already: list[Any] = []
        self.skipped: list[Any] = []
        self.todo: list[Any] = []
        self.carried: PartialSet | None = None
        self.journal: Journal | None = None
        self.records: list[dict[str, Any]] = []
        self.counts = {"measured": 0, "failed": 0, "noisy": 0, "remeasured": 0}
        self.lost: list[str] = []
        self.position = 0
        self._stream: Iterable[Any] = ()
        self._queue: WorkQueue[Pair] = WorkQueue(iter(()))
        self._guard = threading.Lock()

    @property
    def farm(self) -> bool:
        return len(self.profiles) > 1

    # -- setup --------------------------------------------------------------------------------

    @staticmethod
    def _anchor_archs(anchors: int | Sequence[Any] | None) -> list[Any]:
        if anchors is None:
            return []
        try:
            return choose_anchors(anchors) if isinstance(anchors, int) else list(anchors)
        except AnchorError as exc:
            raise CampaignSetupError(str(exc)) from None

    def _check_setup(self) -> None:
        if self.max_attempts < 1:
            raise CampaignSetupError(f"max attempts must be >= 1, got {self.max_attempts}")
        check_farm(self.profiles)
        check_interleave(self.protocol.interleave, self.profiles)
        if self.anchors and self.farm:
            raise CampaignSetupError("anchors run on one device (each device of a farm has its own level): "
                                     "use --anchors 0, or one campaign per device")
        if not isinstance(self.anchor_every, int) or isinstance(self.anchor_every, bool) or self.anchor_every < 1:
            raise CampaignSetupError(f"--anchor-every must be an integer >= 1, got {self.anchor_every!r}")
        if len({a.hash for a in self.anchors}) != len(self.anchors):
            raise CampaignSetupError("an anchor model is named twice: name each anchor once")
        check_campaign_dir(self.out)

    def _open_runners(self) -> None:
        """The given runners, or one per device (before touching the disk: an unusable device
        leaves nothing behind)."""
        runners = self._given_runners
        if runners is None:
            runners = []
            options = dict(self._runner_options)
            if self.farm:
                options["connection"] = None
            try:
                for member in self.profiles:
                    runners.append(get_runner(member, **options))
            except BaseException:
                for r in runners:
                    r.close()
                raise
        if len(runners) != len(self.profiles):
            raise BloxLatError(f"{len(self.profiles)} device(s) but {len(runners)} runner(s)")
        self.members = [_Member(p, r) for p, r in zip(self.profiles, runners)]

    def _close_runners(self) -> None:
        if self._given_runners is None:
            for member in self.members:
                member.runner.close()

    # -- a run ----------------------------------------------------------------------------------

    def run(self) -> CampaignSummary:
        """Measure what is left to measure; Ctrl-C stops cleanly (the summary says so)."""
        self._open_runners()
        self.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            lock = _DirLock(self.out)
        except BloxLatError:
            self._close_runners()
            raise
        interrupted = False
        try:
            self._open()
            self._measure()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._close(lock)
        return self._summary(interrupted, time.perf_counter() - start)

    def _open(self) -> None:
        """Check the directory's identity, find what is left, the set a killed run left
        unfinished, and write the environment lines."""
        state = campaign_status(self.out)
        first = state["first_environment"]
        first_env = EnvironmentRecord.from_dict(first) if first is not None else None
        check_identity(first_env, self.device, self.profiles[0], self.protocol, self.out)
        check_anchors(first_env, self.anchors, self.out)
        if state["reference"] is not None and self.anchors:
            self._reference = self._resumed_reference(*state["reference"])
        self.campaign_id = (first_env.campaign_id if first_env is not None else None) or uuid.uuid4().hex[:16]
        self._select(state["done"], state["failed"])
        if self._keeps_rounds():
            self.carried = _carried_set(self.out, self.todo, self.protocol, self._emit)
        if self.carried is not None:  # the killed set's models first, in its order: it goes on
            first_at = {h: i for i, h in enumerate(self.carried.models)}
            self.todo.sort(key=lambda a: first_at.get(a.hash, len(first_at)))
        self.journal = Journal(self.out / JOURNAL_NAME)
        self._write_environments(state["last_environment"])
        self._emit(CampaignStarted(selected=len(self.unique), todo=len(self.todo), already_done=len(self.already),
                                   skipped_failed=len(self.skipped), env_id=self.env_id,
                                   devices=[p.name for p in self.profiles]))

    def _resumed_reference(self, reference: CampaignReference, number: int) -> list[float]:
        """The reference latencies of a resumed campaign (its first ``anchors`` line, at line
        ``number``), refused before any work when they are not of this run's anchors."""
        if list(reference.anchors) != [a.hash for a in self.anchors]:
            raise JournalError(
                f"{self.out / JOURNAL_NAME}:{number}: the campaign's first anchors line names "
                f"{len(reference.anchors)} anchor(s) other than the {len(self.anchors)} of its environment line; "
                "restore the file from a backup or remove that line")
        return list(reference.reference_ms)

    def _select(self, done: dict[str, Any], failed_before: dict[str, Any]) -> None:
        """Each model once; those done are skipped, and those failed before with ``skip_failed``."""
        self.unique = list({a.hash: a for a in self.archs}.values())
        self.already = [a for a in self.unique if a.hash in done]
        self.skipped = [a for a in self.unique
                        if a.hash not in done and self.skip_failed and a.hash in failed_before]
        skipped = {a.hash for a in self.skipped}
        self.todo = [a for a in self.unique if a.hash not in done and a.hash not in skipped]

    def _keeps_rounds(self) -> bool:
        """Whether this campaign times sets whose finished rounds are kept (and resumed)."""
        runner = self.members[0].runner
        return (not self.farm and self.protocol.interleave > 1 and isinstance(runner, MeasuresMany)
                and isinstance(runner, ResumesRounds) and bool(runner.resumes_rounds))

    def _write_environments(self, last_env: dict[str, Any] | None) -> None:
        """One environment line per device, unless nothing will be measured (a no-op rerun)."""
        assert self.journal is not None
        for member in self.members:
            member.env = self._environment(member)
        if self.todo or last_env is None or self.journal.repaired_bytes:
            for member in self.members:
                self.journal.append(member.env.to_dict())
            self.env_id = self.members[0].env.env_id
        else:  # a no-op rerun: no record will point at a new environment line
            self.env_id = last_env["env_id"]

    def _environment(self, member: _Member) -> EnvironmentRecord:
        runner = member.runner
        try:
            facts = runner.probe() if isinstance(runner, Probing) and self.todo else {}
        except ModelFailedError as exc:
            if not self.farm:
                raise BloxLatError(f"device {member.profile.name!r} cannot run the runner: {exc.reason}") from None
            facts = {"probe_error": exc.reason}
        extra = {"unit": member.profile.name, "profile": member.profile.to_dict(),
                 "protocol": self.protocol.to_dict(), "selected": len(self.unique), "todo": len(self.todo),
                 "max_attempts": self.max_attempts, "farm": [p.name for p in self.profiles] if self.farm else None,
                 "journal_repaired_bytes": self.journal.repaired_bytes if self.journal is not None else 0}
        schema = None
        if self.anchors:
            extra["anchors"] = [{"model_hash": a.hash, "model_index": a.index} for a in self.anchors]
            if not self._interleaving():
                extra["anchor_every"] = self.anchor_every
            schema = LEVEL_SCHEMA
        return EnvironmentRecord.from_dict(collect_environment(
            device=self.device, device_facts={**facts, "runner": runner.describe()}, campaign_id=self.campaign_id,
            extra=extra, host_state=self.host_state, **({"schema": schema} if schema else {})))

    # -- measuring ----------------------------------------------------------------------------

    def _measure(self) -> None:
        """Serially, interleaved (one local device whose runner times sets) or as a farm."""
        self._queue = WorkQueue(iter(zip(self.todo, self._open_stream())))
        lead = self.members[0]
        if self.farm:
            self._run_farm()
        elif self._interleaving():
            self._run_interleaved(lead)
        else:
            self._run_serial(lead)

    def _interleaving(self) -> bool:
        """Whether this campaign times sets (one device whose runner times several models)."""
        return not self.farm and self.protocol.interleave > 1 and isinstance(self.members[0].runner, MeasuresMany)

    def _open_stream(self) -> Iterable[Any]:
        """The artifacts of the models to measure, in order, exported ahead or chunk by chunk."""
        source = self._artifacts or _exporter_source(self._store, self._lookahead)
        lead = self.profiles[0]
        overlap = self._overlap if self._overlap is not None else lead.transport != "local"
        if not overlap:
            source = _phased(source, max(1, self._export_chunk))
        self._stream = source(self.todo, lead) if self.todo else ()
        return self._stream

    def _run_serial(self, member: _Member) -> None:
        """One model at a time on ``member`` (each device of a farm runs this in its own thread)."""
        queue = self._queue
        while not queue.stopped:
            pair = queue.take()
            if pair is None:
                return
            if not self.farm and isinstance(member.runner, Prefetching):
                upcoming = queue.peek()
                if upcoming is not None and _exported(upcoming[1]):
                    member.runner.prefetch(upcoming[1])
            try:
                level = self._ready(member) if self.anchors and _exported(pair[1]) else None
                self._measure_one(member, pair, level=level)
                self._since_anchors += 1
            except _Lost:
                return
            finally:
                queue.finished()

    def _ready(self, member: _Member) -> AnchorsRecord | None:
        """Before a model on a device measuring one model at a time: time the anchors when due
        (a run's first model, every ``anchor_every`` models), let the device cool down, and after
        a wait time them again, so that the model follows the anchors of its thermal state (if
        the anchors themselves heat the device past its limit three times running, the model
        goes on with the latest level). Returns the level the model carries."""
        trigger = "start" if not self._anchor_runs else "every" if self._since_anchors >= self.anchor_every else None
        for _ in range(3):
            if trigger is not None:
                self._level = self._time_anchors(member, trigger)
            wait = member.runner.cool_down() if isinstance(member.runner, CoolsDown) else None
            if wait is None or not wait.waited:
                break
            self._emit(ThermalWaited(device=member.profile.name, waited_s=wait.waited_s, cool=wait.cool))
            trigger = "thermal-wait"
        return self._level

    def _time_anchors(self, member: _Member, trigger: str) -> AnchorsRecord | None:
        """Time the anchors alone and journal their ``anchors`` line at once; None (no level for
        the models up to the next run) when one of them fails."""
        self._anchor_runs += 1
        self._since_anchors = 0
        try:
            measured = time_alone(member.runner, [item for _, item in self._anchor_pairs()], member.profile,
                                  self.protocol)
        except ModelFailedError:
            self._emit(AnchorsTimed(trigger=trigger, level=None))
            return None
        record = self._anchors_record(member, 1, 0, measured, trigger)
        self._journal_line(record.to_dict())
        self._emit(AnchorsTimed(trigger=trigger, level=record.level))
        return record

    def _run_interleaved(self, member: _Member) -> None:
        """Take ``protocol.interleave`` models at a time and time them together (first the
        models of a set a killed run left unfinished, which goes on where it stopped)."""
        resumed = self.carried
        while not self._queue.stopped:
            batch = self._take_batch(len(resumed.models) if resumed is not None else self.protocol.interleave)
            if not batch:
                return
            try:
                self._measure_set(member, batch, resumed)
            finally:
                for _ in batch:
                    self._queue.finished()
            resumed = None

    def _take_batch(self, size: int) -> list[Pair]:
        batch: list[Pair] = []
        while len(batch) < size:
            pair = self._queue.take(wait=not batch)  # the models this worker holds cannot come back
            if pair is None:
                break
            batch.append(pair)
        return batch

    def _anchor_pairs(self) -> list[tuple[str, Any]]:
        """(hash, artifact) of each anchor model, exported once per run."""
        if self._anchor_items is None:
            source = self._artifacts or _exporter_source(self._store, self._lookahead)
            items = list(source(self.anchors, self.profiles[0])) if self.anchors else []
            for arch, item in zip(self.anchors, items):
                if not _exported(item):
                    raise BloxLatError(f"anchor model {arch.index} could not be exported ({item.reason}); "
                                       "measure without anchors (--anchors 0)")
            self._anchor_items = [(a.hash, item) for a, item in zip(self.anchors, items)]
        return self._anchor_items

    def _measure_set(self, member: _Member, batch: list[Pair], resumed: PartialSet | None) -> None:
        """Time a set's exported models together, with the anchors (each finished round kept in
        the partial-set file), then journal the anchors' lines and every model of the batch."""
        ready = [p for p in batch if _exported(p[1])]
        hashes = [p[0].hash for p in ready]
        anchors = self._anchor_pairs() if ready else []
        carry = resumed.only(hashes) if resumed is not None else None
        if carry is not None and carry.anchors != tuple(h for h, _ in anchors):
            carry = None  # timed with other anchors (the directory's check refuses those anyway)
        levels: dict[int, AnchorsRecord] = {}
        setlog: SetLog | None = None
        try:
            if self._keeps_rounds() and (len(ready) > 1 or carry is not None or (ready and anchors)):
                setlog = SetLog(self.out, hashes, full_identity(self.protocol.identity()), self.campaign_id, carry,
                                [h for h, _ in anchors])

            def heard(attempt: int, timed: int, measured: list[Measurement]) -> None:
                levels[attempt] = self._anchors_record(member, attempt, timed, measured)

            outcomes = measure_set_with_retries(member.runner, [p[1] for p in ready], member.profile, self.protocol,
                                                self.max_attempts, self._emit, [p[0] for p in ready], setlog, carry,
                                                anchors, heard)
            for line in levels.values():
                self._journal_line(line.to_dict())
            done = {id(p): o for p, o in zip(ready, outcomes)}
            for pair in batch:
                outcome = done.get(id(pair))
                at = levels.get(outcome.set_attempt) if outcome is not None and outcome.set_attempt else None
                self._measure_one(member, pair, outcome, at)
            if setlog is not None:  # every model of the set is in the journal now
                setlog.finish()
        finally:
            if setlog is not None:
                setlog.close()

    def _run_farm(self) -> None:
        """One thread per device, all pulling from the queue; the first error stops them all."""
        errors: list[BaseException] = []

        def guarded(member: _Member) -> None:
            try:
                self._run_serial(member)
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)
                self._queue.stop()

        threads = [threading.Thread(target=guarded, args=(m,), name=f"farm-{m.profile.name}", daemon=True)
                   for m in self.members]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self._queue.stop()
            for t in threads:
                t.join()
            raise
        if errors:
            raise errors[0]

    def _anchors_record(self, member: _Member, attempt: int, timed: int, measured: list[Measurement],
                        trigger: str | None = None) -> AnchorsRecord:
        """The ``anchors`` line of one timed attempt of a set, or of one anchor run of a serial
        campaign (``trigger``); the campaign's first becomes the reference (level 1)."""
        assert member.env is not None
        latencies = [m.latency_ms for m in measured]
        if self._reference is None:
            self._reference = latencies
        summary = [{"model_hash": a.hash, "model_index": a.index, "latency_ms": m.latency_ms, "cv": m.cv}
                   for a, m in zip(self.anchors, measured)]
        return AnchorsRecord(set_id=uuid.uuid4().hex[:16], attempt=attempt, device=self.device,
                             campaign_id=self.campaign_id, env_id=member.env.env_id, anchors=summary,
                             reference_ms=list(self._reference), level=set_level(latencies, self._reference),
                             members=timed, recorded_at=_now(), trigger=trigger)

    def _measure_one(self, member: _Member, pair: Pair, outcome: Outcome | None = None,
                     level: AnchorsRecord | None = None) -> None:
        """Measure one model (unless its set's ``outcome`` is given) and journal it. In a farm, a
        lost device hands the model back to the queue and its worker stops (:class:`_Lost`)."""
        arch, item = pair
        if getattr(item, "model_hash", arch.hash) != arch.hash:
            raise BloxLatError(f"artifact stream out of order: got {item.model_hash} for {arch.hash}")
        if not _exported(item):
            self._publish(self._record(member, arch, item, None))
            return
        if outcome is None:
            try:
                outcome = measure_with_retries(member.runner, item, member.profile, self.protocol, self.max_attempts,
                                               self._emit, arch, hand_over=self.farm)
            except DeviceLostError as exc:
                self._queue.hand_back(pair)
                with self._guard:
                    self.lost.append(member.profile.name)
                self._emit(DeviceLost(device=member.profile.name, reason=exc.reason))
                raise _Lost from None
        self._publish(self._record(member, arch, item, outcome, level), outcome)

    # -- records --------------------------------------------------------------------------------

    def _record(self, member: _Member, arch: Any, item: Any, outcome: Outcome | None,
                level: AnchorsRecord | None = None) -> MeasurementRecord:
        """The journal record of one model: its ``outcome`` (with the ``level`` of the set
        attempt that timed it), or (None) its failed export."""
        assert member.env is not None
        base = {"model_hash": arch.hash, "model_index": arch.index, "device": self.device,
                "unit": member.profile.name, "profile": member.profile.to_dict(),
                "protocol": self.protocol.identity(), "env_id": member.env.env_id, "campaign_id": self.campaign_id}
        if outcome is None:
            return MeasurementRecord(**base, status="failed", reason=f"export failed: {item.reason}",
                                     recorded_at=_now(), attempts=0, measurement=None, artifact=None, attempt_log=[])
        best = outcome.best
        artifact = {"sha256": item.sha256, "format": item.format, "bytes": getattr(item, "bytes", None)}
        leveled = {}
        if best is not None and level is not None:
            leveled = {"level": level.level, "latency_corrected_ms": best.latency_ms / level.level,
                       "set_id": level.set_id}
        return MeasurementRecord(**base, status="ok" if best else "failed", reason=None if best else outcome.reason,
                                 recorded_at=_now(), attempts=len(outcome.log),
                                 measurement=best.to_dict() if best else None, artifact=artifact,
                                 attempt_log=outcome.log, **leveled)

    def _journal_line(self, line: dict[str, Any]) -> None:
        """Journal a line that is not a model's result (an ``anchors`` line)."""
        assert self.journal is not None
        with self._guard:
            self.journal.append(line)

    def _publish(self, record: MeasurementRecord, outcome: Outcome | None = None) -> None:
        """Journal ``record``, count it and tell the caller (farm threads share this: locked)."""
        assert self.journal is not None
        best = outcome.best if outcome is not None else None
        line = record.to_dict()
        with self._guard:
            if best is not None and outcome is not None and len(outcome.log) > 1:
                self.counts["remeasured"] += 1
            if best is not None and best.noisy:
                self.counts["noisy"] += 1
            self.journal.append(line)
            self.records.append(line)
            self.counts["measured" if record.ok else "failed"] += 1
            self.position += 1
            self._emit(ModelDone(record=record, position=self.position, todo=len(self.todo)))

    # -- the end --------------------------------------------------------------------------------

    def _close(self, lock: _DirLock) -> None:
        close = getattr(self._stream, "close", None)  # a generator still exporting
        if callable(close):
            close()
        self._close_runners()
        if self.journal is not None:
            self.journal.close()
        lock.release()

    def _summary(self, interrupted: bool, wall_s: float) -> CampaignSummary:
        counts = self.counts
        return CampaignSummary(
            out_dir=self.out, journal=self.out / JOURNAL_NAME, device=self.device, campaign_id=self.campaign_id,
            env_id=self.env_id, selected=len(self.unique), already_done=len(self.already),
            skipped_failed=len(self.skipped), measured=counts["measured"], failed=counts["failed"],
            noisy=counts["noisy"], remeasured=counts["remeasured"], interrupted=interrupted,
            wall_s=wall_s, records=tuple(self.records), lost_devices=tuple(self.lost),
        )


def run_campaign(archs: Sequence[Any], profile: DeviceProfile | Sequence[DeviceProfile],
                 protocol: TimingProtocol | None = None, out_dir: str | os.PathLike[str] = "runs/cpu",
                 **options: Any) -> CampaignSummary:
    """Measure ``archs`` on ``profile``, appending to ``out_dir/journal.jsonl``; resumable.

    ``Campaign(archs, profile, protocol, out_dir, **options).run()``: see :class:`Campaign`
    for the options (runner, artifacts, store, lookahead, max_attempts, skip_failed, timeout_s,
    affinity, overlap_exports, export_chunk, on_event, connection, record_as, anchors, anchor_every).
    """
    return Campaign(archs, profile, protocol, out_dir, **options).run()

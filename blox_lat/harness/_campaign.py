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
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import deque
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from blox_lat.devices._transport import ConnectionLostError
from blox_lat.errors import BloxLatError
from blox_lat.harness._environment import collect_environment
from blox_lat.harness._journal import (
    JOURNAL_NAME,
    SCHEMA_VERSION,
    Journal,
    check_measurement_line,
    read_journal_lines,
)
from blox_lat.harness._protocol import Measurement, TimingProtocol
from blox_lat.harness._runners import DeviceLostError, ModelFailedError, Runner, get_runner
from blox_lat.harness._setlog import (
    PartialAttempt,
    PartialSet,
    SetLog,
    load_partial_set,
    remove_partial_set,
    remove_stale_temps,
)
from blox_lat.harness._timing import RawRun

__all__ = [
    "CampaignConflictError",
    "CampaignLockedError",
    "CampaignSummary",
    "campaign_status",
    "run_campaign",
]

ArtifactSource = Callable[[Sequence[Any], Any], Iterable[Any]]
EventSink = Callable[[str, dict[str, Any]], None]


class CampaignConflictError(BloxLatError):
    """The campaign directory was recorded with another device profile or protocol."""


class CampaignLockedError(BloxLatError):
    """Another campaign is running in this directory right now."""


@dataclass(frozen=True)
class CampaignSummary:
    """What one ``run_campaign`` call did (the journal has the details)."""

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
    def source(archs: Sequence[Any], profile: Any) -> Iterable[Any]:
        from blox_lat.exporters import stream_artifacts

        return stream_artifacts(archs, profile.format, batch=profile.batch, store=store,
                                lookahead=lookahead, jobs=jobs)

    return source


def _phased(source: ArtifactSource, chunk: int) -> ArtifactSource:
    """Export a chunk completely, then hand it over: no export competes with a local device."""

    def phased(archs: Sequence[Any], profile: Any) -> Iterator[Any]:
        for start in range(0, len(archs), chunk):
            stream = source(archs[start : start + chunk], profile)
            items = list(stream)
            yield from items

    return phased


def campaign_status(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Done / failed model hashes and the recorded settings of a campaign directory."""
    path = Path(out_dir) / JOURNAL_NAME
    done: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    first_env: dict[str, Any] | None = None
    last_env: dict[str, Any] | None = None
    if path.exists():
        for number, record in read_journal_lines(path):
            if record.get("kind") == "environment":
                first_env = first_env or record
                last_env = record
            elif record.get("kind") == "measurement":
                key = check_measurement_line(record, path, number)
                if record.get("status") == "ok":
                    done.setdefault(key, record)
                    failed.pop(key, None)
                elif key not in done:
                    failed[key] = record
    return {"journal": path, "done": done, "failed": failed, "first_environment": first_env,
            "last_environment": last_env}


def _setting(profile_dict: dict[str, Any]) -> dict[str, Any]:
    """What a measurement depends on: the profile without its name."""
    return {k: v for k, v in profile_dict.items() if k != "name"}


def _check_identity(first_env: dict[str, Any] | None, device: str, profile: Any,
                    protocol: TimingProtocol, out_dir: Path) -> None:
    if first_env is None:
        return
    if first_env.get("device") not in (None, device):
        raise CampaignConflictError(
            f"{out_dir} holds a campaign for device {first_env.get('device')!r} (another profile), not {device!r}: "
            "use another --out"
        )
    recorded_profile = first_env.get("profile")
    if recorded_profile is not None and _setting(recorded_profile) != _setting(profile.to_dict()):
        raise CampaignConflictError(
            f"{out_dir} holds a campaign for device {first_env.get('device')!r} with profile "
            f"{recorded_profile}; this run's profile is {profile.to_dict()}: use another --out"
        )
    recorded = first_env.get("protocol") or {}
    theirs, mine = _full_identity(recorded), _full_identity(protocol.identity())
    differs = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
    if differs:
        detail = ", ".join(f"{k} {old} vs {new}" for k, (old, new) in differs.items())
        flags = _protocol_flags(recorded)
        raise CampaignConflictError(
            f"{out_dir} was measured with another protocol ({detail}); to resume it, rerun with "
            + (f"{flags}" if flags else "the same --runs/--runs-per-group/--warmup settings")
            + ", or use another --out"
        )


#: what a protocol identity without interleaving fields means (the plain consecutive protocol)
_PLAIN = {"interleave": 1, "rounds": 1, "rewarm_runs": 0}


def _full_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` with the interleaving fields spelled out, so that a plain protocol and an
    interleaved one differ whichever of them the journal recorded first (a recorded protocol
    also holds ``cv_threshold``, which is not identity: callers compare this one's keys)."""
    return {**_PLAIN, **identity}


def _protocol_flags(recorded: dict[str, Any]) -> str:
    """The ``blox-lat measure`` options that reproduce a recorded protocol identity."""
    try:
        runs = int(recorded["groups"]) * int(recorded["runs_per_group"])
        flags = [f"--runs {runs}", f"--runs-per-group {int(recorded['runs_per_group'])}",
                 f"--warmup-runs {int(recorded['warmup_min_runs'])}", f"--warmup-s {float(recorded['warmup_min_s']):g}",
                 f"--interleave {int(recorded.get('interleave', 1))}"]
        if int(recorded.get("interleave", 1)) > 1 or int(recorded.get("rounds", 1)) > 1:
            flags += [f"--rounds {int(recorded['rounds'])}", f"--rewarm-runs {int(recorded.get('rewarm_runs', 2))}"]
    except (KeyError, TypeError, ValueError):
        return ""
    return " ".join(flags)


def _carried_set(out: Path, todo: Sequence[Any], protocol: TimingProtocol, emit: EventSink) -> PartialSet | None:
    """The set a killed run left unfinished, restricted to the models still to measure; None
    (and the file removed) when it has none of them or was timed with another protocol."""
    remove_stale_temps(out)
    state = load_partial_set(out)
    wanted = [a.hash for a in todo]
    kept = state.only(wanted) if state is not None and state.protocol == _full_identity(protocol.identity()) else None
    if kept is None:
        if state is not None:
            emit("set-discarded", {"models": len(state.models), "rounds_kept": state.rounds_kept()})
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


def _attempt_summary(m: Measurement | None, error: str | None = None) -> dict[str, Any]:
    if m is None:
        return {"status": "failed", "reason": error}
    return {"status": "ok", "latency_ms": m.latency_ms, "cv": m.cv, "rel_iqr": m.rel_iqr,
            "flags": list(m.flags), "started_at": m.started_at}


def _measurement(raw: Any, protocol: TimingProtocol) -> Measurement:
    return Measurement.from_ns(raw.samples_ns, runs_per_group=protocol.runs_per_group,
                               warmup_runs=raw.warmup_runs, started_at=raw.started_at,
                               finished_at=raw.finished_at, cv_threshold=protocol.cv_threshold)


def _measure_with_retries(runner: Runner, artifact: Any, profile: Any, protocol: TimingProtocol,
                          max_attempts: int, on_event: EventSink, arch: Any, hand_over: bool = False
                          ) -> tuple[Measurement | None, list[dict[str, Any]], str | None]:
    """(best measurement or None, attempt log, failure reason)."""
    best: Measurement | None = None
    log: list[dict[str, Any]] = []
    reason: str | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            try:
                raw = runner.measure(artifact, profile, protocol)
            except ConnectionLostError as exc:  # a runner without its own reconnect logic
                raise DeviceLostError(str(exc)) from exc
            m = _measurement(raw, protocol)
        except DeviceLostError:
            if hand_over:
                raise  # a farm gives the model to another device
            reason = "device lost (the link stayed down through every reconnect attempt)"
            log.append(_attempt_summary(None, reason))
            break
        except ModelFailedError as exc:
            reason = exc.reason
            log.append(_attempt_summary(None, reason))
            break  # a crash or timeout repeats; do not burn the device on it
        log.append(_attempt_summary(m))
        if best is None or m.cv < best.cv:
            best = m
        if not m.noisy:
            break
        if attempt < max_attempts:
            on_event("retry", {"arch": arch, "attempt": attempt, "cv": m.cv})
    return best, log, reason


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


def _time_set(runner: Any, members: list[Any], hashes: tuple[str, ...], profile: Any,
              protocol: TimingProtocol, attempt: int, on_event: EventSink,
              setlog: SetLog | None, kept: PartialAttempt | None) -> list[RawRun]:
    """One attempt of a set: the rounds ``kept`` from a killed run, then the others, each
    finished round kept in ``setlog`` before it is reported."""
    done_rounds = kept.done if kept is not None else []
    rounds = len(protocol.round_sizes())
    if len(done_rounds) >= rounds:
        return _joined(done_rounds, None, len(members))
    if done_rounds:
        on_event("set-resumed", {"models": len(members), "attempt": attempt, "rounds_kept": len(done_rounds),
                                 "rounds": rounds})
    kwargs: dict[str, Any] = {}
    if getattr(runner, "reports_rounds", False):
        def on_round(done: int, total: int, n: int = len(members), tried: int = attempt) -> None:
            on_event("set-progress", {"models": n, "round": done, "rounds": total, "attempt": tried})
        kwargs["on_round"] = on_round
    if setlog is not None:
        def keep(done: int, total: int, raws: list[RawRun]) -> None:
            setlog.append_round(attempt, hashes, done, total, raws)
        kwargs.update(on_round_raws=keep, start_round=len(done_rounds))
    raws = runner.measure_many(members, profile, protocol, **kwargs)
    return _joined(done_rounds, raws, len(members)) if done_rounds else list(raws)


def _measure_set_with_retries(runner: Any, items: Sequence[Any], profile: Any, protocol: TimingProtocol,
                              max_attempts: int, on_event: EventSink, archs: Sequence[Any],
                              setlog: SetLog | None = None, carried: PartialSet | None = None
                              ) -> list[tuple[Measurement | None, list[dict[str, Any]], str | None]]:
    """:func:`_measure_with_retries` for a set timed together: each attempt times the models
    still noisy together again (so a re-measurement follows the same interleaved protocol).
    If a set fails (a crash, a hang, a model that does not load), what is left is measured
    one model at a time, so only the culprit fails. ``setlog`` keeps every finished round;
    ``carried`` holds the rounds a killed run kept of this set, which are not timed again."""
    best: list[Measurement | None] = [None] * len(items)
    logs: list[list[dict[str, Any]]] = [[] for _ in items]
    reasons: list[str | None] = [None] * len(items)
    todo = list(range(len(items)))
    prior = {a.attempt: a for a in (carried.attempts if carried is not None else [])}
    for attempt in range(1, max_attempts + 1):
        hashes = tuple(archs[i].hash for i in todo)
        kept = prior.get(attempt)
        if kept is not None and kept.members != hashes:
            kept = None  # not this attempt's members: time it afresh
        if len(todo) < 2 and kept is None:
            break
        try:  # a DeviceLostError goes up to the campaign as it is
            raws = _time_set(runner, [items[i] for i in todo], hashes, profile, protocol, attempt, on_event,
                             setlog, kept)
        except ModelFailedError as exc:
            on_event("interleave-failed", {"models": len(todo), "reason": exc.reason})
            break
        for i, raw in zip(todo, raws):
            m = _measurement(raw, protocol)
            logs[i].append(_attempt_summary(m))
            if best[i] is None or m.cv < best[i].cv:
                best[i] = m
        todo = [i for i in todo if best[i].noisy and len(logs[i]) < max_attempts]
        for i in todo:
            on_event("retry", {"arch": archs[i], "attempt": attempt, "cv": best[i].cv})
    for i in todo:  # one model left, or a set that failed: alone, with the attempts left
        left = max_attempts - len(logs[i])
        if left < 1:
            continue
        m, log, reason = _measure_with_retries(runner, items[i], profile, protocol, left, on_event, archs[i])
        logs[i].extend(log)
        reasons[i] = reason
        if m is not None and (best[i] is None or m.cv < best[i].cv):
            best[i] = m
    return [(b, log, None if b is not None else r) for b, log, r in zip(best, logs, reasons)]


class _Lost(Exception):
    """Internal: this farm member's device is gone; its model was handed back."""


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_campaign(
    archs: Sequence[Any],
    profile: Any,
    protocol: TimingProtocol | None = None,
    out_dir: str | os.PathLike[str] = "runs/cpu",
    *,
    runner: Runner | Sequence[Runner] | None = None,
    artifacts: ArtifactSource | None = None,
    store: Any = None,
    lookahead: int = 4,
    max_attempts: int = 3,
    skip_failed: bool = False,
    timeout_s: float = 600.0,
    affinity: Sequence[int] | None = None,
    overlap_exports: bool | None = None,
    export_chunk: int = 16,
    on_event: EventSink | None = None,
    connection: dict[str, Any] | None = None,
    record_as: str | None = None,
) -> CampaignSummary:
    """Measure ``archs`` on ``profile``, appending to ``out_dir/journal.jsonl``; resumable.

    ``profile`` may be a list: a *device farm*. Every member must have the same setting
    (runtime, format, batch, input size, precision, options; connections differ); one worker
    thread per member pulls models from one shared queue and all results go to one journal
    under one device name (``record_as``, default the first member's name), each record naming
    its ``unit`` (the member). A member whose link stays down (:class:`DeviceLostError`) stops
    and leaves its model to the others.

    ``overlap_exports`` (default: only for remote transports) exports the next ``lookahead``
    artifacts while the device measures. On a local device the exporter would compete with the
    model for the same CPU, so by default chunks of ``export_chunk`` models are exported
    first and then measured with nothing else running.
    """
    protocol = protocol or TimingProtocol()
    if max_attempts < 1:
        raise BloxLatError(f"max attempts must be >= 1, got {max_attempts}")
    profiles = _as_list(profile)
    lead = profiles[0]
    device = record_as or lead.name
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise BloxLatError(f"a device is named twice in the farm {names}: name each device once")
    for member in profiles[1:]:
        if _setting(member.to_dict()) != _setting(lead.to_dict()):
            raise BloxLatError(
                f"devices {lead.name!r} and {member.name!r} measure differently "
                f"({_setting(lead.to_dict())} vs {_setting(member.to_dict())}): a farm needs one "
                "setting; run separate campaigns"
            )
    emit: EventSink = on_event or (lambda kind, data: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BloxLatError(f"--out {out} is a file; give a directory for the campaign")
    own_runner = runner is None
    runners: list[Any] = []
    if runner is None:  # before touching the disk: an unusable device leaves nothing behind
        try:
            for member in profiles:
                runners.append(get_runner(member, timeout_s=timeout_s, affinity=affinity,
                                          connection=connection if len(profiles) == 1 else None))
        except BaseException:
            for r in runners:
                r.close()
            raise
    else:
        runners = _as_list(runner)
    if len(runners) != len(profiles):
        raise BloxLatError(f"{len(profiles)} device(s) but {len(runners)} runner(s)")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        lock = _DirLock(out)
    except BloxLatError:
        if own_runner:
            for r in runners:
                r.close()
        raise
    journal: Journal | None = None
    records: list[dict[str, Any]] = []
    counts = {"measured": 0, "failed": 0, "noisy": 0, "remeasured": 0}
    interrupted = False
    stream: Iterable[Any] = ()
    campaign_id, env = "", {"env_id": ""}
    unique: list[Any] = []
    already: list[Any] = []
    skipped: list[Any] = []
    lost: list[str] = []
    try:
        state = campaign_status(out)
        _check_identity(state["first_environment"], device, lead, protocol, out)
        campaign_id = (state["first_environment"] or {}).get("campaign_id") or uuid.uuid4().hex[:16]
        done, failed_before = state["done"], state["failed"]
        unique = list({a.hash: a for a in archs}.values())
        already = [a for a in unique if a.hash in done]
        skipped = [a for a in unique if a.hash not in done and skip_failed and a.hash in failed_before]
        skipped_hashes = {a.hash for a in skipped}
        todo = [a for a in unique if a.hash not in done and a.hash not in skipped_hashes]
        keeps_rounds = (len(profiles) == 1 and protocol.interleave > 1
                        and callable(getattr(runners[0], "measure_many", None))
                        and getattr(runners[0], "resumes_rounds", False))
        carried = _carried_set(out, todo, protocol, emit) if keeps_rounds else None
        if carried is not None:  # the killed set's models first, in its order: it goes on
            first = {h: i for i, h in enumerate(carried.models)}
            todo = sorted(todo, key=lambda a: first.get(a.hash, len(first)))
        journal = Journal(out / JOURNAL_NAME)
        envs: list[dict[str, Any]] = []
        for member, member_runner in zip(profiles, runners):
            probe = getattr(member_runner, "probe", None)
            try:
                device_facts = probe() if callable(probe) and todo else {}
            except ModelFailedError as exc:
                if len(profiles) == 1:
                    raise BloxLatError(f"device {member.name!r} cannot run the runner: {exc.reason}") from None
                device_facts = {"probe_error": exc.reason}
            member_env = collect_environment(
                device=device,
                device_facts={**device_facts, "runner": member_runner.describe()},
                campaign_id=campaign_id,
                extra={"unit": member.name, "profile": member.to_dict(), "protocol": protocol.to_dict(),
                       "selected": len(unique), "todo": len(todo), "max_attempts": max_attempts,
                       "farm": names if len(profiles) > 1 else None,
                       "journal_repaired_bytes": journal.repaired_bytes},
            )
            envs.append(member_env)
        last_env = state["last_environment"]
        if todo or last_env is None or journal.repaired_bytes:
            for member_env in envs:
                journal.append(member_env)
            env = envs[0]
        else:  # a no-op rerun: no record will point at a new environment line
            env = last_env
        emit("start", {"selected": len(unique), "todo": len(todo), "already_done": len(already),
                       "skipped_failed": len(skipped), "env_id": env["env_id"], "devices": names})
        source = artifacts or _exporter_source(store, lookahead)
        if overlap_exports is None:
            overlap_exports = lead.transport != "local"
        if not overlap_exports:
            source = _phased(source, max(1, export_chunk))
        stream = source(todo, lead) if todo else ()
        pairs = iter(zip(todo, stream))
        handed_back: deque[tuple[Any, Any]] = deque()
        guard = threading.Lock()
        stop = threading.Event()
        position = 0
        farm = len(profiles) > 1

        wake = threading.Condition(guard)
        busy = 0
        exhausted = False

        pending: deque[tuple[Any, Any]] = deque()

        def fill() -> None:
            """Under ``wake``: move the stream's next model into ``pending`` if there is one."""
            nonlocal exhausted
            if not pending and not exhausted:
                pair = next(pairs, None)
                if pair is None:
                    exhausted = True
                else:
                    pending.append(pair)

        def peek() -> tuple[Any, Any] | None:
            """The model after the current one, without taking it (for prefetching)."""
            with wake:
                if handed_back:
                    return handed_back[0]
                fill()
                return pending[0] if pending else None

        def take(wait: bool = True) -> tuple[Any, Any] | None:
            """The next model; when none is left, wait while another device may still hand
            one back (its device can be lost mid-model), unless ``wait`` is false."""
            nonlocal busy
            with wake:
                while not stop.is_set():
                    fill()
                    queue = handed_back or pending
                    if queue:
                        busy += 1
                        return queue.popleft()
                    if busy == 0 or not wait:
                        return None
                    wake.wait(0.2)
                return None

        def finished() -> None:
            nonlocal busy
            with wake:
                busy -= 1
                wake.notify_all()

        def work(member: Any, member_runner: Any, member_env: dict[str, Any]) -> None:
            while not stop.is_set():
                pair = take()
                if pair is None:
                    return
                prefetch = getattr(member_runner, "prefetch", None)
                if not farm and callable(prefetch):
                    upcoming = peek()
                    if upcoming is not None and hasattr(upcoming[1], "path"):
                        prefetch(upcoming[1])
                try:
                    measure_one(member, member_runner, member_env, pair)
                except _Lost:
                    return
                finally:
                    finished()

        def work_interleaved(member: Any, member_runner: Any, member_env: dict[str, Any]) -> None:
            """Take ``protocol.interleave`` models at a time and time them together (first the
            models of a set a killed run left unfinished, which goes on where it stopped)."""
            resumed = carried
            while not stop.is_set():
                size = len(resumed.models) if resumed is not None else protocol.interleave
                batch: list[tuple[Any, Any]] = []
                while len(batch) < size:
                    pair = take(wait=not batch)  # the models this worker holds cannot come back
                    if pair is None:
                        break
                    batch.append(pair)
                if not batch:
                    return
                setlog: SetLog | None = None
                try:
                    ready = [p for p in batch if hasattr(p[1], "path")]
                    hashes = [p[0].hash for p in ready]
                    carry = resumed.only(hashes) if resumed is not None else None
                    resumed = None
                    if keeps_rounds and (len(ready) > 1 or carry is not None):
                        setlog = SetLog(out, hashes, _full_identity(protocol.identity()), campaign_id, carry)
                    results = _measure_set_with_retries(member_runner, [p[1] for p in ready], member, protocol,
                                                        max_attempts, emit, [p[0] for p in ready], setlog, carry)
                    done = {id(p): r for p, r in zip(ready, results)}
                    for pair in batch:
                        measure_one(member, member_runner, member_env, pair, result=done.get(id(pair)))
                    if setlog is not None:  # every model of the set is in the journal now
                        setlog.finish()
                finally:
                    if setlog is not None:
                        setlog.close()
                    for _ in batch:
                        finished()

        def measure_one(member: Any, member_runner: Any, member_env: dict[str, Any],
                        pair: tuple[Any, Any], result: tuple[Any, Any, Any] | None = None) -> None:
            nonlocal position
            arch, item = pair
            base = {
                "schema": SCHEMA_VERSION, "kind": "measurement", "model_hash": arch.hash,
                "model_index": arch.index, "device": device, "unit": member.name,
                "profile": member.to_dict(), "protocol": protocol.identity(),
                "env_id": member_env["env_id"], "campaign_id": campaign_id,
            }
            if getattr(item, "model_hash", arch.hash) != arch.hash:
                raise BloxLatError(f"artifact stream out of order: got {item.model_hash} for {arch.hash}")
            best, log = None, []
            if not hasattr(item, "path"):  # ExportFailure
                record = {**base, "status": "failed", "reason": f"export failed: {item.reason}",
                          "recorded_at": _now(), "attempts": 0, "measurement": None,
                          "artifact": None, "attempt_log": []}
            else:
                try:
                    best, log, reason = result or _measure_with_retries(member_runner, item, member, protocol,
                                                                        max_attempts, emit, arch, hand_over=farm)
                except DeviceLostError as exc:
                    with guard:
                        handed_back.append(pair)
                        lost.append(member.name)
                    emit("device-lost", {"device": member.name, "reason": exc.reason})
                    raise _Lost from None
                artifact = {"sha256": item.sha256, "format": item.format,
                            "bytes": getattr(item, "bytes", None)}
                record = {**base, "status": "ok" if best else "failed",
                          "reason": None if best else reason, "recorded_at": _now(),
                          "attempts": len(log), "measurement": best.to_dict() if best else None,
                          "artifact": artifact, "attempt_log": log}
            with guard:
                if best is not None and len(log) > 1:
                    counts["remeasured"] += 1
                if best is not None and best.noisy:
                    counts["noisy"] += 1
                journal.append(record)
                records.append(record)
                counts["measured" if record["status"] == "ok" else "failed"] += 1
                position += 1
                emit("model", {"record": record, "position": position, "todo": len(todo)})

        if not farm and protocol.interleave > 1 and callable(getattr(runners[0], "measure_many", None)):
            work_interleaved(lead, runners[0], env)
        elif not farm:
            work(lead, runners[0], env)
        else:
            errors: list[BaseException] = []

            def guarded(*args: Any) -> None:
                try:
                    work(*args)
                except BaseException as exc:  # surfaced in the main thread below
                    errors.append(exc)
                    stop.set()

            threads = [threading.Thread(target=guarded, args=(m, r, e), name=f"farm-{m.name}", daemon=True)
                       for m, r, e in zip(profiles, runners, envs)]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    while t.is_alive():
                        t.join(0.2)
            except KeyboardInterrupt:
                stop.set()
                for t in threads:
                    t.join()
                raise
            if errors:
                raise errors[0]
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()
        if own_runner:
            for r in runners:
                r.close()
        if journal is not None:
            journal.close()
        lock.release()
    return CampaignSummary(
        out_dir=out, journal=out / JOURNAL_NAME, device=device, campaign_id=campaign_id,
        env_id=env["env_id"], selected=len(unique), already_done=len(already),
        skipped_failed=len(skipped), measured=counts["measured"], failed=counts["failed"],
        noisy=counts["noisy"], remeasured=counts["remeasured"], interrupted=interrupted,
        wall_s=time.perf_counter() - start, records=tuple(records), lost_devices=tuple(lost),
    )

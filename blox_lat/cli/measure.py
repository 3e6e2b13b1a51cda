"""``blox-lat measure``: time a selection of models on a device, resumably."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from blox_lat.cli._output import check_out_dir, emit_json, emit_pairs, emit_table, json_option, progress_bar
from blox_lat.cli.devices import device_file_option

if TYPE_CHECKING:  # the harness is imported when a command runs: 'blox-lat --help' stays instant
    from blox_lat.harness import (
        AnchorsTimed,
        CampaignEvent,
        CampaignStarted,
        DeviceLost,
        ModelDone,
        Remeasuring,
        SetProgress,
        SetRedone,
        SetResumed,
        ThermalWaited,
    )

_MAX_TABLE_ROWS = 40


def _parse_affinity(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from blox_lat.harness import parse_cpus

    try:
        return parse_cpus(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--affinity") from None


def _check_affinity(cpus: list[int] | None, profiles: list[Any]) -> None:
    """``--affinity`` names CPUs this process may use, checked before any work: the kernel
    pins to the CPUs of the set that exist and ignores the rest (0,99 ran on CPU 0 alone), and
    a set with none of them failed every model. Remote workers pin on their own machine."""
    if cpus is None or any(p.transport != "local" for p in profiles) or not hasattr(os, "sched_getaffinity"):
        return
    available = os.sched_getaffinity(0)
    absent = sorted(set(cpus) - available)
    if absent:
        raise click.BadParameter(
            f"CPU {', '.join(map(str, absent))} {'is' if len(absent) == 1 else 'are'} not available to "
            f"this process; choose from {','.join(map(str, sorted(available)))} (os.sched_getaffinity)",
            param_hint="--affinity")


#: without a terminal, a progress line (the set's round, the campaign's ETA) at least this often
#: (seconds): when a round or model says nothing new in that time, a ticker thread says it
NOTE_EVERY_S = 10.0


class _Progress:
    """Models done, rate, ETA and last latency: a rich bar on a terminal, plain lines otherwise.

    Progress is counted in rounds, across the whole campaign: a set of n models timed together
    is n models' worth of work once its last round is done, and n x r / R after round r of R
    (rounds that a killed run kept do not count as this run's work, re-measurements add
    nothing); a model measured alone is one model's worth. The rate and the ETA come from that,
    so a set's models, reported together when it ends, all show the same ETA, and without a
    terminal a line comes every ``NOTE_EVERY_S`` seconds (:meth:`start` runs the ticker that
    says it when nothing else did), flushed as it is written.
    """

    def __init__(self, quiet: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self.clock = clock
        self.bar: Any = None
        self.task: Any = None
        self.started = clock()
        self.todo = 0
        self.done = 0
        self.shown = 0.0  # models' worth of rounds done, never going back
        self.kept = 0.0  # models' worth of rounds that a killed run kept (not timed by this run)
        self.kept_rounds = 0  # of the set that goes on next (SetResumed)
        self.progressed = self.started  # when ``shown`` last moved
        self.timing: SetProgress | None = None  # the set being timed, as its latest round said
        self.noted = self.started  # when the latest plain line was written
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.ticker: threading.Thread | None = None

    def __call__(self, event: CampaignEvent) -> None:
        if self.quiet:
            return
        handler = _handlers().get(type(event))
        if handler is not None:
            with self.lock:  # the ticker and a farm's threads write too
                handler(self, event)

    def start(self) -> None:
        """Without a terminal, start the ticker: a line whenever ``NOTE_EVERY_S`` passed without one."""
        if not self.quiet and not sys.stderr.isatty():
            self.ticker = threading.Thread(target=self._tick, name="measure-progress", daemon=True)
            self.ticker.start()

    def _tick(self) -> None:
        while True:
            with self.lock:
                due = self.noted + NOTE_EVERY_S - self.clock()
            if self.stopping.wait(max(due, 0.05)):
                return
            with self.lock:
                if self.todo and self.clock() - self.noted >= NOTE_EVERY_S:
                    self._note()

    def _say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)
        else:
            self.noted = self.clock()
            click.echo(message, err=True)  # click flushes: a pipe gets each line as it is written

    def _advance(self, shown: float) -> None:
        if shown > self.shown:
            self.shown, self.progressed = shown, self.clock()

    def _rate(self) -> float:
        """Models' worth of rounds per second, over this run's work so far (0.0 before any)."""
        spent = self.progressed - self.started
        return (self.shown - self.kept) / spent if spent > 0 and self.shown > self.kept else 0.0

    def _eta(self) -> str:
        """Seconds left at the campaign's rate, counting down since the latest progress."""
        rate = self._rate()
        if not rate:
            return "not known yet"
        left = (self.todo - self.shown) / rate - (self.clock() - self.progressed)
        return f"{max(left, 0.0):.0f} s"

    def _note(self) -> None:
        """The plain progress line: where the set being timed is, and the campaign's ETA."""
        timing = self.timing
        if timing is not None:
            again = ", re-measuring noisy ones" if timing.attempt > 1 else ""
            where = f"{timing.models} models timed together{again}: round {timing.round}/{timing.rounds}"
        else:
            where = f"{self.done}/{self.todo} models measured"
        share = 100 * self.shown / self.todo if self.todo else 100.0
        self._say(f"  {where}; campaign {share:.0f} % of its rounds, ETA {self._eta()}")

    def _started(self, event: CampaignStarted) -> None:
        self.todo = event.todo
        self._say(f"{event.selected} selected, {event.already_done} already measured, "
                  f"{event.skipped_failed} failed before (skipped), {event.todo} to measure")
        if sys.stderr.isatty() and self.todo:
            self.bar = progress_bar("measuring", "{task.fields[rate]}", trailing="{task.fields[last]}")
            self.bar.start()
            self.task = self.bar.add_task("measure", total=self.todo, rate="", last="")

    def _remeasuring(self, event: Remeasuring) -> None:
        self._say(f"  model {event.arch.index}: latency known to +-{event.halfwidth:.1%} only (95 % interval), "
                  f"re-measuring (attempt {event.attempt + 1})")

    def _set_redone(self, event: SetRedone) -> None:
        self._say(f"  a set of {event.models} models ran through a burst of other work (its rounds scattered "
                  f"{event.shared_sd:.0%} together): timing it again now that the host is quiet")

    def _device_lost(self, event: DeviceLost) -> None:
        self._say(f"  device {event.device} lost ({event.reason}); its model goes to the others")

    def _thermal_waited(self, event: ThermalWaited) -> None:
        state = "cooled down" if event.cool else "still hot, going on"
        self._say(f"  device {event.device} waited {event.waited_s:.0f} s for its thermal limit ({state})")

    def _anchors_timed(self, event: AnchorsTimed) -> None:
        level = f"level {event.level:.3f}" if event.level is not None else "no level (an anchor failed)"
        self._say(f"  anchors timed ({event.trigger}): {level}")

    def _set_resumed(self, event: SetResumed) -> None:
        if event.attempt == 1:
            self.kept_rounds = event.rounds_kept

    def _set_progress(self, event: SetProgress) -> None:
        # a set of models timed together finishes all at once, minutes apart: move the bar
        # (and its rate and ETA) through the set's rounds in between (never backwards: a
        # re-measurement of a set's noisy models repeats rounds, and adds no campaign progress)
        if event.attempt == 1:
            if self.kept_rounds:  # the rounds a killed run kept arrive with this one: not this run's work
                self.kept += event.models * self.kept_rounds / event.rounds
                self.kept_rounds = 0
            self._advance(self.done + event.models * event.round / event.rounds)
        self.timing = event
        if self.bar is not None:
            if event.round < event.rounds:  # the set's models move the bar next
                self.bar.update(self.task, completed=self.shown)
        elif event.round < event.rounds and self.clock() - self.noted >= NOTE_EVERY_S:
            self._note()  # plain lines: a log, not a flood

    def _model_done(self, event: ModelDone) -> None:
        record, pos = event.record, event.position
        self.done, self.timing = pos, None
        self._advance(pos)
        m = record.measurement
        last = f"{m['latency_ms']:.3f} ms" if m else f"FAILED ({record.reason})"
        rate = f"{self._rate() * 60:.1f}/min"
        if self.bar is not None:
            self.bar.update(self.task, completed=self.shown, rate=rate, last=f"#{record.model_index} {last}")
        else:
            self._say(f"[{pos}/{self.todo}] #{record.model_index} {record.model_hash[:12]} "
                      f"{last}  ({rate}, ETA {self._eta()})")

    def stop(self) -> None:
        self.stopping.set()
        if self.ticker is not None:
            self.ticker.join()
        if self.bar is not None:
            self.bar.stop()


@functools.cache
def _handlers() -> dict[type, Callable[[_Progress, Any], None]]:
    """Which :class:`_Progress` method shows which campaign event (others are not shown)."""
    from blox_lat.harness import (
        AnchorsTimed,
        CampaignStarted,
        DeviceLost,
        ModelDone,
        Remeasuring,
        SetProgress,
        SetRedone,
        SetResumed,
        ThermalWaited,
    )

    return {CampaignStarted: _Progress._started, Remeasuring: _Progress._remeasuring,
            DeviceLost: _Progress._device_lost, SetProgress: _Progress._set_progress, ModelDone: _Progress._model_done,
            ThermalWaited: _Progress._thermal_waited, AnchorsTimed: _Progress._anchors_timed,
            SetResumed: _Progress._set_resumed, SetRedone: _Progress._set_redone}


#: ``--cv-threshold``'s default as --help shows it (a test holds it to the library's constant)
CV_THRESHOLD_SHOWN = "0.1"


def _cv_threshold() -> float:
    """The library's noise threshold, read when the command runs: --help imports no harness."""
    from blox_lat.harness import DEFAULT_CV_THRESHOLD

    return DEFAULT_CV_THRESHOLD


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.argument("selector")
@click.option("--device", "device_names", multiple=True,
              help="Device profile (see 'blox-lat devices list'); repeat it for a device farm "
                   "that shares the models between devices  [default: cpu]")
@click.option("--connect", "connect", multiple=True, metavar="KEY=VALUE",
              help="Override a connection setting of the device, e.g. host=gpu-box, user=me, "
                   "key=~/.ssh/id_ed25519, serial=192.168.1.20:5555, trust_new_host=true.")
@click.option("--record-as", default=None, metavar="NAME",
              help="Device name recorded in the journal (default: the first --device).")
@device_file_option
@click.option("--runs", type=int, default=1000, show_default=True,
              help="Timed runs per model (groups x runs per group; the paper uses 1000).")
@click.option("--runs-per-group", type=int, default=10, show_default=True,
              help="Consecutive runs per group of the two-level trimmed mean.")
@click.option("--warmup-runs", type=int, default=10, show_default=True, help="Minimum warm-up runs.")
@click.option("--warmup-s", type=float, default=0.5, show_default=True, help="Minimum warm-up seconds.")
@click.option("--interleave", default="auto", show_default=True, metavar="K|auto",
              help="Time K models together, their groups spread over --rounds rounds, so that "
                   "every model of a set sees the same mix of the host's fast and slow spells "
                   "(ranks within a set hold however the host drifts). auto: 32 on local devices, "
                   "1 (consecutive) on remote ones; 1 is the plain consecutive protocol.")
@click.option("--rounds", type=int, default=None,
              help="Rounds per model when interleaving  [default: one group per round]")
@click.option("--rewarm-runs", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Untimed runs of a model before each of its later rounds when interleaving.")
@click.option("--anchors", "anchors", default="auto", show_default=True, metavar="K|auto",
              help="Also time K anchor models (the same for every set and campaign) in every "
                   "interleaved set, or on a remote device every --anchor-every models and after "
                   "each thermal wait; each record then carries its level and a level-corrected "
                   "latency. auto: 3 when interleaving or remote, else 0; 0 disables them.")
@click.option("--anchor-every", "anchor_every", default="auto", show_default=True, metavar="N|auto",
              help="Where models are measured one at a time, time the anchors again after N models. "
                   "auto: 30, so that 3 anchors cost under 10 % of the campaign.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Campaign directory holding journal.jsonl  [default: runs/DEVICE]")
@click.option("--shard", default=None, metavar="K/N", help="Only the K-th of N deterministic slices.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False), default=None,
              help="Artifact store directory  [default: the exporters' ./artifacts]")
@click.option("--max-attempts", default="auto", show_default=True, metavar="N|auto",
              help="Measurements per model when the result is noisy (its 95 % interval wider than "
                   "--max-halfwidth). "
                   "auto: 1 when interleaving (re-timing a set's noisy models cost more than it "
                   "gained, see docs/protocol.md), else 3.")
@click.option("--redo-sets", "redo_sets", default="auto", show_default=True, metavar="N|auto",
              help="Times an interleaved set is timed again, once the host is quiet, when its rounds "
                   "scattered together (a burst of other work on the host; see docs/protocol.md). "
                   "auto: 1 for interleaved sets with anchors, else 0.")
@click.option("--cv-threshold", type=float, default=lambda: _cv_threshold(),
              help=f"Coefficient of variation of single runs above which a measurement is flagged "
                   f"cv>T (information about the host; the trimmed mean drops such spikes).  "
                   f"[default: {CV_THRESHOLD_SHOWN}]")
@click.option("--max-halfwidth", "max_halfwidth", type=float, default=0.05, show_default=True, metavar="FRACTION",
              help="A measurement whose latency's 95 % interval is wider than +-FRACTION of it is "
                   "noisy: timed again (--max-attempts) and flagged.")
@click.option("--remeasure", "remeasure", multiple=True, type=click.Choice(["burst", "noisy"]),
              help="Measure again the models of the selection already measured whose latest result is "
                   "flagged burst (their set ran through a burst no redo repaired) or noisy; repeatable.")
@click.option("--skip-failed", is_flag=True, help="Do not retry models that failed in an earlier run.")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Seconds one model may take before its worker is killed and it fails.")
@click.option("--affinity", default=None, metavar="CPUS", help="Pin the worker to CPUs, e.g. 0 or 0-3.")
@click.option("--on-busy", "on_busy", type=click.Choice(["warn", "wait", "stop"]), default="warn", show_default=True,
              help="A local device's host is sampled for a second before the campaign; when other "
                   "processes use its cores: warn (one line, then measure), wait (for quiet, up to 5 "
                   "minutes, then measure with the warning) or stop (exit status 1). What was seen "
                   "goes into the journal's environment line (host_state).")
@click.option("--lookahead", type=int, default=4, show_default=True, help="Artifacts exported ahead.")
@click.option("--overlap-exports/--no-overlap-exports", default=None,
              help="Export while measuring (default: only on remote devices; a local CPU would be shared).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option("Print the summary and per-model results as JSON.")
def measure(selector: str, device_names: tuple[str, ...], connect: tuple[str, ...], record_as: str | None,
            device_files: tuple[str, ...], runs: int, runs_per_group: int, warmup_runs: int, warmup_s: float,
            interleave: str, rounds: int | None, rewarm_runs: int, anchors: str, anchor_every: str,
            out_dir: str | None, shard: str | None, store_dir: str | None, max_attempts: str, redo_sets: str,
            cv_threshold: float,
            max_halfwidth: float, remeasure: tuple[str, ...], skip_failed: bool, timeout_s: float,
            affinity: str | None, on_busy: str, lookahead: int,
            overlap_exports: bool | None, quiet: bool, as_json: bool) -> None:
    """Measure the models named by SELECTOR on a device and append them to a journal.

    SELECTOR is what 'blox-lat space list' takes: 0:10, random:20:1, @file, names. The paper's
    protocol (100 groups x 10 runs, two-level inter-quartile mean) is the default; rerunning the
    same command resumes, skipping models already measured. Ctrl-C stops cleanly.

    \b
    Quick look (about a minute):  blox-lat measure 0:10 --runs 100 --out runs/try
    Full protocol:                blox-lat measure 0:10
    A phone over TCP ADB:         blox-lat measure 0:10 --device sd888 --connect serial=PHONE:5555
    A GPU box over SSH:           blox-lat measure 0:10 --device gtx1080ti --connect host=gpu-box
    A farm of two phones:         blox-lat measure all --device phone-a --device phone-b

    \b
    Exit status, as for the other commands:
      0    every model measured (now or in an earlier run)
      1    some model failed, or is still unmeasured (a lost device), or was skipped
           (--skip-failed) because it failed before: a rerun retries it; or the host
           was busy with --on-busy stop
      2    bad input: one line on stderr, nothing was run
      130  interrupted: rerun the same command to resume
    """
    import dataclasses

    from blox_lat import space as sp

    cpus = _parse_affinity(affinity)
    config, connection = campaign_config(click.get_current_context().params)
    profiles = list(config.devices)
    _check_toolchains(profiles)
    archs = sp.shard(sp.select(selector), shard)
    _check_affinity(cpus, profiles)
    config = dataclasses.replace(config, out_dir=_out_dir(config.out_dir), store=_store(store_dir))  # before any work
    host = _host(profiles, cpus, on_busy, connection)
    summary = _run(archs, config, quiet or as_json, host, None if as_json or host is None else host.warning)
    _report(summary, as_json, host)
    _exit(summary, as_json)


def campaign_config(params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The campaign ``measure``'s parsed options describe, resolved and checked by the library
    (every auto value filled, every refusal raised), with the ``--connect`` overrides; the
    campaign folder is not probed and no store is opened yet. ``cluster slurm measure`` checks
    a job's options with it on the login node."""
    from blox_lat.harness import CampaignConfig, ProtocolChoice

    record_as = params["record_as"]
    _check_limits(record_as)
    profiles, connection = _devices(params["device_names"], params["device_files"], params["connect"])
    choice = ProtocolChoice(runs=params["runs"], runs_per_group=params["runs_per_group"],
                            warmup_runs=params["warmup_runs"], warmup_s=params["warmup_s"],
                            interleave=_auto_or_int(params["interleave"], "--interleave", 1, 64), rounds=params["rounds"],
                            rewarm_runs=params["rewarm_runs"], cv_threshold=params["cv_threshold"],
                            max_halfwidth=params["max_halfwidth"])
    cpus = _parse_affinity(params["affinity"])
    config = CampaignConfig(
        devices=tuple(profiles), protocol=choice, out_dir=params["out_dir"] or f"runs/{record_as or profiles[0].name}",
        record_as=record_as, anchors=_auto_or_int(params["anchors"], "--anchors", 0, 16),
        anchor_every=_auto_or_int(params["anchor_every"], "--anchor-every", 1),
        max_attempts=_auto_or_int(params["max_attempts"], "--max-attempts", 1),
        redo_sets=_auto_or_int(params["redo_sets"], "--redo-sets", 0, 5), skip_failed=params["skip_failed"],
        remeasure=tuple(params["remeasure"]), timeout_s=params["timeout_s"],
        affinity=tuple(cpus) if cpus is not None else None, connection=connection or None,
        lookahead=params["lookahead"], overlap_exports=params["overlap_exports"], on_busy=params["on_busy"])
    return config.resolved(), connection


def _check_toolchains(profiles: list[Any]) -> None:
    """The exporter packages of every device's format, before any model: a missing one (the core
    install has no torch) is one line naming the extra, not one failure per model. (An external
    SDK is not required here: a store may already hold the artifacts.)"""
    from blox_lat.exporters import check_packages

    for fmt in sorted({p.format for p in profiles}):
        check_packages(fmt)


def _check_limits(record_as: str | None) -> None:
    if record_as is not None:  # it names runs/NAME and bench/NAME: no '/', no '..'
        from blox_lat.dataset import check_device_name

        check_device_name(record_as)


def _out_dir(path: str) -> Any:
    """The campaign folder, checked as the library checks it (a name the file system cannot
    hold...), then for being writable, before any work."""
    from blox_lat.harness import check_campaign_dir

    return check_out_dir(check_campaign_dir(path))


def _devices(device_names: tuple[str, ...], device_files: tuple[str, ...],
             connect: tuple[str, ...]) -> tuple[list[Any], dict[str, Any]]:
    """The device profiles (one, or a farm) and the ``--connect`` overrides."""
    from blox_lat.devices import load_profiles, parse_connect_options

    registry = load_profiles(device_files)
    profiles = [registry.get(name) for name in (device_names or ("cpu",))]
    connection = parse_connect_options(connect)
    if connection and len(profiles) > 1:
        raise click.UsageError("--connect applies to one device; give each farm member its "
                               "connection in a device file")
    return profiles, connection


def _store(store_dir: str | None) -> Any:
    if store_dir is None:
        return None
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(store_dir)


def _host(profiles: list[Any], cpus: list[int] | None, on_busy: str, connection: dict[str, Any]) -> Any:
    """The library's look at the devices' host (``check_host``: this one, or an SSH device's
    over its connection); exit status 1 for --on-busy stop on a busy host."""
    from blox_lat.harness import HostBusyError, check_host

    try:
        return check_host(profiles, cpus, on_busy, connection=connection or None)
    except HostBusyError as exc:
        click.echo(f"blox-lat: {exc}", err=True)
        sys.exit(1)


def _run(archs: Any, config: Any, quiet: bool, host: Any, warning: str | None) -> Any:
    """The campaign, with its progress shown, SIGTERM stopping it like Ctrl-C, the host's state
    (``host``, a HostCheck or None) recorded in its environment lines, and ``warning`` (a busy
    host) on stderr once the campaign starts with models to measure: not for a run its setup
    refuses, nor a rerun with nothing left."""
    import dataclasses

    from blox_lat.harness import CampaignStarted, run_campaign

    progress = _Progress(quiet)

    def on_event(event: Any) -> None:
        if warning and isinstance(event, CampaignStarted) and event.todo:
            click.echo(f"blox-lat: warning: {warning}", err=True)
        progress(event)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    progress.start()
    try:
        return run_campaign(archs, dataclasses.replace(config, host_state=host.to_dict() if host is not None else None),
                            on_event=on_event)
    finally:
        progress.stop()
        signal.signal(signal.SIGTERM, previous)


def _exit(summary: Any, as_json: bool) -> None:
    """The exit status of the documented table (0, 1 or 130), with its line on stderr."""
    if summary.interrupted:
        click.echo("blox-lat: interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
    if summary.stopped:
        click.echo(f"blox-lat: {summary.stopped}", err=True)
        sys.exit(1)
    if summary.lost_devices and not as_json:
        click.echo(f"devices lost during the campaign: {', '.join(summary.lost_devices)}", err=True)
    if summary.failed and not as_json:
        click.echo(f"{summary.failed} model(s) failed; see 'reason' in {summary.journal}; "
                   "a rerun retries them (--skip-failed to skip)", err=True)
    if summary.skipped_failed and not as_json:
        click.echo(f"{summary.skipped_failed} model(s) skipped: they failed in an earlier run (see 'reason' in "
                   f"{summary.journal}); rerun without --skip-failed to retry them", err=True)
    if summary.failed or summary.remaining or summary.skipped_failed:  # a skipped model is a failed one
        sys.exit(1)


def _auto_or_int(value: str, option: str, low: int, high: int | None = None) -> int | None:
    """An option that takes ``auto`` (None: the library's default) or an integer in ``low..high``."""
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        bounds = f"in {low}..{high}" if high is not None else f">= {low}"
        raise click.BadParameter(f"{value!r} is not auto or an integer {bounds}", param_hint=option)
    return int(value)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    m = record["measurement"] or {}
    return {
        "index": record["model_index"],
        "hash": record["model_hash"][:12],
        "status": record["status"],
        "latency_ms": f"{m['latency_ms']:.4f}" if m else "",
        "+-95%": f"{m['rel_halfwidth']:.1%}" if m and m.get("rel_halfwidth") is not None else "",
        "cv": f"{m['cv']:.3f}" if m else "",
        "attempts": record["attempts"],
        "note": ",".join(m.get("flags", [])) if m else (record["reason"] or "")[:60],
    }


def _report(summary: Any, as_json: bool, host: Any = None) -> None:
    if as_json:
        emit_json({**summary.to_dict(), **({"host": host.to_dict()} if host is not None else {}), "results": [
            {"model_index": r["model_index"], "model_hash": r["model_hash"], "status": r["status"],
             "reason": r["reason"], "attempts": r["attempts"],
             **{k: (r["measurement"] or {}).get(k) for k in ("latency_ms", "se_ms", "rel_halfwidth", "cv")}}
            for r in summary.records]})
        return
    rows = [_row(r) for r in summary.records]
    if rows:
        emit_table(rows[:_MAX_TABLE_ROWS], ["index", "hash", "status", "latency_ms", "+-95%",
                                            "cv", "attempts", "note"])
        if len(rows) > _MAX_TABLE_ROWS:
            click.echo(f"... and {len(rows) - _MAX_TABLE_ROWS} more in {summary.journal}")
    latencies = sorted(r["measurement"]["latency_ms"] for r in summary.records if r["measurement"])
    pairs = [
        ("device", summary.device),
        ("journal", summary.journal),
        ("selected", summary.selected),
        ("measured now", summary.measured),
        ("already measured", summary.already_done),
        ("failed", summary.failed),
        ("skipped (failed before)", summary.skipped_failed),
        ("noisy (kept, flagged)", summary.noisy),
        ("re-measured", summary.remeasured),
        ("sets redone (burst)", f"{summary.redone_sets} ({summary.redo_s:.1f} s)"),
        ("burst not repaired", f"{summary.unrepaired_models} model(s) in {summary.unrepaired_sets} set(s)"),
        ("remaining", summary.remaining),
        ("wall time", f"{summary.wall_s:.1f} s"),
    ]
    if latencies:
        pairs.insert(8, ("median latency", f"{latencies[len(latencies) // 2]:.4f} ms"))
    emit_pairs(pairs)
    if summary.noisy:
        click.echo(f"{summary.noisy} noisy: their latency's 95 % interval is wider than the threshold "
                   "(--max-halfwidth); measure them again with more --runs or on a quieter host "
                   "(blox-lat devices check shows what else runs), or keep them with their wider intervals",
                   err=True)
    if summary.unrepaired_sets:
        click.echo(f"{summary.unrepaired_models} model(s) in {summary.unrepaired_sets} set(s) ran through a burst of "
                   "other work on the host that no redo repaired (flag 'burst' in the journal): their latencies carry "
                   "that noise, which their anchors cannot correct; measure them again on a quiet host: "
                   "the same command with --remeasure burst (docs/protocol.md)", err=True)


__all__ = ["measure"]

"""Sets hit by a noise burst: judged from their rounds' shared scatter, timed again once the
host is quiet, and named (flag ``burst``, summary, ``--remeasure burst``) when no redo repaired
them. On fake devices with scripted bursts, and on this host with a real burst: a CPU-bound
process on the worker's core for part of a set."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from blox_lat import space as sp
from blox_lat.devices import get_device
from blox_lat.harness import (
    CampaignConfig,
    HostWatch,
    RawRun,
    StabilityJudge,
    TimingProtocol,
    read_journal,
    run_campaign,
    shared_scatter,
)

STAMP = "2025-01-01T00:00:00+00:00"
SETS = TimingProtocol(groups=10, runs_per_group=5, warmup_min_runs=1, warmup_min_s=0.0, interleave=4, rounds=10)


def _means(models: int, rounds: int, burst: range = range(0), factor: float = 1.0, seed: int = 0):
    rng = random.Random(seed)
    return [[(1 + 0.2 * m) * (factor if r in burst else 1.0) * (1 + rng.gauss(0, 0.01)) for r in range(rounds)]
            for m in range(models)]


def test_shared_scatter_is_small_for_a_quiet_set_and_large_through_a_burst():
    quiet = shared_scatter(_means(8, 10))
    burst = shared_scatter(_means(8, 10, range(3, 7), 1.3))
    assert quiet < 0.01
    assert burst > 0.1
    assert shared_scatter(_means(2, 10)) is None  # two models share too little to judge by


def test_one_models_own_scatter_is_not_a_shared_burst():
    means = _means(8, 10)
    means[0] = [x * (1.5 if r % 2 else 1.0) for r, x in enumerate(means[0])]  # only model 0 scatters
    assert shared_scatter(means) < 0.01


def test_the_judge_compares_with_the_campaigns_typical_set():
    judge = StabilityJudge()
    first = judge.judge(_means(8, 10, range(3, 7), 1.3))
    assert first.hit and first.threshold == judge.floor
    judge.learn(judge.judge(_means(8, 10, seed=9)))  # the set's redo, quiet: what the set kept
    for seed in range(5):
        verdict = judge.judge(_means(8, 10, seed=seed))
        assert not verdict.hit and verdict.threshold == judge.floor  # the burst did not raise the bar
        judge.learn(verdict)
    noisy_host = StabilityJudge(seen=[0.2, 0.25, 0.3])  # every set scatters alike: a redo would not do better
    assert not noisy_host.judge(_means(8, 10, range(3, 7), 1.3)).hit


class BurstRunner:
    """Times sets round by round; the set calls in ``bursts`` have rounds 3-6 slower by
    ``factor`` for every model alike (a burst of other work on the host)."""

    reports_rounds = resumes_rounds = True

    def __init__(self, bursts=(), factor=1.6):
        bursts = bursts if isinstance(bursts, dict) else {call: factor for call in bursts}
        self.bursts, self.calls = bursts, 0

    def measure_many(self, artifacts, profile, protocol, on_round=None, *, start_round=0, on_round_raws=None):
        self.calls += 1
        sizes = protocol.round_sizes()
        samples = {id(a): [] for a in artifacts}
        for r in range(start_round, len(sizes)):
            slow = self.bursts.get(self.calls, 1.0) if 3 <= r < 7 else 1.0
            raws = []
            for a in artifacts:
                base = 1_000_000 + 50_000 * (a.model_index % 13)
                ns = tuple(int(base * slow) + 997 * (i % 5) for i in range(sizes[r] * protocol.runs_per_group))
                samples[id(a)] += ns
                raws.append(RawRun(ns, 1, STAMP, STAMP, {}))
            if on_round_raws is not None:
                on_round_raws(r + 1, len(sizes), raws)
        return [RawRun(tuple(samples[id(a)]), 1, STAMP, STAMP, {}) for a in artifacts]

    def measure(self, artifact, profile, protocol):
        raise AssertionError("a set member is never timed alone here")

    def describe(self):
        return {"runner": "burst"}

    def close(self):
        pass


def _artifacts(archs, profile):
    for a in archs:
        yield SimpleNamespace(path=Path("/nonexistent"), sha256="0" * 64, format=profile.format, bytes=0,
                              model_hash=a.hash, model_index=a.index)


class FakeHost:
    """A host that is busy for the first ``busy`` samples, then quiet."""

    def __init__(self, busy=0):
        self.busy, self.samples = busy, 0

    def __call__(self, window_s, cpus):
        self.samples += 1
        return SimpleNamespace(busy=self.samples <= self.busy, reason="pid 1 burn (100 %)")


def _campaign(out, runner, host, **options):
    config = CampaignConfig(devices=(get_device("cpu"),), protocol=SETS, out_dir=out, anchors=tuple(sp.select("20,21")),
                            **options)
    return run_campaign(sp.select("0:8"), config, runners=[runner], artifacts=_artifacts, host=host)


def _anchor_lines(out):
    return list(read_journal(out, kind="anchors"))


def test_a_set_hit_by_a_burst_is_timed_again_once_the_host_is_quiet(tmp_path):
    sampler = FakeHost(busy=2)
    waits = []
    host = HostWatch(sample=sampler, sleep=waits.append)
    summary = _campaign(tmp_path, BurstRunner(bursts={2}), host)  # the second set's first attempt
    assert (summary.measured, summary.redone_sets, summary.unrepaired_sets) == (8, 1, 0)
    assert sampler.samples == 3 and len(waits) == 2  # busy, busy, quiet: then the redo
    lines = _anchor_lines(tmp_path)
    assert [(x["attempt"], x["members"], x["stability"]["burst"]) for x in lines] == [
        (1, 4, False), (1, 4, True), (2, 4, False)]
    redo = lines[2]
    records = list(read_journal(tmp_path, kind="measurement"))
    second_set = [r for r in records if r["model_index"] >= 4]
    assert {r["set_id"] for r in second_set} == {redo["set_id"]}  # the redo's level, not the burst's
    assert all("burst" not in r["measurement"]["flags"] for r in records)
    env = next(read_journal(tmp_path, kind="environment"))
    assert env["redo_sets"] == 1


def test_a_burst_no_redo_repairs_is_flagged_and_remeasure_burst_measures_it_again(tmp_path):
    summary = _campaign(tmp_path, BurstRunner(bursts={2, 3}), HostWatch(sample=FakeHost(), sleep=lambda s: None))
    assert (summary.redone_sets, summary.unrepaired_sets, summary.unrepaired_models) == (1, 1, 4)
    flagged = {r["model_index"] for r in read_journal(tmp_path, kind="measurement")
               if "burst" in r["measurement"]["flags"]}
    assert flagged == {4, 5, 6, 7}
    again = _campaign(tmp_path, BurstRunner(), HostWatch(sample=FakeHost()), remeasure=("burst",))
    assert (again.already_done, again.measured, again.unrepaired_sets) == (4, 4, 0)
    latest = {r["model_index"]: r for r in read_journal(tmp_path, kind="measurement")}
    assert not any("burst" in r["measurement"]["flags"] for r in latest.values())
    assert _campaign(tmp_path, BurstRunner(), HostWatch(sample=FakeHost()), remeasure=("burst",)).measured == 0


def test_a_redo_is_judged_as_its_set_was_and_a_worse_one_is_not_kept(tmp_path):
    # the campaign's first set: hit lightly (scatter ~6 %), its redo harder (~9 %): still under
    # twice the first attempt, which must not become the bar for its own redo
    summary = _campaign(tmp_path, BurstRunner(bursts={1: 1.13, 2: 1.2}), HostWatch(sample=FakeHost()))
    first, redo = _anchor_lines(tmp_path)[:2]
    assert first["attempt"] == 1 and redo["attempt"] == 2
    assert redo["stability"]["shared_sd"] > first["stability"]["shared_sd"] > first["stability"]["threshold"]
    assert redo["stability"]["threshold"] == first["stability"]["threshold"] and redo["stability"]["burst"]
    kept = {r["set_id"] for r in read_journal(tmp_path, kind="measurement") if r["model_index"] < 4}
    assert kept == {first["set_id"]}  # the less hit attempt
    assert (summary.redone_sets, summary.unrepaired_sets) == (1, 1)


def test_a_host_that_stays_busy_gets_no_redo_and_the_burst_is_said(tmp_path):
    sampler, waits = FakeHost(busy=10**6), []
    clock = iter(range(0, 10**6, 10))
    host = HostWatch(sample=sampler, sleep=waits.append, clock=lambda: float(next(clock)))
    summary = _campaign(tmp_path, BurstRunner(bursts={2}), host)
    assert (summary.redone_sets, summary.unrepaired_sets, summary.unrepaired_models) == (0, 1, 4)
    assert waits and summary.redo_s > 0  # it waited (bounded), then left the set as it was


def test_redo_sets_zero_keeps_the_burst_and_says_so(tmp_path):
    summary = _campaign(tmp_path, BurstRunner(bursts={1}), HostWatch(sample=FakeHost()), redo_sets=0)
    assert (summary.redone_sets, summary.unrepaired_sets) == (0, 1)


def test_on_busy_stop_between_sets_stops_the_campaign_and_a_rerun_resumes(tmp_path):
    summary = _campaign(tmp_path, BurstRunner(), HostWatch("stop", sample=FakeHost(busy=5)), on_busy="stop")
    assert summary.stopped and "busy host between sets" in summary.stopped
    assert summary.measured == 4  # the first set; the check runs before each later set
    rest = _campaign(tmp_path, BurstRunner(), HostWatch("stop", sample=FakeHost()), on_busy="stop")
    assert (rest.already_done, rest.measured) == (4, 4)


def test_on_busy_wait_between_sets_waits_for_quiet(tmp_path):
    sampler, waits = FakeHost(busy=3), []
    summary = _campaign(tmp_path, BurstRunner(), HostWatch("wait", sample=sampler, sleep=waits.append), on_busy="wait")
    assert summary.measured == 8 and sampler.samples == 4 and len(waits) == 3


# -- on this host, for real ----------------------------------------------------------------------

def _free_core() -> int | None:
    cores = sorted(os.sched_getaffinity(0))
    return cores[-1] if len(cores) > 1 else None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


def _real(out, store, on_event=None):
    core = _free_core()
    protocol = TimingProtocol(groups=10, runs_per_group=40, warmup_min_runs=10, warmup_min_s=0.05, interleave=6,
                              rounds=10)
    config = CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=out, store=store,
                            affinity=(core,), anchors=3)
    return run_campaign(sp.select("0:6"), config, on_event=on_event)


@pytest.mark.skipif(_free_core() is None, reason="needs two cores: one for the worker, one for the test")
def test_on_this_host_a_real_burst_scatters_a_set_and_its_redo_is_kept(tmp_path, store):
    """A CPU-bound process on the worker's core during rounds 4-7 of a set: that attempt is hit
    and scatters well above the same set timed without it, and the set is timed again. (This
    VM's quiet sets scatter 2-13 % by themselves, so whether a quiet set is redone is left to
    the host: the burst must stand out from it.)"""
    from blox_lat.devices import sample_host

    state = sample_host(1.0, [_free_core()])
    if state.busy:  # other jobs on the core: neither a quiet set nor a clean redo can be shown
        pytest.skip(f"the worker's core is busy: {state.reason}")
    _real(tmp_path / "quiet", store)
    quiet = _anchor_lines(tmp_path / "quiet")[0]["stability"]["shared_sd"]

    burner: list[subprocess.Popen] = []

    def on_event(event):  # a CPU-bound process on the worker's core from round 3 to round 7
        if event.kind == "set-progress" and event.attempt == 1:
            if event.round == 3 and not burner:
                burner.append(subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                               preexec_fn=lambda: os.sched_setaffinity(0, {_free_core()})))
            elif event.round == 7 and burner and burner[0].poll() is None:
                burner[0].kill()
                burner[0].wait()

    try:
        hit = _real(tmp_path / "burst", store, on_event)
    finally:
        for p in burner:
            p.kill()
    assert burner, "the set reported no rounds"
    lines = _anchor_lines(tmp_path / "burst")
    first = lines[0]["stability"]
    assert first["burst"] and first["shared_sd"] > 1.5 * quiet, (quiet, lines)
    assert hit.redone_sets == 1 and len(lines) == 2 and hit.redo_s > 0, lines
    kept = {r["set_id"] for r in read_journal(tmp_path / "burst", kind="measurement")}
    assert kept == {min(lines, key=lambda x: x["stability"]["shared_sd"])["set_id"]}  # the less scattered attempt


def test_the_report_names_the_models_a_burst_left_unrepaired(tmp_path):
    import json

    from blox_lat import dataset as ds
    from blox_lat.report import build_report

    _campaign(tmp_path / "c", BurstRunner(bursts={2, 3}), HostWatch(sample=FakeHost(), sleep=lambda s: None))
    ds.build([tmp_path / "c"], tmp_path / "release", "1.0.0")
    for source in (tmp_path / "c", tmp_path / "release"):
        out = tmp_path / f"report-{source.name}"
        build_report([source], out, jobs=1)
        numbers = json.loads((out / "report.json").read_text())
        text = json.dumps(numbers)
        assert '"burst": 4' in text, source
        html = (out / "report.html").read_text()
        assert "4 model(s) were timed in a set that ran through a burst" in html, source
        assert "--remeasure burst" in html

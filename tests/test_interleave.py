"""Interleaved timing: several models' groups spread over rounds, in one worker and in campaigns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from blox_lat import space as sp
from blox_lat.devices import get_device
from blox_lat.harness import CampaignConfig, Measurement, MeasurementError, TimingProtocol, read_journal, run_campaign
from blox_lat.harness._timing import time_interleaved


class Tick:
    """A clock that advances 1000 ns per reading, and models that log who ran when."""

    def __init__(self):
        self.now = 0
        self.log: list[str] = []

    def clock(self) -> int:
        self.now += 1000
        return self.now

    def model(self, name: str):
        return lambda: self.log.append(name)


def test_groups_are_spread_round_robin_over_rounds():
    tick = Tick()
    raws = time_interleaved([tick.model("a"), tick.model("b")],
                            TimingProtocol(groups=5, runs_per_group=3, rounds=2, rewarm_runs=2,
                                           warmup_min_runs=4, warmup_min_s=0.0), clock=tick.clock)
    assert [len(r.samples_ns) for r in raws] == [15, 15]
    # warm-ups first, then round 1 (3 groups of a, 3 of b), then round 2 (re-warm + 2 groups each)
    assert tick.log == ["a"] * 4 + ["b"] * 4 + ["a"] * 9 + ["b"] * 9 + ["a"] * 8 + ["b"] * 8
    assert [r.warmup_runs for r in raws] == [6, 6]
    assert raws[0].facts == {"interleaved_with": 2, "rounds": 2, "rewarm_runs": 2}
    assert all(s == 1000 for r in raws for s in r.samples_ns)


def test_one_round_one_model_is_the_consecutive_protocol():
    tick = Tick()
    (raw,) = time_interleaved([tick.model("a")],
                              TimingProtocol(groups=3, runs_per_group=4, rounds=1, warmup_min_runs=2, warmup_min_s=0.0),
                              clock=tick.clock)
    assert tick.log == ["a"] * 14 and len(raw.samples_ns) == 12 and raw.warmup_runs == 2


def test_protocol_fields_validate_and_keep_old_identities():
    plain = TimingProtocol()
    assert "interleave" not in plain.identity()  # journals from before interleaving still resume
    mixed = TimingProtocol(interleave=8, rounds=10)
    assert mixed.identity()["interleave"] == 8 and mixed.identity()["rounds"] == 10
    assert mixed.round_sizes() == [10] * 10
    assert TimingProtocol(groups=7, rounds=3).round_sizes() == [3, 2, 2]
    assert TimingProtocol.from_dict(mixed.to_dict()) == mixed
    with pytest.raises(MeasurementError, match="rounds must be"):
        TimingProtocol(groups=5, rounds=6)
    with pytest.raises(MeasurementError, match="interleave must be"):
        TimingProtocol(interleave=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


def test_interleaved_campaign_measures_each_model_once_with_real_onnxruntime(tmp_path, store):
    protocol = TimingProtocol(groups=4, runs_per_group=5, warmup_min_runs=5, warmup_min_s=0.01,
                              interleave=3, rounds=2)
    archs = sp.select("0:4")
    summary = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp_path / "c", store=store,
                                                 anchors=0))
    assert (summary.measured, summary.failed) == (4, 0)
    records = list(read_journal(tmp_path / "c", kind="measurement"))
    assert [r["model_index"] for r in records] == [0, 1, 2, 3]
    for record in records:
        m = Measurement.from_dict(record["measurement"])
        assert len(m.samples_ms) == 20 and m.groups == 4 and m.latency_ms > 0
    env = next(read_journal(tmp_path / "c", kind="environment"))
    assert env["protocol"]["interleave"] == 3 and env["protocol"]["rounds"] == 2
    # resuming with the plain protocol is a different protocol: refused
    from blox_lat.harness import CampaignConflictError

    with pytest.raises(CampaignConflictError):
        run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=TimingProtocol(groups=4, runs_per_group=5),
                                           out_dir=tmp_path / "c", store=store, anchors=0))


def test_a_broken_model_in_an_interleaved_set_fails_alone(tmp_path, store):
    from types import SimpleNamespace

    from blox_lat import exporters as ex

    archs = sp.select("0:3")
    arts = [ex.export(a, "onnx", store=store) for a in archs]
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")

    def source(todo, profile):
        for a, art in zip(todo, arts):
            path = broken if a.index == 1 else art.path
            yield SimpleNamespace(path=path, sha256=art.sha256, format="onnx", bytes=art.bytes, model_hash=a.hash)

    events = []
    protocol = TimingProtocol(groups=2, runs_per_group=5, warmup_min_runs=2, warmup_min_s=0.0, interleave=3, rounds=2)
    summary = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp_path / "c", anchors=0),
                           artifacts=source, on_event=lambda e: events.append(e.kind))
    assert (summary.measured, summary.failed) == (2, 1)
    status = {r["model_index"]: r["status"] for r in read_journal(tmp_path / "c", kind="measurement")}
    assert status == {0: "ok", 1: "failed", 2: "ok"}
    assert "interleave-failed" in events


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blox_lat", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_interleaves_on_local_devices_and_refuses_it_elsewhere(tmp_path, store):
    done = _cli("measure", "0:3", "--runs", "40", "--warmup-s", "0.01", "--out", str(tmp_path / "r"),
                "--store", str(store.root), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["measured"] == 3
    env = next(read_journal(tmp_path / "r", kind="environment"))
    # auto on a local device: sets of up to 32, one group per round, no re-warm runs
    assert (env["protocol"]["interleave"], env["protocol"]["rounds"], env["protocol"]["rewarm_runs"]) == (32, 4, 0)
    for args, message in (
        (("--device", "sd888", "--interleave", "4"), "one local device"),
        (("--interleave", "many"), "not auto or an integer"),
        (("--interleave", "1", "--rounds", "5"), "--rounds needs --interleave"),
        (("--runs", "20", "--rounds", "5"), "rounds must be"),
    ):
        bad = _cli("measure", "0:2", *args, "--out", str(tmp_path / "bad"), cwd=tmp_path)
        assert bad.returncode == 2, (args, bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


class SetRunner:
    """A fake local device: ``measure_many`` answers from per-model scripts, counting calls."""

    def __init__(self, scripts):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.sets: list[list[int]] = []
        self.alone: list[int] = []

    def _raw(self, index):
        from blox_lat.harness import RawRun

        values = self.scripts[index].pop(0)
        return RawRun(tuple(int(v * 1e6) for v in values), 10, "2025-01-01T00:00:00+00:00",
                      "2025-01-01T00:00:01+00:00", {})

    def measure_many(self, artifacts, profile, protocol):
        self.sets.append([a.index for a in artifacts])
        return [self._raw(a.index) for a in artifacts]

    def measure(self, artifact, profile, protocol):
        self.alone.append(artifact.index)
        return self._raw(artifact.index)

    def describe(self):
        return {"runner": "set"}

    def close(self):
        pass


def _noisy_set(out: Path, **options):
    """Four models timed as one set by a :class:`SetRunner`: models 1 and 2 are noisy at first
    (1 twice, 2 once), then clean. Returns the runner and the campaign's summary."""
    from types import SimpleNamespace

    clean, noisy = [2.0] * 20, [2.0] * 10 + [2.4] * 10  # noisy: the two group means disagree
    runner = SetRunner({0: [clean], 1: [noisy, noisy, clean], 2: [noisy, clean], 3: [clean]})

    def source(todo, profile):
        for a in todo:
            yield SimpleNamespace(path=Path("/nonexistent"), index=a.index, sha256="0" * 64, format="onnx", bytes=0,
                                  model_hash=a.hash)

    protocol = TimingProtocol(groups=2, runs_per_group=10, interleave=4, rounds=2)
    return runner, run_campaign(sp.select("0:4"), CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=out, anchors=0,
                                                                 **options), runners=[runner], artifacts=source)


def test_noisy_models_are_remeasured_together(tmp_path):
    runner, summary = _noisy_set(tmp_path / "c", max_attempts=3)
    assert runner.sets == [[0, 1, 2, 3], [1, 2]] and runner.alone == [1]  # the last one left runs alone
    attempts = {r["model_index"]: r["attempts"] for r in read_journal(tmp_path / "c", kind="measurement")}
    assert attempts == {0: 1, 1: 3, 2: 2, 3: 1}
    assert summary.remeasured == 2 and summary.noisy == 0


def test_on_round_is_called_after_every_models_groups_of_each_round():
    tick = Tick()
    heard = []
    time_interleaved([tick.model("a"), tick.model("b")],
                     TimingProtocol(groups=5, runs_per_group=3, rounds=2, rewarm_runs=2, warmup_min_runs=4,
                                    warmup_min_s=0.0), clock=tick.clock,
                     on_round=lambda done, rounds: heard.append((done, rounds, len(tick.log))))
    # after warm-ups (8) + round 1 (18 runs); after round 2 (16 more): never inside a group
    assert heard == [(1, 2, 26), (2, 2, 42)]


def test_a_set_resumed_at_a_later_round_times_only_the_rounds_left_and_hands_over_each_round():
    whole, tick = Tick(), Tick()
    protocol = TimingProtocol(groups=5, runs_per_group=3, rounds=3, rewarm_runs=1, warmup_min_runs=4, warmup_min_s=0.0)
    full = time_interleaved([whole.model("a"), whole.model("b")], protocol, clock=whole.clock)
    rounds = []
    rest = time_interleaved([tick.model("a"), tick.model("b")], protocol, clock=tick.clock, first_round=1,
                            on_round_raws=lambda done, total, raws: rounds.append((done, total, raws)))
    # rounds 2 and 3 of 3 (groups 2 + 1 of the 5): 9 samples each; a full warm-up, a re-warm per round
    assert [len(r.samples_ns) for r in rest] == [9, 9] and [r.warmup_runs for r in rest] == [6, 6]
    assert [len(full[0].samples_ns), len(full[1].samples_ns)] == [15, 15]
    assert [(d, t, [len(r.samples_ns) for r in raws]) for d, t, raws in rounds] == [(2, 3, [6, 6]), (3, 3, [3, 3])]
    assert [[r.warmup_runs for r in raws] for _, _, raws in rounds] == [[5, 5], [1, 1]]
    for m in range(2):  # the rounds handed over are exactly the samples returned
        assert sum((list(raws[m].samples_ns) for _, _, raws in rounds), []) == list(rest[m].samples_ns)
    with pytest.raises(ValueError, match="first_round"):
        time_interleaved([tick.model("a")], TimingProtocol(groups=2, runs_per_group=1, rounds=2), first_round=2)


def test_a_local_worker_reports_each_round_of_a_set_then_answers(store):
    from blox_lat import exporters as ex
    from blox_lat.harness._runners import LocalWorkerRunner

    arts = [ex.export(a, "onnx", store=store) for a in sp.select("0:2")]
    protocol = TimingProtocol(groups=3, runs_per_group=2, warmup_min_runs=2, warmup_min_s=0.0,
                              interleave=2, rounds=3)
    heard = []
    with LocalWorkerRunner(timeout_s=120) as runner:
        raws = runner.measure_many(arts, get_device("cpu"), protocol, on_round=lambda d, r: heard.append((d, r)))
        assert heard == [(1, 3), (2, 3), (3, 3)]
        assert [len(r.samples_ns) for r in raws] == [6, 6]
        silent = runner.measure_many(arts, get_device("cpu"), protocol)  # no progress asked: none sent
        assert len(silent) == 2 and len(heard) == 3


def test_progress_lines_are_told_from_answers():
    from blox_lat.harness._runners import _progress_of

    assert _progress_of(b'{"progress":{"round":2,"rounds":5}}') == {"round": 2, "rounds": 5}
    for line in (b'{"ok":true,"raws":[]}', b'{"progress":{"round":"x"}}', b'{"progress": broken'):
        assert _progress_of(line) is None  # answers, and garbage that then fails as an answer


def test_a_campaign_reports_set_progress_before_the_sets_models(tmp_path, store):
    protocol = TimingProtocol(groups=4, runs_per_group=2, warmup_min_runs=2, warmup_min_s=0.0,
                              interleave=3, rounds=2)
    events = []
    run_campaign(sp.select("0:3"), CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp_path / "c", store=store,
                                                  anchors=0), on_event=lambda e: events.append((e.kind, e.to_dict())))
    kinds = [k for k, _ in events if k in ("set-progress", "model")]
    assert kinds == ["set-progress", "set-progress", "model", "model", "model"]
    rounds = [(d["round"], d["rounds"], d["models"], d["attempt"]) for k, d in events if k == "set-progress"]
    assert rounds == [(1, 2, 3, 1), (2, 2, 3, 1)]


def test_progress_shows_a_sets_rounds_and_never_goes_back(monkeypatch, capsys):
    from blox_lat.cli import measure as cli_measure
    from blox_lat.harness import CampaignStarted, MeasurementRecord, ModelDone, SetProgress

    monkeypatch.setattr(cli_measure, "NOTE_EVERY_S", 0.0)
    progress = cli_measure._Progress(quiet=False)
    progress(CampaignStarted(todo=2, selected=2, already_done=0, skipped_failed=0, env_id="", devices=["cpu"]))
    for done in (1, 2):
        progress(SetProgress(models=2, round=done, rounds=2, attempt=1))
    progress(SetProgress(models=1, round=1, rounds=2, attempt=2))
    for pos in (1, 2):
        record = {"model_index": pos, "model_hash": "ab" * 16, "measurement": {"latency_ms": 1.5}}
        progress(ModelDone(record=MeasurementRecord.from_dict(record), position=pos, todo=2))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5, err
    assert err[1].startswith("  2 models timed together: round 1/2;")  # the last round: the models report it
    assert err[2].startswith("  1 models timed together, re-measuring noisy ones: round 1/2;")
    assert err[3].startswith("[1/2] #1") and err[4].startswith("[2/2] #2")

    class Bar:  # stands in for rich's Progress: records what the bar shows
        def __init__(self):
            self.shown = []

        def update(self, task, completed, **fields):
            self.shown.append(completed)

    bar = Bar()
    on_tty = cli_measure._Progress(quiet=False)
    on_tty.todo, on_tty.bar = 4, bar
    on_tty(SetProgress(models=4, round=1, rounds=4, attempt=1))
    on_tty(SetProgress(models=4, round=3, rounds=4, attempt=1))
    on_tty(SetProgress(models=1, round=1, rounds=4, attempt=2))  # a re-measurement
    for pos in (1, 2, 3, 4):
        record = {"model_index": pos, "model_hash": "ab" * 16, "measurement": {"latency_ms": 1.5}}
        on_tty(ModelDone(record=MeasurementRecord.from_dict(record), position=pos, todo=4))
    assert bar.shown == [1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4]


def test_a_protocol_conflict_names_the_flags_that_resume_the_campaign(tmp_path, store):
    out = str(tmp_path / "r")
    first = _cli("measure", "0:2", "--runs", "40", "--warmup-s", "0.01", "--rounds", "2", "--rewarm-runs", "1",
                 "--out", out, "--store", str(store.root), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    env = next(read_journal(out, kind="environment"))
    assert (env["protocol"]["rounds"], env["protocol"]["rewarm_runs"]) == (2, 1)
    journal = (tmp_path / "r" / "journal.jsonl").read_bytes()
    other = _cli("measure", "0:3", "--runs", "40", "--warmup-s", "0.01", "--out", out, "--store", str(store.root),
                 cwd=tmp_path)
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr
    hint = "--runs 40 --runs-per-group 10 --warmup-runs 10 --warmup-s 0.01 --interleave 32 --rounds 2 --rewarm-runs 1"
    assert hint in other.stderr, other.stderr
    assert (tmp_path / "r" / "journal.jsonl").read_bytes() == journal  # nothing written
    resumed = _cli("measure", "0:3", *hint.split(), "--out", out, "--store", str(store.root), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["measured"] == 1  # only the new model


def test_a_runner_interrupted_mid_set_kills_its_worker_and_starts_afresh(store):
    import signal
    import time

    from blox_lat import exporters as ex
    from blox_lat.harness._runners import LocalWorkerRunner

    arts = [ex.export(a, "onnx", store=store) for a in sp.select("0:2")]
    long_set = TimingProtocol(groups=100, runs_per_group=10, warmup_min_runs=2, warmup_min_s=0.0,
                              interleave=2, rounds=10)  # ~10 s left after its first round

    def interrupt(done, rounds):
        raise KeyboardInterrupt  # what Ctrl-C raises in the waiting campaign

    runner = LocalWorkerRunner(timeout_s=120)
    with pytest.raises(KeyboardInterrupt):
        runner.measure_many(arts, get_device("cpu"), long_set, on_round=interrupt)
    first = runner._proc
    # reused: the stale answer of the interrupted set must not be taken for the next one
    short = TimingProtocol(groups=2, runs_per_group=2, warmup_min_runs=1, warmup_min_s=0.0)
    raw = runner.measure(arts[0], get_device("cpu"), short)
    assert len(raw.samples_ns) == 4 and runner.workers_started == 2
    assert first.returncode == -signal.SIGKILL
    with pytest.raises(KeyboardInterrupt):
        runner.measure_many(arts, get_device("cpu"), long_set, on_round=interrupt)
    busy = runner._proc
    started = time.monotonic()
    runner.close()  # not the 5 s grace an idle worker gets to exit by itself
    assert busy.returncode == -signal.SIGKILL and time.monotonic() - started < 4.0


def test_interleaved_sets_time_noisy_models_once_by_default(tmp_path):
    """Re-timing a set's noisy models cost more than it gained (benchmarks/within_set_noise.py):
    by default an interleaved campaign flags them and moves on; a plain one still retries."""
    from blox_lat.harness import default_max_attempts

    runner, summary = _noisy_set(tmp_path / "c")
    assert runner.sets == [[0, 1, 2, 3]] and runner.alone == []
    records = {r["model_index"]: r for r in read_journal(tmp_path / "c", kind="measurement")}
    assert {i: r["attempts"] for i, r in records.items()} == {0: 1, 1: 1, 2: 1, 3: 1}
    assert records[1]["measurement"]["noisy"] and records[2]["measurement"]["noisy"]
    assert summary.remeasured == 0 and summary.noisy == 2
    env = next(read_journal(tmp_path / "c", kind="environment"))
    assert env["max_attempts"] == 1
    assert (default_max_attempts(4), default_max_attempts(1)) == (1, 3)

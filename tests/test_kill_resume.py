"""A killed interleaved campaign keeps every finished round and resumes its set where it stopped.

Real onnxruntime timings in a real worker; the SIGKILL test drives the installed CLI.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from blox_lat import space as sp
from blox_lat.devices import get_device
from blox_lat.harness import CampaignConfig, Measurement, TimingProtocol, read_journal, run_campaign
from blox_lat.harness._setlog import SET_NAME, load_partial_set

SET = TimingProtocol(groups=8, runs_per_group=2, warmup_min_runs=2, warmup_min_s=0.0, interleave=4, rounds=8)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


def _interrupt_after(rounds: int, events: list):
    def on_event(event):
        kind, data = event.kind, event.to_dict()
        events.append((kind, data))
        if kind == "set-progress" and data["round"] == rounds:
            raise KeyboardInterrupt  # what Ctrl-C raises in the waiting campaign

    return on_event


def _ns(record) -> list[int]:
    return [round(ms * 1e6) for ms in record["measurement"]["samples_ms"]]


def _kept_ns(out: Path) -> dict[str, list[int]]:
    state = load_partial_set(out)
    assert state is not None and len(state.attempts) == 1
    attempt = state.attempts[0]
    return {h: [ns for row in attempt.done for ns in row[j].samples_ns] for j, h in enumerate(attempt.members)}


def test_an_interrupted_set_resumes_at_its_next_round_with_the_protocols_samples(tmp_path, store):
    archs = sp.select("0:4")
    events: list = []
    first = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store, max_attempts=1,
                                               anchors=0), on_event=_interrupt_after(3, events))
    assert first.interrupted and first.measured == 0
    kept = _kept_ns(tmp_path)
    assert list(kept) == [a.hash for a in archs]
    assert all(len(ns) == 3 * SET.runs_per_group for ns in kept.values())  # rounds 1-3, each one group
    events.clear()
    second = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store, max_attempts=1,
                                                anchors=0), on_event=lambda e: events.append((e.kind, e.to_dict())))
    assert (second.measured, second.failed, second.interrupted) == (4, 0, False)
    resumed = [d for k, d in events if k == "set-resumed"]
    assert resumed == [{"models": 4, "attempt": 1, "rounds_kept": 3, "rounds": 8}]
    assert [d["round"] for k, d in events if k == "set-progress"] == [4, 5, 6, 7, 8]  # 1-3 not timed again
    for record in read_journal(tmp_path, kind="measurement"):
        m = Measurement.from_dict(record["measurement"])
        assert len(m.samples_ms) == SET.total_runs and m.groups == SET.groups
        assert _ns(record)[: len(kept[record["model_hash"]])] == kept[record["model_hash"]]
    assert not (tmp_path / SET_NAME).exists()  # the set's records are journaled: its file is gone


def test_a_resume_with_another_selector_continues_the_sets_models_still_selected(tmp_path, store):
    events: list = []
    run_campaign(sp.select("0:3"), CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store, max_attempts=1,
                                                  anchors=0), on_event=_interrupt_after(2, events))
    kept = _kept_ns(tmp_path)
    events.clear()
    part = run_campaign(sp.select("0,2"), CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store,
                                                         max_attempts=1, anchors=0), on_event=lambda e: events.append((e.kind,
                                                                                                                       e.to_dict())))
    assert part.measured == 2
    assert [d for k, d in events if k == "set-resumed"] == [{"models": 2, "attempt": 1, "rounds_kept": 2, "rounds": 8}]
    for record in read_journal(tmp_path, kind="measurement"):
        assert len(record["measurement"]["samples_ms"]) == SET.total_runs
        assert _ns(record)[:4] == kept[record["model_hash"]]
    assert not (tmp_path / SET_NAME).exists()
    events.clear()
    rest = run_campaign(sp.select("0:3"), CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store,
                                                         max_attempts=1, anchors=0), on_event=lambda e: events.append((e.kind,
                                                                                                                       e.to_dict())))
    assert (rest.measured, rest.already_done) == (1, 2) and not [k for k, _ in events if k == "set-resumed"]
    ok = Counter(r["model_hash"] for r in read_journal(tmp_path, kind="measurement") if r["status"] == "ok")
    assert set(ok) == {a.hash for a in sp.select("0:3")} and set(ok.values()) == {1}


def test_a_torn_or_foreign_set_file_keeps_the_rounds_before_the_damage(tmp_path, store):
    run_campaign(sp.select("0:2"), CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store, max_attempts=1,
                                                  anchors=0), on_event=_interrupt_after(4, []))
    path = tmp_path / SET_NAME
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"kind":"round","attempt":1,"members":["')  # a SIGKILL mid-write
    assert load_partial_set(tmp_path).rounds_kept() == 4
    lines = whole.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + b"{broken\n" + b"".join(lines[3:]))
    assert load_partial_set(tmp_path).rounds_kept() == 2
    path.write_bytes(b"not json at all\n")
    events: list = []
    s = run_campaign(sp.select("0:2"), CampaignConfig(devices=(get_device("cpu"),), protocol=SET, out_dir=tmp_path, store=store,
                                                      max_attempts=1, anchors=0), on_event=lambda e: events.append(e.kind))
    assert s.measured == 2 and "set-resumed" not in events and not path.exists()


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _round_s(out: Path) -> float:
    """The median time of the partial set's kept rounds (0 before one is kept)."""
    state = load_partial_set(out)
    rows = state.attempts[0].done if state is not None and state.attempts else []
    spans = [_utc(row[-1].finished_at) - _utc(row[0].started_at) for row in rows]
    return statistics.median(spans) if spans else 0.0


def test_sigkill_mid_set_loses_at_most_the_round_in_progress(tmp_path, store):
    """Kill the real CLI at varied moments of an interleaved set; resume; every model once with
    exactly the protocol's samples, and each kill lost less than one round of timing."""
    out = tmp_path / "runs"
    runs, per_group = 80, 2  # 40 rounds of one group per model
    argv = [sys.executable, "-m", "blox_lat", "measure", "0:4", "--runs", str(runs), "--runs-per-group",
            str(per_group), "--warmup-runs", "2", "--warmup-s", "0", "--max-attempts", "1", "--redo-sets", "0", "--out", str(out),
            "--store", str(store.root), "--quiet"]
    seed = int(os.environ.get("BLOX_LAT_TEST_SEED", time.time_ns()))
    rng = random.Random(seed)
    path = out / SET_NAME
    figures = []
    for _ in range(3):
        before = load_partial_set(out).rounds_kept() if path.exists() else 0
        target = min(before + rng.randint(1, 8), runs // per_group - 8)  # the set must not end before the kill
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while (not path.exists() or load_partial_set(out) is None or load_partial_set(out).rounds_kept() < target) \
                and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 2.0) * _round_s(out))  # anywhere inside the next two rounds
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the campaign ended before the kill (seed {seed})"
        state = load_partial_set(out)
        rows = state.attempts[0].done
        spans = [_utc(row[-1].finished_at) - _utc(row[0].started_at) for row in rows[before:]]
        round_s = statistics.median(spans)
        lost_s = killed_at - _utc(rows[-1][-1].finished_at)
        figures.append({"kept_before": before, "kept_after": len(rows), "round_s": round(round_s, 3),
                        "lost_s": round(lost_s, 3), "lost_rounds": round(lost_s / round_s, 2)})
    print(f"seed {seed}: {figures}")
    for f in figures:
        assert f["kept_after"] > f["kept_before"]  # the rounds timed before each kill were kept
        # whatever was timed after the last kept round is less than a round (plus the host's
        # write of that round's line)
        assert f["lost_s"] < f["round_s"] + 0.25, (seed, figures)
    kept = _kept_ns(out)
    done = subprocess.run(argv[:-1] + ["--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["remaining"] == 0
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    measured = [r for r in records if r["kind"] == "measurement"]
    assert Counter(r["model_hash"] for r in measured) == Counter(a.hash for a in sp.select("0:4"))
    for record in measured:
        assert record["status"] == "ok" and len(record["measurement"]["samples_ms"]) == runs
        assert record["measurement"]["groups"] == runs // per_group
        assert _ns(record)[: len(kept[record["model_hash"]])] == kept[record["model_hash"]]
    assert not path.exists()


class RoundRunner:
    """A fake local device that times sets round by round (``resumes_rounds``): models in
    ``noisy`` give group means that disagree (every other round slower) on their first attempt; ``stop_at`` = (attempt, round) raises
    KeyboardInterrupt right after that round was handed over, as a kill would end the run."""

    reports_rounds = resumes_rounds = True

    def __init__(self, noisy=(), stop_at=None):
        self.noisy, self.stop_at, self.calls, self.attempt = set(noisy), stop_at, [], 0

    def measure_many(self, artifacts, profile, protocol, on_round=None, *, start_round=0, on_round_raws=None):
        from blox_lat.harness import RawRun

        names = [a.model_hash for a in artifacts]
        self.attempt = 1 if len(self.calls) == 0 and start_round == 0 and len(names) == 3 else 2
        self.calls.append((names, start_round))
        sizes = protocol.round_sizes()
        samples = {n: [] for n in names}
        for r in range(start_round, len(sizes)):
            raws = []
            for n in names:
                slow = n in self.noisy and self.attempt == 1 and r % 2 == 1  # every other round's groups slower
                ns = [2_000_000 if not slow else 3_000_000 for i in range(sizes[r] * protocol.runs_per_group)]
                samples[n] += ns
                raws.append(RawRun(tuple(ns), 1, f"2025-01-01T00:00:0{r}+00:00", f"2025-01-01T00:00:0{r}+00:00", {}))
            if on_round_raws is not None:
                on_round_raws(r + 1, len(sizes), raws)
            if self.stop_at == (self.attempt, r + 1):
                raise KeyboardInterrupt
        return [RawRun(tuple(samples[n]), 1, "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:09+00:00", {}) for n in names]

    def measure(self, artifact, profile, protocol):
        raise AssertionError("a set member is never timed alone here")

    def describe(self):
        return {"runner": "rounds"}

    def close(self):
        pass


def _fake_artifacts(archs, profile):
    from types import SimpleNamespace

    for a in archs:
        yield SimpleNamespace(path=Path("/nonexistent"), sha256="0" * 64, format=profile.format, bytes=0,
                              model_hash=a.hash)


def test_a_set_killed_while_remeasuring_its_noisy_models_resumes_that_attempt(tmp_path):
    archs = sp.select("0:3")
    proto = TimingProtocol(groups=3, runs_per_group=10, warmup_min_runs=1, warmup_min_s=0.0, interleave=3, rounds=3)
    noisy = {archs[1].hash, archs[2].hash}
    first = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=proto, out_dir=tmp_path, max_attempts=3, anchors=0),
                         runners=[RoundRunner(noisy, stop_at=(2, 1))], artifacts=_fake_artifacts)
    assert first.interrupted and first.measured == 0
    state = load_partial_set(tmp_path)
    assert [(a.attempt, len(a.members), len(a.done)) for a in state.attempts] == [(1, 3, 3), (2, 2, 1)]
    again = RoundRunner(noisy)
    again.attempt = 2
    second = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=proto, out_dir=tmp_path, max_attempts=3, anchors=0),
                          runners=[again], artifacts=_fake_artifacts)
    # attempt 1 is not timed again; attempt 2 goes on at its second round with the same two models
    assert again.calls == [([archs[1].hash, archs[2].hash], 1)]
    assert (second.measured, second.remeasured) == (3, 2)
    attempts = {r["model_index"]: r["attempts"] for r in read_journal(tmp_path, kind="measurement")}
    assert attempts == {0: 1, 1: 2, 2: 2}
    for record in read_journal(tmp_path, kind="measurement"):
        assert len(record["measurement"]["samples_ms"]) == proto.total_runs
        assert record["measurement"]["noisy"] is False


def _wait_for(proc, ready, what: str, limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        assert proc.poll() is None, f"the campaign ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.02)


def _journal_lines(out: Path, kind: str) -> list[dict]:
    path = out / "journal.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return [r for r in lines if r.get("kind") == kind]


def test_sigkill_of_an_anchored_campaign_keeps_its_anchors_and_reference(tmp_path, store):
    """Kill an anchored interleaved campaign mid-set twice (in its first set, then in its second,
    after the reference was journaled); every resume times the same anchors against the same
    reference, and every model lands once with the level of the set attempt that timed it."""
    from blox_lat.harness import AnchorsRecord, choose_anchors

    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "blox_lat", "measure", "0:4", "--interleave", "2", "--anchors", "2", "--runs", "200",
            "--runs-per-group", "10", "--warmup-runs", "2", "--warmup-s", "0", "--max-attempts", "1", "--redo-sets", "0", "--out", str(out),
            "--store", str(store.root), "--quiet"]
    anchors = tuple(a.hash for a in choose_anchors(2))
    first_set = tuple(a.hash for a in sp.select("0:2"))

    def kept(models: tuple[str, ...], rounds: int) -> bool:
        state = load_partial_set(out) if (out / SET_NAME).exists() else None
        return state is not None and state.models == models and state.rounds_kept() >= rounds

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(proc, lambda: kept(first_set, 3), "three rounds of the first set")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_partial_set(out)
    assert state.anchors == anchors and state.attempts[0].members == first_set + anchors
    assert not _journal_lines(out, "anchors")  # no reference yet: the first set is unfinished
    refused = subprocess.run([*argv[:8], "3", *argv[9:]], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "rerun with --anchors 2" in refused.stderr

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second_set = tuple(a.hash for a in sp.select("2:4"))
    _wait_for(proc, lambda: bool(_journal_lines(out, "anchors")) and kept(second_set, 2), "the second set")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reference = AnchorsRecord.from_dict(_journal_lines(out, "anchors")[0])
    assert reference.level == 1.0 and reference.reference_ms == reference.latencies_ms

    done = subprocess.run(argv[:-1] + ["--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["remaining"] == 0
    envs = _journal_lines(out, "environment")
    assert len(envs) == 3 and all([a["model_hash"] for a in e["anchors"]] == list(anchors) for e in envs)
    runs = {r["set_id"]: AnchorsRecord.from_dict(r) for r in _journal_lines(out, "anchors")}
    assert len(runs) == 2 and all(r.hashes == list(anchors) for r in runs.values())
    assert all(r.reference_ms == reference.reference_ms for r in runs.values())  # one reference after resumes
    measured = _journal_lines(out, "measurement")
    assert Counter(r["model_hash"] for r in measured) == Counter(a.hash for a in sp.select("0:4"))
    for record in measured:
        assert record["status"] == "ok" and len(record["measurement"]["samples_ms"]) == 200
        run = runs[record["set_id"]]
        assert record["level"] == run.level
        assert record["latency_corrected_ms"] == record["measurement"]["latency_ms"] / run.level
    assert [runs[r["set_id"]].level == 1.0 for r in measured] == [True, True, False, False]

"""Campaigns: journal format, resume, retries on noise, failures, locking, SIGKILL + resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from blox_lat import space as sp
from blox_lat.devices import get_device
from blox_lat.harness import (
    CampaignConfig,
    CampaignConflictError,
    CampaignLockedError,
    Journal,
    JournalError,
    Measurement,
    ModelFailedError,
    RawRun,
    TimingProtocol,
    read_journal,
    run_campaign,
)

FAST = TimingProtocol(groups=2, runs_per_group=10, warmup_min_runs=10, warmup_min_s=0.02)

ENV_KEYS = {"schema", "kind", "env_id", "campaign_id", "recorded_at", "host", "cpu", "versions",
            "device", "device_facts", "profile", "protocol", "load_average"}
MEASUREMENT_KEYS = {"schema", "kind", "status", "reason", "model_hash", "model_index", "device",
                    "profile", "env_id", "campaign_id", "recorded_at", "attempts", "measurement",
                    "artifact"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


class ScriptedRunner:
    """A seeded fake device: returns pre-set sample lists (or failures) in order."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def measure(self, artifact, profile, protocol):
        item = self.script[self.calls % len(self.script)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        ns = [int(v * 1e6) for v in item]
        return RawRun(tuple(ns), 10, "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:01+00:00", {})

    def describe(self):
        return {"runner": "scripted"}

    def close(self):
        self.closed = True


def _artifacts(archs, profile):
    from types import SimpleNamespace

    for a in archs:
        yield SimpleNamespace(path=Path("/nonexistent"), sha256="0" * 64, format=profile.format,
                              bytes=0, model_hash=a.hash)


CLEAN = [2.0] * 20
NOISY = [2.0] * 10 + [2.4] * 10  # the two groups disagree: the latency is known to +-20 % only


def test_real_campaign_journal_format_and_resume(tmp_path, store):
    out = tmp_path / "camp"
    profile = get_device("cpu")
    first = run_campaign(sp.select("0:2"), CampaignConfig(devices=(profile,), protocol=FAST, out_dir=out, store=store, anchors=0))
    assert (first.measured, first.failed, first.already_done, first.interrupted) == (2, 0, 0, False)
    records = list(read_journal(out / "journal.jsonl"))
    assert [r["kind"] for r in records] == ["environment", "measurement", "measurement"]
    env, m0, m1 = records
    assert ENV_KEYS <= set(env) and env["device"] == "cpu" and env["schema"] == 1
    assert set(env["versions"]) >= {"python", "torch", "onnxruntime", "blox_lat", "git_commit"}
    assert env["protocol"]["groups"] == 2 and env["profile"] == profile.to_dict()
    for rec, index in ((m0, 0), (m1, 1)):
        assert MEASUREMENT_KEYS <= set(rec)
        assert rec["status"] == "ok" and rec["reason"] is None and rec["model_index"] == index
        assert rec["model_hash"] == sp.resolve(str(index)).hash
        assert rec["env_id"] == env["env_id"] and rec["campaign_id"] == env["campaign_id"]
        assert rec["artifact"]["format"] == "onnx" and len(rec["artifact"]["sha256"]) == 64
        m = Measurement.from_dict(rec["measurement"])  # statistics recompute from the samples
        assert m.latency_ms == pytest.approx(rec["measurement"]["latency_ms"])
        assert len(rec["measurement"]["samples_ms"]) == 20 and rec["measurement"]["groups"] == 2
    # resume: a larger selection only measures the new model, same campaign id
    second = run_campaign(sp.select("0:3"), CampaignConfig(devices=(profile,), protocol=FAST, out_dir=out, store=store, anchors=0))
    assert (second.measured, second.already_done) == (1, 2)
    assert second.campaign_id == first.campaign_id and second.env_id != first.env_id
    again = run_campaign(sp.select("0:3"), CampaignConfig(devices=(profile,), protocol=FAST, out_dir=out, store=store, anchors=0))
    assert again.measured == 0 and again.already_done == 3
    hashes = [r["model_hash"] for r in read_journal(out, kind="measurement")]
    assert len(hashes) == len(set(hashes)) == 3


def test_noisy_measurements_are_remeasured(tmp_path):
    runner = ScriptedRunner([NOISY, NOISY, CLEAN])
    events = []
    summary = run_campaign(sp.select("5"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                           runners=[runner], artifacts=_artifacts, on_event=lambda e: events.append(e.kind))
    rec = summary.records[0]
    assert runner.calls == 3 and rec["attempts"] == 3 and rec["status"] == "ok"
    assert rec["measurement"]["noisy"] is False and rec["measurement"]["latency_ms"] == 2.0
    assert [[f for f in a["flags"] if f != "few-groups"] for a in rec["attempt_log"]] == [
        ["halfwidth>0.05"], ["halfwidth>0.05"], []]
    assert events.count("retry") == 2 and summary.remeasured == 1 and summary.noisy == 0


def test_always_noisy_keeps_least_noisy_attempt_flagged(tmp_path):
    worse = [2.0] * 10 + [4.0] * 10  # known to +-64 % vs +-21 % for NOISY
    runner = ScriptedRunner([worse, NOISY, worse])
    summary = run_campaign(sp.select("5"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, max_attempts=3,
                                                          anchors=0), runners=[runner], artifacts=_artifacts)
    rec = summary.records[0]
    assert rec["attempts"] == 3 and rec["measurement"]["noisy"] is True
    assert rec["measurement"]["rel_halfwidth"] == pytest.approx(
        Measurement(tuple(NOISY), 10, 10, "a", "b").rel_halfwidth)
    assert summary.noisy == 1


def test_failures_are_status_not_numbers_and_are_retried(tmp_path):
    archs = sp.select("7,8")
    runner = ScriptedRunner([ModelFailedError("worker crashed (killed by signal SIGSEGV)"), CLEAN])
    s1 = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0), runners=[runner],
                      artifacts=_artifacts)
    assert (s1.measured, s1.failed) == (1, 1)
    failed = [r for r in read_journal(tmp_path, kind="measurement") if r["status"] == "failed"]
    assert failed[0]["measurement"] is None and "SIGSEGV" in failed[0]["reason"]
    # --skip-failed leaves it alone
    s2 = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, skip_failed=True, anchors=0),
                      runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert (s2.measured, s2.skipped_failed, s2.already_done) == (0, 1, 1)
    # a plain rerun retries it
    s3 = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                      runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert (s3.measured, s3.already_done) == (1, 1)
    ok = Counter(r["model_hash"] for r in read_journal(tmp_path, kind="measurement") if r["status"] == "ok")
    assert set(ok.values()) == {1} and len(ok) == 2


def test_export_failure_is_recorded(tmp_path):
    from blox_lat.exporters import ExportFailure

    def failing(archs, profile):
        for a in archs:
            yield ExportFailure(a.hash, a.index, profile.format, "SNPE SDK not found")

    s = run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                     runners=[ScriptedRunner([CLEAN])], artifacts=failing)
    rec = s.records[0]
    assert rec["status"] == "failed" and rec["reason"] == "export failed: SNPE SDK not found"
    assert rec["artifact"] is None and rec["attempts"] == 0


def test_conflicting_settings_are_refused(tmp_path):
    run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                 runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    before = (tmp_path / "journal.jsonl").read_bytes()
    with pytest.raises(CampaignConflictError, match="another protocol"):
        run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=TimingProtocol(groups=4, runs_per_group=10),
                                                    out_dir=tmp_path, anchors=0), runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    with pytest.raises(CampaignConflictError, match="profile"):
        run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu-int8"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                     runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert (tmp_path / "journal.jsonl").read_bytes() == before


def test_concurrent_campaign_is_locked_out(tmp_path):
    from blox_lat.harness._campaign import _DirLock

    lock = _DirLock(tmp_path)
    try:
        with pytest.raises(CampaignLockedError, match="another 'blox-lat measure'"):
            run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                         runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    finally:
        lock.release()


def test_torn_tail_is_ignored_then_moved_aside(tmp_path):
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"schema": 1, "kind": "environment", "n": 1})
        journal.append({"schema": 1, "kind": "measurement", "n": 2})
    with open(path, "ab") as fh:
        fh.write(b'{"schema": 1, "kind": "measurement", "n": 3, "samp')  # SIGKILL mid-line
    assert [r["n"] for r in read_journal(path)] == [1, 2]
    with Journal(path) as journal:
        assert journal.repaired_bytes > 0
        journal.append({"schema": 1, "kind": "measurement", "n": 4})
    assert [r["n"] for r in read_journal(path)] == [1, 2, 4]
    assert b'"n": 3' in (tmp_path / "journal.jsonl.torn").read_bytes()
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"schema": 1, "kind": "environment"}\n{broken\n{"schema": 1, "kind": "x"}\n')
    with pytest.raises(JournalError, match=":2: damaged"):
        list(read_journal(path))
    path.write_text('{"schema": 99, "kind": "environment"}\n')
    with pytest.raises(JournalError, match="upgrade"):
        list(read_journal(path))
    with pytest.raises(JournalError, match="no journal"):
        list(read_journal(tmp_path / "missing"))


def test_interrupt_stops_cleanly(tmp_path):
    class Interrupting(ScriptedRunner):
        def measure(self, artifact, profile, protocol):
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().measure(artifact, profile, protocol)

    runner = Interrupting([CLEAN])
    s = run_campaign(sp.select("0:4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                     runners=[runner], artifacts=_artifacts)
    assert s.interrupted and s.measured == 1 and s.remaining == 3
    s2 = run_campaign(sp.select("0:4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                      runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert s2.measured == 3 and s2.already_done == 1


def test_sigkill_at_random_moments_then_resume_is_exactly_once(tmp_path, store):
    """Kill the real CLI (subprocess) twice at random moments; resume; every model once."""
    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "blox_lat", "measure", "0:8", "--runs", "100", "--warmup-s", "0.02",
            "--out", str(out), "--store", str(store.root), "--quiet"]
    rng = random.Random(int(os.environ.get("BLOX_LAT_TEST_SEED", time.time_ns())))
    for _ in range(2):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(argv + ["--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["remaining"] == 0 and summary["failed"] == 0
    lines = (out / "journal.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line intact
    ok = Counter(r["model_hash"] for r in records if r["kind"] == "measurement" and r["status"] == "ok")
    assert set(ok) == {a.hash for a in sp.select("0:8")}
    assert set(ok.values()) == {1}
    assert sum(r["kind"] == "environment" for r in records) >= 1


def test_resuming_an_interleaved_campaign_with_the_plain_protocol_is_refused(tmp_path):
    """Both directions: interleaved then ``--interleave 1``, and plain then interleaved."""
    interleaved = TimingProtocol(groups=2, runs_per_group=10, warmup_min_runs=10, warmup_min_s=0.02,
                                 interleave=4, rounds=2)
    run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=interleaved, out_dir=tmp_path / "a", anchors=0),
                 runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    before = (tmp_path / "a" / "journal.jsonl").read_bytes()
    with pytest.raises(CampaignConflictError, match="another protocol") as caught:
        run_campaign(sp.select("3,4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path / "a", anchors=0),
                     runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert "interleave None vs 1" not in str(caught.value)
    assert "interleave 4 vs 1" in str(caught.value)
    assert "--interleave 4 --rounds 2 --rewarm-runs 0" in str(caught.value)
    assert (tmp_path / "a" / "journal.jsonl").read_bytes() == before
    run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path / "b", anchors=0),
                 runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    with pytest.raises(CampaignConflictError, match="interleave 1 vs 4") as caught:
        run_campaign(sp.select("3,4"), CampaignConfig(devices=(get_device("cpu"),), protocol=interleaved, out_dir=tmp_path / "b",
                                                      anchors=0), runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert "--interleave 1" in str(caught.value)


@pytest.mark.parametrize("line", [
    '{"schema": 1, "kind": "measurement", "status": "ok"}',
    '{"schema": 1, "kind": "measurement", "model_hash": 7, "status": "ok"}',
    '{"schema": "x", "kind": "measurement", "model_hash": "ab", "status": "ok"}',
    '[1, 2]',
])
def test_a_foreign_journal_line_is_a_one_line_error_naming_file_and_line(tmp_path, line):
    run_campaign(sp.select("3"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                 runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    path = tmp_path / "journal.jsonl"
    with open(path, "a") as fh:
        fh.write(line + "\n")
    before = path.read_bytes()
    with pytest.raises(JournalError, match=r"journal.jsonl:3: ") as caught:
        run_campaign(sp.select("3,4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                     runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before
    with open(path, "ab") as fh:  # a torn *last* line stays tolerated as before
        fh.write(b'{"schema": 1, "kind": "measurem')
    path.write_bytes(before.replace((line + "\n").encode(), b"") + b'{"schema": 1, "kind": "measurem')
    s = run_campaign(sp.select("3,4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                     runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert (s.measured, s.already_done) == (1, 1)


def test_a_no_op_rerun_appends_no_environment_line(tmp_path):
    for _ in range(3):
        run_campaign(sp.select("3,4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                     runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    kinds = [r["kind"] for r in read_journal(tmp_path)]
    assert kinds == ["environment", "measurement", "measurement"]
    again = run_campaign(sp.select("3,4"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                         runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)
    assert again.env_id == next(read_journal(tmp_path, kind="environment"))["env_id"]
    run_campaign(sp.select("3:6"), CampaignConfig(devices=(get_device("cpu"),), protocol=FAST, out_dir=tmp_path, anchors=0),
                 runners=[ScriptedRunner([CLEAN])], artifacts=_artifacts)  # new records follow: their environment is recorded
    kinds = [r["kind"] for r in read_journal(tmp_path)]
    assert kinds == ["environment"] + ["measurement"] * 2 + ["environment"] + ["measurement"]


def test_the_library_refuses_interleaving_off_one_local_device(tmp_path):
    import dataclasses

    from blox_lat.harness import Campaign, InterleaveError, check_interleave, default_interleave

    interleaved = TimingProtocol(groups=2, runs_per_group=10, interleave=4, rounds=2)
    remote, local = get_device("sd888"), get_device("cpu")
    for devices in ((remote,), (local, dataclasses.replace(local, name="cpu-2"))):
        config = CampaignConfig(devices=devices, protocol=interleaved, out_dir=tmp_path / "c", anchors=0)
        with pytest.raises(InterleaveError, match="one local device"):
            run_campaign(sp.select("3"), config, runners=[ScriptedRunner([CLEAN])] * len(devices), artifacts=_artifacts)
        with pytest.raises(InterleaveError):
            Campaign(sp.select("3"), config)
    assert not (tmp_path / "c").exists()  # refused before touching the disk or a device
    assert (default_interleave([local]), default_interleave([remote])) == (32, 1)
    check_interleave(4, [local])
    check_interleave(1, [remote])

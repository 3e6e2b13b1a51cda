"""Campaign journals are byte-identical to the golden journals: three campaigns (one model at a
time with anchors, interleaved sets with anchors and a resume, a farm) on deterministic fake
devices, whose journals were written by the campaign code before it was split into parts.

Only what differs from run to run is normalised: timestamps, random ids (renamed in order of
appearance), the host facts of environment lines (and ``redo_sets``, which they gained with burst
redos), and the ``stability`` judgement that anchors lines gained with it. Regenerate (only for an intended change of the journal) with
``BLOX_LAT_WRITE_GOLDEN=1 pytest tests/test_campaign_golden.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from blox_lat import space as sp
from blox_lat.devices import get_device
from blox_lat.harness import JOURNAL_NAME, CampaignConfig, ModelFailedError, RawRun, TimingProtocol, run_campaign

GOLDEN = Path(__file__).parent / "data" / "golden_journals"
STAMP = "2025-01-01T00:00:00+00:00"
ENV_KEEP = ("schema", "kind", "device", "device_facts", "unit", "profile", "protocol", "selected", "todo",
            "max_attempts", "farm", "anchors", "anchor_every", "journal_repaired_bytes")


def _samples(index: int, n: int, slow: bool = False) -> tuple[int, ...]:
    base = 1_000_000 + 37_000 * (index % 11)
    return tuple(base + (400_000 if slow and i >= n // 2 else 0) + 1_000 * (i % 3) for i in range(n))


class SerialRunner:
    """One model at a time: model 3 fails, model 2 is noisy on its first attempt."""

    def __init__(self):
        self.seen = {}

    def measure(self, artifact, profile, protocol):
        index = artifact.model_index
        self.seen[index] = self.seen.get(index, 0) + 1
        if index == 3:
            raise ModelFailedError("worker crashed (scripted)")
        n = protocol.groups * protocol.runs_per_group
        return RawRun(_samples(index, n, slow=index == 2 and self.seen[index] == 1), 10, STAMP, STAMP, {})

    def describe(self):
        return {"runner": "serial-golden"}

    def close(self):
        pass


class SetRunner(SerialRunner):
    """Times sets round by round; model 1 is noisy the first time it is timed."""

    reports_rounds = resumes_rounds = True

    def measure_many(self, artifacts, profile, protocol, on_round=None, *, start_round=0, on_round_raws=None):
        sizes = protocol.round_sizes()
        samples = {id(a): [] for a in artifacts}
        for a in artifacts:
            self.seen[a.model_index] = self.seen.get(a.model_index, 0) + 1
        for r in range(start_round, len(sizes)):
            raws = []
            for a in artifacts:
                n = sizes[r] * protocol.runs_per_group
                slow = a.model_index == 1 and self.seen[a.model_index] == 1 and r % 2 == 1
                ns = _samples(a.model_index, n, slow=slow)
                samples[id(a)] += ns
                raws.append(RawRun(ns, 1, STAMP, STAMP, {}))
            if on_round_raws is not None:
                on_round_raws(r + 1, len(sizes), raws)
            if on_round is not None:
                on_round(r + 1, len(sizes))
        return [RawRun(tuple(samples[id(a)]), 1, STAMP, STAMP, {}) for a in artifacts]


def _artifacts(archs, profile):
    for a in archs:
        if a.index == 4:
            from blox_lat.exporters import ExportFailure

            yield ExportFailure(model_hash=a.hash, model_index=a.index, format=profile.format,
                                reason="scripted export failure")
            continue
        yield SimpleNamespace(path=Path("/nonexistent"), sha256="0" * 64, format=profile.format, bytes=0,
                              model_hash=a.hash, model_index=a.index)


def _normalised(path: Path, sort_measurements: bool = False) -> str:
    ids: dict[str, str] = {}

    def rename(value, prefix):
        return ids.setdefault(f"{prefix}:{value}", f"{prefix}{sum(k.startswith(prefix + ':') for k in ids) + 1}")

    lines = []
    for text in path.read_text().splitlines():
        line = json.loads(text)
        if line["kind"] == "environment":
            line = {k: line[k] for k in ENV_KEEP if k in line} | {"env_id": rename(line["env_id"], "E")}
        line.pop("recorded_at", None)
        line.pop("stability", None)
        for key, prefix in (("set_id", "S"), ("env_id", "E"), ("campaign_id", "C")):
            if key in line and line[key] is not None and not str(line[key]).startswith(prefix):
                line[key] = rename(line[key], prefix)
        lines.append(line)
    if sort_measurements:
        lines.sort(key=lambda x: (x["kind"] != "environment", x.get("unit", ""), x.get("model_hash", "")))
    return "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)


def _run(archs, profiles, protocol, out, runner, **options):
    """One campaign run on fake devices, through the library API."""
    config = CampaignConfig(devices=tuple(profiles), protocol=protocol, out_dir=out, **options)
    return run_campaign(archs, config, runners=runner, artifacts=_artifacts)


def _serial(out: Path) -> str:
    protocol = TimingProtocol(groups=4, runs_per_group=5, warmup_min_runs=1, warmup_min_s=0.0)
    _run(sp.select("0:6"), [get_device("cpu")], protocol, out, [SerialRunner()], max_attempts=2,
         anchors=tuple(sp.select("7,8")), anchor_every=2)
    return _normalised(out / JOURNAL_NAME)


def _interleaved(out: Path) -> str:
    protocol = TimingProtocol(groups=4, runs_per_group=5, warmup_min_runs=1, warmup_min_s=0.0, interleave=3,
                              rounds=4)
    runner = SetRunner()
    _run(sp.select("0:7"), [get_device("cpu")], protocol, out, [runner], max_attempts=2,
         anchors=tuple(sp.select("9,10")))
    _run(sp.select("0:9"), [get_device("cpu")], protocol, out, [runner], max_attempts=2,
         anchors=tuple(sp.select("9,10")))
    return _normalised(out / JOURNAL_NAME)


def _farm(out: Path) -> str:
    protocol = TimingProtocol(groups=2, runs_per_group=5, warmup_min_runs=1, warmup_min_s=0.0)
    cpu = get_device("cpu")
    farm = [dataclasses.replace(cpu, name="golden-a"), dataclasses.replace(cpu, name="golden-b")]
    _run(sp.select("0:3,5:9"), farm, protocol, out, [SerialRunner(), SerialRunner()], max_attempts=1)
    return _normalised(out / JOURNAL_NAME, sort_measurements=True)


def _any_member(text: str) -> str:
    """A farm's journal without which member measured which model (the threads' race decides
    it): measurement lines lose ``unit``, ``profile`` and ``env_id``, sorted by model."""
    lines = [json.loads(x) for x in text.splitlines()]
    for line in lines:
        if line["kind"] == "measurement":
            for key in ("unit", "profile", "env_id"):
                line.pop(key, None)
    lines.sort(key=lambda x: (x["kind"] != "environment", x.get("unit", ""), x.get("model_hash", "")))
    return "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)


@pytest.mark.parametrize("scenario", [_serial, _interleaved, _farm], ids=["serial", "interleaved", "farm"])
def test_the_journal_is_the_golden_one(scenario, tmp_path):
    text = scenario(tmp_path / "c")
    golden = GOLDEN / f"{scenario.__name__.strip('_')}.jsonl"
    if os.environ.get("BLOX_LAT_WRITE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    expected = golden.read_text()
    if scenario is _farm:
        text, expected = _any_member(text), _any_member(expected)
    assert text == expected

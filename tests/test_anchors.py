"""Anchor models and level-corrected latencies (issue 15).

- A worker whose models sleep ``level x true latency``, the level changed between sets: raw
  latencies lose the true ranks across sets, the corrected ones recover them.
- A real onnxruntime campaign with anchors: records carry levels, the anchors' lines and the
  environment name the anchors, and a resume with other anchors is refused with the flag.
- Releases: ``level`` / ``latency_corrected_ms`` present for anchored campaigns, null otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from level_runtime import FAKE, level_models, spearman

from blox_lat import dataset as ds
from blox_lat import space as sp
from blox_lat.devices import get_device
from blox_lat.harness import (
    AnchorsRecord,
    CampaignConfig,
    CampaignConflictError,
    CampaignSetupError,
    LocalWorkerRunner,
    MeasurementRecord,
    ModelDone,
    RawRun,
    TimingProtocol,
    choose_anchors,
    read_journal,
    run_campaign,
    set_level,
)
from blox_lat.harness._setlog import SetLog, load_partial_set

GOLDEN = Path(__file__).parent / "golden" / "dataset"


def test_anchors_are_deterministic_and_span_the_flops_range():
    three = choose_anchors(3)
    assert [a.hash for a in three] == [a.hash for a in choose_anchors(3)]
    flops = [sp.flops(a) for a in three]
    assert flops == sorted(flops) and flops[-1] > 1.2 * flops[0]
    assert choose_anchors(0) == []
    assert set_level([2.0, 8.0], [1.0, 4.0]) == pytest.approx(2.0)
    assert set_level([1.0, 4.0], [1.0, 1.0]) == pytest.approx(2.0)  # geometric mean


def test_the_correction_recovers_the_true_ranks_that_raw_latencies_lose(tmp_path):
    models = sp.select("0:12")
    anchors = choose_anchors(2)
    # true latencies 8 % apart; set k gets ranks k, k+3, k+6, k+9 and the host's level levels[k]
    order = [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
    true_ms = {m.hash: 2.0 * 1.08 ** rank for m, rank in zip(models, order)}
    true_ms.update({anchors[0].hash: 2.4, anchors[1].hash: 3.6})
    levels = [1.0, 1.5, 0.7]
    level_file = tmp_path / "level"
    level_file.write_text(str(levels[0]))

    def on_event(event):
        if isinstance(event, ModelDone) and event.position % 4 == 0 and event.position < 12:
            level_file.write_text(str(levels[event.position // 4]))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")])}
    protocol = TimingProtocol(groups=6, runs_per_group=5, warmup_min_runs=2, warmup_min_s=0.0, interleave=4, rounds=6)
    with LocalWorkerRunner(env=env, timeout_s=60) as runner:
        config = CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp_path / "c",
                                anchors=anchors)
        summary = run_campaign(models, config, runners=[runner], artifacts=level_models(tmp_path, true_ms, level_file),
                               on_event=on_event)
    assert (summary.measured, summary.failed) == (12, 0)
    records = [MeasurementRecord.from_dict(r) for r in read_journal(tmp_path / "c", kind="measurement")]
    sets = [AnchorsRecord.from_dict(r) for r in read_journal(tmp_path / "c", kind="anchors")]
    # a loaded host adds a fixed overhead to the fake's timings, which pulls levels toward 1
    assert [s.level for s in sets if s.attempt == 1] == pytest.approx([1.0, 1.5, 0.7], abs=0.15)
    truth = [true_ms[r.model_hash] for r in records]
    raw = [r.latency_ms for r in records]
    corrected = [r.latency_corrected_ms for r in records]
    assert spearman(raw, truth) < 0.8
    assert spearman(corrected, truth) >= 0.97
    for r in records:  # the protocol latency stays the primary value
        assert r.latency_corrected_ms == pytest.approx(r.latency_ms / r.level)
        assert r.set_id in {s.set_id for s in sets}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def anchored(tmp_path_factory, store) -> Path:
    out = tmp_path_factory.mktemp("anchored") / "c"
    protocol = TimingProtocol(groups=4, runs_per_group=5, warmup_min_runs=5, warmup_min_s=0.01, interleave=2, rounds=4)
    summary = run_campaign(sp.select("0:3"), CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=out, store=store,
                                                            anchors=2))
    assert (summary.measured, summary.failed) == (3, 0)
    return out


def test_a_real_campaign_with_anchors_gives_every_record_its_sets_level(anchored):
    env = next(read_journal(anchored, kind="environment"))
    assert env["schema"] == 2 and [a["model_hash"] for a in env["anchors"]] == [a.hash for a in choose_anchors(2)]
    sets = {s["set_id"]: AnchorsRecord.from_dict(s) for s in read_journal(anchored, kind="anchors")}
    first = next(iter(sets.values()))
    assert first.level == 1.0 and first.reference_ms == first.latencies_ms  # the campaign's reference
    records = [MeasurementRecord.from_dict(r) for r in read_journal(anchored, kind="measurement")]
    assert [r.model_index for r in records] == [0, 1, 2]
    for r in records:
        level = sets[r.set_id]
        assert r.level == level.level and r.latency_corrected_ms == pytest.approx(r.latency_ms / r.level)
        assert level.reference_ms == first.reference_ms
        assert MeasurementRecord.from_dict(r.to_dict()) == r


def test_a_resume_with_other_anchors_is_refused_with_the_flag(anchored, store, tmp_path):
    protocol = TimingProtocol(groups=4, runs_per_group=5, warmup_min_runs=5, warmup_min_s=0.01, interleave=2, rounds=4)
    for other in (3, None):
        with pytest.raises(CampaignConflictError, match="rerun with --anchors 2"):
            run_campaign(sp.select("0:4"), CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=anchored, store=store,
                                                          anchors=other))
    run_campaign(sp.select("0:1"), CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp_path / "plain", store=store,
                                                  anchors=0))
    with pytest.raises(CampaignConflictError, match="rerun with --anchors 0"):
        run_campaign(sp.select("0:2"), CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp_path / "plain",
                                                      store=store, anchors=2))
    farm = [get_device("cpu"), dataclasses.replace(get_device("cpu"), name="cpu-b")]
    with pytest.raises(CampaignSetupError, match="one device"):  # each farm member has its own level
        run_campaign(sp.select("0:3"), CampaignConfig(devices=tuple(farm), protocol=TimingProtocol(), out_dir=tmp_path / "x", anchors=2))
    with pytest.raises(CampaignSetupError, match="anchor-every"):
        run_campaign(sp.select("0:3"), CampaignConfig(devices=(get_device("cpu"),), protocol=TimingProtocol(), out_dir=tmp_path / "x",
                                                      anchors=2, anchor_every=0))
    assert not (tmp_path / "x").exists()


def test_the_partial_set_file_keeps_the_anchors_rounds(tmp_path):
    raw = RawRun((1000, 1100), 1, "a", "b", {})
    log = SetLog(tmp_path, ["m1", "m2"], {"groups": 2}, "cid", anchors=["a1"])
    log.append_round(1, ("m1", "m2", "a1"), 1, 2, [raw, raw, raw])
    log.close()
    state = load_partial_set(tmp_path)
    assert state.anchors == ("a1",) and state.attempts[0].members == ("m1", "m2", "a1")
    kept = state.only(["m2"])
    assert kept.models == ("m2",) and kept.attempts[0].members == ("m2", "a1") and kept.anchors == ("a1",)


def test_releases_carry_levels_for_anchored_campaigns_and_nulls_otherwise(anchored, tmp_path):
    rel = ds.open(ds.build([anchored], tmp_path / "a", "1.0.0", static=False).path)
    bench = rel.to_pandas("bench/cpu")
    records = {r["model_index"]: r for r in read_journal(anchored, kind="measurement")}
    assert list(bench["level"]) == [records[i]["level"] for i in bench["model_index"]]
    assert rel.latency(1, corrected=True) == records[1]["latency_corrected_ms"]
    assert rel.latency(1) == records[1]["measurement"]["latency_ms"]
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(GOLDEN / "cpu-campaign.jsonl", plain / "journal.jsonl")
    old = ds.open(ds.build([plain], tmp_path / "p", "1.0.0", static=False).path)
    bench = old.to_pandas("bench/cpu")
    assert bench["level"].isna().all() and bench["latency_corrected_ms"].isna().all()
    assert old.latency(0, corrected=True) is None and old.latency(0) is not None
    golden = ds.open(GOLDEN / "release-1.0.0")  # schema 1: no such columns, read as null
    assert golden.latency(0, "cpu", corrected=True) is None


def _second_campaign(journal: Path, out: Path, slower: float) -> None:
    """``journal`` as another campaign measured an hour later on a host ``slower`` times as slow
    at its first anchor run: its own reference is that much higher, its levels (relative to it)
    unchanged."""
    out.mkdir()
    lines = []
    for line in (json.loads(t) for t in journal.read_text().splitlines()):
        line["campaign_id"] = "b" * 16
        if "recorded_at" in line:
            line["recorded_at"] = "2099" + line["recorded_at"][4:]
        if line["kind"] == "anchors":
            line["reference_ms"] = [x * slower for x in line["reference_ms"]]
        lines.append(json.dumps(line))
    (out / "journal.jsonl").write_text("\n".join(lines) + "\n")


def test_a_release_puts_campaigns_with_the_same_anchors_on_one_reference(anchored, tmp_path):
    """Each campaign's levels are relative to its own first anchor run; a release rescales them
    to the earliest campaign's reference, so corrected latencies of two campaigns compare."""
    second = tmp_path / "b"
    _second_campaign(anchored / "journal.jsonl", second, slower=1.25)
    alone = ds.open(ds.build([anchored], tmp_path / "a", "1.0.0", static=False).path)
    both = ds.open(ds.build([anchored, second], tmp_path / "ab", "1.0.0", static=False).path)
    records = {r["model_index"]: r for r in read_journal(second, kind="measurement")}
    bench = both.to_pandas("bench/cpu")
    assert set(bench["campaign_id"]) == {"b" * 16}  # the later records win the duplicates rule
    for i, level in zip(bench["model_index"], bench["level"]):
        assert level == pytest.approx(records[i]["level"] * 1.25)
        assert both.latency(int(i), corrected=True) == pytest.approx(records[i]["measurement"]["latency_ms"] / level)
        assert both.latency(int(i), corrected=True) == pytest.approx(alone.latency(int(i), corrected=True) / 1.25)
    meta = both.section("bench/cpu").entry["metadata"]["level_reference"]
    first = next(read_journal(anchored, kind="anchors"))
    assert meta["campaign_id"] == first["campaign_id"] and meta["reference_ms"] == first["reference_ms"]
    assert meta["campaigns"] == sorted([first["campaign_id"], "b" * 16]) and meta["other_anchors"] == []


def test_a_fit_from_two_campaigns_puts_them_on_one_reference(anchored, tmp_path):
    """``predict fit`` from campaign folders rescales corrected latencies as a release does."""
    from blox_lat import predict as pr

    second = tmp_path / "b"
    _second_campaign(anchored / "journal.jsonl", second, slower=1.25)
    data = pr.load_measurements([anchored, second], latency="corrected")
    first = next(read_journal(anchored, kind="anchors"))["campaign_id"]
    assert data.latency == "corrected" and len(data.repeats) == 3
    for values in data.repeats.values():
        assert values[first] / values["b" * 16] == pytest.approx(1.25)


SERIAL = TimingProtocol(groups=4, runs_per_group=5, warmup_min_runs=2, warmup_min_s=0.0)


def _true_ms(models, anchors) -> dict[str, float]:
    """True latencies 8 % apart, in an order that puts fast and slow models in every segment of 4."""
    order = [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
    true_ms = {m.hash: 2.0 * 1.08 ** rank for m, rank in zip(models, order)}
    true_ms.update({a.hash: 2.4 + 1.2 * i for i, a in enumerate(anchors)})
    return true_ms


def _fake_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")])}


def test_serial_anchors_every_n_models_recover_the_true_ranks(tmp_path):
    models, anchors = sp.select("0:12"), choose_anchors(2)
    true_ms = _true_ms(models, anchors)
    levels, level_file = [1.0, 1.5, 0.7], tmp_path / "level"
    level_file.write_text("1.0")

    def on_event(event):  # the host's level moves after every 4th model
        if isinstance(event, ModelDone) and event.position % 4 == 0 and event.position < 12:
            level_file.write_text(str(levels[event.position // 4]))

    with LocalWorkerRunner(env=_fake_env(), timeout_s=60) as runner:
        config = CampaignConfig(devices=(get_device("cpu"),), protocol=SERIAL, out_dir=tmp_path / "c",
                                anchors=anchors, anchor_every=4)
        summary = run_campaign(models, config, runners=[runner], artifacts=level_models(tmp_path, true_ms, level_file),
                               on_event=on_event)
    assert (summary.measured, summary.failed) == (12, 0)
    runs = [AnchorsRecord.from_dict(r) for r in read_journal(tmp_path / "c", kind="anchors")]
    assert [(r.trigger, r.members, round(r.level, 1)) for r in runs] == [("start", 0, 1.0), ("every", 0, 1.5),
                                                                         ("every", 0, 0.7)]
    env = next(read_journal(tmp_path / "c", kind="environment"))
    assert env["anchor_every"] == 4 and env["schema"] == 2
    records = [MeasurementRecord.from_dict(r) for r in read_journal(tmp_path / "c", kind="measurement")]
    assert [r.set_id for r in records] == [run.set_id for run in runs for _ in range(4)]
    truth = [true_ms[r.model_hash] for r in records]
    assert spearman([r.latency_ms for r in records], truth) < 0.8
    assert spearman([r.latency_corrected_ms for r in records], truth) >= 0.97


class _Thermometer:
    """A device whose thermal zone reads hot while ``hot`` is set (a transport for ThermalGuard)."""

    kind = "adb"

    def __init__(self):
        self.hot = False

    def run(self, argv, timeout_s=None, **kw):
        from blox_lat.devices._transport import CommandResult

        out = f"T thermal_zone0 cpu {80000 if self.hot else 30000}\n"
        return CommandResult(argv=tuple(argv), exit_status=0, stdout=out, stderr="", duration_s=0.0)


def test_a_thermal_wait_is_followed_by_an_anchor_run(tmp_path):
    from blox_lat.harness import ThermalGuard
    from blox_lat.harness._events import AnchorsTimed, ThermalWaited

    models, anchors = sp.select("0:8"), choose_anchors(2)
    true_ms = _true_ms(models, anchors)
    level_file, device = tmp_path / "level", _Thermometer()
    level_file.write_text("1.6")  # hot and throttled until it has cooled down
    heard = []

    def cooled(seconds):  # the guard's wait: the device cools down, and its level changes
        device.hot = False
        level_file.write_text("1.0")

    def on_event(event):
        heard.append(event)
        if isinstance(event, ModelDone) and event.position == 3:
            device.hot = True

    inner = LocalWorkerRunner(env=_fake_env(), timeout_s=60)
    inner.transport = device
    runner = ThermalGuard(inner, max_c=45.0, timeout_s=60, poll_s=1.0, sleep=cooled)
    try:
        config = CampaignConfig(devices=(get_device("cpu"),), protocol=SERIAL, out_dir=tmp_path / "c",
                                anchors=anchors)
        summary = run_campaign(models, config, runners=[runner], artifacts=level_models(tmp_path, true_ms, level_file),
                               on_event=on_event)
    finally:
        runner.close()
    assert (summary.measured, summary.failed) == (8, 0)
    runs = [AnchorsRecord.from_dict(r) for r in read_journal(tmp_path / "c", kind="anchors")]
    assert [r.trigger for r in runs] == ["start", "thermal-wait"]
    assert runs[1].level == pytest.approx(1.0 / 1.6, rel=0.1)
    kinds = [type(e) for e in heard if isinstance(e, (ModelDone, ThermalWaited, AnchorsTimed))]
    assert kinds == [AnchorsTimed] + [ModelDone] * 3 + [ThermalWaited, AnchorsTimed] + [ModelDone] * 5
    records = [MeasurementRecord.from_dict(r) for r in read_journal(tmp_path / "c", kind="measurement")]
    assert [r.set_id for r in records] == [runs[0].set_id] * 3 + [runs[1].set_id] * 5
    truth = [true_ms[r.model_hash] for r in records]
    assert spearman([r.latency_corrected_ms for r in records], truth) >= 0.95

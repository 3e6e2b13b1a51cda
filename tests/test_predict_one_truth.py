"""``predict fit`` trains on the one truth of a journal (issue 22).

A model measured more than once (ok then noisy, failed then ok, ok then failed, two campaigns
recorded at different times, campaigns anchored on two references) is trained on the value of
its standing record (:func:`blox_lat.harness.stand`), raw or level-corrected on the device's
common reference: the number ``dataset build`` puts in ``bench/<device>`` for it, not a mean
over campaigns. Latencies that cannot stand are refused by the one reader, naming file:line.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from blox_lat import dataset as ds
from blox_lat import predict as pr
from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.harness import read_records, stand

PROFILE = {"name": "cpu", "transport": "local", "runtime": "onnxruntime", "format": "onnx", "batch": 1,
           "input_size": 32, "precision": "fp32", "options": {"threads": 1}}
PROTOCOL = {"version": 1, "groups": 4, "runs_per_group": 5, "warmup_min_runs": 2, "warmup_min_s": 0.0}
ANCHORS = (11, 22)  # model indices of the two anchor models
#: the first anchor run of each campaign: c2's host is 1.25 times as slow as c1's
REFERENCE = {"c1": [2.0, 4.0], "c2": [2.5, 5.0]}
#: the level of each campaign's sets, relative to its own reference
LEVEL = {"c1": {"c1-s1": 1.0, "c1-s2": 1.1}, "c2": {"c2-s1": 1.0, "c2-s2": 0.9}}


def _at(hour: int) -> str:
    return f"2026-03-01T{hour:02d}:00:00+00:00"


def _measurement(i: int, campaign: str, hour: int, latency: float | None, *, noisy: bool = False,
                 set_id: str | None = None) -> dict:
    """A measurement line: ok (``latency``) or failed (``latency`` None), timed in ``set_id``'s set."""
    ok = latency is not None
    record = {"schema": 2 if set_id else 1, "kind": "measurement", "model_hash": sp.space_table().hashes[i],
              "model_index": i, "device": "cpu", "profile": PROFILE, "protocol": PROTOCOL,
              "env_id": f"e-{campaign}", "campaign_id": campaign, "status": "ok" if ok else "failed",
              "reason": None if ok else "synthetic failure", "recorded_at": _at(hour),
              "attempts": 1, "artifact": {}, "attempt_log": [],
              "measurement": {"latency_ms": latency, "groups": 4, "runs_per_group": 5, "warmup_runs": 2,
                              "group_means_ms": [latency * f for f in (0.98, 1.0, 1.01, 1.03)],
                              "noisy": noisy, "flags": ["noisy"] if noisy else []} if ok else None}
    if set_id is not None and ok:
        level = LEVEL[campaign][set_id]
        record.update(level=level, latency_corrected_ms=latency / level, set_id=set_id)
    return record


def _anchors(campaign: str, set_id: str, hour: int) -> dict:
    level = LEVEL[campaign][set_id]
    hashes = sp.space_table().hashes
    reference = REFERENCE[campaign]
    spread = (1.02, 0.98)  # the anchors disagree a little: the level has a standard error
    return {"schema": 2, "kind": "anchors", "set_id": set_id, "attempt": 1, "device": "cpu", "campaign_id": campaign,
            "env_id": f"e-{campaign}",
            "anchors": [{"model_hash": hashes[a], "model_index": a, "latency_ms": r * level * s, "cv": 0.01}
                        for a, r, s in zip(ANCHORS, reference, spread)],
            "reference_ms": reference, "level": level, "members": 4, "recorded_at": _at(hour)}


def _environment(campaign: str, hour: int) -> dict:
    hashes = sp.space_table().hashes
    return {"schema": 2, "kind": "environment", "campaign_id": campaign, "recorded_at": _at(hour), "host": "synthetic",
            "os": "linux", "cpu": {"model": "x"}, "temperatures_c": None, "load_average": None,
            "memory_total_kb": None, "versions": {"python": "3.11"}, "device": "cpu", "device_facts": {},
            "unit": "cpu", "profile": PROFILE, "protocol": PROTOCOL,
            "anchors": [{"model_hash": hashes[a], "model_index": a} for a in ANCHORS], "env_id": f"e-{campaign}"}


def _write(folder: Path, lines: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


#: model -> what happens to it: (campaign, hour, latency or None for a failure, noisy), in journal order
STORY = {
    100: [("c1", 1, 3.0, False), ("c2", 5, 2.0, True)],   # ok, then noisy later: the ok one stands
    200: [("c1", 1, None, False), ("c2", 5, 4.0, False)],  # failed, then ok
    300: [("c1", 2, 5.0, False), ("c2", 6, None, False)],  # ok, then failed later: the ok one stands
    400: [("c1", 2, 6.0, False), ("c2", 6, 7.5, False)],   # ok twice: the later campaign's stands
    500: [("c1", 3, 8.0, False), ("c1", 4, 9.0, False)],   # re-measured in one campaign: the later stands
    600: [("c1", 9, 2.5, False), ("c2", 5, 3.5, False)],   # the earlier journal's record is the later one
    700: [("c1", 3, None, False)],                         # only failed: no training value, as in a release
    800: [("c2", 6, 1.5, True)],                            # only noisy: it stands
}
#: the standing record of each model (campaign, raw latency): what a release puts in bench/cpu
EXPECTED = {100: ("c1", 3.0), 200: ("c2", 4.0), 300: ("c1", 5.0), 400: ("c2", 7.5), 500: ("c1", 9.0),
            600: ("c1", 2.5), 800: ("c2", 1.5)}


def _set_of(campaign: str, hour: int) -> str:
    return f"{campaign}-s1" if hour in (1, 2, 3, 5) else f"{campaign}-s2"


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory) -> tuple[Path, Path]:
    """Two anchored campaigns of one device (c2 on a host 1.25 times as slow at its first
    anchor run), telling :data:`STORY`."""
    root = tmp_path_factory.mktemp("one-truth")
    folders = []
    for campaign, start in (("c1", 0), ("c2", 4)):
        lines = [_environment(campaign, start)]
        for set_id, hour in ((f"{campaign}-s1", start), (f"{campaign}-s2", start + 1)):
            lines.append(_anchors(campaign, set_id, hour))
        for model, story in STORY.items():
            for camp, hour, latency, noisy in story:
                if camp == campaign:
                    lines.append(_measurement(model, camp, hour, latency, noisy=noisy, set_id=_set_of(camp, hour)))
        folders.append(_write(root / campaign, lines))
    return folders[0], folders[1]


def _values(data: pr.TrainingSet) -> dict[int, float]:
    return dict(zip(data.indices.tolist(), data.latency_ms.tolist()))


def _standings(folders) -> dict[int, object]:
    standings = stand([r for f in folders for r in read_records(f)])
    return {s.record.model_index: s for s in standings.of("cpu").values() if s.ok}


@pytest.mark.parametrize("kind", ["raw", "corrected"])
def test_the_training_value_is_the_standing_records(campaigns, kind):
    data = pr.load_measurements(list(campaigns), latency=kind)
    standing = _standings(campaigns)
    assert data.latency == kind and sorted(standing) == sorted(EXPECTED) == data.indices.tolist()
    got = _values(data)
    for model, (campaign, raw) in EXPECTED.items():
        s = standing[model]
        assert (s.record.campaign_id, s.latency_ms) == (campaign, raw), model
        assert got[model] == pytest.approx(s.value(kind), rel=1e-12), model
        if kind == "raw":
            assert got[model] == raw, model  # not a mean over campaigns
    if kind == "corrected":  # c2's levels are relative to its own reference, 1.25 times c1's
        assert got[400] == pytest.approx(7.5 / (LEVEL["c2"]["c2-s2"] * 1.25))
        assert got[300] == pytest.approx(5.0 / LEVEL["c1"]["c1-s1"])


def test_repeats_keep_each_campaigns_value_on_the_common_reference(campaigns):
    raw = pr.load_measurements(list(campaigns), latency="raw")
    corrected = pr.load_measurements(list(campaigns), latency="corrected")
    assert raw.repeats[400] == {"c1": 6.0, "c2": 7.5} and raw.repeats[100] == {"c1": 3.0, "c2": 2.0}
    assert set(raw.repeats) == {100, 400, 600} and set(raw.campaigns) == {"c1", "c2"}
    assert corrected.repeats[400]["c1"] == pytest.approx(6.0 / LEVEL["c1"]["c1-s1"])
    assert corrected.repeats[400]["c2"] == pytest.approx(7.5 / (LEVEL["c2"]["c2-s2"] * 1.25))


def test_auto_takes_the_corrected_value_when_every_model_has_one(campaigns):
    auto = pr.load_measurements(list(campaigns))
    assert auto.latency == "corrected"
    assert _values(auto) == _values(pr.load_measurements(list(campaigns), latency="corrected"))


def test_the_training_value_is_the_releases(campaigns, tmp_path):
    """``dataset build`` from the same journals puts the same number in bench/cpu, and a fit
    from the release trains on what a fit from the journals does."""
    rel = ds.open(ds.build(list(campaigns), tmp_path / "rel", "1.0.0", static=False, jobs=1).path)
    bench = rel.to_pandas("bench/cpu")
    ok = bench[bench["status"] == "ok"]
    assert sorted(ok["model_index"]) == sorted(EXPECTED)
    for kind, column in (("raw", "latency_ms"), ("corrected", "latency_corrected_ms")):
        got = _values(pr.load_measurements(list(campaigns), latency=kind))
        release = dict(zip(ok["model_index"].tolist(), ok[column].tolist()))
        assert got == pytest.approx(release, rel=1e-12), kind
        from_release = _values(pr.load_measurements([tmp_path / "rel"], device="cpu", latency=kind))
        assert from_release == pytest.approx(got, rel=1e-12), kind


def test_journal_order_does_not_change_the_truth(campaigns):
    """The rule is the records' (ok first, then the latest recorded_at), not the sources' order."""
    forward = pr.load_measurements(list(campaigns), latency="corrected")
    backward = pr.load_measurements(list(reversed(campaigns)), latency="corrected")
    assert _values(forward) == pytest.approx(_values(backward), rel=1e-12)


def test_a_gzipped_campaign_reads_the_same(campaigns, tmp_path):
    packed = tmp_path / "packed"
    shutil.copytree(campaigns[1], packed)
    (packed / "journal.jsonl.gz").write_bytes(gzip.compress((packed / "journal.jsonl").read_bytes()))
    (packed / "journal.jsonl").unlink()
    plain = pr.load_measurements([campaigns[0], campaigns[1]], latency="raw")
    assert _values(pr.load_measurements([campaigns[0], packed], latency="raw")) == _values(plain)
    assert _values(pr.load_measurements([tmp_path, campaigns[0]], latency="raw")) == _values(plain)


@pytest.mark.parametrize("bad", [float("nan"), -1.5, 0.0], ids=["nan", "negative", "zero"])
def test_a_latency_that_cannot_stand_is_refused_with_file_and_line(campaigns, tmp_path, bad):
    folder = tmp_path / "bad"
    shutil.copytree(campaigns[0], folder)
    lines = (folder / "journal.jsonl").read_text().splitlines()
    number = next(n for n, t in enumerate(lines, start=1) if '"status": "ok"' in t)
    record = json.loads(lines[number - 1])
    record["measurement"]["latency_ms"] = bad
    lines[number - 1] = json.dumps(record)
    (folder / "journal.jsonl").write_text("".join(t + "\n" for t in lines))
    before = (folder / "journal.jsonl").read_bytes()
    result = CliRunner().invoke(cli, ["predict", "fit", str(folder), str(campaigns[1]), "--out",
                                      str(tmp_path / "p.json")])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blox-lat: error:") and "Traceback" not in result.stderr
    assert f"journal.jsonl:{number}: measurement.latency_ms is {bad!r}; must be a finite positive number" in err[0]
    assert not (tmp_path / "p.json").exists() and (folder / "journal.jsonl").read_bytes() == before
    with pytest.raises(pr.PredictError, match=rf"journal\.jsonl:{number}: measurement\.latency_ms"):
        pr.load_measurements([folder])


@pytest.mark.parametrize("bad", [float("nan"), -2.0, 0.0], ids=["nan", "negative", "zero"])
def test_a_release_latency_that_cannot_stand_is_refused(campaigns, tmp_path, monkeypatch, bad):
    """A release's bench/cpu NaN or non-positive ok latency stays refused, naming the row."""
    import pyarrow as pa

    rel = ds.open(ds.build(list(campaigns), tmp_path / "rel", "1.0.0", static=False, jobs=1).path)
    section = rel.section("bench/cpu")
    table = section.table
    at = table.column_names.index("latency_ms")
    values = table.column("latency_ms").to_pylist()
    row = table.column("status").to_pylist().index("ok")
    values[row] = bad
    edited = table.set_column(at, table.schema.field(at), pa.array(values, table.schema.field(at).type))
    monkeypatch.setattr(type(section), "table", property(lambda self: edited))
    with pytest.raises(pr.PredictError, match=rf"bench/cpu row {row}: latency_ms is {bad!r}; must be a finite positive"):
        pr.load_measurements([tmp_path / "rel"], device="cpu")

"""One journal, one answer: the release, the predictor's training set, the report and compare
show the same number for every model and latency kind.

Hypothesis writes journals as campaigns do (ok, noisy and failed records, models measured
again in the same campaign and in others, campaigns anchored or not, on hosts at other levels)
and every consumer reads them: ``dataset build`` (the release's ``bench/cpu``), ``predict``'s
training set, ``report``'s sources (of the release and of each campaign) and ``compare``'s
inputs. Each must equal what the harness's one rule (:func:`blox_lat.harness.stand`) says.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blox_lat import dataset as ds
from blox_lat import space as sp
from blox_lat.harness import read_records, stand
from blox_lat.predict import load_measurements
from blox_lat.report import compare, load_source

MODELS = (3, 17, 250, 4096, 20000, 51234)
ANCHORS = (39770, 66736, 44717)
PROFILE = {"name": "cpu", "transport": "local", "runtime": "onnxruntime", "format": "onnx", "batch": 1,
           "input_size": 32, "precision": "fp32", "options": {"threads": 1}}
PROTOCOL = {"version": 1, "groups": 4, "runs_per_group": 10, "warmup_min_runs": 10, "warmup_min_s": 0.5}
REL = 1e-9


def _measurement(latency: float, spread: float) -> dict:
    """A measurement whose group means scatter by ``spread`` around ``latency`` (samples agree)."""
    means = [latency * (1 + spread * d) for d in (-1.0, -0.3, 0.3, 1.0)]
    samples = [m for m in means for _ in range(10)]
    from blox_lat.harness import Measurement

    m = Measurement(tuple(samples), 10, 10, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00").to_dict()
    return m


record = st.fixed_dictionaries({
    "model": st.sampled_from(MODELS),
    "status": st.sampled_from(["ok", "ok", "noisy", "failed"]),
    "minute": st.integers(0, 50),
})
campaign = st.fixed_dictionaries({
    "anchored": st.booleans(),
    "host_level": st.sampled_from([0.8, 1.0, 1.25]),
    "records": st.lists(record, min_size=1, max_size=8),
})


def _write(folder: Path, name: str, spec: dict, start_hour: int) -> None:
    """One campaign's journal in ``folder``."""
    hashes = sp.space_table().hashes
    env_id, set_id = f"env-{name}", f"set-{name}"
    level = spec["host_level"]
    stamp = f"2026-01-01T{start_hour:02d}:00:00+00:00"
    lines = [{"schema": 2, "kind": "environment", "campaign_id": name, "recorded_at": stamp, "host": "h",
              "cpu": {"model": "x"}, "versions": {}, "device": "cpu", "device_facts": {}, "profile": PROFILE,
              "protocol": PROTOCOL, "env_id": env_id}]
    if spec["anchored"]:
        reference = [2.0 * level, 3.0 * level, 4.5 * level]  # the campaign's first set is its reference
        lines.append({"schema": 2, "kind": "anchors", "set_id": set_id, "attempt": 1, "device": "cpu",
                      "campaign_id": name, "env_id": env_id, "recorded_at": stamp, "members": 3, "level": 1.0,
                      "reference_ms": reference,
                      "anchors": [{"model_hash": hashes[i], "model_index": i, "latency_ms": r, "cv": 0.01}
                                  for i, r in zip(ANCHORS, reference)]})
    for n, rec in enumerate(spec["records"]):
        index = rec["model"]
        base = {"schema": 2 if spec["anchored"] else 1, "kind": "measurement", "model_hash": hashes[index],
                "model_index": index, "device": "cpu", "profile": PROFILE, "protocol": PROTOCOL, "env_id": env_id,
                "campaign_id": name, "recorded_at": f"2026-01-01T{start_hour:02d}:{rec['minute']:02d}:{n:02d}+00:00",
                "attempts": 1, "artifact": {}, "attempt_log": []}
        if rec["status"] == "failed":
            lines.append({**base, "status": "failed", "reason": "synthetic", "measurement": None})
            continue
        latency = (1.0 + (index % 7) * 0.5) * level * (1 + 0.01 * n)
        m = _measurement(latency, 0.2 if rec["status"] == "noisy" else 0.005)
        line = {**base, "status": "ok", "reason": None, "measurement": m}
        if spec["anchored"]:
            line.update(level=1.0, latency_corrected_ms=m["latency_ms"], set_id=set_id)
        lines.append(line)
    (folder / name).mkdir(parents=True)
    (folder / name / "journal.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=REL)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaigns=st.lists(campaign, min_size=1, max_size=3))
def test_every_consumer_shows_the_standing_value(campaigns):
    root = Path(tempfile.mkdtemp(prefix="blox-lat-truth-"))
    try:
        _check(root, campaigns)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check(root: Path, campaigns: list[dict]) -> None:
    names = [f"c{k}" for k in range(len(campaigns))]
    for k, (name, spec) in enumerate(zip(names, campaigns)):
        _write(root / "runs", name, spec, start_hour=k + 1)
    folders = [root / "runs" / n for n in names]
    standings = stand([r for f in folders for r in read_records(f)])
    standing = {s.record.model_index: s for s in standings.of("cpu").values()}
    ok = {i: s for i, s in standing.items() if s.ok}
    kinds = ["raw"] + (["corrected"] if ok and all(s.corrected_ms is not None for s in ok.values()) else [])

    release = ds.build(folders, root / "rel", "1.0.0", static=False)
    table = ds.open(release.path).section("bench/cpu").table.to_pydict()
    rows = {i: k for k, i in enumerate(table["model_index"])}
    assert set(rows) == set(standing)
    for i, s in standing.items():
        assert table["status"][rows[i]] == s.record.status
        assert _close(table["latency_ms"][rows[i]], s.latency_ms)
        assert _close(table["latency_corrected_ms"][rows[i]], s.corrected_ms)
        assert _close(table["latency_se_ms"][rows[i]], s.se_ms)
        assert _close(table["latency_corrected_se_ms"][rows[i]], s.corrected_se_ms)
    if not ok:
        return
    released = load_source(release.path).devices["cpu"]
    for kind in kinds:
        training = load_measurements(folders, latency=kind)
        assert training.latency == kind
        assert dict(zip(training.indices.tolist(), training.latency_ms.tolist())) == pytest.approx(
            {i: s.value(kind) for i, s in ok.items()}, rel=REL)
        from_release = dict(zip(released.index.tolist(), released.latency(kind).tolist()))
        assert from_release == pytest.approx({i: s.value(kind) for i, s in ok.items()}, rel=REL)
    for folder in folders:  # a report of one campaign: that campaign's standing values
        alone = {s.record.model_index: s for s in stand(read_records(folder)).of("cpu").values() if s.ok}
        if not alone:
            continue
        data = load_source(folder).devices["cpu"]
        assert dict(zip(data.index.tolist(), data.latency("raw").tolist())) == pytest.approx(
            {i: s.latency_ms for i, s in alone.items()}, rel=REL)
    if len(folders) >= 2:
        _check_compare(folders[0], folders[1], standings, names[:2])


def _check_compare(a: Path, b: Path, standings, names: list[str]) -> None:
    """compare's inputs are each campaign's standing values, on the common reference."""
    per = standings.per_campaign["cpu"]
    side = {n: {s.record.model_index: s for h, by in per.items() for c, s in by.items() if c == n and s.ok}
            for n in names}
    common = sorted(set(side[names[0]]) & set(side[names[1]]))
    if not common:
        return
    for kind in ("raw", "corrected"):
        if kind == "corrected" and not all(side[n][i].corrected_ms is not None for n in names for i in common):
            continue
        c = compare(a, b, latency=kind, min_effect=0.0)
        assert c.latency == kind and c.index.tolist() == common
        assert np.allclose(c.latency_a, [side[names[0]][i].value(kind) for i in common], rtol=REL)
        assert np.allclose(c.latency_b, [side[names[1]][i].value(kind) for i in common], rtol=REL)


def test_a_gzipped_journal_reads_the_same_everywhere(tmp_path):
    """``journal.jsonl.gz`` in a campaign folder: dataset build, predict, report and compare read
    it as they read the plain file."""
    import gzip

    spec = {"anchored": True, "host_level": 1.0,
            "records": [{"model": m, "status": "ok", "minute": k} for k, m in enumerate(MODELS)]}
    _write(tmp_path / "plain", "c0", spec, start_hour=1)
    packed = tmp_path / "packed" / "c0"
    packed.mkdir(parents=True)
    (packed / "journal.jsonl.gz").write_bytes(gzip.compress((tmp_path / "plain" / "c0" / "journal.jsonl").read_bytes()))
    plain = tmp_path / "plain" / "c0"
    tables = [ds.open(ds.build([f], tmp_path / f"rel-{f.parent.name}", "1.0.0", static=False).path)
              .section("bench/cpu").table for f in (plain, packed)]
    assert tables[0].equals(tables[1]) and tables[0].num_rows == len(MODELS)
    assert load_measurements([packed]).latency_ms.tolist() == load_measurements([plain]).latency_ms.tolist()
    assert load_source(packed).devices["cpu"].latency("raw").tolist() == \
        load_source(plain).devices["cpu"].latency("raw").tolist()
    assert compare(plain, packed).counts()["not significant"] == len(MODELS)


def test_a_report_of_several_campaigns_puts_them_on_one_reference(tmp_path):
    """Two campaigns of one device on hosts 25 % apart: the report's corrected values of each
    are that campaign's standing values on the common reference, the numbers compare uses."""
    from blox_lat.report import load_sources

    records = [{"model": m, "status": "ok", "minute": k} for k, m in enumerate(MODELS)]
    _write(tmp_path, "c0", {"anchored": True, "host_level": 1.0, "records": records}, start_hour=1)
    _write(tmp_path, "c1", {"anchored": True, "host_level": 1.25, "records": records}, start_hour=2)
    folders = [tmp_path / "c0", tmp_path / "c1"]
    per = stand([r for f in folders for r in read_records(f)]).per_campaign["cpu"]
    shown = load_sources(folders)
    for name, source in zip(("c0", "c1"), shown):
        data = source.devices["cpu"]
        want = {s.record.model_index: s.corrected_ms for by in per.values() for c, s in by.items() if c == name}
        assert dict(zip(data.index.tolist(), data.latency("corrected").tolist())) == pytest.approx(want, rel=REL)
    c = compare(folders[0], folders[1], latency="corrected")
    assert c.latency_b.tolist() == pytest.approx(shown[1].devices["cpu"].latency("corrected")[
        np.searchsorted(shown[1].devices["cpu"].index, c.index)].tolist(), rel=REL)
    assert c.summary()["level_shift"] == pytest.approx(1.0, abs=0.02)  # the host's 25 % is the level's

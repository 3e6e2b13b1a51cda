"""Dataset releases: build from a real CPU campaign + synthetic training records, query, verify,
diff, determinism, immutability, the Blox reference layout round trip, and every bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import blox_lat.dataset as ds
from blox_lat import space as sp
from blox_lat.dataset import _synthetic as syn
from blox_lat.dataset._bloxfmt import read_blox_file, reference_header, write_blox_file
from blox_lat.harness import JournalError, read_journal

GOLDEN = Path(__file__).parent / "golden" / "dataset"
TEACHER = "c3bc16e69893c8ea08f1e89e61f4caa5"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A real short CPU campaign (blox-lat measure) plus synthetic training/distill records."""
    root = tmp_path_factory.mktemp("inputs")
    cmd = [sys.executable, "-m", "blox_lat", "measure", "0:3", "--device", "cpu", "--runs", "20",
           "--warmup-runs", "2", "--warmup-s", "0.05", "--out", str(root / "cpu"), "--store", str(root / "store")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    syn.write_training_records(root / "train", range(12), seed=0, epochs=6, rng_seed=1)
    syn.write_training_records(root / "train", range(4), seed=1, epochs=6, rng_seed=2)
    syn.write_training_records(root / "train", [0, 5], seed=0, epochs=4, setting="finetune", teacher=TEACHER, rng_seed=3)
    syn.write_distill_records(root / "train", TEACHER, 10, blocks=[0, 1], rng_seed=4)
    syn.write_journal(root / "gpu", "gpu", [0, 1, 2, 7], fail=(7,), samples=30)
    return root


@pytest.fixture(scope="module")
def release(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "1.0.0"
    ds.build([inputs / "cpu", inputs / "train", inputs / "gpu"], out, "1.0.0", blox_format=True)
    return out


def _journal(inputs, device):
    return [r for r in read_journal(inputs / device) if r["kind"] == "measurement"]


def test_sections_and_manifest(release):
    m = json.loads((release / "dataset.json").read_text())
    assert m["dataset_version"] == "1.0.0" and m["schema_version"] == ds.RELEASE_SCHEMA
    assert set(m["sections"]) == {
        "static", "bench/cpu", "bench/gpu", "bench-raw/cpu", "bench-raw/gpu", "measure-env/cpu", "measure-env/gpu",
        "base/0", "base/1", "ext/0", "ext/1", "env/0", "env/1", f"finetune/{TEACHER}/4", f"distill/{TEACHER}/10"}
    assert m["sections"]["base/0"]["rows"] == 12 and m["sections"]["static"]["rows"] == 91125
    cols = {c["name"]: c for c in m["sections"]["bench/cpu"]["columns"]}
    assert cols["latency_ms"]["unit"] == "ms" and cols["cv"]["unit"] == "ratio"
    prof = m["sections"]["bench/cpu"]["metadata"]["profile"]
    assert prof["runtime"] == "onnxruntime" and prof["precision"] == "fp32" and prof["batch"] == 1
    assert m["provenance"]["builder"].startswith("blox-lat ")
    assert any(i["kind"] == "measurements" for i in m["provenance"]["inputs"])
    assert {b["file"] for b in m["blox_files"]} >= {"blox/blox-info.csv", "blox/blox-base-0.csv", "blox/blox-bench-cpu.csv"}
    assert (release / "dataset.json").stat().st_mode & 0o222 == 0  # files are read-only (releases are immutable)


def test_latency_matches_real_journal(inputs, release):
    rel = ds.open(release)
    for rec in _journal(inputs, "cpu"):
        assert rel.latency(rec["model_index"], "cpu") == rec["measurement"]["latency_ms"]
        assert rel.latency(rec["model_hash"], "cpu") == rec["measurement"]["latency_ms"]
    raw = rel.to_pandas("bench-raw/cpu")
    first = _journal(inputs, "cpu")[0]
    assert list(raw.loc[raw.model_index == first["model_index"], "samples_ms"].iloc[0]) == first["measurement"]["samples_ms"]
    assert rel.latency(50, "cpu") is None  # not measured -> None, never -1
    env = rel.to_pandas("measure-env/cpu")
    assert len(env) == 1 and json.loads(env.versions[0])["torch"]


def test_failed_model_is_null_with_reason(release):
    rel = ds.open(release)
    assert rel.latency(7, "gpu") is None
    row = rel.full_info(7)["sections"]["bench/gpu"]
    assert row["status"] == "failed" and row["reason"] == "synthetic failure" and row["latency_ms"] is None
    df = rel.to_pandas("bench/gpu")
    assert df.latency_ms.isna().sum() == 1 and not (df.latency_ms == -1).any()


def test_training_queries(inputs, release):
    rel = ds.open(release)
    rec = json.loads(next((inputs / "train" / "records" / "normal").glob(f"{sp.from_index(3).hash}-0.json")).read_text())
    val = [round(v, 3) for v in rec["metrics"]["val_top1"]]
    assert rel.val_acc(3) == max(val)
    assert rel.val_acc(3, epoch=2) == max(val[:2])
    assert rel.val_acc(3, epoch=4, best=False) == val[3]
    assert rel.test_acc(3) == round(rec["test"]["top1"], 3)
    assert rel.train_time(3) == round(rec["train_time_s"])
    assert rel.val_acc(3, seed=1) != rel.val_acc(3, seed=0)
    assert rel.val_acc(20) is None  # not trained
    name = sp.from_index(3)
    for alias in (name.hash, name.vector_list, name.name, name):
        assert rel.val_acc(alias) == max(val)
    info = rel.full_info(name.name, seed=0)
    assert info["sections"]["ext/0"]["train_loss"] == [round(v, 6) for v in rec["metrics"]["train_loss"]]
    assert info["sections"]["env/0"]["torch"] == rec["environment"]["torch"]
    with pytest.raises(ds.DatasetError):
        rel.val_acc(3, epoch=7)
    # seed lookups are cached: a seed that equals a cached one but names no section still fails
    assert rel.val_acc(3, seed="1") == rel.val_acc(3, seed=1)
    for other in (True, 1.0, [1]):
        with pytest.raises(ds.DatasetError, match="no section|seeds"):
            rel.val_acc(3, seed=other)


def test_static_matches_space(release):
    rel = ds.open(release)
    for i in (0, 1234, 91124):
        assert rel.params(i) == sp.params(sp.from_index(i))
        assert rel.flops(i) == sp.flops(sp.from_index(i))
    df = rel.to_pandas("static")
    flat = [d for stage in sp.from_index(91124).vector_list for node in stage for d in node]
    assert list(df.arch_vec.iloc[91124]) == flat


def test_distill_and_finetune(inputs, release):
    rel = ds.open(release)
    df = rel.to_pandas(f"distill/{TEACHER}/10")
    blocks = [sp.from_index(int(i)).blocks for i in df.model_index]
    assert len(df) == 8 and all(set(b) <= {0, 1} for b in blocks)  # 2 blocks per stage -> 2^3 models
    recs = {(r["stage"], r["block_id"]): r for r in
            (json.loads(p.read_text()) for p in (inputs / "train" / "records").glob("distill-*/*.json"))}
    row = df.iloc[3]
    b = sp.from_index(int(row.model_index)).blocks
    assert row.loss_sum == pytest.approx(sum(recs[(s, b[s])]["distill_loss"] for s in range(3)), abs=1e-5)
    assert row.delta_sum == pytest.approx(sum(recs[(s, b[s])]["val_acc_delta"] for s in range(3)), abs=2e-3)
    ft = rel.to_pandas(f"finetune/{TEACHER}/4")
    assert sorted(ft.model_index) == [0, 5] and len(ft.val_top1.iloc[0]) == 4


def test_deterministic_and_immutable(inputs, release, tmp_path):
    again = tmp_path / "again"
    ds.build([inputs / "cpu", inputs / "train", inputs / "gpu"], again, "1.0.0", blox_format=True)
    files = sorted(p.relative_to(release) for p in release.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (release / rel).read_bytes() == (again / rel).read_bytes(), rel
    before = (again / "dataset.json").read_bytes()
    with pytest.raises(ds.ReleaseExistsError):
        ds.build([inputs / "gpu"], again, "1.0.1")
    assert (again / "dataset.json").read_bytes() == before


def test_parallel_parsing_gives_identical_release(inputs, tmp_path, monkeypatch):
    from blox_lat.dataset import _build

    serial = ds.build([inputs / "train"], tmp_path / "serial", "1.0.0", static=False, jobs=1)
    monkeypatch.setattr(_build, "PARALLEL_MIN_FILES", 1)
    parallel = ds.build([inputs / "train"], tmp_path / "parallel", "1.0.0", static=False, jobs=2)
    for p in sorted(serial.path.rglob("*.parquet")) + [serial.path / "dataset.json"]:
        assert p.read_bytes() == (parallel.path / p.relative_to(serial.path)).read_bytes(), p


def _odd_training_records(root):
    """Records the column reader must hand back to add_record, next to plain ones."""
    paths = syn.write_training_records(root, [20, 21, 22, 23, 24, 25], seed=0, epochs=6, rng_seed=7)
    recs = [json.loads(p.read_text()) for p in paths]
    recs[0]["metrics"]["val_top1"] = [int(v) for v in recs[0]["metrics"]["val_top1"]]  # ints: plain all the same
    del recs[1]["metrics"]["train_loss"]  # a null cell
    recs[2]["train_time_s"] = "3000.4"  # float() takes it
    recs[3]["environment"] = None
    recs[4]["metrics"]["lr"] = [0.1, 0.01]  # an extra list of another length
    recs[5]["test"] = {"top1": 61.23456789, "top5": None}
    for p, rec in zip(paths, recs):
        p.write_text(json.dumps(rec, indent=1))
    shutil.copy(paths[0], paths[0].with_name("copy-" + paths[0].name))  # an identical duplicate


def _same_release(a, b):
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _records_only(monkeypatch) -> None:
    """Read every training record and journal measurement as a record (add_record), none as columns."""
    from blox_lat.dataset import _readers

    monkeypatch.setattr(_readers, "_plain_normal", lambda record, matrix: None)
    monkeypatch.setattr(_readers, "_to_columns", lambda part, records, *cols: _readers.keep_as_records(part, records))


def test_column_reader_gives_identical_release(inputs, tmp_path, monkeypatch):
    """Plain records and journals are read as columns; every record through add_record gives the same bytes."""
    from blox_lat.dataset import _build

    _odd_training_records(tmp_path / "odd")
    # a bad latency is refused everywhere, superseded or not (tests/test_dataset_one_truth.py)
    c1 = syn.write_journal(tmp_path / "c1" / "gpu", "gpu", [0, 1, 2, 7, 9], samples=30, rng_seed=5, campaign="c1")
    c2 = syn.write_journal(tmp_path / "c2" / "gpu", "gpu", [1, 3, 4], samples=20, rng_seed=6, campaign="c2")
    lines = c2.read_text().splitlines()
    rec = json.loads(lines[3])
    rec["measurement"]["flags"] = [1]  # Arrow refuses it for a string list: the whole journal stays as records
    rec["measurement"]["noisy"] = True
    c2.write_text("\n".join([*lines, json.dumps(rec)]) + "\n")
    sources = [inputs / "train", tmp_path / "odd", inputs / "cpu", inputs / "gpu", c1.parent, c2.parent]
    with monkeypatch.context() as m:
        _records_only(m)
        per_record = ds.build(sources, tmp_path / "per-record", "1.0.0", static=False, jobs=1, blox_format=True)
    serial = ds.build(sources, tmp_path / "serial", "1.0.0", static=False, jobs=1, blox_format=True)
    monkeypatch.setattr(_build, "PARALLEL_MIN_FILES", 1)
    parallel = ds.build(sources, tmp_path / "parallel", "1.0.0", static=False, jobs=2, blox_format=True)
    assert per_record.sections["base/0"] == 12 + 6 and per_record.sections["bench/gpu"] == 7
    _same_release(per_record.path, serial.path)
    _same_release(per_record.path, parallel.path)


@pytest.mark.parametrize("columns, jobs", [(False, 1), (True, 1), (True, 2)])
def test_column_reader_same_errors(tmp_path, monkeypatch, columns, jobs):
    from blox_lat.dataset import _build

    if not columns:
        _records_only(monkeypatch)
    if jobs > 1:  # every input through worker processes
        monkeypatch.setattr(_build, "PARALLEL_MIN_FILES", 1)
        monkeypatch.setattr(_build, "PARALLEL_MIN_JOURNAL_BYTES", 0)
    j = syn.write_journal(tmp_path / "j", "cpu", [1, 2, 3])
    lines = j.read_text().splitlines()
    j.write_text("\n".join([lines[0], lines[1][:40], *lines[2:]]) + "\n")
    with pytest.raises(JournalError, match=r"journal.jsonl:2: damaged journal line"):
        ds.build([tmp_path / "j"], tmp_path / "r", "1.0.0", static=False, jobs=jobs)
    rec = json.loads(lines[2])
    j.write_text("\n".join([lines[0], lines[1], json.dumps({**rec, "model_hash": "nope"})]) + "\n")
    with pytest.raises(ds.InputError, match=r"^j/journal.jsonl: 'nope' is not a Blox model hash$"):
        ds.build([tmp_path / "j"], tmp_path / "r", "1.0.0", static=False, jobs=jobs)
    syn.write_training_records(tmp_path / "a", [3, 4], epochs=5, rng_seed=1)
    syn.write_training_records(tmp_path / "b", [3], epochs=5, rng_seed=2)
    with pytest.raises(ds.DuplicateKeyError) as err:
        ds.build([tmp_path / "a", tmp_path / "b"], tmp_path / "r", "1.0.0", static=False, jobs=jobs)
    assert str(err.value).startswith("model #3 appears twice in base/0 with different test_top1, train_time_s, val_top1 (")
    syn.write_training_records(tmp_path / "c", [5], epochs=7, rng_seed=1)
    with pytest.raises(ds.InputError, match=r"base/0 mixes epoch counts \(5 epochs in a/records/normal/\S+ \(val_top1\); "
                                            r"7 epochs in c/records/normal/\S+ \(val_top1\)\)"):
        ds.build([tmp_path / "a", tmp_path / "c"], tmp_path / "r", "1.0.0", static=False, jobs=jobs)
    assert not (tmp_path / "r").exists()


def test_verify_detects_tampering(release, tmp_path):
    assert ds.verify(release).ok
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    target = copy / "sections" / "base" / "0.parquet"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = ds.verify(copy)
    assert not report.ok and report.problems == [("sections/base/0.parquet", "sha256 mismatch")]


def test_diff(inputs, release, tmp_path):
    extra = tmp_path / "extra"
    syn.write_training_records(extra, range(12, 15), seed=0, epochs=6, rng_seed=9)
    syn.write_journal(tmp_path / "gpu2", "gpu", [0, 1, 2, 7], samples=30, rng_seed=5, campaign="c1")
    b = tmp_path / "1.1.0"
    ds.build([inputs / "cpu", inputs / "train", extra, tmp_path / "gpu2", inputs / "gpu"], b, "1.1.0")
    d = ds.diff(release, b)
    assert not d.identical and d.added == () and "bench-raw/cpu" not in d.changed
    assert d.changed["base/0"].rows_added == 3 and d.changed["base/0"].rows_removed == 0
    assert d.changed["base/0"].rows_changed == 0
    assert d.changed["bench/gpu"].rows_changed == 4  # later campaign wins, 7 now measured
    assert "static" in d.unchanged
    assert ds.diff(release, release).identical
    c = tmp_path / "1.2.0"
    ds.build([inputs / "gpu"], c, "1.2.0", static=False)
    d2 = ds.diff(release, c)
    assert "static" in d2.removed and "base/0" in d2.removed and d2.added == ()


def test_duplicate_measurements_rule(tmp_path):
    h = sp.from_index(4).hash
    j = tmp_path / "camp"
    syn.write_journal(j, "cpu", [4], rng_seed=1, campaign="a")
    lines = (j / "journal.jsonl").read_text().splitlines()
    ok = json.loads(lines[1])
    later_fail = {**ok, "status": "failed", "reason": "crash", "measurement": None, "recorded_at": "2026-02-01T00:00:00+00:00"}
    noisy = {**ok, "recorded_at": "2026-03-01T00:00:00+00:00",
             "measurement": {**ok["measurement"], "latency_ms": 99.0, "noisy": True}}
    newer = {**ok, "recorded_at": "2026-01-15T00:00:00+00:00", "measurement": {**ok["measurement"], "latency_ms": 5.0}}
    with open(j / "journal.jsonl", "a") as fh:
        for rec in (later_fail, noisy, newer):
            fh.write(json.dumps(rec) + "\n")
        fh.write('{"schema": 1, "kind": "measurement", "model_ha')  # torn final line: ignored
    rel = ds.open(ds.build([j], tmp_path / "r", "0.1.0", static=False).path)
    assert rel.latency(h, "cpu") == 5.0  # clean ok beats noisy and failed; then the latest wins
    assert rel.full_info(4)["sections"]["bench/cpu"]["records"] == 4


# -- Blox reference layout ---------------------------------------------------------------------


def _reference_parse(path):
    """What the reference loader does: header within 1024 bytes, YAML, csv rows."""
    import yaml

    raw = path.read_bytes()
    head = raw[:1024]
    assert head.startswith(b"---\n")
    end = head.find(b"---\n", 3)
    assert end != -1
    hdr = yaml.safe_load(head[:end].decode())
    rows = list(csv.reader(io.StringIO(raw[end + 4:].decode(), newline="")))
    return hdr, rows


def test_blox_format_is_reference_readable(release):
    hdr, rows = _reference_parse(release / "blox" / "blox-base-0.csv")
    assert list(hdr) == ["version", "search_space", "dataset_type", "columns", "seed", "epochs", "dataset", "part", "format"]
    assert hdr["columns"] == ["model_hash", "val_top1", "test_top1", "train_time_s"]
    assert hdr["search_space"]["ops"] == ["conv", "mbconv", "bconv"] and hdr["format"] == "csv"
    assert len(rows) == 12 and rows[0][1].startswith("[") and int(rows[0][3]) > 0
    hdr, rows = _reference_parse(release / "blox" / "blox-ext-0.csv")
    assert hdr["columns"] == ["model_hash", "train_top1", "train_loss", "train_top5", "val_loss", "val_top5", "test_loss", "test_top5"]
    hdr, rows = _reference_parse(release / "blox" / "blox-info.csv")
    assert hdr["columns"] == ["model_hash", "params", "flops", "arch_vec"] and len(rows) == 91125
    assert json.loads(rows[0][3]) == sp.from_index(0).vector_list
    hdr, rows = _reference_parse(release / "blox" / "blox-bench-gpu.csv")
    assert hdr["device"] == "gpu" and len(rows) == 3  # the failed model is left out


def test_blox_round_trip(release, tmp_path):
    back = ds.build([release / "blox"], tmp_path / "back", "1.0.0")
    a, b = ds.open(release), ds.open(back.path)
    for name in ("base/0", "ext/0", "env/0", "base/1", "ext/1", "env/1", "static"):
        da, db = a.to_pandas(name), b.to_pandas(name)
        assert da.columns.tolist() == db.columns.tolist()
        for col in da.columns:
            for x, y in zip(da[col], db[col]):
                assert np.array_equal(np.asarray(x), np.asarray(y)), (name, col)
    for i in (0, 1, 2):
        assert b.latency(i, "cpu") == a.latency(i, "cpu")
    d = ds.diff(release, back.path)
    assert {"base/0", "ext/0", "env/0", "static"} <= set(d.unchanged)


def test_reads_reference_written_header(tmp_path):
    """A header as the reference writes it (PyYAML block style, anchors for the shared shape)."""
    import yaml

    shape = [[[3], [3, 2, 2, 2]]] * 3
    hdr = {"version": 1, "search_space": {"shape": shape, "nodes": 2, "stages": 3, "ops": ["conv", "mbconv", "bconv"]},
           "dataset_type": "benchmarking", "columns": ["model_hash", "latency"], "device": "desktop_gpu", "format": "csv"}
    text = yaml.dump(hdr, explicit_start=True, sort_keys=False) + "---\n"
    assert "&id001" in text  # the reference's headers carry YAML anchors
    body = f"{sp.from_index(0).hash},0.012\r\n{sp.from_index(1).hash},0.013\r\n"
    (tmp_path / "blox-bench-desktop_gpu.csv").write_text(text + body)
    header, rows = read_blox_file(tmp_path / "blox-bench-desktop_gpu.csv")
    assert header["device"] == "desktop_gpu" and rows[1]["latency"] == 0.013
    rel = ds.open(ds.build([tmp_path], tmp_path / "r", "1.0.0", static=False).path)
    assert rel.latency(1, "desktop_gpu") == 0.013


def test_pickle_only_when_allowed(tmp_path):
    header = reference_header("benchmarking", ["model_hash", "latency"], device="dsp")
    lines = ["---"] + [f"{k}: {json.dumps(v)}" for k, v in {**header, "format": "pickle"}.items()] + ["---", ""]
    (tmp_path / "blox-bench-dsp.pickle").write_bytes("\n".join(lines).encode() + pickle.dumps([[sp.from_index(2).hash, 1.5]]))
    with pytest.raises(ds.PickleRefusedError, match="allow-pickle"):
        ds.build([tmp_path], tmp_path / "r", "1.0.0", static=False)
    assert not (tmp_path / "r").exists()
    rel = ds.open(ds.build([tmp_path], tmp_path / "r", "1.0.0", static=False, allow_pickle=True).path)
    assert rel.latency(2) == 1.5


# -- golden files --------------------------------------------------------------------------------


def test_golden_release_schema_1_still_loads():
    rel = ds.open(GOLDEN / "release-1.0.0")
    assert rel.version == "1.0.0" and rel.schema_version == 1
    assert rel.latency(0, "cpu") == pytest.approx(2.0579493749999997)
    assert rel.val_acc(1) == 67.543 and rel.test_acc(1) == 66.215
    assert ds.verify(GOLDEN / "release-1.0.0").ok


def test_golden_journal_is_a_real_campaign():
    recs = list(read_journal(GOLDEN / "cpu-campaign.jsonl"))
    assert [r["kind"] for r in recs] == ["environment", "measurement", "measurement", "measurement"]


# -- bad input -----------------------------------------------------------------------------------


def _copy(release, tmp_path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    for p in copy.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    return copy


def _edit_manifest(path, fn):
    m = json.loads((path / "dataset.json").read_text())
    fn(m)
    (path / "dataset.json").write_text(json.dumps(m))


def test_corrupt_parquet_same_size(release, tmp_path):
    copy = _copy(release, tmp_path)
    target = copy / "sections" / "bench" / "cpu.parquet"
    target.write_bytes(b"\0" * target.stat().st_size)
    with pytest.raises(ds.CorruptSectionError, match="not readable Parquet"):
        ds.open(copy).latency(0, "cpu")
    assert not ds.verify(copy).ok


def test_truncated_section_and_missing_section(release, tmp_path):
    copy = _copy(release, tmp_path)
    target = copy / "sections" / "base" / "0.parquet"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(ds.ChecksumError, match="bytes"):
        ds.open(copy).val_acc(0)
    (copy / "sections" / "ext" / "0.parquet").unlink()
    with pytest.raises(ds.SectionMissingError):
        ds.open(copy).to_pandas("ext/0")
    assert ("sections/ext/0.parquet", "missing") in ds.verify(copy).problems


def test_other_search_space_and_schema(release, tmp_path):
    copy = _copy(release, tmp_path)
    _edit_manifest(copy, lambda m: m["search_space"].update(ops=["conv", "zero"]))
    with pytest.raises(ds.SearchSpaceMismatchError):
        ds.open(copy)
    _edit_manifest(copy, lambda m: m.update(search_space=json.loads((release / "dataset.json").read_text())["search_space"],
                                            schema_version=99))
    with pytest.raises(ds.SchemaVersionError, match="upgrade"):
        ds.open(copy)
    with pytest.raises(ds.ReleaseNotFoundError):
        ds.open(tmp_path / "nowhere")
    bad = tmp_path / "blox-info.csv"
    bad.write_text("---\nversion: 1\nsearch_space: {\"ops\": [\"conv\"], \"stages\": 3, \"nodes\": 2}\n"
                   "dataset_type: static\ncolumns: [model_hash]\nformat: csv\n---\n")
    with pytest.raises(ds.SearchSpaceMismatchError):
        ds.build([bad], tmp_path / "x", "1.0.0", static=False)


def test_unknown_device_and_section(release):
    rel = ds.open(release)
    with pytest.raises(ds.DeviceNotInReleaseError, match="cpu, gpu"):
        rel.latency(0, "tpu")
    with pytest.raises(ds.DeviceNotInReleaseError):
        rel.latency(0)  # two devices: must name one
    with pytest.raises(ds.UnknownSectionError):
        rel.to_pandas("base/9")
    with pytest.raises(sp.UnknownModelError if hasattr(sp, "UnknownModelError") else Exception):
        rel.latency("ffffffffffffffffffffffffffffffff", "cpu")


def test_duplicate_keys_conflicting_training_records(tmp_path):
    syn.write_training_records(tmp_path / "a", [3], epochs=5, rng_seed=1)
    syn.write_training_records(tmp_path / "b", [3], epochs=5, rng_seed=2)
    with pytest.raises(ds.DuplicateKeyError, match="#3"):
        ds.build([tmp_path / "a", tmp_path / "b"], tmp_path / "r", "1.0.0", static=False)
    assert not (tmp_path / "r").exists()
    syn.write_training_records(tmp_path / "c", [3], epochs=5, rng_seed=1)  # identical copy: fine
    assert ds.build([tmp_path / "a", tmp_path / "c"], tmp_path / "r", "1.0.0", static=False).sections["base/0"] == 1


def test_duplicate_rows_in_blox_file(tmp_path):
    h = sp.from_index(0).hash
    write_blox_file(tmp_path / "blox-bench-x.csv", reference_header("benchmarking", ["model_hash", "latency"], device="x"),
                    [[h, 1.0], [h, 2.0]])
    with pytest.raises(ds.DuplicateKeyError, match="twice"):
        ds.build([tmp_path], tmp_path / "r", "1.0.0", static=False)


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.update(model_hash="0" * 32), "not a Blox model hash"),
    (lambda r: r.update(model_index=5), "does not match"),
    (lambda r: r["metrics"].update(val_top1=[1.0, 2.0]), "epochs"),
    (lambda r: r.update(setting="weird"), "setting"),
    (lambda r: r.update(schema=7), "newer"),
    (lambda r: r.update(seed="zero"), "seed"),
])
def test_bad_training_records(tmp_path, mutate, match):
    [p] = syn.write_training_records(tmp_path / "in", [1], epochs=5)
    rec = json.loads(p.read_text())
    mutate(rec)
    p.write_text(json.dumps(rec))
    with pytest.raises(ds.InputError, match=match):
        ds.build([tmp_path / "in"], tmp_path / "r", "1.0.0", static=False)
    assert not (tmp_path / "r").exists()


def test_bad_inputs_misc(tmp_path):
    syn.write_training_records(tmp_path / "a", [1], epochs=5)
    syn.write_training_records(tmp_path / "b", [2], epochs=6)
    with pytest.raises(ds.InputError, match="mixes epoch counts"):
        ds.build([tmp_path / "a", tmp_path / "b"], tmp_path / "r", "1.0.0", static=False)
    with pytest.raises(ds.InputError, match="X.Y.Z"):
        ds.build([tmp_path / "a"], tmp_path / "r", "v1")
    with pytest.raises(ds.InputError, match="does not exist"):
        ds.build([tmp_path / "nope"], tmp_path / "r", "1.0.0")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.json").write_text("{not json")
    with pytest.raises(ds.InputError, match="not valid JSON"):
        ds.build([tmp_path / "c"], tmp_path / "r", "1.0.0", static=False)
    syn.write_journal(tmp_path / "j1", "cpu", [1], precision="fp32")
    syn.write_journal(tmp_path / "j2", "cpu", [2], precision="int8")
    with pytest.raises(ds.InputError, match="two settings"):
        ds.build([tmp_path / "j1", tmp_path / "j2"], tmp_path / "r", "1.0.0", static=False)
    j = syn.write_journal(tmp_path / "j3", "cpu", [1, 2])
    lines = j.read_text().splitlines()
    lines[1] = lines[1][:40]
    j.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalError):
        ds.build([tmp_path / "j3"], tmp_path / "r", "1.0.0", static=False)
    assert not (tmp_path / "r").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.partial")]


def test_section_name_grammar():
    assert ds.list_sections()[0] == "static"
    from blox_lat.dataset._schema import validate_section_name

    for bad in ("bench", "bench/a/b", "foo/1", "bench/../x", "distill/t"):
        with pytest.raises(ds.UnknownSectionError):
            validate_section_name(bad)
    assert os.path.basename(validate_section_name("bench/snapdragon-888.dsp")) == "snapdragon-888.dsp"


def test_vectorised_static_arrays_equal_the_space_for_every_model():
    from blox_lat import space as sp
    from blox_lat.dataset._build import static_arrays

    vec, params, flops = static_arrays()
    assert vec.shape == (91125, 15) and params.shape == flops.shape == (91125,)
    for i in range(91125):
        a = sp.from_index(i)
        assert params[i] == sp.params(a) and flops[i] == sp.flops(a), i
    for i in range(0, 91125, 97):
        assert vec[i].tolist() == [d for stage in sp.from_index(i).vector_list for node in stage for d in node], i


def test_remapped_distillation_gets_its_own_section(tmp_path):
    """Random-init and parameter-remapping distillation of one teacher are two methods: both build."""
    import json as _json

    from blox_lat.dataset import _synthetic

    teacher = "c3bc16e69893c8ea08f1e89e61f4caa5"
    _synthetic.write_distill_records(tmp_path / "rand", teacher, 10, blocks=[0, 1])
    for p in _synthetic.write_distill_records(tmp_path / "remap", teacher, 10, blocks=[0, 1], rng_seed=5):
        rec = _json.loads(p.read_text())
        p.write_text(_json.dumps({**rec, "init": "remap"}))
    ds.build([tmp_path / "rand", tmp_path / "remap"], tmp_path / "rel", "1.0.0", static=False)
    rel = ds.open(tmp_path / "rel")
    names = set(rel.manifest["sections"])
    assert {f"distill/{teacher}/10", f"distill/{teacher}+remap/10"} <= names
    a = rel.to_pandas(f"distill/{teacher}/10")["loss_sum"].tolist()
    b = rel.to_pandas(f"distill/{teacher}+remap/10")["loss_sum"].tolist()
    assert len(a) == len(b) == 8 and a != b  # 2^3 models whose three blocks are distilled


@pytest.mark.parametrize("values,type_", [
    ([1, 2, None, 4], "int32"), ([1.5, None, 3.0], "float64"), (list(range(20)), "int64"),
    ([1.0, 2.0, None, 4.0, None], "float32"), ([7, 8, 9], "uint16"), ([None, None], "int8"),
])
def test_column_numpy_matches_arrow_to_numpy(values, type_):
    """Our pandas-free conversion gives what Arrow's to_numpy gives, nulls and slices included."""
    import pyarrow as pa

    from blox_lat.dataset._release import _primitive_numpy

    arr = pa.array(values, type=getattr(pa, type_)())
    for col in (arr, arr.slice(1), arr.slice(1, max(0, len(values) - 2))):
        np.testing.assert_array_equal(_primitive_numpy(col), col.to_numpy(zero_copy_only=False))
        assert _primitive_numpy(col).dtype == col.to_numpy(zero_copy_only=False).dtype


def test_epoch_column_null_rows_read_as_nan(tmp_path):
    """A null per-epoch row reads back as NaN, whatever bytes Parquet keeps for it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from blox_lat.dataset._columns import epoch_array
    from blox_lat.dataset._release import Section

    mat = np.arange(12, dtype=np.float32).reshape(4, 3)
    mask = np.array([False, True, False, True])
    table = pa.table({"val_top1": epoch_array(mat, mask, 3)})
    pq.write_table(table, tmp_path / "s.parquet")
    entry = {"file": "s.parquet", "columns": [{"name": "val_top1", "type": "acc_epochs"}], "rows": 4,
             "bytes": (tmp_path / "s.parquet").stat().st_size}
    got = Section(tmp_path, "base/0", entry).column_numpy("val_top1")
    expected = mat.copy()
    expected[mask] = np.nan
    np.testing.assert_array_equal(got, expected)


def test_a_release_from_split_journals_equals_one_from_a_single_journal(tmp_path):
    """The same measurements in one journal or in several (cluster shards, any order, other
    folders) give byte-identical releases, dataset.json included."""
    syn.write_journal(tmp_path / "one", "cpu", range(6))
    lines = (tmp_path / "one" / "journal.jsonl").read_text().splitlines(keepends=True)
    env = [ln for ln in lines if '"measurement"' not in ln]
    meas = [ln for ln in lines if '"measurement"' in ln]
    for k, part in ((1, meas[1::2]), (2, meas[0::2])):
        folder = tmp_path / "shards" / f"shard-{k}-of-2"
        folder.mkdir(parents=True)
        (folder / "journal.jsonl").write_text("".join(env + part))
    from blox_lat.dataset import build

    a = build([tmp_path / "one"], tmp_path / "rel-a", "1.0.0", static=False, jobs=1)
    b = build([tmp_path / "shards"], tmp_path / "rel-b", "1.0.0", static=False, jobs=1)
    ra, rb = tmp_path / "rel-a", tmp_path / "rel-b"
    files = sorted(p.relative_to(ra).as_posix() for p in ra.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(rb).as_posix() for p in rb.rglob("*") if p.is_file())
    for name in files:
        assert (ra / name).read_bytes() == (rb / name).read_bytes(), name
    assert a is not None and b is not None

"""``dataset build`` gives the same release as before its split into collect / tables / write.

Releases are built from committed inputs (the real CPU journals under ``benchmarks/data``, the
golden release's Blox files and campaign journal) plus seeded synthetic records, and every
section is compared with digests in ``tests/golden/dataset/build-digests.json``, which the
code before the split wrote (``python tests/test_dataset_split.py --write``).

What is compared, per section: the Arrow schema (column names, types, nullability), the
section's ``blox_lat`` schema metadata, the row count and every value of every column (a
digest of the decoded values, so Parquet's writer version or page layout may differ). Per
release: the manifest without what names the build rather than its content (builder version,
git commit, each file's size and sha256 and the manifest digest over them), i.e. format and
schema version, search space, each section's file, rows, key, columns and metadata, the inputs
with their sha256, the duplicates rule, and the Blox files' names and sha256.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import blox_lat.dataset as ds
from blox_lat import space as sp
from blox_lat.dataset import _synthetic as syn
from blox_lat.dataset._bloxfmt import reference_header, write_blox_file

ROOT = Path(__file__).resolve().parents[1]
JOURNALS = sorted([*(ROOT / "benchmarks" / "data" / "predictor").glob("*.journal.jsonl.gz"),
                   *(ROOT / "benchmarks" / "data" / "retest").glob("*.journal.jsonl.gz")])
GOLDEN_RELEASE = Path(__file__).parent / "golden" / "dataset" / "release-1.0.0"
GOLDEN_CAMPAIGN = Path(__file__).parent / "golden" / "dataset" / "cpu-campaign.jsonl"
DIGESTS = Path(__file__).parent / "golden" / "dataset" / "build-digests.json"
TEACHER = "c3bc16e69893c8ea08f1e89e61f4caa5"


# -- inputs ----------------------------------------------------------------------------------


def _measured_inputs(root: Path) -> list[Path]:
    """The committed CPU journals (each in its own folder, as ``journal.jsonl.gz``), two
    synthetic GPU campaigns that overlap (duplicates, a failure, a noisy record) and seeded
    training, fine-tuning and distillation records."""
    for src in JOURNALS:
        folder = root / "journals" / src.name.split(".")[0]
        folder.mkdir(parents=True)
        shutil.copyfile(src, folder / "journal.jsonl.gz")
    syn.write_journal(root / "gpu" / "c1", "gpu", [0, 1, 2, 7, 9, 40], fail=(7,), samples=30, rng_seed=5, campaign="c1")
    c2 = syn.write_journal(root / "gpu" / "c2", "gpu", [1, 3, 4, 7, 9], fail=(9,), samples=20, rng_seed=6, campaign="c2")
    lines = c2.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["measurement"]["noisy"] = True  # a noisy repeat of model 3, after its clean record
    rec["recorded_at"] = "2026-01-02T00:00:00+00:00"
    c2.write_text("\n".join([*lines, json.dumps(rec)]) + "\n")
    train = root / "train"
    syn.write_training_records(train, range(12), seed=0, epochs=6, rng_seed=1)
    syn.write_training_records(train, range(4), seed=1, epochs=6, rng_seed=2)
    syn.write_training_records(train, [0, 5], seed=0, epochs=4, setting="finetune", teacher=TEACHER, rng_seed=3)
    syn.write_distill_records(train, TEACHER, 10, blocks=[0, 1], rng_seed=4)
    syn.write_distill_records(train / "nodelta", TEACHER[::-1], 5, blocks=[2], rng_seed=8, with_delta=False)
    odd = syn.write_training_records(root / "odd", [20, 21, 22], seed=0, epochs=6, rng_seed=7)
    recs = [json.loads(p.read_text()) for p in odd]
    del recs[0]["metrics"]["train_loss"]  # a null cell: read as a record, not as columns
    recs[1]["train_time_s"] = "3000.4"
    recs[2]["test"] = {"top1": 61.23456789, "top5": None}
    for p, r in zip(odd, recs):
        p.write_text(json.dumps(r, indent=1))
    return [root / "journals", root / "gpu", train, root / "odd"]


def _blox_inputs(root: Path) -> list[Path]:
    """The golden release's Blox files and its campaign journal (which wins over its
    ``blox-bench-cpu``), a ``blox-info`` overriding three models' static values and a
    latency-only ``blox-bench-x``."""
    blox = root / "blox"
    shutil.copytree(GOLDEN_RELEASE / "blox", blox)
    (root / "campaign").mkdir()
    shutil.copyfile(GOLDEN_CAMPAIGN, root / "campaign" / "journal.jsonl")
    info = [[sp.from_index(i).hash, 1000 + i, 2000 + i, [[[1], [0, 1, 0, 1]]] * 3] for i in (0, 5, 91124)]
    write_blox_file(blox / "blox-info.csv", reference_header("static", ["model_hash", "params", "flops", "arch_vec"]), info)
    bench = [[sp.from_index(i).hash, 0.5 + i / 8] for i in (3, 1, 4, 15, 9)]
    write_blox_file(blox / "blox-bench-x.csv", reference_header("benchmarking", ["model_hash", "latency"], device="x"),
                    bench)
    return [blox, root / "campaign"]


def _prediction() -> tuple[str, object, dict]:
    """A hand-made ``pred/gpu`` section (every model, seeded values)."""
    import pyarrow as pa

    n = sp.NUM_MODELS
    pred = 1.0 + np.arange(n) % 97 / 10
    measured = np.zeros(n, dtype=bool)
    measured[[0, 1, 2]] = True
    table = pa.table({"model_hash": sp.space_table().hashes, "model_index": np.arange(n, dtype=np.int32),
                      "pred_ms": pred, "lo_ms": pred * 0.9, "hi_ms": pred * 1.2, "measured": measured,
                      "method": ["test/linear"] * n})
    meta = {"device": "gpu", "kind": "prediction", "latency": "raw", "level": 0.9, "method": "test", "family": "linear"}
    return "pred/gpu", table, meta


def _builds(root: Path) -> dict[str, ds.BuildResult]:
    measured = _measured_inputs(root / "in-measured")
    blox = _blox_inputs(root / "in-blox")
    return {
        "measured": ds.build(measured, root / "measured", "1.2.3", blox_format=True, static=False, jobs=1,
                             predictions=[_prediction()]),
        "blox": ds.build(blox, root / "blox", "0.1.0", raw=False, jobs=1),
    }


# -- digests ---------------------------------------------------------------------------------


def _canonical(value):
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(type(value).__name__)


def section_digest(path: Path) -> dict:
    """The content of one section file: schema, ``blox_lat`` metadata, rows and a digest of the values."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"blox_lat"])
    h = hashlib.sha256()
    for name in table.column_names:
        values = table.column(name).to_pylist()
        h.update(name.encode() + b"\0" + json.dumps(values, default=_canonical).encode() + b"\n")
    return {"rows": table.num_rows, "schema": [[f.name, str(f.type), f.nullable] for f in table.schema],
            "metadata": meta, "values_sha256": h.hexdigest()}


def release_digest(path: Path) -> dict:
    manifest = json.loads((path / "dataset.json").read_text())
    sections = {}
    for name, entry in sorted(manifest["sections"].items()):
        kept = {k: v for k, v in entry.items() if k not in ("bytes", "sha256")}
        sections[name] = {"manifest": kept, "table": section_digest(path / entry["file"])}
    provenance = {k: v for k, v in manifest["provenance"].items() if k not in ("builder", "git_commit")}
    return {"format": manifest["format"], "schema_version": manifest["schema_version"],
            "dataset_version": manifest["dataset_version"], "search_space": manifest["search_space"],
            "blox_files": manifest["blox_files"], "provenance": provenance, "sections": sections}


def digests(root: Path) -> dict:
    return {name: {"rows": dict(sorted(result.sections.items())), "inputs": result.inputs,
                   "blox_files": list(result.blox_files), "release": release_digest(result.path)}
            for name, result in _builds(root).items()}


# -- the test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    return digests(tmp_path_factory.mktemp("split"))


@pytest.mark.parametrize("release", ["measured", "blox"])
def test_release_equals_the_golden_digests(built, release):
    golden = json.loads(DIGESTS.read_text())[release]
    got = built[release]
    assert got["rows"] == golden["rows"]
    assert (got["inputs"], got["blox_files"]) == (golden["inputs"], golden["blox_files"])
    want, have = golden["release"], got["release"]
    assert sorted(have["sections"]) == sorted(want["sections"])
    for name in want["sections"]:
        assert have["sections"][name]["manifest"] == want["sections"][name]["manifest"], name
        assert have["sections"][name]["table"] == want["sections"][name]["table"], name
    assert {k: v for k, v in have.items() if k != "sections"} == {k: v for k, v in want.items() if k != "sections"}


def test_worker_processes_give_the_golden_digests(tmp_path, monkeypatch):
    """Every input read in worker processes (``jobs=2``, thresholds at zero): the same release."""
    from blox_lat.dataset import _build

    monkeypatch.setattr(_build, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(_build, "PARALLEL_MIN_JOURNAL_BYTES", 0)
    sources = _measured_inputs(tmp_path / "in")
    result = ds.build(sources, tmp_path / "measured", "1.2.3", blox_format=True, static=False, jobs=2,
                      predictions=[_prediction()])
    golden = json.loads(DIGESTS.read_text())["measured"]
    assert release_digest(result.path) == golden["release"]


def test_the_builds_cover_every_kind_of_section(built):
    """The golden releases hold every section kind ``dataset build`` writes from inputs."""
    kinds = {name.split("/", 1)[0] for r in built.values() for name in r["rows"]}
    assert kinds == {"static", "bench", "bench-raw", "measure-env", "base", "ext", "env", "finetune", "distill", "pred"}
    measured = built["measured"]["release"]["sections"]
    assert measured["bench/cpu"]["manifest"]["metadata"].get("level_reference") is not None
    assert built["blox"]["release"]["sections"]["bench/x"]["manifest"]["metadata"]["source"] == "blox-release"


if __name__ == "__main__":  # regenerate the golden digests: python tests/test_dataset_split.py --write
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_dataset_split.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        DIGESTS.write_text(json.dumps(digests(Path(tmp)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {DIGESTS}")

"""Integrity and provenance (issue 13, defect 5): artifacts are checked before they are timed,
releases detect a flipped bit in a section or an edited manifest, paths read from files stay in
their folder, Blox imports reject impossible latencies, and pickles are unpickled restricted."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import blox_lat.dataset as ds
from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.dataset import _synthetic as syn
from blox_lat.dataset._bloxfmt import reference_header, write_blox_file
from blox_lat.exporters import ArtifactStore, export
from blox_lat.harness import read_journal


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(Path(path).read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    Path(path).chmod(0o644)
    Path(path).write_bytes(bytes(data))


# -- artifacts -----------------------------------------------------------------------------------


def test_store_get_verify_evicts_a_flipped_artifact(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    art = export(0, "onnx", store=store, verify=False)
    assert store.get(art.key, verify=True) == art
    _flip(art.path)
    assert store.get(art.key) is not None  # the cheap lookup only checks the size
    assert store.get(art.key, verify=True) is None  # the digest check finds it and evicts it
    assert not art.path.exists() and store.get(art.key) is None
    again = export(0, "onnx", store=store, verify=False)  # re-exported
    assert again.sha256 == _sha(again.path) == art.sha256


def test_export_reexports_a_flipped_artifact(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    art = export(1, "onnx", store=store, verify=False)
    _flip(art.path)
    again = export(1, "onnx", store=store, verify=False)
    assert _sha(again.path) == again.sha256 == art.sha256


def test_measure_times_the_checked_file_and_records_its_digest(tmp_path):
    """End to end: a byte-flipped .onnx in the store is re-exported before it is timed, and the
    journal record carries the digest of the file that was timed."""
    store = tmp_path / "store"
    base = [sys.executable, "-m", "blox_lat", "measure", "2", "--device", "cpu", "--runs", "10",
            "--warmup-runs", "1", "--warmup-s", "0", "--anchors", "0", "--store", str(store), "--json"]
    res = subprocess.run([*base, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    (onnx,) = (store / "objects").glob("*/*.onnx")
    good = _sha(onnx)
    _flip(onnx)
    res = subprocess.run([*base, "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    (rec,) = [r for r in read_journal(tmp_path / "b") if r["kind"] == "measurement"]
    assert rec["status"] == "ok"
    assert rec["artifact"]["sha256"] == _sha(onnx) == good


# -- Blox-format imports ---------------------------------------------------------------------------



def _bench_file(folder: Path, latencies: list[str], name: str = "blox-bench-dsp.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = reference_header("benchmarking", ["model_hash", "latency"], device="dsp")
    return write_blox_file(folder / name, header, [[sp.from_index(i).hash, v] for i, v in enumerate(latencies)])


@pytest.mark.parametrize("bad", ["-5", "nan", "inf", "-inf", "0"])
def test_blox_import_rejects_impossible_latency_with_file_and_line(tmp_path, bad):
    path = _bench_file(tmp_path / "in", ["1.5", bad])
    header_lines = path.read_bytes().split(b"---\n", 2)[1].count(b"\n") + 2
    with pytest.raises(ds.InputError) as err:
        ds.build([tmp_path / "in"], tmp_path / "r", "1.0.0", static=False)
    assert f"{path}:{header_lines + 2}" in str(err.value) and "latency" in str(err.value)
    assert not (tmp_path / "r").exists()


def test_query_json_never_prints_nan(tmp_path):
    """A loss of nan in an imported Blox file is a missing value: query --json prints null."""
    folder = tmp_path / "in"
    folder.mkdir()
    cols = ["model_hash", "train_top1", "train_loss", "train_top5", "val_loss", "val_top5", "test_loss", "test_top5"]
    header = reference_header("training", cols, seed=0, epochs=2, dataset="cifar100", part="ext")
    write_blox_file(folder / "blox-ext-0.csv", header,
                    [[sp.from_index(0).hash, [1.0, 2.0], [1.0, 0.9], [3.0, 4.0], [0.5, 0.4], [5.0, 6.0],
                      "nan", 7.0]])
    _bench_file(folder, ["1.25"])
    out = tmp_path / "r"
    ds.build([folder], out, "1.0.0", static=False)
    res = CliRunner().invoke(cli, ["dataset", "query", "0", "--release", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert "NaN" not in res.output
    data = json.loads(res.output)
    assert data["sections"]["ext/0"]["test_loss"] is None
    assert data["sections"]["bench/dsp"]["latency_ms"] == 1.25


# -- pickles -------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _pickle_bench(folder: Path, rows) -> Path:
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    header = reference_header("benchmarking", ["model_hash", "latency"], device="dsp")
    lines = ["---"] + [f"{k}: {json.dumps(v)}" for k, v in {**header, "format": "pickle"}.items()] + ["---", ""]
    path = folder / "blox-bench-dsp.pickle"
    path.write_bytes("\n".join(lines).encode() + pickle.dumps(rows))
    return path


def test_allow_pickle_does_not_run_code(tmp_path):
    marker = tmp_path / "pwned"
    _pickle_bench(tmp_path / "in", [[sp.from_index(2).hash, _Payload(marker)]])
    with pytest.raises(ds.InputError, match="posix.system|os.system|refusing"):
        ds.build([tmp_path / "in"], tmp_path / "r", "1.0.0", static=False, allow_pickle=True)
    assert not marker.exists()
    assert not (tmp_path / "r").exists()


def test_allow_pickle_still_reads_plain_rows(tmp_path):
    import numpy as np

    _pickle_bench(tmp_path / "in", [[sp.from_index(2).hash, 1.5], [sp.from_index(3).hash, np.float64(2.5)]])
    rel = ds.open(ds.build([tmp_path / "in"], tmp_path / "r", "1.0.0", static=False, allow_pickle=True).path)
    assert rel.latency(2) == 1.5 and rel.latency(3) == 2.5


# -- releases ------------------------------------------------------------------------------------



GOLDEN = Path(__file__).parent / "golden" / "dataset"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    syn.write_journal(root / "cpu", "cpu", [0, 1, 2], samples=20)
    syn.write_training_records(root / "train", range(5), epochs=4)
    return ds.build([root / "cpu", root / "train"], root / "1.0.0", "1.0.0").path


def _copy(release: Path, dest: Path) -> Path:
    shutil.copytree(release, dest)
    for p in dest.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    return dest


def _chunks(path: Path) -> list[tuple[str, int, int]]:
    """(column, first byte, size) of each column chunk of a one-row-group Parquet file."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata.row_group(0)
    out = []
    for i in range(meta.num_columns):
        c = meta.column(i)
        start = c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
        out.append((c.path_in_schema, start, c.total_compressed_size))
    return out


def test_page_checksums_written(release):
    import pyarrow.parquet as pq

    static = release / "sections" / "static.parquet"
    # a file written with page checksums fails its read when a page is damaged; one without
    # does not (that is what this test checks on the reader side below)
    assert pq.ParquetFile(static, page_checksum_verification=True).read().num_rows == 91125


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75])
def test_flipped_bit_in_a_section_is_a_typed_error_on_read(release, tmp_path, where):
    """A 1-bit flip in the page data of every column of static.parquet is caught by a plain read
    (no dataset verify), for to_pandas and for the one-column query paths."""
    for column, start, size in _chunks(release / "sections" / "static.parquet"):
        copy = _copy(release, tmp_path / f"c-{column}")
        _flip(copy / "sections" / "static.parquet", start + int(size * where))
        rel = ds.open(copy)
        with pytest.raises(ds.CorruptSectionError, match="static"):
            rel.to_pandas("static")
        rel = ds.open(copy)
        with pytest.raises(ds.CorruptSectionError, match="static"):
            (rel.params(0), rel.flops(0), rel.full_info(0))
        shutil.rmtree(copy)


def test_random_bit_flips_anywhere_in_a_section_never_give_wrong_values(release, tmp_path):
    """30 seeded single-bit flips anywhere in static.parquet (pages, headers, footer): each is a
    typed error or, where it hit bytes no value depends on, the same table."""
    import random

    good = ds.open(release).to_pandas("static")
    data = (release / "sections" / "static.parquet").read_bytes()
    rnd = random.Random(13)
    copy = _copy(release, tmp_path / "c")
    target = copy / "sections" / "static.parquet"
    for _ in range(30):
        flipped = bytearray(data)
        flipped[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        target.write_bytes(bytes(flipped))
        try:
            table = ds.open(copy).to_pandas("static")
        except ds.DatasetError:
            continue
        assert table.equals(good)


def test_flipped_bit_is_one_line_exit_2_at_the_cli(release, tmp_path):
    copy = _copy(release, tmp_path / "c")
    (_column, start, size), *_ = _chunks(copy / "sections" / "static.parquet")
    _flip(copy / "sections" / "static.parquet", start + size // 2)
    res = CliRunner().invoke(cli, ["dataset", "query", "1", "--release", str(copy), "--json"])
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("blox-lat: error:") and "static" in res.output


def test_golden_release_without_page_checksums_still_loads():
    rel = ds.open(GOLDEN / "release-1.0.0")
    assert rel.latency(0, "cpu") == pytest.approx(2.0579493749999997)
    assert len(rel.to_pandas("base/0")) > 0


def _edit_json(path: Path, fn) -> None:
    path.chmod(0o644)
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_edited_manifest_fails_verify_and_open(release, tmp_path):
    copy = _copy(release, tmp_path / "c")
    assert ds.verify(copy).ok
    _edit_json(copy / "dataset.json", lambda m: m.update(dataset_version="9.9.9"))
    report = ds.verify(copy)
    assert not report.ok and any(f == "dataset.json" for f, _ in report.problems)
    with pytest.raises(ds.ChecksumError, match="dataset.json"):
        ds.open(copy)
    res = CliRunner().invoke(cli, ["dataset", "verify", str(copy)])
    assert res.exit_code == 2 and "dataset.json" in res.output


def _as_old_release(m: dict) -> None:
    """The manifest as a schema-2 release wrote it (no self-digest), so edits are not caught by it."""
    m["schema_version"] = 2
    m.pop("manifest_sha256", None)


def test_section_file_outside_the_release_is_refused(release, tmp_path):
    copy = _copy(release, tmp_path / "c")

    def escape(m):
        _as_old_release(m)
        m["sections"]["static"]["file"] = "../../../../../../../../etc/passwd"
    _edit_json(copy / "dataset.json", escape)
    with pytest.raises(ds.CorruptSectionError, match="outside"):
        ds.open(copy).params(0)
    report = ds.verify(copy)
    assert any(f.endswith("passwd") and "outside" in s for f, s in report.problems)
    res = CliRunner().invoke(cli, ["dataset", "query", "0", "--release", str(copy)])
    assert res.exit_code == 2 and "outside" in res.output and res.output.count("\n") == 1


def test_symlinked_section_outside_the_release_is_refused(release, tmp_path):
    copy = _copy(release, tmp_path / "c")
    (copy / "sections" / "static.parquet").unlink()
    shutil.copy(release / "sections" / "static.parquet", tmp_path / "elsewhere.parquet")
    (copy / "sections" / "static.parquet").symlink_to(tmp_path / "elsewhere.parquet")
    with pytest.raises(ds.CorruptSectionError, match="outside"):
        ds.open(copy).params(0)


def test_schema_2_release_without_manifest_digest_still_loads(release, tmp_path):
    copy = _copy(release, tmp_path / "c")
    _edit_json(copy / "dataset.json", _as_old_release)
    rel = ds.open(copy)
    assert rel.schema_version == 2 and rel.params(0) == ds.open(release).params(0) > 0
    assert ds.verify(copy).ok


@pytest.mark.parametrize("name", ["../../esc", "a/b", "", ".hidden", "x" * 101])
def test_record_as_names_are_checked_before_anything_is_written(tmp_path, name):
    res = subprocess.run([sys.executable, "-m", "blox_lat", "measure", "0", "--device", "cpu", "--record-as", name,
                          "--runs", "10", "--store", str(tmp_path / "store")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "record-as" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if not (tmp_path / "store").exists() else ["store"])
    assert not (tmp_path.parent / "esc").exists()


def test_check_device_name():
    assert ds.check_device_name("pixel7-gpu_2.1") == "pixel7-gpu_2.1"
    for bad in ("../x", "a/b", "", "-x", None):
        with pytest.raises(ds.InputError):
            ds.check_device_name(bad)


def test_section_names_in_the_manifest_follow_the_grammar(release, tmp_path):
    """Section names become file names (export-blox writes blox-bench-<device>.csv): a manifest
    naming a section '../..' is refused when the release is opened."""
    copy = _copy(release, tmp_path / "c")

    def rename(m):
        _as_old_release(m)
        m["sections"]["bench/../../../esc"] = m["sections"].pop("bench/cpu")
    _edit_json(copy / "dataset.json", rename)
    with pytest.raises(ds.CorruptSectionError, match="esc"):
        ds.open(copy)

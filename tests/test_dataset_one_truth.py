"""``dataset build`` and ``dataset query`` hold the harness's one truth (issue 22).

Every journal line is judged by the harness's records (a bad line is refused with its
``file:line`` and field, superseded or not); the release's ``bench/<device>`` latencies, levels
and standard errors are what :func:`blox_lat.harness.stand` gives; ``dataset query --latency``
resolves raw / corrected / auto as :func:`blox_lat.harness.resolve_latency_kind` does.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import blox_lat.dataset as ds
from blox_lat.cli.main import cli
from blox_lat.dataset import _synthetic as syn
from blox_lat.harness import RULE, JournalError, read_records, stand

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "benchmarks" / "data" / "predictor"
GOLDEN = Path(__file__).parent / "golden" / "dataset" / "release-1.0.0"
ENV = {"BLOX_LAT_CONFIG_DIR": "/nonexistent/blox-lat-config", "BLOX_LAT_RELEASE": None}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=ENV)


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blox-lat: error:"), res.stderr
    return lines[0]


def _edit(journal: Path, number: int, edit) -> None:
    """Apply ``edit`` to the JSON of line ``number`` (1-based) of ``journal``."""
    lines = journal.read_text().splitlines()
    record = json.loads(lines[number - 1])
    edit(record)
    lines[number - 1] = json.dumps(record)
    journal.write_text("\n".join(lines) + "\n")


def _set_latency(value):
    def edit(record):
        record["measurement"]["latency_ms"] = value
    return edit


# -- bad lines are refused, naming file:line and the field ------------------------------------


@pytest.mark.parametrize("value", [float("nan"), -5.0, 0.0, "x", float("inf")], ids=["nan", "negative", "zero", "text", "inf"])
@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "workers"])
def test_a_bad_latency_is_refused_with_file_line_and_field(tmp_path, monkeypatch, value, parallel):
    from blox_lat.dataset import _build

    if parallel:  # every journal through a worker process
        monkeypatch.setattr(_build, "PARALLEL_MIN_JOURNAL_BYTES", 0)
    journal = syn.write_journal(tmp_path / "camp", "cpu", [1, 2, 3], samples=20)
    _edit(journal, 3, _set_latency(value))
    out = tmp_path / "rel"
    line = _one_error_line(run("dataset", "build", "--from", tmp_path / "camp", "--out", out, "--version", "1.0.0",
                               "--no-static", "--jobs", 2 if parallel else 1))
    assert f"{journal}:3:" in line and "measurement.latency_ms" in line, line
    assert "remove that line" in line
    assert not out.exists()


def test_a_bad_line_is_refused_even_when_a_later_record_supersedes_it(tmp_path):
    """Under one rule a bad line is bad everywhere: a later good record of the model does not hide it."""
    journal = syn.write_journal(tmp_path / "camp", "cpu", [0, 1, 2], samples=20)
    lines = journal.read_text().splitlines()
    stale = json.loads(lines[1])
    stale["measurement"]["latency_ms"] = "fast"
    stale["recorded_at"] = "2025-01-01T00:00:00+00:00"  # older than every other record of model 0
    journal.write_text("\n".join([*lines, json.dumps(stale)]) + "\n")
    with pytest.raises(JournalError) as err:
        ds.build([tmp_path / "camp"], tmp_path / "rel", "1.0.0", static=False, jobs=1)
    assert f"{journal}:{len(lines) + 1}: measurement.latency_ms is 'fast'" in str(err.value)
    assert not (tmp_path / "rel").exists()


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["measurement"].update(group_means_ms=[1.0, 2.0, 3.0]), "group_means_ms"),  # 3 means, 2 groups
    (lambda r: r["measurement"].update(samples_ms=[1.0]), "samples_ms"),
    (lambda r: r["measurement"].update(groups=0), "measurement.groups"),
    (lambda r: r.update(schema=2, level=0.8, latency_corrected_ms=1.0, set_id="set-nowhere"), "set_id"),
    (lambda r: r.update(schema=2, level=-1.0, latency_corrected_ms=1.0, set_id="s"), "level"),
    (lambda r: r.update(status="ok", measurement=None), "measurement"),
])
def test_what_read_records_refuses_the_build_refuses(tmp_path, edit, field):
    journal = syn.write_journal(tmp_path / "camp", "cpu", [1, 2, 3], samples=20)
    _edit(journal, 2, edit)
    with pytest.raises(JournalError) as harness:
        read_records(journal)
    res = run("dataset", "build", "--from", tmp_path / "camp", "--out", tmp_path / "rel", "--version", "1.0.0",
              "--no-static", "--jobs", 1)
    line = _one_error_line(res)
    assert f"{journal}:2:" in line and field in line, line
    assert line == f"blox-lat: error: {harness.value}"  # the harness's words
    assert not (tmp_path / "rel").exists()


# -- the release's values are stand()'s --------------------------------------------------------


def _real_campaigns(root: Path) -> list[Path]:
    """The committed anchored campaigns cpu-a and cpu-b (one device setting, the same anchors,
    256 models measured in both), as campaign folders."""
    folders = []
    for name in ("cpu-a", "cpu-b"):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "journal.jsonl").write_bytes(gzip.decompress((REAL / f"{name}.journal.jsonl.gz").read_bytes()))
        folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def anchored(tmp_path_factory):
    """(release built from both real campaigns, stand() over read_records of both)."""
    root = tmp_path_factory.mktemp("one-truth")
    folders = _real_campaigns(root / "in")
    release = ds.build(folders, root / "rel", "1.0.0", static=False, jobs=1).path
    return release, stand([r for f in folders for r in read_records(f)]), folders


_PAIRS = (("latency_ms", "latency_ms"), ("level", "level"), ("latency_corrected_ms", "corrected_ms"),
          ("latency_se_ms", "se_ms"), ("latency_corrected_se_ms", "corrected_se_ms"))


def _rows(release: Path, device: str = "cpu") -> list[dict]:
    return ds.open(release).section(f"bench/{device}").table.to_pylist()


def _assert_release_is_stand(release: Path, standings, device: str = "cpu") -> list[dict]:
    rows = _rows(release, device)
    want = standings.of(device)
    assert sorted(r["model_hash"] for r in rows) == sorted(want)
    for row in rows:
        s = want[row["model_hash"]]
        assert row["campaign_id"] == s.record.campaign_id and row["recorded_at"] == s.record.recorded_at
        assert row["records"] == s.seen
        for column, attr in _PAIRS:
            assert row[column] == getattr(s, attr), (row["model_index"], column, row[column], getattr(s, attr))
    return rows


def test_release_latencies_levels_and_errors_are_stand(anchored):
    release, standings, _folders = anchored
    rows = _assert_release_is_stand(release, standings)
    reference = standings.references["cpu"]
    meta = ds.open(release).manifest["sections"]["bench/cpu"]["metadata"]
    assert meta["level_reference"]["campaign_id"] == reference.campaign_id
    assert meta["level_reference"]["reference_ms"] == list(reference.reference_ms)
    assert meta["duplicates_rule"] == RULE
    # the input is what makes the comparison bite: two campaigns, the second rescaled onto the first's
    # reference (its corrected SE adds the rescaling's), models measured in both
    rescaled = [r for r in rows if r["campaign_id"] != reference.campaign_id and r["level"] is not None]
    assert rescaled and any(r["records"] == 2 for r in rows)
    for r in rescaled:
        relative = r["latency_corrected_se_ms"] / r["latency_corrected_ms"]
        assert relative > r["latency_se_ms"] / r["latency_ms"]
    assert all(r["latency_se_ms"] > 0 and r["latency_corrected_se_ms"] > 0 for r in rows if r["status"] == "ok")


def test_workers_give_the_same_release(anchored, tmp_path, monkeypatch):
    """Journals read in worker processes carry the same values back (slim leveled records)."""
    from blox_lat.dataset import _build

    release, standings, folders = anchored
    monkeypatch.setattr(_build, "PARALLEL_MIN_JOURNAL_BYTES", 0)
    parallel = ds.build(folders, tmp_path / "par", "1.0.0", static=False, jobs=2).path
    _assert_release_is_stand(parallel, standings)
    for name in ("sections/bench/cpu.parquet", "sections/bench-raw/cpu.parquet", "dataset.json"):
        assert (parallel / name).read_bytes() == (release / name).read_bytes(), name


def test_journal_order_and_a_campaign_without_anchors(tmp_path):
    """Given in the other order, the standing records and levels are the same; a campaign without
    anchors of another device has its latency SE and null corrected values, as stand() says."""
    folders = _real_campaigns(tmp_path / "in")
    plain = syn.write_journal(tmp_path / "in" / "gpu", "gpu", [0, 5, 9], samples=30, fail=(5,))
    sources = [folders[1], folders[0], plain.parent]
    release = ds.build(sources, tmp_path / "rel", "1.0.0", static=False, jobs=1).path
    standings = stand([r for f in sources for r in read_records(f)])
    _assert_release_is_stand(release, standings)
    gpu = _assert_release_is_stand(release, standings, "gpu")
    ok = [r for r in gpu if r["status"] == "ok"]
    assert len(ok) == 2 and all(r["latency_se_ms"] > 0 and r["latency_corrected_se_ms"] is None for r in ok)
    assert all(r["level"] is None and r["latency_corrected_ms"] is None for r in gpu)


def test_schema_and_old_releases(anchored, tmp_path):
    release, _standings, _folders = anchored
    rel = ds.open(release)
    assert rel.schema_version == ds.RELEASE_SCHEMA == 7
    names = [c["name"] for c in rel.manifest["sections"]["bench/cpu"]["columns"]]
    assert names[-2:] == ["latency_se_ms", "latency_corrected_se_ms"]
    old = ds.open(GOLDEN)  # schema 1: no such columns, and it keeps loading
    assert old.schema_version == 1 and old.latency(0, "cpu") is not None


# -- dataset query --latency ----------------------------------------------------------------------


def _query(release, index, *flags):
    res = run("dataset", "query", index, "--release", release, "--json", *flags)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_query_latency_raw_corrected_auto(anchored):
    release, standings, _folders = anchored
    s = next(s for s in standings.of("cpu").values() if s.ok and s.corrected_ms is not None)
    index = s.record.model_index
    for flags, kind, value in [((), "corrected", s.corrected_ms), (("--latency", "auto"), "corrected", s.corrected_ms),
                               (("--latency", "corrected"), "corrected", s.corrected_ms),
                               (("--latency", "raw"), "raw", s.latency_ms)]:
        data = _query(release, index, *flags)
        assert data["latency_kind"] == kind, flags
        (entry,) = data["latency"]
        assert entry["source"] == "measured" and entry["latency"] == kind
        assert entry["latency_ms"] == value, flags
        row = data["sections"]["bench/cpu"]
        assert (row["latency_se_ms"], row["latency_corrected_se_ms"]) == (s.se_ms, s.corrected_se_ms)
    text = run("dataset", "query", index, "--release", release, "--latency", "raw").stdout
    assert "latency cpu (measured, raw)" in text and f"{s.latency_ms:.4f} ms" in text, text
    text = run("dataset", "query", index, "--release", release).stdout
    assert "latency cpu (measured, corrected)" in text and f"{s.corrected_ms:.4f} ms" in text, text


def test_query_latency_without_anchors(tmp_path):
    """auto falls back to raw where a value in scope has no corrected latency; corrected is refused
    in one line; --corrected keeps giving null rather than the raw value."""
    syn.write_journal(tmp_path / "cpu", "cpu", [0, 1], samples=20)
    release = ds.build([tmp_path / "cpu"], tmp_path / "rel", "1.0.0", static=False, jobs=1).path
    raw = ds.open(release).latency(1, "cpu")
    data = _query(release, 1)
    assert data["latency_kind"] == "raw" and data["latency"][0]["latency_ms"] == raw
    assert math.isfinite(data["sections"]["bench/cpu"]["latency_se_ms"])
    line = _one_error_line(run("dataset", "query", 1, "--release", release, "--latency", "corrected"))
    assert "--latency corrected" in line and "--latency raw" in line
    data = _query(release, 1, "--corrected")
    assert data["latency_kind"] == "corrected" and data["latency"][0]["latency_ms"] is None
    res = run("dataset", "query", 1, "--release", release, "--corrected", "--latency", "raw")
    assert res.exit_code == 2 and "--corrected" in res.output


def test_query_latency_on_an_old_release(tmp_path):
    release = tmp_path / "old"
    shutil.copytree(GOLDEN, release)
    data = _query(release, 0, "--latency", "auto")
    assert data["latency_kind"] == "raw" and data["latency"][0]["latency_ms"] == ds.open(release).latency(0, "cpu")
    assert "latency_se_ms" not in data["sections"]["bench/cpu"]  # schema 1: no such column

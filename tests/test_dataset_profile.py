"""``profile/<device>`` release sections: three models profiled on this CPU for real
(``blox-lat profile --runs 20``), built into a release beside a campaign, every row and column
checked against the profile records (read with the one reader), verify/query/diff on the
release, which record stands for a model, and bad profile input refused before anything is
written."""

from __future__ import annotations

import json
import math
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
from blox_lat.dataset._schema import KINDS, LAYER_FIELDS, PROFILE_PIECES
from blox_lat.profile import PROFILES_NAME, read_profiles

GOLDEN = Path(__file__).parent / "golden" / "dataset"
MODELS = (0, 1, 2)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A real profile folder of models 0-2 on cpu and a synthetic cpu campaign."""
    root = tmp_path_factory.mktemp("profiled")
    res = run("profile", "0:3", "--device", "cpu", "--runs", "20", "--out", root / "prof", "--store", root / "store",
              "-q")
    assert res.exit_code == 0, res.output
    syn.write_journal(root / "runs" / "cpu", "cpu", [0, 1, 2, 5], samples=20)
    return root


@pytest.fixture(scope="module")
def release(inputs):
    out = inputs / "rel"
    res = run("dataset", "build", "--from", inputs / "runs" / "cpu", "--profile", inputs / "prof", "--out", out,
              "--version", "1.0.0", "--no-static", "--jobs", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sections"]["profile/cpu"] == len(MODELS)
    return out


def _copy(inputs: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copyfile(inputs / "prof" / PROFILES_NAME, dest / PROFILES_NAME)
    return dest


def _append(folder: Path, *lines: dict) -> None:
    with open(folder / PROFILES_NAME, "a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def test_section_rows_are_the_profile_records(inputs, release):
    records = read_profiles(inputs / "prof")
    assert sorted(r.model_index for r in records) == list(MODELS) and all(r.ok for r in records)
    rel = ds.open(release)
    assert rel.schema_version == ds.RELEASE_SCHEMA == 7 and rel.profiled_devices == ["cpu"]
    entry = rel.manifest["sections"]["profile/cpu"]
    assert [c["name"] for c in entry["columns"]] == [c.name for c in KINDS["profile"]]
    assert entry["metadata"]["setting"] == records[0].setting and entry["metadata"]["profile_runs"] == [20]
    assert any(i["kind"] == "profiles" and i["records"] == len(MODELS) for i in rel.manifest["provenance"]["inputs"])
    table = rel.section("profile/cpu").table
    assert table.column("model_index").to_pylist() == list(MODELS)
    assert [f.name for f in table.schema.field("layers").type.value_type] == [n for n, _ in LAYER_FIELDS]
    for rec in records:
        row = rel.profile(rec.model_index)
        assert row == rel.profile(sp.from_index(rec.model_index).hash, "cpu")
        assert (row["model_hash"], row["status"], row["records"], row["profile_runs"]) == (rec.model_hash, "ok", 1, 20)
        for name in ("latency_ms", "load_ms", "first_inference_ms", "peak_memory_mib", "profiled_ms", "overhead",
                     "layers_ms", "created_at"):
            assert row[name] == getattr(rec, name), name
        assert row["peak_memory_how"] == rec.memory_how and row["latency_ms"] > 0 and row["load_ms"] > 0
        for col, piece in PROFILE_PIECES:
            want = [b.ms for b in rec.blocks if b.piece == piece or b.piece.startswith(piece + "/")]
            assert len(want) == 1 and math.isclose(row[f"{col}_ms"], want[0], abs_tol=1e-6), col
        pieces = sum(row[f"{col}_ms"] for col, _ in PROFILE_PIECES) + row["unmapped_ms"]
        assert math.isclose(pieces, rec.layers_ms, abs_tol=1e-5)
        names = [row[f"block_s{s}"] for s in range(3)]
        assert names == list(sp.from_index(rec.model_index).block_names)
        assert names == [b.block for b in rec.blocks if b.piece.startswith("cell/")]
        assert row["layers"] == [x.to_dict() for x in rec.layers] and len(row["layers"]) > 10
    assert rel.profile(5) is None  # measured, not profiled
    assert rel.latency(5, "cpu") is not None


def test_verify_query_info_and_diff_take_the_section(inputs, release, tmp_path):
    res = run("dataset", "verify", release, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["ok"], res.output
    rec = next(r for r in read_profiles(inputs / "prof") if r.model_index == 1)
    res = run("dataset", "query", "1", "--release", release, "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)["sections"]["profile/cpu"]
    assert got["load_ms"] == rec.load_ms and len(got["layers"]) == len(rec.layers)
    text = run("dataset", "query", "1", "--release", release)
    assert text.exit_code == 0 and f"profile/cpu.layers                 [{len(rec.layers)} values]" in text.output
    assert json.loads(run("dataset", "info", release, "--json").output)["schema_version"] == 7
    plain = tmp_path / "plain"
    assert run("dataset", "build", "--from", inputs / "runs" / "cpu", "--out", plain, "--version", "1.0.0",
               "--no-static", "--jobs", "1").exit_code == 0
    report = ds.diff(plain, release)
    assert report.added == ("profile/cpu",) and not report.changed


def test_the_standing_record_of_a_model(inputs, tmp_path):
    folder = _copy(inputs, tmp_path / "prof")
    lines = [json.loads(x) for x in (folder / PROFILES_NAME).read_text().splitlines()]
    by_index = {x["model_index"]: x for x in lines}
    later = "2099-01-01T00:00:00+00:00"
    failed0 = {k: by_index[0][k] for k in ("kind", "schema", "model_index", "model_hash", "arch", "device", "setting",
                                            "protocol", "profile_runs")}
    failed0.update(status="failed", reason="worker died", created_at=later)
    again1 = {**by_index[1], "profile_runs": 30, "load_ms": 123.5, "created_at": later}  # another key, later
    arch7 = sp.from_index(7)
    failed7 = {**failed0, "model_index": 7, "model_hash": arch7.hash, "arch": "/".join(arch7.block_names)}
    _append(folder, failed0, again1, failed7)
    built = ds.build([inputs / "runs" / "cpu"], tmp_path / "rel", "1.0.0", static=False, jobs=1, profiles=[folder])
    assert built.sections["profile/cpu"] == 4
    rel = ds.open(built.path)
    zero, one, seven = rel.profile(0), rel.profile(1), rel.profile(7)
    assert (zero["status"], zero["records"], zero["load_ms"]) == ("ok", 2, by_index[0]["load_ms"])
    assert (one["load_ms"], one["profile_runs"], one["records"]) == (123.5, 30, 2)
    assert (seven["status"], seven["reason"], seven["records"]) == ("failed", "worker died", 1)
    assert seven["load_ms"] is None and seven["layers"] is None and seven["block_s0"] == arch7.block_names[0]
    assert rel.manifest["sections"]["profile/cpu"]["metadata"]["profile_runs"] == [20, 30]


def _no_profiles(inputs, tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty", "no such file"


def _damaged(inputs, tmp_path):
    folder = _copy(inputs, tmp_path / "damaged")
    with open(folder / PROFILES_NAME, "a") as f:
        f.write('{"kind": "profile", "schema": 1, \n')
    return folder, f"{PROFILES_NAME}:{len(MODELS) + 1}: not JSON"


def _wrong_hash(inputs, tmp_path):
    folder = _copy(inputs, tmp_path / "hash")
    line = json.loads((folder / PROFILES_NAME).read_text().splitlines()[0])
    _append(folder, {**line, "model_index": 9, "created_at": "2099-01-01T00:00:00+00:00"})
    return folder, "is not that model's"


def _two_settings(inputs, tmp_path):
    folder = _copy(inputs, tmp_path / "settings")
    line = json.loads((folder / PROFILES_NAME).read_text().splitlines()[0])
    _append(folder, {**line, "setting": {**line["setting"], "options": {"threads": 4}}})
    return folder, "2 device settings"


@pytest.mark.parametrize("bad", [_no_profiles, _damaged, _wrong_hash, _two_settings])
def test_bad_profile_input_is_one_line_exit_2_and_writes_nothing(inputs, tmp_path, bad):
    folder, message = bad(inputs, tmp_path)
    out = tmp_path / "releases" / "1.0.0"
    res = run("dataset", "build", "--from", inputs / "runs" / "cpu", "--profile", folder, "--out", out,
              "--version", "1.0.0", "--no-static", "--jobs", "1")
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("blox-lat: error:") and message in res.output
    assert not out.parent.exists()


def test_installed_command_refuses_a_damaged_profile(inputs, tmp_path):
    folder, message = _damaged(inputs, tmp_path)
    exe = Path(sys.executable).with_name("blox-lat")
    out = tmp_path / "rel"
    done = subprocess.run([str(exe), "dataset", "build", "--from", str(inputs / "runs" / "cpu"), "--profile",
                           str(folder), "--out", str(out), "--version", "1.0.0", "--no-static"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_older_releases_have_no_profiles():
    golden = ds.open(GOLDEN / "release-1.0.0")
    assert golden.schema_version == 1 and golden.profiled_devices == []
    with pytest.raises(ds.DeviceNotInReleaseError, match="no profile section"):
        golden.profile(0)
    assert golden.latency(0, "cpu") is not None

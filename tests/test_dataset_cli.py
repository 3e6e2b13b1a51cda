"""``blox-lat dataset`` commands: build/info/verify/diff/query/export-blox, one-line errors, exit 2."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.dataset import _synthetic as syn

GOLDEN = Path(__file__).parent / "golden" / "dataset"


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-in")
    syn.write_journal(root / "cpu", "cpu", [0, 1, 2], samples=20)
    syn.write_training_records(root / "train", range(5), epochs=4)
    return root


def test_build_info_verify_query(inputs, tmp_path):
    out = tmp_path / "1.0.0"
    res = run("dataset", "build", "--from", inputs / "cpu", "--from", inputs / "train", "--out", out,
              "--version", "1.0.0", "--no-static", "--blox-format", "--json")
    assert res.exit_code == 0, res.output
    built = json.loads(res.output)
    assert built["sections"]["base/0"] == 5 and "blox/blox-base-0.csv" in built["blox_files"]
    info = json.loads(run("dataset", "info", out, "--json").output)
    assert info["dataset_version"] == "1.0.0" and info["sections"]["bench/cpu"]["rows"] == 3
    res = run("dataset", "verify", out)
    assert res.exit_code == 0 and "sections/bench/cpu.parquet" in res.output
    q = json.loads(run("dataset", "query", "1", "--release", out, "--device", "cpu", "--json").output)
    assert q["model_index"] == 1 and q["sections"]["bench/cpu"]["status"] == "ok"
    assert len(q["sections"]["base/0"]["val_top1"]) == 4
    res = run("dataset", "query", "1", "--release", out)
    assert res.exit_code == 0 and "bench/cpu.latency_ms" in res.output
    res = run("dataset", "export-blox", out, "--out", tmp_path / "bx")
    assert res.exit_code == 0 and "blox-ext-0.csv" in res.output


def test_errors_are_one_line_exit_2(inputs, tmp_path):
    out = tmp_path / "r"
    assert run("dataset", "build", "--from", inputs / "cpu", "--out", out, "--version", "1.0.0", "--no-static").exit_code == 0
    cases = [
        ("dataset", "build", "--from", inputs / "cpu", "--out", out, "--version", "1.0.1"),  # exists
        ("dataset", "build", "--from", inputs / "cpu", "--out", tmp_path / "x", "--version", "one"),
        ("dataset", "query", "1", "--release", out, "--device", "tpu"),
        ("dataset", "query", "99999999", "--release", out),
        ("dataset", "info", tmp_path / "nothing"),
    ]
    for args in cases:
        res = run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.count("\n") == 1 and res.output.startswith("blox-lat: error:"), res.output
    assert not (tmp_path / "x").exists()


def test_verify_and_diff_via_console_script(tmp_path):
    """The installed script: verify fails with exit 2 on a tampered copy; diff lists the change."""
    copy = tmp_path / "copy"
    shutil.copytree(GOLDEN / "release-1.0.0", copy)
    target = copy / "sections" / "env" / "0.parquet"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    exe = shutil.which("blox-lat") or sys.executable
    prefix = [exe] if exe.endswith("blox-lat") else [exe, "-m", "blox_lat"]
    res = subprocess.run([*prefix, "dataset", "verify", str(copy)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "sha256 mismatch" in res.stderr and res.stderr.count("\n") == 1
    res = subprocess.run([*prefix, "dataset", "diff", str(GOLDEN / "release-1.0.0"), str(GOLDEN / "release-1.0.0"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and json.loads(res.stdout)["identical"] is True


def test_help_lists_every_command():
    res = run("dataset", "--help")
    for name in ("build", "verify", "diff", "info", "query", "export-blox"):
        assert name in res.output
        assert run("dataset", name, "--help").exit_code == 0


def test_query_corrected_reads_the_level_corrected_value_or_null(tmp_path):
    """--corrected: the corrected latency of an anchored model, null for one without anchors (never raw)."""
    journal = syn.write_journal(tmp_path / "cpu", "cpu", [0, 1], samples=20)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    rec = next(r for r in lines if r.get("model_index") == 1)
    rec.update(schema=2, level=0.8, latency_corrected_ms=rec["measurement"]["latency_ms"] / 0.8, set_id="set-1")
    # the anchors line its level comes from (a level naming none is refused, as read_records refuses it)
    anchors = {"schema": 2, "kind": "anchors", "set_id": "set-1", "attempt": 1, "device": "cpu",
               "campaign_id": rec["campaign_id"], "env_id": rec["env_id"], "anchors": [{"model_hash": "a" * 32,
               "model_index": 5, "latency_ms": 0.8, "cv": 0.01}], "reference_ms": [1.0], "level": 0.8, "members": 2,
               "recorded_at": rec["recorded_at"]}
    journal.write_text("".join(json.dumps(r) + "\n" for r in [*lines, anchors]))
    out = tmp_path / "rel"
    assert run("dataset", "build", "--from", tmp_path / "cpu", "--out", out, "--version", "1.0.0", "--no-static").exit_code == 0

    def latency(index, *flags):
        res = run("dataset", "query", index, "--release", out, "--json", *flags)
        assert res.exit_code == 0, res.output
        (entry,) = json.loads(res.output)["latency"]
        assert entry["source"] == "measured" and entry["section"] == "bench/cpu"
        return entry["latency"], entry["latency_ms"]

    raw = rec["measurement"]["latency_ms"]
    assert latency(1, "--latency", "raw") == ("raw", raw)
    assert latency(1, "--corrected") == ("corrected", raw / 0.8)
    assert latency(0, "--corrected") == ("corrected", None)
    assert latency(0)[1] is not None
    text = run("dataset", "query", 0, "--release", out, "--corrected").output
    assert re.search(r"^latency cpu \(measured, corrected\) +null$", text, re.M), text


def test_query_sums_up_a_model_s_samples_and_says_where_to_see_them():
    """A model's 20 samples in one line with their spread, and the command that shows them all
    (it showed '[20 values, last 2.04]')."""
    golden = Path(__file__).parent / "golden" / "dataset" / "release-1.0.0"
    res = run("dataset", "query", "0", "--release", golden)
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("bench-raw/cpu.samples_ms"))
    assert "[20 values: min 2.032, median 2.057, max 2.146; all of them: blox-lat stats 0 --from" in line

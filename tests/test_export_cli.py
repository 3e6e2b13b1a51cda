"""``blox-lat export``: CliRunner for errors and output, the installed script, concurrent runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.exporters import ArtifactStore
from blox_lat.exporters._types import sha256_file

#: the console script of the environment running the tests (its bin folder need not be on PATH)
BLOX_LAT = shutil.which("blox-lat", path=str(Path(sys.executable).parent)) or "blox-lat"


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_lists_export():
    result = _run("--help")
    assert "export" in result.output
    assert "SELECTOR" in _run("export", "--help").output


def test_json_summary_and_reexport(tmp_path):
    result = subprocess.run([sys.executable, "-m", "blox_lat", "export", "0:2", "--format", "onnx", "--out",
                             str(tmp_path), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["exported"] == 2 and data["summary"]["failed"] == 0
    paths = [a["path"] for a in data["artifacts"]]
    assert all(p.endswith(".onnx") for p in paths)
    assert [a["verification"]["max_rel_err"] <= 1e-4 for a in data["artifacts"]] == [True, True]
    again = _run("export", "0:2", "-f", "onnx", "-o", str(tmp_path), "--json")
    assert again.exit_code == 0
    assert [a["path"] for a in json.loads(again.stdout)["artifacts"]] == paths
    human = _run("export", "1", "-f", "onnx", "-o", str(tmp_path))
    assert human.exit_code == 0 and "exported" in human.output


def test_bad_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [
        ("export", "0:2", "-f", "tflite", "-o", str(tmp_path / "a")),
        ("export", "not-a-model", "-f", "onnx", "-o", str(tmp_path / "b")),
        ("export", "0:2", "-f", "onnx", "-o", str(tmp_path / "file")),
        ("export", "0:2", "-f", "onnx", "-O", "opset=9", "-o", str(tmp_path / "c")),
        ("export", "0:2", "-f", "onnx", "-O", "noequals", "-o", str(tmp_path / "d")),
        ("export", "0:2", "-f", "onnx", "--batch", "0", "-o", str(tmp_path / "e")),
    ]
    for args in cases:
        proc = subprocess.run([BLOX_LAT, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("blox-lat: error:"), (args, proc.stderr)
        assert proc.stdout == ""
    assert not (tmp_path / "a").exists() and not list((tmp_path / "c").glob("objects/*/*"))


def test_concurrent_runs_write_each_artifact_once(tmp_path):
    store = tmp_path / "store"
    cmds = [[BLOX_LAT, "export", sel, "-f", "onnx", "-o", str(store), "--json"] for sel in ("0:6", "3:9")]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    docs = [json.loads(o[0]) for o in outs]
    by_hash = {}
    for doc in docs:
        for art in doc["artifacts"]:
            by_hash.setdefault(art["model_hash"], set()).add(art["path"])
    assert len(by_hash) == 9 and all(len(paths) == 1 for paths in by_hash.values())
    lines = [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]
    puts = [entry["digest"] for entry in lines if entry["event"] == "put"]
    assert len(puts) == 9 and len(set(puts)) == 9  # each artifact written once
    s = ArtifactStore(store)
    for entry in s.manifest():
        path = store / entry["path"]
        assert path.stat().st_size == entry["bytes"] and sha256_file(path) == entry["sha256"]
    assert not [p for p in store.rglob("*.tmp")]


def test_dlc_without_the_sdk_is_one_line_exit_2(tmp_path):
    """Without the SNPE SDK, say so once and stop (it was one identical failure line per model)."""
    result = CliRunner().invoke(cli, ["export", "0:5", "-f", "dlc", "-o", str(tmp_path / "s")],
                                env={"SNPE_ROOT": None, "PATH": "/usr/bin:/bin"})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blox-lat: error:") and "SNPE" in lines[0], result.stderr
    assert result.stdout == ""
    assert not list((tmp_path / "s").glob("objects/*/*"))


def test_int8_quantisation_prints_no_preprocessing_hint():
    """onnxruntime's 'Please consider to run pre-processing' (twice per quantize_static call, 20
    lines for 3 models) is silenced where we call it, without configuring logging for the user."""
    code = (
        "import logging\n"
        "from blox_lat.exporters._quant import _quantise_piece\n"
        "_quantise_piece('stem', 'input', 't0', 1, 17, None)\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
        "assert logging.getLogger().filters == [], logging.getLogger().filters\n"
        "logging.getLogger('other').warning('Please consider this one')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pre-processing" not in proc.stderr, proc.stderr
    assert "Please consider this one" in proc.stderr  # other warnings still reach the user

"""``blox-lat measure`` through click's runner and as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.harness import read_journal


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


def _invoke(*args):
    return CliRunner().invoke(cli, ["measure", *args])


def test_measure_prints_table_and_summary_then_resumes(tmp_path, store):
    out = tmp_path / "camp"
    args = ["0,1", "--runs", "20", "--warmup-s", "0.02", "--out", str(out), "--store", str(store)]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "latency_ms" in result.output and "measured now" in result.output
    assert "[2/2]" in result.output  # plain progress lines when not on a terminal
    records = list(read_journal(out, kind="measurement"))
    assert [r["model_index"] for r in records] == [0, 1]
    again = _invoke(*args, "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert summary["measured"] == 0 and summary["already_done"] == 2 and summary["results"] == []


def test_measure_shard(tmp_path, store):
    result = _invoke("0:4", "--shard", "2/2", "--runs", "20", "--warmup-s", "0.02", "--out",
                     str(tmp_path), "--store", str(store), "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["selected"] == 2 and data["measured"] == 2
    from blox_lat import space as sp

    expected = [a.index for a in sp.shard(sp.select("0:4"), "2/2")]
    assert [r["model_index"] for r in data["results"]] == expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["nonsense-model"], "error:"),
        (["0", "--runs", "25"], "multiple of the group size"),
        (["0", "--device", "nope"], "unknown device 'nope'"),
        (["0", "--device", "gtx1080ti"], "needs an SSH host"),
        (["0", "--device", "gtx1080ti", "--connect", "nokey"], "KEY=VALUE"),
        (["0", "--device", "gtx1080ti", "--connect", "host=h", "--connect", "colour=red"], "unknown connection key"),
        (["0", "--device", "cpu", "--device", "cpu-int8"], "measure differently"),
        (["0", "--affinity", "x"], "--affinity"),
        (["0", "--shard", "3/2"], "error:"),
        (["0", "--device-file", "/nonexistent.toml"], "cannot read device file"),
        (["0", "--anchor-every", "0"], "--anchor-every"),
        (["0", "--max-attempts", "0"], "--max-attempts"),
        (["0", "--max-attempts", "many"], "--max-attempts"),
        (["0", "--device", "cpu", "--device", "cpu", "--anchors", "2"], "one device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_campaign(tmp_path, args, message):
    out = tmp_path / "never"
    result = _invoke(*args, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.strip().count("\n") == 0
    assert not out.exists()


def test_help_lists_measure_and_devices():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "measure" in result.output and "devices" in result.output
    help_text = CliRunner().invoke(cli, ["measure", "--help"]).output
    for option in ("--device", "--runs", "--out", "--shard", "--skip-failed", "--max-attempts"):
        assert option in help_text


def test_console_script_subprocess(tmp_path, store):
    exe = shutil.which("blox-lat")
    if exe is None:
        pytest.skip("the blox-lat console script is not installed (pip install -e .)")
    proc = subprocess.run([exe, "measure", "3", "--runs", "20", "--warmup-s", "0.02", "--out",
                           str(tmp_path), "--store", str(store), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["measured"] == 1 and data["results"][0]["latency_ms"] > 0
    bad = subprocess.run([exe, "measure", "3", "--runs", "7", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("blox-lat: error:")


def test_cv_threshold_default_is_the_librarys():
    from blox_lat.cli import measure as m
    from blox_lat.harness import DEFAULT_CV_THRESHOLD

    assert float(m.CV_THRESHOLD_SHOWN) == DEFAULT_CV_THRESHOLD == m._cv_threshold()
    assert f"[default: {m.CV_THRESHOLD_SHOWN}]" in CliRunner().invoke(cli, ["measure", "--help"]).output


def test_serial_anchors_from_the_cli_and_auto_off_for_the_plain_local_protocol(tmp_path, store):
    base = ["0:3", "--runs", "10", "--runs-per-group", "5", "--warmup-runs", "2", "--warmup-s", "0", "--interleave",
            "1", "--store", str(store), "--json"]
    plain = _invoke(*base, "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    assert not list(read_journal(tmp_path / "plain", kind="anchors"))  # auto: 0 for the plain local protocol
    anchored = _invoke(*base, "--anchors", "2", "--anchor-every", "2", "--out", str(tmp_path / "a"))
    assert anchored.exit_code == 0, anchored.output
    runs = list(read_journal(tmp_path / "a", kind="anchors"))
    assert [r["trigger"] for r in runs] == ["start", "every"]
    records = list(read_journal(tmp_path / "a", kind="measurement"))
    assert [r["set_id"] for r in records] == [runs[0]["set_id"]] * 2 + [runs[1]["set_id"]]
    other = _invoke(*base, "--anchors", "3", "--out", str(tmp_path / "a"))
    assert other.exit_code == 2 and "rerun with --anchors 2" in other.output


def test_progress_shows_thermal_waits_and_anchor_runs(capsys):
    from blox_lat.cli.measure import _Progress
    from blox_lat.harness import AnchorsTimed, ThermalWaited

    progress = _Progress(quiet=False)
    progress(ThermalWaited(device="sd888", waited_s=42.4, cool=True))
    progress(AnchorsTimed(trigger="thermal-wait", level=0.8123))
    progress(AnchorsTimed(trigger="every", level=None))
    err = capsys.readouterr().err.splitlines()
    assert err == ["  device sd888 waited 42 s for its thermal limit (cooled down)",
                   "  anchors timed (thermal-wait): level 0.812",
                   "  anchors timed (every): no level (an anchor failed)"]
    _Progress(quiet=True)(AnchorsTimed(trigger="start", level=1.0))
    assert capsys.readouterr().err == ""

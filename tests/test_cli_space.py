"""`blox-lat space ...` through click's runner, and once through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli

EXAMPLE = "[[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]]"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_info_json():
    result = run("space", "info", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["unique_models"] == 91_125 and data["invalid_raw_vectors"] == 123_201


@pytest.mark.parametrize(
    "name", [EXAMPLE, "c3bc16e69893c8ea08f1e89e61f4caa5", "24519", "full.conv.mbconv/seq.mbconv.mbconv/dense.conv.conv"])
def test_show_accepts_every_kind_of_name(name, reference):
    result = run("space", "show", name, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["hash"] == "c3bc16e69893c8ea08f1e89e61f4caa5" and data["index"] == 24519
    assert data["vector"] == json.loads(EXAMPLE)
    assert data["blocks"] == ["full.conv.mbconv", "seq.mbconv.mbconv", "dense.conv.conv"]
    assert data["flops"] == 2 * data["macs"] > 0 and data["params"] > 0
    human = run("space", "show", name)
    assert "c3bc16e69893c8ea08f1e89e61f4caa5" in human.output and "params" in human.output


def test_show_params_match_reference(reference):
    entry = reference["params"][0]
    data = json.loads(run("space", "show", entry["hash"], "--json").output)
    assert data["params"] == entry["params"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["space", "show", "99999"], "outside 0..91124"),
        (["space", "show", "[[[0],[1,1,1,1]],[[0],[1,0,0,0]],[[0],[1,1,1,1]]]"], "stage 1 is invalid"),
        (["space", "show", "nonsense"], "does not name a model"),
        (["space", "list", "5:3"], "index range"),
        (["space", "list", "@/no/such/file"], "cannot read selector file"),
        (["space", "list", "0:3", "--shard", "4/3"], "bad shard"),
        (["space", "frobnicate"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and lines[0].startswith("blox-lat: error:")
    assert "Traceback" not in result.output


def test_list_ndjson_and_table():
    result = run("space", "list", "0:4,random:3:2", "--json", "--cost")
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["index"] for r in rows][:4] == [0, 1, 2, 3] and len(rows) == 7
    assert all(r["params"] > 0 for r in rows)
    table = run("space", "list", "0:2")
    assert table.output.splitlines()[0].split() == ["index", "hash", "name"]
    assert len(table.output.splitlines()) == 3


def test_blocks_lists_45():
    rows = json.loads(run("space", "blocks", "--json").output)
    assert len(rows) == 45 and rows[9]["name"] == "conv"


def test_every_command_has_help_and_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = []

    def walk(command, path):
        assert command.help or command.short_help, f"{' '.join(path)} has no help text"
        subs = getattr(command, "list_commands", None)
        if subs is None:
            if f"blox-lat {' '.join(path)}" not in readme:
                missing.append(" ".join(path))
            return
        ctx = __import__("click").Context(command)
        for name in command.list_commands(ctx):
            walk(command.get_command(ctx, name), path + [name])

    walk(cli, [])
    assert missing == [], f"commands missing from README: {missing}"


def test_console_script_subprocess():
    exe = shutil.which("blox-lat")
    argv = [exe] if exe else [sys.executable, "-m", "blox_lat"]
    ok = subprocess.run([*argv, "space", "show", "0", "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["hash"] == "39554afd1b33a44663e653ad10137b9a"
    bad = subprocess.run([*argv, "space", "show", "bogus"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_closed_pipe_exits_0_quietly(extra):
    """`blox-lat space list all | head -1` exits 0 with nothing on stderr (click's own EPIPE
    handling exited 1). A real shell pipe: the reader goes away after one line."""
    exe = shutil.which("blox-lat")
    argv = exe if exe else f"{sys.executable} -m blox_lat"
    script = f'{argv} space list 0:20000 {" ".join(extra)} | head -1 >/dev/null; exit "${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""

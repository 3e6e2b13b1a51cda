"""Nothing a user passes to ``cluster slurm`` can run as a command of the generated script.

Every value that reaches the sbatch script (the job's arguments, ``--out``, ``--connect``,
``--setup``, ``--extra-sbatch`` and the named ``#SBATCH`` options) is checked for control
characters and quoted; ``#SBATCH`` values are checked against what sbatch takes; the job's own
options are checked by the job's own command before a script is written. Each case runs the
script that exists afterwards with bash (a stand-in ``python`` records the task's argv) and
checks that nothing the attacker wrote ran. The last test hands a script with awkward but
legal values to a real one-node Slurm.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from slurm_cluster import slurm_missing

from blox_lat import cluster as cl
from blox_lat.cli.main import cli

PWNED = "pwned"
TASK_ENV = {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1", "SLURMD_NODENAME": "node1", "SLURM_RESTART_COUNT": "0"}


def _fake_python(folder: Path) -> Path:
    """A ``python`` that writes the argv it was given (NUL-separated) next to itself and exits 0."""
    path = folder / "bin" / "python"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/bash\nprintf '%s\\0' \"$@\" > {shlex.quote(str(folder / 'argv'))}\n")
    path.chmod(0o755)
    return path


def _slurm(folder: Path, *args: str):
    python = _fake_python(folder)
    old = os.getcwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(cli, ["cluster", "slurm", *args, "--python", str(python), "--dry-run"])
    finally:
        os.chdir(old)


def _run_scripts(folder: Path) -> list[Path]:
    """Run every sbatch script under ``folder`` with bash, as a task would; return them."""
    scripts = sorted(folder.rglob("*.sbatch"))
    for script in scripts:
        subprocess.run(["bash", str(script)], cwd=folder, env={**os.environ, **TASK_ENV}, capture_output=True,
                       timeout=60, check=False)
    return scripts


def _argv(folder: Path) -> list[str]:
    return (folder / "argv").read_bytes().decode().split("\0")[:-1]


INJECTIONS = {
    "out-newline": ("measure", "0:2", "--runs", "10", "--out", "runs/x\ntouch pwned #", "--shards", "1"),
    "connect-newline": ("measure", "0:2", "--runs", "10", "--device", "gtx1080ti", "--connect",
                        "host=x\ntouch pwned #", "--shards", "1"),
    "extra-sbatch-newline": ("measure", "0:2", "--runs", "10", "--shards", "1", "--extra-sbatch", "--mem=1G\ntouch pwned"),
    "setup-newline": ("measure", "0:2", "--runs", "10", "--shards", "1", "--setup", "module load x\ntouch pwned"),
    "selector-carriage-return": ("measure", "0:2\rtouch pwned", "--runs", "10", "--shards", "1"),
}


@pytest.mark.parametrize("name", sorted(INJECTIONS))
def test_control_characters_are_refused_and_nothing_runs(tmp_path, name):
    result = _slurm(tmp_path, *INJECTIONS[name])
    scripts = _run_scripts(tmp_path)
    assert not (tmp_path / PWNED).exists(), f"the injected command ran ({[s.name for s in scripts]})"
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "control character" in lines[0], result.stderr
    assert not scripts


@pytest.mark.parametrize("option, value, hint", [
    ("--time", "soon; rm -rf /", "MINUTES, H:M:S"),
    ("--time", "1:00:00 --wrap=x", "MINUTES, H:M:S"),
    ("--partition", "gpu partition", "partition name"),
    ("--gres", "gpu:1 #", "NAME[:TYPE][:COUNT]"),
    ("--account", "a'b", "account name"),
    ("--extra-sbatch", "mem=1G", "--NAME=VALUE"),
])
def test_sbatch_values_are_checked_against_what_sbatch_takes(tmp_path, option, value, hint):
    result = _slurm(tmp_path, "measure", "0:2", "--runs", "10", "--shards", "1", option, value)
    assert result.exit_code == 2, result.output
    assert hint in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(tmp_path.rglob("*.sbatch"))


@pytest.mark.parametrize("option, value", [("--time", "2-00:00:00"), ("--time", "90"), ("--time", "UNLIMITED"),
                                           ("--partition", "gpu,debug"), ("--gres", "gpu:a100:2"),
                                           ("--extra-sbatch", "--mem=16G"), ("--extra-sbatch", "--exclusive")])
def test_good_sbatch_values_pass(tmp_path, option, value):
    result = _slurm(tmp_path, "measure", "0:2", "--runs", "10", "--shards", "1", option, value)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("args, fragment", [
    (("measure", "0:4", "--runs", "7"), "--runs 7"),
    (("measure", "0:4", "--runs", "20", "--interleave", "0"), "--interleave"),
    (("measure", "0:4", "--runs", "20", "--timeout", "0"), "--timeout"),
    (("measure", "0:4", "--runs", "20", "--device", "nosuchdevice"), "nosuchdevice"),
    (("train", "normal", "0:4", "--out", "t", "--fraction", "1/9"), "--teacher"),
])
def test_job_options_are_checked_by_the_job_before_a_script_is_written(tmp_path, args, fragment):
    result = _slurm(tmp_path, *args, "--shards", "2")
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.rglob("*.sbatch"))


AWKWARD = ["runs/with space/$(touch pwned)/`touch pwned`;touch pwned/'q\"/{shard}"]


def test_awkward_legal_values_reach_the_task_verbatim(tmp_path):
    """Spaces, quotes, ``$(...)``, backticks and ``;`` are data: the task gets them unchanged."""
    out = AWKWARD[0]
    connect = "host=h; touch pwned"
    result = _slurm(tmp_path, "measure", "0:2", "--runs", "10", "--device", "gtx1080ti", "--connect", connect,
                    "--out", out, "--shards", "1", "--extra-sbatch", "--comment=a b; touch pwned")
    assert result.exit_code == 0, result.stderr
    (script,) = _run_scripts(tmp_path)
    assert not (tmp_path / PWNED).exists()
    argv = _argv(tmp_path)
    assert argv[:3] == ["-m", "blox_lat.cli.cluster", "measure"]
    assert argv[argv.index("--connect") + 1] == connect
    outs = [argv[i + 1] for i, word in enumerate(argv) if word == "--out"]
    assert outs[0] == out.replace("{shard}", "1")  # the placeholder becomes the task's value
    assert outs[-1] == str(tmp_path / out) + "/shard-1-of-1"
    assert "#SBATCH '--comment=a b; touch pwned'" in script.read_text()


def test_a_damaged_job_record_cannot_carry_a_command(tmp_path):
    result = _slurm(tmp_path, "measure", "0:2", "--runs", "10", "--out", "o", "--shards", "1")
    assert result.exit_code == 0, result.stderr
    (record,) = (tmp_path / "o" / "slurm").glob("*.json")
    data = json.loads(record.read_text())
    data["args"].append("x\ntouch pwned")
    record.write_text(json.dumps(data))
    with pytest.raises(cl.ClusterError, match="control character"):
        cl.load_jobs(tmp_path / "o")
    del data["python"]
    record.write_text(json.dumps(data))
    with pytest.raises(cl.ClusterError, match="damaged"):
        cl.load_jobs(tmp_path / "o")


WHY = slurm_missing()


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_real_sbatch_reads_quoted_sbatch_lines(slurm, tmp_path_factory):
    """A real sbatch takes the quoted ``--output``/``--chdir`` lines of an awkward folder name,
    writes the task's log there and runs the task with its arguments intact."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="blox lat 'q' "))  # munge/slurmd read it: not under pytest's 0700 folders
    root.chmod(0o755)
    python = _fake_python(root)
    proc = subprocess.run([str(Path(sys.executable).with_name("blox-lat")), "cluster", "slurm", "measure", "0:2",
                           "--runs", "10", "--out", "o $(touch pwned)", "--shards", "1", "--python", str(python),
                           "--extra-sbatch=--comment=x y"],
                          cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (job,) = cl.load_jobs(root / "o $(touch pwned)")
    slurm.wait_empty(f"blox-lat-{job.name}")
    deadline = time.monotonic() + 30
    while not (root / "argv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (root / PWNED).exists()
    assert _argv(root)[3] == "0:2"
    log = job.log_path(1)
    assert log.exists() and f"job {job.submissions[-1]['job_id']}_1 on " in log.read_text()
    shutil.rmtree(root)

"""Slurm: the sbatch array script of a :class:`ClusterJob`, submitting it, and ``squeue``'s view.

The script runs one shard per array task (``--shard ${SLURM_ARRAY_TASK_ID}/N``) with the
Python environment the job was written from (its ``activate`` is sourced when it has one), in
the folder it was written from, appending to one log per shard. ``--requeue`` lets Slurm put a
preempted task back in the queue; the task runs ``python -m blox_lat.cli.cluster`` (``blox-lat``
with the SIGTERM that precedes Slurm's SIGKILL handled as Ctrl-C), and every command skips what
an earlier run finished, so a requeued or resubmitted task resumes. Arguments may hold
``{shard}``, ``{shards}`` and ``{node}`` (e.g. a device profile file per host:
``--device-file 'hosts/{node}.toml'``); they become the task's values in the script.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blox_lat._fs import atomic_write
from blox_lat.cluster._job import ClusterError, ClusterJob, check_script_text

__all__ = ["SchedulerView", "render_script", "sbatch_options", "squeue", "submit", "write_script"]

_PLACEHOLDERS = {"shard": "${SLURM_ARRAY_TASK_ID}", "shards": None, "node": "${SLURMD_NODENAME}"}
_PLACEHOLDER_RE = re.compile(r"\{(shard|shards|node)\}")
_JOB_ID_RE = re.compile(r"(\d+)(?:;\S+)?")
#: what sbatch takes for --time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit
_TIME_RE = re.compile(r"(?:\d+(?::\d+){0,2}|\d+-\d+(?::\d+){0,2}|UNLIMITED|INFINITE)", re.IGNORECASE)
#: partition and account names (sbatch takes a comma-separated list of partitions)
_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+(?:,[A-Za-z0-9_.+-]+)*")
#: --gres=name[:type][:count][,...]
_GRES_RE = re.compile(r"[A-Za-z0-9_.+-]+(?::[A-Za-z0-9_.+-]+)*(?:,[A-Za-z0-9_.+-]+(?::[A-Za-z0-9_.+-]+)*)*")
#: an extra sbatch option: --long-name or --long-name=VALUE (the value is quoted in the script)
_EXTRA_RE = re.compile(r"--[a-z][a-z0-9-]*(?:=.*)?", re.DOTALL)
_CHECKS = {"partition": (_NAME_RE, "a partition name or a comma-separated list of them"),
           "account": (_NAME_RE, "an account name"),
           "gres": (_GRES_RE, "NAME[:TYPE][:COUNT], e.g. gpu:1"),
           "time": (_TIME_RE, "MINUTES, H:M:S, D-H, D-H:M:S or UNLIMITED, e.g. 2-00:00:00")}


def sbatch_options(named: dict[str, object], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``#SBATCH`` options from named values (``partition``, ``gres``, ``time``, ``account``,
    ``cpus-per-task``; None: left out) and extra ``--name[=value]`` words, each checked against
    what sbatch accepts before it is written into a script."""
    options = []
    for name, value in named.items():
        if value is None:
            continue
        text = str(value)
        check = _CHECKS.get(name)
        if check is not None and not check[0].fullmatch(text):
            raise ClusterError(f"--{name} {text!r} is not what sbatch takes: give {check[1]}")
        options.append(f"--{name}={text}")
    for word in extra:
        check_script_text(word, "--extra-sbatch")
        if not _EXTRA_RE.fullmatch(word):
            raise ClusterError(f"--extra-sbatch {word!r} is not an sbatch option: give --NAME or --NAME=VALUE, "
                               "e.g. --extra-sbatch=--mem=16G")
        options.append(word)
    return tuple(options)


def _word(arg: str, shards: int) -> str:
    """One shell word: quoted as is, or double-quoted with placeholders expanded by bash."""
    if not _PLACEHOLDER_RE.search(arg):
        return shlex.quote(arg)
    parts = []
    for piece in _PLACEHOLDER_RE.split(arg):
        if piece in _PLACEHOLDERS:
            parts.append(_PLACEHOLDERS[piece] or str(shards))
        else:
            parts.append(re.sub(r'([\\"$`])', r"\\\1", piece))
    return '"' + "".join(parts) + '"'


def _job_args(job: ClusterJob) -> list[str]:
    """The command line of one task (shell words)."""
    words = [_word(a, job.shards) for a in job.args]
    n = job.shards
    if job.command[0] == "export":  # no --shard on export: each shard's models in a selector file
        selector = job.units["selector_at"]
        words[selector] = shlex.quote(f"@{job.folder / job.name}/") + '"shard-${SLURM_ARRAY_TASK_ID}.sel"'
        return words
    if job.command[0] == "measure":  # a campaign folder per shard (the last --out wins)
        words += ["--out", shlex.quote(f"{job.out}/shard-") + '"${SLURM_ARRAY_TASK_ID}"' + shlex.quote(f"-of-{n}")]
    return words + ["--shard", f'"${{SLURM_ARRAY_TASK_ID}}/{n}"']


def render_script(job: ClusterJob) -> str:
    """The sbatch script (text) that runs ``job`` as an array of ``job.shards`` tasks."""
    python = Path(job.python)
    activate = python.parent / "activate"
    log = job.folder / job.name / "shard-%a.log"
    lines = [
        "#!/bin/bash",
        f"# {job.command_line()}",
        f"# as {job.shards} array tasks, written by 'blox-lat cluster slurm'. Resubmit unfinished shards with",
        f"#   sbatch --array=K[,K...] {shlex.quote(str(job.script_path))}",
        "# and see progress with",
        f"#   blox-lat cluster status {shlex.quote(job.out)}",
        f"#SBATCH --job-name=blox-lat-{job.name}",
        f"#SBATCH --array=1-{job.shards}",
        f"#SBATCH {shlex.quote(f'--output={log}')}",  # sbatch reads #SBATCH words with shell quoting
        "#SBATCH --open-mode=append",
        f"#SBATCH {shlex.quote(f'--chdir={job.cwd}')}",
        "#SBATCH --ntasks=1",
        "#SBATCH --requeue",
        *(f"#SBATCH {shlex.quote(opt)}" for opt in job.sbatch),
        "set -euo pipefail",
        ('echo "== $(date -u +%FT%TZ) job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname),'
         ' restart ${SLURM_RESTART_COUNT:-0}"'),
    ]
    if activate.is_file():
        lines += ["# the Python environment the job was written from", f"source {shlex.quote(str(activate))}"]
    lines += list(job.setup)
    # blox-lat with SIGTERM handled as Ctrl-C (blox_lat.cli.cluster.run_task)
    lines.append(" ".join(["exec", shlex.quote(str(python)), "-m", "blox_lat.cli.cluster", *job.command,
                           *_job_args(job)]))
    return "\n".join(lines) + "\n"


def write_script(job: ClusterJob) -> Path:
    """Write the script, the per-shard selector files (export) and the job record; return the script."""
    from blox_lat.cluster._job import all_shard_units

    (job.folder / job.name).mkdir(parents=True, exist_ok=True)
    if job.command[0] == "export":
        for k, names in enumerate(all_shard_units(job), start=1):
            atomic_write(job.folder / job.name / f"shard-{k}.sel", "\n".join(names) + "\n", mode=0o644)
    atomic_write(job.script_path, render_script(job), mode=0o755)
    job.save()
    return job.script_path


def _sbatch() -> str:
    path = shutil.which("sbatch")
    if path is None:
        raise ClusterError("sbatch not found on PATH: run this on a Slurm login node, or write the script only "
                           "with --dry-run and submit it with sbatch where Slurm is")
    return path


def submit(job: ClusterJob, array: str | None = None) -> ClusterJob:
    """``sbatch`` the job's script (``array``: only these tasks, e.g. ``2,5``); the record gets the job id."""
    cmd = [_sbatch(), "--parsable"] + ([f"--array={array}"] if array else []) + [str(job.script_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=job.cwd, check=False)
    m = _JOB_ID_RE.fullmatch(proc.stdout.strip())
    if proc.returncode != 0 or not m:
        detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}").splitlines()[-1]
        raise ClusterError(f"sbatch refused {job.script_path}: {detail}")
    done = job.with_submission(m.group(1), array or f"1-{job.shards}")
    done.save()
    return done


@dataclass(frozen=True)
class SchedulerView:
    """What ``squeue`` says about a job's array tasks: task -> state (RUNNING, PENDING...), or why it could not say."""

    tasks: dict[int, dict[str, str]]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": {str(k): v for k, v in self.tasks.items()}, "error": self.error}


def squeue(job: ClusterJob, timeout_s: float = 20.0) -> SchedulerView:
    """The queued and running tasks of ``job`` (by job name, so plain ``sbatch`` resubmissions count)."""
    path = shutil.which("squeue")
    if path is None:
        return SchedulerView({}, "squeue not found on PATH")
    cmd = [path, "--noheader", "--array", f"--name=blox-lat-{job.name}", "--format=%A|%K|%T|%N|%M|%r"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return SchedulerView({}, f"squeue did not answer within {timeout_s:.0f} s")
    if proc.returncode != 0:
        return SchedulerView({}, (proc.stderr.strip() or f"squeue exit status {proc.returncode}").splitlines()[-1])
    tasks: dict[int, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6 or not fields[1].isdigit():
            continue
        job_id, task, state, node, used, reason = fields
        tasks[int(task)] = {"job_id": job_id, "state": state, "node": node, "time": used, "reason": reason}
    return SchedulerView(tasks)

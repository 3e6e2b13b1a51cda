"""A cluster job: one ``blox-lat`` command split into N shards, and what each shard must produce.

The job's description is written to ``OUT/slurm/<name>.json`` (``kind: cluster-job``, schema
1) next to its sbatch script and logs, so that ``blox-lat cluster status OUT`` can tell from the
shared folder alone which models of which shard are done. Schema history: 1 - first version.

What a shard produces (its *units*) and where:

- ``train normal|finetune``: ``<records>/<hash>-<seed>.json`` (``.failed.json`` when diverged);
  ``<records>/checkpoints/<hash>-<seed>.pt`` while a model is half trained.
- ``train distill``: ``<records>/s<S>-b<B>.json``; the shard splits the blocks, as the command does.
- ``measure``: the shard's own campaign folder ``OUT/shard-K-of-N`` (one journal per task:
  appends from several nodes to one file are not atomic on NFS); ``dataset build --from OUT``
  reads every shard's journal.
- ``export``: artifact records in the store ``OUT`` (format and batch match).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from blox_lat._fs import atomic_write, utc_now
from blox_lat.errors import BloxLatError

__all__ = ["JOBS", "JOB_SCHEMA", "ClusterError", "ClusterJob", "check_script_text", "load_jobs", "make_job",
           "shard_units"]

JOB_SCHEMA = 1
SLURM_DIR = "slurm"
#: the commands a cluster job runs, as ``blox-lat`` spells them
JOBS = ("export", "train normal", "train distill", "train finetune", "measure")
_TEACHER_NAME = re.compile(r"([0-9a-f]{32})-\d+\.pt")
#: C0 and C1 control characters and DEL: a newline in a value would end a line of the script
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ClusterError(BloxLatError):
    """A cluster job cannot be written, submitted or read; the message says what to change."""


def check_script_text(value: str, what: str) -> None:
    """Refuse a value bound for a generated script that holds a control character: a newline
    would end a comment or ``#SBATCH`` line and start a command of its own."""
    if not isinstance(value, str):
        raise ClusterError(f"{what} {value!r} is not text")
    bad = _CONTROL.search(value)
    if bad:
        raise ClusterError(f"{what} {value!r} holds the control character {bad.group()!r}; a job script takes "
                           "printable text only: remove it")


def index_ranges(indices: list[int]) -> list[list[int]]:
    """Sorted unique model indices as ``[start, stop)`` ranges (``all`` is one range)."""
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    return ranges


@dataclass(frozen=True)
class ClusterJob:
    """One ``blox-lat`` command run as an array of ``shards`` tasks (the record on disk).

    ``args`` are the command's own arguments exactly as given (without ``--shard``); ``units``
    says what a shard produces and where (see the module docstring).
    """

    command: tuple[str, ...]
    args: tuple[str, ...]
    shards: int
    out: str
    cwd: str
    models: tuple[tuple[int, int], ...]
    units: dict[str, Any]
    python: str
    sbatch: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    submissions: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if " ".join(self.command) not in JOBS:
            raise ClusterError(f"cannot run {' '.join(self.command)!r} on a cluster; use one of: {', '.join(JOBS)}")
        if not isinstance(self.shards, int) or self.shards < 1:
            raise ClusterError(f"--shards must be a positive integer, got {self.shards!r}")
        for what, values in (("argument", self.args), ("--out", (self.out,)), ("working folder", (self.cwd,)),
                             ("--python", (self.python,)), ("sbatch option", self.sbatch), ("--setup line", self.setup)):
            for value in values:
                check_script_text(value, what)

    @property
    def name(self) -> str:
        """``<command>-<8 hex digits of the arguments>``: the same job always gets the same name."""
        text = json.dumps([list(self.command), list(self.args), self.shards, self.cwd])
        return "-".join(self.command) + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def folder(self) -> Path:
        """``OUT/slurm``: the script, this record and the logs."""
        return Path(self.out) / SLURM_DIR

    @property
    def record_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    @property
    def script_path(self) -> Path:
        return self.folder / f"{self.name}.sbatch"

    def log_path(self, shard: int | str) -> Path:
        return self.folder / self.name / f"shard-{shard}.log"

    def shard_out(self, shard: int | str) -> Path:
        """A measure shard's campaign folder."""
        return Path(self.out) / f"shard-{shard}-of-{self.shards}"

    def command_line(self) -> str:
        return shlex.join(["blox-lat", *self.command, *self.args])

    def to_dict(self) -> dict[str, Any]:
        return {"schema": JOB_SCHEMA, "kind": "cluster-job", "name": self.name, "command": list(self.command),
                "args": list(self.args), "shards": self.shards, "out": self.out, "cwd": self.cwd,
                "models": [list(r) for r in self.models], "units": self.units, "python": self.python,
                "sbatch": list(self.sbatch), "setup": list(self.setup), "submissions": list(self.submissions)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "job record") -> ClusterJob:
        if data.get("kind") != "cluster-job":
            raise ClusterError(f"{where} is not a cluster job record")
        if int(data.get("schema", 0)) > JOB_SCHEMA:
            raise ClusterError(f"{where}: schema {data['schema']} is newer than this blox-lat reads ({JOB_SCHEMA}); "
                               "upgrade blox-lat")
        try:
            return cls(command=tuple(data["command"]), args=tuple(data["args"]), shards=int(data["shards"]),
                       out=data["out"], cwd=data["cwd"], models=tuple(tuple(r) for r in data["models"]),
                       units=dict(data["units"]), python=data["python"], sbatch=tuple(data.get("sbatch", ())),
                       setup=tuple(data.get("setup", ())), submissions=tuple(data.get("submissions", ())))
        except ClusterError as exc:
            raise ClusterError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(f"{where} is damaged ({type(exc).__name__}: {exc}); write it again with "
                               "'blox-lat cluster slurm ... --dry-run'") from None

    def with_submission(self, job_id: str, array: str) -> ClusterJob:
        return replace(self, submissions=(*self.submissions, {"job_id": job_id, "array": array, "at": utc_now()}))

    def save(self) -> Path:
        """Write the record atomically (temp file + rename; no lock needed on NFS)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.record_path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", mode=0o644)
        return self.record_path




def load_jobs(out: str | os.PathLike[str]) -> list[ClusterJob]:
    """Every cluster job recorded in ``OUT/slurm``, oldest submission first."""
    folder = Path(out) / SLURM_DIR
    if not folder.is_dir():
        raise ClusterError(f"no cluster jobs in {out} (no {SLURM_DIR}/ folder): submit one with "
                           "'blox-lat cluster slurm JOB ... --shards N', whose output folder this is")
    jobs = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ClusterError(f"{path} is damaged ({exc}); write it again with 'blox-lat cluster slurm ... --dry-run'") from None
        jobs.append(ClusterJob.from_dict(data, str(path)))
    return sorted(jobs, key=lambda j: (j.submissions[0]["at"] if j.submissions else "", j.name))


# -- what a shard produces -----------------------------------------------------------------

def distill_blocks_of(indices: list[int]) -> list[tuple[int, int]]:
    """``(stage, block)`` pairs the models use (what ``train distill`` distils for them)."""
    from blox_lat import space as sp

    return sorted({(s, sp.from_index(i).blocks[s]) for i in indices for s in range(3)})


def all_shard_units(job: ClusterJob) -> list[list[str]]:
    """What every shard produces (index ``K-1``: shard K), in one pass over the selection."""
    from blox_lat import space as sp

    n = job.shards
    buckets: list[list[str]] = [[] for _ in range(n)]
    indices = [i for a, b in job.models for i in range(a, b)]
    kind = job.units["type"]
    if kind == "blocks":  # train distill shards the blocks, not the models
        for s, b in distill_blocks_of(indices):
            buckets[(s * 45 + b) % n].append(f"s{s}-b{b}")
        return buckets
    suffix = f"-{job.units['seed']}" if kind == "records" else ""
    for i in indices:
        buckets[i % n].append(sp.from_index(i).hash + suffix)
    return buckets


def shard_units(job: ClusterJob, shard: int) -> list[str]:
    """Names of what shard ``shard`` (1-based) produces: record stems, or model hashes."""
    return all_shard_units(job)[shard - 1]


def records_folder(command: tuple[str, ...], params: dict[str, Any]) -> Path:
    """Where ``train normal|distill|finetune`` with these parsed options writes its records."""
    from blox_lat import training as tr
    from blox_lat.training import records_folder as training_folder  # the one place the layout is defined

    setting = command[1]
    extra = {"init": params.get("init")} if setting == "distill" else {"fraction": params.get("fraction")}
    cfg = tr.default_config(setting, epochs=params.get("epochs"), seed=params.get("seed"), **extra)
    teacher = params.get("teacher")
    return training_folder(Path(params["out"]).absolute(), cfg, teacher_hash(teacher) if teacher else None)


def teacher_hash(path: str) -> str:
    """The model hash of a teacher weights file; from its name (``<hash>-<seed>.pt``) when the
    file does not exist yet (a job submitted behind the normal run that writes it)."""
    p = Path(path)
    if p.exists():
        from blox_lat.training import load_torch

        h = load_torch(p, "teacher").get("model_hash")
        if isinstance(h, str):
            return h
    m = _TEACHER_NAME.fullmatch(p.name)
    if not m:
        raise ClusterError(f"--teacher {path}: no such weights file, and its name is not <hash>-<seed>.pt; "
                           "pass OUT/normal/weights/<hash>-<seed>.pt")
    return m.group(1)


def make_job(command: tuple[str, ...], args: tuple[str, ...], params: dict[str, Any], shards: int, *,
             selector_at: int | None = None, python: str | None = None, sbatch: tuple[str, ...] = (),
             setup: tuple[str, ...] = (), cwd: str | None = None) -> ClusterJob:
    """The job for ``blox-lat COMMAND ARGS`` split into ``shards`` (``params``: ARGS as the
    command parsed them; ``selector_at``: where the selector is in ARGS, for ``export``)."""
    import sys

    from blox_lat import space as sp

    if params.get("shard") is not None:
        raise ClusterError("leave out --shard: each array task gets its own --shard K/N (use --shards N)")
    archs = sp.select(params["selector"])
    if not archs:
        raise ClusterError(f"selector {params['selector']!r} names no models")
    job = command[0]
    if job == "train":
        folder = records_folder(command, params)
        units: dict[str, Any] = ({"type": "blocks", "folder": str(folder)} if command[1] == "distill"
                                 else {"type": "records", "folder": str(folder), "seed": params["seed"]})
        out = params["out"]
    elif job == "measure":
        out = params.get("out_dir") or f"runs/{params.get('record_as') or (params.get('device_names') or ('cpu',))[0]}"
        units = {"type": "journals"}
    else:
        from blox_lat import exporters as ex

        fmt = ex.get_format(params["fmt"])
        batch = fmt.default_batch if params.get("batch") is None else params["batch"]
        if selector_at is None:
            raise ClusterError("export needs the position of its selector among the arguments")
        units = {"type": "store", "format": params["fmt"], "batch": batch, "selector_at": selector_at}
        out = params["out"]
    if not 1 <= shards <= len(archs):
        raise ClusterError(f"--shards {shards}: give 1 to {len(archs)} (one shard per model at most)")
    return ClusterJob(command=tuple(command), args=tuple(args), shards=shards, out=str(Path(out).absolute()),
                      cwd=cwd or os.getcwd(), models=tuple(tuple(r) for r in index_ranges([a.index for a in archs])),
                      units=units, python=python or sys.executable, sbatch=tuple(sbatch), setup=tuple(setup))

"""``cluster status``: per shard, what is done, failed and left, read from the shared outputs.

The outputs are the truth (records, journals, store records); ``squeue`` adds which tasks are
queued or running when it answers. The rate is the units finished since the job was first
submitted over the time since; the ETA is what is left at that rate.

A job written with ``cluster slurm --dry-run`` and never submitted (no submission recorded, no
task in squeue, no shard log, nothing done, failed or in progress) is ``not submitted``: its
shards are not "unknown", and :meth:`JobStatus.submit_hint` is the command that submits it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from blox_lat.cluster._job import ClusterJob, all_shard_units, load_jobs
from blox_lat.cluster._slurm import SchedulerView, squeue

__all__ = ["JobStatus", "ShardStatus", "cluster_status", "job_status"]


@dataclass(frozen=True)
class ShardStatus:
    """One array task: its units by outcome and the scheduler's state (``None``: not queued)."""

    shard: int
    total: int
    done: int
    failed: int
    in_progress: int
    scheduler: str | None
    log: str
    scheduler_known: bool = True
    submitted: bool = True

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    @property
    def state(self) -> str:
        """``done``, the scheduler's state (running, pending...), ``not submitted`` (its job never
        was), ``stopped`` (work left, not queued) or ``unknown`` (work left, the scheduler not
        reachable)."""
        if self.remaining == 0:
            return "done" if self.scheduler is None else self.scheduler.lower()
        if self.scheduler is not None:
            return self.scheduler.lower()
        if not self.submitted:
            return "not submitted"
        return "stopped" if self.scheduler_known else "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {"shard": self.shard, "state": self.state, "total": self.total, "done": self.done,
                "failed": self.failed, "remaining": self.remaining, "in_progress": self.in_progress,
                "scheduler": self.scheduler, "log": self.log}


@dataclass(frozen=True)
class JobStatus:
    job: ClusterJob
    shards: tuple[ShardStatus, ...]
    scheduler_error: str | None
    rate_per_h: float | None
    eta_s: float | None
    submitted: bool = True

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(s, k) for s in self.shards) for k in ("total", "done", "failed", "remaining", "in_progress")}

    def stopped(self) -> list[int]:
        """Shards with work left that no scheduler task is working on (resubmit these)."""
        return [s.shard for s in self.shards if s.state == "stopped"]

    def resubmit_hint(self) -> str | None:
        stopped = self.stopped()
        if not stopped:
            return None
        return f"sbatch --array={','.join(map(str, stopped))} {self.job.script_path}"

    def submit_hint(self) -> str | None:
        """The command that submits a job never submitted (written with ``--dry-run``)."""
        if self.submitted or not self.totals()["remaining"]:
            return None
        return f"sbatch {self.job.script_path}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.job.name, "command": self.job.command_line(), "shards": len(self.shards),
                "script": str(self.job.script_path),
                "submitted": self.submitted, "job_ids": [s["job_id"] for s in self.job.submissions],
                **self.totals(), "rate_per_h": None if self.rate_per_h is None else round(self.rate_per_h, 3),
                "eta_s": None if self.eta_s is None else round(self.eta_s), "scheduler_error": self.scheduler_error,
                "resubmit": self.resubmit_hint(), "submit": self.submit_hint(), "per_shard": [s.to_dict() for s in self.shards]}


# -- finished units and when ----------------------------------------------------------------

def _records(folder: Path) -> tuple[dict[str, float], set[str], set[str]]:
    """(record stem -> mtime, failed stems, stems with a checkpoint) of a training records folder."""
    done: dict[str, float] = {}
    failed: set[str] = set()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return done, failed, set()
    for entry in entries:
        name = entry.name
        if name.endswith(".failed.json"):
            failed.add(name[: -len(".failed.json")])
        elif name.endswith(".json") and not name.startswith("."):
            done[name[:-5]] = entry.stat().st_mtime
    try:
        partial = {e.name[:-3] for e in os.scandir(folder / "checkpoints") if e.name.endswith(".pt")}
    except FileNotFoundError:
        partial = set()
    return done, failed - set(done), partial


def _journal(folder: Path) -> tuple[dict[str, float], set[str], set[str]]:
    from blox_lat.harness import campaign_status

    if not (folder / "journal.jsonl").exists():
        return {}, set(), set()
    state = campaign_status(folder)
    done = {h: datetime.fromisoformat(r["recorded_at"]).timestamp() for h, r in state["done"].items()}
    return done, set(state["failed"]), set()


def _store(root: Path, fmt: str, batch: int) -> tuple[dict[str, float], set[str], set[str]]:
    done: dict[str, float] = {}
    for path in (root / "objects").glob("*/*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now; seen next time
        if isinstance(record, dict) and record.get("format") == fmt and record.get("batch") == batch:
            done[record["model_hash"]] = path.stat().st_mtime
    return done, set(), set()


def job_status(job: ClusterJob, *, scheduler: bool = True, now: float | None = None) -> JobStatus:
    """Where ``job`` stands, from its outputs (and ``squeue`` unless ``scheduler`` is False)."""
    units = job.units
    view = squeue(job) if scheduler else SchedulerView({}, "not asked")
    shared: tuple[dict[str, float], set[str], set[str]] | None = None
    if units["type"] in ("records", "blocks"):
        shared = _records(Path(units["folder"]))
    elif units["type"] == "store":
        shared = _store(Path(job.out), units["format"], int(units["batch"]))
    counts, finished = [], []
    for k, names in enumerate(all_shard_units(job), start=1):
        done, failed, partial = shared if shared is not None else _journal(job.shard_out(k))
        times = [done[n] for n in names if n in done]
        finished += times
        task = view.tasks.get(k)
        counts.append((k, len(names), len(times), sum(n in failed for n in names if n not in done),
                       sum(n in partial for n in names if n not in done and n not in failed),
                       task["state"] if task else None, str(job.log_path(k)), view.error is None))
    submitted = bool(job.submissions or view.tasks or any(c[2] or c[3] or c[4] for c in counts)
                     or any(Path(job.log_path(1)).parent.glob("shard-*.log")))
    shards = [ShardStatus(*c, submitted=submitted) for c in counts]
    rate = eta = None
    if job.submissions:
        start = datetime.fromisoformat(job.submissions[0]["at"]).timestamp()
        now = time.time() if now is None else now
        recent = sum(t >= start - 1 for t in finished)
        if recent and now > start:
            rate = recent / (now - start) * 3600
            eta = sum(s.remaining for s in shards) / rate * 3600
    return JobStatus(job, tuple(shards), view.error, rate, eta, submitted)


def cluster_status(out: str | os.PathLike[str], *, scheduler: bool = True) -> list[JobStatus]:
    """The status of every cluster job written into ``out``."""
    return [job_status(job, scheduler=scheduler) for job in load_jobs(out)]

"""Running ``blox-lat`` commands on a cluster: Slurm array jobs over ``--shard K/N``, and their status.

A :class:`ClusterJob` is one command (``export``, ``train normal|distill|finetune``,
``measure``) split into N shards; :func:`write_script` writes its sbatch array script into the
command's output folder (``OUT/slurm/``), :func:`submit` hands it to ``sbatch`` and
:func:`cluster_status` reads, from the shared folder itself, what each shard has finished
(plus ``squeue``'s view when it answers). See docs/cluster.md.
"""

from blox_lat.cluster._job import (
    JOBS,
    ClusterError,
    ClusterJob,
    check_script_text,
    load_jobs,
    make_job,
    shard_units,
)
from blox_lat.cluster._slurm import (
    SchedulerView,
    render_script,
    sbatch_options,
    squeue,
    submit,
    write_script,
)
from blox_lat.cluster._status import JobStatus, ShardStatus, cluster_status, job_status

__all__ = [
    "JOBS",
    "ClusterError",
    "ClusterJob",
    "JobStatus",
    "SchedulerView",
    "ShardStatus",
    "check_script_text",
    "cluster_status",
    "job_status",
    "load_jobs",
    "make_job",
    "render_script",
    "sbatch_options",
    "shard_units",
    "squeue",
    "submit",
    "write_script",
]

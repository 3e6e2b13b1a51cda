"""``blox-lat cluster``: run export, train and measure as Slurm array jobs; see where they stand."""

from __future__ import annotations

import importlib
import re
import sys

import click

from blox_lat.cli._output import emit_json, emit_pairs, emit_table, json_option

#: JOB words -> the click command that runs it ("module:attribute[.subcommand]")
_COMMANDS = {
    ("export",): ("blox_lat.cli.export", "export", None),
    ("measure",): ("blox_lat.cli.measure", "measure", None),
    ("train", "normal"): ("blox_lat.cli.train", "train", "normal"),
    ("train", "distill"): ("blox_lat.cli.train", "train", "distill"),
    ("train", "finetune"): ("blox_lat.cli.train", "train", "finetune"),
}


@click.group()
def cluster() -> None:
    """Run the whole space on a Slurm cluster: one array task per shard, resumable, with status."""


def _split_job(words: tuple[str, ...]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    for size in (2, 1):
        key = tuple(words[:size])
        if key in _COMMANDS:
            module, attr, sub = _COMMANDS[key]
            command = getattr(importlib.import_module(module), attr)
            return key, (command.commands[sub] if sub else command), list(words[size:])
    raise click.UsageError("JOB is one of: export, train normal, train distill, train finetune, measure "
                           "(e.g. 'blox-lat cluster slurm train normal all --out runs --shards 64')")


def _parse(job: tuple[str, ...], command: click.Command, args: list[str]) -> dict:
    """The job's options as the command itself parses and checks them (a bad option fails
    here, on the login node, not in every array task)."""
    with command.make_context(" ".join(["blox-lat", *job]), list(args)) as ctx:
        params = dict(ctx.params)
    check = _PREFLIGHT.get(job)
    if check is not None:
        check(params)
    return params


#: an argument that becomes each task's own value ({shard}, {shards}, {node})
_PER_TASK = re.compile(r"\{(?:shard|shards|node)\}")


def _check_measure(params: dict) -> None:
    """What ``measure`` checks before it measures: its options resolved into the campaign the
    library would run (devices, protocol, anchors, attempts, limits)."""
    from blox_lat.cli import measure as m

    m._parse_affinity(params["affinity"])
    if any(_PER_TASK.search(f) for f in params["device_files"]):  # a node's own file: read on the node
        from blox_lat.harness import TimingProtocol

        m._check_limits(params["record_as"])
        for option, low in (("max_attempts", 1), ("anchor_every", 1), ("redo_sets", 0)):
            m._auto_or_int(params[option], "--" + option.replace("_", "-"), low)
        if params["timeout_s"] <= 0 or params["lookahead"] < 1:
            raise click.BadParameter("--timeout must be > 0 and --lookahead >= 1")
        TimingProtocol.from_total(params["runs"], params["runs_per_group"])
        return
    m.campaign_config(params)


def _check_train(params: dict) -> None:
    """The teacher / fraction pairing ``train normal`` checks before it trains."""
    from blox_lat.cli.train import check_teacher_fraction

    check_teacher_fraction(params.get("teacher"), params.get("fraction"))


#: JOB words -> the checks its command makes before any work, run on the job's parsed options
_PREFLIGHT = {("measure",): _check_measure, ("train", "normal"): _check_train}


def _selector_at(job, command, args: list[str], selector: str) -> int:
    """Where SELECTOR is among ARGS (export's shards are selector files put in its place)."""
    for i, word in enumerate(args):
        if word == selector and _parse(job, command, [*args[:i], "@\0", *args[i + 1:]])["selector"] == "@\0":
            return i
    raise click.UsageError(f"cannot find the selector {selector!r} among the export arguments")


@cluster.command(context_settings={"ignore_unknown_options": True})
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED, metavar="JOB [ARGS]...")
@click.option("--shards", type=click.IntRange(1), required=True, help="Array tasks (each runs --shard K/N).")
@click.option("--partition", default=None, help="sbatch --partition.")
@click.option("--gres", default=None, help="sbatch --gres, e.g. gpu:1 for training.")
@click.option("--time", "time_limit", default=None, metavar="T", help="sbatch --time per task, e.g. 2-00:00:00.")
@click.option("--account", default=None, help="sbatch --account.")
@click.option("--cpus", type=click.IntRange(1), default=None, help="sbatch --cpus-per-task.")
@click.option("--extra-sbatch", multiple=True, metavar="ARG",
              help="Another sbatch option for the script, repeatable (e.g. --extra-sbatch=--mem=16G).")
@click.option("--python", "python", default=None, metavar="PATH",
              help="Python of the environment on the compute nodes (default: this one, sys.executable).")
@click.option("--setup", multiple=True, metavar="LINE", help="A shell line run before the job (e.g. 'module load cuda').")
@click.option("--dry-run", is_flag=True, help="Write the script and print it; do not submit.")
def slurm(job_args, shards, partition, gres, time_limit, account, cpus, extra_sbatch, python, setup, dry_run) -> None:
    """Write an sbatch array script for JOB (export, train normal|distill|finetune, measure) and submit it.

    JOB's arguments pass through unchanged; each of the N array tasks adds --shard K/N
    (measure: also --out OUT/shard-K-of-N, one journal per task; export: a selector file
    per shard). The script, this job's record and one log per shard go to OUT/slurm/, OUT
    being the job's output folder (--out). Rerun the same command to resubmit; every task
    skips what is done. {shard}, {shards} and {node} in an argument become the task's values.

    \b
    blox-lat cluster slurm train normal all --out runs --data cifar-100-binary.tar.gz \\
        --shards 500 --gres gpu:1 --time 2-00:00:00
    blox-lat cluster slurm measure all --device sd888 --device-file 'hosts/{node}.toml' \\
        --out runs/sd888 --shards 8 --partition phones
    """
    from blox_lat import cluster as cl

    for value in (*job_args, *setup):  # before anything reads them: a newline would end a script line
        cl.check_script_text(value, "argument")
    job, command, args = _split_job(job_args)
    params = _parse(job, command, args)
    selector_at = _selector_at(job, command, args, params["selector"]) if job == ("export",) else None
    sbatch = cl.sbatch_options({"partition": partition, "gres": gres, "time": time_limit, "account": account,
                                "cpus-per-task": cpus}, tuple(extra_sbatch))
    spec = cl.make_job(job, tuple(args), params, shards, selector_at=selector_at, python=python,
                       sbatch=sbatch, setup=setup)
    script = cl.write_script(spec)
    if dry_run:
        click.echo(script.read_text(), nl=False)
        click.echo(f"wrote {script}; submit it with: sbatch {script}", err=True)
        return
    spec = cl.submit(spec)
    click.echo(f"submitted {spec.submissions[-1]['job_id']} ({shards} tasks): {script}")
    click.echo(f"progress: blox-lat cluster status {spec.out}")


@cluster.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--no-squeue", is_flag=True, help="Only read the output folder; do not ask the scheduler.")
@click.option("--per-shard", is_flag=True,
              help="The per-shard table for a job never submitted too (a submitted job always has it).")
@json_option()
def status(out, no_squeue, per_shard, as_json) -> None:
    """Per shard of every job in OUT: done, failed, in progress, remaining; the scheduler's state; ETA.

    Counts come from OUT itself (training records, measurement journals, the artifact
    store); squeue adds which tasks are queued or running. A job written with --dry-run and
    never submitted gets a summary and the command that submits it (its table: --per-shard).
    Exit status 1 while a shard has work left and no task is queued for it (the resubmit
    command is printed), or a job with work left was never submitted.
    """
    from blox_lat import cluster as cl

    jobs = cl.cluster_status(out, scheduler=not no_squeue)
    if as_json:
        emit_json({"jobs": [j.to_dict() for j in jobs]})
    else:
        for j in jobs:
            click.echo(f"{j.job.name}: {j.job.command_line()}")
            if not j.submitted:
                click.echo(f"never submitted (written with --dry-run): {len(j.shards)} shards, nothing queued, "
                           "nothing done")
            if j.submitted or per_shard:
                emit_table([s.to_dict() for s in j.shards],
                           ["shard", "state", "done", "failed", "in_progress", "remaining", "log"])
            pairs = [(k.replace("_", " "), v) for k, v in j.totals().items()]
            pairs.append(("rate", "-" if j.rate_per_h is None else f"{j.rate_per_h:.1f}/h"))
            pairs.append(("ETA", "-" if j.eta_s is None else _duration(j.eta_s)))
            if j.scheduler_error:
                pairs.append(("scheduler", "not asked (--no-squeue)" if no_squeue else j.scheduler_error))
            if j.resubmit_hint():
                pairs.append(("resubmit", j.resubmit_hint()))
            if j.submit_hint():
                pairs.append(("submit", j.submit_hint()))
            emit_pairs(pairs)
            click.echo()
    if any(j.stopped() or j.submit_hint() for j in jobs):
        sys.exit(1)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} days"


def run_task(argv: list[str]) -> None:
    """What an array task runs (``python -m blox_lat.cli.cluster JOB ARGS``): ``blox-lat JOB ARGS``
    with SIGTERM raised as Ctrl-C, so a cancelled, preempted or timed-out task stops the way
    Ctrl-C stops it (workers closed, "interrupted", exit 130) before Slurm's SIGKILL."""
    import signal

    from blox_lat.cli.main import main

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    sys.argv = ["blox-lat", *argv]
    main()


__all__ = ["cluster", "run_task"]

if __name__ == "__main__":
    run_task(sys.argv[1:])

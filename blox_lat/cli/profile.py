"""``blox-lat profile``: per-layer and per-block times, load time, first inference and peak memory."""

from __future__ import annotations

import sys
from typing import Any

import click

from blox_lat.cli._output import check_out_dir, emit_json, emit_table, json_option
from blox_lat.cli.devices import device_file_option

_MAX_BLOCK_MODELS = 3


@click.command()
@click.argument("selector")
@click.option("--device", "device_name", default="cpu", show_default=True,
              help="Device profile (see 'blox-lat devices list').")
@click.option("--connect", "connect", multiple=True, metavar="KEY=VALUE",
              help="Override a connection setting of the device, e.g. host=gpu-box or serial=PHONE:5555.")
@device_file_option
@click.option("--runs", type=int, default=100, show_default=True,
              help="Timed runs of the protocol (profiler off) and profiled runs (profiler on), each.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding profiles.jsonl; a rerun resumes  [default: profiles/DEVICE]")
@click.option("--store", "store_dir", type=click.Path(file_okay=False), default=None,
              help="Artifact store directory  [default: the exporters' ./artifacts]")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Seconds one model may take before its worker is killed and it fails.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option("Print every model's profile as JSON (load_ms, first_inference_ms, peak_memory_mib, layers, blocks).")
def profile(selector: str, device_name: str, connect: tuple[str, ...], device_files: tuple[str, ...], runs: int,
            out_dir: str | None, store_dir: str | None, timeout_s: float, quiet: bool, as_json: bool) -> None:
    """Profile the models named by SELECTOR on a device: each layer's time (mapped to its stage
    and block), per-block sums beside the protocol latency timed in the same run, load time,
    first inference and peak memory. Results go to profiles.jsonl in --out; a rerun skips the
    models already profiled. docs/profile.md says what each number means.

    \b
    On this computer:    blox-lat profile random:5:1 --runs 100 --out profiles/try
    Int8 on the CPU:     blox-lat profile 0:3 --device cpu-int8
    A GPU box over SSH:  blox-lat profile 0:3 --device gtx1080ti --connect host=gpu-box

    \b
    Exit status: 0 every model profiled, 1 some failed (their records say why),
    2 bad input (one line on stderr), 130 interrupted (rerun to resume).
    """
    from blox_lat import space
    from blox_lat.devices import load_profiles, parse_connect_options
    from blox_lat.profile import profile_models

    if runs < 1:
        raise click.BadParameter("must be >= 1", param_hint="--runs")
    if timeout_s <= 0:
        raise click.BadParameter("must be > 0", param_hint="--timeout")
    device = load_profiles(device_files).get(device_name)
    connection = parse_connect_options(connect)
    archs = space.select(selector)
    out = check_out_dir(out_dir or f"profiles/{device.name}")
    store = None
    if store_dir is not None:
        from blox_lat.exporters import ArtifactStore

        store = ArtifactStore(store_dir)
    try:
        summary = profile_models(archs, device, out=out, runs=runs, store=store, connection=connection or None,
                                 timeout_s=timeout_s, on_event=None if quiet or as_json else _progress)
    except KeyboardInterrupt:
        click.echo("blox-lat: interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
    if as_json:
        emit_json({"path": str(summary.path), "device": device.name, "profiled": summary.profiled,
                   "skipped": summary.skipped, "failed": summary.failed,
                   "models": [r.summary() for r in summary.records]})
    else:
        _show(summary)
    if summary.failed:
        if not as_json:
            click.echo(f"{summary.failed} model(s) failed; see 'reason' in {summary.path}; a rerun retries them",
                       err=True)
        sys.exit(1)


def _progress(event: Any) -> None:
    from blox_lat.profile import ModelProfiled, ProfileStarted

    if isinstance(event, ProfileStarted):
        click.echo(f"{event.selected} selected, {event.already_done} already profiled, {event.todo} to profile",
                   err=True)
    elif isinstance(event, ModelProfiled):
        r = event.record
        what = f"{r.latency_ms:.3f} ms, layers {r.layers_ms:.3f} ms" if r.ok else f"FAILED ({r.reason})"
        click.echo(f"[{event.position}/{event.todo}] #{r.model_index} {r.arch}  {what}", err=True)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _show(summary: Any) -> None:
    rows = [{"model": r.model_index, "arch": r.arch, "latency_ms": _fmt(r.latency_ms), "layers_ms": _fmt(r.layers_ms),
             "overhead": _fmt(r.overhead, "+.1%"), "load_ms": _fmt(r.load_ms, ".1f"),
             "first_ms": _fmt(r.first_inference_ms), "peak_mib": _fmt(r.peak_memory_mib, ".1f"),
             "status": r.status} for r in summary.records]
    emit_table(rows, ["model", "arch", "latency_ms", "layers_ms", "overhead", "load_ms", "first_ms", "peak_mib",
                      "status"])
    shown = [r for r in summary.records if r.ok][:_MAX_BLOCK_MODELS]
    if shown:
        click.echo("")
        emit_table([{"model": r.model_index, "piece": b.piece or "(unmapped)", "stage": "-" if b.stage is None else b.stage,
                     "block": b.block or "-", "layers": b.layers, "ms": _fmt(b.ms)} for r in shown for b in r.blocks],
                   ["model", "piece", "stage", "block", "layers", "ms"])
    more = sum(1 for r in summary.records if r.ok) - len(shown)
    click.echo(f"\n{summary.path}: {summary.profiled} profiled now, {summary.skipped} already there"
               + (f"; blocks of {more} more model(s) with --json" if more > 0 else ""))

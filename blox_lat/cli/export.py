"""``blox-lat export``: models -> verified artifacts in a content-addressed store."""

from __future__ import annotations

import sys
import time

import click

from blox_lat import space as sp
from blox_lat.cli._output import emit_json, emit_pairs, json_option, progress_bar
from blox_lat.errors import BloxLatError


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--option takes NAME=VALUE, got {pair!r}")
        options[name.strip()] = value.strip()
    return options


@click.command()
@click.argument("selector")
@click.option("--format", "-f", "fmt", required=True, help="torchscript, onnx, onnx-int8 or dlc (see --list-formats).")
@click.option("--batch", "-b", type=int, default=None, help="Batch size (default: the format's, 256 for torchscript, else 1).")
@click.option("--out", "-o", "out", default="artifacts", show_default=True, help="Artifact store folder.")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Export processes.")
@click.option("--option", "-O", "opts", multiple=True, metavar="NAME=VALUE",
              help="Format option, repeatable (opset=17, calibration=PATH, calibration_samples=16, allow_pickle=no, htp_socs=sm8350).")
@click.option("--max-bytes", type=int, default=None, help="Evict least recently used artifacts beyond this size.")
@click.option("--no-verify", is_flag=True, help="Skip running each artifact against PyTorch.")
@click.option("--method", type=click.Choice(["fast", "naive"]), default="fast", show_default=True,
              help="fast: compose pre-exported pieces; naive: build and export each model.")
@json_option("Print a JSON summary with every artifact and failure.")
def export(selector, fmt, batch, out, jobs, opts, max_bytes, no_verify, method, as_json) -> None:
    """Export the models SELECTOR names (e.g. 0:100, random:50:1, @file) to one format.

    Artifacts go to a content-addressed store (--out); re-exporting is a no-op, so runs can be
    repeated or run side by side. Every artifact is verified against the PyTorch model unless
    --no-verify. Exit status 1 if any model failed (each failure is listed).
    """
    from blox_lat import exporters as ex
    from blox_lat.exporters import check_toolchain

    fmt_info = ex.get_format(fmt)
    batch = fmt_info.default_batch if batch is None else batch
    options = _parse_options(opts)
    archs = sp.select(selector)
    if not archs:
        raise BloxLatError(f"selector {selector!r} names no models")
    check_toolchain(fmt)
    store = ex.ArtifactStore(out, max_bytes=max_bytes)
    stream = ex.stream_artifacts(archs, fmt, batch=batch, store=store, options=options, jobs=jobs,
                                 lookahead=max(2, 2 * jobs), verify=not no_verify, method=method)
    artifacts, failures = [], []
    start = time.perf_counter()
    from rich.console import Console

    with progress_bar("export {task.fields[fmt]}", "{task.fields[rate]} models/s", console=Console(stderr=True)) as progress:
        task = progress.add_task("export", total=len(archs), fmt=fmt, rate="-")
        for item in stream:
            (failures if isinstance(item, ex.ExportFailure) else artifacts).append(item)
            elapsed = time.perf_counter() - start
            done = len(artifacts) + len(failures)
            progress.update(task, advance=1, rate=f"{done / elapsed:.2f}" if elapsed > 0 else "-")
    elapsed = time.perf_counter() - start
    summary = {
        "format": fmt,
        "batch": batch,
        "store": str(store.root),
        "models": len(archs),
        "exported": len(artifacts),
        "failed": len(failures),
        "bytes": sum(a.bytes for a in artifacts),
        "seconds": round(elapsed, 3),
        "models_per_s": round(len(archs) / elapsed, 3) if elapsed > 0 else None,
    }
    if as_json:
        emit_json({"summary": summary, "artifacts": [a.to_dict() for a in artifacts],
                   "failures": [f.to_dict() for f in failures]})
    else:
        emit_pairs([(k.replace("_", " "), v) for k, v in summary.items()])
        for failure in failures:
            click.echo(f"failed #{failure.model_index} {failure.model_hash}: {failure.reason}", err=True)
    if failures:
        sys.exit(1)

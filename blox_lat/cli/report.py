"""``blox-lat report``, ``compare`` and ``stats``: thin click layers over :mod:`blox_lat.report`."""

from __future__ import annotations

from pathlib import Path

import click

from blox_lat.cli._output import emit_json, json_option


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Folder to write report.html, report.json and figures/ into (must not exist).")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="Only these devices (repeatable; default: every device of every source).")
@click.option("--latency", type=click.Choice(["auto", "raw", "corrected"]), default="auto", show_default=True,
              help="Which latency every figure, table and number shows: raw (the protocol latency), corrected "
                   "(divided by the level of its set) or auto (per device, corrected when every model has one).")
@click.option("--profile", "profiles", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Also show the per-block profiles in DIR (blox-lat profile), against the fitted block costs.")
@json_option("Print where the report went as JSON.")
def report(sources: tuple[Path, ...], out: Path, force: bool, devices: tuple[str, ...], latency: str,
           profiles: tuple[Path, ...], as_json: bool) -> None:
    """Plots and one self-contained HTML page for campaigns and releases.

    SOURCES are campaign folders (journal.jsonl) and releases (dataset.json). Writes
    OUT/report.html (figures embedded; opens from disk), OUT/report.json (every number shown)
    and OUT/figures/*.png|svg. Figures are drawn only where their data exists; the page says
    why a figure is missing. Every figure, table and JSON field names the latency it shows
    (--latency).

    \b
      blox-lat report runs/cpu --out report-cpu
      blox-lat report releases/1.0.0 runs/sd888 --out report --force
    """
    from blox_lat.report import build_report

    result = build_report(list(sources), out, force=force, devices=list(devices) or None, latency=latency,
                          profiles=list(profiles))
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"wrote {result.html} ({len(result.figures)} figures, {result.wall_s:.1f} s)")


@click.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--device", default=None, metavar="NAME", help="Device to compare (needed when a source has several).")
@click.option("--latency", type=click.Choice(["auto", "raw", "corrected"]), default="auto", show_default=True,
              help="Which latency to compare: raw (the protocol latency), corrected (divided by the level of its "
                   "set, from the anchors) or auto (corrected when every model compared has one).")
@click.option("--device-b", default=None, metavar="NAME", help="Device in B when its name differs from A's.")
@click.option("--confidence", default=0.95, show_default=True, type=float,
              help="Confidence of the intervals (simultaneous over all models unless --correction none).")
@click.option("--correction", type=click.Choice(["bonferroni", "none"]), default="bonferroni", show_default=True,
              help="Multiple-comparison correction of the per-model intervals.")
@click.option("--min-effect", default=0.05, show_default=True, type=float,
              help="Smallest relative change called faster or slower (0.05 = 5 %).")
@click.option("--relative", is_flag=True, help="Divide every ratio by the level shift first (another host or phone).")
@click.option("--allow-protocol-mismatch", is_flag=True, help="Compare sources measured with different protocols.")
@click.option("--all", "show_all", is_flag=True, help="List every model, not only those faster or slower.")
@click.option("--markdown", is_flag=True, help="Print a Markdown summary and table.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              callback=lambda _ctx, _param, value: _figure_path(value),
              help="Also draw each model's ratio against its latency, with its interval, into FILE (.png or .svg).")
@json_option("Print the summary and every model's ratio and interval as JSON.")
def compare(a: Path, b: Path, device: str | None, latency: str, device_b: str | None, confidence: float,
            correction: str, min_effect: float, relative: bool, allow_protocol_mismatch: bool, show_all: bool,
            markdown: bool, plot: Path | None, as_json: bool) -> None:
    """Model-by-model latency ratio B/A of two campaigns or releases.

    For every model measured in both: the ratio of the latencies of the chosen kind (--latency)
    with a confidence interval from both values' standard errors (group means, and for the
    corrected latency the level's uncertainty too), and faster / slower / not significant.
    Two campaign folders of one device are put on one level reference first. With the default
    Bonferroni correction the chance that any unchanged model is called faster or slower is at
    most 1 - confidence. Prints each change as pyperf does ("1.10x slower (+10.0 %)", "not
    significant"), three significant digits, the geometric mean of the ratios, the level shift
    (median ratio) and Spearman's rank correlation; --plot draws the ratios. Sources measured
    with different protocols are refused unless --allow-protocol-mismatch.

    \b
      blox-lat compare runs/cpu-ort-1.17 runs/cpu-ort-1.18
      blox-lat compare releases/1.0.0 releases/1.1.0 --device sd888 --markdown
      blox-lat compare runs/cpu-a runs/cpu-b --plot cpu-b-vs-a.svg
    """
    from blox_lat.report import compare as run_compare

    if markdown and as_json:
        raise click.UsageError("--markdown and --json are exclusive: pick one output format")
    result = run_compare(str(a), str(b), device=device, device_b=device_b, latency=latency, confidence=confidence,
                         correction=correction, min_effect=min_effect, relative=relative,
                         allow_protocol_mismatch=allow_protocol_mismatch)
    which = "all" if show_all else "changed"
    if plot is not None:
        result.plot(plot)
    if as_json:
        emit_json(result.to_dict(which))
        return
    if markdown:
        click.echo(result.to_markdown(which), nl=False)
        return
    click.echo(result.to_text(which), nl=False)
    if plot is not None:
        click.echo(f"plot: {plot}")


def _figure_path(value: Path | None) -> Path | None:
    """``--plot FILE``: refused before any work when its suffix names no format we write or its
    folder does not exist."""
    if value is not None and value.suffix.lower() not in (".png", ".svg"):
        raise click.BadParameter(f"{value}: give a .png or .svg file name", param_hint="--plot")
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"{value}: the folder {value.parent} does not exist", param_hint="--plot")
    return value


@click.command()
@click.argument("model", required=False)
@click.option("--from", "source", required=True, type=click.Path(path_type=Path), metavar="SOURCE",
              help="A campaign folder (journal.jsonl) or a release with a bench-raw section (dataset.json).")
@click.option("--device", default=None, metavar="NAME", help="Device to read (needed when the source has several).")
@click.option("--anchors", is_flag=True,
              help="Show the campaign's anchor runs instead: each anchor's latency over the runs, the levels over "
                   "time (MODEL, if given, keeps one anchor).")
@json_option("Print every number, the group means, the samples and the histogram as JSON.")
def stats(model: str | None, source: Path, device: str | None, anchors: bool, as_json: bool) -> None:
    """One model's measurement in full, like pyperf stats and pyperf hist.

    MODEL is an index, a hash, a vector or blocks (as 'blox-lat space show' takes). Prints the
    standing record (the one report, compare and dataset build use), the samples' min,
    p5/p25/median/p75/p95, max, mean and std, the protocol's latency (inter-quartile mean of
    the group means) with its standard error and 95 % interval, the group means, cv and flags,
    the level and level-corrected latency when the model was timed with anchors, and a
    histogram of the samples. Three significant digits; --json has every number in full.

    \b
      blox-lat stats 17262 --from runs/cpu
      blox-lat stats 36f562bd88ff6c4933d3dae32d996161 --from releases/1.0.0 --device cpu --json
      blox-lat stats --anchors --from runs/cpu
    """
    from blox_lat.report import anchor_stats, model_stats

    if model is None and not anchors:
        raise click.UsageError("give a MODEL (an index, hash, vector or blocks), or --anchors")
    result = anchor_stats(source, device=device, model=model) if anchors else model_stats(source, model, device=device)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(result.to_text(), nl=False)

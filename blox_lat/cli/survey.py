"""``blox-lat survey``: a full-space latency table for a new device in one command."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from blox_lat.cli._output import emit_json, emit_pairs, json_option
from blox_lat.cli.devices import device_file_option

#: without a terminal as with one: a progress line at most this often while a round measures
NOTE_EVERY_S = 10.0


class _Progress:
    """Survey steps as lines on stderr, and a line per measuring step at most every ``NOTE_EVERY_S``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.noted = 0.0
        self.todo = 0

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        from blox_lat import harness, survey

        if isinstance(event, survey.SurveyEvent):
            self._say(_line(event))
        elif isinstance(event, harness.CampaignStarted):
            self.todo = event.todo
        elif isinstance(event, harness.ModelDone) and (time.monotonic() - self.noted >= NOTE_EVERY_S
                                                        or event.position == event.todo):
            self._say(f"  {event.position}/{event.todo} models of the step measured")

    def _say(self, text: str) -> None:
        self.noted = time.monotonic()
        click.echo(text, err=True)


def _line(event: Any) -> str:
    from blox_lat import survey as sv

    if isinstance(event, sv.SurveyOpened):
        head = f"survey of {event.device}: budget {event.budget_s:.0f} s"
        line = head + (f", {event.spent_s:.0f} s spent in {event.rounds} round(s) before: resuming"
                       if event.spent_s else "")
        return line + (f"\nblox-lat: warning: {event.warning}" if event.warning else "")
    if isinstance(event, sv.ProbeTimed):
        return f"probe: {event.models} anchor models in {event.wall_s:.1f} s: about {event.per_model_s:.2f} s a model"
    if isinstance(event, sv.RoundPlanned):
        return (f"round {event.number}: {event.models} models ({event.plan}), {event.budget_left_s:.0f} s of the "
                f"budget left at about {event.per_model_s:.2f} s a model")
    if isinstance(event, sv.RoundMeasured):
        return (f"round {event.number}: measured {event.measured} models in {event.wall_s:.1f} s "
                f"({event.spent_s:.0f} of {event.budget_s:.0f} s spent)")
    if isinstance(event, sv.RoundFitted):
        f = event.figures
        if "error" in f:
            return f"round {event.number}: no fit yet: {f['error']}"
        cv = ", ".join(f"{k} {v}" for k, v in f["cv"].items())
        return (f"round {event.number}: {f['method']}/{f['family']} on {f['models']} models: CV {cv}; median "
                f"interval half-width {f['median_halfwidth_pct']:.2f} %")
    if isinstance(event, sv.SurveyStopped):
        return f"rounds over: {event.reason}"
    if isinstance(event, sv.Published):
        return f"wrote {event.what}: {event.path}"
    return str(event)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--device", default="cpu", show_default=True, metavar="NAME", help="Device profile to survey.")
@click.option("--budget", required=True, metavar="DURATION",
              help="Device time to spend measuring (export, warm-up, timed runs, anchors): 15m, 1h, 1h30m, 900.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Survey folder (resumes the survey it holds).")
@click.option("--prior", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PREDICTOR",
              help="Another device's predictor file: a small first round, the prior kept where "
                   "cross-validation says it helps.")
@click.option("--target-width", type=click.FloatRange(0, min_open=True), default=None,
              metavar="PCT", help="Stop early once the median 90 % interval half-width is at most PCT % "
                                  "[default: spend the budget].")
@click.option("--first", "first_round", type=click.IntRange(1, 91125), default=None, metavar="N",
              help="Models of the first (balanced) round  [default: sized to the budget, 45..135; 10..45 with --prior]")
@click.option("--max-rounds", type=click.IntRange(1), default=None, metavar="N",
              help="Stop after N rounds  [default: the budget and --target-width decide]")
@click.option("--retest", type=click.IntRange(0), default=0, show_default=True, metavar="N",
              help="Measure N models of the first round again in a second campaign: the test-retest floor "
                   "beside the CV figures (N models of the budget).")
@click.option("--runs", type=int, default=1000, show_default=True, help="Timed runs per model.")
@click.option("--runs-per-group", type=int, default=10, show_default=True, help="Runs per group.")
@click.option("--warmup-runs", type=int, default=10, show_default=True, help="Minimum warm-up runs.")
@click.option("--warmup-s", type=float, default=0.5, show_default=True, help="Minimum warm-up seconds.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the plans and folds.")
@click.option("--connect", multiple=True, metavar="KEY=VALUE", help="Override a connection setting of the device.")
@device_file_option
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Artifact store  [default: the exporters' ./artifacts]")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option("Print the survey's accounting and accuracy as JSON.")
def survey(device: str, budget: str, out: Path, prior: Path | None, target_width: float | None,
           first_round: int | None, max_rounds: int | None, retest: int, runs: int,
           runs_per_group: int, warmup_runs: int, warmup_s: float, seed: int, connect: tuple[str, ...],
           device_files: tuple[str, ...], store: Path | None, quiet: bool, as_json: bool) -> None:
    """Measure a device within a budget and predict all 91,125 models (see docs/predict.md).

    A balanced plan sized to the budget, then rounds of the least certain models until the
    budget is spent or --target-width is reached; then the predictor, a release (measured
    bench/DEVICE, predicted pred/DEVICE) and a report in OUT. Rerun the same command to resume.

    \b
      blox-lat survey --device cpu-int8 --budget 15m --runs 100 --out surveys/cpu-int8
      blox-lat survey --device cpu-int8 --budget 5m --runs 100 --prior cpu.predictor.json --out surveys/int8-p
    """
    from blox_lat import survey as sv
    from blox_lat.devices import parse_connect_options

    config = sv.SurveyConfig(device=device, budget_s=sv.parse_duration(budget), out=out, runs=runs,
                             runs_per_group=runs_per_group, warmup_runs=warmup_runs, warmup_s=warmup_s,
                             target_width=None if target_width is None else target_width / 100, prior=prior,
                             seed=seed, connection=parse_connect_options(connect), device_files=device_files,
                             store=store, first_round=first_round, max_rounds=max_rounds, retest=retest)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = sv.survey(config, on_event=_Progress(quiet))
    except KeyboardInterrupt:
        click.echo("blox-lat: interrupted; rerun the same command to resume the survey", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _report(result, as_json)


def _report(result: Any, as_json: bool) -> None:
    doc = result.to_dict()
    if as_json:
        emit_json(doc)
        return
    spent, acc, retest = doc["spent"], doc["accuracy"], doc["retest"]
    dt = spent["device_time"]
    pairs: list[tuple[str, Any]] = [
        ("device", doc["device"]), ("models measured", f"{doc['models_measured']} ({doc['models_failed']} failed)"),
        ("rounds", f"{len(doc['rounds'])}: {doc['stopped']}"),
        ("measuring wall time", f"{spent['wall_s']:.1f} s of a {doc['budget_s']:.0f} s budget"),
        ("device time", f"{dt['total_s']:.1f} s: timed {dt['timed_s']:.1f}, warm-up {dt['warmup_s']:.1f}, "
                        f"anchors {dt['anchors_s']:.1f}, retries {dt['retries_s']:.1f}, export {dt['export_s']:.1f} "
                        f"({spent['accounted_over_wall']} of the wall time)")]
    if acc:
        pairs.append(("accuracy (CV)", f"{acc['method']}/{acc['family']}: spearman {acc.get('spearman')}, mape "
                                       f"{acc.get('mape_pct')} %, within 10 % {acc.get('within10_pct')} %, "
                                       f"90 % coverage {acc.get('coverage90_pct')} %"))
        pairs.append(("interval", f"median half-width {acc['median_halfwidth_pct']} % (90 %)"))
    pairs.append(("test-retest", f"spearman {retest['spearman']}, mape {retest['mape_pct']} %" if retest
                  else "unknown (no model measured in two campaigns)"))
    if doc["prior"]:
        pairs.append(("prior", f"{'used' if doc['prior'].get('prior_used') else 'not used'}: {doc['prior']['reason']}"))
    pairs += [(k, v) for k, v in doc["files"].items()]
    emit_pairs(pairs)


__all__ = ["survey"]

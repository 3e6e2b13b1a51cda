"""``blox-lat predict``: a thin click layer over :mod:`blox_lat.predict`."""

from __future__ import annotations

import re
from pathlib import Path

import click

from blox_lat.cli._output import emit_json, emit_pairs, emit_table, json_option

_FORCE = click.option("--force", is_flag=True, help="Replace the output file if it exists.")
_DEVICE = click.option("--device", default=None, metavar="NAME",
                       help="Device whose measurements to use (needed when the sources hold several).")
_LATENCY = click.option("--latency", type=click.Choice(["auto", "raw", "corrected"]), default="auto",
                        show_default=True, help="Protocol latency, or the level-corrected one of anchored campaigns "
                                                "(auto: corrected when every record has it).")


class _Seed(click.ParamType):
    """A random seed: an integer 0 or more (numpy refuses negative seeds)."""

    name = "integer"

    def convert(self, value, param, ctx):
        try:
            seed = int(value) if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a seed; give an integer 0 or more (e.g. 0)", param, ctx)
        if seed < 0:
            self.fail(f"{seed}: a seed must be 0 or more (a non-negative integer, e.g. 0)", param, ctx)
        return seed


SEED = _Seed()

class _CountCommand(click.Command):
    """A command whose count argument may be written negative (``plan -5``): click would call
    that an unknown option; say instead that the count must be a positive integer."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption:
            takes_value = {o for p in self.params if isinstance(p, click.Option) and not p.is_flag
                           for o in (*p.opts, *p.secondary_opts)}
            counts = [a for before, a in zip([None, *given], given)
                      if re.fullmatch(r"-\d+", a) and before not in takes_value]
            if not counts:
                raise
            raise click.UsageError(f"N {counts[0]}: the number of models must be a positive integer "
                                   "(1..91125, e.g. 135)", ctx) from None


#: the families of blox_lat.predict.FAMILIES (spelled out so that --help needs no numpy)
FAMILY_NAMES = ("additive", "additive-log", "interact", "structured", "structured-log", "structured-interact")


@click.group()
def predict() -> None:
    """Predict every model's latency from a small measured sample (see docs/predict.md).

    \b
      blox-lat predict plan 135 --seed 0 --out plan.txt
      blox-lat measure @plan.txt --device cpu --out runs/cpu
      blox-lat predict fit runs/cpu --out cpu.predictor.json
      blox-lat predict all cpu.predictor.json --out cpu-pred.parquet
    """


def _summary_pairs(p, level: float = 0.9) -> list[tuple[str, object]]:
    cv = p.cv.get("families", {}).get(p.family, {})
    pairs = [("device", p.device), ("method", f"{p.method}/{p.family}"), ("latency", p.latency),
             ("trained on", f"{p.training.get('models', 0)} models"),
             ("protocol", ", ".join(f"{k} {v}" for k, v in (p.protocol or {}).items()) or "not recorded")]
    for fam, fig in sorted(p.cv.get("families", {}).items()):
        pairs.append((f"cv {fam}", ", ".join(f"{k} {v}" for k, v in fig.items()
                                             if k in ("spearman", "mape_pct", "within10_pct", "coverage90_pct"))))
    decision = p.cv.get("decision")
    if decision:
        pairs.append(("prior", f"{'used' if decision['prior_used'] else 'not used'}: {decision['reason']}"))
    if "retest" in p.cv:
        pairs.append(("retest floor", _retest_text(p.cv["retest"])))
    if cv:
        pairs.append(("chosen", p.family))
    pairs.append((f"{level * 100:g}% interval", "x{:.3f} .. x{:.3f} (at spread 1)".format(*p.interval_factors(level))))
    return pairs


def _retest_text(r: dict) -> str:
    """The test-retest figures of a fit, beside which its CV figures are read."""
    if "spearman" not in r:
        return (f"unknown: {r['models']} models measured in two or more campaigns (3 needed); "
                "measure some models again in another campaign to know it")
    return (f"spearman {r['spearman']}, mape_pct {r['mape_pct']}, within10_pct {r['within10_pct']} "
            f"(two measurements of the {r['models']} models measured in several campaigns; "
            "CV figures there are as good as measuring again)")


def _description(p, out: Path) -> dict:
    """A predictor's description for ``--json`` (no tables): what the text summary says, and where it went."""
    return {**{k: v for k, v in p.to_dict().items() if k not in ("model", "leverage", "interval")}, "out": str(out)}


def _report(p, out: Path, as_json: bool) -> None:
    """What fit, transfer and pieces fit print: the summary and the file written, or its JSON."""
    if as_json:
        emit_json(_description(p, out))
    else:
        emit_pairs(_summary_pairs(p))
        click.echo(f"wrote {out}")


@predict.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Predictor file to write (JSON).")
@_DEVICE
@click.option("--family", type=click.Choice(["auto", *FAMILY_NAMES]), default="auto",
              show_default=True, help="Model family; auto picks by cross-validation.")
@_LATENCY
@click.option("--folds", default=5, show_default=True, type=int, help="Cross-validation folds.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the fold assignment.")
@click.option("--allow-uncovered", is_flag=True,
              help="Fit even if some (stage, block) pair was never measured (it gets the stage's average cost).")
@click.option("--prior-profile", "prior_profile", default=None, type=click.Path(path_type=Path), metavar="DIR",
              help="Use the block costs profiled in DIR (blox-lat profile) as the prior, recalibrated on the "
                   "measured models as 'predict transfer' does (docs/profile.md).")
@_FORCE
@json_option("Print the predictor's description as JSON.")
def fit(sources: tuple[Path, ...], out: Path, device: str | None, family: str, latency: str, folds: int, seed: int,
        allow_uncovered: bool, prior_profile: Path | None, force: bool, as_json: bool) -> None:
    """Fit a predictor from campaign folders, journals or a release's bench/<device>."""
    from blox_lat import predict as pr

    pr.check_out(out, overwrite=force)
    data = pr.load_measurements(list(sources), device=device, latency=latency)
    if prior_profile is not None:
        if family != "auto":
            raise click.UsageError("--prior-profile fits a transfer from the profiled costs; drop --family")
        p = pr.transfer(pr.profile_prior(prior_profile, device=data.device), data, folds=folds, seed=seed)
    else:
        p = pr.fit(data, family=family, folds=folds, seed=seed, allow_uncovered=allow_uncovered)
    p.save(out, overwrite=force)
    _report(p, out, as_json)


@predict.command(cls=_CountCommand)
@click.argument("n", required=False, type=int)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the design.")
@click.option("--next", "next_n", type=int, default=None, metavar="N",
              help="Instead: the N unmeasured models whose predictions are least certain.")
@click.option("--from", "sources", multiple=True, type=click.Path(path_type=Path),
              help="With --next: what is measured (campaign folders, a release, or a predictor file).")
@_DEVICE
@click.option("--out", default=Path("plan.txt"), show_default=True, type=click.Path(path_type=Path),
              help="Selector file to write (blox-lat measure @FILE).")
@_FORCE
@json_option("Print the plan written (file, mode, seed, model indices) as JSON.")
def plan(n: int | None, seed: int, next_n: int | None, sources: tuple[Path, ...], device: str | None, out: Path,
         force: bool, as_json: bool) -> None:
    """Write a selector file of models to measure: a balanced design, or the least certain."""
    import numpy as np

    from blox_lat import predict as pr

    if (n is None) == (next_n is None):
        raise click.UsageError("give N (a balanced plan) or --next N --from SOURCE (least certain models)")
    pr.check_out(out, overwrite=force)
    if n is not None:
        if sources:
            raise click.UsageError("--from goes with --next; a balanced plan needs no measurements")
        picks = pr.plan_balanced(n, seed)
        chosen = {"mode": "balanced", "n": n, "seed": seed}
        header = [(f"blox-lat predict plan {n} --seed {seed}: balanced design, every block "
                   f"{n // 45}-{-(-n // 45)} times per stage"), f"measure with: blox-lat measure @{out}"]
    else:
        if not sources:
            raise click.UsageError("--next needs --from SOURCE (a campaign folder, a release or a predictor file)")
        measured = _measured(sources, device)
        picks = pr.plan_next(np.asarray(measured), next_n, seed=seed)
        chosen = {"mode": "next", "n": next_n, "seed": seed, "from": [str(s) for s in sources],
                  "measured": len(measured)}
        header = [(f"blox-lat predict plan --next {next_n} --from {' '.join(map(str, sources))}: "
                   f"the least certain of the models not yet measured ({len(measured)} are)")]
    pr.write_plan(out, picks, header, overwrite=force)
    if as_json:
        emit_json({"out": str(out), **chosen, "models": len(picks), "indices": [int(i) for i in picks],
                   "measure": f"blox-lat measure @{out}"})
    else:
        click.echo(f"wrote {out} ({len(picks)} models)")


def _measured(sources: tuple[Path, ...], device: str | None) -> list[int]:
    from blox_lat import predict as pr

    out: set[int] = set()
    journals = []
    for s in sources:
        if s.is_file() and s.suffix == ".json":
            out.update(int(i) for i in pr.load(s).training.get("indices", []))
        else:
            journals.append(s)
    if journals:
        out.update(int(i) for i in pr.load_measurements(journals, device=device, latency="raw").indices)
    return sorted(out)


@predict.command(name="all")
@click.argument("predictor", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Parquet file to write.")
@click.option("--level", default=0.9, show_default=True, type=float, help="Interval level.")
@click.option("--device", default=None, metavar="NAME", help="Refuse unless the predictor is for this device.")
@_FORCE
@json_option("Print the file written (device, models, interval level) as JSON.")
def all_models(predictor: Path, out: Path, level: float, device: str | None, force: bool, as_json: bool) -> None:
    """Write every model's predicted latency and interval (91,125 rows, Parquet)."""
    from blox_lat import predict as pr

    pr.check_out(out, overwrite=force)
    p = pr.load(predictor)
    p.check_device(device)
    pr.write_predictions(p, out, level=level, overwrite=force)
    if as_json:
        emit_json({"out": str(out), "predictor": str(predictor), "section": f"pred/{p.device}", "device": p.device,
                   "models": 91125, "level": level})
    else:
        click.echo(f"wrote {out} (pred/{p.device}: 91125 models, {level * 100:g}% intervals)")


def _costs_note(p) -> str:
    """What the block costs of predictor ``p`` mean, in a line (see blox_lat.predict.BlockCost)."""
    if p.model["space"] == "ms":
        note = "ms each block adds at its stage against the stage's average block (negative: cheaper)"
    else:
        note = ("factor each block multiplies latency by at its stage against the stage's average block, and "
                "cost_ms, what that adds on average to the models holding it")
    if p.model.get("pairs") is not None:
        note += "; interaction terms come on top"
    if p.model.get("prior") is not None:
        note += "; a correction on top of the prior (another device's predictor, rescaled)"
    return f"{note}; the mean prediction over the space is {p.mean_latency():.4f} ms"


@predict.command()
@click.argument("predictor", type=click.Path(path_type=Path))
@click.option("--models", default=None, metavar="SELECTOR", help="Also predict these models (any selector).")
@click.option("--level", default=0.9, show_default=True, type=float, help="Interval level.")
@click.option("--device", default=None, metavar="NAME", help="Refuse unless the predictor is for this device.")
@json_option("Print the description (and predictions) as JSON.")
def show(predictor: Path, models: str | None, level: float, device: str | None, as_json: bool) -> None:
    """Describe a predictor file, list what each block costs at each stage, and predict a few models with it."""
    from blox_lat import predict as pr
    from blox_lat import space as sp

    p = pr.load(predictor)
    p.check_device(device)
    rows = []
    if models:
        archs = sp.select(models)
        res = p.predict([a.index for a in archs], level=level)
        rows = [{"index": a.index, "name": a.name, "pred_ms": round(float(y), 4), "lo_ms": round(float(lo), 4),
                 "hi_ms": round(float(hi), 4)} for a, y, lo, hi in zip(archs, res.latency_ms, res.lo_ms, res.hi_ms)]
    if as_json:
        doc = {k: v for k, v in p.to_dict().items() if k not in ("model", "leverage")}
        doc["training"] = {k: v for k, v in doc["training"].items() if k != "indices"}
        doc["interval"] = {"bounds": doc["interval"]["bounds"], "kind": doc["interval"]["kind"]}
        lo, hi = p.interval_factors(level)
        costs = {"space": p.model["space"], "mean_ms": round(p.mean_latency(), 6), "meaning": _costs_note(p),
                 "blocks": [c.to_dict() for c in p.block_costs()]}
        emit_json({**doc, "interval_at_level": {"level": level, "factors": [lo, hi]}, "block_costs": costs,
                   "predictions": rows})
        return
    emit_pairs(_summary_pairs(p, level))
    costs = [c.to_dict() for c in p.block_costs()]
    click.echo(f"\nblock costs ({_costs_note(p)}):")
    emit_table([{**c, "cost_ms": f"{c['cost_ms']:.4f}", **({"factor": f"{c['factor']:.4f}"} if "factor" in c else {})}
                for c in costs], ["stage", "block", "name", "cost_ms", *(["factor"] if "factor" in costs[0] else [])])
    if rows:
        click.echo("")
        emit_table(rows, ["index", "name", "pred_ms", "lo_ms", "hi_ms"])


@predict.group()
def pieces() -> None:
    """Time the 140 block pieces alone and predict whole models from them."""


@pieces.command(name="measure")
@click.option("--device", default="cpu", show_default=True, metavar="NAME", help="An onnxruntime fp32 device.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Pieces file to write (JSON).")
@click.option("--pieces", "names", default=None, metavar="A,B,...",
              help="Only these pieces (stem, cell/STAGE/BLOCK, reduction/STAGE, head); default all 140.")
@click.option("--runs", default=1000, show_default=True, type=int, help="Timed runs per piece.")
@click.option("--runs-per-group", default=10, show_default=True, type=int)
@click.option("--warmup-runs", default=10, show_default=True, type=int)
@click.option("--warmup-s", default=0.5, show_default=True, type=float)
@click.option("--interleave", default=1, show_default=True, type=int, help="Pieces timed together per set.")
@_FORCE
@json_option("Print the file written and each piece's latency as JSON.")
def pieces_measure(device: str, out: Path, names: str | None, runs: int, runs_per_group: int, warmup_runs: int,
                   warmup_s: float, interleave: int, force: bool, as_json: bool) -> None:
    """Time block pieces on a device through the harness."""
    from blox_lat import predict as pr
    from blox_lat.harness import TimingProtocol

    pr.check_out(out, overwrite=force)
    protocol = TimingProtocol.from_total(runs, runs_per_group, warmup_min_runs=warmup_runs, warmup_min_s=warmup_s,
                                         interleave=interleave,
                                         **({"rounds": runs // runs_per_group} if interleave > 1 else {}))
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names is not None else None
    doc = pr.measure_pieces(chosen, device=device, protocol=protocol,
                            on_piece=lambda name, r: click.echo(f"{name}: {r['latency_ms']:.4f} ms", err=True))
    pr.save_pieces(doc, out, overwrite=force)
    if as_json:
        emit_json({"out": str(out), "device": doc["device"], "protocol": doc["protocol"], "count": len(doc["pieces"]),
                   "pieces": {name: r["latency_ms"] for name, r in doc["pieces"].items()}})
    else:
        click.echo(f"wrote {out} ({len(doc['pieces'])} pieces)")


@pieces.command(name="fit")
@click.argument("pieces_file", type=click.Path(path_type=Path))
@click.option("--whole", "whole", multiple=True, type=click.Path(path_type=Path),
              help="Campaign folders of a few (3 or more) whole models of the same device, to calibrate "
                   "the overhead and the interval (required).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Predictor file to write.")
@_FORCE
@json_option("Print the predictor's description as JSON.")
def pieces_fit(pieces_file: Path, whole: tuple[Path, ...], out: Path, force: bool, as_json: bool) -> None:
    """Make a predictor from piece latencies and a few (3 or more) whole models of the same device."""
    from blox_lat import predict as pr

    pr.check_out(out, overwrite=force)
    doc = pr.load_pieces(pieces_file)
    data = pr.load_measurements(list(whole), device=doc["device"], latency="raw") if whole else None
    pr.check_whole(data, doc["device"])  # an uncalibrated piece sum has no interval to give
    p = pr.from_pieces(doc, data)
    p.save(out, overwrite=force)
    _report(p, out, as_json)


@predict.command()
@click.argument("prior", type=click.Path(path_type=Path))
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Predictor file to write.")
@_DEVICE
@_LATENCY
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the fold assignment.")
@_FORCE
@json_option("Print the predictor's description as JSON.")
def transfer(prior: Path, sources: tuple[Path, ...], out: Path, device: str | None, latency: str, seed: int,
             force: bool, as_json: bool) -> None:
    """Fit a new device from a few samples, with PRIOR (another device's predictor) as the prior."""
    from blox_lat import predict as pr

    pr.check_out(out, overwrite=force)
    p = pr.transfer(pr.load(prior), pr.load_measurements(list(sources), device=device, latency=latency), seed=seed)
    p.save(out, overwrite=force)
    _report(p, out, as_json)

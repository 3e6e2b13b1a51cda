"""``blox-lat survey`` against independent measurements (issue 27).

Steps, each resumable in ``--work`` (rerun the same command after an interruption):

1. hold-out: ``--holdout`` (200) random models of ``--device`` (cpu-int8) measured in two
   independent ``blox-lat measure`` campaigns (B in another order, so other sets), first, so
   that the surveys' own device time is not shared with them; their test-retest agreement is
   the floor a prediction is judged against;
2. ``blox-lat survey --budget 15m --runs 100`` without a prior (its own artifact store: it pays
   its exports as a new device would);
3. the same with ``--prior`` (a cpu predictor fitted from the committed
   benchmarks/data/predictor/cpu-a journal) and ``--budget 5m``;
4. each survey's predictor scored on the hold-out models it was not trained on, against each
   campaign's level-corrected latency put on the survey's own level reference (the anchors'
   reference latencies of the two campaigns give the factor): Spearman, MAPE, share within
   +-10 %, 90 % interval coverage; and its device-time accounting against the wall time of its
   measuring steps.

Targets: the 15-minute survey's Spearman >= the hold-out's test-retest Spearman and >= 95 % of
the models within +-10 %; the 5-minute survey with the prior within 0.02 of the 15-minute
figures; device time accounted within 5 % of the measuring steps' wall time. Run it alone:

    flock /tmp/blox-bench.lock python benchmarks/survey.py [--work DIR] [--budget 15m]
        [--prior-budget 5m] [--runs 100] [--holdout 200] [--seed 27]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _journals import journal_folder
from _probe import cpu_probe_s
from _results import ROOT, add_arguments, save

CPU_JOURNAL = ROOT / "benchmarks" / "data" / "predictor" / "cpu-a.journal.jsonl.gz"


def _run(cmd: list[str], ok: tuple[int, ...] = (0, 1)) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in ok:
        sys.exit(f"survey benchmark: {' '.join(cmd)} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done.stdout


def _holdout(name: str, indices: list[int], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    selector = work / f"{name}.txt"
    if not selector.exists():
        selector.write_text("".join(f"{i}\n" for i in indices))
    return json.loads(_run([sys.executable, "-m", "blox_lat", "measure", f"@{selector}", "--device", args.device,
                            "--runs", str(args.runs), "--out", str(work / name), "--store",
                            str(work / "store-holdout"), "--quiet", "--json"]))


def _prior(work: Path) -> Path:
    from blox_lat import predict

    path = work / "cpu.predictor.json"
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp:
            data = predict.load_measurements([journal_folder(CPU_JOURNAL, Path(tmp))], latency="auto")
            predict.fit(data).save(path)
    return path


def _survey(name: str, budget: str, work: Path, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    return json.loads(_run([sys.executable, "-m", "blox_lat", "survey", "--device", args.device, "--budget", budget,
                            "--runs", str(args.runs), "--out", str(work / name), "--store", str(work / f"store-{name}"),
                            "--seed", str(args.seed), "--quiet", "--json", *extra], ok=(0,)))


def _corrected(folder: Path) -> tuple[dict[int, float], Any]:
    """model index -> level-corrected latency of a campaign, and its reference (first anchors line)."""
    from blox_lat.harness import AnchorsRecord, CampaignReference, MeasurementRecord, read_records

    values, ref = {}, None
    for rec in read_records(folder):
        if isinstance(rec, AnchorsRecord) and ref is None:
            ref = CampaignReference.of_line(rec.to_dict())
        elif isinstance(rec, MeasurementRecord) and rec.ok and rec.latency_corrected_ms is not None:
            values[rec.model_index] = rec.latency_corrected_ms
    return values, ref


def _on_reference(values: dict[int, float], ref: Any, target: Any) -> dict[int, float]:
    """A campaign's corrected latencies on another campaign's level reference."""
    from blox_lat.harness import set_level

    factor = set_level(list(ref.reference_ms), list(target.reference_ms))
    return {i: v / factor for i, v in values.items()}


def _score(predictor_path: Path, truth: dict[str, dict[int, float]]) -> dict[str, Any]:
    from blox_lat import predict

    p = predict.load(predictor_path)
    trained = set(int(i) for i in p.training.get("indices", []))
    out: dict[str, Any] = {"trained_on": len(trained)}
    for name, values in truth.items():
        idx = np.array(sorted(i for i in values if i not in trained))
        y = np.array([values[int(i)] for i in idx])
        res = p.predict(idx, level=0.9)
        out[name] = {"models": len(idx), **predict.accuracy(y, res.latency_ms),
                     "coverage90_pct": round(float(np.mean((y >= res.lo_ms) & (y <= res.hi_ms))) * 100, 2)}
    keys = ("spearman", "mape_pct", "within10_pct", "coverage90_pct")
    out["mean_of_a_b"] = {k: round((out["a"][k] + out["b"][k]) / 2, 5) for k in keys}
    return out


def _figures(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from blox_lat import predict
    from blox_lat.devices import load_profiles
    from blox_lat.harness import check_host

    probes = [cpu_probe_s()]
    host_before = check_host([load_profiles().get(args.device)])
    picks = random.Random(args.seed).sample(range(91125), args.holdout)
    order_b = random.Random(args.seed + 1).sample(picks, len(picks))
    hold = {"a": _holdout("holdout-a", picks, work, args), "b": _holdout("holdout-b", order_b, work, args)}
    probes.append(cpu_probe_s())
    full = _survey("survey-full", args.budget, work, args)
    probes.append(cpu_probe_s())
    prior = _survey("survey-prior", args.prior_budget, work, args, "--prior", str(_prior(work)))
    probes.append(cpu_probe_s())
    host_after = check_host([load_profiles().get(args.device)])
    (a, ref_a), (b, ref_b) = _corrected(work / "holdout-a"), _corrected(work / "holdout-b")
    common = sorted(set(a) & set(b))
    b_on_a = _on_reference(b, ref_b, ref_a)
    retest = predict.accuracy(np.array([a[i] for i in common] * 2),
                              np.array([b_on_a[i] for i in common] + [a[i] for i in common]))
    surveys = {}
    for name, doc in (("full", full), ("prior", prior)):
        _v, ref_s = _corrected(work / f"survey-{name}" / "campaign")
        truth = {"a": _on_reference({i: a[i] for i in common}, ref_a, ref_s),
                 "b": _on_reference({i: b[i] for i in common}, ref_b, ref_s)}
        surveys[name] = {"budget": args.budget if name == "full" else args.prior_budget,
                         "holdout": _score(work / f"survey-{name}" / "predictor.json", truth),
                         "survey": {k: doc[k] for k in ("spent", "models_measured", "models_failed", "stopped",
                                                        "accuracy", "retest", "prior")},
                         "rounds": [{k: r[k] for k in ("number", "plan", "models", "wall_s", "export_s")}
                                    for r in doc["rounds"]]}
    return _verdict({"device": args.device, "runs": args.runs, "holdout_models": len(common), "seed": args.seed,
                     "retest": retest, "surveys": surveys, "cpu_probe_s": probes,
                     "host_check": {"before": host_before.to_dict() if host_before else None,
                                    "after": host_after.to_dict() if host_after else None,
                                    "survey_full": full.get("host"), "survey_prior": prior.get("host")},
                     "holdout_wall_s_this_call": {k: v["wall_s"] for k, v in hold.items()}})


def _verdict(fig: dict[str, Any]) -> dict[str, Any]:
    full, prior = fig["surveys"]["full"]["holdout"]["mean_of_a_b"], fig["surveys"]["prior"]["holdout"]["mean_of_a_b"]
    ratios = {k: s["survey"]["spent"]["accounted_over_wall"] for k, s in fig["surveys"].items()}
    fig["targets"] = {
        "spearman_ge_retest": full["spearman"] >= fig["retest"]["spearman"],
        "within10_ge_95": full["within10_pct"] >= 95.0,
        "prior_5m_spearman_within_0.02": abs(prior["spearman"] - full["spearman"]) <= 0.02,
        "prior_5m_within10_within_2pts": abs(prior["within10_pct"] - full["within10_pct"]) <= 2.0,
        "accounting_within_5pct": all(r is not None and abs(r - 1) <= 0.05 for r in ratios.values()),
    }
    fig["meets_targets"] = all(fig["targets"].values())
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu-int8")
    parser.add_argument("--budget", default="15m")
    parser.add_argument("--prior-budget", default="5m")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--holdout", type=int, default=200)
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument("--work", type=Path, default=None)
    add_arguments(parser)
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / f"blox-lat-survey-bench/{args.device}-{args.runs}-{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    fig = _figures(args, work)
    fig["code_commit"] = os.environ.get("BLOX_BENCH_COMMIT")
    save("survey", fig, args)


if __name__ == "__main__":
    main()

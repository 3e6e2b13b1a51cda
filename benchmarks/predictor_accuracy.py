"""Latency predictor accuracy (issue 16) on the committed real data, beside its noise floor.

Reads the journals ``collect_predictor_data.py`` wrote (``--journal``: the cpu campaign,
``--retest``: the same models measured again in another campaign, ``--int8``: cpu-int8; plain
or ``.gz``), and prints JSON (written to benchmarks/results/ by ``_results.save``):

- ``test_retest``: two measurements of the same models agree this well (Spearman, MAPE, share
  within +-10 %): the floor a predictor is judged against;
- ``sizes``: per family (and ``auto``), at training sizes 135 (a balanced subset of the measured
  models), 300 and 911, the held-out Spearman / MAPE / within-10 % and 90 % interval coverage,
  averaged over ``--repeats`` random splits;
- ``vs_retest``: the predictor fitted without the re-measured models, scored against each of
  their two measurements, beside the test-retest agreement;
- ``transfer``: cpu-int8 from 50 samples with the cpu predictor as prior, vs a fit from the
  other int8 models; ``pieces`` (``--pieces FILE``): pieces plus <= 20 whole models;
- ``timing``: fit time for all models, prediction time for all 91,125.

Each figure is given for raw latencies and, when every record carries one, level-corrected.
``--synthetic NOISE`` replaces the data by a known truth with log-normal noise (a self-test):
block costs that follow their structure (``--synthetic-residual``: how far each block strays
from it) or, with ``--synthetic-truth arbitrary``, independent costs that no 135 models can pin
down; 1,000 cpu models, 256 of them measured twice, and the same 1,000 on cpu-int8.

    python benchmarks/predictor_accuracy.py [--journal F] [--retest F] [--int8 F] [--pieces F]
        [--repeats 5] [--synthetic 0.03 [--synthetic-residual 0.1]] [--no-save]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _journals import journal_folder
from _probe import cpu_probe_s
from _results import ROOT, add_arguments, save

DATA = ROOT / "benchmarks" / "data" / "predictor"
SIZES = (135, 300, 911)


def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
    from blox_lat.predict import accuracy

    return accuracy(a, b)


def _mean(dicts: list[dict]) -> dict:
    return {k: round(float(np.mean([d[k] for d in dicts])), 5) for k in dicts[0]}


def _coverage(measured, res) -> float:
    return float(np.mean((measured >= res.lo_ms) & (measured <= res.hi_ms)) * 100)


def _balanced_subset(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    from blox_lat.predict import plan_next

    return np.asarray(plan_next(np.array([], dtype=np.int64), n, seed=seed, candidates=pool))


def sizes(data, repeats: int) -> dict:
    from blox_lat import predict as pr

    out: dict = {}
    n_all = len(data)
    for size in SIZES:
        if size >= n_all - 20:
            continue
        per_family: dict[str, list[dict]] = {}
        for r in range(repeats):
            rng = np.random.default_rng(r)
            if size == 135:
                train_idx = _balanced_subset(data.indices, size, r)
                keep = np.isin(data.indices, train_idx)
            else:
                keep = np.zeros(n_all, dtype=bool)
                keep[rng.choice(n_all, size, replace=False)] = True
            train, test = data.subset(np.flatnonzero(keep)), data.subset(np.flatnonzero(~keep))
            for fam in ("auto", *pr.FAMILIES):
                try:
                    p = pr.fit(train, family=fam, seed=r, allow_uncovered=True)
                except pr.TooFewModelsError:
                    continue
                res = p.predict(test.indices)
                fig = {**_agreement(test.latency_ms, res.latency_ms), "coverage90_pct": _coverage(test.latency_ms, res)}
                if fam == "auto":
                    fig["chose_interact"] = float(p.family.endswith("interact"))
                    fig["chose_structured"] = float(p.family.startswith("structured"))
                per_family.setdefault(fam, []).append(fig)
        out[str(size)] = {fam: _mean(v) for fam, v in per_family.items()}
    return out


def _retest(cpu_src: list[Path], retest_src: list[Path], kind: str):
    """The re-measurement's latencies on the first campaign's level reference: both loaded
    together (so corrected latencies share one reference), the retest campaigns' values kept."""
    from types import SimpleNamespace

    from blox_lat import predict as pr

    own = set(pr.load_measurements(retest_src, device="cpu", latency=kind).campaigns)
    both = pr.load_measurements([*cpu_src, *retest_src], device="cpu", latency=kind)
    values = {i: np.exp(np.mean(np.log([v for c, v in per.items() if c in own])))
              for i, per in both.repeats.items() if own & set(per)}
    idx = np.array(sorted(values), dtype=np.int64)
    return SimpleNamespace(indices=idx, latency_ms=np.array([values[i] for i in idx]))


def vs_retest(data, retest) -> dict | None:
    from blox_lat import predict as pr

    both = np.intersect1d(data.indices, retest.indices)
    if len(both) < 20:
        return None
    a = data.latency_ms[np.searchsorted(data.indices, both)]
    b = retest.latency_ms[np.searchsorted(retest.indices, both)]
    train = data.subset(np.flatnonzero(~np.isin(data.indices, both)))
    p = pr.fit(train, allow_uncovered=True)
    pred = p.predict(both).latency_ms
    return {"models": len(both), "test_retest": _agreement(a, b), "family": p.family,
            "trained_on": len(train), "predicted_vs_first": _agreement(a, pred),
            "predicted_vs_second": _agreement(b, pred),
            # the goal: Spearman >= test-retest Spearman and MAPE <= test-retest MAPE
            "predicting_beats_remeasuring": bool(_agreement(a, pred)["spearman"] >= _agreement(a, b)["spearman"]
                                                 and _agreement(a, pred)["mape_pct"] <= _agreement(a, b)["mape_pct"])}


def transfer(cpu, int8, samples: int = 50, repeats: int = 5) -> dict | None:
    """:func:`transfer_once` over ``repeats`` random splits: mean figures and each split's gap
    between the transfer's Spearman and the many-model int8 fit's."""
    runs = [transfer_once(cpu, int8, samples, seed) for seed in range(repeats)]
    if runs[0] is None:
        return None
    gaps = [round(r["int8_fit"]["spearman"] - r["transfer"]["spearman"], 4) for r in runs if r["int8_fit"]]
    return {"samples": samples, "test_models": runs[0]["test_models"], "int8_fit_models": runs[0]["int8_fit_models"],
            "splits": repeats, "transfer": _mean([r["transfer"] for r in runs]),
            "int8_fit": _mean([r["int8_fit"] for r in runs if r["int8_fit"]]),
            "spearman_gap": gaps, "prior_used": [r["prior_used"] for r in runs]}


def transfer_once(cpu, int8, samples: int = 50, seed: int = 0) -> dict | None:
    from blox_lat import predict as pr

    if int8 is None or len(int8) < samples + 40:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(int8))
    # held out: random int8 models not among the samples (the prior must not have seen them
    # either); the rest is the pool of a many-model int8 fit to compare with
    n_test = max(40, (len(int8) - samples) // 3)
    few, test = int8.subset(np.sort(order[:samples])), int8.subset(np.sort(order[samples:samples + n_test]))
    fit_pool = int8.subset(np.sort(order[samples + n_test:]))
    prior = pr.fit(cpu.subset(np.flatnonzero(~np.isin(cpu.indices, test.indices))), allow_uncovered=True)
    t = pr.transfer(prior, few, seed=seed)
    full = pr.fit(fit_pool, allow_uncovered=True) if len(fit_pool) >= 45 else None
    res = t.predict(test.indices)
    return {"samples": samples, "test_models": len(test),
            "transfer": {**_agreement(test.latency_ms, res.latency_ms), "coverage90_pct": _coverage(test.latency_ms, res)},
            "int8_fit": _agreement(test.latency_ms, full.predict(test.indices).latency_ms) if full else None,
            "int8_fit_models": len(fit_pool), "prior_used": t.provenance.get("prior_used", True)}


def pieces(path: Path | None, data, whole: int = 20) -> dict | None:
    from blox_lat import predict as pr

    if path is None:
        return None
    doc = pr.load_pieces(path)
    cal = data.subset(np.arange(min(whole, len(data))))
    test = data.subset(np.arange(min(whole, len(data)), len(data)))
    p = pr.from_pieces(doc, cal)
    return {"whole_models": len(cal), "pieces": _agreement(test.latency_ms, p.predict(test.indices).latency_ms),
            "uncalibrated": p.cv["families"].get("uncalibrated")}


def timing(data) -> dict:
    from blox_lat import predict as pr

    t0 = time.perf_counter()
    p = pr.fit(data, allow_uncovered=True)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p.predict()
    return {"models": len(data), "fit_s": round(fit_s, 3), "predict_all_s": round(time.perf_counter() - t0, 4),
            "family": p.family}


def _synthetic_costs(rng: np.random.Generator, truth: str, residual: float) -> np.ndarray:
    """(3, 45) block costs in ms: ``arbitrary`` (independent log-normal costs, no structure at all)
    or ``structured`` (each operation's cost at each position plus a connection shape's cost, per
    stage, times a log-normal block residual of sigma ``residual``: what structure cannot explain)."""
    from blox_lat.predict._features import structure

    stage = np.array([[1.0], [0.7], [0.5]])
    if truth == "arbitrary":
        return rng.lognormal(0, 0.5, (3, 45)) * stage
    s = structure()
    op = np.array([1.0, 1.3, 0.6])  # conv, mbconv (depthwise is slow per MAC), bconv (fewer MACs)
    rows = []
    for _ in range(3):
        w_ops = np.tile(op * rng.lognormal(0, 0.2, 3), 2) * rng.lognormal(0, 0.1, 6)
        rows.append(s[:, :6] @ w_ops + s[:, 6:] @ rng.uniform(0.02, 0.2, 6))
    return np.stack(rows) * stage * rng.lognormal(0, residual, (3, 45))


def synthetic(tmp: Path, noise: float, interaction: float, truth_kind: str = "structured",
              residual: float = 0.1) -> tuple[list[Path], list[Path], list[Path]]:
    """Journals from a known truth: block costs, an interaction, log-normal noise."""
    import json

    from blox_lat import space as sp
    from blox_lat.predict._features import all_blocks, descriptors

    rng = np.random.default_rng(16)
    costs = _synthetic_costs(rng, truth_kind, residual)

    def truth(i, int8=False):
        b = all_blocks()[i].astype(int)
        y = (2.0 + sum(costs[s, b[:, s]] for s in range(3))) * np.exp(interaction * descriptors(0)[b[:, 0], 6] * descriptors(1)[b[:, 1], 1])
        return y * (0.6 * np.exp(0.05 * descriptors(2)[b[:, 2], 2]) if int8 else 1.0)

    hashes = sp.space_table().hashes

    def write(name, idx, device, campaign):
        folder = tmp / name
        folder.mkdir()
        prof = {"name": device, "runtime": "onnxruntime", "format": "onnx", "batch": 1, "input_size": 32,
                "precision": "int8" if device == "cpu-int8" else "fp32", "options": {}}
        proto = {"version": 1, "groups": 10, "runs_per_group": 10, "warmup_min_runs": 10, "warmup_min_s": 0.5}
        ys = truth(idx, device == "cpu-int8") * rng.lognormal(0, noise, len(idx))
        with open(folder / "journal.jsonl", "w") as fh:
            fh.writelines(json.dumps({"schema": 1, "kind": "measurement", "model_hash": hashes[i], "model_index": int(i),
                                     "device": device, "profile": prof, "protocol": proto, "campaign_id": campaign,
                                     "status": "ok", "recorded_at": "", "measurement": {"latency_ms": float(y)}}) + "\n"
                                     for i, y in zip(idx, ys))
        return [folder]

    models = rng.choice(91125, 1000, replace=False)
    return (write("a", models, "cpu", "a"), write("b", models[:256], "cpu", "b"),
            write("int8", models, "cpu-int8", "i"))  # all of them: a many-model int8 fit to compare with


def main() -> None:
    from blox_lat import predict as pr

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--journal", type=Path, action="append", default=None, help="cpu campaign journal(s)")
    ap.add_argument("--retest", type=Path, action="append", default=None, help="the re-measurement campaign")
    ap.add_argument("--int8", type=Path, action="append", default=None, help="cpu-int8 campaign journal(s)")
    ap.add_argument("--pieces", type=Path, default=None, help="a pieces file (blox-lat predict pieces measure)")
    ap.add_argument("--repeats", type=int, default=5, help="random splits per training size")
    ap.add_argument("--synthetic", type=float, default=None, metavar="NOISE",
                    help="use a known truth with this log-normal noise instead of the data")
    ap.add_argument("--synthetic-interaction", type=float, default=0.03, metavar="K",
                    help="strength of the truth's stage-0 x stage-1 interaction (log space)")
    ap.add_argument("--synthetic-truth", choices=("structured", "arbitrary"), default="structured",
                    help="block costs that follow their operations and shape, or independent ones")
    ap.add_argument("--synthetic-residual", type=float, default=0.1, metavar="SIGMA",
                    help="structured truth: log-normal spread of each block's cost around its structure")
    add_arguments(ap)
    args = ap.parse_args()
    probes = [cpu_probe_s()]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.synthetic is not None:
            cpu_src, retest_src, int8_src = synthetic(tmp, args.synthetic, args.synthetic_interaction,
                                                          args.synthetic_truth, args.synthetic_residual)
        else:
            cpu_src = [journal_folder(p, tmp) for p in (args.journal or [DATA / "cpu-a.journal.jsonl.gz"])]
            if args.pieces is None and (DATA / "cpu.pieces.json").exists():
                args.pieces = DATA / "cpu.pieces.json"
            retest_src = [journal_folder(p, tmp) for p in (args.retest or [DATA / "cpu-b.journal.jsonl.gz"])]
            int8_src = [journal_folder(p, tmp) for p in (args.int8 or [DATA / "cpu-int8.journal.jsonl.gz"])]
        figures: dict = {"source": "synthetic" if args.synthetic is not None else [str(p) for p in args.journal or [DATA]],
                         "synthetic_noise": args.synthetic,
                         "synthetic_interaction": args.synthetic_interaction if args.synthetic is not None else None,
                         "synthetic_truth": [args.synthetic_truth, args.synthetic_residual] if args.synthetic is not None else None}
        for kind in ("raw", "corrected"):
            try:
                cpu = pr.load_measurements(cpu_src, device="cpu", latency=kind)
            except pr.PredictError as exc:
                figures[kind] = {"skipped": str(exc)}
                continue
            retest = _retest(cpu_src, retest_src, kind)
            try:
                int8 = pr.load_measurements(int8_src, device="cpu-int8", latency=kind)
            except pr.PredictError:
                int8 = None
            figures[kind] = {"models": len(cpu), "vs_retest": vs_retest(cpu, retest), "sizes": sizes(cpu, args.repeats),
                             "transfer": transfer(cpu, int8, repeats=args.repeats), "pieces": pieces(args.pieces, cpu),
                             "timing": timing(cpu)}
    probes.append(cpu_probe_s())
    figures["cpu_probe_s"] = probes
    save("predictor_accuracy", figures, args)


if __name__ == "__main__":
    main()
